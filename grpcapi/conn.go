package grpcapi

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/stats"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// conn is one client TCP connection. Its id (<millis>_<ip>_<port>) is shared by the
// connection's unary calls and its stream. It is registered once the stream's
// ConnectionSetupRequest arrives; only then may it make naming requests, own instances
// and subscribe. It is dropped, with its instances and subscriptions, when the TCP
// connection ends, its stream ends, it stops answering detection, or its send queue
// overflows.
type conn struct {
	id       string
	remote   string
	openedAt time.Time

	// lastActive is when the last message from the client came, as nanoseconds since
	// openedAt: an offset taken with Time.Sub, which reads the monotonic clock, so a
	// step of the wall clock neither drops live connections nor keeps dead ones.
	lastActive atomic.Int64
	// sendingSince is when the sender began a Stream.Send that has not returned yet, as
	// nanoseconds since sendBase plus one (monotonic, as lastActive), 0 when it is not
	// writing. A client that stops reading fills its
	// HTTP/2 window and blocks that Send; the janitor drops a connection blocked past
	// PushTimeout.
	sendingSince atomic.Int64
	sendBase     time.Time
	// stuck is closed when the connection is dropped for a blocked Send: the stream
	// handler then returns without waiting for its sender, which ends the stream and
	// so unblocks the Send.
	stuck     chan struct{}
	stuckOnce sync.Once

	// opMu orders instance and subscription writes before a drop: writes hold it for
	// reading and check registered; drop holds it for writing. Nothing the connection
	// wrote survives its drop.
	opMu sync.RWMutex

	mu            sync.Mutex
	registered    bool
	dropped       bool
	clientVersion string
	clientIP      string // Metadata.clientIp of the set-up, as the client reports it
	labels        map[string]string
	out           chan *outMsg            // the stream's send queue, bounded (pointers: 8 bytes a slot)
	closed        chan struct{}           // closed on drop: the stream handler returns
	subs          map[subKey]string       // subscription → the app header it came with
	pending       map[string]*pendingPush // pushes awaiting their ack, by requestId
	queued        map[subKey]*outMsg      // pushes waiting in out, not yet sent, by subscription
	probeID       string                  // ClientDetectionRequest awaiting its answer
	probeSent     time.Time
}

// subKey is one subscription: a service as filtered for clusters.
type subKey struct {
	svc      naming.ServiceKey
	clusters string
}

// outMsg is one message for the stream's sender.
type outMsg struct {
	typ  string
	rest []byte // the body without headers and requestId; see serverRequestBody
	// shared, for a push, is the whole request, numbered and encoded once for all its
	// subscribers; rest is then unused.
	shared *sharedPush
	push   *pendingPush
	// probe marks a ClientDetectionRequest, whose id the sender records.
	probe bool
}

// pendingPush is a NotifySubscriberRequest sent (or queued) and not yet acked.
type pendingPush struct {
	key       subKey
	changedAt time.Time // when the change that caused it was seen
	sentAt    time.Time
	retried   bool
}

func newConn(remote net.Addr, now time.Time) *conn {
	host, port := "unknown", "0"
	if remote != nil {
		if h, p, err := net.SplitHostPort(remote.String()); err == nil {
			host, port = h, p
		}
	}
	c := &conn{
		id:       fmt.Sprintf("%d_%s_%s", now.UnixMilli(), host, port),
		remote:   net.JoinHostPort(host, port),
		openedAt: now,
		sendBase: time.Now(),
		closed:   make(chan struct{}),
		stuck:    make(chan struct{}),
		subs:     map[subKey]string{},
		pending:  map[string]*pendingPush{},
		queued:   map[subKey]*outMsg{},
	}
	c.touch(now)
	return c
}

func (c *conn) touch(now time.Time) { c.lastActive.Store(int64(now.Sub(c.openedAt))) }

func (c *conn) idle(now time.Time) time.Duration {
	return now.Sub(c.openedAt) - time.Duration(c.lastActive.Load())
}

// lastActiveAt is the wall-clock time of the last message, for display.
func (c *conn) lastActiveAt() time.Time {
	return c.openedAt.Add(time.Duration(c.lastActive.Load()))
}

