package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/raftnode"
)

// concurrentWrites registers writes instances at once, half through the leader and half
// through a follower; every fourth goes into an ephemeral service and must be refused
// with its own error. It returns false when leadership moved meanwhile (some outcome
// unknown, or the roles changed), so the caller tries again.
func concurrentWrites(t *testing.T, ctx context.Context, leader, follower *testNode, round, writes int) bool {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, writes)
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := leader
			if i%2 == 1 && follower != nil {
				n = follower
			}
			in := instance(fmt.Sprintf("10.7.%d.%d", round, i), 9000+i)
			k := ordersKey
			if i%4 == 3 {
				k = ephKey
			}
			res, err := n.c.Apply(ctx, register(t, k, in))
			if e, ok := res.(error); ok && err == nil {
				err = e // the leader's own FSM answers a refusal as the response
			}
			switch {
			case lostLeadership(err):
				errs[i] = err
			case k == ephKey:
				var ne *naming.Error
				if !errors.As(err, &ne) || *ne != *naming.ErrEphemeralService(ephKey) {
					errs[i] = fmt.Errorf("write %d into the ephemeral service on %s: %v, want its own refusal", i, n.id, err)
				}
			case err != nil:
				errs[i] = err
			case n.stored(k, in) == nil:
				errs[i] = fmt.Errorf("write %d not applied on %s when its Apply returned", i, n.id)
			}
		}()
	}
	wg.Wait()
	moved := !leader.raft.IsLeader() || (follower != nil && follower.raft.IsLeader())
	for _, err := range errs {
		switch {
		case errors.Is(err, raftnode.ErrUnknownOutcome) || (moved && lostLeadership(err)):
			moved = true
		case err != nil:
			t.Fatal(err)
		}
	}
	return !moved
}

// Concurrent writers share log entries: the Raft log grows by far fewer entries than
// there are commands, and each writer still gets its own answer (refusals among
// successes). On one node nothing can move the leadership.
func TestConcurrentWritesShareLogEntries(t *testing.T) {
	testWritesShareLogEntries(t, 1, 400)
}

// The same through a follower: its forwarded batch and the leader's own writers fold
// into the same entries.
func TestForwardedWritesShareLogEntries(t *testing.T) {
	testWritesShareLogEntries(t, 3, 100)
}

func testWritesShareLogEntries(t *testing.T, nodes, writes int) {
	tc := newCluster(t, nodes, nodeOptions{})
	ctx := ctxFor(t, 60*time.Second)
	if _, err := apply(t, ctx, tc.leader(), encode(t, fsm.PutService{Service: *naming.NewService(ephKey, true), Mode: fsm.PutUpsert})); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= retries; attempt++ {
		leader := tc.leader()
		eventually(t, formTimeout, leader.c.foldAllowed.Load)
		var follower *testNode
		if nodes > 1 {
			follower = tc.followers(leader)[0]
		}
		logBefore, fsmBefore, foldBefore := leader.raft.LogStats(), leader.fsm.Stats(), leader.c.FoldStats()
		if !concurrentWrites(t, ctx, leader, follower, attempt, writes) {
			t.Logf("attempt %d: leadership moved during the writes; again", attempt)
			continue
		}
		entries := leader.raft.LogStats().Entries - logBefore.Entries
		commands := leader.fsm.Stats().Commands - fsmBefore.Commands
		folded := leader.c.FoldStats()
		t.Logf("%d commands in %d log entries; %d batch entries held %d commands",
			commands, entries, folded.Entries-foldBefore.Entries, folded.Commands-foldBefore.Commands)
		if commands < uint64(writes) {
			t.Fatalf("the leader applied %d commands for %d writes", commands, writes)
		}
		if entries*2 > commands || folded.Entries == foldBefore.Entries {
			t.Fatalf("%d commands took %d log entries: the writes were not folded", commands, entries)
		}
		return
	}
	t.Fatalf("no leader kept its role for %d tries", retries)
}

// While a member has not said it applies batches (an older build), the leader writes
// every command as an entry of its own, which that member can apply; and it refuses
// to add a new voter that does not say so.
func TestNoFoldingWhileAMemberCannotApplyBatches(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	ctx := ctxFor(t, 60*time.Second)
	if _, err := apply(t, ctx, tc.leader(), encode(t, fsm.PutService{Service: *naming.NewService(ephKey, true), Mode: fsm.PutUpsert})); err != nil {
		t.Fatal(err)
	}
	const writes = 100
	for attempt := 1; attempt <= retries; attempt++ {
		leader := tc.leader()
		follower := tc.followers(leader)[0]
		// The follower's announcements no longer arrive; the leader last heard it as an
		// older build.
		leader.setFault(PathJoin, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "announcements dropped by the test", http.StatusServiceUnavailable)
		})
		leader.c.noteAppliesBatches(follower.id, false)
		if leader.c.foldAllowed.Load() {
			t.Fatal("the leader folds while a member has not said it applies batches")
		}
		logBefore, fsmBefore, foldBefore := leader.raft.LogStats(), leader.fsm.Stats(), leader.c.FoldStats()
		if !concurrentWrites(t, ctx, leader, follower, attempt, writes) {
			leader.clearFault()
			t.Logf("attempt %d: leadership moved during the writes; again", attempt)
			continue
		}
		entries := leader.raft.LogStats().Entries - logBefore.Entries
		commands := leader.fsm.Stats().Commands - fsmBefore.Commands
		if folded := leader.c.FoldStats(); folded != foldBefore {
			t.Fatalf("batches proposed: %+v → %+v", foldBefore, folded)
		}
		if entries < commands || commands < writes {
			t.Fatalf("%d commands in %d log entries, want one entry each", commands, entries)
		}

		_, err := leader.c.Join(JoinRequest{ID: "old", RaftAddr: deadAddr, HTTPAddr: deadAddr})
		if !errors.Is(err, ErrBatchesUnsupported) {
			t.Fatalf("Join of a new node that does not apply batches: %v", err)
		}
		leader.clearFault()
		eventually(t, formTimeout, leader.c.foldAllowed.Load)
		return
	}
	t.Fatalf("no leader kept its role for %d tries", retries)
}

// A member never forwards a batch: the leader refuses one before proposing it.
func TestForwardedBatchIsRefused(t *testing.T) {
	tc := newCluster(t, 1, nodeOptions{})
	leader := tc.leader()
	cmd := fsm.AppendBatch(nil, [][]byte{register(t, ordersKey, instance("10.8.0.1", 80))})
	a := leader.c.applyHere(ctxFor(t, 10*time.Second), cmd)
	if a.Status != http.StatusBadRequest || a.Reply == nil || a.Reply.Answer.Error == nil {
		t.Fatalf("forwarded batch answered %+v", a)
	}
	if leader.stored(ordersKey, instance("10.8.0.1", 80)) != nil {
		t.Fatal("the forwarded batch was applied")
	}
}
