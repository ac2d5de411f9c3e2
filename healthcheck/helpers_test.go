package healthcheck

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/roster-registry/roster/naming"
)

// waitLimit bounds every wait on a condition in these tests.
const waitLimit = 10 * time.Second

// fakeClock hands each wait of the round loop to the test, which fires it when it wants
// the next round to start. The loop asks for a wait only once the previous round has
// finished, so receiving a wait is also the signal that a round is over.
type fakeClock struct {
	waits chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{waits: make(chan fakeWait, 4096)} }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d: d, fire: make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// next returns the loop's next wait, failing the test if none comes in time.
func (c *fakeClock) next(t testing.TB) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(waitLimit):
		t.Fatalf("the round loop asked for no wait within %v: a round did not finish", waitLimit)
		return fakeWait{}
	}
}

// rounds drives a Prober round by round through its fake clock.
type rounds struct {
	t       testing.TB
	clock   *fakeClock
	pending fakeWait
}

// startRounds starts p, whose Config.Clock is clock, and takes the wait before its first
// round.
func startRounds(t testing.TB, p *Prober, clock *fakeClock) *rounds {
	t.Helper()
	p.Start()
	t.Cleanup(p.Stop)
	return &rounds{t: t, clock: clock, pending: clock.next(t)}
}

// run lets n rounds happen and returns once the last has finished.
func (r *rounds) run(n int) {
	r.t.Helper()
	for range n {
		r.pending.fire <- time.Now()
		r.pending = r.clock.next(r.t)
	}
}

// store plays the registry: Source and Flipper over the same targets. A flip, like the
// Raft command it stands for, stores the new health and moves the revision on.
type store struct {
	mu      sync.Mutex
	targets []Target
	flips   []flip
	failing int // Flip calls still to refuse
}

type flip struct {
	key     string
	healthy bool
	epoch   uint64
	rev     uint64 // the revision the flip was decided under
}

func (s *store) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Target(nil), s.targets...)
}

var errFlipRefused = errors.New("test: flip refused")

func (s *store) Flip(_ context.Context, t Target, healthy bool, epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flips = append(s.flips, flip{key: t.Key(), healthy: healthy, epoch: epoch, rev: t.Revision})
	if s.failing > 0 {
		s.failing--
		return errFlipRefused
	}
	for i := range s.targets {
		if s.targets[i].Key() == t.Key() {
			s.targets[i].Healthy = healthy
			s.targets[i].Revision++
		}
	}
	return nil
}

func (s *store) add(ts ...Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.targets = append(s.targets, ts...)
}

// update changes the stored target with key, as a write through the registry would.
func (s *store) update(key string, f func(*Target)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.targets {
		if s.targets[i].Key() == key {
			f(&s.targets[i])
		}
	}
}

func (s *store) get(key string) Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.targets {
		if t.Key() == key {
			return t
		}
	}
	return Target{}
}

// flipsOf returns the Flip calls made so far, of key only when key is not "".
func (s *store) flipsOf(key string) []flip {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []flip
	for _, f := range s.flips {
		if key == "" || f.key == key {
			out = append(out, f)
		}
	}
	return out
}

// members is a membership view the test changes at will.
type members struct {
	mu    sync.Mutex
	self  string
	live  []string
	epoch uint64
}

func (m *members) Live() (string, []string, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self, append([]string(nil), m.live...), m.epoch
}

func (m *members) set(live []string, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live, m.epoch = live, epoch
}

func alone() *members { return &members{self: "n1", live: []string{"n1"}, epoch: 7} }

// testConfig is a Config for a fake-clock test: the clock decides when rounds run, so
// only the probe timeout is real.
func testConfig(clock *fakeClock) Config {
	return Config{
		Clock:        clock,
		Timeout:      2 * time.Second,
		CheckTimes:   3,
		Workers:      8,
		FlipTimeout:  2 * time.Second,
		AllowedCIDRs: mustCIDRs("127.0.0.0/8"),
		Logger:       slog.New(slog.DiscardHandler),
	}
}

func mustCIDRs(s string) []netip.Prefix {
	p, err := ParseCIDRs(s)
	if err != nil {
		panic(err)
	}
	return p
}

func newProber(t testing.TB, cfg Config, src Source, m Members, f Flipper) *Prober {
	t.Helper()
	p, err := New(cfg, src, m, f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var testService = naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "orders"}

// target is a stored, healthy target at addr ("ip:port") with checker c.
func target(addr string, c Checker) Target {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		panic(err)
	}
	port, _ := strconv.Atoi(portText)
	c.UseInstancePort = true
	return Target{Service: testService, Cluster: naming.DefaultCluster, IP: host, Port: port, Healthy: true, Revision: 1, Checker: &c}
}

// listener is a TCP listener on loopback that accepts and closes, counting accepts; it
// can be closed and opened again on the same port.
type listener struct {
	t    testing.TB
	addr string

	mu       sync.Mutex
	ln       net.Listener
	accepted []string // remote addresses, in accept order
	markers  sync.Map // local addresses of probes' own marker connections
	wg       sync.WaitGroup
}

func listen(t testing.TB, addr string) *listener {
	t.Helper()
	l := &listener{t: t}
	l.open(addr)
	l.addr = l.ln.Addr().String()
	t.Cleanup(l.close)
	return l
}

func (l *listener) open(addr string) {
	l.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		l.t.Fatalf("listen on %s: %v", addr, err)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.accepted = append(l.accepted, c.RemoteAddr().String())
			l.mu.Unlock()
			c.Close()
		}
	}()
}

// probes returns how many connections the listener has taken, not counting its own
// markers. A connection is established by the kernel before the accept loop sees it,
// so probes first connects a marker and waits until the loop accepts it: the accept
// queue is in order, so every connection made before the call has been counted by then.
// A closed listener has nothing in flight and just counts.
func (l *listener) probes() int {
	l.t.Helper()
	l.mu.Lock()
	open := l.ln != nil
	l.mu.Unlock()
	if open {
		c, err := net.Dial("tcp", l.addr)
		if err != nil {
			l.t.Fatalf("marker connection to %s: %v", l.addr, err)
		}
		marker := c.LocalAddr().String()
		c.Close()
		l.markers.Store(marker, true)
		eventually(l.t, "the marker connection to "+l.addr+" accepted", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return slices.Contains(l.accepted, marker)
		})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.accepted {
		if _, isMarker := l.markers.Load(a); !isMarker {
			n++
		}
	}
	return n
}

// reopen listens again on the port the listener had.
func (l *listener) reopen() { l.open(l.addr) }

func (l *listener) close() {
	l.mu.Lock()
	ln := l.ln
	l.ln = nil
	l.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	l.wg.Wait()
}

// statusServer is an HTTP server on loopback answering the status the test sets.
type statusServer struct {
	*httptest.Server
	status atomic.Int64
}

func newStatusServer(t testing.TB, status int) *statusServer {
	t.Helper()
	s := &statusServer{}
	s.status.Store(int64(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *statusServer) addr() string { return s.Listener.Addr().String() }

// eventually polls cond until it holds or waitLimit passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitLimit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads the one sample of a counter or gauge (a *Vec's child included).
func value(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var out []float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			out = append(out, d.Counter.GetValue())
		case d.Gauge != nil:
			out = append(out, d.Gauge.GetValue())
		}
	}
	if len(out) != 1 {
		t.Fatalf("collector yielded %d counter/gauge samples, want 1", len(out))
	}
	return out[0]
}

// series counts the samples a collector yields (a histogram's series, say).
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	return len(ch)
}
