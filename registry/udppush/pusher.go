package udppush

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/naming"
)

// Defaults and limits of Config.
const (
	DefaultListenAddr     = ":0"
	DefaultAckTimeout     = 10 * time.Second  // Nacos UdpPushService ACK_TIMEOUT_NANOS
	DefaultSubscriberTTL  = 180 * time.Second // Nacos 2 ClientConstants: a v1 subscriber lives 180 s
	DefaultDelay          = 500 * time.Millisecond
	MaxDelay              = time.Second
	DefaultMaxPacket      = 65000
	DefaultMaxSubscribers = 100000

	// maxUDPPayload is the largest IPv4 UDP payload; anything bigger cannot be sent at all.
	maxUDPPayload = 65507
	// maxAckSize bounds what the reader bothers to parse: a real ack is under 100 bytes.
	maxAckSize = 4096
)

// Config configures a Pusher. Zero values take the defaults above.
type Config struct {
	// ListenAddr is the local UDP address pushes are sent from and acks arrive at.
	// Default ":0" (all interfaces, any port).
	ListenAddr string
	// AckTimeout is how long a push waits for its ack before it is resent once; a resend
	// that is not acked either is dropped (clients poll anyway). Default 10s.
	AckTimeout time.Duration
	// SubscriberTTL is how long a subscriber lives after its last Subscribe. Default 180s.
	SubscriberTTL time.Duration
	// Delay coalesces changes: a service is pushed this long after its first pending
	// change, however many changes follow. Default 500ms; at most 1s.
	Delay time.Duration
	// MaxPacket is the largest packet sent, measured after gzip; larger pushes are
	// skipped. Default 65000; at most 65507.
	MaxPacket int
	// MaxSubscribers caps the subscriber table; new subscribers beyond it are refused
	// (refreshes of known ones still work). Default 100000.
	MaxSubscribers int
	// Logger receives debug and warning records; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	switch {
	case c.AckTimeout < 0:
		return c, fmt.Errorf("udppush: AckTimeout %s is negative", c.AckTimeout)
	case c.SubscriberTTL < 0:
		return c, fmt.Errorf("udppush: SubscriberTTL %s is negative", c.SubscriberTTL)
	case c.Delay < 0 || c.Delay > MaxDelay:
		return c, fmt.Errorf("udppush: Delay %s is outside 0..%s", c.Delay, MaxDelay)
	case c.MaxPacket < 0 || c.MaxPacket > maxUDPPayload:
		return c, fmt.Errorf("udppush: MaxPacket %d is outside 0..%d", c.MaxPacket, maxUDPPayload)
	case c.MaxSubscribers < 0:
		return c, fmt.Errorf("udppush: MaxSubscribers %d is negative", c.MaxSubscribers)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.SubscriberTTL == 0 {
		c.SubscriberTTL = DefaultSubscriberTTL
	}
	if c.Delay == 0 {
		c.Delay = DefaultDelay
	}
	if c.MaxPacket == 0 {
		c.MaxPacket = DefaultMaxPacket
	}
	if c.MaxSubscribers == 0 {
		c.MaxSubscribers = DefaultMaxSubscribers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Subscriber is a v1 client that asked for pushes of a service: /instance/list with a
// udpPort. Service + Addr + Clusters identify it; Agent and App are informational.
type Subscriber struct {
	Service  naming.ServiceKey
	Clusters string       // as the client asked, echoed in the pushed ServiceInfo
	Addr     *net.UDPAddr // where pushes go: the client's TCP peer IP and its udpPort
	Agent    string
	App      string
	// Refreshed is when the subscriber last asked (its last Subscribe); Subscribers
	// sets it, Subscribe ignores it.
	Refreshed time.Time
}

// DataFunc returns the ServiceInfo JSON to push for a service as filtered for clusters
// (PROTOCOL.md §3.2, UDP row). Empty data with a nil error means there is nothing to push.
// It runs on the pusher's loop goroutine, one call at a time; a slow DataFunc delays
// pushes and resends but never ServiceChanged.
type DataFunc func(svc naming.ServiceKey, clusters string) ([]byte, error)

// Stats are cumulative counters for metrics, plus two gauges.
type Stats struct {
	Subscribers int // live subscribers (gauge)
	InFlight    int // pushes awaiting an ack (gauge)

	Pushes   uint64 // packets sent, not counting resends
	Encodes  uint64 // packets built: one per change and clusters filter, shared by its subscribers
	Acks     uint64 // acks matched to a push in flight
	Resends  uint64 // pushes sent a second time after AckTimeout
	Failures uint64 // pushes not sent: DataFunc error, too large, or write error
	Unacked  uint64 // pushes given up after the resend went unacked too
	Ignored  uint64 // incoming packets that matched no push in flight
	Rejected uint64 // Subscribe calls refused: unusable address or MaxSubscribers reached
}

// Pusher sends Nacos 1.x UDP pushes. Create it with New, then Start; Stop releases it.
// All methods are safe for concurrent use.
type Pusher struct {
	cfg  Config
	data DataFunc
	log  *slog.Logger
	conn *net.UDPConn
	enc  encoder // loop goroutine only

	kick  chan struct{} // capacity 1: pending has (or had) entries
	stopc chan struct{}
	wg    sync.WaitGroup

	lifeMu   sync.Mutex // guards started/stopped against a Start racing Stop
	started  bool
	stopped  atomic.Bool
	stopOnce sync.Once

	seq atomic.Int64

	mu       sync.Mutex
	pending  map[naming.ServiceKey]struct{}
	subs     map[naming.ServiceKey]map[subID]*subscriber
	nsubs    int
	inflight map[ackKey]*inflight

	queue []*inflight // loop goroutine only; ordered by deadline

	pushes, encodes, acks, resends, failures, unacked, ignored, rejected atomic.Uint64
}

// ackKey names a push in flight as Nacos' UdpPushService does: the sequence and the
// target. A sequence numbers one packet that every subscriber with the same clusters
// filter is sent, so only both together are unique.
type ackKey struct {
	seq  int64
	addr netip.AddrPort
}

type subID struct {
	addr     netip.AddrPort // unmapped, so it compares equal to the source of an ack
	clusters string
}

type subscriber struct {
	sub      Subscriber
	expires  time.Time
	inflight int64 // seq of this subscriber's push awaiting an ack (with its address); 0 = none
}

type inflight struct {
	key      ackKey
	svc      naming.ServiceKey
	id       subID
	packet   []byte
	deadline time.Time
	resent   bool
}

// New validates cfg and opens the UDP socket at cfg.ListenAddr. Nothing is sent before
// Start.
func New(cfg Config, data DataFunc) (*Pusher, error) {
	if data == nil {
		return nil, errors.New("udppush: nil DataFunc")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	laddr, err := net.ResolveUDPAddr("udp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("udppush: listen address %q: %w", cfg.ListenAddr, err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("udppush: listen on %s: %w", cfg.ListenAddr, err)
	}
	p := &Pusher{
		cfg:      cfg,
		data:     data,
		log:      cfg.Logger.With("component", "udppush"),
		conn:     conn,
		kick:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		pending:  make(map[naming.ServiceKey]struct{}),
		subs:     make(map[naming.ServiceKey]map[subID]*subscriber),
		inflight: make(map[ackKey]*inflight),
	}
	// Microseconds since 1970 are about 1.8e15, far below 2^53 (9.0e15), which the
	// Node.js client needs because it parses the sequence as a double; the counter then
	// only ever adds one per push, so sequences stay unique across restarts too.
	p.seq.Store(time.Now().UnixMicro())
	return p, nil
}

// Addr is the local address of the pusher's socket.
func (p *Pusher) Addr() *net.UDPAddr {
	a, _ := p.conn.LocalAddr().(*net.UDPAddr)
	return a
}

// Start launches the ack reader and the push loop. Calls after the first, or after Stop,
// do nothing.
func (p *Pusher) Start() {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.started || p.stopped.Load() {
		return
	}
	p.started = true
	p.wg.Add(2)
	go p.readLoop()
	go p.loop()
}

// Stop closes the socket and waits for both goroutines to end, including a DataFunc call
// in progress. It is idempotent; concurrent callers all return once stopping is done.
func (p *Pusher) Stop() {
	p.stopOnce.Do(func() {
		p.lifeMu.Lock()
		p.stopped.Store(true)
		p.lifeMu.Unlock()
		close(p.stopc)
		// Closing the socket is what unblocks the reader.
		if err := p.conn.Close(); err != nil {
			p.log.Debug("close socket", "err", err)
		}
		p.wg.Wait()
	})
}

// Subscribe adds a subscriber or refreshes its TTL (and Agent/App). Subscribers with an
// address that cannot be a unicast client (nil, port 0, unspecified, multicast, broadcast)
// are refused, so the pusher cannot be pointed at a whole network.
func (p *Pusher) Subscribe(sub Subscriber) {
	if p.stopped.Load() {
		return
	}
	id, ok := subIDOf(sub)
	if !ok {
		p.rejected.Add(1)
		p.log.Debug("subscriber refused: unusable address", "service", sub.Service.String(), "addr", sub.Addr)
		return
	}
	expires := time.Now().Add(p.cfg.SubscriberTTL)
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.subs[sub.Service]
	if s := m[id]; s != nil {
		s.expires = expires
		s.sub.Agent, s.sub.App = sub.Agent, sub.App
		return
	}
	if p.nsubs >= p.cfg.MaxSubscribers {
		p.rejected.Add(1)
		p.log.Debug("subscriber refused: table full", "service", sub.Service.String(), "addr", sub.Addr, "max", p.cfg.MaxSubscribers)
		return
	}
	if m == nil {
		m = make(map[subID]*subscriber)
		p.subs[sub.Service] = m
	}
	sub.Addr = udpAddr(id.addr)
	m[id] = &subscriber{sub: sub, expires: expires}
	p.nsubs++
}

func subIDOf(sub Subscriber) (subID, bool) {
	if sub.Addr == nil {
		return subID{}, false
	}
	ap := sub.Addr.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ap.Port() == 0 ||
		ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return subID{}, false
	}
	return subID{addr: netip.AddrPortFrom(ip, ap.Port()), clusters: sub.Clusters}, true
}

func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

// ServiceChanged marks svc for a push to its subscribers after Config.Delay. It never
// blocks: it records the service in a set and signals the loop without waiting.
func (p *Pusher) ServiceChanged(svc naming.ServiceKey) {
	if p.stopped.Load() {
		return
	}
	p.mu.Lock()
	// A service nobody subscribes to needs no push: a later subscriber gets current data
	// from its own list call.
	if len(p.subs[svc]) == 0 {
		p.mu.Unlock()
		return
	}
	p.pending[svc] = struct{}{}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // a signal is already waiting; the loop will see svc in pending
	}
}

// Subscribers returns copies of the live subscribers of svc, sorted by address and
// clusters.
func (p *Pusher) Subscribers(svc naming.ServiceKey) []Subscriber {
	now := time.Now()
	p.mu.Lock()
	out := make([]Subscriber, 0, len(p.subs[svc]))
	for _, s := range p.subs[svc] {
		if now.Before(s.expires) {
			c := s.sub
			c.Addr = udpAddr(s.sub.Addr.AddrPort())
			c.Refreshed = s.expires.Add(-p.cfg.SubscriberTTL)
			out = append(out, c)
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Addr.AddrPort(), out[j].Addr.AddrPort()
		if a != b {
			return a.Compare(b) < 0
		}
		return out[i].Clusters < out[j].Clusters
	})
	return out
}

// SubscribedServices lists the services with at least one live subscriber, sorted.
func (p *Pusher) SubscribedServices() []naming.ServiceKey {
	now := time.Now()
	p.mu.Lock()
	out := make([]naming.ServiceKey, 0, len(p.subs))
	for svc, m := range p.subs {
		for _, s := range m {
			if now.Before(s.expires) {
				out = append(out, svc)
				break
			}
		}
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Stats returns the counters for metrics.
func (p *Pusher) Stats() Stats {
	p.mu.Lock()
	subs, inflight := p.nsubs, len(p.inflight)
	p.mu.Unlock()
	return Stats{
		Subscribers: subs,
		InFlight:    inflight,
		Pushes:      p.pushes.Load(),
		Encodes:     p.encodes.Load(),
		Acks:        p.acks.Load(),
		Resends:     p.resends.Load(),
		Failures:    p.failures.Load(),
		Unacked:     p.unacked.Load(),
		Ignored:     p.ignored.Load(),
		Rejected:    p.rejected.Load(),
	}
}

func (p *Pusher) stopping() bool {
	select {
	case <-p.stopc:
		return true
	default:
		return false
	}
}
