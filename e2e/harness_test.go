// Package e2e runs unchanged Nacos clients and Roster's own client against real
// `roster server` processes: real binaries, real TCP and UDP on 127.0.0.1, real data
// directories, SIGTERM and SIGKILL. See README.md.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/testsupport/freeport"
)

// Timing the harness gives every server; the tests' deadlines are derived from it.
const (
	heartbeatInterval = 1 * time.Second
	heartbeatTimeout  = 3 * time.Second
	ipDeleteTimeout   = 6 * time.Second
	expiryCheck       = 200 * time.Millisecond
)

// electionTimeout is every server's --election-timeout (Raft's heartbeat and election
// timeout; a test's own flag overrides it). It was 200 ms: on the shared 2-core machine a
// stalled leader missed a heartbeat often enough that followers held elections in
// tests that assert the leader and term stay put (TestRemovedNodeStaysOut) or that a
// removal and a restart go through one leader (TestClusterMembership). Production's 1 s,
// which chaos uses too, rides over such stalls; failover deadlines are set for it.
var electionTimeout = flag.Duration("election-timeout", time.Second, "Raft election timeout of every server the tests start")

// Deadlines of the harness itself.
const (
	readyTimeout = 60 * time.Second // a -race build on a busy 2-core machine starts slowly
	stopTimeout  = 20 * time.Second
	buildTimeout = 10 * time.Minute
)

var (
	// workDir holds the binaries and the Nacos SDK's cache and log for one `go test`
	// run. The SDK's goroutines never stop (v1.1.4 has no Close), so these files outlive
	// single tests and are removed by TestMain.
	workDir string

	buildOnce sync.Once
	buildErr  error
	rosterBin string // the roster binary, built from the repository root
	childBin  string // cmd/nacosv1client

	// clusterKeyFile is the cluster key every server of this run is given, so that any
	// of them can form or join a cluster.
	clusterKeyFile string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "roster-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	workDir = dir
	clusterKeyFile = filepath.Join(dir, "cluster.key")
	if err := writeClusterKey(clusterKeyFile); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds roster and nacosv1client once per `go test` run. Under -race the
// server is built with -race as well, so a data race in it fails the test that hit it.
func binaries(t *testing.T) (roster, child string) {
	t.Helper()
	buildOnce.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			buildErr = err
			return
		}
		rosterBin = filepath.Join(workDir, "roster")
		childBin = filepath.Join(workDir, "nacosv1client")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		args := []string{"build"}
		if raceEnabled {
			args = append(args, "-race")
		}
		for _, b := range []struct{ dir, out, pkg string }{
			{root, rosterBin, "./cmd/roster"},
			{".", childBin, "./cmd/nacosv1client"},
		} {
			cmd := exec.CommandContext(ctx, "go", append(args, "-o", b.out, b.pkg)...)
			cmd.Dir = b.dir
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s in %s: %v\n%s", b.pkg, b.dir, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return rosterBin, childBin
}

// Server is one `roster server` child process. Restart keeps its ports and data dir.
type Server struct {
	t        *testing.T
	bin      string
	Port     int    // HTTP port on 127.0.0.1
	URL      string // http://127.0.0.1:Port
	RaftAddr string
	DataDir  string
	NodeID   string   // default n1
	Extra    []string // more `roster server` flags, e.g. --join
	// KeyFile is given as --cluster-key-file (the run's shared key); empty gives none.
	KeyFile string
	// Client, when set, is what the harness asks /readyz with (an https URL needs one
	// that trusts the server's CA).
	Client  *http.Client
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	state  *os.ProcessState
	starts int
}

// StartServer starts a single-node server on free loopback ports with a fresh data dir
// and waits until it is ready. The server is killed when the test ends; if the test
// failed, the tail of its log is printed.
func StartServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer(t, "n1")
	s.Start()
	return s
}

// StartServerWith is StartServer with more `roster server` flags; a flag given here
// overrides the harness's own (the last occurrence of a flag wins).
func StartServerWith(t *testing.T, extra ...string) *Server {
	t.Helper()
	s := NewServer(t, "n1")
	s.Extra = extra
	s.Start()
	return s
}

