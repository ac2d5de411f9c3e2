package raftnode

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestSingleNodeBootstrapApplyAndStats(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := startNode(t, cfg, fsm)

	waitSelfLeader(t, n)
	select {
	case v := <-n.LeaderCh():
		if !v {
			t.Fatalf("LeaderCh: got false, want true after becoming leader")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LeaderCh: no value after becoming leader")
	}
	if id, addr := n.Leader(); id != "n1" || addr != n.Addr() {
		t.Fatalf("Leader() = %q, %q; want n1, %q", id, addr, n.Addr())
	}
	if strings.HasSuffix(n.Addr(), ":0") {
		t.Fatalf("Addr() = %q; want the bound port", n.Addr())
	}

	before := n.Stats()
	if before.State != "Leader" || before.Term == 0 {
		t.Fatalf("Stats before apply = %+v; want Leader with a term", before)
	}
	for want := 1; want <= 3; want++ {
		if got := mustApply(t, n, "incr:a"); got != want {
			t.Fatalf("Apply response = %v (%T); want %d", got, got, want)
		}
	}
	// Raft records its applied index a moment after the FSM answers the apply future,
	// so the counters are read until they move, within a deadline.
	moved := func(after Stats) bool {
		return after.LastLogIndex >= before.LastLogIndex+3 && after.CommitIndex >= before.CommitIndex+3 &&
			after.AppliedIndex >= before.AppliedIndex+3
	}
	after := n.Stats()
	for deadline := time.Now().Add(5 * time.Second); !moved(after) && time.Now().Before(deadline); after = n.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	if !moved(after) {
		t.Fatalf("Stats did not move by 3 entries: before %+v after %+v", before, after)
	}
	if after.LastSnapshotIndex != 0 {
		t.Fatalf("LastSnapshotIndex = %d before any snapshot", after.LastSnapshotIndex)
	}
	idx, err := n.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if got := n.Stats().LastSnapshotIndex; got != idx || idx < after.AppliedIndex {
		t.Fatalf("LastSnapshotIndex = %d, snapshot index %d; want equal and >= %d", got, idx, after.AppliedIndex)
	}

	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if err := n.VerifyLeader(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("VerifyLeader: %v", err)
	}
	servers, err := n.Servers()
	if err != nil {
		t.Fatalf("Servers: %v", err)
	}
	if len(servers) != 1 || servers[0] != (Server{ID: "n1", Address: n.Addr(), Voter: true}) {
		t.Fatalf("Servers() = %+v", servers)
	}
}

func TestConcurrentAppliesAllAnswered(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)

	const workers = 64
	var wg sync.WaitGroup
	results := make(chan any, workers)
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := n.Apply(context.Background(), []byte("incr:k"))
			if err != nil {
				errs <- err
				return
			}
			results <- resp
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Errorf("Apply: %v", err)
	}
	got := map[int]bool{}
	for r := range results {
		got[r.(int)] = true
	}
	if len(got) != workers {
		t.Fatalf("got %d distinct responses; want %d (each Apply its own count)", len(got), workers)
	}
	fsm.mu.Lock()
	t.Logf("largest FSM batch: %d", fsm.maxBatch)
	fsm.mu.Unlock()
}

