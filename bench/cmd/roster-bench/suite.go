package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// figures are one run's measured numbers of one workload, by key.
type figures map[string]float64

// params size a suite run: the full defaults, or --quick's small ones.
type params struct {
	quick    bool
	duration time.Duration // length of each timed load phase
	clients  int
	catchUp  int // writes the catching-up node misses; 0: the default
}

// workload is one setup (servers started, filled) measured in one run. Its figures
// are named "<workload>.<key>" in the table's rows.
type workload struct {
	name string
	// peer workloads are skipped in quick mode and report why they could not run.
	peer bool
	run  func(ctx context.Context, b *bench, p params, runIdx int) (figures, error)
}

// notAvailable is a peer that cannot be had or run here; the rows say why.
type notAvailable struct{ why string }

func (e *notAvailable) Error() string { return e.why }

// rowDef is one line of the table: a figure, the reference measured beside it, and
// the goal.
type rowDef struct {
	label    string
	key      string // "<workload>.<key>"
	unit     string
	ref      string // the reference's key, "" for none
	refLabel string
	// goal is printed; met decides it from the medians (nil: no goal on this row).
	goal string
	met  func(v, ref float64) bool
}

func atLeast(x float64) func(v, ref float64) bool {
	return func(v, ref float64) bool { return ref > 0 && v >= x*ref }
}
func atMost(limit float64) func(v, _ float64) bool {
	return func(v, _ float64) bool { return v <= limit }
}
func atLeastAbs(limit float64) func(v, _ float64) bool {
	return func(v, _ float64) bool { return v >= limit }
}

