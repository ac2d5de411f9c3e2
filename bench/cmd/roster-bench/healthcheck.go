package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/roster-registry/roster/naming"
)

// The health-check workload: persistent instances whose cluster checker is TCP (the
// default), each with a listener of its own on loopback held by this process, probed
// by one roster node at its default interval. It measures the node's CPU per probe
// and share of a core, probes/s, the Raft writes the probing causes at steady state
// (none: only flips are written), and the time from a listener's stop to the
// subscriber's push that carries the instance as unhealthy.

// healthConfig sizes the workload; the flags of `roster-bench healthcheck`.
type healthConfig struct {
	instances  int
	perService int
	window     time.Duration // the steady-state measurement
	stopped    int           // listeners stopped to time the flips
	flipWait   time.Duration // longest wait for the last flip's push
	// stagger spreads the stops over the longest pause between rounds, so that they
	// fall at every phase of a round.
	stagger time.Duration
	// serverArgs are extra `roster server` flags of this workload (quick mode's short
	// rounds); --server-args comes first and is overridden by them.
	serverArgs []string
}

func defaultHealth() *healthConfig {
	return &healthConfig{instances: 10000, perService: 100, window: 60 * time.Second, stopped: 50, flipWait: 2 * time.Minute,
		stagger: 7 * time.Second} // 2 s + up to 5 s
}

// quickHealth is the suite's quick mode: 500 instances and short rounds (200 ms + up
// to 100 ms instead of 2 s + up to 5 s), so that the flips take about a second.
func quickHealth() *healthConfig {
	return &healthConfig{instances: 500, perService: 50, window: 3 * time.Second, stopped: 10, flipWait: 30 * time.Second,
		stagger: 300 * time.Millisecond, serverArgs: []string{"--health-check-interval", "200ms", "--health-check-jitter", "100ms"}}
}

func (c *healthConfig) define(fs *flag.FlagSet) {
	fs.IntVar(&c.instances, "instances", c.instances, "persistent TCP-checked instances, one loopback listener each (needs that many file descriptors)")
	fs.IntVar(&c.perService, "per-service", c.perService, "instances per service")
	fs.DurationVar(&c.window, "window", c.window, "length of the steady-state measurement")
	fs.IntVar(&c.stopped, "stopped", c.stopped, "listeners stopped (one per service) to time stop -> pushed unhealthy")
	fs.DurationVar(&c.flipWait, "flip-wait", c.flipWait, "longest wait for every stopped instance's unhealthy push")
	fs.DurationVar(&c.stagger, "stagger", c.stagger, "spread the stops over this long (the longest pause between rounds: 7s at the server's defaults)")
}

// healthResult is what the workload measured.
type healthResult struct {
	Instances   int     `json:"instances"`
	Services    int     `json:"services"`
	FDLimit     uint64  `json:"fd_limit"`
	Interval    string  `json:"interval"` // as the server was told ("default": 2s + up to 5s)
	WindowSecs  float64 `json:"window_seconds"`
	Probes      float64 `json:"probes"`
	ProbeFails  float64 `json:"probe_failures"`
	Rounds      float64 `json:"rounds"`
	RoundMeanMS float64 `json:"round_mean_ms"` // time to probe the whole share once
	ServerCPU   float64 `json:"server_cpu_seconds"`
	CorePct     float64 `json:"core_percent"` // server CPU / window, % of one core
	CPUPerProbe float64 `json:"cpu_per_probe_us"`
	ProbesPerS  float64 `json:"probes_per_second"`
	RaftWrites  float64 `json:"raft_writes_steady"` // commit index advance over the window
	RaftPerS    float64 `json:"raft_writes_per_second_steady"`
	Machine     cpuUse  `json:"machine_cpu"`

	Stopped      int            `json:"stopped"`
	FlipLatency  latencySummary `json:"stop_to_pushed_unhealthy"`
	FlipRaft     float64        `json:"raft_writes_during_flips"`
	RaftPerFlip  float64        `json:"raft_writes_per_flip"`
	Unexpected   int            `json:"running_instances_pushed_unhealthy"`
	ServerWarn   int            `json:"server_log_warn_lines"`
	ServerErrors int            `json:"server_log_error_lines"`
}

