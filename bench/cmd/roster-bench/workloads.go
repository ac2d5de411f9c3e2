package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// registerOp is the persistent registration every write-rate row uses: one of 64
// services, a new address each time, four metadata entries.
func registerOp(cl *client) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		return cl.register(ctx, &spec{
			Service: "bench.register." + strconv.Itoa(i%64),
			IP:      ipFor(i), Port: 20000 + i%40000, Weight: 1,
			Metadata: map[string]string{"app": "bench", "version": "1.0.0", "zone": "zone-a", "idx": strconv.Itoa(i)},
		})
	}
}

// runRegister1: persistent registrations/s on one node with 64 clients, beside raw
// bbolt (one fsync'd transaction per write) and an embedded etcd in a process of its
// own (64 concurrent puts of the same payload), all on the same disk; then the
// latency of registrations at half the measured rate.
func runRegister1(ctx context.Context, b *bench, p params, runIdx int) (figures, error) {
	f := figures{}
	s, err := b.newServer("register1")
	if err != nil {
		return f, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return f, withLog(s, err)
	}
	cl := newClient(s.httpAddr, p.clients)
	defer cl.close()
	base := runIdx * 10_000_000
	wait := b.profile(s, "register1", p.duration)
	before := readWritePath(ctx, cl)
	r := b.runFor(ctx, "register1: roster", p.duration, p.clients, base, registerOp(cl))
	wait()
	if r.Errors > 0 {
		return f, withLog(s, fmt.Errorf("%d registrations failed: %v", r.Errors, r.FirstErrors))
	}
	if d, ok := readWritePath(ctx, cl).since(before); ok && d.appends > 0 {
		f["per_append"] = float64(r.OK) / d.appends
		f["per_fsync"] = float64(r.OK) / (d.appends + d.commits)
		f["per_fsm_batch"] = float64(r.OK) / max(1, d.batches)
		b.logf("register1: %.1f registrations per Raft log append, %.1f per log entry, %.1f per FSM batch, %.1f per fsync (%.0f log appends, %.0f entries, %.0f fsm.db commits)",
			f["per_append"], float64(r.OK)/max(1, d.entries), f["per_fsm_batch"], f["per_fsync"], d.appends, d.entries, d.commits)
	}
	f["roster"] = r.Rate
	f["roster_p99"] = r.Latency.P99MS
	b.logf("register1: roster %.0f/s (p50 %.1fms p99 %.1fms)", r.Rate, r.Latency.P50MS, r.Latency.P99MS)

	// Latency at half the peak just measured, with requests sent on a fixed schedule
	// (an open loop: a slow answer does not delay the next request).
	half := r.Rate / 2
	lr := b.runRate(ctx, p.duration, half, 4*p.clients, base+r.OK+r.Errors+1_000_000, registerOp(cl))
	if lr.Errors > 0 {
		return f, withLog(s, fmt.Errorf("at half rate: %d registrations failed: %v", lr.Errors, lr.FirstErrors))
	}
	f["lat_rate"] = lr.Rate
	f["lat_p50"], f["lat_p99"], f["lat_p999"] = lr.Latency.P50MS, lr.Latency.P99MS, lr.Latency.P999MS
	b.logf("register1: at %.0f/s sent: p50 %.2fms p99 %.2fms p99.9 %.2fms", half, lr.Latency.P50MS, lr.Latency.P99MS, lr.Latency.P999MS)
	cl.close()
	if _, err := b.stopServer(s); err != nil {
		return f, err
	}

	raw, err := openRawBolt(b.workDir, "raw-serial.db")
	if err != nil {
		return f, err
	}
	fr, err := raw.run(ctx, p.duration, 1)
	raw.close()
	if err != nil {
		return f, err
	}
	f["raw"] = fr.Rate
	b.logf("register1: raw bbolt %.0f commits/s", fr.Rate)

	ep, stop, err := b.startEmbeddedEtcd(ctx)
	if err != nil {
		return f, fmt.Errorf("embedded etcd: %w", err)
	}
	put, _, err := etcdLoad(ctx, b, ep, p.duration, p.clients, false)
	stop()
	if err != nil {
		return f, fmt.Errorf("embedded etcd: %w", err)
	}
	f["etcd"] = put
	b.logf("register1: embedded etcd %.0f puts/s", put)
	return f, nil
}

// writePath are the server's group-commit counters (server/metrics.go); ok is false for
// a build without them.
type writePath struct {
	ok                        bool
	appends, batches, commits float64
	entries                   float64 // 0 when the build does not count them
}

