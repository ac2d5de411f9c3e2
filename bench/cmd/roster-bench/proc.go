package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyPoll is how often a starting server's /readyz is asked. Connection refusals on
// loopback cost microseconds, so a short period keeps the start-time figure sharp
// without loading the machine.
const readyPoll = 2 * time.Millisecond

// stopTimeout bounds a SIGTERM shutdown before the process is killed.
const stopTimeout = 60 * time.Second

// server is one `roster server` child process on 127.0.0.1 with its own data dir and
// log file. Its ports stay fixed across restarts because the Raft address is part of
// the configuration the node keeps in its log.
type server struct {
	name      string
	bin       string
	dataDir   string
	logPath   string
	httpAddr  string
	raftAddr  string
	grpcAddr  string
	pprofAddr string // "" unless the bench profiles
	extra     []string

	starts int
	cmd    *exec.Cmd
	exited chan struct{}
	state  *os.ProcessState // valid once exited is closed
}

// newServer prepares (but does not start) a server with a fresh data dir under the
// bench's work dir and a log file in its log dir.
func (b *bench) newServer(name string, extra ...string) (*server, error) {
	dataDir, err := os.MkdirTemp(b.workDir, name+"-data-")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &server{
		name:    name,
		bin:     b.opts.roster,
		dataDir: dataDir,
		logPath: filepath.Join(b.logDir, filepath.Base(dataDir)+".log"),
		extra:   append(append([]string(nil), b.opts.serverArgs...), extra...),
	}
	if err := s.pickPorts(); err != nil {
		return nil, err
	}
	if b.opts.profileDir != "" {
		if s.pprofAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	b.servers = append(b.servers, s)
	return s, nil
}

func (s *server) pickPorts() error {
	h, err := freePort()
	if err != nil {
		return err
	}
	r, err := freePort()
	if err != nil {
		return err
	}
	g, err := freePort()
	if err != nil {
		return err
	}
	s.httpAddr, s.raftAddr, s.grpcAddr = h, r, g
	return nil
}

// freePort asks the kernel for an unused loopback port. Another process may take it
// before the server binds it; start retries a first start that loses that race.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

func (s *server) url() string { return "http://" + s.httpAddr }

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *server) args() []string {
	a := append([]string{
		"server",
		// Health probes dial loopback only: the workloads register 10.x persistent instances.
		"--health-check-cidrs", "127.0.0.0/8",
		"--http-addr", s.httpAddr,
		"--raft-addr", s.raftAddr,
		"--data-dir", s.dataDir,
		"--grpc-addr", s.grpcAddr,
		"--node-id", "n1",
	}, s.extra...)
	if s.pprofAddr != "" {
		a = append(a, "--pprof-addr", s.pprofAddr)
	}
	return a
}

// start execs the server and returns the time from just before exec until GET
// /readyz answered 200. It fails if the process exits first or timeout passes.
func (s *server) start(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	for attempt := 0; ; attempt++ {
		d, err := s.startOnce(ctx, timeout)
		// A first start can lose its ports to another process between freePort and
		// bind; later starts must keep the ports the Raft configuration names.
		if err != nil && s.starts == 1 && attempt < 3 && strings.Contains(s.logTail(20), "address already in use") {
			if perr := s.pickPorts(); perr != nil {
				return 0, perr
			}
			s.starts = 0
			continue
		}
		return d, err
	}
}