// restartSetup runs a bootstrapped node, applies 5 entries, snapshots, applies 3 more and
// shuts down. It returns the config (bound to the same port for the restart), the FSM,
// the snapshot's index and the indexes the FSM was handed after the snapshot.
func restartSetup(t *testing.T) (Config, *counterFSM, uint64, []uint64) {
	t.Helper()
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.FSMAppliedIndex = fsm.Applied
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	for range 5 {
		mustApply(t, n, "incr:a")
	}
	snapIndex, err := n.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for range 3 {
		mustApply(t, n, "incr:a")
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if fsm.Applied() <= snapIndex {
		t.Fatalf("FSM applied %d, not past the snapshot at %d", fsm.Applied(), snapIndex)
	}
	cfg.RaftAddr = n.Addr() // keep the address recorded in the configuration
	var after []uint64
	for _, idx := range fsm.takeSeen() {
		if idx > snapIndex {
			after = append(after, idx)
		}
	}
	return cfg, fsm, snapIndex, after
}

// checkReplay asserts that after the restart the FSM was handed only entries after the
// snapshot, among them every entry it had been handed before the restart (want). Raft
// keeps no-op entries from the FSM, so want is not a contiguous range.
func checkReplay(t *testing.T, seen []uint64, snapIndex uint64, want []uint64) {
	t.Helper()
	if len(seen) == 0 {
		t.Fatal("FSM saw no entries after restart")
	}
	covered := map[uint64]bool{}
	for _, idx := range seen {
		if idx <= snapIndex {
			t.Fatalf("FSM was handed index %d at or below the snapshot index %d: %v", idx, snapIndex, seen)
		}
		covered[idx] = true
	}
	for _, idx := range want {
		if !covered[idx] {
			t.Fatalf("entry %d after the snapshot was not replayed: %v", idx, seen)
		}
	}
}

func TestRestartSkipsSnapshotRestoreWhenFSMIsCurrent(t *testing.T) {
	cfg, fsm, snapIndex, replay := restartSetup(t)
	lastBefore := fsm.Applied()

	// Same FSM instance: it kept its state and applied index, like a bbolt-backed FSM.
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := n.Stats().LastLogIndex; got < lastBefore {
		t.Fatalf("LastLogIndex after restart = %d; want >= %d (log kept)", got, lastBefore)
	}
	if r := fsm.restoreCount(); r != 0 {
		t.Fatalf("FSM.Restore called %d times; want 0 (NoSnapshotRestoreOnStart)", r)
	}
	checkReplay(t, fsm.takeSeen(), snapIndex, replay)
	if got := fsm.count("a"); got != 8 {
		t.Fatalf("count after restart = %d; want 8 (replayed entries skipped)", got)
	}
	if got := mustApply(t, n, "incr:a"); got != 9 {
		t.Fatalf("Apply after restart = %v; want 9", got)
	}
}

func TestRestartRestoresSnapshotWhenFSMIsBehind(t *testing.T) {
	cfg, _, snapIndex, replay := restartSetup(t)

	// A fresh FSM (applied index 0, below the snapshot): raft must restore the snapshot
	// and then replay the entries after it.
	fsm := newCounterFSM()
	cfg.FSMAppliedIndex = fsm.Applied
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if r := fsm.restoreCount(); r != 1 {
		t.Fatalf("FSM.Restore called %d times; want 1", r)
	}
	checkReplay(t, fsm.takeSeen(), snapIndex, replay)
	if got := fsm.count("a"); got != 8 {
		t.Fatalf("count after restore and replay = %d; want 8", got)
	}
}

func TestRestartWithoutSnapshotReplaysWholeLog(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.FSMAppliedIndex = fsm.Applied
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	mustApply(t, n, "incr:a")
	mustApply(t, n, "incr:a")
	if err := n.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	cfg.RaftAddr = n.Addr()
	before := fsm.takeSeen()

	n = startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	checkReplay(t, fsm.takeSeen(), 0, before) // the bootstrap configuration and both commands
	if got := fsm.count("a"); got != 2 {
		t.Fatalf("count = %d; want 2 (replay skipped by index)", got)
	}
}

func TestSecondNodeOnSameDataDirFailsFast(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "n1", dir)
	cfg.Bootstrap = true
	n := startNode(t, cfg, newCounterFSM())
	waitSelfLeader(t, n)

	start := time.Now()
	n2, err := New(testConfig(t, "n2", dir), newCounterFSM())
	if err == nil {
		_ = n2.Shutdown()
		t.Fatal("second New on the same data dir succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("second New took %s to fail", el)
	}
	t.Logf("second New: %v", err)
	if want := filepath.Join(dir, "raft.db"); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
	// The first node is unaffected.
	mustApply(t, n, "incr:a")
}

func TestShutdownIsIdempotentAndRejectsWork(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := startNode(t, cfg, newCounterFSM())
	waitSelfLeader(t, n)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Shutdown(); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		}()
	}
	wg.Wait()
	if _, err := n.Apply(context.Background(), []byte("incr:a")); !errors.Is(err, ErrShutdown) || !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("Apply after Shutdown: %v; want ErrShutdown wrapping raft.ErrRaftShutdown", err)
	}
	if err := n.WaitLeader(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("WaitLeader after Shutdown: %v; want ErrShutdown", err)
	}
	if err := n.Barrier(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Barrier after Shutdown: %v; want ErrShutdown", err)
	}
	// The data dir can be reopened: the bolt store and the port were released.
	cfg.RaftAddr = n.Addr()
	n2 := startNode(t, cfg, newCounterFSM())
	waitSelfLeader(t, n2)
}

