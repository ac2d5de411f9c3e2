package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/raftnode"
)

// Internal routes, under /roster/v1/cluster. They carry only Roster's own JSON and
// versioned commands; the leader decodes a forwarded command before it proposes it.
const (
	PathInfo  = "/roster/v1/cluster/info"
	PathJoin  = "/roster/v1/cluster/join"
	PathApply = "/roster/v1/cluster/apply"
)

// ForwardedHeader marks a request one node sent to another, so that it is never
// forwarded a second time (no loops while leadership moves).
const ForwardedHeader = "X-Roster-Forwarded"

// outcomeHeader tells the forwarding node that the leader could not learn the outcome.
const outcomeHeader = "X-Roster-Outcome"

// maxCommand bounds a forwarded command; the HTTP front already bounds client bodies.
const maxCommand = 8 << 20

// InfoResponse describes a node to a peer that is forming or joining a cluster.
type InfoResponse struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
	HasState bool   `json:"hasState"`
	Leader   string `json:"leader"`
	// AppliedIndex is the highest log index the node's FSM has applied (0 when it
	// does not say): a member that starts waits until it has applied as far as the
	// leader had before it reports ready.
	AppliedIndex uint64 `json:"appliedIndex,omitempty"`
}

// JoinRequest is a node's announcement of itself to the leader.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
	HasState bool   `json:"hasState"`
	// AppliesBatches says the node's FSM applies fsm.BatchType entries: the leader
	// folds writes into batches only while every member has said so (fold.go).
	AppliesBatches bool `json:"appliesBatches,omitempty"`
}

type joinResponse struct {
	Members []Member `json:"members"`
}

type applyResponse struct {
	// Answer is the FSM's typed response to the command.
	Answer fsm.Answer `json:"answer"`
	// Index is the leader's applied index after the command: the forwarding node waits
	// until it has applied as far (Config.Applied).
	Index uint64 `json:"index,omitempty"`
}

// catchUpWait bounds how long a forwarded write waits for this node to apply it; the
// write is committed either way, so running out only gives up read-your-writes.
const catchUpWait = 2 * time.Second

// ErrNotSent marks a request that never reached the member (the dial failed): safe to
// retry, or to do here.
var ErrNotSent = errors.New("cluster: request not sent")

// ErrCredentialRefused means a member refused this node's credential: the nodes were
// not given the same --cluster-key-file or certificates of the same CA.
var ErrCredentialRefused = errors.New("cluster: the member refused this node's credential; give every node the same --cluster-key-file, or certificates of the same --tls-ca")

// refused turns a 401 from a member into ErrCredentialRefused, logged at most every 30 s.
func (c *Cluster) refused(addr string) error {
	c.mu.Lock()
	now := time.Now()
	warn := now.Sub(c.lastRefusal) >= 30*time.Second
	if warn {
		c.lastRefusal = now
	}
	c.mu.Unlock()
	if warn {
		c.log.Warn("a member refused this node's credential", "member", addr, "err", ErrCredentialRefused)
	}
	return fmt.Errorf("%w (%s)", ErrCredentialRefused, addr)
}

func (c *Cluster) info(addr string) (InfoResponse, error) {
	var info InfoResponse
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, normalize(addr)+PathInfo, nil)
	if err != nil {
		return info, err
	}
	req.Header.Set(ForwardedHeader, "1")
	resp, err := c.client.Do(req)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return info, c.refused(addr)
	}
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("cluster: %s answered %d", addr, resp.StatusCode)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info)
	return info, err
}

