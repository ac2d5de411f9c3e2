package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Errors returned by Apply, Barrier, VerifyLeader and the membership calls. They wrap
// raft's own error where there is one, so errors.Is works with both.
var (
	// ErrNotLeader: this node is not the leader. The command was not written; send it to
	// the leader (see Leader).
	ErrNotLeader = errors.New("raftnode: not the leader")
	// ErrNoLeader: no leader can take the command right now (none elected yet, a
	// leadership transfer in progress, or the leader's queue is full). The command was not
	// written; retry later.
	ErrNoLeader = errors.New("raftnode: no leader")
	// ErrUnknownOutcome: the command was handed to Raft but its fate is unknown (leadership
	// lost, deadline passed, or shutdown while it was in flight). It may still be committed
	// and applied; callers retry only idempotent commands.
	ErrUnknownOutcome = errors.New("raftnode: outcome unknown")
	// ErrShutdown: the node is shut down; the command was not written.
	ErrShutdown = errors.New("raftnode: node is shut down")
)

// deadline derives the context bounding one call: the caller's deadline or ApplyTimeout,
// whichever comes first. It also returns the time left, which raft uses as its enqueue
// timeout; <= 0 means the context is already done.
func (n *Node) deadline(ctx context.Context) (context.Context, context.CancelFunc, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, n.applyTimeout)
	dl, _ := ctx.Deadline() // always set by WithTimeout
	left := time.Until(dl)
	if ctx.Err() != nil {
		left = 0
	}
	return ctx, cancel, left
}

// errStopped is await's cause when Shutdown ended the wait. It is deliberately not
// ErrShutdown: that one promises the command was not written.
var errStopped = errors.New("node shut down while waiting")

// await waits for f, the context, or Shutdown. resolved is true when f answered, with err
// its error; otherwise err is ctx.Err() or errStopped.
//
// raft futures cannot be selected on, so f.Error() runs in a goroutine. It ends when raft
// answers the future, which it does for everything it dequeued; only an entry still in the
// buffered apply channel when raft shuts down is never answered, and its goroutine then
// stays parked for the life of the process (one per such entry, bounded by the buffer).
func (n *Node) await(ctx context.Context, f raft.Future) (resolved bool, err error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-n.stopCh:
		// raft answers what it had dequeued before Shutdown returns; prefer that answer.
		select {
		case err := <-done:
			return true, err
		default:
			return false, errStopped
		}
	}
}

// checkOpen refuses work once Shutdown has begun. raft's Apply, Barrier and VerifyLeader
// can still put a request into a buffered channel after raft has shut down (a select
// between the closed shutdown channel and free buffer space picks either), and nothing
// ever answers it; refusing here keeps that to calls racing with Shutdown itself.
func (n *Node) checkOpen(op string) error {
	select {
	case <-n.closingCh:
		return fmt.Errorf("%w: %s: %w", ErrShutdown, op, raft.ErrRaftShutdown)
	default:
		return nil
	}
}

// Apply proposes cmd and waits until it is committed and applied to the FSM, returning the
// FSM's response. The wait is bounded by ctx and ApplyTimeout.
//
// Errors: ErrNotLeader and ErrNoLeader mean cmd was not written; ErrUnknownOutcome means it
// may have been (see the sentinels); ErrShutdown means the node is shut down. A context
// already done before the call yields its own error (wrapped), and nothing is proposed.
func (n *Node) Apply(ctx context.Context, cmd []byte) (any, error) {
	ctx, cancel, left := n.deadline(ctx)
	defer cancel()
	if left <= 0 {
		// raft treats a zero timeout as "wait forever"; never hand it one.
		return nil, fmt.Errorf("raftnode: apply: %w", ctx.Err())
	}
	if err := n.checkOpen("apply"); err != nil {
		return nil, err
	}
	f := n.raft.Apply(cmd, left)
	resolved, err := n.await(ctx, f)
	if !resolved {
		return nil, fmt.Errorf("%w: waiting for apply: %w", ErrUnknownOutcome, err)
	}
	if err != nil {
		// Reading Index is safe here: raft wrote it before answering the future, and the
		// answer reached us over a channel.
		return nil, applyError("apply", err, f.Index())
	}
	return f.Response(), nil
}

// applyError translates the error of an answered future for a log entry (a command or a
// configuration change). index is the log index the leader gave the entry, 0 when it was
// never appended.
func applyError(op string, err error, index uint64) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		// Followers and candidates, and a leader stepping down, reject queued entries
		// without appending them.
		return fmt.Errorf("%w: %s: %w", ErrNotLeader, op, err)
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// The timeout only bounds the hand-off to raft's main loop (raft's Apply docs): the
		// entry never reached the log.
		return fmt.Errorf("%w: %s: %w", ErrNoLeader, op, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %s: %w", ErrUnknownOutcome, op, err)
	case errors.Is(err, raft.ErrRaftShutdown) && index == 0:
		return fmt.Errorf("%w: %s: %w", ErrShutdown, op, err)
	case index > 0:
		// Appended, then something failed (shutdown mid-apply, log store error): it may be
		// committed.
		return fmt.Errorf("%w: %s: %w", ErrUnknownOutcome, op, err)
	default:
		return fmt.Errorf("raftnode: %s: %w", op, err)
	}
}

// leaderError translates errors of operations without side effects (Barrier,
// VerifyLeader, reading the configuration, leadership transfer), where a lost leadership
// just means "not the leader".
func leaderError(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %s: %w", ErrNotLeader, op, err)
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %s: %w", ErrNoLeader, op, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %s: %w", ErrShutdown, op, err)
	default:
		return fmt.Errorf("raftnode: %s: %w", op, err)
	}
}

// waitError reports an unanswered wait of an operation without side effects.
func waitError(op string, err error) error {
	if errors.Is(err, errStopped) {
		return fmt.Errorf("%w: %s", ErrShutdown, op)
	}
	return fmt.Errorf("raftnode: %s: %w", op, err)
}

// Barrier waits until every entry before it is applied to the FSM. It must run on the
// leader; a new leader uses it before serving consistent reads. Bounded by ctx and
// ApplyTimeout.
func (n *Node) Barrier(ctx context.Context) error {
	ctx, cancel, left := n.deadline(ctx)
	defer cancel()
	if left <= 0 {
		return fmt.Errorf("raftnode: barrier: %w", ctx.Err())
	}
	if err := n.checkOpen("barrier"); err != nil {
		return err
	}
	resolved, err := n.await(ctx, n.raft.Barrier(left))
	if !resolved {
		return waitError("barrier", err)
	}
	if err != nil {
		return leaderError("barrier", err)
	}
	return nil
}

// VerifyLeader confirms with a quorum that this node is still the leader. Alone it is not
// a linearizable read: pair it with a Barrier issued in this leader's term. Bounded by ctx
// and ApplyTimeout.
func (n *Node) VerifyLeader(ctx context.Context) error {
	ctx, cancel, left := n.deadline(ctx)
	defer cancel()
	if left <= 0 {
		return fmt.Errorf("raftnode: verify leader: %w", ctx.Err())
	}
	if err := n.checkOpen("verify leader"); err != nil {
		return err
	}
	resolved, err := n.await(ctx, n.raft.VerifyLeader())
	if !resolved {
		return waitError("verify leader", err)
	}
	if err != nil {
		return leaderError("verify leader", err)
	}
	return nil
}
