package raftnode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/testsupport/freeport"
)

// counterStream is a counterFSM snapshot stream, as a backup file of its state would be.
func counterStream(t *testing.T, counts map[string]int, applied uint64) []byte {
	t.Helper()
	b, err := json.Marshal(counterSnapshot{Counts: counts, Applied: applied})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// threeNodes starts a three-voter cluster and returns the nodes, the FSMs and the leader.
func threeNodes(t *testing.T) ([]*Node, []*counterFSM, *Node) {
	t.Helper()
	fsms := []*counterFSM{newCounterFSM(), newCounterFSM(), newCounterFSM()}
	nodes := make([]*Node, 3)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1), t.TempDir())
		cfg.Bootstrap = i == 0
		cfg.FSMAppliedIndex = fsms[i].Applied
		withClusterTiming(&cfg)
		nodes[i] = startNode(t, cfg, fsms[i])
	}
	waitSelfLeader(t, nodes[0])
	for _, n := range nodes[1:] {
		if err := nodes[0].AddVoter(n.ID(), n.Addr(), 5*time.Second); err != nil {
			t.Fatalf("AddVoter(%s): %v", n.ID(), err)
		}
	}
	return nodes, fsms, nodes[0]
}

// TestRestoreInstallsOnEveryMember restores a snapshot whose index is far past the
// cluster's log: every member takes the restored state, and the next command applies
// on every member (none skips it as already applied).
func TestRestoreInstallsOnEveryMember(t *testing.T) {
	nodes, fsms, leader := threeNodes(t)
	for range 10 {
		mustApply(t, leader, "incr:a")
	}
	last := leader.Stats().LastLogIndex

	const snapIndex = 5000
	stream := counterStream(t, map[string]int{"b": 7}, snapIndex)
	if err := nodes[1].Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(stream), int64(len(stream)), snapIndex); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Restore on a follower = %v, want ErrNotLeader", err)
	}
	if err := leader.Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(stream), int64(len(stream)), snapIndex); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := leader.Stats().LastSnapshotIndex; got != snapIndex+1 {
		t.Errorf("raft snapshot index after restore = %d, want %d (past the snapshot's own index; the log ended at %d)", got, snapIndex+1, last)
	}
	for i, f := range fsms {
		waitFor(t, 10*time.Second, fmt.Sprintf("member %d to take the restored state", i+1), func() bool {
			return f.count("b") == 7 && f.count("a") == 0
		})
	}
	if got := mustApply(t, leader, "incr:b"); got != 8 {
		t.Fatalf("Apply after restore = %v, want 8", got)
	}
	for i, f := range fsms {
		waitFor(t, 10*time.Second, fmt.Sprintf("member %d to apply the entry after the restore", i+1), func() bool { return f.count("b") == 8 })
	}
}

// TestRestoreBelowTheLogThenRestart restores a snapshot whose index is below the log's
// end, then restarts before and after a new entry: the FSM's index (the snapshot's) is
// below Raft's snapshot index, so the first restart restores it from the Raft snapshot
// again; after a new entry it is current and the restore is skipped.
func TestRestoreBelowTheLogThenRestart(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.FSMAppliedIndex = fsm.Applied
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	for range 20 {
		mustApply(t, n, "incr:a")
	}
	stream := counterStream(t, map[string]int{"a": 3}, 3)
	if err := n.Restore(ctxTimeout(t, 10*time.Second), bytes.NewReader(stream), int64(len(stream)), 3); err != nil {
		t.Fatal(err)
	}
	if fsm.count("a") != 3 || fsm.Applied() != 3 {
		t.Fatalf("after restore: count %d applied %d, want 3 and 3", fsm.count("a"), fsm.Applied())
	}
	if n.Stats().LastSnapshotIndex <= 20 {
		t.Fatalf("raft snapshot index %d not past the log", n.Stats().LastSnapshotIndex)
	}
	restart := func() {
		t.Helper()
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		cfg.RaftAddr = n.Addr()
		n = startNode(t, cfg, fsm)
		waitSelfLeader(t, n)
		if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	if fsm.restoreCount() != 2 || fsm.count("a") != 3 {
		t.Fatalf("first restart: %d restores, count %d; want the Raft snapshot restored again (2) and 3", fsm.restoreCount(), fsm.count("a"))
	}
	if got := mustApply(t, n, "incr:a"); got != 4 {
		t.Fatalf("Apply = %v, want 4", got)
	}
	restart()
	if fsm.restoreCount() != 2 || fsm.count("a") != 4 {
		t.Fatalf("second restart: %d restores, count %d; want no new restore and 4", fsm.restoreCount(), fsm.count("a"))
	}
}

// freeAddr is a loopback address that was free a moment ago (Seed needs the address
// the node will bind, before it binds it), below the ephemeral range so that no
// outgoing connection takes it meanwhile.
func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freeport.Pick(t))
}