func (c *Cluster) announce(addr string) ([]Member, error) {
	body, _ := json.Marshal(JoinRequest{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr, HasState: c.node.HasState(), AppliesBatches: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, normalize(addr)+PathJoin, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return nil, ErrRemoved
	case http.StatusUnauthorized:
		return nil, c.refused(addr)
	default:
		return nil, fmt.Errorf("cluster: join via %s: %d %s", addr, resp.StatusCode, bytes.TrimSpace(b))
	}
	var jr joinResponse
	if err := json.Unmarshal(b, &jr); err != nil {
		return nil, err
	}
	return jr.Members, nil
}

// Apply commits a command through Raft from any node: on the leader directly, on a
// follower through the leader. While no leader is reachable it retries with jitter for
// the hold time, then answers raftnode.ErrNoLeader. Outcomes that cannot be known are
// raftnode.ErrUnknownOutcome.
func (c *Cluster) Apply(ctx context.Context, cmd []byte) (any, error) {
	deadline := time.Now().Add(c.cfg.HoldTimeout)
	for {
		var res any
		var err error
		if c.node.IsLeader() {
			res, err = c.propose(ctx, cmd)
		} else if addr, ok := c.LeaderHTTP(); ok {
			res, err = c.forward(ctx, addr, cmd)
		} else {
			err = raftnode.ErrNoLeader
		}
		retry := errors.Is(err, raftnode.ErrNotLeader) || errors.Is(err, raftnode.ErrNoLeader) || errors.Is(err, ErrNotSent)
		if !retry {
			return res, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: none reachable within %s", raftnode.ErrNoLeader, c.cfg.HoldTimeout)
		}
		if err := jitter(ctx); err != nil {
			return nil, fmt.Errorf("%w: %v", raftnode.ErrNoLeader, err)
		}
	}
}

// forwardApply sends one command in a request of its own (to a leader that takes no
// batches).
func (c *Cluster) forwardApply(ctx context.Context, addr string, cmd []byte) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ForwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, normalize(addr)+PathApply, bytes.NewReader(cmd))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(ForwardedHeader, "1")
	resp, err := c.client.Do(req)
	if err != nil {
		if neverSent(err) {
			return nil, fmt.Errorf("%w: %v", ErrNotSent, err)
		}
		// The request may have reached the leader and been applied.
		return nil, fmt.Errorf("%w: forward to %s: %v", raftnode.ErrUnknownOutcome, addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCommand))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer of %s: %v", raftnode.ErrUnknownOutcome, addr, err)
	}
	a := applyAnswer{Status: resp.StatusCode, Unknown: resp.Header.Get(outcomeHeader) == "unknown",
		Text: string(bytes.TrimSpace(b))}
	if a.Status == http.StatusOK || a.Status == http.StatusBadRequest {
		var ar applyResponse
		if err := json.Unmarshal(b, &ar); err == nil {
			a.Reply = &ar
		} else if a.Status == http.StatusOK {
			return nil, fmt.Errorf("%w: bad answer from %s: %v", raftnode.ErrUnknownOutcome, addr, err)
		}
	}
	return c.outcome(ctx, addr, cmd, a)
}

