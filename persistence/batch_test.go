package persistence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

func openBatched(t *testing.T, path string, interval time.Duration, entries uint64) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "fsm.db")
	}
	s, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond, InitialMmapSize: 1 << 20,
		CommitInterval: interval, CommitEntries: entries})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func putOne(index uint64) func(tx *Tx) error {
	return func(tx *Tx) error {
		return tx.PutInstance(key("ns", "g", "svc"), inst("10.0.0.1", int(index), "c"))
	}
}

// copyFile copies what is on disk now: the store as of its last commit.
func copyFile(t *testing.T, from string) string {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return to
}

func instanceCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.View(func(tx *Tx) error {
		_, ni, err := tx.Counts()
		n = ni
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// An open batch is read by View and stays off the disk until it is committed.
func TestBatchReadsSeeUncommittedUpdates(t *testing.T) {
	s := openBatched(t, "", time.Hour, 1000)
	for i := uint64(1); i <= 5; i++ {
		update(t, s, i, putOne(i))
	}
	if n := instanceCount(t, s); n != 5 {
		t.Fatalf("View sees %d instances, want 5", n)
	}
	if idx, _ := s.Applied(); idx != 5 {
		t.Fatalf("Applied = %d, want 5", idx)
	}
	if idx, _ := s.Durable(); idx != 0 {
		t.Fatalf("Durable = %d before any commit, want 0", idx)
	}
	if c := s.Stats().Commits; c != 0 {
		t.Fatalf("%d commits before the batch closed", c)
	}

	onDisk := openStore(t, copyFile(t, s.Path()))
	if n := instanceCount(t, onDisk); n != 0 {
		t.Fatalf("the file holds %d instances before the commit, want 0", n)
	}

	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if idx, _ := s.Durable(); idx != 5 {
		t.Fatalf("Durable = %d after Flush, want 5", idx)
	}
	if c := s.Stats().Commits; c != 1 {
		t.Fatalf("%d commits for one batch, want 1", c)
	}
	after := openStore(t, copyFile(t, s.Path()))
	if n := instanceCount(t, after); n != 5 {
		t.Fatalf("the file holds %d instances after the commit, want 5", n)
	}
	if idx, _ := after.Applied(); idx != 5 {
		t.Fatalf("the file records applied index %d, want 5", idx)
	}
}

func TestBatchCommitsAfterEntries(t *testing.T) {
	s := openBatched(t, "", time.Hour, 3)
	update(t, s, 1, putOne(1))
	update(t, s, 2, putOne(2))
	if idx, _ := s.Durable(); idx != 0 {
		t.Fatalf("Durable = %d, want 0 before the batch spans 3 indexes", idx)
	}
	update(t, s, 3, putOne(3))
	if idx, _ := s.Durable(); idx != 3 {
		t.Fatalf("Durable = %d, want 3 once the batch spans 3 indexes", idx)
	}
	if c := s.Stats().Commits; c != 1 {
		t.Fatalf("%d commits, want 1", c)
	}
}

func TestBatchCommitsAfterInterval(t *testing.T) {
	s := openBatched(t, "", 20*time.Millisecond, 1000)
	update(t, s, 1, putOne(1))
	update(t, s, 2, putOne(2))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if idx, _ := s.Durable(); idx == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch was not committed within 5s of a 20ms interval")
		}
		time.Sleep(time.Millisecond)
	}
	if c := s.Stats().Commits; c != 1 {
		t.Fatalf("%d commits, want 1", c)
	}
}

func TestBatchCloseCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	s := openBatched(t, path, time.Hour, 1000)
	update(t, s, 1, putOne(1))
	update(t, s, 2, putOne(2))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := openStore(t, path)
	if idx, _ := re.Applied(); idx != 2 {
		t.Fatalf("reopened at %d, want 2", idx)
	}
	if n := instanceCount(t, re); n != 2 {
		t.Fatalf("reopened with %d instances, want 2", n)
	}
}

