package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/roster-registry/roster/naming"
)

// PathCall carries typed calls from one member to another: a method name and its JSON
// request, answered by the method's value or a typed *naming.Error. The registry sends
// an ephemeral write or beat to the member responsible for its client this way.
const PathCall = "/roster/v1/cluster/call"

// DefaultCallTimeout bounds one typed call when Config.CallTimeout is zero.
const DefaultCallTimeout = 10 * time.Second

// maxCall bounds a call's request and answer; client bodies are bounded before this.
const maxCall = 16 << 20

// CallHandler serves one method: it decodes its own request and returns a value to
// encode, or an error. A *naming.Error crosses to the caller as it is; any other error
// is logged here and crosses as a generic internal error.
type CallHandler func(ctx context.Context, req json.RawMessage) (any, error)

// callRequest and callAnswer are the wire form of a typed call.
type callRequest struct {
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

type callAnswer struct {
	Error *naming.Error   `json:"error,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// handlers holds the methods this member serves.
type handlers struct {
	mu sync.RWMutex
	m  map[string]CallHandler
}

func (h *handlers) get(method string) (CallHandler, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	fn, ok := h.m[method]
	return fn, ok
}

// Handle registers the handler of a method. Registering a method twice is a
// programming error.
func (c *Cluster) Handle(method string, h CallHandler) {
	c.calls.mu.Lock()
	defer c.calls.mu.Unlock()
	if c.calls.m == nil {
		c.calls.m = map[string]CallHandler{}
	}
	if _, dup := c.calls.m[method]; dup {
		panic("cluster: method " + method + " registered twice")
	}
	c.calls.m[method] = h
}

// Call sends a typed request to the member at addr (its HTTP address) and decodes the
// value it answers into resp (which may be nil). It returns ErrNotSent, wrapped, when
// the member was never reached, the member's *naming.Error when it refused, and
// raftnode's ErrUnknownOutcome, wrapped, when the request may have been served but no
// answer came back.
func (c *Cluster) Call(ctx context.Context, addr, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("cluster: encode %s request: %w", method, err)
	}
	wire, err := json.Marshal(callRequest{Method: method, Request: body})
	if err != nil {
		return fmt.Errorf("cluster: encode %s request: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, normalize(addr)+PathCall, bytes.NewReader(wire))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(ForwardedHeader, "1")
	hresp, err := c.client.Do(hr)
	if err != nil {
		if neverSent(err) {
			return fmt.Errorf("%w: %s to %s: %v", ErrNotSent, method, addr, err)
		}
		return fmt.Errorf("%w: %s to %s: %v", ErrCallOutcome, method, addr, err)
	}
	defer hresp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hresp.Body, maxCall))
	if err != nil {
		return fmt.Errorf("%w: %s answer of %s: %v", ErrCallOutcome, method, addr, err)
	}
	if hresp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: %w", ErrNotSent, c.refused(addr))
	}
	var ans callAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		return fmt.Errorf("%w: %s answer of %s (%d): %v", ErrCallOutcome, method, addr, hresp.StatusCode, err)
	}
	if ans.Error != nil {
		return ans.Error
	}
	if resp == nil || len(ans.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(ans.Value, resp); err != nil {
		return fmt.Errorf("%w: decode %s answer of %s: %v", ErrCallOutcome, method, addr, err)
	}
	return nil
}

// ErrCallOutcome marks a typed call whose request may have been served but whose answer
// never came back.
var ErrCallOutcome = errors.New("cluster: the member did not answer")

func (c *Cluster) serveCall(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxCall+1))
	if err != nil || len(b) > maxCall {
		writeJSON(w, http.StatusBadRequest, callAnswer{Error: naming.BadRequest("cluster: unreadable or oversized call")})
		return
	}
	var req callRequest
	if err := json.Unmarshal(b, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, callAnswer{Error: naming.BadRequest("cluster: a call needs method and request")})
		return
	}
	h, ok := c.calls.get(req.Method)
	if !ok {
		writeJSON(w, http.StatusNotFound, callAnswer{Error: naming.Errorf(http.StatusNotFound, "cluster: no method %q on this member", req.Method)})
		return
	}
	v, err := h(r.Context(), req.Request)
	if err != nil {
		var ne *naming.Error
		if !errors.As(err, &ne) {
			c.log.Error("internal call failed", "method", req.Method, "err", err)
			ne = naming.Internal("internal error on member " + c.cfg.NodeID)
		}
		writeJSON(w, http.StatusOK, callAnswer{Error: ne})
		return
	}
	var ans callAnswer
	if v != nil {
		if ans.Value, err = json.Marshal(v); err != nil {
			c.log.Error("encode call answer", "method", req.Method, "err", err)
			writeJSON(w, http.StatusOK, callAnswer{Error: naming.Internal("internal error on member " + c.cfg.NodeID)})
			return
		}
	}
	writeJSON(w, http.StatusOK, ans)
}

// neverSent reports whether a request failed before it left this node (the dial
// failed), so that it cannot have been served and may be retried or done here.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