// sendStarted and sendEnded bracket a Stream.Send for sendBlockedFor.
func (c *conn) sendStarted() { c.sendingSince.Store(int64(time.Since(c.sendBase)) + 1) }
func (c *conn) sendEnded()   { c.sendingSince.Store(0) }

// isRegistered reports whether the connection may make naming requests.
func (c *conn) isRegistered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.registered && !c.dropped
}

// enqueue hands m to the sender without blocking. It reports false when the
// connection is gone or its queue is full.
func (c *conn) enqueue(m *outMsg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.registered || c.dropped || c.out == nil {
		return false
	}
	select {
	case c.out <- m:
		return true
	default:
		return false
	}
}

// enqueuePush queues a push without blocking. When a push of the same subscription
// is still waiting in the queue, it takes the newer data instead: a slow connection
// holds at most one queued push per subscription, always the newest state, so its
// queue stays bounded by its subscriptions and it gets no stale intermediate states.
func (c *conn) enqueuePush(m *outMsg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.registered || c.dropped || c.out == nil {
		return false
	}
	if q := c.queued[m.push.key]; q != nil {
		q.shared = m.shared
		q.push.retried = q.push.retried && m.push.retried
		return true
	}
	select {
	case c.out <- m:
		c.queued[m.push.key] = m
		return true
	default:
		return false
	}
}

// sendBlockedFor is how long the current Stream.Send has been blocked, 0 when none is.
func (c *conn) sendBlockedFor(now time.Time) time.Duration {
	since := c.sendingSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(c.sendBase) - time.Duration(since-1)
}

func (c *conn) markStuck() { c.stuckOnce.Do(func() { close(c.stuck) }) }

// connKey is the context key of a connection.
type connKey struct{}

func connFrom(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// statsHandler tags every TCP connection with a conn and drops it when it ends.
type statsHandler struct{ s *Server }

func (h statsHandler) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	c := newConn(info.RemoteAddr, h.s.now())
	h.s.conns.add(c)
	return context.WithValue(ctx, connKey{}, c)
}

func (h statsHandler) HandleConn(ctx context.Context, st stats.ConnStats) {
	if _, ok := st.(*stats.ConnEnd); ok {
		if c := connFrom(ctx); c != nil {
			h.s.drop(c, "connection closed")
			h.s.conns.remove(c)
		}
	}
}

func (statsHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (statsHandler) HandleRPC(context.Context, stats.RPCStats) {}

// connSet is every open TCP connection.
type connSet struct {
	mu sync.Mutex
	m  map[*conn]struct{}
}

func (s *connSet) add(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*conn]struct{}{}
	}
	s.m[c] = struct{}{}
}

func (s *connSet) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// snapshot lists the open connections.
func (s *connSet) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.m))
	for c := range s.m {
		out = append(out, c)
	}
	return out
}

// ClientConnections lists the registered connections for the registry's client view (the Open
// API's /client endpoints), sorted by id.
func (s *Server) ClientConnections() []registry.ConnInfo {
	var out []registry.ConnInfo
	for _, c := range s.conns.snapshot() {
		c.mu.Lock()
		if !c.registered || c.dropped {
			c.mu.Unlock()
			continue
		}
		info := registry.ConnInfo{ID: c.id, ClientIP: c.clientIP, ClientVersion: c.clientVersion, AppName: "-"}
		if app := c.labels["AppName"]; app != "" {
			info.AppName = app
		}
		if info.ClientIP == "" {
			info.ClientIP, _, _ = net.SplitHostPort(c.remote)
		}
		for key, app := range c.subs {
			info.Subscriptions = append(info.Subscriptions, registry.ConnSubscription{Service: key.svc, Clusters: key.clusters, App: app})
		}
		c.mu.Unlock()
		info.LastActive = c.lastActiveAt()
		sort.Slice(info.Subscriptions, func(i, j int) bool {
			a, b := info.Subscriptions[i], info.Subscriptions[j]
			if a.Service != b.Service {
				return a.Service.String() < b.Service.String()
			}
			return a.Clusters < b.Clusters
		})
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
