package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// readyConfig: time from exec to GET /readyz = 200, on an empty data dir and after
// persistent instances were written (the requirement: a restart after --instances
// takes at most twice a restart after --small).
type readyConfig struct {
	instances  int
	small      int
	runs       int
	clients    int
	perService int
	distinct   int
}

func defaultReady() *readyConfig {
	return &readyConfig{instances: 100000, small: 1000, runs: 3, clients: 64, perService: 100}
}

func (c *readyConfig) define(fs *flag.FlagSet) {
	fs.IntVar(&c.instances, "instances", c.instances, "persistent instances on disk for the large restart")
	fs.IntVar(&c.small, "small", c.small, "persistent instances on disk for the restart compared against")
	fs.IntVar(&c.runs, "runs", c.runs, "starts timed per case")
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent HTTP clients filling the store")
	fs.IntVar(&c.perService, "per-service", c.perService, "instances per service when filling")
	fs.IntVar(&c.distinct, "distinct", c.distinct, "if > 0, the fills re-register (overwrite) this many instances over and over: "+
		"a long history over a small state, instead of one instance per write")
}

// startTimes are the exec-to-ready times of one case's runs.
type startTimes struct {
	RunsMS   []float64 `json:"runs_ms"`
	MedianMS float64   `json:"median_ms"`
	MinMS    float64   `json:"min_ms"`
	MaxMS    float64   `json:"max_ms"`
}