func (r *healthResult) print(w io.Writer) {
	fmt.Fprintf(w, "healthcheck: %d persistent instances (TCP checks) in %d services, loopback listeners; interval %s; fd limit %d\n",
		r.Instances, r.Services, r.Interval, r.FDLimit)
	fmt.Fprintf(w, "  steady state over %.0fs: %.0f probes (%.0f/s, %.0f failed), %.0f rounds of %.0f ms on average\n",
		r.WindowSecs, r.Probes, r.ProbesPerS, r.ProbeFails, r.Rounds, r.RoundMeanMS)
	fmt.Fprintf(w, "  roster CPU %.2fs = %.1f %% of one core, %.1f us per probe\n", r.ServerCPU, r.CorePct, r.CPUPerProbe)
	fmt.Fprintf(w, "  Raft writes at steady state: %.0f (%.2f/s)\n", r.RaftWrites, r.RaftPerS)
	fmt.Fprintf(w, "  machine: %s\n", r.Machine)
	fmt.Fprintf(w, "  %d listeners stopped -> unhealthy pushed to a gRPC subscriber: %s\n", r.Stopped, r.FlipLatency)
	fmt.Fprintf(w, "  Raft writes during the flips: %.0f (%.2f per flip); running instances pushed unhealthy: %d\n",
		r.FlipRaft, r.RaftPerFlip, r.Unexpected)
	fmt.Fprintf(w, "  server log: %d WARN, %d ERROR lines\n", r.ServerWarn, r.ServerErrors)
}

// runHealthSuite is the suite's workload: the full sizes, or quick mode's.
func runHealthSuite(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	c := defaultHealth()
	if p.quick {
		c = quickHealth()
	}
	rep, err := runHealth(ctx, b, c)
	f := figures{}
	if r, ok := rep.(*healthResult); ok && r != nil {
		if r.Probes > 0 {
			f["core_pct"], f["cpu_per_probe_us"], f["probes_per_s"], f["raft_per_s"] = r.CorePct, r.CPUPerProbe, r.ProbesPerS, r.RaftPerS
		}
		if r.FlipLatency.N > 0 {
			f["flip_p50"], f["flip_p99"], f["raft_per_flip"] = r.FlipLatency.P50MS, r.FlipLatency.P99MS, r.RaftPerFlip
		}
	}
	return f, err
}

// hcIP spreads the listeners over 127.0.1.1-127.0.1.200, so that this workload does not
// take ten thousand ports of 127.0.0.1, which other programs on the machine bind.
func hcIP(i int) string { return "127.0.1." + strconv.Itoa(1+i%200) }

// hcListeners are the instances' processes: one listener each, accepting and closing.
// A stopped one keeps its port bound without listening (holders), so that probes are
// refused and no other program on the machine takes the port and answers them.
type hcListeners struct {
	lns     []net.Listener
	addrs   []*net.TCPAddr
	holders []int
}

func openListeners(n int) (*hcListeners, error) {
	h := &hcListeners{lns: make([]net.Listener, n), addrs: make([]*net.TCPAddr, n)}
	for i := range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(hcIP(i), "0"))
		if err != nil {
			h.close()
			return nil, fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		h.lns[i], h.addrs[i] = ln, ln.Addr().(*net.TCPAddr)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue // EMFILE and the like: the probe fails, the bench says so
				}
				_ = c.Close()
			}
		}()
	}
	return h, nil
}

func (h *hcListeners) addr(i int) (string, int) { return h.addrs[i].IP.String(), h.addrs[i].Port }

// stop closes listener i and holds its port.
func (h *hcListeners) stop(i int) error {
	if h.lns[i] == nil {
		return nil
	}
	_ = h.lns[i].Close()
	h.lns[i] = nil
	fd, err := holdPort(h.addrs[i])
	if err != nil {
		return fmt.Errorf("hold the port of stopped listener %s: %w", h.addrs[i], err)
	}
	h.holders = append(h.holders, fd)
	return nil
}