var rows = []rowDef{
	{label: "1 persistent reg/s, 1 node, 64 HTTP clients", key: "register1.roster", unit: "/s",
		ref: "register1.raw", refLabel: "raw bbolt, 1 fsync'd tx per write", goal: ">= 5x raw", met: atLeast(5)},
	{label: "1 persistent reg/s, 1 node, vs embedded etcd", key: "register1.roster", unit: "/s",
		ref: "register1.etcd", refLabel: "embedded etcd, 64 concurrent puts", goal: ">= etcd", met: atLeast(1)},
	{label: "1 persistent reg/s, 3 nodes, 64 HTTP clients", key: "cluster.register", unit: "/s",
		ref: "cluster.raw", refLabel: "raw bbolt, 1 fsync'd tx per write", goal: ">= 3x raw", met: atLeast(3)},
	{label: "1 persistent reg/s, 3 nodes (load on all) vs 1 node", key: "cluster.register", unit: "/s",
		ref: "register1.roster", refLabel: "1 node, same workload", goal: ">= 0.6x 1 node", met: atLeast(0.6)},
	{label: "1 registrations per Raft log append, 1 node", key: "register1.per_append", unit: "reg"},
	{label: "1 registrations per fsync (log + fsm.db), 1 node", key: "register1.per_fsync", unit: "reg"},
	{label: "1 persistent reg/s, 1 node, vs r-nacos", key: "register1.roster", unit: "/s",
		ref: "rnacos.register", refLabel: "r-nacos, same workload", goal: ">= 2x r-nacos", met: atLeast(2)},
	{label: "2 instance/list q/s, 10 instances", key: "list.roster10", unit: "/s",
		ref: "list.bare10", refLabel: "bare net/http, same bytes", goal: ">= 0.6x bare", met: atLeast(0.6)},
	{label: "2 instance/list q/s, 1000 instances", key: "list.roster1000", unit: "/s",
		ref: "list.bare1000", refLabel: "bare net/http, same bytes"},
	{label: "2 instance/list q/s, 10 inst., r-nacos", key: "rnacos.list10", unit: "/s",
		ref: "list.bare10", refLabel: "bare net/http, same bytes"},
	{label: "2 instance/list q/s, 1000 inst., r-nacos", key: "rnacos.list1000", unit: "/s",
		ref: "list.bare1000", refLabel: "bare net/http, same bytes"},
	{label: "3 ephemeral instances kept alive, 5s beats", key: "ephemeral.held", unit: "inst.",
		goal: ">= 100000", met: atLeastAbs(100000)},
	{label: "3 ephemeral expired by mistake (at held)", key: "ephemeral.expired", unit: "inst.",
		goal: "0", met: atMost(0)},
	{label: "3 ephemeral beats/s (at held)", key: "ephemeral.beats", unit: "/s"},
	{label: "3 ephemeral beat p50 (at held)", key: "ephemeral.beat_p50", unit: "ms"},
	{label: "3 ephemeral beat p99 (at held)", key: "ephemeral.beat_p99", unit: "ms", goal: "<= 100 ms", met: atMost(100)},
	{label: "3 server CPU per v1 beat (at held)", key: "ephemeral.cpu_per_beat_us", unit: "us", goal: "<= 30 us", met: atMost(30)},
	{label: "3 ephemeral kept alive, r-nacos (one step)", key: "rnacos.eph_held", unit: "inst."},
	{label: "3 ephemeral beat p99, r-nacos", key: "rnacos.eph_beat_p99", unit: "ms"},
	{label: "4 gRPC reg/s, 64 connections", key: "grpc.register", unit: "/s"},
	{label: "4 gRPC reg/s, r-nacos", key: "rnacos.grpc_register", unit: "/s"},
	{label: "4 push p50, change -> callback, subscribers", key: "grpc.push_p50", unit: "ms"},
	{label: "4 push p99, change -> callback, subscribers", key: "grpc.push_p99", unit: "ms", goal: "<= 50 ms", met: atMost(50)},
	{label: "4 push: server CPU per subscriber and change", key: "grpc.push_server_cpu_us", unit: "us"},
	{label: "4 push p99, r-nacos", key: "rnacos.push_p99", unit: "ms"},
	{label: "4 gRPC connections held by one node", key: "grpc.conns", unit: "conns"},
	{label: "4 memory per gRPC connection", key: "grpc.conn_kib", unit: "KiB"},
	{label: "5 RSS, 100k persistent + 100k ephemeral", key: "memory.rss_mib", unit: "MiB", goal: "<= 150 MiB", met: atMost(150)},
	{label: "5 RSS, same instances, r-nacos", key: "rnacos.rss_mib", unit: "MiB"},
	{label: "5 start to /readyz, empty data dir", key: "memory.ready_empty", unit: "ms", goal: "<= 100 ms", met: atMost(100)},
	{label: "5 start to /readyz, 100k persistent", key: "memory.ready_full", unit: "ms", goal: "<= 1000 ms", met: atMost(1000)},
	{label: "5 start to ready, empty, r-nacos", key: "rnacos.ready_empty", unit: "ms"},
	{label: "6 failover: leader SIGKILL -> write ok, p50", key: "cluster.failover_p50", unit: "ms"},
	{label: "6 failover: leader SIGKILL -> write ok, p99", key: "cluster.failover_p99", unit: "ms", goal: "<= 3000 ms", met: atMost(3000)},
	{label: "6 catch-up of a node that missed writes", key: "cluster.catchup", unit: "ms"},
	{label: "6 writes missed by the catching-up node", key: "cluster.catchup_writes", unit: "writes"},
	{label: "7 persistent reg latency p50 @ 50% peak", key: "register1.lat_p50", unit: "ms"},
	{label: "7 persistent reg latency p99 @ 50% peak", key: "register1.lat_p99", unit: "ms"},
	{label: "7 persistent reg latency p99.9 @ 50% peak", key: "register1.lat_p999", unit: "ms"},
	{label: "8 etcd-server (Debian) puts/s, 64 clients", key: "etcd.put", unit: "/s",
		ref: "register1.raw", refLabel: "raw bbolt, 1 fsync'd tx per write"},
	{label: "8 etcd-server (Debian) gets/s, 64 clients", key: "etcd.get", unit: "/s"},
	{label: "8 zookeeper (Debian) creates/s, 64 clients", key: "zookeeper.create", unit: "/s",
		ref: "register1.raw", refLabel: "raw bbolt, 1 fsync'd tx per write"},
	{label: "8 zookeeper (Debian) gets/s, 64 clients", key: "zookeeper.get", unit: "/s"},
	{label: "9 health checks: roster CPU, 10k TCP-checked, default interval", key: "healthcheck.core_pct", unit: "% core",
		goal: "< 15 % core", met: func(v, _ float64) bool { return v < 15 }},
	{label: "9 health checks: roster CPU per probe", key: "healthcheck.cpu_per_probe_us", unit: "us"},
	{label: "9 health checks: probes/s, 10k instances", key: "healthcheck.probes_per_s", unit: "/s"},
	{label: "9 health checks: Raft writes/s at steady state", key: "healthcheck.raft_per_s", unit: "/s", goal: "0", met: atMost(0)},
	{label: "9 health checks: listener stop -> pushed unhealthy, p50", key: "healthcheck.flip_p50", unit: "ms"},
	{label: "9 health checks: listener stop -> pushed unhealthy, p99", key: "healthcheck.flip_p99", unit: "ms"},
	{label: "9 health checks: Raft writes per flip", key: "healthcheck.raft_per_flip", unit: "writes", goal: "1", met: atMost(1)},
}

