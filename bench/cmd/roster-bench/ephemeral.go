package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ephemeralConfig: the memory one node needs to hold --instances ephemeral instances
// and whether it keeps them all healthy under 5s beats.
type ephemeralConfig struct {
	instances        int
	perService       int
	clients          int
	beatInterval     time.Duration
	duration         time.Duration
	heartbeatTimeout time.Duration
	ipDeleteTimeout  time.Duration
	fillTimeout      time.Duration
	beatClient       string
}

func defaultEphemeral() *ephemeralConfig {
	return &ephemeralConfig{
		instances: 100000, perService: 100, clients: 64,
		beatInterval: 5 * time.Second, duration: 30 * time.Second,
		heartbeatTimeout: 15 * time.Second, ipDeleteTimeout: 30 * time.Second,
		fillTimeout: 5 * time.Minute, beatClient: "raw",
	}
}

func (c *ephemeralConfig) define(fs *flag.FlagSet) {
	fs.IntVar(&c.instances, "instances", c.instances, "ephemeral instances to register and keep alive")
	fs.IntVar(&c.perService, "per-service", c.perService, "instances per service")
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent HTTP clients")
	fs.DurationVar(&c.beatInterval, "beat-interval", c.beatInterval, "each instance is beaten once per interval")
	fs.DurationVar(&c.duration, "duration", c.duration, "how long to keep beating once all are registered")
	fs.DurationVar(&c.heartbeatTimeout, "heartbeat-timeout", c.heartbeatTimeout, "server --heartbeat-timeout")
	fs.DurationVar(&c.ipDeleteTimeout, "ip-delete-timeout", c.ipDeleteTimeout, "server --ip-delete-timeout")
	fs.DurationVar(&c.fillTimeout, "fill-timeout", c.fillTimeout, "longest time allowed for registering all instances")
	fs.StringVar(&c.beatClient, "beat-client", c.beatClient, "raw: hand-written HTTP/1.1 keep-alive requests (cheap on the bench's CPU); nethttp: net/http's client")
}

// memPoint is the server's memory at one moment.
type memPoint struct {
	RSSBytes       int64 `json:"rss_bytes"`
	HeapInuseBytes int64 `json:"go_heap_inuse_bytes"`
}

type ephemeralResult struct {
	Instances         int            `json:"instances"`
	BeatClient        string         `json:"beat_client"`
	Services          int            `json:"services"`
	Clients           int            `json:"clients"`
	BeatIntervalS     float64        `json:"beat_interval_seconds"`
	DurationS         float64        `json:"beat_phase_seconds"`
	HeartbeatTimeoutS float64        `json:"heartbeat_timeout_seconds"`
	MemBefore         memPoint       `json:"mem_before"`
	MemRegistered     memPoint       `json:"mem_after_register"`
	MemEnd            memPoint       `json:"mem_end"`
	RSSPer100k        int64          `json:"rss_bytes_per_100k_instances"`
	Register          loadResult     `json:"register"`
	Beats             int            `json:"beats"`
	BeatsDuringFill   int            `json:"beats_during_register"`
	FillCPU           cpuUse         `json:"cpu_register"`
	BeatErrors        int            `json:"beat_errors"`
	BeatFirstErrors   []string       `json:"beat_first_errors,omitempty"`
	BeatRate          float64        `json:"beats_per_second"`
	BeatRateNeeded    float64        `json:"beats_per_second_needed"`
	BeatLatency       latencySummary `json:"beat_latency"`
	BeatGap           latencySummary `json:"beat_gap"` // client side, between contacts of one instance
	GapsOverTimeout   int            `json:"gaps_over_heartbeat_timeout"`
	CPU               cpuUse         `json:"cpu_beat_phase"`
	Listed            int            `json:"listed"`
	Unhealthy         int            `json:"unhealthy"`
	Missing           int            `json:"missing"`
	ServerCount       int            `json:"server_instance_count"`
	ExpiryUnhealthy   int            `json:"server_log_unhealthy_flips"`
	ExpiryRemoved     int            `json:"server_log_removals"`
	ServerLogWarn     int            `json:"server_log_warn_lines"`
	ServerLogError    int            `json:"server_log_error_lines"`
}

