package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/raftnode"
)

// Group commit of the leader's writes. Each write used to be a log entry of its own;
// Raft already appends the entries queued together in one fsync, but every entry still
// costs its own log record, encoding, future and apply. The proposer folds the commands
// that arrive while its previous proposals are in flight into one fsm.Batch entry: the
// first command of a quiet moment leaves at once, alone (no timer, no added latency),
// and those that queue behind it leave together in the next entry, bounded in count
// and bytes. Writes forwarded by followers (PathApplyBatch, PathApply) go through the
// same proposer, so a follower's batch and the leader's own clients share entries.
//
// Each command keeps its own answer: the FSM applies a batch command by command in its
// transaction and answers a BatchResult, one response per command (a refusal touches
// only its own command). A command is answered only after its entry is applied, which
// is after it is in the fsynced log, exactly as when it was an entry of its own.
//
// Mixed versions: a server that does not know fsm.BatchType stops at the first batch
// entry (an unknown mandatory type stops its FSM, which panics: crashing beats
// diverging). So the leader folds only while every server of the configuration, voter
// or not, has said in its announcement (JoinRequest.AppliesBatches, sent every sync
// interval) that it applies batches; until then each command is an entry of its own,
// as before, which an older member applies. A rolling upgrade therefore folds from the
// moment the last member runs this build. The leader refuses to add a new member that
// does not say so (403, which an older build reads as "removed" and stops joining).
// Going back to an older build once batches were written is not possible: its log
// holds entries it cannot apply, and it stops at the first.

const (
	// maxFoldCommands and maxFoldBytes bound one batch entry. A command larger than
	// maxFoldBytes leaves alone.
	maxFoldCommands = 512
	maxFoldBytes    = 1 << 20
	// foldInFlight bounds the proposals waiting for Raft at once. The next batch is
	// formed when the log took an append, so while the FSM applies one batch the log
	// writes the next; the bound only matters when applying falls behind.
	foldInFlight = 4
)

// proposal states: a caller that gives up takes its command back only while no batch
// has taken it.
const (
	proposalQueued int32 = iota
	proposalTaken
	proposalAbandoned
)

type proposal struct {
	cmd   []byte
	state atomic.Int32
	done  chan forwardResult // buffered: the proposer never blocks on it
}

// proposer is the leader's folding queue (started on first use).
type proposer struct {
	c     *Cluster
	queue chan *proposal
	slots chan struct{} // one per proposal in flight
}

func (c *Cluster) proposerOf() *proposer {
	c.propOnce.Do(func() {
		inFlight := c.foldInFlight
		if inFlight <= 0 {
			inFlight = foldInFlight
		}
		c.prop = &proposer{c: c, queue: make(chan *proposal, 4*maxFoldCommands), slots: make(chan struct{}, inFlight)}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.prop.run()
		}()
	})
	return c.prop
}

// propose commits cmd on this node, which should be the leader, folded with the
// commands proposed beside it when every voter applies batches. Its errors are
// raftnode.Node.Apply's.
func (c *Cluster) propose(ctx context.Context, cmd []byte) (any, error) {
	if !c.foldAllowed.Load() || len(cmd) == 0 || cmd[0] == byte(fsm.BatchType) {
		return c.node.Apply(ctx, cmd)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("raftnode: apply: %w", err)
	}
	p := &proposal{cmd: cmd, done: make(chan forwardResult, 1)}
	pr := c.proposerOf()
	select {
	case pr.queue <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("raftnode: apply: %w", ctx.Err())
	case <-c.stop:
		return nil, fmt.Errorf("%w: apply: node stopping", raftnode.ErrShutdown)
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, fmt.Errorf("raftnode: apply: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: waiting for apply: %w", raftnode.ErrUnknownOutcome, ctx.Err())
	case <-c.stop:
		if p.state.CompareAndSwap(proposalQueued, proposalAbandoned) {
			return nil, fmt.Errorf("%w: apply: node stopping", raftnode.ErrShutdown)
		}
		return nil, fmt.Errorf("%w: waiting for apply: node stopping", raftnode.ErrUnknownOutcome)
	}
}