// suiteResult is what `all` prints as the table and writes as JSON.
type suiteResult struct {
	Quick       bool                 `json:"quick"`
	Runs        int                  `json:"runs"`
	Machine     string               `json:"machine"`
	LoadStart   string               `json:"load_average_start"`
	LoadEnd     string               `json:"load_average_end"`
	Rows        []tableRow           `json:"rows"`
	Figures     map[string][]float64 `json:"figures"` // every run's value, by key
	Failures    map[string]string    `json:"failures,omitempty"`
	Durations   map[string]float64   `json:"workload_seconds"`
	PerRun      map[string][]figures `json:"per_run"`
	peerReasons map[string]string    // workload -> why it did not run
}

type tableRow struct {
	Label  string    `json:"label"`
	Unit   string    `json:"unit"`
	Median *float64  `json:"median,omitempty"`
	Min    *float64  `json:"min,omitempty"`
	Max    *float64  `json:"max,omitempty"`
	Runs   []float64 `json:"runs,omitempty"`
	Ref    string    `json:"reference,omitempty"`
	RefMed *float64  `json:"reference_median,omitempty"`
	RefMin *float64  `json:"reference_min,omitempty"`
	RefMax *float64  `json:"reference_max,omitempty"`
	Ratio  *float64  `json:"ratio,omitempty"`
	Goal   string    `json:"goal,omitempty"`
	Status string    `json:"status"` // met, MISSED, "" (no goal), or why there is no figure
}

var workloads = []workload{
	{name: "register1", run: runRegister1},
	{name: "cluster", run: runCluster},
	{name: "list", run: runList},
	{name: "ephemeral", run: runEphemeralRamp},
	{name: "grpc", run: runGRPC},
	{name: "memory", run: runMemory},
	{name: "healthcheck", run: runHealthSuite},
	{name: "rnacos", peer: true, run: runRNacos},
	{name: "etcd", peer: true, run: runEtcdServer},
	{name: "zookeeper", peer: true, run: runZookeeper},
}

// suiteConfig are the flags of `all`.
type suiteConfig struct {
	quick    bool
	duration time.Duration
	runs     int
	only     string
	catchUp  int
}

func workloadNames() string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.name)
	}
	return strings.Join(n, ",")
}

