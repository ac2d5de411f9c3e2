package grpcapi

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// hub keeps the connections' subscriptions and pushes changes to them. A change only
// marks its service pending (registry.Watch must not block); the loop pushes pending
// services after PushDelay, so a burst of changes is one push. Each push is rendered
// and encoded once per distinct clusters filter, and the same bytes are queued on every
// subscriber's own bounded queue;
// a full queue drops that subscriber's connection, never blocking a write or the others.
type hub struct {
	s *Server

	mu   sync.Mutex
	subs map[naming.ServiceKey]map[*conn]map[string]struct{} // service → conn → clusters

	pmu     sync.Mutex
	pending map[naming.ServiceKey]time.Time // service → first change seen
	wake    chan struct{}
}

func newHub(s *Server) *hub {
	return &hub{
		s:       s,
		subs:    map[naming.ServiceKey]map[*conn]map[string]struct{}{},
		pending: map[naming.ServiceKey]time.Time{},
		wake:    make(chan struct{}, 1),
	}
}

// changed is the registry's watch callback: cheap and non-blocking.
func (h *hub) changed(svc naming.ServiceKey) {
	h.mu.Lock()
	_, watched := h.subs[svc]
	h.mu.Unlock()
	if !watched {
		return
	}
	h.pmu.Lock()
	if _, ok := h.pending[svc]; !ok {
		h.pending[svc] = h.s.now()
	}
	h.pmu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hub) subscribe(c *conn, key subKey, app string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	if c.subs != nil {
		c.subs[key] = app
	}
	c.mu.Unlock()
	byConn := h.subs[key.svc]
	if byConn == nil {
		byConn = map[*conn]map[string]struct{}{}
		h.subs[key.svc] = byConn
	}
	cl := byConn[c]
	if cl == nil {
		cl = map[string]struct{}{}
		byConn[c] = cl
	}
	cl[key.clusters] = struct{}{}
}

func (h *hub) unsubscribe(c *conn, key subKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	delete(c.subs, key)
	c.mu.Unlock()
	h.removeLocked(c, key)
}

func (h *hub) removeLocked(c *conn, key subKey) {
	byConn := h.subs[key.svc]
	if byConn == nil {
		return
	}
	if cl := byConn[c]; cl != nil {
		delete(cl, key.clusters)
		if len(cl) == 0 {
			delete(byConn, c)
		}
	}
	if len(byConn) == 0 {
		delete(h.subs, key.svc)
	}
}

// removeAll forgets a dropped connection's subscriptions.
func (h *hub) removeAll(c *conn, subs map[subKey]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key := range subs {
		h.removeLocked(c, key)
	}
}

// subscriptions counts the subscriptions held (for metrics).
func (h *hub) subscriptions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, byConn := range h.subs {
		for _, cl := range byConn {
			n += len(cl)
		}
	}
	return n
}

// subscriber is one (connection, clusters) of a service.
type subscriber struct {
	c        *conn
	clusters string
}

func (h *hub) subscribers(svc naming.ServiceKey) []subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []subscriber
	for c, cl := range h.subs[svc] {
		for clusters := range cl {
			out = append(out, subscriber{c: c, clusters: clusters})
		}
	}
	return out
}

// loop pushes pending services until the server stops.
func (h *hub) loop() {
	defer h.s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-h.s.stopc:
			return
		case <-h.wake:
		}
		timer.Reset(h.s.cfg.PushDelay)
		select {
		case <-h.s.stopc:
			timer.Stop()
			return
		case <-timer.C:
		}
		h.pmu.Lock()
		batch := h.pending
		h.pending = make(map[naming.ServiceKey]time.Time, len(batch))
		h.pmu.Unlock()
		for svc, at := range batch {
			h.push(svc, at)
		}
	}
}

// push sends svc's current data to each of its subscribers. It renders and encodes
// the push once per distinct clusters filter; every subscriber with that filter is
// sent the same bytes.
func (h *hub) push(svc naming.ServiceKey, changedAt time.Time) {
	subs := h.subscribers(svc)
	if len(subs) == 0 {
		return
	}
	shared := map[string]*sharedPush{}
	for _, sub := range subs {
		sp, ok := shared[sub.clusters]
		if !ok {
			rest, err := h.render(svc, sub.clusters)
			if err != nil {
				h.s.log.Warn("push not rendered", "service", svc.String(), "err", err)
				h.s.metrics.pushFailures.Add(float64(len(subs)))
				return
			}
			sp = h.newSharedPush(rest)
			shared[sub.clusters] = sp
		}
		h.send(sub.c, subKey{svc: svc, clusters: sub.clusters}, sp, changedAt, false)
	}
}

