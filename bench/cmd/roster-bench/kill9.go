package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"
)

// kill9Config: every acknowledged persistent registration survives SIGKILL.
type kill9Config struct {
	instances int
	clients   int
	services  int
}

func defaultKill9() *kill9Config { return &kill9Config{instances: 1000, clients: 64, services: 10} }

func (c *kill9Config) define(fs *flag.FlagSet) {
	fs.IntVar(&c.instances, "instances", c.instances, "persistent instances to register before SIGKILL")
	fs.IntVar(&c.clients, "clients", c.clients, "concurrent HTTP clients")
	fs.IntVar(&c.services, "services", c.services, "services the instances are spread over")
}

type kill9Result struct {
	Instances      int        `json:"instances"`
	Register       loadResult `json:"register"`
	Acknowledged   int        `json:"acknowledged"`
	RestartMS      float64    `json:"restart_ms"`
	Present        int        `json:"present"`
	Missing        int        `json:"missing"`
	Mismatched     int        `json:"mismatched"`
	Unexpected     int        `json:"unexpected"`
	FirstProblems  []string   `json:"first_problems,omitempty"`
	ServerLogWarn  int        `json:"server_log_warn_lines"`
	ServerLogError int        `json:"server_log_error_lines"`
}

var kill9Clusters = []string{"DEFAULT", "c1", "blue-2"}

// kill9Spec varies every field a client sets, so a field lost or mixed up in the
// write path shows.
func kill9Spec(i, services int) *spec {
	return &spec{
		Service: "bench.kill9." + strconv.Itoa(i%services),
		IP:      ipFor(i),
		Port:    1024 + (i*7919)%60000,
		Cluster: kill9Clusters[i%len(kill9Clusters)],
		Weight:  float64(i%40)/4 + 0.25,
		Metadata: map[string]string{
			"idx":   strconv.Itoa(i),
			"zone":  "zone-" + strconv.Itoa(i%3),
			"build": fmt.Sprintf("%08x", uint32(i)*2654435761),
		},
	}
}

func runKill9(ctx context.Context, b *bench, c *kill9Config) (report, error) {
	if c.instances < 1 || c.clients < 1 || c.services < 1 {
		return nil, fmt.Errorf("--instances, --clients and --services must be positive")
	}
	res := &kill9Result{Instances: c.instances}
	s, err := b.newServer("kill9")
	if err != nil {
		return nil, err
	}
	if _, err := s.start(ctx, b.opts.readyTimeout); err != nil {
		return nil, withLog(s, err)
	}
	cl := newClient(s.httpAddr, c.clients)
	defer cl.close()

	b.logf("kill9: registering %d persistent instances with %d clients", c.instances, c.clients)
	acked := make([]bool, c.instances) // each index written by one worker only
	res.Register = b.runN(ctx, "", c.instances, c.clients, func(ctx context.Context, i int) error {
		if err := cl.register(ctx, kill9Spec(i, c.services)); err != nil {
			return err
		}
		acked[i] = true
		return nil
	})
	// SIGKILL at once: no shutdown path may run before the check.
	if err := s.kill(); err != nil {
		return res, withLog(s, err)
	}
	cl.close()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, ok := range acked {
		if ok {
			res.Acknowledged++
		}
	}
	b.logf("kill9: %d acknowledged, SIGKILL sent; restarting", res.Acknowledged)
	d, err := s.start(ctx, b.opts.readyTimeout)
	if err != nil {
		return res, withLog(s, err)
	}
	res.RestartMS = ms(d)

	if err := b.checkKill9(ctx, cl, c, acked, res); err != nil {
		return res, withLog(s, err)
	}
	_, stopErr := b.stopServer(s)
	res.ServerLogWarn, res.ServerLogError = s.logLevels()
	var problems []error
	if stopErr != nil {
		problems = append(problems, stopErr)
	}
	if res.Register.Errors > 0 {
		problems = append(problems, fmt.Errorf("%d registrations failed: %v", res.Register.Errors, res.Register.FirstErrors))
	}
	if res.Missing > 0 || res.Mismatched > 0 {
		problems = append(problems, withLog(s, fmt.Errorf("after SIGKILL and restart %d of %d acknowledged instances are missing and %d differ",
			res.Missing, res.Acknowledged, res.Mismatched)))
	}
	return res, errors.Join(problems...)
}