// runSuite runs every workload --runs times (once in quick mode) and prints the table.
func runSuite(ctx context.Context, b *bench, sc suiteConfig) (report, error) {
	quick, only := sc.quick, sc.only
	p := params{quick: quick, duration: 10 * time.Second, clients: 64}
	runs := max(sc.runs, 1)
	if quick {
		p.duration, runs = time.Second, 1
	}
	if sc.duration > 0 {
		p.duration = sc.duration
	}
	p.catchUp = sc.catchUp
	res := &suiteResult{Quick: quick, Runs: runs, Machine: machine(), LoadStart: loadAvg(),
		Figures: map[string][]float64{}, Failures: map[string]string{}, Durations: map[string]float64{},
		PerRun: map[string][]figures{}, peerReasons: map[string]string{}}
	for _, w := range workloads {
		if only != "" && !slices.Contains(strings.Split(only, ","), w.name) {
			res.peerReasons[w.name] = "not selected (--only)"
			continue
		}
		if w.peer && quick {
			res.peerReasons[w.name] = "not run in quick mode"
			continue
		}
		t0 := time.Now()
		for r := range runs {
			if ctx.Err() != nil {
				break
			}
			b.logf("== %s: run %d of %d", w.name, r+1, runs)
			figs, err := w.run(ctx, b, p, r)
			b.killAll()
			for k, v := range figs {
				res.Figures[w.name+"."+k] = append(res.Figures[w.name+"."+k], v)
			}
			res.PerRun[w.name] = append(res.PerRun[w.name], figs)
			if err != nil {
				var na *notAvailable
				if asNotAvailable(err, &na) {
					res.peerReasons[w.name] = na.why
					b.logf("%s: not available: %s", w.name, na.why)
					break
				}
				b.logf("%s: run %d failed: %v", w.name, r+1, err)
				res.Failures[fmt.Sprintf("%s run %d", w.name, r+1)] = firstLine(err.Error())
			}
		}
		res.Durations[w.name] = time.Since(t0).Seconds()
	}
	res.LoadEnd = loadAvg()
	res.build()
	return res, ctx.Err()
}

