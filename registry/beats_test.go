package registry

import (
	"context"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry/udppush"
)

// TestBeatForAnUnansweringMemberIsRecordedHere: the member responsible for a client
// accepts the forwarded beat and never answers (SIGSTOPped). The beat is recorded here,
// which takes the client over, instead of failing while every copy of the client ages
// (R5: the member that kept such a client forwarded its beats to the paused owner
// until it declared it dead, and expired the client meanwhile).
func TestBeatForAnUnansweringMemberIsRecordedHere(t *testing.T) {
	release := make(chan struct{})
	paused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer paused.Close()
	defer close(release)

	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := persistence.Open(filepath.Join(dir, "fsm.db"), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	machine := fsm.New(store, log)
	node, err := raftnode.New(raftnode.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true, Solo: true,
		FSMAppliedIndex: func() uint64 { i, _ := store.Applied(); return i }, Logger: log,
	}, machine)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = node.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := cluster.New(cluster.Config{NodeID: node.ID(), RaftAddr: node.Addr(), DataDir: dir, CallTimeout: 300 * time.Millisecond}, node)
	if err != nil {
		t.Fatal(err)
	}
	d := distro.New(distro.Config{Timing: naming.DefaultTiming(), Logger: log})
	defer d.Stop()
	peers := []distro.Peer{{ID: "n0", HTTPAddr: strings.TrimPrefix(paused.URL, "http://")}, {ID: "n1"}}
	rep := distro.NewReplicator(d, distro.ReplicatorConfig{
		Self: "n1", Peers: func() []distro.Peer { return peers },
		PingInterval: time.Hour, VerifyInterval: time.Hour, Logger: log,
	})
	rep.Start() // n0 is presumed alive (for DeadAfter, hours here)
	defer rep.Stop()
	r, err := New(Config{Timing: naming.DefaultTiming(), Logger: log, Push: udppush.Config{ListenAddr: "127.0.0.1:0"}},
		Parts{Node: node, FSM: machine, Ephemeral: d, Replicator: rep, Cluster: c})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	defer r.Close()

	// A client whose responsible member is n0; this node holds n0's replica of it.
	port := 1
	for ; ; port++ {
		h := fnv.New32a()
		h.Write([]byte(net.JoinHostPort("10.0.0.1", strconv.Itoa(port))))
		if h.Sum32()%2 == 0 {
			break
		}
	}
	if p, self := rep.Responsible(net.JoinHostPort("10.0.0.1", strconv.Itoa(port))); self || p.ID != "n0" {
		t.Fatalf("client port %d is %s's, want n0's", port, p.ID)
	}
	svc := key("owned-by-paused")
	d.ApplyRemote("n0", svc, []distro.Entry{{Instance: *inst("10.0.0.1", port, true), Epoch: 1}})

	res, err := r.Beat(context.Background(), BeatRequest{Service: svc, IP: "10.0.0.1", Port: port, Cluster: naming.DefaultCluster})
	if err != nil || res.Code != BeatOK {
		t.Fatalf("beat for a client of an unanswering member: %+v %v", res, err)
	}
	if got := d.Authoritative(svc); len(got) != 1 {
		t.Fatalf("the beat did not take the client over here (its copy would never be beaten): %+v", got)
	}
}
