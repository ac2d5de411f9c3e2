package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/raftnode"
)

// PathApplyBatch takes many forwarded commands in one request: a follower's concurrent
// writes share one round trip to the leader, which proposes them all at once, so Raft's
// group commit sees them together.
const PathApplyBatch = "/roster/v1/cluster/apply-batch"

const (
	// maxForwardBatch bounds the commands of one forwarded request, and
	// maxForwardBytes their summed size (a single command, up to maxCommand, always fits).
	maxForwardBatch = 256
	maxForwardBytes = 16 << 20
	// forwardSenders is how many forwarded requests may be in flight to the leader at
	// once; each keeps one pooled connection busy. While they are, new writes queue and
	// leave together in the next request.
	forwardSenders = 4
)

// errBatchUnsupported is a leader without PathApplyBatch (an older build): the
// forwarder sends each command on its own instead.
var errBatchUnsupported = errors.New("cluster: the leader takes no batches")

// applyAnswer is one command's outcome, as serveApply tells it with a status code and
// a body, and as a batch carries it per command.
type applyAnswer struct {
	Status int `json:"status"`
	// Unknown marks a 503 whose command may have been applied.
	Unknown bool           `json:"unknown,omitempty"`
	Text    string         `json:"text,omitempty"`
	Reply   *applyResponse `json:"reply,omitempty"`
}

// applyHere proposes one forwarded command on this node (the leader) and tells the
// outcome. Only Roster's own versioned commands enter the log: one that does not decode
// would stop every member's FSM.
func (c *Cluster) applyHere(ctx context.Context, cmd []byte) applyAnswer {
	if len(cmd) > 0 && cmd[0] == byte(fsm.BatchType) {
		// Batches are the leader's own folding; a member forwards single commands.
		return applyAnswer{Status: http.StatusBadRequest,
			Reply: &applyResponse{Answer: fsm.Answer{Error: naming.BadRequest("cluster: a forwarded command cannot be a batch")}}}
	}
	if _, err := fsm.Decode(cmd); err != nil {
		return applyAnswer{Status: http.StatusBadRequest,
			Reply: &applyResponse{Answer: fsm.Answer{Error: naming.BadRequest("cluster: " + err.Error())}}}
	}
	if !c.node.IsLeader() {
		return applyAnswer{Status: http.StatusMisdirectedRequest, Text: "cluster: not the leader"}
	}
	res, err := c.propose(ctx, cmd)
	switch {
	case errors.Is(err, raftnode.ErrUnknownOutcome):
		return applyAnswer{Status: http.StatusServiceUnavailable, Unknown: true, Text: err.Error()}
	case errors.Is(err, raftnode.ErrNotLeader):
		return applyAnswer{Status: http.StatusMisdirectedRequest, Text: err.Error()}
	case err != nil:
		return applyAnswer{Status: http.StatusServiceUnavailable, Text: err.Error()}
	}
	ar := &applyResponse{}
	if c.cfg.Applied != nil {
		ar.Index = c.cfg.Applied()
	}
	if ar.Answer, err = fsm.NewAnswer(res); err != nil {
		// Committed and applied, but the answer cannot be told: an unknown outcome.
		c.log.Error("encode apply answer", "err", err)
		return applyAnswer{Status: http.StatusServiceUnavailable, Unknown: true, Text: "cluster: the answer could not be encoded"}
	}
	return applyAnswer{Status: http.StatusOK, Reply: ar}
}

