package healthcheck

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Prober probes this member's share of the targets in rounds and reports flips. Create
// it with New, run it with Start, end it with Stop.
type Prober struct {
	cfg     Config
	source  Source
	members Members
	flipper Flipper
	log     *slog.Logger
	metrics *metrics
	probers *probers

	// states holds what this member believes of each target of its share. Only the
	// round loop replaces the map; during a round each state is handed to exactly one
	// worker, and the round waits for every worker before it looks at the map again.
	states map[stateID]*state
	// seeds are stateID's hash seeds: the ids live only in this process.
	seeds [2]maphash.Seed
	work  chan *job

	runMu   sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// state is the prober's belief about one target.
// stateID names a target's state across rounds: two independently seeded 64-bit hashes
// of its Key. A state keyed by the Key itself kept a ≈ 70-byte string per target of
// the share; two targets sharing both hashes (odds below 1e-28 for a million targets)
// would share one count of results.
type stateID [2]uint64

func (p *Prober) stateIDOf(key []byte) stateID {
	return stateID{maphash.Bytes(p.seeds[0], key), maphash.Bytes(p.seeds[1], key)}
}

type state struct {
	// revision is the Target.Revision the belief started from.
	revision uint64
	// healthy is the health this member believes is stored.
	healthy bool
	// streak counts the results in a row that disagree with healthy.
	streak int
	// skipped is why the target was last not probed ("" when it was): the debug line
	// saying so is written once per reason, not once per round.
	skipped string
}

// observe records one result and reports whether the health must flip to it: after
// checkTimes results in a row that disagree with the believed health. A result that
// agrees resets the count, so alternating results never flip.
func (s *state) observe(healthy bool, checkTimes int) bool {
	if healthy == s.healthy {
		s.streak = 0
		return false
	}
	s.streak++
	return s.streak >= checkTimes
}

// flipped records a flip the Flipper accepted.
func (s *state) flipped(healthy bool) {
	s.healthy = healthy
	s.streak = 0
}

// job is one probe of one round.
type job struct {
	// target points into the round's slice of targets rather than copying it: a round
	// holds a job for every target of the share at once.
	target  *Target
	state   *state
	addr    netip.AddrPort
	addrErr error // a port out of range: a failed result, nothing dialed
	epoch   uint64
	round   *roundResult
}

// roundResult is what the workers tell the round loop about one round.
type roundResult struct {
	wg sync.WaitGroup
	// failedFlips counts the Flip calls that returned an error, and lastFlipErr keeps
	// one of those errors: the round logs them once, rather than one line per target
	// while, say, the cluster has no leader.
	failedFlips atomic.Int64
	lastFlipErr atomic.Pointer[error]
}

// New returns a stopped Prober. source, members and flipper must not be nil.
func New(cfg Config, source Source, members Members, flipper Flipper) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if source == nil || members == nil || flipper == nil {
		return nil, errors.New("healthcheck: New needs a Source, a Members and a Flipper")
	}
	cfg = cfg.withDefaults()
	return &Prober{
		cfg:     cfg,
		source:  source,
		members: members,
		flipper: flipper,
		log:     cfg.Logger.With("component", "healthcheck"),
		metrics: newMetrics(),
		probers: newProbers(newDialer(guard{allowed: cfg.AllowedCIDRs})),
		states:  map[stateID]*state{},
		seeds:   [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		work:    make(chan *job),
	}, nil
}

// Collectors returns the prober's Prometheus collectors, for the server to register.
func (p *Prober) Collectors() []prometheus.Collector { return p.metrics.all }

// Start runs the round loop and Config.Workers probe workers, on goroutines the Prober
// owns until Stop. Calls after the first, and any call after Stop, do nothing.
func (p *Prober) Start() {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1 + p.cfg.Workers)
	for range p.cfg.Workers {
		go p.worker(ctx)
	}
	go p.run(ctx)
}

// Stop cancels the probes and any Flip in flight and waits for every goroutine of the
// Prober to return. It is idempotent. A result cut short by Stop counts for nothing.
func (p *Prober) Stop() {
	p.runMu.Lock()
	p.stopped = true
	cancel := p.cancel
	p.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
}

// wait is the pause before the next round: Interval plus a random jitter in [0, Jitter).
func (p *Prober) wait() time.Duration {
	return p.cfg.Interval + rand.N(p.cfg.Jitter)
}

func (p *Prober) run(ctx context.Context) {
	defer p.wg.Done()
	// The workers end when the loop does, after the last round has handed out its jobs.
	defer close(p.work)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.cfg.Clock.After(p.wait()):
		}
		p.round(ctx)
	}
}

