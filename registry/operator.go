package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
)

// The operator side: the Raft state as the fronts show it, membership changes, snapshot
// save and restore, and the requests that must run on the leader. The fronts reach the
// cluster only through these methods.

// RaftStats is a numeric view of this node's Raft state.
type RaftStats = raftnode.Stats

// RaftServer is a member of the Raft configuration.
type RaftServer = raftnode.Server

// SnapshotInfo describes a verified snapshot file.
type SnapshotInfo = persistence.FileInfo

// SnapshotRestoreTimeout is the longest a restore waits for Raft to install it.
const SnapshotRestoreTimeout = raftnode.DefaultRestoreTimeout

// ForwardedHeader marks a request one member sent to another, so that it is never
// sent on a second time.
const ForwardedHeader = cluster.ForwardedHeader

// NodeID is this node's id.
func (r *Registry) NodeID() string { return r.node.ID() }

// IsLeader reports whether this node leads.
func (r *Registry) IsLeader() bool { return r.node.IsLeader() }

// Leader is the leader's id, blank when none is known.
func (r *Registry) Leader() string {
	id, _ := r.node.Leader()
	return id
}

// RaftStats returns this node's Raft counters.
func (r *Registry) RaftStats() RaftStats { return r.node.Stats() }

// RaftServers lists the Raft configuration.
func (r *Registry) RaftServers() ([]RaftServer, error) { return r.node.Servers() }

// MemberHTTPAddr is a member's HTTP address as far as this node knows it.
func (r *Registry) MemberHTTPAddr(id string) string {
	if id == r.cfg.NodeID && r.cfg.HTTPAddr != "" {
		return r.cfg.HTTPAddr
	}
	if m, ok := r.cluster.Member(id); ok {
		return m.HTTPAddr
	}
	return ""
}

// ErrNotLeader refuses a leader-only request on a node that cannot send it on; each
// front says so in its own words.
var ErrNotLeader = errors.New("registry: this node is not the leader")

// OnLeader routes a request that must run on the leader: it reports here=true on the
// leader; on another node it sends the request on to the leader once and copies the
// answer back (here=false, nil). A request that was already sent on by a member, or a
// node that knows no leader, gets ErrNotLeader, so a request never loops while
// leadership moves. A proxy is used, not a typed call, because snapshots stream.
func (r *Registry) OnLeader(w http.ResponseWriter, req *http.Request) (here bool, err error) {
	if r.node.IsLeader() {
		return true, nil
	}
	if req.Header.Get(ForwardedHeader) != "" {
		return false, ErrNotLeader
	}
	r.cluster.ProxyToLeader(w, req, nil)
	return false, nil
}

// Unbounded marks req as one whose answer may take long to begin (a snapshot transfer),
// so that OnLeader, sending it on, does not give up after the forward timeout.
func Unbounded(req *http.Request) *http.Request {
	return req.WithContext(cluster.WithoutForwardTimeout(req.Context()))
}

// OnLeaderWithBody is OnLeader for a request whose body was already read: body is
// sent on in its place.
func (r *Registry) OnLeaderWithBody(w http.ResponseWriter, req *http.Request, body []byte) (here bool, err error) {
	if r.node.IsLeader() {
		return true, nil
	}
	if req.Header.Get(ForwardedHeader) != "" {
		return false, ErrNotLeader
	}
	if body == nil {
		body = []byte{}
	}
	r.cluster.ProxyToLeader(w, req, body)
	return false, nil
}

// ConsistentRead makes the leader confirm its leadership and apply everything committed
// before the call, so that a read after it is linearizable.
func (r *Registry) ConsistentRead(ctx context.Context) error {
	if err := r.node.ConsistentRead(ctx); err != nil {
		if errors.Is(err, raftnode.ErrNotLeader) || errors.Is(err, raftnode.ErrNoLeader) {
			return naming.Unavailable("consistent read refused: leadership could not be confirmed")
		}
		return naming.Unavailable(fmt.Sprintf("consistent read refused: %v", err))
	}
	return nil
}

// RemovePeer removes a member from the Raft configuration; the leader does it.
func (r *Registry) RemovePeer(id string) error {
	servers, err := r.node.Servers()
	if err != nil {
		return operatorError(err)
	}
	known := false
	for _, s := range servers {
		known = known || s.ID == id
	}
	if !known {
		return naming.Errorf(http.StatusNotFound, "no server with id %s in the configuration", id)
	}
	return operatorError(r.cluster.RemovePeer(id))
}