// outcome turns the leader's answer to cmd into Apply's result, waiting for this node
// to apply the command when it succeeded.
func (c *Cluster) outcome(ctx context.Context, addr string, cmd []byte, a applyAnswer) (any, error) {
	switch {
	case a.Status == http.StatusMisdirectedRequest:
		return nil, raftnode.ErrNotLeader
	case a.Status == http.StatusUnauthorized:
		// Refused before the command was read: as good as no leader for this node.
		return nil, fmt.Errorf("%w: %w", raftnode.ErrNoLeader, c.refused(addr))
	case a.Status == http.StatusServiceUnavailable && a.Unknown:
		return nil, fmt.Errorf("%w: %s", raftnode.ErrUnknownOutcome, a.Text)
	case a.Status == http.StatusServiceUnavailable:
		return nil, raftnode.ErrNoLeader
	case a.Status == http.StatusBadRequest:
		// The leader refused the command before proposing it (it did not decode there):
		// nothing entered the log, and the refusal is typed.
		if a.Reply == nil || a.Reply.Answer.Error == nil {
			return nil, fmt.Errorf("cluster: the leader refused the command: %s", a.Text)
		}
		return nil, a.Reply.Answer.Error
	case a.Status != http.StatusOK || a.Reply == nil:
		return nil, fmt.Errorf("%w: %s answered %d", raftnode.ErrUnknownOutcome, addr, a.Status)
	}
	c.catchUp(ctx, a.Reply.Index)
	// The outcome is the leader's FSM response, typed by the command's row, so an FSM
	// rejection arrives as the same *naming.Error the leader's client would have had.
	return a.Reply.Answer.Result(fsm.CommandType(cmd[0]))
}

// serveApplyBatch proposes every command of a batch at once and answers each, in order.
func (c *Cluster) serveApplyBatch(w http.ResponseWriter, r *http.Request) {
	limit := int64(maxForwardBytes + maxForwardBatch*binary.MaxVarintLen64)
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil || int64(len(body)) > limit {
		writeText(w, http.StatusBadRequest, "cluster: unreadable or oversized batch")
		return
	}
	cmds, err := splitBatch(body)
	if err != nil {
		writeText(w, http.StatusBadRequest, "cluster: "+err.Error())
		return
	}
	answers := make([]applyAnswer, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = c.applyHere(r.Context(), cmd)
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, answers)
}

// appendFrame adds one command to a batch body: its length as a uvarint, then its bytes.
func appendFrame(b, cmd []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(cmd)))
	return append(b, cmd...)
}

// splitBatch is the inverse of appendFrame over a whole body.
func splitBatch(b []byte) ([][]byte, error) {
	var cmds [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > maxCommand || uint64(len(b)-k) < n {
			return nil, errors.New("malformed batch")
		}
		cmds = append(cmds, b[k:k+int(n)])
		b = b[k+int(n):]
		if len(cmds) > maxForwardBatch {
			return nil, fmt.Errorf("a batch holds at most %d commands", maxForwardBatch)
		}
	}
	if len(cmds) == 0 {
		return nil, errors.New("empty batch")
	}
	return cmds, nil
}

// forwardItem is one command waiting for a forwarded request.
type forwardItem struct {
	ctx  context.Context
	cmd  []byte
	done chan forwardResult // buffered: the sender never blocks on it
}

type forwardResult struct {
	res any
	err error
}

// forwarder queues the commands this node forwards to one leader address; its senders
// drain the queue into batches.
type forwarder struct {
	c     *Cluster
	addr  string
	queue chan *forwardItem
}

// forwarderFor returns the forwarder of a leader address, starting it on first use.
func (c *Cluster) forwarderFor(addr string) *forwarder {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	if f, ok := c.forwarders[addr]; ok {
		return f
	}
	if c.forwarders == nil {
		c.forwarders = map[string]*forwarder{}
	}
	f := &forwarder{c: c, addr: addr, queue: make(chan *forwardItem, 4*maxForwardBatch)}
	c.forwarders[addr] = f
	for range forwardSenders {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			f.send()
		}()
	}
	return f
}

// forward sends cmd to the leader at addr with the other commands queued beside it.
func (c *Cluster) forward(ctx context.Context, addr string, cmd []byte) (any, error) {
	// The bound covers the wait in the queue too: while every sender is held by a
	// leader that does not answer, a queued command must not wait for their timeouts
	// and then its own.
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	it := &forwardItem{ctx: ctx, cmd: cmd, done: make(chan forwardResult, 1)}
	f := c.forwarderFor(addr)
	select {
	case f.queue <- it:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrNotSent, ctx.Err())
	case <-c.stop:
		return nil, fmt.Errorf("%w: node stopping", ErrNotSent)
	}
	select {
	case r := <-it.done:
		return r.res, r.err
	case <-ctx.Done():
		// It may have reached the leader.
		return nil, fmt.Errorf("%w: forward to %s: %v", raftnode.ErrUnknownOutcome, addr, ctx.Err())
	case <-c.stop:
		return nil, fmt.Errorf("%w: forward to %s: node stopping", raftnode.ErrUnknownOutcome, addr)
	}
}