// round probes this member's share once and returns when every probe (and the Flip it
// may cause) has finished or Stop has cut it short. Ownership is decided afresh from
// this round's membership: a target that left the share loses its state, so that if it
// comes back it starts again from the stored health.
func (p *Prober) round(ctx context.Context) {
	start := time.Now()
	self, live, epoch := p.members.Live()
	owners := newRing(live)
	targets := p.source.Targets()

	next := make(map[stateID]*state, len(p.states))
	jobs := make([]job, 0, len(p.states))
	var keyBuf []byte
	for i := range targets {
		t := &targets[i]
		if t.checkerType() == TypeNone {
			continue
		}
		keyBuf = t.appendKey(keyBuf[:0])
		id := p.stateIDOf(keyBuf)
		if _, dup := next[id]; dup {
			continue
		}
		if self == "" || owners.ownerOf(fnv64a(keyBuf)) != self {
			continue
		}
		st := p.states[id]
		if st == nil || st.revision != t.Revision {
			st = &state{revision: t.Revision, healthy: t.Healthy}
		}
		next[id] = st
		if !t.checkerType().Probed() {
			p.skip(st, *t, skipUnknown)
			continue
		}
		addr, err := probeAddr(*t)
		if errors.Is(err, ErrNotLiteralIP) {
			p.skip(st, *t, skipNotIP)
			continue
		}
		if err == nil && !p.probers.dialer.guard.permits(addr.Addr()) {
			p.skip(st, *t, skipCIDR)
			continue
		}
		st.skipped = ""
		jobs = append(jobs, job{target: t, state: st, addr: addr, addrErr: err, epoch: epoch})
	}
	p.states = next
	p.metrics.owned.Set(float64(len(next)))

	var res roundResult
dispatch:
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		jobs[i].round = &res
		res.wg.Add(1)
		select {
		case p.work <- &jobs[i]:
		case <-ctx.Done():
			res.wg.Done()
			break dispatch
		}
	}
	res.wg.Wait()
	if n := res.failedFlips.Load(); n > 0 {
		p.log.Warn("health flips not recorded this round; each is retried on its next repeated result",
			"failed", n, "err", *res.lastFlipErr.Load())
	}
	p.metrics.rounds.Inc()
	p.metrics.roundTime.Observe(time.Since(start).Seconds())
}

// skip counts a target of the share that is not probed; its health stays as stored.
func (p *Prober) skip(st *state, t Target, reason string) {
	p.metrics.skipped.WithLabelValues(reason).Inc()
	if st.skipped == reason {
		return
	}
	st.skipped = reason
	p.log.Debug("instance not probed; its health stays as set", "reason", reason,
		"service", t.Service.String(), "cluster", t.Cluster, "ip", t.IP, "port", t.Port, "checker", string(t.checkerType()))
}

func (p *Prober) worker(ctx context.Context) {
	defer p.wg.Done()
	for j := range p.work {
		p.check(ctx, j)
		j.round.wg.Done()
	}
}

// check runs one job: the probe, the result's count, and the Flip when it repeated
// CheckTimes times.
func (p *Prober) check(ctx context.Context, j *job) {
	if ctx.Err() != nil {
		return
	}
	typ := j.target.checkerType().metricLabel()
	err := j.addrErr
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		begin := time.Now()
		err = p.probers.probe(pctx, *j.target, j.addr)
		p.metrics.latency.WithLabelValues(typ).Observe(time.Since(begin).Seconds())
		cancel()
	}
	if ctx.Err() != nil {
		return
	}
	// The dial-time guard refused what the round let through: still no result.
	if errors.Is(err, ErrNotAllowed) {
		p.metrics.skipped.WithLabelValues(skipCIDR).Inc()
		return
	}
	if errors.Is(err, ErrNotLiteralIP) {
		p.metrics.skipped.WithLabelValues(skipNotIP).Inc()
		return
	}
	healthy := err == nil
	result := "success"
	if !healthy {
		result = "failure"
	}
	p.metrics.probes.WithLabelValues(typ, result).Inc()
	if !j.state.observe(healthy, p.cfg.CheckTimes) {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, p.cfg.FlipTimeout)
	ferr := p.flipper.Flip(fctx, *j.target, healthy, j.epoch)
	cancel()
	t := *j.target
	if ferr != nil {
		if ctx.Err() == nil {
			p.metrics.flipErrors.Inc()
			j.round.failedFlips.Add(1)
			j.round.lastFlipErr.Store(&ferr)
			p.log.Debug("health flip not recorded", "err", ferr,
				"service", t.Service.String(), "cluster", t.Cluster, "ip", t.IP, "port", t.Port, "healthy", healthy)
		}
		return
	}
	j.state.flipped(healthy)
	p.metrics.flipped(healthy)
	attrs := []any{"service", t.Service.String(), "cluster", t.Cluster, "ip", t.IP, "port", t.Port,
		"checker", string(t.checkerType()), "healthy", healthy, "results", p.cfg.CheckTimes, "epoch", j.epoch}
	if err != nil {
		attrs = append(attrs, "last_err", err.Error())
	}
	p.log.Info("health flipped", attrs...)
}