// NewServer prepares a server on free loopback ports with a fresh data dir without
// starting it, so that cluster tests can set Extra flags and start several at once.
func NewServer(t *testing.T, nodeID string) *Server {
	t.Helper()
	bin, _ := binaries(t)
	port := freeHTTPPort(t)
	s := &Server{
		t:        t,
		bin:      bin,
		Port:     port,
		URL:      "http://127.0.0.1:" + strconv.Itoa(port),
		RaftAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		DataDir:  t.TempDir(),
		NodeID:   nodeID,
		KeyFile:  clusterKeyFile,
		logPath:  filepath.Join(t.TempDir(), "roster.log"),
	}
	// ROSTER_E2E_LOG_DIR keeps every server log, passing or not.
	if dir := os.Getenv("ROSTER_E2E_LOG_DIR"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s.logPath = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"_"+nodeID+".log")
		_ = os.Remove(s.logPath)
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server %s log %s, last lines:\n%s", nodeID, s.logPath, tail(s.logPath, 80))
		}
	})
	return s
}

func (s *Server) args() []string {
	var key []string
	if s.KeyFile != "" {
		key = []string{"--cluster-key-file", s.KeyFile}
	}
	return append(append([]string{
		"server",
		// Health probes dial loopback only: tests register 10.x persistent instances.
		"--health-check-cidrs", "127.0.0.0/8",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(s.Port),
		"--raft-addr", s.RaftAddr,
		"--data-dir", s.DataDir,
		"--node-id", s.NodeID,
		// The server refuses a heartbeat timeout below the beat interval (default 5s),
		// so the interval told to clients is set to match the short timeouts.
		"--heartbeat-interval", heartbeatInterval.String(),
		"--heartbeat-timeout", heartbeatTimeout.String(),
		"--ip-delete-timeout", ipDeleteTimeout.String(),
		"--expiry-check-interval", expiryCheck.String(),
		"--election-timeout", electionTimeout.String(),
		"--log-level", "debug",
	}, key...), s.Extra...)
}

// nodeHTTP is an HTTP client that proves the run's cluster key, as a member does: the
// tests read internal routes (/roster/v1/distro/*) with it.
func nodeHTTP(t testing.TB) *http.Client {
	t.Helper()
	cred, err := nodeauth.LoadKeyFile(clusterKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cred.Client(5 * time.Second)
}

// writeClusterKey writes a fresh random cluster key, readable by its owner only.
func writeClusterKey(path string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
}

// Start starts the process (again) and waits for GET /readyz = 200.
func (s *Server) Start() {
	s.t.Helper()
	exited := s.Launch()
	start := time.Now()
	if err := s.waitReady(exited); err != nil {
		s.t.Fatalf("server start #%d: %v\nlog:\n%s", s.starts, err, tail(s.logPath, 60))
	}
	s.t.Logf("server %s start #%d ready in %v", s.NodeID, s.starts, time.Since(start).Round(time.Millisecond))
}

// WaitReady waits for a server started with Launch to report ready.
func (s *Server) WaitReady() {
	s.t.Helper()
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if err := s.waitReady(exited); err != nil {
		s.t.Fatalf("server %s start #%d: %v\nlog:\n%s", s.NodeID, s.starts, err, tail(s.logPath, 60))
	}
}

// Launch starts the process without waiting for it to be ready, and returns a channel
// closed when it exits.
func (s *Server) Launch() <-chan struct{} {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("server already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		s.t.Fatal(err)
	}
	s.starts++
	fmt.Fprintf(logf, "=== harness: start #%d: %s %s\n", s.starts, s.bin, strings.Join(s.args(), " "))
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		s.t.Fatalf("start roster: %v", err)
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
	return exited
}

func (s *Server) waitReady(exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	if s.Client != nil {
		hc = s.Client
	}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		resp, err := hc.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "GET /readyz = " + resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %s", readyTimeout, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready (%v)", s.exitState())
		case <-tick.C:
		}
	}
}