func TestApplyDeadlineAfterEnqueueIsUnknownOutcome(t *testing.T) {
	fsm := newCounterFSM()
	fsm.gate = make(chan struct{})
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	released := false
	release := func() {
		if !released {
			released = true
			close(fsm.gate)
		}
	}
	t.Cleanup(release) // Shutdown waits for the FSM goroutine

	// The FSM holds the entry, so the deadline passes after raft took it.
	_, err := n.Apply(ctxTimeout(t, 100*time.Millisecond), []byte("block:b"))
	if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply past its deadline: %v; want ErrUnknownOutcome wrapping DeadlineExceeded", err)
	}
	release()
	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
	if got := fsm.count("b"); got != 1 {
		t.Fatalf("the unknown-outcome entry was applied %d times; want 1 (it was committed)", got)
	}

	// A context that is already done never reaches raft.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Apply(ctx, []byte("incr:c")); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("Apply with a canceled context: %v; want context.Canceled, not unknown outcome", err)
	}
}

func TestApplyErrorTranslation(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		err   error
		index uint64
		want  error
	}{
		{raft.ErrNotLeader, 0, ErrNotLeader},
		{raft.ErrEnqueueTimeout, 0, ErrNoLeader},
		{raft.ErrLeadershipTransferInProgress, 0, ErrNoLeader},
		{raft.ErrLeadershipLost, 7, ErrUnknownOutcome},
		{raft.ErrAbortedByRestore, 7, ErrUnknownOutcome},
		{raft.ErrRaftShutdown, 0, ErrShutdown},
		{raft.ErrRaftShutdown, 7, ErrUnknownOutcome},
		{other, 7, ErrUnknownOutcome},
	} {
		got := applyError("apply", tc.err, tc.index)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("applyError(%v, %d) = %v; want errors.Is %v and %v", tc.err, tc.index, got, tc.want, tc.err)
		}
		if !strings.HasPrefix(got.Error(), "raftnode: ") {
			t.Errorf("error %q lacks the package prefix", got)
		}
	}
	if got := applyError("apply", other, 0); errors.Is(got, ErrUnknownOutcome) || !errors.Is(got, other) {
		t.Errorf("applyError(other, 0) = %v; want plain wrap", got)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	def := raft.DefaultConfig()
	rc, err := buildRaftConfig(Config{NodeID: "n1"}, newHCLogger(nil))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if rc.HeartbeatTimeout != def.HeartbeatTimeout || rc.ElectionTimeout != def.ElectionTimeout ||
		rc.LeaderLeaseTimeout != def.LeaderLeaseTimeout || rc.CommitTimeout != def.CommitTimeout ||
		rc.SnapshotThreshold != def.SnapshotThreshold || rc.TrailingLogs != def.TrailingLogs {
		t.Fatalf("zero Config did not take raft's defaults: %+v", rc)
	}
	if !rc.BatchApplyCh || rc.MaxAppendEntries != 512 {
		t.Fatalf("BatchApplyCh=%v MaxAppendEntries=%d; want true, 512", rc.BatchApplyCh, rc.MaxAppendEntries)
	}

	// Only the election timeout set (the --election-timeout flag): still valid.
	rc, err = buildRaftConfig(Config{NodeID: "n1", ElectionTimeout: 300 * time.Millisecond}, newHCLogger(nil))
	if err != nil {
		t.Fatalf("election timeout only: %v", err)
	}
	if rc.HeartbeatTimeout != 300*time.Millisecond || rc.LeaderLeaseTimeout != 150*time.Millisecond {
		t.Fatalf("derived heartbeat %s lease %s", rc.HeartbeatTimeout, rc.LeaderLeaseTimeout)
	}

	_, err = buildRaftConfig(Config{NodeID: "n1", HeartbeatTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond}, newHCLogger(nil))
	if err == nil || !strings.Contains(err.Error(), "LeaderLeaseTimeout") || !strings.HasPrefix(err.Error(), "raftnode: ") {
		t.Fatalf("lease > heartbeat: err = %v; want raft's validation error", err)
	}

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no id", Config{RaftAddr: "127.0.0.1:0", DataDir: t.TempDir()}},
		{"no addr", Config{NodeID: "n1", DataDir: t.TempDir()}},
		{"no dir", Config{NodeID: "n1", RaftAddr: "127.0.0.1:0"}},
		{"unadvertisable", Config{NodeID: "n1", RaftAddr: "0.0.0.0:0", DataDir: t.TempDir()}},
	} {
		if _, err := New(tc.cfg, newCounterFSM()); err == nil || !strings.HasPrefix(err.Error(), "raftnode: ") {
			t.Errorf("%s: New error = %v; want a raftnode error", tc.name, err)
		}
	}
}