// catchUp waits, briefly, until this node has applied up to index.
func (c *Cluster) catchUp(ctx context.Context, index uint64) {
	if c.cfg.Applied == nil || index == 0 || c.cfg.Applied() >= index {
		return
	}
	if c.cfg.WaitApplied != nil {
		c.cfg.WaitApplied(ctx, index, catchUpWait)
		return
	}
	deadline := time.NewTimer(catchUpWait)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for c.cfg.Applied() < index {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// Routes registers the internal endpoints on mux-like registrars (chi routers).
type Router interface {
	Get(pattern string, h http.HandlerFunc)
	Post(pattern string, h http.HandlerFunc)
}

// Mount adds the internal endpoints to r. Each refuses a request without the node
// credential before it reads the body.
func (c *Cluster) Mount(r Router) {
	guard := c.cfg.Credential.RequireFunc
	r.Get(PathInfo, guard(c.serveInfo))
	r.Post(PathJoin, guard(c.serveJoin))
	r.Post(PathApply, guard(c.serveApply))
	r.Post(PathApplyBatch, guard(c.serveApplyBatch))
	r.Post(PathCall, guard(c.serveCall))
}

// Transport carries this node's requests to other members with its credential.
func (c *Cluster) Transport() http.RoundTripper { return c.cfg.Credential.Transport() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

func (c *Cluster) serveInfo(w http.ResponseWriter, r *http.Request) {
	leader, _ := c.node.Leader()
	info := InfoResponse{ID: c.cfg.NodeID, RaftAddr: c.cfg.RaftAddr, HTTPAddr: c.cfg.HTTPAddr, HasState: c.node.HasState(), Leader: leader}
	if c.cfg.Applied != nil {
		info.AppliedIndex = c.cfg.Applied()
	}
	writeJSON(w, http.StatusOK, info)
}

func (c *Cluster) serveJoin(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeText(w, http.StatusBadRequest, "cluster: read join request: "+err.Error())
		return
	}
	var req JoinRequest
	if err := json.Unmarshal(body, &req); err != nil || req.ID == "" || req.RaftAddr == "" {
		writeText(w, http.StatusBadRequest, "cluster: a join request needs id and raftAddr")
		return
	}
	if !c.node.IsLeader() {
		if r.Header.Get(ForwardedHeader) != "" {
			writeText(w, http.StatusServiceUnavailable, "cluster: not the leader")
			return
		}
		c.ProxyToLeader(w, r, body)
		return
	}
	table, err := c.Join(req)
	switch {
	case errors.Is(err, ErrRemoved), errors.Is(err, ErrBatchesUnsupported):
		writeText(w, http.StatusForbidden, err.Error())
	case err != nil:
		writeText(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, joinResponse{Members: table})
	}
}

func (c *Cluster) serveApply(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(io.LimitReader(r.Body, maxCommand+1))
	if err != nil || len(cmd) > maxCommand {
		writeText(w, http.StatusBadRequest, "cluster: unreadable or oversized command")
		return
	}
	a := c.applyHere(r.Context(), cmd)
	if a.Reply != nil {
		writeJSON(w, a.Status, a.Reply)
		return
	}
	if a.Unknown {
		w.Header().Set(outcomeHeader, "unknown")
	}
	writeText(w, a.Status, a.Text)
}

// ProxyToLeader sends a client's request on to the leader once and copies the answer
// back. body, when not nil, replaces the request body (already read). It answers 503
// when no leader is known, and when the leader's answer has not begun within
// ForwardTimeout.
func (c *Cluster) ProxyToLeader(w http.ResponseWriter, r *http.Request, body []byte) {
	addr, ok := c.LeaderHTTP()
	if !ok {
		writeText(w, http.StatusServiceUnavailable, "no leader is available; retry later")
		return
	}
	target, err := url.Parse(normalize(addr))
	if err != nil {
		writeText(w, http.StatusServiceUnavailable, "bad leader address "+addr)
		return
	}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	proxy := &httputil.ReverseProxy{
		Transport: answerDeadline{next: c.Transport(), timeout: c.cfg.ForwardTimeout},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(ForwardedHeader, "1")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeText(w, http.StatusServiceUnavailable, "leader unreachable: "+err.Error())
		},
	}
	proxy.ServeHTTP(w, r)
}

type unboundedKey struct{}

// WithoutForwardTimeout marks a request whose proxied answer may rightly take long to
// begin: a snapshot restore uploads and installs the whole snapshot before the leader
// answers. ProxyToLeader does not bound such a request by ForwardTimeout.
func WithoutForwardTimeout(ctx context.Context) context.Context {
	return context.WithValue(ctx, unboundedKey{}, true)
}

// errLeaderSilent ends a proxied request whose answer did not begin in time.
var errLeaderSilent = errors.New("the leader did not answer in time")

// answerDeadline cancels a request whose response headers have not arrived within
// timeout. Once they have, the body may take as long as it takes (a snapshot stream),
// and closing it releases the request's context.
type answerDeadline struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (a answerDeadline) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Context().Value(unboundedKey{}) != nil {
		return a.next.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(a.timeout, func() { cancel(fmt.Errorf("%w (%s)", errLeaderSilent, a.timeout)) })
	resp, err := a.next.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		// The deadline fired, though the answer may have arrived just after it.
		if err == nil {
			resp.Body.Close()
		}
		err = context.Cause(ctx)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