func readWritePath(ctx context.Context, cl *client) writePath {
	var w writePath
	var err error
	if w.appends, err = cl.promValue(ctx, "roster_raft_log_appends_total"); err != nil {
		return w
	}
	if w.batches, err = cl.promValue(ctx, "roster_fsm_batches_total"); err != nil {
		return w
	}
	if w.commits, err = cl.promValue(ctx, "roster_fsm_commits_total"); err != nil {
		return w
	}
	w.entries, _ = cl.promValue(ctx, "roster_raft_log_entries_total")
	w.ok = true
	return w
}

func (w writePath) since(before writePath) (writePath, bool) {
	return writePath{ok: true, appends: w.appends - before.appends, batches: w.batches - before.batches,
		commits: w.commits - before.commits, entries: w.entries - before.entries}, w.ok && before.ok
}

// runRate sends op at rate per second for d from up to conc workers; each latency is
// measured from the request's scheduled time, so queueing in the generator counts.
func (b *bench) runRate(ctx context.Context, d time.Duration, rate float64, conc, first int, op func(ctx context.Context, i int) error) loadResult {
	if rate <= 0 {
		return loadResult{}
	}
	type job struct {
		i  int
		at time.Time
	}
	jobs := make(chan job, conc)
	var (
		wg    sync.WaitGroup
		errs  errorLog
		parts = make([]latencies, conc)
	)
	reqCtx := context.WithoutCancel(ctx)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := op(reqCtx, j.i); err != nil {
					errs.add(err)
					continue
				}
				parts[w].add(time.Since(j.at))
			}
		}()
	}
	t0 := time.Now()
	gap := time.Duration(float64(time.Second) / rate)
	n := int(d.Seconds() * rate)
	for k := 0; k < n && ctx.Err() == nil; k++ {
		at := t0.Add(time.Duration(k) * gap)
		if dl := time.Until(at); dl > 0 {
			time.Sleep(dl)
		}
		jobs <- job{first + k, at}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(t0)
	lat := merge(parts)
	nerr, firstErrs := errs.snapshot()
	return loadResult{OK: len(lat), Errors: nerr, Seconds: elapsed.Seconds(), Rate: float64(len(lat)) / elapsed.Seconds(),
		Latency: lat.summarize(), FirstErrors: firstErrs, samples: lat}
}

// runList: instance/list queries/s on services of 10 and 1000 instances, beside a bare
// net/http handler (in a process of its own) that returns the same bytes.
func runList(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	f := figures{}
	s, err := b.newServer("list")
	if err != nil {
		return f, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return f, withLog(s, err)
	}
	cl := newClient(s.httpAddr, p.clients)
	defer cl.close()
	if err := fillList(ctx, b, cl); err != nil {
		return f, withLog(s, err)
	}
	for _, n := range []int{10, 1000} {
		svc := "bench.list." + strconv.Itoa(n)
		path := "/nacos/v1/ns/instance/list?serviceName=" + svc
		body, err := cl.do(ctx, http.MethodGet, "/nacos/v1/ns/instance/list", map[string][]string{"serviceName": {svc}})
		if err != nil {
			return f, withLog(s, err)
		}
		wait := b.profile(s, "list"+strconv.Itoa(n), p.duration)
		r := b.runFor(ctx, "", p.duration, p.clients, 0, getOp(cl, path))
		wait()
		if r.Errors > 0 {
			return f, withLog(s, fmt.Errorf("list %d: %d errors: %v", n, r.Errors, r.FirstErrors))
		}
		f["roster"+strconv.Itoa(n)] = r.Rate
		bare, stop, err := b.startBare(ctx, body)
		if err != nil {
			return f, err
		}
		bc := newClient(bare, p.clients)
		br := b.runFor(ctx, "", p.duration, p.clients, 0, getOp(bc, path))
		bc.close()
		stop()
		if br.Errors > 0 {
			return f, fmt.Errorf("bare %d: %d errors: %v", n, br.Errors, br.FirstErrors)
		}
		f["bare"+strconv.Itoa(n)] = br.Rate
		b.logf("list: %d instances (%d bytes): roster %.0f/s, bare net/http %.0f/s", n, len(body), r.Rate, br.Rate)
	}
	return f, nil
}

// fillList registers the two list services: 10 and 1000 persistent instances.
func fillList(ctx context.Context, b *bench, cl *client) error {
	specs := make([]*spec, 0, 1010)
	for _, n := range []int{10, 1000} {
		for i := range n {
			specs = append(specs, &spec{Service: "bench.list." + strconv.Itoa(n), IP: ipFor(i), Port: 8080, Weight: 1,
				Metadata: map[string]string{"app": "bench", "version": "1.0.0", "zone": "zone-a"}})
		}
	}
	r := b.runN(ctx, "", len(specs), 64, func(ctx context.Context, i int) error { return cl.register(ctx, specs[i]) })
	if r.Errors > 0 {
		return fmt.Errorf("list fill: %d errors: %v", r.Errors, r.FirstErrors)
	}
	return nil
}