// beatWorker owns every clients-th instance. It registers them one by one and beats
// each from its registration on, as a client would, so that instances registered
// early stay alive however long the whole fill takes.
type beatWorker struct {
	own       []int // instance numbers
	next      int   // own[:next] have been tried
	queue     []dueBeat
	regErrs   errorLog
	regLat    latencies
	beatErrs  errorLog
	beatLat   latencies // beat phase only
	gaps      latencies // beat phase only
	beats     int       // beat phase only
	fillBeats int       // before the beat phase
	overTO    int
	conn      *beatConn // nil: beats go through the shared net/http client
}

type dueBeat struct {
	i    int       // instance number
	last time.Time // when the last register or beat was sent
}

func runEphemeral(ctx context.Context, b *bench, c *ephemeralConfig) (report, error) {
	if c.instances < 1 || c.perService < 1 || c.clients < 1 || c.beatInterval <= 0 || c.duration <= 0 {
		return nil, fmt.Errorf("--instances, --per-service, --clients, --beat-interval and --duration must be positive")
	}
	if c.beatClient != "raw" && c.beatClient != "nethttp" {
		return nil, fmt.Errorf("--beat-client: want raw or nethttp, got %q", c.beatClient)
	}
	s, err := b.newServer("ephemeral",
		"--heartbeat-timeout", c.heartbeatTimeout.String(), "--ip-delete-timeout", c.ipDeleteTimeout.String())
	if err != nil {
		return nil, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return nil, withLog(s, err)
	}
	return runEphemeralAt(ctx, b, c, s.httpAddr, s)
}

// runEphemeralAt drives the ephemeral workload against httpAddr; s is the Roster
// process behind it, or nil for a peer (no memory, CPU or log figures then).
func runEphemeralAt(ctx context.Context, b *bench, c *ephemeralConfig, httpAddr string, s *server) (report, error) {
	services := (c.instances + c.perService - 1) / c.perService
	res := &ephemeralResult{Instances: c.instances, BeatClient: c.beatClient, Services: services, Clients: c.clients,
		BeatIntervalS: c.beatInterval.Seconds(), DurationS: c.duration.Seconds(), HeartbeatTimeoutS: c.heartbeatTimeout.Seconds(),
		BeatRateNeeded: float64(c.instances) / c.beatInterval.Seconds()}
	peer := s == nil
	if peer {
		s = &server{name: "peer", httpAddr: httpAddr}
	}
	var err error
	cl := newClient(httpAddr, c.clients)
	defer cl.close()
	mem := func() (memPoint, error) {
		if peer {
			return memPoint{}, nil
		}
		rss, err := s.rss()
		if err != nil {
			return memPoint{}, withLog(s, err)
		}
		heap, _ := cl.promValue(ctx, "go_memstats_heap_inuse_bytes")
		return memPoint{RSSBytes: rss, HeapInuseBytes: int64(heap)}, nil
	}
	if res.MemBefore, err = mem(); err != nil {
		return res, err
	}

	workers := make([]*beatWorker, c.clients)
	for w := range workers {
		workers[w] = &beatWorker{}
		if c.beatClient == "raw" {
			workers[w].conn = newBeatConn(httpAddr)
		}
	}
	for i := range c.instances {
		workers[i%c.clients].own = append(workers[i%c.clients].own, i)
	}
	var (
		tried      atomic.Int64 // registrations answered, ok or not
		registered = make(chan struct{})
		beatPhase  atomic.Bool
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	reqCtx := context.WithoutCancel(ctx)
	b.logf("ephemeral: registering %d instances over %d services with %d clients, beating every %v",
		c.instances, services, c.clients, c.beatInterval)
	regStart := time.Now()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(reqCtx, cl, c, stop, &beatPhase, func() {
				if tried.Add(1) == int64(c.instances) {
					close(registered)
				}
			})
		}()
	}
	var done atomic.Int64
	stopProgress := b.progress("ephemeral: registered", c.instances, &done)
	progressTick := time.NewTicker(time.Second)
	fillDeadline := time.After(c.fillTimeout)
	fillCPU := startCPU(s)
	var fillFailure error
