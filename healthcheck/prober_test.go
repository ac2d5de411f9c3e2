package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wantFlips fails unless the Flip calls for key are exactly want (by new health).
func wantFlips(t *testing.T, s *store, key string, want ...bool) {
	t.Helper()
	got := s.flipsOf(key)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].healthy == want[i]
	}
	if !ok {
		t.Fatalf("flips of %s = %+v, want healthy = %v", key, got, want)
	}
}

func TestFlipsAfterCheckTimesResults(t *testing.T) {
	srv := newStatusServer(t, http.StatusOK)
	tg := target(srv.addr(), Checker{Type: TypeHTTP, Path: "/health"})
	s := &store{}
	s.add(tg)
	clock := newFakeClock()
	p := newProber(t, testConfig(clock), s, alone(), s)
	r := startRounds(t, p, clock)

	r.run(3)
	wantFlips(t, s, tg.Key()) // healthy as stored: nothing to write

	srv.status.Store(http.StatusInternalServerError)
	r.run(2)
	wantFlips(t, s, tg.Key()) // CheckTimes-1 failures: no flip
	r.run(1)
	wantFlips(t, s, tg.Key(), false)
	if f := s.flipsOf(tg.Key())[0]; f.epoch != 7 || f.rev != 1 {
		t.Fatalf("flip carried epoch %d, revision %d; want the round's epoch 7 and the results' revision 1", f.epoch, f.rev)
	}
	r.run(5)
	wantFlips(t, s, tg.Key(), false) // still failing: the health already says so

	srv.status.Store(http.StatusOK)
	r.run(2)
	wantFlips(t, s, tg.Key(), false)
	r.run(1)
	wantFlips(t, s, tg.Key(), false, true)
	if f := s.flipsOf(tg.Key())[1]; f.rev != 2 {
		t.Fatalf("second flip decided under revision %d, want 2 (the first flip's)", f.rev)
	}

	if got := value(t, p.metrics.flips.WithLabelValues("false")); got != 1 {
		t.Errorf("flips{healthy=false} = %v, want 1", got)
	}
	if got := value(t, p.metrics.flips.WithLabelValues("true")); got != 1 {
		t.Errorf("flips{healthy=true} = %v, want 1", got)
	}
	if got := value(t, p.metrics.probes.WithLabelValues("http", "failure")); got != 8 {
		t.Errorf("probes{http,failure} = %v, want 8", got)
	}
	if got := value(t, p.metrics.probes.WithLabelValues("http", "success")); got != 6 {
		t.Errorf("probes{http,success} = %v, want 6", got)
	}
	if got := value(t, p.metrics.owned); got != 1 {
		t.Errorf("owned targets = %v, want 1", got)
	}
	if got := series(p.metrics.latency); got != 1 {
		t.Errorf("latency histogram series = %d, want 1 (http)", got)
	}
}

func TestAlternatingResultsNeverFlip(t *testing.T) {
	srv := newStatusServer(t, http.StatusOK)
	tg := target(srv.addr(), Checker{Type: TypeHTTP})
	s := &store{}
	s.add(tg)
	clock := newFakeClock()
	r := startRounds(t, newProber(t, testConfig(clock), s, alone(), s), clock)
	for i := range 12 {
		// fail, fail, pass, fail, fail, pass, ...: never three failures in a row.
		if i%3 == 2 {
			srv.status.Store(http.StatusOK)
		} else {
			srv.status.Store(http.StatusServiceUnavailable)
		}
		r.run(1)
	}
	wantFlips(t, s, tg.Key())
}