// getOp is a GET of a fixed path whose answer must be 200.
func getOp(cl *client, path string) func(ctx context.Context, i int) error {
	return func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.base+path, nil)
		if err != nil {
			return err
		}
		resp, err := cl.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		buf := make([]byte, 32<<10)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return nil
	}
}

// startBare runs `roster-bench bare-http` serving body, and returns its address.
func (b *bench) startBare(ctx context.Context, body []byte) (string, func(), error) {
	file := filepath.Join(b.workDir, "bare-body.json")
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return "", nil, err
	}
	addr, err := freePort()
	if err != nil {
		return "", nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	stop, err := b.startChild(ctx, "bare-http", self, []string{"bare-http", "--addr", addr, "--body", file}, nil,
		func() bool { return tcpUp(addr) })
	return addr, stop, err
}

// serveBare is the reference for list queries: a bare net/http server that answers
// every request with the same bytes and content type as Roster's list answer.
func serveBare(addr, bodyFile string) error {
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return http.ListenAndServe(addr, h)
}

func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startChild starts a reference or peer process with its output in the log dir,
// waits until up() is true (at most 2 minutes), and returns its stop (SIGTERM, then
// SIGKILL after 10s). The bench's killAll stops it too.
func (b *bench) startChild(ctx context.Context, name, bin string, args, env []string, up func() bool) (func(), error) {
	logPath := filepath.Join(b.logDir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	logf.Close()
	b.lastChildPID = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// The process group: a shell script's java child goes too.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		})
	}
	b.children = append(b.children, stop)
	deadline := time.Now().Add(2 * time.Minute)
	for !up() {
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited before it was up; log %s:\n%s", name, logPath, tail(logPath, 15))
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s not up after 2m; log %s:\n%s", name, logPath, tail(logPath, 15))
		}
	}
	return stop, nil
}

func tail(path string, n int) string {
	s := &server{logPath: path}
	return s.logTail(n)
}

// runEphemeralRamp: how many ephemeral instances one node keeps alive at 5 s beats.
// Steps of growing size each start a fresh node, register every instance and beat it
// for a while; the ramp stops at the first step where a beat fails, an instance
// expires, or the beat p99 exceeds 100 ms. held is the largest step that passed.
func runEphemeralRamp(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	f := figures{"held": 0}
	steps := []int{50000, 100000, 150000}
	c := defaultEphemeral()
	c.duration = 20 * time.Second
	if p.quick {
		steps = []int{2000}
		c.duration, c.beatInterval = 2*time.Second, time.Second
	}
	for _, n := range steps {
		c.instances = n
		rep, err := runEphemeral(ctx, b, c)
		b.killAll()
		r, _ := rep.(*ephemeralResult)
		if r == nil {
			return f, err
		}
		expired := r.Missing + r.Unhealthy + r.ExpiryRemoved + r.ExpiryUnhealthy
		ok := err == nil && r.BeatErrors == 0 && expired == 0 && r.BeatLatency.P99MS <= 100
		b.logf("ephemeral: step %d: beats %.0f/s p50 %.2fms p99 %.2fms, %d beat errors, %d expired: %v",
			n, r.BeatRate, r.BeatLatency.P50MS, r.BeatLatency.P99MS, r.BeatErrors, expired, map[bool]string{true: "pass", false: "stop"}[ok])
		if !ok {
			if f["held"] == 0 {
				f["expired"] = float64(expired)
				f["beats"], f["beat_p50"], f["beat_p99"] = r.BeatRate, r.BeatLatency.P50MS, r.BeatLatency.P99MS
				f["cpu_per_beat_us"] = cpuPerBeat(r)
			}
			if err != nil && !errors.Is(err, context.Canceled) && f["held"] == 0 {
				return f, err
			}
			break
		}
		f["held"] = float64(n)
		f["expired"] = float64(expired)
		f["beats"], f["beat_p50"], f["beat_p99"] = r.BeatRate, r.BeatLatency.P50MS, r.BeatLatency.P99MS
		f["cpu_per_beat_us"] = cpuPerBeat(r)
		f["rss_per_100k_mib"] = float64(r.RSSPer100k) / (1 << 20)
	}
	return f, nil
}

// cpuPerBeat is the server's CPU time per beat answered during the beat phase, in µs.
func cpuPerBeat(r *ephemeralResult) float64 {
	if r.Beats == 0 {
		return 0
	}
	return r.CPU.ServerSeconds / float64(r.Beats) * 1e6
}