func TestBatchSnapshotHoldsUncommitted(t *testing.T) {
	s := openBatched(t, "", time.Hour, 1000)
	update(t, s, 1, putOne(1))
	update(t, s, 2, putOne(2))
	sn, err := s.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	if h := sn.Header(); h.Index != 2 || h.Instances != 2 {
		t.Fatalf("snapshot at index %d with %d instances, want 2 and 2", h.Index, h.Instances)
	}
	if idx, _ := s.Durable(); idx != 2 {
		t.Fatalf("Durable = %d after OpenSnapshot, want 2", idx)
	}
}

// A failed Update inside a batch that holds answered Updates loses them from this
// process; the store then refuses to go on until it is reopened (and the log replayed).
func TestBatchFailureRefusesLaterUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	s := openBatched(t, path, time.Hour, 1000)
	update(t, s, 1, putOne(1))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	update(t, s, 2, putOne(2))
	boom := errors.New("boom")
	if err := s.Update(3, 1, func(tx *Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if idx, _ := s.Applied(); idx != 1 {
		t.Fatalf("Applied = %d after the rollback, want the durable 1", idx)
	}
	err := s.Update(4, 1, putOne(4))
	if !errors.Is(err, ErrBatchLost) {
		t.Fatalf("Update after a lost batch = %v, want ErrBatchLost", err)
	}
	// Recover answers what the file holds; the caller applies the rest again.
	if idx, _ := s.Recover(); idx != 1 {
		t.Fatalf("Recover = %d, want the durable 1", idx)
	}
	update(t, s, 2, putOne(2))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	re := openStore(t, path)
	if idx, _ := re.Applied(); idx != 2 {
		t.Fatalf("reopened at %d, want 2", idx)
	}
}

// Without answered Updates in the batch a failure is only that Update's, as without
// batching.
func TestBatchFailureOfFirstUpdateIsLocal(t *testing.T) {
	s := openBatched(t, "", time.Hour, 1000)
	if err := s.Update(1, 1, func(tx *Tx) error { return errors.New("boom") }); err == nil {
		t.Fatal("Update succeeded")
	}
	update(t, s, 2, putOne(2))
	if n := instanceCount(t, s); n != 1 {
		t.Fatalf("%d instances, want 1", n)
	}
}

func TestViewInsideBatchIsReadOnly(t *testing.T) {
	s := openBatched(t, "", time.Hour, 1000)
	update(t, s, 1, putOne(1))
	err := s.View(func(tx *Tx) error {
		return tx.PutService(naming.NewService(key("ns", "g", "other"), false))
	})
	if !errors.Is(err, errReadOnly) {
		t.Fatalf("write in View = %v, want errReadOnly", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		_, err := tx.DeleteInstance(key("ns", "g", "svc"), "10.0.0.1#1#c")
		return err
	})
	if !errors.Is(err, errReadOnly) {
		t.Fatalf("write in View = %v, want errReadOnly", err)
	}
}

func TestRestoreCommitsOpenBatchFirst(t *testing.T) {
	src := openStore(t, "")
	update(t, src, 7, putOne(7))
	sn, err := src.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()

	s := openBatched(t, "", time.Hour, 1000)
	update(t, s, 1, putOne(1))
	update(t, s, 2, putOne(2))
	if err := s.Restore(strings.NewReader(buf.String())); err != nil {
		t.Fatal(err)
	}
	if idx, _ := s.Applied(); idx != 7 {
		t.Fatalf("Applied = %d after restore, want 7", idx)
	}
	update(t, s, 8, putOne(8))
	if n := instanceCount(t, s); n != 2 {
		t.Fatalf("%d instances, want 2 (the snapshot's and the one after)", n)
	}
}

func TestWaitAppliedWakesOnUpdate(t *testing.T) {
	s := openBatched(t, "", time.Hour, 1000)
	done := make(chan bool)
	go func() { done <- s.WaitApplied(context.Background(), 3, 10*time.Second) }()
	for i := uint64(1); i <= 3; i++ {
		update(t, s, i, putOne(i))
	}
	if !<-done {
		t.Fatal("WaitApplied gave up although index 3 was applied")
	}
	if s.WaitApplied(context.Background(), 4, 10*time.Millisecond) {
		t.Fatal("WaitApplied reported index 4, never applied")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s.WaitApplied(ctx, 4, time.Minute) {
		t.Fatal("WaitApplied reported index 4 after its context ended")
	}
}