// TestSeedStartsFromTheSnapshot builds a data dir with Seed and starts a node on it,
// once with an FSM that already holds the data at the snapshot's index (what an offline
// restore writes beside it) and once with an empty FSM.
func TestSeedStartsFromTheSnapshot(t *testing.T) {
	const index, term = 100, 4
	stream := counterStream(t, map[string]int{"x": 3}, index)
	for _, prefilled := range []bool{true, false} {
		t.Run(fmt.Sprintf("fsm prefilled %v", prefilled), func(t *testing.T) {
			dir := t.TempDir()
			addr := freeAddr(t)
			if err := Seed(dir, "n1", addr, index, term, bytes.NewReader(stream), int64(len(stream))); err != nil {
				t.Fatal(err)
			}
			if err := Seed(dir, "n1", addr, index, term, bytes.NewReader(stream), int64(len(stream))); err == nil {
				t.Fatal("a second Seed into the same dir succeeded")
			}
			fsm := newCounterFSM()
			if prefilled {
				fsm.counts["x"], fsm.applied = 3, index
			}
			cfg := testConfig(t, "n1", dir)
			cfg.RaftAddr = addr
			cfg.Bootstrap = true // ignored: the dir has state
			cfg.Solo = true
			cfg.FSMAppliedIndex = fsm.Applied
			n := startNode(t, cfg, fsm)
			waitSelfLeader(t, n)
			wantRestores := 1
			if prefilled {
				wantRestores = 0
			}
			if fsm.restoreCount() != wantRestores {
				t.Errorf("FSM restored %d times, want %d", fsm.restoreCount(), wantRestores)
			}
			if got := mustApply(t, n, "incr:x"); got != 4 {
				t.Fatalf("first Apply = %v, want 4 (an entry at or below %d would be skipped)", got, index)
			}
			st := n.Stats()
			if st.LastLogIndex <= index || st.Term <= term {
				t.Errorf("stats %+v: want the log past %d and the term past %d", st, index, term)
			}
			servers, err := n.Servers()
			if err != nil || len(servers) != 1 || servers[0].ID != "n1" || servers[0].Address != addr || !servers[0].Voter {
				t.Errorf("configuration %+v, %v", servers, err)
			}
		})
	}
}

