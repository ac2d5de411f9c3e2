package fsm

import (
	"fmt"
	"io/fs"
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