// TransferLeadership hands leadership to another voter; the leader does it.
func (r *Registry) TransferLeadership() error { return operatorError(r.node.TransferLeadership()) }

// Barrier waits until this leader has applied every entry committed before the call.
func (r *Registry) Barrier(ctx context.Context) error { return operatorError(r.node.Barrier(ctx)) }

// VerifySnapshot reads a snapshot stream to its end and checks it whole (magic,
// version, every record, counts, SHA-256).
func (r *Registry) VerifySnapshot(src io.Reader) (SnapshotInfo, error) {
	return persistence.VerifyStream(src)
}

// IsSnapshotError reports whether err says that a snapshot stream is not a good one.
func IsSnapshotError(err error) bool {
	for _, e := range []error{
		persistence.ErrSnapshotTruncated, persistence.ErrSnapshotChecksum, persistence.ErrSnapshotMagic,
		persistence.ErrSnapshotVersion, persistence.ErrSnapshotCorrupt,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// RestoreSnapshot replaces all persistent state with a verified snapshot through Raft,
// which installs it on every member, and returns the Raft index it was installed at.
func (r *Registry) RestoreSnapshot(ctx context.Context, src io.Reader, size int64, index uint64) (uint64, error) {
	if err := r.node.Restore(ctx, src, size, index); err != nil {
		return 0, operatorError(err)
	}
	return r.node.Stats().LastSnapshotIndex, nil
}

// operatorError turns Raft's refusals of an operator action into 503s with their text.
func operatorError(err error) error {
	if err == nil {
		return nil
	}
	var ne *naming.Error
	if errors.As(err, &ne) {
		return ne
	}
	if errors.Is(err, raftnode.ErrUnknownOutcome) || errors.Is(err, raftnode.ErrNotLeader) || errors.Is(err, raftnode.ErrNoLeader) {
		return naming.Unavailable(err.Error())
	}
	return err
}

// InternalRouter is what the member-to-member routes are mounted on (a chi router).
type InternalRouter interface {
	Get(pattern string, h http.HandlerFunc)
	Post(pattern string, h http.HandlerFunc)
}

// MountInternal adds the member-to-member routes (cluster formation, forwarded
// commands and typed calls, Distro replication) to rt. Each refuses a request without
// the node credential before it reads the body.
func (r *Registry) MountInternal(rt InternalRouter) {
	r.cluster.Mount(rt)
	r.replicator.Mount(rt)
}

// ErrNodeUnauthorized is the answer to a member-to-member request without the node
// credential.
var ErrNodeUnauthorized = nodeauth.ErrUnauthorized

// CheckNode verifies that a request carries the cluster's node credential.
func (r *Registry) CheckNode(req *http.Request) error { return r.cluster.CheckNode(req) }

// Responsibility is which member this node considers responsible for each ephemeral
// instance of a service, in its own view: Members are the live members the 1.x hash
// runs over; for each instance, Routed is the member that hash picks for its client
// (where this node sends the client's writes and beats; empty for a gRPC-owned one) and
// Holder the member whose copy this node holds (this node's id when it is responsible:
// it runs the instance's expiry and replicates it).
type Responsibility struct {
	Self      string
	Members   []string
	Instances []InstanceResponsibility
}

// InstanceResponsibility is one instance of a Responsibility.
type InstanceResponsibility struct {
	Instance, Client, Connection, Routed, Holder string
}

// Responsibility reports this node's view of who is responsible for svc's ephemeral
// instances.
func (r *Registry) Responsibility(svc naming.ServiceKey) Responsibility {
	out := Responsibility{Self: r.node.ID(), Members: r.replicator.LiveMembers(), Instances: []InstanceResponsibility{}}
	for _, h := range r.distro.Holdings(svc) {
		ir := InstanceResponsibility{Instance: h.Key, Client: h.Client, Connection: h.Owner, Holder: h.Source}
		if ir.Holder == "" {
			ir.Holder = out.Self
		}
		if h.Owner == "" && h.Client != "" {
			peer, _ := r.replicator.Responsible(h.Client)
			ir.Routed = peer.ID
		}
		out.Instances = append(out.Instances, ir)
	}
	return out
}