// TestCompactionAndRestart runs past the snapshot threshold: Raft takes a snapshot
// and compacts raft.db, and a restart, with the FSM kept or lost, ends in the same
// state and takes new entries.
func TestCompactionAndRestart(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.FSMAppliedIndex = fsm.Applied
	cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 50, 20*time.Millisecond, 10
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	for range 200 {
		mustApply(t, n, "incr:a")
	}
	waitFor(t, 10*time.Second, "an automatic snapshot and a compacted log", func() bool {
		first, err := n.store.FirstIndex()
		return err == nil && n.Stats().LastSnapshotIndex > 0 && first > 1
	})
	first, _ := n.store.FirstIndex()
	t.Logf("snapshot at %d, log now starts at %d, ends at %d", n.Stats().LastSnapshotIndex, first, n.Stats().LastLogIndex)
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	cfg.RaftAddr = n.Addr()

	n = startNode(t, cfg, fsm) // the FSM kept its state, as fsm.db does
	waitSelfLeader(t, n)
	if got := mustApply(t, n, "incr:a"); got != 201 {
		t.Fatalf("after restart: Apply = %v, want 201", got)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}

	lost := newCounterFSM() // the FSM's state is gone: snapshot plus the log's tail
	cfg.FSMAppliedIndex = lost.Applied
	n = startNode(t, cfg, lost)
	waitSelfLeader(t, n)
	if err := n.Barrier(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := mustApply(t, n, "incr:a"); got != 202 {
		t.Fatalf("after restart with an empty FSM: Apply = %v, want 202", got)
	}
}

// damagedDir runs a node that snapshots mid-way and leaves its data dir behind.
func damagedDir(t *testing.T) (dir string, applied uint64) {
	t.Helper()
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.FSMAppliedIndex = fsm.Applied
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)
	for range 300 {
		mustApply(t, n, "incr:"+strings.Repeat("k", 200))
	}
	if _, err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n, "incr:a")
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	return cfg.DataDir, fsm.Applied()
}

func snapshotDirOf(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, snapshotsDir))
	if err != nil || len(entries) != 1 {
		t.Fatalf("snapshots: %v %v", entries, err)
	}
	return filepath.Join(dir, snapshotsDir, entries[0].Name())
}

// TestNewRefusesDamagedFiles damages raft.db and the Raft snapshot in ways a crash or a
// bad disk does: New must fail at once with an error naming the file, and never start
// on what is left.
func TestNewRefusesDamagedFiles(t *testing.T) {
	overwrite := func(t *testing.T, path string, at int64, b []byte) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}
	page := int64(os.Getpagesize())
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) (file string)
		ahead  bool // the FSM claims more than the log holds
	}{
		{"raft.db truncated", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, raftDBName)
			if err := os.Truncate(p, 3*page); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"raft.db pages scribbled over", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, raftDBName)
			fi, _ := os.Stat(p)
			overwrite(t, p, 2*page, bytes.Repeat([]byte{0xab}, int(fi.Size()-2*page)))
			return p
		}, false},
		{"raft.db both meta pages", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, raftDBName)
			overwrite(t, p, 64, []byte{0xff})
			overwrite(t, p, page+64, []byte{0xff})
			return p
		}, false},
		{"raft.db replaced by an empty log", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, raftDBName)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(dir, snapshotsDir)); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"snapshot state flipped", func(t *testing.T, dir string) string {
			p := filepath.Join(snapshotDirOf(t, dir), snapshotStateFile)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			overwrite(t, p, int64(len(b)/2), []byte{b[len(b)/2] ^ 0x01})
			return p
		}, false},
		{"snapshot state truncated", func(t *testing.T, dir string) string {
			p := filepath.Join(snapshotDirOf(t, dir), snapshotStateFile)
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"snapshot meta.json garbled", func(t *testing.T, dir string) string {
			p := filepath.Join(snapshotDirOf(t, dir), snapshotMetaFile)
			overwrite(t, p, 0, []byte("{{{"))
			return p
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, applied := damagedDir(t)
			file := tt.damage(t, dir)
			cfg := testConfig(t, "n1", dir)
			cfg.Bootstrap = true
			fsm := newCounterFSM()
			if tt.ahead {
				fsm.applied = applied
			}
			cfg.FSMAppliedIndex = fsm.Applied
			start := time.Now()
			n, err := New(cfg, fsm)
			if err == nil {
				_ = n.Shutdown()
				t.Fatalf("New started on a damaged dir (%s)", file)
			}
			t.Logf("New: %v (%v)", err, time.Since(start).Round(time.Millisecond))
			if !strings.Contains(err.Error(), file) && !strings.Contains(err.Error(), filepath.Dir(file)) {
				t.Errorf("error %q names neither %s nor its directory", err, file)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusal took %v", d)
			}
		})
	}
}