// checkKill9 lists every service and compares each acknowledged instance field for
// field with what was registered.
func (b *bench) checkKill9(ctx context.Context, cl *client, c *kill9Config, acked []bool, res *kill9Result) error {
	var mu sync.Mutex
	problem := func(format string, args ...any) {
		if len(res.FirstProblems) < 10 {
			res.FirstProblems = append(res.FirstProblems, fmt.Sprintf(format, args...))
		}
	}
	lr := b.runN(ctx, "", c.services, min(c.services, c.clients), func(ctx context.Context, svc int) error {
		name := "bench.kill9." + strconv.Itoa(svc)
		info, err := cl.list(ctx, name)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		type key struct {
			ip      string
			port    int
			cluster string
		}
		listed := map[key]int{}
		for h := range info.Hosts {
			listed[key{info.Hosts[h].IP, info.Hosts[h].Port, info.Hosts[h].ClusterName}] = h
		}
		for i := svc; i < c.instances; i += c.services {
			want := kill9Spec(i, c.services)
			k := key{want.IP, want.Port, want.Cluster}
			h, ok := listed[k]
			delete(listed, k)
			if !acked[i] {
				continue
			}
			if !ok {
				res.Missing++
				problem("missing: %s %s:%d cluster %s", name, want.IP, want.Port, want.Cluster)
				continue
			}
			got := info.Hosts[h]
			switch {
			case float64(got.Weight) != want.Weight:
				res.Mismatched++
				problem("%s %s:%d: weight %v, want %v", name, want.IP, want.Port, float64(got.Weight), want.Weight)
			case !maps.Equal(got.Metadata, want.Metadata):
				res.Mismatched++
				problem("%s %s:%d: metadata %v, want %v", name, want.IP, want.Port, got.Metadata, want.Metadata)
			case got.Ephemeral || !got.Enabled:
				res.Mismatched++
				problem("%s %s:%d: ephemeral=%v enabled=%v, want false, true", name, want.IP, want.Port, got.Ephemeral, got.Enabled)
			default:
				res.Present++
			}
		}
		for k := range listed {
			res.Unexpected++
			problem("unexpected: %s %s:%d cluster %s", name, k.ip, k.port, k.cluster)
		}
		return nil
	})
	if lr.Errors > 0 {
		return fmt.Errorf("%d of %d list calls failed: %v", lr.Errors, c.services, lr.FirstErrors)
	}
	return nil
}

func (r *kill9Result) print(w io.Writer) {
	fmt.Fprintf(w, "== kill9: %d persistent instances, SIGKILL, restart\n", r.Instances)
	fmt.Fprintf(w, "  register:    %d ok, %d errors in %.2fs = %.0f/s; latency %s\n",
		r.Register.OK, r.Register.Errors, r.Register.Seconds, r.Register.Rate, r.Register.Latency)
	for _, e := range r.Register.FirstErrors {
		fmt.Fprintf(w, "               error: %s\n", e)
	}
	fmt.Fprintf(w, "  restart:     ready %s after exec\n", fmtMS(r.RestartMS))
	fmt.Fprintf(w, "  after kill:  %d of %d acknowledged present and equal field for field (ip, port, weight, metadata, cluster)\n",
		r.Present, r.Acknowledged)
	fmt.Fprintf(w, "               %d missing, %d differing, %d unexpected\n", r.Missing, r.Mismatched, r.Unexpected)
	for _, p := range r.FirstProblems {
		fmt.Fprintf(w, "               %s\n", p)
	}
	fmt.Fprintf(w, "  server log:  %d WARN, %d ERROR lines\n", r.ServerLogWarn, r.ServerLogError)
}
