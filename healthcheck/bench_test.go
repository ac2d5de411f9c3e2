package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The benchmarks probe listeners held by a child process (this test binary, re-run as
// TestListenerProcess), so that the CPU time this process spends is the prober's alone,
// not the accept side's. The kernel's loopback work is charged to whichever process it
// runs in, mostly the one connecting.

const listenerProcessEnv = "ROSTER_HEALTHCHECK_LISTENERS"

// TestListenerProcess is not a test: run as the benchmarks' child, it opens the number
// of loopback listeners its environment asks for, prints their ports, and accepts and
// closes connections until its stdin closes.
func TestListenerProcess(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv(listenerProcessEnv))
	if err != nil {
		t.Skip("runs only as the benchmarks' listener process")
	}
	out := bufio.NewWriter(os.Stdout)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, ln.Addr().(*net.TCPAddr).Port)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	fmt.Fprintln(out, "ready")
	out.Flush()
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// listenerProcess starts the child with n listeners and returns their addresses.
func listenerProcess(b *testing.B, n int) []string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), listenerProcessEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child exits when its stdin closes
		_ = cmd.Wait()
	})
	var addrs []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			return addrs
		}
		if _, err := strconv.Atoi(line); err == nil {
			addrs = append(addrs, "127.0.0.1:"+line)
		}
	}
	b.Fatalf("listener process ended before it was ready (%d of %d listeners): %v", len(addrs), n, sc.Err())
	return nil
}

func cpuTime(b *testing.B) time.Duration {
	u, s := cpuSplit(b)
	return u + s
}

// cpuSplit is this process's user and system CPU time so far.
func cpuSplit(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkRoundTCP runs whole rounds of TCP probes over 10 000 loopback listeners with
// the default pool, as one member probing 10 000 instances would: one op is one round.
// It reports the prober's CPU per probe and what that costs at the default interval
// (a round every 4.5 s on average).
func BenchmarkRoundTCP(b *testing.B) {
	const n = 10000
	addrs := listenerProcess(b, n)
	s := &store{}
	for _, a := range addrs {
		s.add(target(a, Checker{Type: TypeTCP}))
	}
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.Workers = DefaultWorkers
	cfg.Timeout = DefaultTimeout
	p := newProber(b, cfg, s, alone(), s)
	r := startRounds(b, p, clock)
	r.run(1) // warm: states made, the pool's goroutines grown

	b.ReportAllocs()
	user0, sys0 := cpuSplit(b)
	wall0 := time.Now()
	b.ResetTimer()
	r.run(b.N)
	b.StopTimer()
	wall := time.Since(wall0)
	user1, sys1 := cpuSplit(b)
	cpu := (user1 - user0) + (sys1 - sys0)

	probes := float64(b.N * n)
	perProbe := float64(cpu.Nanoseconds()) / probes
	b.ReportMetric(perProbe, "cpu-ns/probe")
	b.ReportMetric(float64((user1-user0).Nanoseconds())/probes, "user-ns/probe")
	b.ReportMetric(probes/wall.Seconds(), "probes/s")
	avgRound := DefaultInterval + DefaultJitter/2
	b.ReportMetric(perProbe*n/float64(avgRound.Nanoseconds())*100, "%core@10k/4.5s")
	// Every port listens, so a failure is a probe that missed its 1 s timeout: on a
	// starved machine its goroutine was not run in time. Reported, not fatal; a flip
	// would need CheckTimes of them in a row on one target.
	b.ReportMetric(value(b, p.metrics.probes.WithLabelValues("tcp", "failure")), "timeouts")
	b.ReportMetric(float64(len(s.flipsOf(""))), "flips")
}

// BenchmarkProbeTCP is one TCP probe at a time, without the pool or the round: the
// floor of the cost per probe.
func BenchmarkProbeTCP(b *testing.B) {
	addrs := listenerProcess(b, 1000)
	ports := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		ports[i] = netip.MustParseAddrPort(a)
	}
	d := newProbers(newDialer(guard{allowed: mustCIDRs("127.0.0.0/8")}))
	tg := Target{Checker: &Checker{Type: TypeTCP}}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := d.probe(pctx, tg, ports[i%len(ports)]); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/probe")
}