// runMemory: resident memory holding 100k persistent plus 100k ephemeral instances
// (long expiry timeouts, so no beats are needed while it is read), and the time from
// exec to /readyz = 200 with an empty data dir and with the 100k persistent on disk.
func runMemory(ctx context.Context, b *bench, p params, _ int) (figures, error) {
	f := figures{}
	n := 100000
	if p.quick {
		n = 2000
	}
	empty, err := b.newServer("ready-empty")
	if err != nil {
		return f, err
	}
	d, err := empty.start(ctx, b.opts.readyTimeout)
	if err != nil {
		return f, withLog(empty, err)
	}
	f["ready_empty"] = ms(d)
	if _, err := b.stopServer(empty); err != nil {
		return f, err
	}

	s, err := b.newServer("memory", "--heartbeat-timeout", "1h", "--ip-delete-timeout", "2h")
	if err != nil {
		return f, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return f, withLog(s, err)
	}
	cl := newClient(s.httpAddr, p.clients)
	pcpu0, pcpuErr := s.cpuSeconds()
	wait := b.profile(s, "memory-fill-persistent", 5*time.Second)
	fill := b.runN(ctx, "memory: persistent fill", n, p.clients, func(ctx context.Context, i int) error {
		return cl.register(ctx, persistentSpec(i, 100))
	})
	wait()
	cl.close()
	if fill.Errors > 0 {
		return f, withLog(s, fmt.Errorf("persistent fill: %d errors: %v", fill.Errors, fill.FirstErrors))
	}
	f["fill_rate"] = fill.Rate
	if pcpu1, err := s.cpuSeconds(); err == nil && pcpuErr == nil && fill.OK > 0 {
		f["persistent_cpu_us_per_reg"] = (pcpu1 - pcpu0) / float64(fill.OK) * 1e6
		b.logf("memory: persistent fill %.0f/s, server CPU %.1fus per registration", fill.Rate, f["persistent_cpu_us_per_reg"])
	}
	if _, err := b.stopServer(s); err != nil {
		return f, err
	}
	d, err = s.start(ctx, b.opts.readyTimeout)
	if err != nil {
		return f, withLog(s, err)
	}
	f["ready_full"] = ms(d)
	b.logf("memory: ready empty %.0fms, with %d persistent %.0fms", f["ready_empty"], n, f["ready_full"])

	cl = newClient(s.httpAddr, p.clients)
	defer cl.close()
	cpu0, cpuErr := s.cpuSeconds()
	eph := b.runN(ctx, "memory: ephemeral fill", n, p.clients, func(ctx context.Context, i int) error {
		sp := persistentSpec(i, 100)
		sp.Service = "bench.ephemeral." + strconv.Itoa(i/100)
		sp.Ephemeral = true
		return cl.register(ctx, sp)
	})
	if eph.Errors > 0 {
		return f, withLog(s, fmt.Errorf("ephemeral fill: %d errors: %v", eph.Errors, eph.FirstErrors))
	}
	// Server CPU per ephemeral registration: what a memory limit (--memory-limit) costs
	// shows here, as collections while the heap grows, less blurred by the machine's
	// load than the rate.
	if cpu1, err := s.cpuSeconds(); err == nil && cpuErr == nil && eph.OK > 0 {
		f["ephemeral_fill_rate"] = eph.Rate
		f["ephemeral_cpu_us_per_reg"] = (cpu1 - cpu0) / float64(eph.OK) * 1e6
		b.logf("memory: ephemeral fill %.0f/s, server CPU %.1fus per registration", eph.Rate, f["ephemeral_cpu_us_per_reg"])
	}
	counts, err := cl.counts(ctx)
	if err != nil {
		return f, withLog(s, err)
	}
	if counts.InstanceCount != 2*n {
		return f, withLog(s, fmt.Errorf("the server counts %d instances, want %d", counts.InstanceCount, 2*n))
	}
	time.Sleep(2 * time.Second) // let the collector return what the fills left
	rss, err := s.rss()
	if err != nil {
		return f, withLog(s, err)
	}
	f["rss_mib"] = float64(rss) / (1 << 20)
	fsmMapped, err1 := s.fileRSS("fsm.db")
	raftMapped, err2 := s.fileRSS("raft.db")
	if err1 == nil && err2 == nil {
		f["rss_fsm_db_mmap_mib"] = float64(fsmMapped) / (1 << 20)
		f["rss_raft_db_mmap_mib"] = float64(raftMapped) / (1 << 20)
		b.logf("memory: of which mmap of fsm.db %.1f MiB, of raft.db %.1f MiB", f["rss_fsm_db_mmap_mib"], f["rss_raft_db_mmap_mib"])
	}
	b.heapProfile(s, "memory")
	b.logf("memory: RSS %.1f MiB with %d persistent + %d ephemeral", f["rss_mib"], n, n)
	_, err = b.stopServer(s)
	return f, err
}