func TestRevisionChangeResetsCount(t *testing.T) {
	srv := newStatusServer(t, http.StatusInternalServerError)
	tg := target(srv.addr(), Checker{Type: TypeHTTP})
	s := &store{}
	s.add(tg)
	clock := newFakeClock()
	r := startRounds(t, newProber(t, testConfig(clock), s, alone(), s), clock)

	r.run(2)
	s.update(tg.Key(), func(t *Target) { t.Revision++ }) // e.g. a metadata update
	r.run(2)
	wantFlips(t, s, tg.Key()) // 2 + 2 failures, but never 3 under one revision
	r.run(1)
	wantFlips(t, s, tg.Key(), false)

	// A write that stores a health (a manual one, or another member's flip) is believed:
	// with the stored health now agreeing with the results there is nothing to flip.
	srv.status.Store(http.StatusOK)
	r.run(2)
	s.update(tg.Key(), func(t *Target) { t.Revision++; t.Healthy = true })
	r.run(5)
	wantFlips(t, s, tg.Key(), false)
}

func TestFailedFlipIsRetried(t *testing.T) {
	srv := newStatusServer(t, http.StatusInternalServerError)
	tg := target(srv.addr(), Checker{Type: TypeHTTP})
	s := &store{failing: 2}
	s.add(tg)
	clock := newFakeClock()
	p := newProber(t, testConfig(clock), s, alone(), s)
	r := startRounds(t, p, clock)
	r.run(3)
	wantFlips(t, s, tg.Key(), false) // refused
	r.run(1)
	wantFlips(t, s, tg.Key(), false, false) // refused again: the count still stands
	r.run(1)
	wantFlips(t, s, tg.Key(), false, false, false) // recorded
	r.run(3)
	wantFlips(t, s, tg.Key(), false, false, false)
	if got := s.get(tg.Key()); got.Healthy || got.Revision != 2 {
		t.Fatalf("stored target = %+v, want unhealthy at revision 2", got)
	}
	if got := value(t, p.metrics.flipErrors); got != 2 {
		t.Errorf("flip errors = %v, want 2", got)
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Interval, cfg.Jitter = 0, 0 // the defaults: 2 s + [0, 5 s)
	s := &store{}
	r := startRounds(t, newProber(t, cfg, s, alone(), s), clock)
	lo, hi := DefaultInterval, DefaultInterval+DefaultJitter
	minSeen, maxSeen := hi, time.Duration(0)
	for range 400 {
		d := r.pending.d
		if d < lo || d >= hi {
			t.Fatalf("wait %v outside [%v, %v)", d, lo, hi)
		}
		minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		r.run(1)
	}
	// 400 uniform draws: the extremes come within 5% of the bounds but for a chance
	// of about 2·0.95^400 ≈ 2e-9.
	if minSeen > lo+DefaultJitter/20 || maxSeen < hi-DefaultJitter/20 {
		t.Fatalf("waits spread over [%v, %v] only; want nearly all of [%v, %v)", minSeen, maxSeen, lo, hi)
	}
}

func TestTCPListenerStopsAndStarts(t *testing.T) {
	s := &store{}
	var lns []*listener
	for range 5 {
		l := listen(t, "127.0.0.1:0")
		lns = append(lns, l)
		s.add(target(l.addr, Checker{Type: TypeTCP}))
	}
	clock := newFakeClock()
	p := newProber(t, testConfig(clock), s, alone(), s)
	r := startRounds(t, p, clock)
	r.run(2)
	for _, l := range lns {
		if got := l.probes(); got != 2 {
			t.Fatalf("listener %s accepted %d connections in 2 rounds, want 2", l.addr, got)
		}
	}

	down := lns[2]
	key := target(down.addr, Checker{Type: TypeTCP}).Key()
	down.close()
	r.run(p.cfg.CheckTimes - 1)
	wantFlips(t, s, "")
	r.run(1)
	wantFlips(t, s, key, false)
	if n := len(s.flipsOf("")); n != 1 {
		t.Fatalf("%d flips, want exactly one (of %s)", n, down.addr)
	}
	r.run(2)
	wantFlips(t, s, key, false)

	down.reopen()
	r.run(p.cfg.CheckTimes - 1)
	wantFlips(t, s, key, false)
	r.run(1)
	wantFlips(t, s, key, false, true)
	if n := len(s.flipsOf("")); n != 2 {
		t.Fatalf("%d flips, want two (both of %s)", n, down.addr)
	}
	if got := value(t, p.metrics.owned); got != 5 {
		t.Errorf("owned targets = %v, want 5", got)
	}
}

func TestCheckPortIsProbedInsteadOfInstancePort(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	closed := listen(t, "127.0.0.1:0")
	closed.close()
	tg := target(closed.addr, Checker{Type: TypeTCP})
	tg.Checker.UseInstancePort = false
	tg.Checker.CheckPort = mustPort(t, l.addr)
	bad := target(l.addr, Checker{Type: TypeTCP})
	bad.Cluster = "BADPORT"
	bad.Checker.UseInstancePort = false // CheckPort 0: fails without dialing
	s := &store{}
	s.add(tg, bad)
	clock := newFakeClock()
	r := startRounds(t, newProber(t, testConfig(clock), s, alone(), s), clock)
	r.run(3)
	wantFlips(t, s, tg.Key())
	wantFlips(t, s, bad.Key(), false)
	if got := l.probes(); got != 3 {
		t.Fatalf("check port accepted %d connections, want 3 (the zero check port dials nothing)", got)
	}
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNoneIsNeverProbed(t *testing.T) {
	l := listen(t, "127.0.0.1:0")
	none := target(l.addr, Checker{Type: TypeNone})
	none.Healthy = false
	unknown := target(l.addr, Checker{Type: "MYSQL"})
	unknown.Cluster = "DB"
	s := &store{}
	s.add(none, unknown)
	clock := newFakeClock()
	p := newProber(t, testConfig(clock), s, alone(), s)
	r := startRounds(t, p, clock)
	r.run(4)
	if got := l.probes(); got != 0 {
		t.Fatalf("%d connections to a NONE/unknown checker's instance, want 0", got)
	}
	wantFlips(t, s, "")
	if got := value(t, p.metrics.skipped.WithLabelValues(skipUnknown)); got != 4 {
		t.Errorf("skipped{checker} = %v, want 4 (the unknown type, each round)", got)
	}
	if got := value(t, p.metrics.owned); got != 1 {
		t.Errorf("owned targets = %v, want 1 (NONE is not counted)", got)
	}
}

func TestAllowListIsNeverDialedOutside(t *testing.T) {
	// Listeners on 127.0.0.2 stand for an address outside the list: loopback, so that
	// nothing leaves the machine even if the guard were broken.
	outside := listen(t, "127.0.0.2:0")
	inside := listen(t, "127.0.0.1:0")
	s := &store{}
	for _, c := range []Checker{{Type: TypeTCP}, {Type: TypeHTTP}, {Type: TypeGRPC}} {
		tg := target(outside.addr, c)
		tg.Cluster = string(c.Type)
		s.add(tg)
		sick := tg
		sick.Cluster += "-sick"
		sick.Healthy = false
		s.add(sick)
	}
	mapped := target(outside.addr, Checker{Type: TypeTCP})
	mapped.IP = "::ffff:127.0.0.2"
	mapped.Cluster = "MAPPED"
	s.add(mapped)
	named := target(inside.addr, Checker{Type: TypeTCP})
	named.IP = "localhost"
	named.Cluster = "NAMED"
	s.add(named)

	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.AllowedCIDRs = mustCIDRs("127.0.0.1/32,::/0")
	cfg.CheckTimes = 1
	var logged syncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newProber(t, cfg, s, alone(), s)
	r := startRounds(t, p, clock)
	r.run(5)
	if got := outside.probes(); got != 0 {
		t.Fatalf("the address outside the list accepted %d connections, want 0", got)
	}
	if got := inside.probes(); got != 0 {
		t.Fatalf("a target named by host name was dialed %d times, want 0", got)
	}
	wantFlips(t, s, "")
	if got := value(t, p.metrics.skipped.WithLabelValues(skipCIDR)); got != 7*5 {
		t.Errorf("skipped{cidr} = %v, want 35 (7 targets, 5 rounds)", got)
	}
	if got := value(t, p.metrics.skipped.WithLabelValues(skipNotIP)); got != 5 {
		t.Errorf("skipped{not_ip} = %v, want 5", got)
	}
	// One debug line per target, not one per round.
	if lines := strings.Count(logged.String(), "instance not probed"); lines != 8 {
		t.Errorf("%d debug lines about unprobed instances, want 8 (one per target):\n%s", lines, logged.String())
	}
	if !strings.Contains(logged.String(), "reason=cidr") || !strings.Contains(logged.String(), "reason=not_ip") {
		t.Errorf("the debug lines do not name both reasons:\n%s", logged.String())
	}

	// The dialer refuses on its own, before any connect: the pre-check and, below it,
	// the Control function that sees the address the kernel is about to connect to.
	d := p.probers.dialer
	ctx := context.Background()
	for _, addr := range []string{outside.addr, "[::ffff:127.0.0.2]:" + strconv.Itoa(mustPort(t, outside.addr))} {
		if _, err := d.dial(ctx, "tcp", addr); !isErr(err, ErrNotAllowed) {
			t.Errorf("dial(%s) = %v, want ErrNotAllowed", addr, err)
		}
		if _, err := d.net.DialContext(ctx, "tcp", addr); !isErr(err, ErrNotAllowed) {
			t.Errorf("the raw dialer's Control let %s through: %v", addr, err)
		}
	}
	if _, err := d.dial(ctx, "tcp", "localhost:"+strconv.Itoa(mustPort(t, inside.addr))); !isErr(err, ErrNotLiteralIP) {
		t.Errorf("dial(localhost) = %v, want ErrNotLiteralIP", err)
	}
	for _, tc := range []Checker{{Type: TypeTCP}, {Type: TypeHTTP}, {Type: TypeGRPC}} {
		tg := target(outside.addr, tc)
		addr, _ := probeAddr(tg)
		if err := p.probers.probe(ctx, tg, addr); err == nil {
			t.Errorf("%s probe of %s succeeded, want a refusal", tc.Type, outside.addr)
		}
	}
	if got := outside.probes(); got != 0 {
		t.Fatalf("the address outside the list accepted %d connections, want 0", got)
	}
}

func TestOwnershipSplitsAndMovesTargets(t *testing.T) {
	// Three probers share one store, as three members share the Raft state; each
	// target's listener counts who probed it.
	s := &store{}
	lns := map[string]*listener{}
	for i := range 30 {
		// 127.0.0.3, not 127.0.0.1: the in-process nodes of other packages' tests, run
		// at the same time by go test, probe their own instances on 127.0.0.1, and one of
		// their ports may be reused here; a stray probe would break the exact count.
		l := listen(t, "127.0.0.3:0")
		tg := target(l.addr, Checker{Type: TypeTCP})
		tg.Cluster = "C" + strconv.Itoa(i)
		s.add(tg)
		lns[tg.Key()] = l
	}
	ids := []string{"a", "b", "c"}
	views := map[string]*members{}
	drivers := map[string]*rounds{}
	for _, id := range ids {
		views[id] = &members{self: id, live: ids, epoch: 1}
		clock := newFakeClock()
		cfg := testConfig(clock)
		cfg.CheckTimes = 1
		drivers[id] = startRounds(t, newProber(t, cfg, s, views[id], s), clock)
	}
	for _, id := range ids {
		drivers[id].run(1)
	}
	share := map[string]int{}
	for key, l := range lns {
		if got := l.probes(); got != 1 {
			t.Fatalf("%s was probed %d times in one round of each member, want exactly 1", key, got)
		}
		share[Owner(key, ids)]++
	}
	for _, id := range ids {
		if share[id] == 0 {
			t.Errorf("member %s owns none of 30 targets", id)
		}
	}

	// b dies: a and c see it gone, and their next round covers b's share too.
	for _, id := range []string{"a", "c"} {
		views[id].set([]string{"a", "c"}, 2)
		drivers[id].run(1)
	}
	for key, l := range lns {
		if got := l.probes(); got != 2 {
			t.Fatalf("%s was probed %d times after one more round of a and c, want 2", key, got)
		}
	}
	wantFlips(t, s, "")
}

func TestConcurrencyIsBounded(t *testing.T) {
	var inFlight, peak, served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // slow on purpose: the probes must overlap to be counted
		served.Add(1)
	}))
	t.Cleanup(srv.Close)
	s := &store{}
	for i := range 20 {
		tg := target(srv.Listener.Addr().String(), Checker{Type: TypeHTTP})
		tg.Cluster = "C" + strconv.Itoa(i)
		s.add(tg)
	}
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Workers = 2
	r := startRounds(t, newProber(t, cfg, s, alone(), s), clock)
	r.run(1)
	if got := served.Load(); got != 20 {
		t.Fatalf("served %d probes in a round, want 20", got)
	}
	if got := peak.Load(); got != 2 {
		t.Fatalf("at most %d probes were in flight at once, want 2 (the pool size)", got)
	}
}

