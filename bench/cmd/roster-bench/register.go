package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// registerConfig: persistent registrations/s beside the raw bbolt fsync rate.
type registerConfig struct {
	clients  int
	duration time.Duration
	services int
	rounds   int
}

func defaultRegister() *registerConfig {
	return &registerConfig{clients: 64, duration: 10 * time.Second, services: 64, rounds: 5}
}

func (c *registerConfig) define(fs *flag.FlagSet) {
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent HTTP clients (and raw bbolt goroutines)")
	fs.DurationVar(&c.duration, "duration", c.duration, "length of each of the three measurements")
	fs.IntVar(&c.services, "services", c.services, "services the registrations are spread over")
	fs.IntVar(&c.rounds, "rounds", c.rounds, "split each measurement into this many alternating slices, so that "+
		"changing load from other processes on the machine or the disk affects all three alike")
}

type registerResult struct {
	Clients         int         `json:"clients"`
	DurationSeconds float64     `json:"duration_seconds"`
	Disk            string      `json:"disk"`
	Roster          loadResult  `json:"roster"`
	RosterCPU       cpuUse      `json:"roster_cpu"`
	RawSerial       fsyncResult `json:"raw_bbolt_serial"`
	RawConcurrent   fsyncResult `json:"raw_bbolt_concurrent"`
	RatioSerial     float64     `json:"ratio_roster_to_raw_serial"`
	RatioConcurrent float64     `json:"ratio_roster_to_raw_concurrent"`
	RoundRatios     []float64   `json:"round_ratios_roster_to_raw_serial"`
	Rounds          int         `json:"rounds"`
	ServerLogWarn   int         `json:"server_log_warn_lines"`
	ServerLogError  int         `json:"server_log_error_lines"`
}

func runRegister(ctx context.Context, b *bench, c *registerConfig) (report, error) {
	if c.clients < 1 || c.duration <= 0 || c.services < 1 || c.rounds < 1 {
		return nil, fmt.Errorf("--clients, --duration, --services and --rounds must be positive")
	}
	res := &registerResult{Clients: c.clients, DurationSeconds: c.duration.Seconds(), Rounds: c.rounds,
		Disk: fmt.Sprintf("%s (%s)", b.workDir, fsType(b.workDir))}

	s, err := b.newServer("register")
	if err != nil {
		return nil, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return nil, withLog(s, err)
	}
	cl := newClient(s.httpAddr, c.clients)
	defer cl.close()
	serial, err := openRawBolt(b.workDir, "raw-serial.db")
	if err != nil {
		return nil, err
	}
	defer serial.close()
	concurrent, err := openRawBolt(b.workDir, "raw-concurrent.db")
	if err != nil {
		return nil, err
	}
	defer concurrent.close()

	// The three measurements alternate in slices; each runs alone, so they never share
	// the disk or the CPUs. The server idles while bbolt is measured.
	slice := c.duration / time.Duration(c.rounds)
	var rosters []loadResult
	var serials, concurrents []fsyncResult
	var cpus []cpuUse
	b.logf("register: %d rounds of %v each: roster (%d clients, %s), raw bbolt serial, raw bbolt %d goroutines (in %s)",
		c.rounds, slice, c.clients, s.httpAddr, c.clients, b.workDir)
	for round := range c.rounds {
		cpu := startCPU(s)
		r := b.runFor(ctx, "", slice, c.clients, sumOK(rosters), func(ctx context.Context, i int) error {
			return cl.register(ctx, &spec{
				Service: "bench.register." + strconv.Itoa(i%c.services),
				IP:      ipFor(i), Port: 20000 + i%40000, Weight: 1,
				Metadata: map[string]string{"app": "bench", "version": "1.0.0", "zone": "zone-a", "idx": strconv.Itoa(i)},
			})
		})
		cpus = append(cpus, cpu.stop())
		rosters = append(rosters, r)
		fs, err := serial.run(ctx, slice, 1)
		if err != nil {
			return res, err
		}
		serials = append(serials, fs)
		fc, err := concurrent.run(ctx, slice, c.clients)
		if err != nil {
			return res, err
		}
		concurrents = append(concurrents, fc)
		b.logf("register: round %d: roster %.0f/s, raw serial %.0f/s, raw %d goroutines %.0f/s",
			round+1, r.Rate, fs.Rate, c.clients, fc.Rate)
	}
	res.Roster = combine(rosters...)
	res.RosterCPU = combineCPU(cpus...)
	res.RawSerial = combineFsync(serials...)
	res.RawConcurrent = combineFsync(concurrents...)
	for i := range rosters {
		res.RoundRatios = append(res.RoundRatios, rosters[i].Rate/serials[i].Rate)
	}
	_, stopErr := b.stopServer(s)
	res.ServerLogWarn, res.ServerLogError = s.logLevels()
	if res.RawSerial.Rate > 0 {
		res.RatioSerial = res.Roster.Rate / res.RawSerial.Rate
	}
	if res.RawConcurrent.Rate > 0 {
		res.RatioConcurrent = res.Roster.Rate / res.RawConcurrent.Rate
	}
	if stopErr != nil {
		return res, stopErr
	}
	if res.Roster.Errors > 0 {
		return res, withLog(s, fmt.Errorf("%d registrations failed", res.Roster.Errors))
	}
	return res, nil
}

