package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/naming"
)

// AP routing. A 1.x client (ip:port) has one responsible member (distro's hash over the
// healthy members); its ephemeral writes and beats are served there, which owns their
// beat tracking. The kind of the service is decided first, so only AP writes travel
// this way, in one typed call (cluster.Call), answered with a typed error or value. A
// member that cannot be reached at all leaves the write to this node: Distro is an AP
// store, and availability comes first. gRPC clients are never routed: the member that
// holds the connection is responsible for its instances.

// methodAPWrite is the typed call that carries an AP write or beat.
const methodAPWrite = "registry.apWrite"

// AP write operations.
const (
	opRegister   = "register"
	opDeregister = "deregister"
	opUpdate     = "update"
	opPatch      = "patch"
	opBeat       = "beat"
)

// apWrite is an ephemeral write or beat sent to the responsible member. It was
// validated by the member that took it from the client.
type apWrite struct {
	Op       string            `json:"op"`
	Service  naming.ServiceKey `json:"service"`
	Instance *naming.Instance  `json:"instance,omitempty"`
	IP       string            `json:"ip,omitempty"`
	Port     int               `json:"port,omitempty"`
	Cluster  string            `json:"cluster,omitempty"`
	Patch    *Patch            `json:"patch,omitempty"`
	Beat     *BeatRequest      `json:"beat,omitempty"`
}

// forwardedKey marks a context whose write another member sent here: it is served here
// and never sent on, so a write travels at most one hop while membership moves.
type forwardedKey struct{}

func forwarded(ctx context.Context) context.Context {
	return context.WithValue(ctx, forwardedKey{}, true)
}

func isForwarded(ctx context.Context) bool { return ctx.Value(forwardedKey{}) != nil }

// responsibleElsewhere returns the member responsible for 1.x client ip:port when that
// is another member this node can address.
func (r *Registry) responsibleElsewhere(ctx context.Context, ip string, port int) (distro.Peer, bool) {
	if isForwarded(ctx) {
		return distro.Peer{}, false
	}
	peer, self := r.replicator.Responsible(net.JoinHostPort(ip, strconv.Itoa(port)))
	if self || peer.HTTPAddr == "" {
		return distro.Peer{}, false
	}
	return peer, true
}

// sendAP sends w to peer and reports whether the peer took it (done): false only when
// the peer could not be reached at all, and the caller serves the write itself.
func (r *Registry) sendAP(ctx context.Context, peer distro.Peer, w apWrite, resp any) (done bool, err error) {
	err = r.cluster.Call(ctx, peer.HTTPAddr, methodAPWrite, w, resp)
	var ne *naming.Error
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cluster.ErrNotSent):
		r.log.Debug("responsible member unreachable; serving the write here", "member", peer.ID, "err", err)
		return false, nil
	case errors.As(err, &ne):
		return true, ne
	default:
		return true, naming.Unavailable("responsible member " + peer.ID + " did not answer: " + err.Error())
	}
}

// handleCalls registers the typed calls other members send this one.
func (r *Registry) handleCalls() {
	r.cluster.Handle(methodAPWrite, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var w apWrite
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, naming.BadRequest("registry: undecodable forwarded write: " + err.Error())
		}
		return r.serveAP(forwarded(ctx), w)
	})
}

// serveAP serves a forwarded AP write with the local half of its path.
func (r *Registry) serveAP(ctx context.Context, w apWrite) (any, error) {
	switch w.Op {
	case opRegister, opUpdate:
		if w.Instance == nil {
			break
		}
		if w.Op == opRegister {
			return nil, r.registerLocal(w.Service, w.Instance)
		}
		r.updateLocal(w.Service, w.Instance)
		return nil, nil
	case opDeregister:
		r.distro.Deregister(w.Service, w.IP, w.Port, w.Cluster)
		return nil, nil
	case opPatch:
		if w.Patch == nil {
			break
		}
		return nil, r.patchLocal(w.Service, w.IP, w.Port, w.Cluster, *w.Patch)
	case opBeat:
		if w.Beat == nil {
			break
		}
		return r.beatLocal(ctx, *w.Beat)
	}
	return nil, naming.BadRequest(fmt.Sprintf("registry: forwarded write %q is incomplete or unknown", w.Op))
}