func asNotAvailable(err error, target **notAvailable) bool {
	for err != nil {
		if na, ok := err.(*notAvailable); ok {
			*target = na
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// stats are the median and spread of one key's runs.
func stats(v []float64) (med, lo, hi float64, ok bool) {
	if len(v) == 0 {
		return 0, 0, 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1], true
}

func ptr(v float64) *float64 { return &v }

func (r *suiteResult) build() {
	for _, d := range rows {
		tr := tableRow{Label: d.label, Unit: d.unit, Goal: d.goal, Ref: d.refLabel}
		med, lo, hi, ok := stats(r.Figures[d.key])
		if ok {
			tr.Median, tr.Min, tr.Max, tr.Runs = ptr(med), ptr(lo), ptr(hi), r.Figures[d.key]
		}
		var rmed float64
		if d.ref != "" {
			if m, l, h, rok := stats(r.Figures[d.ref]); rok {
				rmed = m
				tr.RefMed, tr.RefMin, tr.RefMax = ptr(m), ptr(l), ptr(h)
				if ok && m > 0 {
					tr.Ratio = ptr(med / m)
				}
			}
		}
		switch {
		case !ok:
			tr.Status = r.why(d.key)
		case d.ref != "" && tr.RefMed == nil:
			tr.Status = "no reference: " + r.why(d.ref)
		case d.met == nil:
			tr.Status = ""
		case d.met(med, rmed):
			tr.Status = "met"
		default:
			tr.Status = "MISSED"
		}
		r.Rows = append(r.Rows, tr)
	}
}

// why says why a key has no figure.
func (r *suiteResult) why(key string) string {
	w, _, _ := strings.Cut(key, ".")
	if reason, ok := r.peerReasons[w]; ok {
		return reason
	}
	for k, f := range r.Failures {
		if strings.HasPrefix(k, w+" ") {
			return "failed: " + f
		}
	}
	return "no figure"
}

func fmtVal(v float64, unit string) string {
	switch {
	case unit == "ms" && v < 10:
		return fmt.Sprintf("%.2f", v)
	case math.Abs(v) >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func fmtStat(m, lo, hi *float64, unit string) string {
	if m == nil {
		return "-"
	}
	if *lo == *hi {
		return fmt.Sprintf("%s %s", fmtVal(*m, unit), unit)
	}
	return fmt.Sprintf("%s %s [%s-%s]", fmtVal(*m, unit), unit, fmtVal(*lo, unit), fmtVal(*hi, unit))
}

func (r *suiteResult) print(w io.Writer) {
	fmt.Fprintf(w, "roster-bench: %s; %d run(s) per workload, median [min-max]; load average %s at start, %s at end\n",
		r.Machine, r.Runs, r.LoadStart, r.LoadEnd)
	if r.Quick {
		fmt.Fprintln(w, "QUICK MODE: tiny sizes, one run; the figures only show that every workload runs")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmedian [spread]\treference\treference median [spread]\tratio\tgoal\tstatus")
	for _, tr := range r.Rows {
		ratio := "-"
		if tr.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *tr.Ratio)
		}
		ref := tr.Ref
		if ref == "" {
			ref = "-"
		}
		refStat := "-"
		if tr.Ref != "" {
			refStat = fmtStat(tr.RefMed, tr.RefMin, tr.RefMax, tr.Unit)
		}
		goal := tr.Goal
		if goal == "" {
			goal = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tr.Label, fmtStat(tr.Median, tr.Min, tr.Max, tr.Unit),
			ref, refStat, ratio, goal, tr.Status)
	}
	tw.Flush()
	names := make([]string, 0, len(r.Durations))
	for n := range r.Durations {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprint(w, "workload time:")
	for _, n := range names {
		fmt.Fprintf(w, " %s %.0fs", n, r.Durations[n])
	}
	fmt.Fprintln(w)
	for k, f := range r.Failures {
		fmt.Fprintf(w, "FAILED %s: %s\n", k, f)
	}
}

// machine names the CPU, the core count and the memory.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%s, %d CPUs%s, %s", cpu, runtime.NumCPU(), mem, runtime.Version())
}

// killAll stops every server a run left running.
func (b *bench) killAll() {
	for _, s := range b.servers {
		_ = s.kill()
	}
	b.servers = nil
	for _, k := range b.children {
		k()
	}
	b.children = nil
}

// profile saves a CPU profile of s over d into the profile dir, named name, once per
// name; the returned wait blocks until it is written.
func (b *bench) profile(s *server, name string, d time.Duration) func() {
	if b.opts.profileDir == "" || s.pprofAddr == "" || b.profiled[name] {
		return func() {}
	}
	b.profiled[name] = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d.Seconds()))
		hc := &http.Client{Timeout: d + 30*time.Second}
		resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprofAddr, secs))
		if err != nil {
			b.logf("profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		_ = os.MkdirAll(b.opts.profileDir, 0o755)
		f, err := os.Create(filepath.Join(b.opts.profileDir, name+".pprof"))
		if err != nil {
			b.logf("profile %s: %v", name, err)
			return
		}
		_, _ = io.Copy(f, resp.Body)
		f.Close()
		b.logf("profile %s saved", name)
	}()
	return func() { <-done }
}

// heapProfile saves s's heap profile (after a GC, so it shows what is live) into the
// profile dir as name.heap.pprof, once per name.
func (b *bench) heapProfile(s *server, name string) {
	if b.opts.profileDir == "" || s.pprofAddr == "" || b.profiled[name] {
		return
	}
	b.profiled[name] = true
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", s.pprofAddr))
	if err != nil {
		b.logf("heap profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	_ = os.MkdirAll(b.opts.profileDir, 0o755)
	f, err := os.Create(filepath.Join(b.opts.profileDir, name+".heap.pprof"))
	if err != nil {
		b.logf("heap profile %s: %v", name, err)
		return
	}
	_, _ = io.Copy(f, resp.Body)
	f.Close()
	b.logf("heap profile %s saved", name)
}