func TestStopCancelsProbesInFlight(t *testing.T) {
	var entered, cancelled atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		select {
		case <-r.Context().Done(): // the prober hung up
			cancelled.Add(1)
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(srv.Close)
	s := &store{}
	for i := range 10 {
		tg := target(srv.Listener.Addr().String(), Checker{Type: TypeHTTP})
		tg.Cluster = "C" + strconv.Itoa(i)
		s.add(tg)
	}
	before := runtime.NumGoroutine()
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Workers = 4
	cfg.Timeout = time.Minute
	p := newProber(t, cfg, s, alone(), s)
	p.Start()
	clock.next(t).fire <- time.Now()
	eventually(t, "4 probes in flight", func() bool { return entered.Load() == 4 })

	stopped := make(chan struct{})
	begin := time.Now()
	go func() { p.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitLimit):
		t.Fatalf("Stop did not return within %v with probes in flight", waitLimit)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Stop took %v with 4 probes in flight, want well under 1 s", took)
	}
	wantFlips(t, s, "") // a probe cut short is no result
	eventually(t, "the server saw every probe hang up", func() bool { return cancelled.Load() == 4 })
	if got := entered.Load(); got != 4 {
		t.Errorf("%d probes reached the server, want 4: no probe may start once Stop was called", got)
	}
	eventually(t, "goroutines back to the count before the prober", func() bool {
		return runtime.NumGoroutine() <= before
	})
	p.Stop() // idempotent
	p.Start()
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("Start after Stop left %d goroutines beyond the %d before", n-before, before)
	}
}