// send takes the next queued command and every one queued behind it (up to a batch)
// and forwards them in one request, until the cluster stops.
func (f *forwarder) send() {
	for {
		var first *forwardItem
		select {
		case first = <-f.queue:
		case <-f.c.stop:
			return
		}
		batch, next := gatherQueued(f.queue, first, func(it *forwardItem) int { return len(it.cmd) }, maxForwardBatch, maxForwardBytes)
		f.flush(batch)
		if next != nil {
			f.flush([]*forwardItem{next})
		}
	}
}

// gatherQueued is first and what is queued behind it right now, up to maxItems and
// maxBytes (by size): an item taken that would pass maxBytes is returned as next, to
// lead the following batch (nil when none). It never waits for more to arrive.
func gatherQueued[T any](queue <-chan *T, first *T, size func(*T) int, maxItems, maxBytes int) (batch []*T, next *T) {
	batch, total := []*T{first}, size(first)
	for len(batch) < maxItems {
		select {
		case it := <-queue:
			if total+size(it) > maxBytes {
				return batch, it
			}
			batch, total = append(batch, it), total+size(it)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// flush forwards one batch and answers every item of it.
func (f *forwarder) flush(batch []*forwardItem) {
	live := batch[:0]
	for _, it := range batch {
		if err := it.ctx.Err(); err != nil {
			it.done <- forwardResult{err: fmt.Errorf("%w: %v", ErrNotSent, err)}
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	answers, err := f.post(live)
	if errors.Is(err, errBatchUnsupported) {
		for _, it := range live {
			go func() {
				res, err := f.c.forwardApply(it.ctx, f.addr, it.cmd)
				it.done <- forwardResult{res, err}
			}()
		}
		return
	}
	for i, it := range live {
		if err != nil {
			it.done <- forwardResult{err: err}
			continue
		}
		go func() {
			res, err := f.c.outcome(it.ctx, f.addr, it.cmd, answers[i])
			it.done <- forwardResult{res, err}
		}()
	}
}

// post sends one batch and returns the answers in order. Its error is one for every
// command: ErrNotSent when the request never left, ErrUnknownOutcome when it may have
// been served.
func (f *forwarder) post(batch []*forwardItem) ([]applyAnswer, error) {
	var body []byte
	for _, it := range batch {
		body = appendFrame(body, it.cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, normalize(f.addr)+PathApplyBatch, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(ForwardedHeader, "1")
	resp, err := f.c.client.Do(req)
	if err != nil {
		if neverSent(err) {
			return nil, fmt.Errorf("%w: %v", ErrNotSent, err)
		}
		return nil, fmt.Errorf("%w: forward to %s: %v", raftnode.ErrUnknownOutcome, f.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCall))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer of %s: %v", raftnode.ErrUnknownOutcome, f.addr, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return nil, errBatchUnsupported
	case http.StatusUnauthorized:
		// Refused before the batch was read: as good as no leader for this node.
		return nil, fmt.Errorf("%w: %w", raftnode.ErrNoLeader, f.c.refused(f.addr))
	case http.StatusBadRequest:
		// The batch did not parse there: nothing of it was proposed.
		return nil, fmt.Errorf("cluster: the leader refused a batch: %s", bytes.TrimSpace(b))
	default:
		return nil, fmt.Errorf("%w: %s answered %d", raftnode.ErrUnknownOutcome, f.addr, resp.StatusCode)
	}
	var answers []applyAnswer
	if err := json.Unmarshal(b, &answers); err != nil || len(answers) != len(batch) {
		return nil, fmt.Errorf("%w: bad batch answer from %s", raftnode.ErrUnknownOutcome, f.addr)
	}
	return answers, nil
}
