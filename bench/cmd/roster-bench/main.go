// Command roster-bench is Roster's load generator. Each subcommand starts real
// `roster server` processes on 127.0.0.1 (free ports, temporary data dirs), drives
// them through the Nacos v1 HTTP API, stops them, and prints one result block; with
// --json FILE it also writes the figures as JSON. Every run is bounded in time and
// in count.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// progressEvery is the period of progress lines during long batches.
const progressEvery = 10 * time.Second

const usage = `roster-bench: Roster's load generator (talks only to 127.0.0.1)

Usage:
  roster-bench all [--quick] [--runs 3] [--duration 10s] [--only w1,w2] [flags]
                                         every workload, its references and peers: one table
  roster-bench register [flags]          persistent registrations/s beside raw bbolt fsync commits/s
  roster-bench ready [flags]             exec-to-ready time: empty, after --small and after --instances instances
  roster-bench ephemeral-memory [flags]  resident memory and beats/s holding --instances ephemeral instances
  roster-bench kill9 [flags]             register, SIGKILL, restart: are all instances back, field for field?
  roster-bench healthcheck [flags]       --instances TCP-checked persistent instances: CPU per probe, Raft writes, stop -> pushed unhealthy
  roster-bench rows                      the labels of the table's rows

Common flags: --roster bin/roster, --json FILE, --log-dir DIR, --work-dir DIR, --profile-dir DIR,
--server-args "...", --ready-timeout 2m, --keep-data. Run 'roster-bench <command> -h' for the rest.
`

// report is a subcommand's result: printed as one block, and encoded as JSON.
type report interface {
	print(w io.Writer)
}

// subcommand defines its flags on fs and returns the run that uses them.
type subcommand struct {
	name  string
	setup func(fs *flag.FlagSet) func(ctx context.Context, b *bench) (report, error)
}

var subcommands = []subcommand{
	{"register", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		c := defaultRegister()
		c.define(fs)
		return func(ctx context.Context, b *bench) (report, error) { return runRegister(ctx, b, c) }
	}},
	{"ready", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		c := defaultReady()
		c.define(fs)
		return func(ctx context.Context, b *bench) (report, error) { return runReady(ctx, b, c) }
	}},
	{"ephemeral-memory", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		c := defaultEphemeral()
		c.define(fs)
		return func(ctx context.Context, b *bench) (report, error) { return runEphemeral(ctx, b, c) }
	}},
	{"kill9", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		c := defaultKill9()
		c.define(fs)
		return func(ctx context.Context, b *bench) (report, error) { return runKill9(ctx, b, c) }
	}},
	{"healthcheck", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		c := defaultHealth()
		c.define(fs)
		return func(ctx context.Context, b *bench) (report, error) { return runHealth(ctx, b, c) }
	}},
	{"rows", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		return func(context.Context, *bench) (report, error) {
			for _, r := range rows {
				fmt.Println(r.label)
			}
			return nil, nil
		}
	}},
	{"bare-http", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		addr := fs.String("addr", "127.0.0.1:0", "listen address")
		body := fs.String("body", "", "file whose bytes every answer carries")
		return func(context.Context, *bench) (report, error) { return nil, serveBare(*addr, *body) }
	}},
	{"etcd-embed", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		dir := fs.String("dir", "", "data dir")
		ca := fs.String("client", "", "client listen address")
		pa := fs.String("peer", "", "peer listen address")
		return func(context.Context, *bench) (report, error) { return nil, serveEmbeddedEtcd(*dir, *ca, *pa) }
	}},
	{"all", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		var sc suiteConfig
		fs.BoolVar(&sc.quick, "quick", false, "tiny sizes and one run of each workload, peers skipped (a smoke test)")
		fs.DurationVar(&sc.duration, "duration", 0, "length of each timed load phase (default 10s, 1s with --quick)")
		fs.IntVar(&sc.runs, "runs", 3, "runs of each workload; the table shows the median and the spread")
		fs.StringVar(&sc.only, "only", "", "comma-separated workloads to run (default: all): "+workloadNames())
		fs.IntVar(&sc.catchUp, "catchup-writes", 0, "writes a cluster node misses before its catch-up is timed (default 100000, 500 with --quick)")
		return func(ctx context.Context, b *bench) (report, error) { return runSuite(ctx, b, sc) }
	}},
	{"old-all", func(fs *flag.FlagSet) func(context.Context, *bench) (report, error) {
		quick := fs.Bool("quick", false, "small sizes, about 2s per measurement (a smoke test)")
		return func(ctx context.Context, b *bench) (report, error) { return runAll(ctx, b, *quick) }
	}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags every subcommand takes.
type options struct {
	roster       string
	jsonPath     string
	logDir       string
	workDir      string
	serverArgs   []string
	readyTimeout time.Duration
	keepData     bool
	profileDir   string
}

func (o *options) define(fs *flag.FlagSet) {
	fs.StringVar(&o.roster, "roster", "bin/roster", "the roster binary to start")
	fs.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&o.logDir, "log-dir", "", "keep the servers' logs here (default: a temp dir, removed unless a run fails)")
	fs.StringVar(&o.workDir, "work-dir", os.TempDir(), "where the temporary data dirs go (the disk being measured)")
	fs.Func("server-args", "extra flags for every `roster server`, space-separated", func(s string) error {
		o.serverArgs = strings.Fields(s)
		return nil
	})
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 2*time.Minute, "longest wait from exec to GET /readyz = 200")
	fs.BoolVar(&o.keepData, "keep-data", false, "keep the servers' data dirs (to look at them afterwards)")
	fs.StringVar(&o.profileDir, "profile-dir", "", "start servers with --pprof-addr and save a CPU profile of each workload's first run here")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var sub *subcommand
	for i := range subcommands {
		if subcommands[i].name == args[0] {
			sub = &subcommands[i]
		}
	}
	if sub == nil {
		fmt.Fprintf(stderr, "roster-bench: unknown command %q\n%s", args[0], usage)
		return 2
	}
	fs := flag.NewFlagSet("roster-bench "+sub.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	o.define(fs)
	exec := sub.setup(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roster-bench %s: unexpected argument %q\n", sub.name, fs.Arg(0))
		return 2
	}
	if sub.name == "bare-http" || sub.name == "etcd-embed" || sub.name == "rows" {
		// Helper processes of `all`: no roster, no work dir; SIGTERM ends them.
		done := make(chan error, 1)
		go func() { _, err := exec(ctx, nil); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
		}
		if err != nil {
			fmt.Fprintf(stderr, "roster-bench %s: %v\n", sub.name, err)
			return 1
		}
		return 0
	}
	if _, err := os.Stat(o.roster); err != nil {
		fmt.Fprintf(stderr, "roster-bench %s: --roster: %v (build it with: go build -o bin/roster ./cmd/roster)\n", sub.name, err)
		return 2
	}
	b, err := newBench(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "roster-bench %s: %v\n", sub.name, err)
		return 1
	}
	rep, runErr := exec(ctx, b)
	b.close(runErr != nil)
	if rep != nil {
		rep.print(stdout)
		if o.jsonPath != "" {
			if err := writeJSON(o.jsonPath, rep); err != nil {
				fmt.Fprintf(stderr, "roster-bench %s: %v\n", sub.name, err)
				return 1
			}
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "roster-bench %s: %v\n", sub.name, runErr)
		return 1
	}
	return 0
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// bench is one invocation's shared state: options, the temp work dir (removed at the
// end), the log dir, and every server started, so none outlives the bench.
type bench struct {
	opts         options
	errw         io.Writer
	workDir      string
	logDir       string
	tempLogDir   bool
	servers      []*server
	children     []func() // stop functions of peer and reference processes
	lastChildPID int
	profiled     map[string]bool
	t0           time.Time
}

