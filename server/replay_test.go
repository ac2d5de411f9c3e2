package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/server/servertest"
)

// TestReplayRestoresWritesLostWithFSMTail is the power-loss case of persistence/doc.go:
// fsm.db loses everything after its last commit (the node is stopped, and its fsm.db
// replaced by a copy taken while later writes were still uncommitted), while the Raft
// log, fsynced before each write was answered, keeps them. The restarted node must
// replay the log from fsm.db's recorded index and hold exactly what it answered.
func TestReplayRestoresWritesLostWithFSMTail(t *testing.T) {
	ctx := context.Background()
	cfg := servertest.Config(t)
	// Nothing commits fsm.db on its own during the test: only the explicit commit below.
	cfg.FSMCommitInterval = time.Minute
	cfg.FSMCommitEntries = 1 << 40
	srv := servertest.Start(t, cfg)
	reg := srv.Registry()
	svcs := []naming.ServiceKey{
		{Namespace: "public", Group: naming.DefaultGroup, Name: "replay.a"},
		{Namespace: "public", Group: naming.DefaultGroup, Name: "replay.b"},
	}
	register := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			inst := &naming.Instance{IP: fmt.Sprintf("10.1.0.%d", i), Port: 8000 + i, ClusterName: naming.DefaultCluster,
				Weight: 1, Healthy: true, Enabled: true, Metadata: map[string]string{"i": fmt.Sprint(i)}}
			if err := reg.Register(ctx, svcs[i%2], inst); err != nil {
				t.Fatalf("register %d: %v", i, err)
			}
		}
	}

	register(0, 20)
	// Commit what is applied (a snapshot holds everything applied).
	sn, err := reg.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	committed := sn.Header()
	sn.Release()

	// Writes answered after the commit: new instances, deregistrations and updates of
	// committed ones, so that replaying them on the committed state is what restores it.
	register(20, 40)
	for i := 0; i < 6; i++ {
		if err := reg.Deregister(ctx, svcs[i%2], fmt.Sprintf("10.1.0.%d", i), 8000+i, naming.DefaultCluster, false); err != nil {
			t.Fatalf("deregister %d: %v", i, err)
		}
	}
	for i := 6; i < 10; i++ {
		upd := &naming.Instance{IP: fmt.Sprintf("10.1.0.%d", i), Port: 8000 + i, ClusterName: naming.DefaultCluster,
			Weight: 3, Healthy: true, Enabled: true, Metadata: map[string]string{"updated": "yes"}}
		if err := reg.Update(ctx, svcs[i%2], upd); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	want := listAll(t, reg, svcs)
	if n := len(want[0]) + len(want[1]); n != 34 {
		t.Fatalf("%d instances before the restart, want 34", n)
	}

	fsmPath := filepath.Join(cfg.DataDir, "fsm.db")
	tail, err := os.ReadFile(fsmPath) // as of the last commit: the open batch is in memory only
	if err != nil {
		t.Fatal(err)
	}
	checkCopy(t, tail, committed)

	raftAddr := srv.RaftAddr()
	if err := srv.Close(); err != nil { // commits fsm.db in full ...
		t.Fatal(err)
	}
	if err := os.WriteFile(fsmPath, tail, 0o600); err != nil { // ... which the power cut undoes
		t.Fatal(err)
	}

	cfg2 := cfg
	cfg2.RaftAddr = raftAddr
	cfg2.HTTPAddr = "127.0.0.1:0"
	re := servertest.Start(t, cfg2)
	got := listAll(t, re.Registry(), svcs)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after replay:\n got %v\nwant %v", got, want)
	}
}

// checkCopy shows the copy really lacks the uncommitted writes: it holds exactly the
// committed position and its 20 instances.
func checkCopy(t *testing.T, data []byte, committed persistence.Header) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fsm-copy.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := persistence.Open(path, persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if idx, _ := st.Applied(); idx != committed.Index {
		t.Fatalf("the copy of fsm.db records index %d, want the committed %d", idx, committed.Index)
	}
	var n int
	if err := st.View(func(tx *persistence.Tx) error {
		_, n, err = tx.Counts()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("the copy of fsm.db holds %d instances, want the 20 committed", n)
	}
}

func listAll(t *testing.T, reg *registry.Registry, svcs []naming.ServiceKey) [][]naming.Instance {
	t.Helper()
	out := make([][]naming.Instance, len(svcs))
	for i, k := range svcs {
		info, err := reg.List(context.Background(), registry.Query{Service: k})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range info.Hosts {
			out[i] = append(out[i], *h)
		}
	}
	return out
}