func (s *Server) exitState() *os.ProcessState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// signal sends sig and waits for the process to exit.
func (s *Server) signal(sig syscall.Signal, timeout time.Duration) (*os.ProcessState, error) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return nil, errors.New("server not running")
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		s.clear()
		return nil, fmt.Errorf("did not exit within %v of %v", timeout, sig)
	}
	st := s.exitState()
	s.clear()
	return st, nil
}

func (s *Server) clear() {
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	s.checkRace()
}

// Stop sends SIGTERM and requires a clean exit (status 0) within stopTimeout.
func (s *Server) Stop() {
	s.t.Helper()
	start := time.Now()
	st, err := s.signal(syscall.SIGTERM, stopTimeout)
	if err != nil {
		s.t.Fatalf("stop: %v", err)
	}
	if !st.Success() {
		s.t.Errorf("server exited with %v after SIGTERM, want status 0", st)
	}
	s.t.Logf("server stopped by SIGTERM in %v", time.Since(start).Round(time.Millisecond))
}

// Kill sends SIGKILL: no shutdown code runs.
func (s *Server) Kill() {
	s.t.Helper()
	if _, err := s.signal(syscall.SIGKILL, stopTimeout); err != nil {
		s.t.Fatalf("kill: %v", err)
	}
}

// kill is the cleanup: SIGKILL if still running, no error if not.
func (s *Server) kill() {
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		_, _ = s.signal(syscall.SIGKILL, stopTimeout)
	}
}

// Restart stops the server with SIGTERM and starts it on the same ports and data dir.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// checkRace fails the test if a -race server reported a data race.
func (s *Server) checkRace() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
		end := min(len(b), i+6000)
		s.t.Errorf("roster server reported a data race:\n%s", b[i:end])
	}
}

// Child is a nacosv1client process holding one ephemeral instance alive.
type Child struct {
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
}

// ChildSpec is what the child registers.
type ChildSpec struct {
	Namespace, Group, Service, IP, Cluster, Metadata string
	Port                                             int
	Weight                                           float64
}

// StartChild runs nacosv1client against s and waits until it has registered.
func StartChild(t *testing.T, s *Server, spec ChildSpec) *Child {
	t.Helper()
	_, bin := binaries(t)
	if spec.Metadata == "" {
		spec.Metadata = "{}"
	}
	dir := filepath.Join(workDir, fmt.Sprintf("child-%s-%d", spec.Service, spec.Port))
	cmd := exec.Command(bin,
		"-server-port", strconv.Itoa(s.Port), "-namespace", spec.Namespace, "-group", spec.Group,
		"-service", spec.Service, "-ip", spec.IP, "-port", strconv.Itoa(spec.Port),
		"-cluster", spec.Cluster, "-weight", strconv.FormatFloat(spec.Weight, 'f', -1, 64),
		"-metadata", spec.Metadata, "-dir", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{cmd: cmd, exited: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nacosv1client: %v", err)
	}
	registered := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "registered" {
				close(registered)
			}
		}
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.Kill)
	select {
	case <-registered:
	case <-c.exited:
		t.Fatalf("nacosv1client exited before registering: %s", c.stderr)
	case <-time.After(30 * time.Second):
		c.Kill() // before reading stderr, which the exec package writes until the exit
		t.Fatalf("nacosv1client did not register within 30s: %s", c.stderr)
	}
	return c
}

// Kill sends SIGKILL to the child and waits for it.
func (c *Child) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// eventually calls fn until it returns nil, failing the test with fn's last error if
// that does not happen within timeout. fn's error says what is still awaited.
func eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("still waiting after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// freePort returns a port on 127.0.0.1 for a server to bind later, below the ephemeral
// range so that no outgoing connection can take it first (see freeport).
func freePort(t *testing.T) int {
	t.Helper()
	return freeport.Pick(t)
}

// freeHTTPPort returns a free port P such that P+1000 (Nacos' gRPC port rule) is free
// as well.
func freeHTTPPort(t *testing.T) int {
	t.Helper()
	return freeport.PickWith(t, 1000)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
