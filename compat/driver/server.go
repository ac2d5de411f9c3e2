package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timings every server runs with; clients are told them through the environment.
const (
	heartbeatInterval = 1 * time.Second
	heartbeatTimeout  = 3 * time.Second
	ipDeleteTimeout   = 6 * time.Second
	expiryCheck       = 200 * time.Millisecond
)

const (
	readyTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
)

// ports hands out loopback ports, never the same one twice in a run.
type ports struct {
	mu   sync.Mutex
	used map[int]bool
}

func newPorts() *ports { return &ports{used: map[int]bool{}} }

// free reports whether port can be listened on now (TCP and UDP).
func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// pick returns a free port; with offset > 0 port+offset must be free too.
func (p *ports) pick(offset int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p.used[port] || (offset > 0 && (port+offset > 65535 || p.used[port+offset] || !free(port+offset))) {
			continue
		}
		p.used[port] = true
		if offset > 0 {
			p.used[port+offset] = true
		}
		return port, nil
	}
	return 0, errors.New("no free loopback port found")
}

// server is one `roster server` process; restart keeps its ports and data dir.
type server struct {
	bin      string
	port     int // HTTP; gRPC is port+1000
	raftPort int
	dataDir  string
	logPath  string
	extra    []string
	auth     bool // --auth; the driver logs in as username after every start

	hc *http.Client

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	state    *os.ProcessState
	username string // the administrator, once bootstrapped
	password string
	token    string
	starts   int
}

func (s *server) url() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) args() []string {
	args := []string{
		"server",
		// Health probes dial loopback only: clients register 10.x persistent instances.
		"--health-check-cidrs", "127.0.0.0/8",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(s.port),
		"--raft-addr", "127.0.0.1:" + strconv.Itoa(s.raftPort),
		"--data-dir", s.dataDir,
		"--heartbeat-interval", heartbeatInterval.String(),
		"--heartbeat-timeout", heartbeatTimeout.String(),
		"--ip-delete-timeout", ipDeleteTimeout.String(),
		"--expiry-check-interval", expiryCheck.String(),
	}
	if s.auth {
		args = append(args, "--auth")
	}
	return append(args, s.extra...)
}

// setAdmin sets the credentials login uses.
func (s *server) setAdmin(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.password = username, password
}

// accessToken is the driver's current token, empty before the first login.
func (s *server) accessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// start launches the process and waits until GET /readyz answers 200.
func (s *server) start(ctx context.Context) error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("server already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.starts++
	fmt.Fprintf(logf, "=== driver: start #%d at %s: %s %s\n", s.starts, time.Now().Format(time.RFC3339Nano), s.bin, strings.Join(s.args(), " "))
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.state = cmd, exited, nil
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		s.mu.Lock()
		s.state = cmd.ProcessState
		s.mu.Unlock()
		close(exited)
	}()
	if err := s.waitReady(ctx, exited); err != nil {
		return err
	}
	return s.login(ctx)
}

func (s *server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+"/readyz", nil)
		resp, err := s.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "GET /readyz = " + resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return fmt.Errorf("server exited before it was ready (%v)", s.exitState())
		case <-ctx.Done():
			return fmt.Errorf("server not ready in time: %s", last)
		case <-tick.C:
		}
	}
}

// login gets an access token once the driver has an administrator (auth mode).
func (s *server) login(ctx context.Context) error {
	s.mu.Lock()
	username, password := s.username, s.password
	s.mu.Unlock()
	if username == "" {
		return nil
	}
	form := url.Values{"username": {username}, "password": {password}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url()+"/nacos/v1/auth/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.aclClient().Do(req)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var r struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return fmt.Errorf("login: no accessToken in %q", body)
	}
	s.mu.Lock()
	s.token = r.AccessToken
	s.mu.Unlock()
	return nil
}

// aclTimeout bounds a login or ACL change: each costs the server a bcrypt, which can
// take seconds on a small machine busy starting JVMs.
const aclTimeout = 20 * time.Second

// aclClient is s.hc with aclTimeout.
func (s *server) aclClient() *http.Client {
	return &http.Client{Transport: s.hc.Transport, Timeout: aclTimeout}
}

func (s *server) exitState() *os.ProcessState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// stop sends sig and waits for the exit; after timeout it kills the process.
func (s *server) stop(sig syscall.Signal, timeout time.Duration) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-exited:
		if st := s.exitState(); sig == syscall.SIGTERM && st != nil && !st.Success() {
			err = fmt.Errorf("server exited with %v after SIGTERM", st)
		}
	case <-t.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		err = fmt.Errorf("server did not exit within %v of %v", timeout, sig)
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	return err
}

// instance is what the driver reads of E in the v1 instance list.
type instance struct {
	present, healthy bool
}

// lookup reads ip:port in the service's instance list. An instance listed while the
// protection threshold is reached is unhealthy whatever its healthy flag says (Nacos
// copies unhealthy hosts as healthy then).
//
// An empty ip matches the first instance of the service, whatever its address.
func (s *server) lookup(ctx context.Context, namespace, group, service, ip string, port int) (instance, error) {
	q := url.Values{
		"serviceName": {group + "@@" + service},
		"namespaceId": {namespace},
		"healthyOnly": {"false"},
	}
	if tok := s.accessToken(); tok != "" {
		q.Set("accessToken", tok)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+"/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return instance{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return instance{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return instance{}, fmt.Errorf("GET /nacos/v1/ns/instance/list: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var info struct {
		Hosts []struct {
			IP      string `json:"ip"`
			Port    int    `json:"port"`
			Healthy bool   `json:"healthy"`
		} `json:"hosts"`
		ReachProtectionThreshold bool `json:"reachProtectionThreshold"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return instance{}, fmt.Errorf("GET /nacos/v1/ns/instance/list: %v in %q", err, body)
	}
	for _, h := range info.Hosts {
		if ip == "" || (h.IP == ip && h.Port == port) {
			return instance{present: true, healthy: h.Healthy && !info.ReachProtectionThreshold}, nil
		}
	}
	return instance{}, nil
}