func TestClusterOfThree(t *testing.T) {
	fsms := []*counterFSM{newCounterFSM(), newCounterFSM(), newCounterFSM()}
	nodes := make([]*Node, 3)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1), t.TempDir())
		cfg.Bootstrap = i == 0
		withClusterTiming(&cfg)
		nodes[i] = startNode(t, cfg, fsms[i])
	}
	waitSelfLeader(t, nodes[0])
	for _, n := range nodes[1:] {
		if err := nodes[0].AddVoter(n.ID(), n.Addr(), 5*time.Second); err != nil {
			t.Fatalf("AddVoter(%s): %v", n.ID(), err)
		}
	}

	// findLeader returns the one node among live that all of live agree is leader.
	findLeader := func(live []*Node) *Node {
		var leader *Node
		waitFor(t, 10*time.Second, "all nodes to agree on one leader", func() bool {
			leader = nil
			id0, _ := live[0].Leader()
			for _, n := range live {
				if id, _ := n.Leader(); id == "" || id != id0 {
					return false
				}
				if n.IsLeader() {
					if leader != nil {
						return false
					}
					leader = n
				}
			}
			return leader != nil && leader.ID() == id0
		})
		return leader
	}
	leader := findLeader(nodes)
	servers, err := leader.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("Servers() = %+v, %v; want 3", servers, err)
	}
	for _, s := range servers {
		if !s.Voter {
			t.Fatalf("server %+v is not a voter", s)
		}
	}

	var follower *Node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	followerBefore := follower.Stats()

	// applyOnLeader retries across leadership changes the test itself caused.
	applyOnLeader := func(live []*Node, cmd string) (any, *Node) {
		var resp any
		var on *Node
		waitFor(t, 10*time.Second, "an Apply to succeed on the leader", func() bool {
			for _, n := range live {
				if !n.IsLeader() {
					continue
				}
				r, err := n.Apply(ctxTimeout(t, 2*time.Second), []byte(cmd))
				if err == nil {
					resp, on = r, n
					return true
				}
				if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
					t.Fatalf("Apply(%q) on %s: %v", cmd, n.ID(), err)
				}
			}
			return false
		})
		return resp, on
	}
	if resp, _ := applyOnLeader(nodes, "incr:x"); resp != 1 {
		t.Fatalf("Apply response = %v; want 1", resp)
	}
	waitFor(t, 5*time.Second, "the follower to apply the entry", func() bool { return fsms[indexOf(nodes, follower)].count("x") == 1 })
	followerAfter := follower.Stats()
	if followerAfter.State != "Follower" || followerAfter.CommitIndex <= followerBefore.CommitIndex ||
		followerAfter.AppliedIndex <= followerBefore.AppliedIndex || followerAfter.LastLogIndex <= followerBefore.LastLogIndex {
		t.Fatalf("follower Stats did not move: before %+v after %+v", followerBefore, followerAfter)
	}

	_, err = follower.Apply(ctxTimeout(t, 2*time.Second), []byte("incr:x"))
	if !errors.Is(err, ErrNotLeader) || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("Apply on follower: %v; want ErrNotLeader", err)
	}
	if err := follower.Barrier(ctxTimeout(t, 2*time.Second)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Barrier on follower: %v; want ErrNotLeader", err)
	}
	if err := follower.VerifyLeader(ctxTimeout(t, 2*time.Second)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("VerifyLeader on follower: %v; want ErrNotLeader", err)
	}
	if err := follower.AddVoter("n9", "127.0.0.1:1", time.Second); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("AddVoter on follower: %v; want ErrNotLeader", err)
	}

	// Kill the leader: the other two still form a quorum of the three voters.
	oldTerm := leader.Stats().Term
	if err := leader.Shutdown(); err != nil {
		t.Fatalf("Shutdown leader: %v", err)
	}
	var live []*Node
	for _, n := range nodes {
		if n != leader {
			live = append(live, n)
		}
	}
	newLeader := findLeader(live)
	if newLeader.Stats().Term <= oldTerm {
		t.Fatalf("new leader's term %d not past %d", newLeader.Stats().Term, oldTerm)
	}
	waitFor(t, 5*time.Second, "LeaderCh of the new leader to say true", func() bool {
		select {
		case v := <-newLeader.LeaderCh():
			return v
		default:
			return false
		}
	})
	if resp, _ := applyOnLeader(live, "incr:x"); resp != 2 {
		t.Fatalf("Apply on the new leader = %v; want 2", resp)
	}

	// Membership changes on the new leader.
	if err := newLeader.RemoveServer(leader.ID()); err != nil {
		t.Fatalf("RemoveServer(%s): %v", leader.ID(), err)
	}
	servers, err = newLeader.Servers()
	if err != nil || len(servers) != 2 {
		t.Fatalf("Servers() after remove = %+v, %v; want 2", servers, err)
	}
	if err := newLeader.TransferLeadership(); err != nil {
		t.Fatalf("TransferLeadership: %v", err)
	}
	if l := findLeader(live); l == newLeader {
		t.Fatalf("leadership stayed on %s after TransferLeadership", l.ID())
	}
}

func indexOf(nodes []*Node, n *Node) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}

func TestSoloElectsFastAndRefusesVoters(t *testing.T) {
	dir := t.TempDir()
	fsm := newCounterFSM()
	n, err := New(Config{
		NodeID: "solo", RaftAddr: "127.0.0.1:0", DataDir: dir, Bootstrap: true, Solo: true,
		HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
		FSMAppliedIndex: fsm.Applied, Logger: testLogger(t),
	}, fsm)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
	defer cancel()
	// With the configured 1 s the first election could not finish before this deadline.
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatalf("solo node not leader within 900ms: %v", err)
	}
	if err := n.AddVoter("other", "127.0.0.1:1", time.Second); !errors.Is(err, ErrSolo) {
		t.Fatalf("AddVoter on a solo node = %v, want ErrSolo", err)
	}
}
