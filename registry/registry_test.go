package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
)

// newRegistry runs a real single-voter Raft node over bbolt in a temp dir, and a
// distro store on the real clock.
func newRegistry(t *testing.T) (*Registry, *distro.Store, *persistence.Store) {
	t.Helper()
	n := startSolo(t, Config{}, false)
	return n.registry, n.ephemeral, n.store
}

// soloNode is a registry over a real single-voter Raft node, its FSM and bbolt file.
type soloNode struct {
	registry  *Registry
	ephemeral *distro.Store
	store     *persistence.Store
	node      *raftnode.Node
	machine   *fsm.FSM
	parts     Parts
}

// startSolo starts a soloNode with cfg (Timing, Logger and Push filled in when unset);
// runCluster also starts the cluster's loops (membership announcements, folding).
func startSolo(t *testing.T, cfg Config, runCluster bool) *soloNode {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := persistence.Open(filepath.Join(dir, "fsm.db"), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	machine := fsm.New(store, log)
	node, err := raftnode.New(raftnode.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true, Solo: true,
		FSMAppliedIndex: func() uint64 { i, _ := store.Applied(); return i }, Logger: log,
	}, machine)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	d := distro.New(distro.Config{Timing: naming.DefaultTiming(), Logger: log})
	if cfg.Timing == (naming.Timing{}) {
		cfg.Timing = naming.DefaultTiming()
	}
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	if cfg.Push.ListenAddr == "" {
		cfg.Push.ListenAddr = "127.0.0.1:0"
	}
	parts := soloParts(t, dir, node, machine, d)
	r, err := New(cfg, parts)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	if runCluster {
		parts.Cluster.Start()
	}
	t.Cleanup(func() {
		if runCluster {
			parts.Cluster.Stop()
		}
		r.Close()
		d.Stop()
		_ = node.Shutdown()
		_ = store.Close()
	})
	return &soloNode{registry: r, ephemeral: d, store: store, node: node, machine: machine, parts: parts}
}

// soloParts completes the parts of a node that is a cluster of one.
func soloParts(t *testing.T, dir string, node *raftnode.Node, machine *fsm.FSM, d *distro.Store) Parts {
	t.Helper()
	c, err := cluster.New(cluster.Config{NodeID: node.ID(), RaftAddr: node.Addr(), DataDir: dir}, node)
	if err != nil {
		t.Fatal(err)
	}
	rep := distro.NewReplicator(d, distro.ReplicatorConfig{Self: node.ID(), Peers: func() []distro.Peer { return []distro.Peer{{ID: node.ID()}} }})
	return Parts{Node: node, FSM: machine, Ephemeral: d, Replicator: rep, Cluster: c}
}

func key(name string) naming.ServiceKey {
	return naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: name}
}

func inst(ip string, port int, ephemeral bool) *naming.Instance {
	return &naming.Instance{IP: ip, Port: port, ClusterName: naming.DefaultCluster, Weight: 1, Healthy: true, Enabled: true, Ephemeral: ephemeral}
}

func statusOf(err error) int {
	var ne *naming.Error
	if errors.As(err, &ne) {
		return ne.Status
	}
	return 0
}