func newBench(o options, errw io.Writer) (*bench, error) {
	work, err := os.MkdirTemp(o.workDir, "roster-bench-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	b := &bench{opts: o, errw: errw, workDir: work, logDir: o.logDir, t0: time.Now(), profiled: map[string]bool{}}
	if b.logDir == "" {
		if b.logDir, err = os.MkdirTemp("", "roster-bench-logs-"); err != nil {
			os.RemoveAll(work)
			return nil, fmt.Errorf("log dir: %w", err)
		}
		b.tempLogDir = true
	} else if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("log dir: %w", err)
	}
	if abs, err := filepath.Abs(b.opts.roster); err == nil {
		b.opts.roster = abs
	}
	b.logf("load average at start: %s", loadAvg())
	return b, nil
}

// close kills any server still running and removes the data dirs (unless
// --keep-data); the logs stay when the run failed or --log-dir was given.
func (b *bench) close(failed bool) {
	b.logf("load average at end: %s", loadAvg())
	b.killAll()
	if b.opts.keepData {
		b.logf("data dirs kept in %s", b.workDir)
	} else if err := os.RemoveAll(b.workDir); err != nil {
		b.logf("remove %s: %v", b.workDir, err)
	}
	switch {
	case b.tempLogDir && !failed:
		os.RemoveAll(b.logDir)
	default:
		b.logf("server logs kept in %s", b.logDir)
	}
}

// logf writes a timestamped progress line to stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.errw, "[%7.1fs] %s\n", time.Since(b.t0).Seconds(), fmt.Sprintf(format, args...))
}

// withLog adds the server's log tail to an error about it.
func withLog(s *server, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w\n--- %s: last lines of %s ---\n%s", err, s.name, s.logPath, s.logTail(30))
}

// stopServer stops s with SIGTERM; an error carries the server's log tail.
func (b *bench) stopServer(s *server) (time.Duration, error) {
	d, err := s.stop()
	return d, withLog(s, err)
}

// loadAvg is the machine's 1, 5 and 15 minute load averages: other work on the
// machine skews every figure.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// mib formats bytes as MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