// sharedPush is one NotifySubscriberRequest exactly as every subscriber of a service
// (as filtered for one clusters value) receives it. Its requestId is the same for all
// of them: the server numbers its requests with one counter (as Nacos'
// PushAckIdGenerator does), so an id is unique on every connection it is sent on and
// the acks still match per connection. The first sender that needs the bytes encodes
// them (gRPC needs a stream for that); every other sender writes them as they are.
type sharedPush struct {
	id      string
	payload *nacospb.Payload

	once    sync.Once
	msg     *grpc.PreparedMsg
	err     error
	encoded func() // counts the encoding
}

func (h *hub) newSharedPush(rest []byte) *sharedPush {
	id := h.s.newRequestID()
	return &sharedPush{
		id:      id,
		payload: EncodePayload("NotifySubscriberRequest", serverRequestBody(id, rest)),
		encoded: h.s.metrics.pushEncodes.Inc,
	}
}

// prepared is the push encoded for the wire, done once whichever stream asks first.
func (p *sharedPush) prepared(stream grpc.ServerStream) (*grpc.PreparedMsg, error) {
	p.once.Do(func() {
		m := &grpc.PreparedMsg{}
		if p.err = m.Encode(stream, p.payload); p.err == nil {
			p.msg = m
			p.encoded()
		}
	})
	return p.msg, p.err
}

// send queues one push (coalesced with one still queued for the same subscription);
// a full queue drops the connection.
func (h *hub) send(c *conn, key subKey, sp *sharedPush, changedAt time.Time, retried bool) {
	m := &outMsg{typ: "NotifySubscriberRequest", shared: sp, push: &pendingPush{key: key, changedAt: changedAt, retried: retried}}
	if !c.enqueuePush(m) {
		h.s.metrics.pushFailures.Inc()
		if c.isRegistered() {
			h.s.drop(c, "send queue full")
		}
	}
}

// notifyBody is NotifySubscriberRequest's body after requestId (Nacos leaves namespace,
// serviceName and groupName null).
type notifyBody struct {
	Module      string                 `json:"module"`
	ServiceInfo naming.ServiceInfoJSON `json:"serviceInfo"`
}

func (h *hub) render(svc naming.ServiceKey, clusters string) ([]byte, error) {
	info, err := h.s.reg.List(context.Background(), registry.Query{Service: svc, Clusters: clusters})
	if err != nil {
		return nil, err
	}
	return NotifyBody(info, h.s.reg.Timing())
}

// NotifyBody renders the NotifySubscriberRequest that pushes info to a subscriber, all
// of its body but the requestId that each send puts first: what every gRPC subscriber
// of the service receives.
func NotifyBody(info *registry.ServiceInfo, t naming.Timing) ([]byte, error) {
	return naming.Marshal(notifyBody{Module: "naming", ServiceInfo: grpcServiceInfo(info, t)})
}

// ack matches a NotifySubscriberResponse to its push.
func (h *hub) ack(c *conn, requestID string, resultCode int) {
	c.mu.Lock()
	p := c.pending[requestID]
	delete(c.pending, requestID)
	c.mu.Unlock()
	if p == nil {
		return // late: the push was already retried or given up
	}
	if resultCode != codeSuccess {
		h.s.metrics.pushFailures.Inc()
		return
	}
	h.s.metrics.pushes.Inc()
	h.s.metrics.pushLatency.Observe(h.s.now().Sub(p.changedAt).Seconds())
}

// expire retries pushes of c not acked within PushTimeout once, with fresh data, and
// gives up on retries that time out too.
func (h *hub) expire(c *conn, now time.Time) {
	var retry []*pendingPush
	c.mu.Lock()
	for id, p := range c.pending {
		if now.Sub(p.sentAt) < h.s.cfg.PushTimeout {
			continue
		}
		delete(c.pending, id)
		if p.retried {
			h.s.metrics.pushFailures.Inc()
			continue
		}
		retry = append(retry, p)
	}
	c.mu.Unlock()
	for _, p := range retry {
		rest, err := h.render(p.key.svc, p.key.clusters)
		if err != nil {
			h.s.metrics.pushFailures.Inc()
			continue
		}
		h.s.metrics.pushRetries.Inc()
		h.send(c, p.key, h.newSharedPush(rest), p.changedAt, true)
	}
}