// sumOK is how many registrations earlier rounds made, so the next round's
// addresses are new ones.
func sumOK(rs []loadResult) int {
	n := 0
	for _, r := range rs {
		n += r.OK + r.Errors
	}
	return n
}

func (r *registerResult) print(w io.Writer) {
	fmt.Fprintf(w, "== register: persistent registrations (ephemeral=false), %d clients, %gs each in %d alternating rounds\n",
		r.Clients, r.DurationSeconds, r.Rounds)
	fmt.Fprintf(w, "  disk:                %s\n", r.Disk)
	fmt.Fprintf(w, "  roster:              %d ok, %d errors in %.2fs = %.1f registrations/s\n",
		r.Roster.OK, r.Roster.Errors, r.Roster.Seconds, r.Roster.Rate)
	fmt.Fprintf(w, "                       latency %s\n", r.Roster.Latency)
	for _, e := range r.Roster.FirstErrors {
		fmt.Fprintf(w, "                       error: %s\n", e)
	}
	fmt.Fprintf(w, "                       CPU: %s\n", r.RosterCPU)
	if r.Roster.OK > 0 {
		fmt.Fprintf(w, "                       server CPU per registration %.0fus\n", r.RosterCPU.ServerSeconds/float64(r.Roster.OK)*1e6)
	}
	for _, raw := range []struct {
		name string
		f    fsyncResult
	}{{"raw bbolt serial:", r.RawSerial}, {fmt.Sprintf("raw bbolt %d gor.:", r.RawConcurrent.Goroutines), r.RawConcurrent}} {
		fmt.Fprintf(w, "  %-20s %d commits of %d B in %.2fs = %.1f commits/s\n",
			raw.name, raw.f.Commits, raw.f.PayloadBytes, raw.f.Seconds, raw.f.Rate)
		fmt.Fprintf(w, "                       latency %s\n", raw.f.Latency)
	}
	fmt.Fprintf(w, "  ratio roster/raw:    %.2fx (serial), %.2fx (%d goroutines); per round (serial): %s\n",
		r.RatioSerial, r.RatioConcurrent, r.RawConcurrent.Goroutines, fmtRatios(r.RoundRatios))
	fmt.Fprintf(w, "  server log:          %d WARN, %d ERROR lines\n", r.ServerLogWarn, r.ServerLogError)
}

func fmtRatios(v []float64) string {
	out := ""
	for i, x := range v {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.2f", x)
	}
	return out
}
