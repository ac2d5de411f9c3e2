package raftnode

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// observationBuffer sizes the observer channel. raft drops observations when it is full
// (the observer is non-blocking so raft never waits on us); that is harmless because
// each observation is only a prompt to re-read raft's state.
const observationBuffer = 64

// waitLeaderPoll is WaitLeader's fallback re-check interval, in case a prompt is lost.
const waitLeaderPoll = 100 * time.Millisecond

// startObserver registers a non-blocking raft observer for state and leader changes and
// starts the goroutine that turns them into LeaderCh values and WaitLeader wake-ups. The
// goroutine is owned by the Node and ends in Shutdown.
func (n *Node) startObserver() {
	obsCh := make(chan raft.Observation, observationBuffer)
	n.observer = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.RaftState, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)

	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		last := false
		check := func() {
			// Level-triggered: read the state now rather than trusting the observation,
			// so a dropped or stale observation cannot leave a wrong value behind. Any
			// observation dropped because the buffer was full is followed by the
			// processing of a buffered one, which re-reads the state.
			cur := n.raft.State() == raft.Leader
			if cur != last {
				last = cur
				n.publishLeader(cur)
				n.logger.Info("leadership changed", "leader", cur, "term", n.raft.CurrentTerm())
			}
			n.notifyChanged()
		}
		check() // state before the observer was registered
		for {
			select {
			case <-obsCh:
				check()
			case <-n.stopCh:
				return
			}
		}
	}()
}

// publishLeader puts v in leaderCh, replacing an unread older value so the sender never
// blocks and the reader always sees the newest state.
func (n *Node) publishLeader(v bool) {
	for {
		select {
		case n.leaderCh <- v:
			return
		default:
		}
		select {
		case <-n.leaderCh:
		default:
		}
	}
}

// notifyChanged wakes every WaitLeader.
func (n *Node) notifyChanged() {
	n.mu.Lock()
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

func (n *Node) changedCh() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// LeaderCh delivers true when this node becomes leader and false when it stops being
// leader. It has capacity 1 and holds only the newest value: a slow reader may miss a
// short-lived flip but never reads a stale state last. It is meant for one reader and is
// never closed.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// WaitLeader waits until a leader (any node) is known, the context is done, or the node
// shuts down.
func (n *Node) WaitLeader(ctx context.Context) error {
	ticker := time.NewTicker(waitLeaderPoll)
	defer ticker.Stop()
	for {
		// Take the channel before checking, so a change after the check still wakes us.
		changed := n.changedCh()
		if id, _ := n.Leader(); id != "" {
			return nil
		}
		select {
		case <-n.stopCh:
			return fmt.Errorf("%w: wait for leader", ErrShutdown)
		default:
		}
		select {
		case <-changed:
		case <-ticker.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: wait for leader: %w", ErrNoLeader, ctx.Err())
		case <-n.stopCh:
			return fmt.Errorf("%w: wait for leader", ErrShutdown)
		}
	}
}