func newStartTimes(ds []time.Duration) startTimes {
	st := startTimes{}
	for _, d := range ds {
		st.RunsMS = append(st.RunsMS, ms(d))
	}
	if len(ds) == 0 {
		return st
	}
	sorted := slices.Clone(st.RunsMS)
	slices.Sort(sorted)
	st.MinMS, st.MaxMS = sorted[0], sorted[len(sorted)-1]
	if n := len(sorted); n%2 == 1 {
		st.MedianMS = sorted[n/2]
	} else {
		st.MedianMS = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return st
}

func (st startTimes) String() string {
	return fmt.Sprintf("median %s  min %s  max %s  (runs: %s)", fmtMS(st.MedianMS), fmtMS(st.MinMS), fmtMS(st.MaxMS), fmtRuns(st.RunsMS))
}

// readyCase is one data-dir state and its timed starts.
type readyCase struct {
	Instances       int         `json:"instances"` // registrations written
	Distinct        int         `json:"distinct"`  // instances they amount to
	Fill            *loadResult `json:"fill,omitempty"`
	Start           startTimes  `json:"start"`
	StopAfterFillMS float64     `json:"stop_after_fill_ms"`
	StopsMS         []float64   `json:"stops_ms"`
	RaftDBBytes     int64       `json:"raft_db_bytes"`
	FSMDBBytes      int64       `json:"fsm_db_bytes"`
	Snapshots       int         `json:"snapshots_on_disk"`
	CommitIndex     int64       `json:"raft_commit_index_after_restart"`
	InstancesListed int         `json:"instances_after_restart"`
	ServerLogWarn   int         `json:"server_log_warn_lines"`
	ServerLogError  int         `json:"server_log_error_lines"`
}

type readyResult struct {
	Runs        int       `json:"runs"`
	Empty       readyCase `json:"empty"`
	Small       readyCase `json:"small"`
	Large       readyCase `json:"large"`
	Ratio       float64   `json:"ratio_large_to_small"`
	Requirement string    `json:"requirement"` // PASS when Ratio <= 2
}

func runReady(ctx context.Context, b *bench, c *readyConfig) (report, error) {
	if c.instances < 1 || c.small < 1 || c.runs < 1 || c.clients < 1 || c.perService < 1 {
		return nil, fmt.Errorf("--instances, --small, --runs, --clients and --per-service must be positive")
	}
	res := &readyResult{Runs: c.runs}
	res.Small.Instances, res.Large.Instances = c.small, c.instances
	res.Small.Distinct, res.Large.Distinct = c.small, c.instances
	if c.distinct > 0 {
		res.Small.Distinct, res.Large.Distinct = min(c.small, c.distinct), min(c.instances, c.distinct)
	}

	small, err := fillAndStop(ctx, b, c, &res.Small)
	if err != nil {
		return res, err
	}
	large, err := fillAndStop(ctx, b, c, &res.Large)
	if err != nil {
		return res, err
	}

	// The runs take turns: empty, small, large, empty, ... so that load from elsewhere
	// on the machine falls on every case alike and the ratio stays meaningful.
	var empty, smallTimes, largeTimes []time.Duration
	for r := range c.runs {
		s, err := b.newServer("ready-empty")
		if err != nil {
			return res, err
		}
		d, err := s.start(ctx, b.opts.readyTimeout)
		if err != nil {
			return res, withLog(s, err)
		}
		b.logf("ready: run %d: empty data dir: %v", r+1, d.Round(time.Millisecond))
		empty = append(empty, d)
		sd, err := b.stopServer(s)
		res.Empty.StopsMS = append(res.Empty.StopsMS, ms(sd))
		if err != nil {
			return res, err
		}
		w, e := s.logLevels()
		res.Empty.ServerLogWarn += w
		res.Empty.ServerLogError += e

		if d, err = timedRestart(ctx, b, c, small, &res.Small, r); err != nil {
			return res, err
		}
		smallTimes = append(smallTimes, d)
		if d, err = timedRestart(ctx, b, c, large, &res.Large, r); err != nil {
			return res, err
		}
		largeTimes = append(largeTimes, d)
	}
	res.Empty.Start = newStartTimes(empty)
	res.Small.Start = newStartTimes(smallTimes)
	res.Large.Start = newStartTimes(largeTimes)
	res.Small.ServerLogWarn, res.Small.ServerLogError = small.logLevels()
	res.Large.ServerLogWarn, res.Large.ServerLogError = large.logLevels()
	if res.Small.Start.MedianMS > 0 {
		res.Ratio = res.Large.Start.MedianMS / res.Small.Start.MedianMS
	}
	res.Requirement = "PASS"
	if res.Ratio > 2 {
		res.Requirement = "FAIL"
	}
	return res, nil
}

// fillAndStop starts a fresh server, makes rc.Instances registrations (of rc.Distinct
// instances) through the HTTP API and stops it with SIGTERM, leaving its data dir for
// the timed restarts.
func fillAndStop(ctx context.Context, b *bench, c *readyConfig, rc *readyCase) (*server, error) {
	n := rc.Instances
	s, err := b.newServer(fmt.Sprintf("ready-%d", n))
	if err != nil {
		return nil, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return nil, withLog(s, err)
	}
	cl := newClient(s.httpAddr, c.clients)
	defer cl.close()
	b.logf("ready: filling: %d registrations of %d persistent instances with %d clients", n, rc.Distinct, c.clients)
	fill := b.runN(ctx, "ready: fill", n, c.clients, func(ctx context.Context, i int) error {
		if c.distinct > 0 {
			i %= c.distinct
		}
		return cl.register(ctx, persistentSpec(i, c.perService))
	})
	rc.Fill = &fill
	b.logf("ready: filled %d (%d errors) in %.1fs = %.0f/s", fill.OK, fill.Errors, fill.Seconds, fill.Rate)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fill.Errors > 0 {
		return nil, withLog(s, fmt.Errorf("fill: %d of %d registrations failed: %v", fill.Errors, n, fill.FirstErrors))
	}
	sd, err := b.stopServer(s)
	rc.StopAfterFillMS = ms(sd)
	if err != nil {
		return nil, err
	}
	rc.RaftDBBytes = dirSize(filepath.Join(s.dataDir, "raft", "raft.db"))
	rc.FSMDBBytes = dirSize(filepath.Join(s.dataDir, "fsm.db"))
	if ents, err := os.ReadDir(filepath.Join(s.dataDir, "raft", "snapshots")); err == nil {
		rc.Snapshots = len(ents)
	}
	return s, nil
}

// timedRestart starts a filled server, checks that it counts all its instances, and
// stops it again; it returns the exec-to-ready time.
func timedRestart(ctx context.Context, b *bench, c *readyConfig, s *server, rc *readyCase, run int) (time.Duration, error) {
	d, err := s.start(ctx, b.opts.readyTimeout)
	if err != nil {
		return 0, withLog(s, err)
	}
	b.logf("ready: run %d: restart with %d instances: %v", run+1, rc.Instances, d.Round(time.Millisecond))
	cl := newClient(s.httpAddr, 1)
	defer cl.close()
	counts, err := cl.counts(ctx)
	if err != nil {
		return 0, withLog(s, err)
	}
	rc.InstancesListed = counts.InstanceCount
	if ci, err := cl.promValue(ctx, "roster_raft_commit_index"); err == nil {
		rc.CommitIndex = int64(ci)
	}
	cl.close() // no idle connection may hold up the shutdown
	sd, err := b.stopServer(s)
	rc.StopsMS = append(rc.StopsMS, ms(sd))
	if err != nil {
		return 0, err
	}
	if counts.InstanceCount != rc.Distinct {
		return 0, withLog(s, fmt.Errorf("after restart %d the server counts %d instances, want %d", run+1, counts.InstanceCount, rc.Distinct))
	}
	return d, nil
}

// persistentSpec is the i-th persistent instance of a fill: perService per service.
func persistentSpec(i, perService int) *spec {
	return &spec{
		Service: "bench.persistent." + strconv.Itoa(i/perService),
		IP:      ipFor(i), Port: 8080, Weight: 1,
		Metadata: map[string]string{"app": "bench", "version": "1.0.0", "idx": strconv.Itoa(i)},
	}
}

func (r *readyResult) print(w io.Writer) {
	fmt.Fprintf(w, "== ready: exec to GET /readyz = 200, %d runs per case, the cases taking turns\n", r.Runs)
	fmt.Fprintf(w, "  empty data dir:          %s\n", r.Empty.Start)
	for _, rc := range []readyCase{r.Small, r.Large} {
		if rc.Fill == nil {
			continue
		}
		if rc.Distinct == rc.Instances {
			fmt.Fprintf(w, "  restart, %7d inst.:   %s\n", rc.Instances, rc.Start)
		} else {
			fmt.Fprintf(w, "  restart, %7d writes:  %s  (%d distinct instances)\n", rc.Instances, rc.Start, rc.Distinct)
		}
		fmt.Fprintf(w, "      fill: %d ok, %d errors in %.1fs = %.0f/s (latency %s)\n",
			rc.Fill.OK, rc.Fill.Errors, rc.Fill.Seconds, rc.Fill.Rate, rc.Fill.Latency)
		fmt.Fprintf(w, "      on disk: raft.db %s, fsm.db %s, %d snapshot(s); commit index %d; %d instances listed after restart\n",
			mib(rc.RaftDBBytes), mib(rc.FSMDBBytes), rc.Snapshots, rc.CommitIndex, rc.InstancesListed)
		fmt.Fprintf(w, "      SIGTERM to exit: %s after the fill (clients' connections still open), %s after the timed starts\n",
			fmtMS(rc.StopAfterFillMS), fmtRuns(rc.StopsMS))
		fmt.Fprintf(w, "      server log: %d WARN, %d ERROR lines\n", rc.ServerLogWarn, rc.ServerLogError)
	}
	fmt.Fprintf(w, "  ratio %d/%d restart (medians): %.2fx  (requirement <= 2x: %s)\n",
		r.Large.Instances, r.Small.Instances, r.Ratio, r.Requirement)
}

func fmtRuns(v []float64) string {
	out := ""
	for i, x := range v {
		if i > 0 {
			out += ", "
		}
		out += fmtMS(x)
	}
	return out
}