wait:
	for {
		select {
		case <-registered:
			break wait
		case <-progressTick.C:
			done.Store(tried.Load())
		case <-fillDeadline:
			fillFailure = fmt.Errorf("registering %d instances took longer than --fill-timeout %v (%d answered)",
				c.instances, c.fillTimeout, tried.Load())
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	progressTick.Stop()
	stopProgress()
	regElapsed := time.Since(regStart)
	res.FillCPU = fillCPU.stop()

	// All registered: memory now, then the timed beat phase. The workers go on
	// beating throughout; only the counting starts here.
	var phase time.Duration
	if fillFailure == nil && ctx.Err() == nil {
		if res.MemRegistered, err = mem(); err != nil {
			close(stop)
			wg.Wait()
			return res, err
		}
		b.logf("ephemeral: all registered in %.1fs; beating for %v", regElapsed.Seconds(), c.duration)
		cpu := startCPU(s)
		phaseStart := time.Now()
		beatPhase.Store(true)
		select {
		case <-time.After(c.duration):
		case <-ctx.Done():
		}
		phase = time.Since(phaseStart)
		res.CPU = cpu.stop()
	}
	close(stop)
	wg.Wait()
	if res.MemEnd, err = mem(); err != nil {
		return res, err
	}

	var regParts, beatParts, gapParts []latencies
	var regErrN, beatErrN int
	var regFirst, beatFirst []string
	for _, w := range workers {
		n, first := w.regErrs.snapshot()
		regErrN += n
		regFirst = append(regFirst, first...)
		n, first = w.beatErrs.snapshot()
		beatErrN += n
		beatFirst = append(beatFirst, first...)
		regParts = append(regParts, w.regLat)
		beatParts = append(beatParts, w.beatLat)
		gapParts = append(gapParts, w.gaps)
		res.Beats += w.beats
		res.BeatsDuringFill += w.fillBeats
		res.GapsOverTimeout += w.overTO
	}
	reg := merge(regParts)
	res.Register = loadResult{OK: len(reg), Errors: regErrN, Seconds: regElapsed.Seconds(),
		Rate: float64(len(reg)) / regElapsed.Seconds(), Latency: reg.summarize(), FirstErrors: firstN(regFirst)}
	res.BeatErrors, res.BeatFirstErrors = beatErrN, firstN(beatFirst)
	if phase > 0 {
		res.BeatRate = float64(res.Beats) / phase.Seconds()
	}
	res.BeatLatency = merge(beatParts).summarize()
	res.BeatGap = merge(gapParts).summarize()
	if res.MemRegistered.RSSBytes > 0 {
		res.RSSPer100k = (res.MemRegistered.RSSBytes - res.MemBefore.RSSBytes) * 100000 / int64(c.instances)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	// What does the server list now? Every instance registered and beaten must be
	// there and healthy.
	acked := make([]bool, c.instances)
	for _, w := range workers {
		for _, q := range w.queue {
			acked[q.i] = true
		}
	}
	if err := b.checkEphemeral(ctx, cl, c, services, acked, res); err != nil {
		return res, withLog(s, err)
	}
	if sc, err := cl.counts(ctx); err == nil {
		res.ServerCount = sc.InstanceCount
	}
	var stopErr error
	if !peer {
		_, stopErr = b.stopServer(s)
		res.ServerLogWarn, res.ServerLogError = s.logLevels()
		res.ExpiryUnhealthy, res.ExpiryRemoved = s.expiryCounts()
	}
	problems := []error{fillFailure, stopErr}
	if res.Register.Errors > 0 {
		problems = append(problems, fmt.Errorf("%d registrations failed", res.Register.Errors))
	}
	if res.BeatErrors > 0 {
		problems = append(problems, fmt.Errorf("%d beats failed", res.BeatErrors))
	}
	if res.Unhealthy > 0 || res.Missing > 0 {
		problems = append(problems, fmt.Errorf("at the end %d instances were unhealthy and %d missing", res.Unhealthy, res.Missing))
	}
	return res, withLog(s, errors.Join(problems...))
}

// run is one worker's loop until stop closes. While instances remain to register it
// alternates a due beat with a registration, so neither starves the other when the
// machine cannot keep up with both; then it beats each instance once per interval
// after its last contact, and sleeps while none is due.
func (w *beatWorker) run(ctx context.Context, cl *client, c *ephemeralConfig, stop <-chan struct{}, beatPhase *atomic.Bool, answered func()) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer w.closeConn()
	registerNext := false
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := time.Now()
		beatDue := len(w.queue) > 0 && !w.queue[0].last.Add(c.beatInterval).After(now)
		canRegister := w.next < len(w.own)
		switch {
		case beatDue && !(canRegister && registerNext):
			w.beat(ctx, cl, c, now, beatPhase.Load())
			registerNext = true
		case canRegister:
			w.register(ctx, cl, c, now)
			answered()
			registerNext = false
		case len(w.queue) == 0:
			<-stop
			return
		default:
			timer.Reset(time.Until(w.queue[0].last.Add(c.beatInterval)))
			select {
			case <-stop:
				return
			case <-timer.C:
			}
		}
	}
}

