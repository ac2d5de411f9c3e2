package raftnode

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/nodeauth"
)

// counterFSM is a small raft.BatchingFSM: commands "incr:<key>" count per key and answer
// the new count; "block:<key>" does the same after waiting for gate. Like Roster's FSM it
// keeps its applied index and skips entries at or below it, so the same instance reused
// across a restart plays the part of an on-disk FSM.
type counterFSM struct {
	mu       sync.Mutex
	counts   map[string]int
	applied  uint64
	seen     []uint64 // index of every log handed to the FSM, skipped ones included
	restores int
	maxBatch int

	gate chan struct{} // closed to let "block:" commands through; nil = never blocks
}

func newCounterFSM() *counterFSM { return &counterFSM{counts: map[string]int{}} }

var _ raft.BatchingFSM = (*counterFSM)(nil)

func (f *counterFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *counterFSM) ApplyBatch(logs []*raft.Log) []any {
	// Wait for the gate outside the lock so the test can read state meanwhile.
	for _, l := range logs {
		if l.Type == raft.LogCommand && strings.HasPrefix(string(l.Data), "block:") && f.gate != nil {
			<-f.gate
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxBatch = max(f.maxBatch, len(logs))
	out := make([]any, len(logs))
	for i, l := range logs {
		f.seen = append(f.seen, l.Index)
		if l.Index <= f.applied {
			continue
		}
		f.applied = l.Index
		if l.Type != raft.LogCommand {
			continue
		}
		_, key, ok := strings.Cut(string(l.Data), ":")
		if !ok {
			panic(fmt.Sprintf("counterFSM: bad command %q", l.Data))
		}
		f.counts[key]++
		out[i] = f.counts[key]
	}
	return out
}

type counterSnapshot struct {
	Counts  map[string]int
	Applied uint64
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := counterSnapshot{Counts: map[string]int{}, Applied: f.applied}
	for k, v := range f.counts {
		s.Counts[k] = v
	}
	return s, nil
}

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s counterSnapshot) Release() {}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s counterSnapshot
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts, f.applied = s.Counts, s.Applied
	f.restores++
	return nil
}

func (f *counterFSM) Applied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *counterFSM) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

// takeSeen returns and clears the indexes handed to the FSM so far.
func (f *counterFSM) takeSeen() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

func (f *counterFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// testLogger writes to t.Log until the test ends (raft's goroutines may outlive a
// failing test; logging after the end would panic). Level from ROSTER_TEST_LOG (default
// warn).
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// clusterTimeout is the Raft heartbeat, election and lease timeout of the tests that run
// several voters. At 100 ms a machine under load (other test binaries, load average
// 15+) stalled a leader's heartbeats past it often: leadership moved in the middle of
// AddVoter, Restore, Apply and TransferLeadership, which these tests expect of one
// stable leader. Production's 1 s rides over such stalls; a lone voter keeps the fast
// timing of testConfig, since it needs nobody's heartbeat.
var clusterTimeout = flag.Duration("cluster-raft-timeout", time.Second, "Raft timeouts of the multi-voter tests")

// withClusterTiming gives cfg the timeouts of a member of a multi-voter test cluster.
func withClusterTiming(cfg *Config) {
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = *clusterTimeout, *clusterTimeout, *clusterTimeout
}

// testConfig is a fast-timing configuration on a free loopback port.
func testConfig(t *testing.T, id, dir string) Config {
	t.Helper()
	return Config{
		NodeID:             id,
		RaftAddr:           "127.0.0.1:0",
		DataDir:            dir,
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		Logger:             testLogger(t),
		Credential:         testCredential,
	}
}

// testCredential is the cluster key every node of these tests shares.
var testCredential = func() *nodeauth.Credential {
	c, err := nodeauth.NewKey([]byte("raftnode tests share this cluster key of 32+ bytes"))
	if err != nil {
		panic(err)
	}
	return c
}()

// startNode starts a node and shuts it down at the end of the test.
func startNode(t *testing.T, cfg Config, fsm raft.FSM) *Node {
	t.Helper()
	n, err := New(cfg, fsm)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.NodeID, err)
		}
	})
	return n
}

// waitFor polls cond until it holds or the timeout passes; what names the condition.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// waitSelfLeader waits until n is leader.
func waitSelfLeader(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatalf("WaitLeader(%s): %v", n.ID(), err)
	}
	waitFor(t, 5*time.Second, n.ID()+" to be leader", n.IsLeader)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustApply(t *testing.T, n *Node, cmd string) any {
	t.Helper()
	resp, err := n.Apply(ctxTimeout(t, 5*time.Second), []byte(cmd))
	if err != nil {
		t.Fatalf("Apply(%q) on %s: %v", cmd, n.ID(), err)
	}
	return resp
}