func (h *hcListeners) close() {
	for i := range h.lns {
		if h.lns[i] != nil {
			_ = h.lns[i].Close()
			h.lns[i] = nil
		}
	}
	for _, fd := range h.holders {
		_ = syscall.Close(fd)
	}
	h.holders = nil
}

// holdPort binds a TCP socket to addr without listening: a SYN to it is answered with
// a reset, and the kernel gives the port to no one else while it is held.
func holdPort(addr *net.TCPAddr) (int, error) {
	ip4 := addr.IP.To4()
	if ip4 == nil {
		return -1, fmt.Errorf("not IPv4: %s", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// As net.Listen sets it: the bind succeeds beside connections the kernel still holds.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	sa := &syscall.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], ip4)
	if err := syscall.Bind(fd, sa); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// raiseFDLimit lifts the soft RLIMIT_NOFILE to the hard one (Go does so at start too)
// and fails when that cannot hold need descriptors.
func raiseFDLimit(need uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	if rl.Cur < need {
		return rl.Cur, fmt.Errorf("the workload needs about %d file descriptors (one listener per instance) and the limit is %d: "+
			"lower --instances or raise the hard limit (ulimit -Hn)", need, rl.Cur)
	}
	return rl.Cur, nil
}

// promSamples reads every sample of the metric family name from /metrics, keyed by
// its labels ("" for none).
func (c *client) promSamples(ctx context.Context, name string) (map[string]float64, error) {
	body, err := c.do(ctx, "GET", "/metrics", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		if !strings.HasPrefix(rest, " ") {
			continue // another family with this prefix
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return nil, fmt.Errorf("%s{%s}: %w", name, labels, err)
		}
		out[labels] = v
	}
	return out, nil
}

// healthCounters are the server's figures the workload differences.
type healthCounters struct {
	probes, failures, rounds, roundSecs, commit, cpu float64
}

func readHealthCounters(ctx context.Context, cl *client, s *server) (healthCounters, error) {
	var h healthCounters
	probes, err := cl.promSamples(ctx, "roster_healthcheck_probes_total")
	if err != nil {
		return h, err
	}
	for labels, v := range probes {
		h.probes += v
		if strings.Contains(labels, `result="failure"`) {
			h.failures += v
		}
	}
	if h.rounds, err = cl.promValue(ctx, "roster_healthcheck_rounds_total"); err != nil {
		return h, err
	}
	if h.roundSecs, err = cl.promValue(ctx, "roster_healthcheck_round_duration_seconds_sum"); err != nil {
		return h, err
	}
	if h.commit, err = cl.promValue(ctx, "roster_raft_commit_index"); err != nil {
		return h, err
	}
	h.cpu, err = s.cpuSeconds()
	return h, err
}

// runHealth registers the instances, waits until the prober has probed all of them
// twice, measures the steady state over the window, then stops one listener per
// service for --stopped services, staggered over one longest pause between rounds,
// and times each stop to the push that carries the instance as unhealthy.
func runHealth(ctx context.Context, b *bench, c *healthConfig) (report, error) {
	if c.instances < 1 || c.perService < 1 || c.stopped < 0 || c.window <= 0 || c.stagger < 0 {
		return nil, fmt.Errorf("--instances, --per-service and --window must be positive, --stopped and --stagger not negative")
	}
	services := (c.instances + c.perService - 1) / c.perService
	if c.stopped > services {
		return nil, fmt.Errorf("--stopped %d: at most one per service (%d services), so that no service loses every healthy instance", c.stopped, services)
	}
	limit, err := raiseFDLimit(uint64(c.instances) + 1024)
	if err != nil {
		return nil, err
	}
	res := &healthResult{Instances: c.instances, Services: services, FDLimit: limit, Interval: "default (2s + up to 5s)"}
	if len(c.serverArgs) > 0 {
		res.Interval = strings.Join(c.serverArgs, " ")
	}
	lns, err := openListeners(c.instances)
	if err != nil {
		return nil, err
	}
	defer lns.close()
	b.logf("healthcheck: %d listeners open on 127.0.1.1-200", c.instances)

	s, err := b.newServer("healthcheck", c.serverArgs...)
	if err != nil {
		return nil, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return nil, withLog(s, err)
	}
	cl := newClient(s.httpAddr, 64)
	defer cl.close()
	svcName := func(i int) string { return "bench.health." + strconv.Itoa(i/c.perService) }
	reg := b.runN(ctx, "healthcheck: register", c.instances, 64, func(ctx context.Context, i int) error {
		ip, port := lns.addr(i)
		return cl.register(ctx, &spec{Service: svcName(i), IP: ip, Port: port, Weight: 1})
	})
	if reg.Errors > 0 {
		return res, withLog(s, fmt.Errorf("register: %d errors: %v", reg.Errors, reg.FirstErrors))
	}
	b.logf("healthcheck: %d registered at %.0f/s; waiting for two full rounds", reg.OK, reg.Rate)

	// Steady state: the prober owns every instance and has probed all of them twice
	// since the last registration.
	var startRounds float64 = -1
	waitUntil := time.Now().Add(5 * time.Minute)
	for {
		owned, err := cl.promValue(ctx, "roster_healthcheck_owned_targets")
		if err != nil {
			return res, withLog(s, err)
		}
		rounds, err := cl.promValue(ctx, "roster_healthcheck_rounds_total")
		if err != nil {
			return res, withLog(s, err)
		}
		if int(owned) == c.instances && startRounds < 0 {
			startRounds = rounds
		}
		if startRounds >= 0 && rounds >= startRounds+2 {
			break
		}
		if time.Now().After(waitUntil) {
			return res, withLog(s, fmt.Errorf("no steady state after 5 minutes: %v of %d instances owned, %v rounds", owned, c.instances, rounds))
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}

	before, err := readHealthCounters(ctx, cl, s)
	if err != nil {
		return res, withLog(s, err)
	}
	meter := startCPU(s)
	t0 := time.Now()
	b.logf("healthcheck: measuring the steady state for %v", c.window)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(c.window):
	}
	after, err := readHealthCounters(ctx, cl, s)
	if err != nil {
		return res, withLog(s, err)
	}
	elapsed := time.Since(t0).Seconds()
	res.Machine = meter.stop()
	res.WindowSecs = elapsed
	res.Probes = after.probes - before.probes
	res.ProbeFails = after.failures - before.failures
	res.Rounds = after.rounds - before.rounds
	if res.Rounds > 0 {
		res.RoundMeanMS = (after.roundSecs - before.roundSecs) / res.Rounds * 1000
	}
	res.ServerCPU = after.cpu - before.cpu
	res.CorePct = res.ServerCPU / elapsed * 100
	res.ProbesPerS = res.Probes / elapsed
	if res.Probes > 0 {
		res.CPUPerProbe = res.ServerCPU / res.Probes * 1e6
	}
	res.RaftWrites = after.commit - before.commit
	res.RaftPerS = res.RaftWrites / elapsed
	b.logf("healthcheck: %.0f probes/s, roster %.1f %% of a core, %.1f us/probe, %.0f Raft writes, %.0f failed probes",
		res.ProbesPerS, res.CorePct, res.CPUPerProbe, res.RaftWrites, res.ProbeFails)
	if res.Probes == 0 {
		return res, withLog(s, errors.New("no probe in the window"))
	}
	if res.ProbeFails > 0 {
		return res, withLog(s, fmt.Errorf("%.0f probes of running listeners failed in the window", res.ProbeFails))
	}

	if c.stopped > 0 {
		if err := measureFlips(ctx, b, s, cl, c, lns, services, svcName, res); err != nil {
			return res, withLog(s, err)
		}
	}
	res.ServerWarn, res.ServerErrors = s.logLevels()
	_, err = b.stopServer(s)
	return res, err
}

// measureFlips subscribes over gRPC to the services whose listener it will stop, stops
// one listener in each, a pause's worth apart, and times each stop to the first push
// that lists the instance unhealthy.
func measureFlips(ctx context.Context, b *bench, s *server, cl *client, c *healthConfig, lns *hcListeners,
	services int, svcName func(int) string, res *healthResult) error {
	// One instance in each of c.stopped services spread over all of them.
	victims := make([]int, c.stopped)
	index := map[string]int{} // ip:port -> position in victims
	for k := range victims {
		svc := k * services / c.stopped
		i := min(svc*c.perService+k%c.perService, c.instances-1)
		victims[k] = i
		ip, port := lns.addr(i)
		index[net.JoinHostPort(ip, strconv.Itoa(port))] = k
	}
	var (
		mu         sync.Mutex
		stoppedAt  = make([]time.Time, c.stopped)
		pushedAt   = make([]time.Time, c.stopped)
		unexpected = map[string]bool{}
		seen       int
		allSeen    = make(chan struct{})
	)
	onPush := func(body []byte, at time.Time) {
		var m struct {
			ServiceInfo naming.ServiceInfoJSON `json:"serviceInfo"`
		}
		if json.Unmarshal(body, &m) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, h := range m.ServiceInfo.Hosts {
			if h.Healthy {
				continue
			}
			hp := net.JoinHostPort(h.IP, strconv.Itoa(h.Port))
			k, ok := index[hp]
			if !ok {
				unexpected[hp] = true
				continue
			}
			if !stoppedAt[k].IsZero() && pushedAt[k].IsZero() {
				pushedAt[k] = at
				if seen++; seen == c.stopped {
					close(allSeen)
				}
			}
		}
	}
	sub, err := gdial(ctx, s.grpcAddr, onPush)
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	defer sub.close()
	for _, i := range victims {
		if _, err := sub.call(ctx, "SubscribeServiceRequest", fmt.Sprintf(
			`{"serviceName":%q,"groupName":"DEFAULT_GROUP","namespace":"public","subscribe":true,"clusters":"","module":"naming"}`, svcName(i))); err != nil {
			return fmt.Errorf("subscribe %s: %w", svcName(i), err)
		}
	}
	commit0, err := cl.promValue(ctx, "roster_raft_commit_index")
	if err != nil {
		return err
	}
	gap := c.stagger / time.Duration(c.stopped)
	b.logf("healthcheck: stopping %d listeners, one every %v", c.stopped, gap)
	for k, i := range victims {
		mu.Lock()
		stoppedAt[k] = time.Now()
		mu.Unlock()
		if err := lns.stop(i); err != nil {
			return err
		}
		time.Sleep(gap)
	}
	select {
	case <-allSeen:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(c.flipWait):
		mu.Lock()
		n := seen
		mu.Unlock()
		return fmt.Errorf("only %d of %d stopped instances pushed unhealthy within %v", n, c.stopped, c.flipWait)
	}
	// Let any flip the prober might wrongly add land before the commit index is read.
	time.Sleep(c.stagger)
	commit1, err := cl.promValue(ctx, "roster_raft_commit_index")
	if err != nil {
		return err
	}
	mu.Lock()
	var lat latencies
	for k := range victims {
		lat.add(pushedAt[k].Sub(stoppedAt[k]))
	}
	res.Unexpected = len(unexpected)
	mu.Unlock()
	res.Stopped = c.stopped
	res.FlipLatency = lat.summarize()
	res.FlipRaft = commit1 - commit0
	res.RaftPerFlip = res.FlipRaft / float64(c.stopped)
	b.logf("healthcheck: stop -> pushed unhealthy %s; %.0f Raft writes for %d flips", res.FlipLatency, res.FlipRaft, c.stopped)
	if res.Unexpected > 0 {
		return fmt.Errorf("%d running instances were pushed unhealthy", res.Unexpected)
	}
	return nil
}
