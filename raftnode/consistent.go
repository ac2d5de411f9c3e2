package raftnode

import (
	"context"
	"fmt"
	"sync"
)

// ConsistentRead makes a following local read linearizable: it returns once a Barrier
// issued after the call has been committed by a quorum in this leader's term and
// applied. The commit confirms leadership for this read (no other leader can have
// completed a write before the call) and the apply covers everything committed before
// it. VerifyLeader is not enough for that: hashicorp/raft counts any AppendEntries
// answer that arrives after the verify began, including answers to requests sent
// before it, so a leader cut off a moment earlier could still confirm itself with
// answers that were already on the wire (chaos R3).
//
// Concurrent reads share Barriers: a read joins the next round, which is issued only
// after the running one ends, so every read waits for a Barrier begun after it arrived
// and at most one is in flight. Bounded by ctx and ApplyTimeout.
func (n *Node) ConsistentRead(ctx context.Context) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.checkOpen("consistent read"); err != nil {
		return err
	}
	round := n.reads.join(n)
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return fmt.Errorf("raftnode: consistent read: %w", ctx.Err())
	}
}

// readRounds coalesces consistent reads onto Barriers.
type readRounds struct {
	mu      sync.Mutex
	running bool
	// next is the round reads arriving now join; it is issued when the running one ends.
	next *readRound
}

// readRound is one Barrier shared by the reads that joined it before it was issued.
type readRound struct {
	done chan struct{} // closed once err is set
	err  error
}

// join returns the round a read arriving now waits for, issuing it at once when no
// round is running.
func (rs *readRounds) join(n *Node) *readRound {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.next == nil {
		rs.next = &readRound{done: make(chan struct{})}
	}
	round := rs.next
	if !rs.running {
		rs.running, rs.next = true, nil
		go rs.run(n, round)
	}
	return round
}

// run issues round's Barrier, then each round that was joined meanwhile, until none is
// waiting.
func (rs *readRounds) run(n *Node, round *readRound) {
	for round != nil {
		round.err = n.Barrier(context.Background())
		close(round.done)
		rs.mu.Lock()
		round, rs.next = rs.next, nil
		if round == nil {
			rs.running = false
		}
		rs.mu.Unlock()
	}
}