func TestStoppedTargetsLeaveState(t *testing.T) {
	srv := newStatusServer(t, http.StatusInternalServerError)
	tg := target(srv.addr(), Checker{Type: TypeHTTP})
	s := &store{}
	s.add(tg)
	m := &members{self: "a", live: []string{"a"}, epoch: 1}
	clock := newFakeClock()
	p := newProber(t, testConfig(clock), s, m, s)
	r := startRounds(t, p, clock)
	r.run(2)
	// The target moves away for a round (another member joined and took it) and back:
	// the two failures seen before must not count.
	other := "b"
	for Owner(tg.Key(), []string{"a", other}) != other {
		other += "b"
	}
	m.set([]string{"a", other}, 2)
	r.run(1)
	if got := value(t, p.metrics.owned); got != 0 {
		t.Fatalf("owned targets = %v after the target moved to %s, want 0", got, other)
	}
	m.set([]string{"a"}, 3)
	r.run(2)
	wantFlips(t, s, tg.Key())
	r.run(1)
	wantFlips(t, s, tg.Key(), false)
	if f := s.flipsOf(tg.Key())[0]; f.epoch != 3 {
		t.Fatalf("flip carried epoch %d, want 3", f.epoch)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// syncBuffer is a bytes.Buffer the prober's goroutines may log into.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