func (w *beatWorker) closeConn() {
	if w.conn != nil {
		w.conn.close()
	}
}

func (w *beatWorker) beat(ctx context.Context, cl *client, c *ephemeralConfig, now time.Time, inPhase bool) {
	d := w.queue[0]
	w.queue = w.queue[1:]
	gap := now.Sub(d.last)
	var err error
	if w.conn != nil {
		err = w.conn.beat(ephemeralService(d.i, c.perService), ipFor(d.i), ephemeralPort)
	} else {
		err = cl.beat(ctx, ephemeralService(d.i, c.perService), ipFor(d.i), ephemeralPort)
	}
	took := time.Since(now)
	w.queue = append(w.queue, dueBeat{i: d.i, last: now})
	if err != nil {
		w.beatErrs.add(err)
	}
	if !inPhase {
		w.fillBeats++
		return
	}
	w.beats++
	w.gaps.add(gap)
	if gap > c.heartbeatTimeout {
		w.overTO++
	}
	if err == nil {
		w.beatLat.add(took)
	}
}

func (w *beatWorker) register(ctx context.Context, cl *client, c *ephemeralConfig, now time.Time) {
	i := w.own[w.next]
	w.next++
	err := cl.register(ctx, &spec{
		Service: ephemeralService(i, c.perService), IP: ipFor(i), Port: ephemeralPort, Weight: 1, Ephemeral: true,
		Metadata: map[string]string{"app": "bench", "version": "1.0.0", "zone": "zone-a"},
	})
	if err != nil {
		w.regErrs.add(err)
		return
	}
	w.regLat.add(time.Since(now))
	w.queue = append(w.queue, dueBeat{i: i, last: now})
}

const ephemeralPort = 9000

func ephemeralService(i, perService int) string {
	return "bench.ephemeral." + strconv.Itoa(i/perService)
}

