package raftnode

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConsistentReadWaitsForABarrierAfterItArrived: concurrent reads all see every
// write applied before they were called and share Barriers (fewer log entries than
// reads).
func TestConsistentReadWaitsForABarrierAfterItArrived(t *testing.T) {
	fsm := newCounterFSM()
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	n := startNode(t, cfg, fsm)
	waitSelfLeader(t, n)

	const readers = 64
	var wg sync.WaitGroup
	var written atomic.Int64 // writes acked so far
	errs := make(chan error, readers)
	before := n.raft.LastIndex()
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 0 {
				mustApply(t, n, "incr:k")
				written.Add(1)
			}
			want := int(written.Load())
			if err := n.ConsistentRead(ctxTimeout(t, 5*time.Second)); err != nil {
				errs <- err
				return
			}
			if got := fsm.count("k"); got < want {
				t.Errorf("read answered with %d writes applied, want at least the %d acked when it was called", got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("ConsistentRead: %v", err)
	}
	barriers := n.raft.LastIndex() - before - readers/4
	if barriers == 0 || barriers >= readers {
		t.Errorf("%d Barriers for %d reads: want at least one, shared", barriers, readers)
	}
	t.Logf("%d Barriers for %d reads", barriers, readers)
}
