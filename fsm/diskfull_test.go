package fsm

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/roster-registry/roster/persistence"
)

// TestApplyWaitsOutAFullDisk: a commit that fails with ENOSPC is retried until the disk
// has room, and the batch is then applied once, in full; it used to panic, and the
// restarted node panicked again on the same entry until space was freed (chaos R10).
func TestApplyWaitsOutAFullDisk(t *testing.T) {
	f := newFSM(t)
	f.diskFullRetry = time.Millisecond
	real := f.update
	fails := 3
	f.update = func(index, term uint64, fn func(tx *persistence.Tx) error) error {
		if fails > 0 {
			fails--
			// What bbolt returns when the file cannot grow: the transaction rolled back.
			return fmt.Errorf("persistence: commit fsm.db: %w", &fs.PathError{Op: "write", Path: "fsm.db", Err: syscall.ENOSPC})
		}
		return real(index, term, fn)
	}
	applyOK(t, f, logs(t, 1, register("full", "10.0.0.1", 80), register("full", "10.0.0.2", 80)))
	if fails != 0 {
		t.Fatalf("%d failing commits left: the apply did not retry", fails)
	}
	if idx, _ := f.Store().Applied(); idx != 2 {
		t.Fatalf("applied index %d after the retried batch, want 2", idx)
	}
}

// TestApplyPanicsOnOtherStoreErrors: any other failure of the store still stops the
// node: it cannot skip a committed entry.
func TestApplyPanicsOnOtherStoreErrors(t *testing.T) {
	f := newFSM(t)
	f.update = func(uint64, uint64, func(tx *persistence.Tx) error) error {
		return fmt.Errorf("persistence: commit fsm.db: %w", syscall.EIO)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on an I/O error")
		}
	}()
	f.ApplyBatch(logs(t, 1, register("eio", "10.0.0.1", 80)))
}

// TestApplyPutsBackALostBatch: with batched commits, a failed commit rolls back entries
// already answered (persistence.ErrBatchLost). The FSM applies them again ahead of the
// next batch, so the state is whole without a restart, and it is what a fresh FSM that
// applied every entry once holds.
func TestApplyPutsBackALostBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	store, err := persistence.Open(path, persistence.Options{OpenTimeout: 100 * time.Millisecond,
		InitialMmapSize: 1 << 20, CommitInterval: time.Hour, CommitEntries: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	f := New(store, nil)
	f.diskFullRetry = time.Millisecond

	applyOK(t, f, logs(t, 1, register("lost", "10.0.0.1", 80)))
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	applyOK(t, f, logs(t, 2, register("lost", "10.0.0.2", 80), register("lost", "10.0.0.3", 80)))
	// The open batch (entries 2 and 3, both answered) is lost, as on a failed commit.
	if err := store.Update(4, 1, func(*persistence.Tx) error { return errors.New("commit: no space left on device") }); err == nil {
		t.Fatal("the failing update succeeded")
	}
	if idx, _ := store.Applied(); idx != 1 {
		t.Fatalf("store at %d after losing its batch, want 1", idx)
	}
	applyOK(t, f, logs(t, 4, register("lost", "10.0.0.4", 80), deregister("lost", "10.0.0.1", 80)))

	want := newFSM(t)
	applyOK(t, want, logs(t, 1, register("lost", "10.0.0.1", 80)))
	applyOK(t, want, logs(t, 2, register("lost", "10.0.0.2", 80), register("lost", "10.0.0.3", 80)))
	applyOK(t, want, logs(t, 4, register("lost", "10.0.0.4", 80), deregister("lost", "10.0.0.1", 80)))
	if got, exp := dump(t, store), dump(t, want.Store()); !reflect.DeepEqual(got, exp) {
		t.Fatalf("after the lost batch was put back:\n got %+v\nwant %+v", got, exp)
	}
	// And it is durable: reopened from the file after a flush, the same state.
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, store); got.Index != 5 || got.Counts != dump(t, want.Store()).Counts {
		t.Fatalf("after flush: %+v", got)
	}
}