// run takes a free slot, then the next command and every one queued behind it (up to
// a batch), and proposes them; then it waits until the log has taken an append (or the
// proposal is answered) before it forms the next batch, so each batch gathers what
// arrived during one fsync of the log, until the cluster stops.
func (p *proposer) run() {
	var next *proposal // taken from the queue but over the size bound: leads the next batch
	for {
		select {
		case p.slots <- struct{}{}:
		case <-p.c.stop:
			return
		}
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-p.queue:
			case <-p.c.stop:
				return
			}
		}
		var batch []*proposal
		batch, next = gatherQueued(p.queue, first, func(it *proposal) int { return len(it.cmd) }, maxFoldCommands, maxFoldBytes)
		// A signal standing from before this proposal is not its append.
		select {
		case <-p.c.node.Appended():
		default:
		}
		answered := make(chan struct{})
		go func() {
			defer func() { <-p.slots }()
			defer close(answered)
			p.c.proposeFolded(batch)
		}()
		select {
		case <-p.c.node.Appended():
		case <-answered:
		case <-p.c.stop:
			return
		}
	}
}

// proposeFolded proposes the commands of batch that their callers still wait for, as
// one entry, and answers each caller.
func (c *Cluster) proposeFolded(batch []*proposal) {
	live := batch[:0]
	for _, it := range batch {
		if it.state.CompareAndSwap(proposalQueued, proposalTaken) {
			live = append(live, it)
		}
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone it is the plain command: no wrapping for a quiet moment.
		res, err := c.node.Apply(context.Background(), live[0].cmd)
		live[0].done <- forwardResult{res, err}
		return
	}
	encoded := make([][]byte, len(live))
	for i, it := range live {
		encoded[i] = it.cmd
	}
	res, err := c.node.Apply(context.Background(), fsm.AppendBatch(nil, encoded))
	c.foldedEntries.Add(1)
	c.foldedCommands.Add(uint64(len(live)))
	results, ok := res.(fsm.BatchResult)
	if err == nil && (!ok || len(results) != len(live)) {
		// Applied, but the answers cannot be matched to the commands: a bug, told as an
		// unknown outcome rather than a guessed one.
		c.log.Error("batch entry answered out of shape", "commands", len(live), "response", fmt.Sprintf("%T", res))
		err = fmt.Errorf("%w: the batch's answer does not match its commands", raftnode.ErrUnknownOutcome)
	}
	for i, it := range live {
		if err != nil {
			it.done <- forwardResult{err: err}
			continue
		}
		it.done <- forwardResult{res: results[i]}
	}
}

// FoldStats counts the batch entries this node proposed and the commands they held.
type FoldStats struct {
	Entries, Commands uint64
}

// FoldStats reports what the proposer folded so far.
func (c *Cluster) FoldStats() FoldStats {
	return FoldStats{Entries: c.foldedEntries.Load(), Commands: c.foldedCommands.Load()}
}

// ErrBatchesUnsupported refuses to add a member that has not said it applies batch
// entries (an older build): it would stop at the first one in the log.
var ErrBatchesUnsupported = errors.New("cluster: this node does not apply batch log entries (fsm.BatchType); upgrade it before it joins")

// noteAppliesBatches records what a member said of batches and whether the leader may
// fold now.
func (c *Cluster) noteAppliesBatches(id string, applies bool) {
	c.mu.Lock()
	if c.batchers == nil {
		c.batchers = map[string]bool{}
	}
	c.batchers[id] = applies
	c.mu.Unlock()
	c.refreshFold()
}

// refreshFold allows folding when every server of the configuration is this node or
// has said it applies batches.
func (c *Cluster) refreshFold() {
	servers, err := c.node.Servers()
	if err != nil || len(servers) == 0 {
		c.foldAllowed.Store(false)
		return
	}
	c.mu.Lock()
	ok := true
	for _, s := range servers {
		if s.ID != c.cfg.NodeID && !c.batchers[s.ID] {
			ok = false
		}
	}
	c.mu.Unlock()
	c.foldAllowed.Store(ok)
}

// Folds reports whether this node, as leader, folds concurrent writes into batch
// entries now: every member has said it applies them.
func (c *Cluster) Folds() bool { return c.foldAllowed.Load() }