func (s *server) startOnce(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	if s.running() {
		return 0, fmt.Errorf("%s: already running", s.name)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	s.starts++
	fmt.Fprintf(logf, "=== roster-bench: start #%d at %s: %s %s\n", s.starts,
		time.Now().Format(time.RFC3339Nano), s.bin, strings.Join(s.args(), " "))
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The child dies with the bench, even if the bench is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	err = cmd.Start()
	logf.Close() // the child holds its own descriptor
	if err != nil {
		return 0, fmt.Errorf("%s: exec %s: %w", s.name, s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.state = cmd, exited, nil
	go func() {
		_ = cmd.Wait()
		s.state = cmd.ProcessState
		close(exited)
	}()

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := t0.Add(timeout)
	last := "no answer yet"
	for {
		resp, err := hc.Get(s.url() + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
			last = "GET /readyz = " + resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			_ = s.kill()
			return 0, fmt.Errorf("%s: not ready %v after exec (%s); killed", s.name, timeout, last)
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("%s: exited before it was ready (%v)", s.name, s.state)
		case <-ctx.Done():
			_ = s.kill()
			return 0, ctx.Err()
		case <-time.After(readyPoll):
		}
	}
}

// stop sends SIGTERM and waits for the exit; it kills the process after stopTimeout.
// It returns how long the shutdown took and an error for anything but a clean exit 0.
func (s *server) stop() (time.Duration, error) {
	if !s.running() {
		return 0, fmt.Errorf("%s: not running", s.name)
	}
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return time.Since(t0), fmt.Errorf("%s: no exit within %v of SIGTERM; killed", s.name, stopTimeout)
	}
	d := time.Since(t0)
	if !s.state.Success() {
		return d, fmt.Errorf("%s: after SIGTERM: %v", s.name, s.state)
	}
	return d, nil
}

// kill sends SIGKILL and waits for the exit.
func (s *server) kill() error {
	if !s.running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.exited
	return nil
}

// rss is the process's resident set size (VmRSS) in bytes.
func (s *server) rss() (int64, error) {
	if !s.running() {
		return 0, fmt.Errorf("%s: not running", s.name)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmRSS in /proc/%d/status", s.name, s.cmd.Process.Pid)
}

// logTail is the last n lines of the server's log (stdout and stderr of every start).
func (s *server) logTail(n int) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLevels counts the log's WARN and ERROR lines, in slog's text and JSON forms, so
// a result can say whether the server complained.
func (s *server) logLevels() (warn, errs int) {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, "level=WARN"), strings.Contains(l, `"level":"WARN"`):
			warn++
		case strings.Contains(l, "level=ERROR"), strings.Contains(l, `"level":"ERROR"`):
			errs++
		}
	}
	return warn, errs
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on Linux).
const clockTicks = 100

// cpuSeconds is the user+system CPU time the process has used so far.
func (s *server) cpuSeconds() (float64, error) {
	if !s.running() {
		return 0, fmt.Errorf("%s: not running", s.name)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ")" are fixed.
	rest := string(data)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: short /proc/%d/stat", s.name, s.cmd.Process.Pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad /proc/%d/stat", s.name, s.cmd.Process.Pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// selfCPUSeconds is the bench's own user+system CPU time: on a small machine the load
// generator competes with the server for the same cores.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// expiryCounts sums the unhealthy= and removed= counts of the server's
// "ephemeral expiry" log lines (slog text format): how many times instances turned
// unhealthy or were removed for want of beats while the bench ran. It relies on the
// log wording, so zero also means "no such lines".
func (s *server) expiryCounts() (unhealthy, removed int) {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, `msg="ephemeral expiry"`) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "unhealthy="); ok {
				n, _ := strconv.Atoi(v)
				unhealthy += n
			} else if v, ok := strings.CutPrefix(f, "removed="); ok {
				n, _ := strconv.Atoi(v)
				removed += n
			}
		}
	}
	return unhealthy, removed
}

// fileRSS is how much of the process's RSS is mappings of files whose path ends in
// suffix (bbolt's mmap of fsm.db counts toward RSS for every page it has touched).
func (s *server) fileRSS(suffix string) (int64, error) {
	if !s.running() {
		return 0, fmt.Errorf("%s: not running", s.name)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	inFile := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			inFile = len(fields) >= 6 && strings.HasSuffix(fields[len(fields)-1], suffix)
			continue
		}
		if inFile && len(fields) == 3 && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err == nil {
				total += kb << 10
			}
		}
	}
	return total, sc.Err()
}