// checkEphemeral lists every service and counts the expected instances that are
// missing or unhealthy. A list that hit the protect threshold shows every host as
// healthy; then all of them are in fact unhealthy.
func (b *bench) checkEphemeral(ctx context.Context, cl *client, c *ephemeralConfig, services int, acked []bool, res *ephemeralResult) error {
	var mu sync.Mutex
	lr := b.runN(ctx, "", services, min(16, c.clients), func(ctx context.Context, svc int) error {
		info, err := cl.list(ctx, ephemeralService(svc*c.perService, c.perService))
		if err != nil {
			return err
		}
		listed := map[string]bool{}
		for _, h := range info.Hosts {
			listed[h.IP+":"+strconv.Itoa(h.Port)] = h.Healthy && !info.ReachProtectionThreshold
		}
		var missing, unhealthy int
		for i := svc * c.perService; i < min((svc+1)*c.perService, c.instances); i++ {
			if !acked[i] {
				continue
			}
			healthy, ok := listed[ipFor(i)+":"+strconv.Itoa(ephemeralPort)]
			switch {
			case !ok:
				missing++
			case !healthy:
				unhealthy++
			}
		}
		mu.Lock()
		res.Listed += len(info.Hosts)
		res.Missing += missing
		res.Unhealthy += unhealthy
		mu.Unlock()
		return nil
	})
	if lr.Errors > 0 {
		return fmt.Errorf("%d of %d list calls failed: %v", lr.Errors, services, lr.FirstErrors)
	}
	return nil
}

func firstN(s []string) []string {
	if len(s) > maxErrorSamples {
		return s[:maxErrorSamples]
	}
	return s
}

func (r *ephemeralResult) print(w io.Writer) {
	fmt.Fprintf(w, "== ephemeral-memory: %d ephemeral instances (%d services), %d clients, beat every %gs for %gs\n",
		r.Instances, r.Services, r.Clients, r.BeatIntervalS, r.DurationS)
	fmt.Fprintf(w, "  RSS:        before %s, after registering %s, at the end %s  (+%s per 100 000 instances)\n",
		mib(r.MemBefore.RSSBytes), mib(r.MemRegistered.RSSBytes), mib(r.MemEnd.RSSBytes), mib(r.RSSPer100k))
	fmt.Fprintf(w, "  Go heap:    before %s, after registering %s, at the end %s (in use)\n",
		mib(r.MemBefore.HeapInuseBytes), mib(r.MemRegistered.HeapInuseBytes), mib(r.MemEnd.HeapInuseBytes))
	fmt.Fprintf(w, "  register:   %d ok, %d errors in %.1fs = %.0f/s, with %d beats interleaved; latency %s\n",
		r.Register.OK, r.Register.Errors, r.Register.Seconds, r.Register.Rate, r.BeatsDuringFill, r.Register.Latency)
	fmt.Fprintf(w, "              CPU: %s\n", r.FillCPU)
	for _, e := range r.Register.FirstErrors {
		fmt.Fprintf(w, "              error: %s\n", e)
	}
	fmt.Fprintf(w, "  beats:      (%s client) %d in the beat phase = %.0f/s (needed %.0f/s), %d errors (whole run)\n",
		r.BeatClient, r.Beats, r.BeatRate, r.BeatRateNeeded, r.BeatErrors)
	for _, e := range r.BeatFirstErrors {
		fmt.Fprintf(w, "              error: %s\n", e)
	}
	fmt.Fprintf(w, "  latency:    %s\n", r.BeatLatency)
	fmt.Fprintf(w, "  beat gap:   %s; %d gaps over the %gs heartbeat timeout\n", r.BeatGap, r.GapsOverTimeout, r.HeartbeatTimeoutS)
	fmt.Fprintf(w, "  CPU:        %s\n", r.CPU)
	if r.Beats > 0 {
		fmt.Fprintf(w, "              server CPU per beat %.0fus, bench CPU per beat %.0fus\n",
			r.CPU.ServerSeconds/float64(r.Beats)*1e6, r.CPU.BenchSeconds/float64(r.Beats)*1e6)
	}
	fmt.Fprintf(w, "  at the end: %d listed, %d unhealthy, %d missing (server instanceCount %d)\n",
		r.Listed, r.Unhealthy, r.Missing, r.ServerCount)
	fmt.Fprintf(w, "  server log: %d WARN, %d ERROR lines; expiry turned instances unhealthy %d times and removed %d during the run\n",
		r.ServerLogWarn, r.ServerLogError, r.ExpiryUnhealthy, r.ExpiryRemoved)
}