func TestRouterDispatchesByKind(t *testing.T) {
	r, d, store := newRegistry(t)
	ctx := context.Background()
	if err := r.Register(ctx, key("eph"), inst("1.1.1.1", 80, true)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, key("per"), inst("2.2.2.2", 80, false)); err != nil {
		t.Fatal(err)
	}
	if got := d.Instances(key("eph")); len(got) != 1 {
		t.Fatalf("ephemeral instance not in distro: %v", got)
	}
	if got := d.Instances(key("per")); len(got) != 0 {
		t.Fatalf("persistent instance leaked into distro: %v", got)
	}
	var stored []*naming.Instance
	if err := store.View(func(tx *persistence.Tx) (err error) {
		stored, err = tx.Instances(key("per"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].IP != "2.2.2.2" {
		t.Fatalf("persistent instance not in bbolt: %v", stored)
	}
	if _, applied := store.Applied(); applied == 0 {
		t.Fatal("persistent write answered before it was applied")
	}
}

func TestServiceIsOneKind(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	_ = r.Register(ctx, key("eph"), inst("1.1.1.1", 80, true))
	_ = r.Register(ctx, key("per"), inst("2.2.2.2", 80, false))
	err := r.Register(ctx, key("eph"), inst("1.1.1.2", 80, false))
	if statusOf(err) != http.StatusBadRequest || err.Error() != naming.ErrEphemeralService(key("eph")).Error() {
		t.Fatalf("persistent into ephemeral: %v", err)
	}
	err = r.Register(ctx, key("per"), inst("2.2.2.3", 80, true))
	if statusOf(err) != http.StatusBadRequest || err.Error() != naming.ErrPersistentService(key("per")).Error() {
		t.Fatalf("ephemeral into persistent: %v", err)
	}
	// A service created through POST /service has the kind it was created with: v1
	// creates persistent ones, v2 either.
	if err := r.CreateService(ctx, naming.NewService(key("made"), false)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, key("made"), inst("3.3.3.3", 80, true)); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("ephemeral into created persistent service: %v", err)
	}
	if err := r.CreateService(ctx, naming.NewService(key("made-eph"), true)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, key("made-eph"), inst("3.3.3.4", 80, false)); err == nil || err.Error() != naming.ErrEphemeralService(key("made-eph")).Error() {
		t.Fatalf("persistent into created ephemeral service: %v", err)
	}
	if err := r.Register(ctx, key("made-eph"), inst("3.3.3.4", 80, true)); err != nil {
		t.Fatalf("ephemeral into created ephemeral service: %v", err)
	}
}

func TestDeregisterFollowsStoredKind(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	_ = r.Register(ctx, key("per"), inst("2.2.2.2", 80, false))
	// The request claims ephemeral (the default); the stored kind wins.
	if err := r.Deregister(ctx, key("per"), "2.2.2.2", 80, naming.DefaultCluster, true); err != nil {
		t.Fatal(err)
	}
	info, err := r.List(ctx, Query{Service: key("per")})
	if err != nil || len(info.Hosts) != 0 {
		t.Fatalf("still listed: %+v %v", info, err)
	}
	if err := r.Deregister(ctx, key("never"), "9.9.9.9", 1, naming.DefaultCluster, false); err != nil {
		t.Fatalf("deregister of nothing must succeed: %v", err)
	}
}

func TestViewFollowsEveryChange(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	svc := key("v")
	var last int64
	check := func(want int) {
		t.Helper()
		info, err := r.List(ctx, Query{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Hosts) != want {
			t.Fatalf("hosts = %d, want %d", len(info.Hosts), want)
		}
		if info.LastRefTime <= last {
			t.Fatalf("lastRefTime %d did not increase past %d", info.LastRefTime, last)
		}
		last = info.LastRefTime
	}
	_ = r.Register(ctx, svc, inst("1.1.1.1", 1, false))
	check(1)
	_ = r.Register(ctx, svc, inst("1.1.1.2", 1, false))
	check(2)
	w := 5.0
	if err := r.PatchInstance(ctx, svc, "1.1.1.1", 1, naming.DefaultCluster, Patch{Weight: &w}); err != nil {
		t.Fatal(err)
	}
	check(2)
	got, err := r.Instance(ctx, svc, "1.1.1.1", 1, naming.DefaultCluster)
	if err != nil || got.Weight != 5 {
		t.Fatalf("patched instance: %+v %v", got, err)
	}
	_ = r.Deregister(ctx, svc, "1.1.1.2", 1, naming.DefaultCluster, false)
	check(1)
}

func TestUpdateNeedsService(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	err := r.Update(ctx, key("ghost"), inst("1.1.1.1", 1, true))
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("update of a missing service: %v", err)
	}
	_ = r.Register(ctx, key("e"), inst("1.1.1.1", 1, true))
	up := inst("1.1.1.2", 2, true)
	up.Weight = 3
	if err := r.Update(ctx, key("e"), up); err != nil {
		t.Fatal(err)
	}
	info, _ := r.List(ctx, Query{Service: key("e")})
	if len(info.Hosts) != 2 {
		t.Fatalf("update of a missing instance registers it: %+v", info.Hosts)
	}
}

func TestBeatCodes(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	svc := key("b")
	res, err := r.Beat(ctx, BeatRequest{Service: svc, IP: "1.1.1.1", Port: 1, Cluster: naming.DefaultCluster})
	if err != nil || res.Code != BeatNotFound {
		t.Fatalf("light beat for unknown: %+v %v", res, err)
	}
	full := inst("1.1.1.1", 1, true)
	full.Healthy = false
	res, err = r.Beat(ctx, BeatRequest{Service: svc, IP: "1.1.1.1", Port: 1, Cluster: naming.DefaultCluster, Full: full})
	if err != nil || res.Code != BeatOK || res.Interval != 5*time.Second {
		t.Fatalf("full beat for unknown: %+v %v", res, err)
	}
	got, err := r.Instance(ctx, svc, "1.1.1.1", 1, naming.DefaultCluster)
	if err != nil || !got.Healthy || !got.Enabled {
		t.Fatalf("a beat registers a healthy, enabled instance: %+v %v", got, err)
	}
	res, _ = r.Beat(ctx, BeatRequest{Service: svc, IP: "1.1.1.1", Port: 1, Cluster: naming.DefaultCluster})
	if res.Code != BeatOK {
		t.Fatalf("light beat for known: %+v", res)
	}
}

func TestServicePage(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	for _, n := range []string{"c", "a", "b"} {
		_ = r.Register(ctx, key(n), inst("1.1.1.1", 1, true))
	}
	other := naming.ServiceKey{Namespace: "public", Group: "G2", Name: "z"}
	_ = r.Register(ctx, other, inst("1.1.1.1", 1, true))
	count, names, err := r.ServicePage("public", naming.DefaultGroup, 2, 2)
	if err != nil || count != 3 || len(names) != 1 || names[0] != "c" {
		t.Fatalf("page 2: %d %v %v", count, names, err)
	}
	count, names, _ = r.ServicePage("public", "*", 1, 10)
	if count != 4 || names[0] != "DEFAULT_GROUP@@a" || names[3] != "G2@@z" {
		t.Fatalf("all groups: %d %v", count, names)
	}
}

func TestPushAgent(t *testing.T) {
	for agent, want := range map[string]bool{
		"Nacos-Go-Client:v1.1.4":   true,
		"Nacos-Java-Client:v1.0.0": true,
		"curl/8.0":                 false,
		"":                         false,
	} {
		if PushAgent(agent) != want {
			t.Errorf("PushAgent(%q) != %v", agent, want)
		}
	}
}

// TestEphemeralMetadataBatchIsRefusedWhole: a batch that one instance cannot take (its
// merged metadata would exceed the limit) changes none of them. Before, the instances
// checked before it kept the new keys while the answer was a 400.
func TestEphemeralMetadataBatchIsRefusedWhole(t *testing.T) {
	r, d, _ := newRegistry(t)
	ctx := context.Background()
	small, big := inst("10.0.0.1", 1, true), inst("10.0.0.2", 1, true)
	big.Metadata = map[string]string{"k": string(make([]byte, naming.DefaultMaxMetadata-10))}
	for _, in := range []*naming.Instance{small, big} {
		if err := r.Register(ctx, key("batch"), in); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.UpdateMetadataBatch(ctx, key("batch"), false, nil, map[string]string{"more": "0123456789abcdef"}, false)
	if statusOf(err) != http.StatusBadRequest || err.Error() != "Param 'Metadata' is illegal, the param length should not exceed 1024." {
		t.Fatalf("UpdateMetadataBatch = %v", err)
	}
	for _, in := range d.Instances(key("batch")) {
		if _, ok := in.Metadata["more"]; ok {
			t.Errorf("%s took part of a refused batch: %v", in.Key(), in.Metadata)
		}
	}
	// A batch whose metadata no instance may hold is refused even when no instance
	// matches it, as the persistent path refuses it.
	_, err = r.UpdateMetadataBatch(ctx, key("empty"), false, nil, map[string]string{"k\x00": "v"}, false)
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("UpdateMetadataBatch of a bad key = %v", err)
	}
}

// TestPersistentDeregisterOfUnknownServiceGoesThroughRaft: a node that does not know a
// service (a follower that has not applied its registration yet) must not answer a
// persistent deregistration from its own state: it commits the command, so the leader's
// state decides. Regression test for the acked-but-not-applied deregistration that the
// chaos suite's R12 run found.
func TestPersistentDeregisterOfUnknownServiceGoesThroughRaft(t *testing.T) {
	r, _, store := newRegistry(t)
	before, _ := store.Applied()
	if err := r.Deregister(context.Background(), key("never-seen"), "10.0.0.1", 80, naming.DefaultCluster, false); err != nil {
		t.Fatalf("deregister of an absent persistent instance: %v, want ok", err)
	}
	after, _ := store.Applied()
	if after <= before {
		t.Fatalf("applied index %d → %d: the deregistration was answered from local state, not committed", before, after)
	}
}
