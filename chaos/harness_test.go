// Package chaos runs RELIABILITY.md's R scenarios against real `roster server`
// processes with faults injected on purpose: SIGKILL, SIGSTOP/SIGCONT, per-link fault
// proxies between nodes, a data dir on a small tmpfs, damaged files and a stepped wall
// clock. See README.md.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
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

	"github.com/roster-registry/roster/testsupport/freeport"
)

var (
	flagRuns    = flag.Int("runs", 1, "runs of every scenario")
	flagSeed    = flag.Uint64("seed", 0, "seed of every random choice (0: from the clock); printed at start")
	flagFull    = flag.Bool("full", false, "RELIABILITY.md's sizes and durations instead of the short run's")
	flagResults = flag.String("results", "", "write the results table to this file (make chaos: RESULTS.md)")
	flagRace    = flag.Bool("race-server", false, "build the server with -race")
)

// Timing every node gets; deadlines derive from it. A scenario at full size may give
// production's beat timing instead (setBeatTiming), one scenario at a time.
var (
	beatInterval  = 1 * time.Second
	beatTimeout   = 3 * time.Second
	deleteTimeout = 6 * time.Second
	// electionTO is production's: a shorter lease steps leaders down whenever the shared
	// 2-core machine stalls. A scenario may raise it (setElectionTimeout).
	electionTO = time.Second
)

const (
	expiryCheck  = 200 * time.Millisecond
	applyTimeout = 3 * time.Second
	// forwardTimeout bounds a follower's wait for the leader's answer to what it sent on
	// (server.Config.ForwardTimeout); it must exceed applyTimeout, the leader's own wait.
	forwardTimeout = 4 * time.Second
	// answerSlack is what a loaded 2-core machine may add to a bound the server keeps.
	answerSlack  = 2 * time.Second
	readyTimeout = 60 * time.Second
)

// setBeatTiming gives the nodes started by this test other beat timing, until it ends.
func setBeatTiming(t testing.TB, interval, timeout, del time.Duration) {
	oi, ot, od := beatInterval, beatTimeout, deleteTimeout
	beatInterval, beatTimeout, deleteTimeout = interval, timeout, del
	t.Cleanup(func() { beatInterval, beatTimeout, deleteTimeout = oi, ot, od })
}

// setElectionTimeout gives the nodes started by this test another Raft election
// timeout, until it ends.
func setElectionTimeout(t testing.TB, d time.Duration) {
	old := electionTO
	electionTO = d
	t.Cleanup(func() { electionTO = old })
}

// size is the short run's value, or the full run's with -full.
func size[T any](short, full T) T {
	if *flagFull {
		return full
	}
	return short
}

var (
	workDir   string
	rosterBin string
	keyFile   string
	seed      uint64
)

func TestMain(m *testing.M) {
	flag.Parse()
	seed = *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("chaos: seed %d (replay with -seed %d), runs %d, full %v\n", seed, seed, *flagRuns, *flagFull)
	dir, err := os.MkdirTemp("", "roster-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	keyFile = filepath.Join(dir, "cluster.key")
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	writeResults()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build() error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	rosterBin = filepath.Join(workDir, "roster")
	args := []string{"build", "-o", rosterBin}
	if *flagRace {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/roster")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// Node is one `roster server` process. Restart keeps its ports and data dir.
type Node struct {
	t        testing.TB
	ID       string
	Port     int
	URL      string
	RaftAddr string
	DataDir  string
	Extra    []string
	// Proxy maps each peer's HTTP and Raft address to this node's proxy for it.
	Proxy     map[string]string
	ClockFile string
	logPath   string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	state  *os.ProcessState
	starts int
	paused bool
}

func newNode(t testing.TB, id string) *Node {
	port := freeHTTPPort(t)
	n := &Node{
		t: t, ID: id, Port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port),
		RaftAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		DataDir:  t.TempDir(), logPath: filepath.Join(t.TempDir(), id+".log"),
		ClockFile: filepath.Join(t.TempDir(), "clock-offset"),
	}
	if dir := os.Getenv("ROSTER_CHAOS_LOG_DIR"); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		n.logPath = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"_"+id+".log")
		_ = os.Remove(n.logPath)
	}
	t.Cleanup(func() {
		n.Cont()
		n.kill()
		if t.Failed() {
			t.Logf("node %s log %s, last lines:\n%s", id, n.logPath, tail(n.logPath, 60))
		}
	})
	return n
}

func (n *Node) args() []string {
	a := []string{"server",
		"--health-check-cidrs", "127.0.0.0/8",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(n.Port),
		"--raft-addr", n.RaftAddr,
		"--data-dir", n.DataDir,
		"--node-id", n.ID,
		"--cluster-key-file", keyFile,
		"--heartbeat-interval", beatInterval.String(),
		"--heartbeat-timeout", beatTimeout.String(),
		"--ip-delete-timeout", deleteTimeout.String(),
		"--expiry-check-interval", expiryCheck.String(),
		"--election-timeout", electionTO.String(),
		"--apply-timeout", applyTimeout.String(),
		"--forward-timeout", forwardTimeout.String(),
		"--hold-timeout", "2s",
		"--test-clock-offset-file", n.ClockFile,
	}
	if lvl := os.Getenv("ROSTER_CHAOS_LOG_LEVEL"); lvl != "" {
		a = append(a, "--log-level", lvl)
	}
	if len(n.Proxy) > 0 {
		var pairs []string
		for from, to := range n.Proxy {
			pairs = append(pairs, from+"="+to)
		}
		a = append(a, "--test-peer-proxy", strings.Join(pairs, ","))
	}
	return append(a, n.Extra...)
}

// Launch starts the process and returns at once.
func (n *Node) Launch() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.t.Fatalf("node %s already running", n.ID)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	n.starts++
	fmt.Fprintf(logf, "=== chaos: start #%d: %s\n", n.starts, strings.Join(n.args(), " "))
	cmd := exec.Command(rosterBin, n.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("start roster: %v", err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.state = cmd, exited, nil
	go func() {
		_ = cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.state = cmd.ProcessState
		n.mu.Unlock()
		close(exited)
	}()
	return exited
}

// Start launches the node and waits until /readyz answers 200.
func (n *Node) Start() time.Duration {
	n.t.Helper()
	start := time.Now()
	exited := n.Launch()
	if err := n.waitReady(exited, readyTimeout); err != nil {
		n.t.Fatalf("node %s start #%d: %v\n%s", n.ID, n.starts, err, tail(n.logPath, 40))
	}
	return time.Since(start)
}

func (n *Node) WaitReady() {
	n.t.Helper()
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if err := n.waitReady(exited, readyTimeout); err != nil {
		n.t.Fatalf("node %s start #%d: %v\n%s", n.ID, n.starts, err, tail(n.logPath, 40))
	}
}

func (n *Node) waitReady(exited <-chan struct{}, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		resp, err := hc.Get(n.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %s", timeout, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before ready (%v)", n.exitState())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *Node) exitState() *os.ProcessState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Exited returns the channel closed when the current process exits.
func (n *Node) Exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exited
}

func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

func (n *Node) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// Kill9 sends SIGKILL and reaps the process.
func (n *Node) Kill9() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
	n.mu.Lock()
	n.cmd = nil
	n.mu.Unlock()
}

func (n *Node) kill() { n.Kill9() }

// Reap waits for a process that exits on its own, for at most timeout.
func (n *Node) Reap(timeout time.Duration) (*os.ProcessState, error) {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(timeout):
		n.Kill9()
		return nil, fmt.Errorf("still running after %v", timeout)
	}
	n.mu.Lock()
	n.cmd = nil
	st := n.state
	n.mu.Unlock()
	return st, nil
}

// Pause sends SIGSTOP; Resume SIGCONT. Clients skip a paused node (a real client
// fails over once its requests time out).
func (n *Node) Pause() {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	n.signal(syscall.SIGSTOP)
}

func (n *Node) Cont() {
	n.signal(syscall.SIGCONT)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// Up is Running and not paused.
func (n *Node) Up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.paused
}

// Term signals SIGTERM and waits for a clean exit.
func (n *Node) Term() (*os.ProcessState, error) {
	n.signal(syscall.SIGTERM)
	return n.Reap(20 * time.Second)
}

// StepClock sets the node's wall-clock offset (re-read by the node every 100 ms).
func (n *Node) StepClock(d time.Duration) {
	if err := os.WriteFile(n.ClockFile, []byte(d.String()), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *Node) Log() string {
	b, _ := os.ReadFile(n.logPath)
	return string(b)
}

// Cluster is N nodes formed with --bootstrap-expect N, every directed link through a
// fault proxy.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	links map[[2]string]*Link
}

// NewCluster prepares n nodes and their proxies without starting them.
func NewCluster(t testing.TB, n int, extra ...string) *Cluster {
	c := &Cluster{t: t, links: map[[2]string]*Link{}}
	for i := range n {
		c.Nodes = append(c.Nodes, newNode(t, fmt.Sprintf("n%d", i+1)))
	}
	var join []string
	for _, nd := range c.Nodes {
		join = append(join, "127.0.0.1:"+strconv.Itoa(nd.Port))
	}
	for i, a := range c.Nodes {
		a.Proxy = map[string]string{}
		for j, b := range c.Nodes {
			if i == j {
				continue
			}
			c.addLink(a, b)
		}
		a.Extra = append([]string{"--bootstrap-expect", strconv.Itoa(n), "--join", strings.Join(join, ",")}, extra...)
	}
	return c
}

func (c *Cluster) addLink(a, b *Node) {
	l := &Link{From: a.ID, To: b.ID, conns: map[net.Conn]bool{}, rng: newRand(uint64(len(c.links)))}
	for _, target := range []string{"127.0.0.1:" + strconv.Itoa(b.Port), b.RaftAddr} {
		p, err := newProxy(l, target)
		if err != nil {
			c.t.Fatal(err)
		}
		c.t.Cleanup(p.Close)
		a.Proxy[target] = p.Addr()
	}
	c.links[[2]string{a.ID, b.ID}] = l
}

// StartCluster starts a cluster of n and waits for one agreed leader.
func StartCluster(t testing.TB, n int, extra ...string) *Cluster {
	c := NewCluster(t, n, extra...)
	for _, nd := range c.Nodes {
		nd.Launch()
	}
	for _, nd := range c.Nodes {
		nd.WaitReady()
	}
	c.Leader(30 * time.Second)
	return c
}

// Link is the directed link a→b.
func (c *Cluster) Link(a, b *Node) *Link { return c.links[[2]string{a.ID, b.ID}] }

// Isolate blackholes every link to and from n.
func (c *Cluster) Isolate(n *Node) {
	for _, o := range c.Nodes {
		if o != n {
			c.Link(n, o).Set(Blackhole)
			c.Link(o, n).Set(Blackhole)
		}
	}
}

// Cut blackholes both directions between a and b.
func (c *Cluster) Cut(a, b *Node) {
	c.Link(a, b).Set(Blackhole)
	c.Link(b, a).Set(Blackhole)
}

// Heal clears every fault.
func (c *Cluster) Heal() {
	for _, l := range c.links {
		l.Set(Healthy)
	}
}

func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) ByID(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Leader waits until every given (default: running) node names the same leader.
func (c *Cluster) Leader(timeout time.Duration, among ...*Node) *Node {
	c.t.Helper()
	if len(among) == 0 {
		among = c.Running()
	}
	var leader *Node
	eventually(c.t, timeout, func() error {
		id := ""
		for _, n := range among {
			v, err := raftOf(n)
			if err != nil {
				return err
			}
			if v.Leader == "" {
				return fmt.Errorf("%s knows no leader", n.ID)
			}
			if id != "" && v.Leader != id {
				return fmt.Errorf("nodes disagree on the leader: %s vs %s", id, v.Leader)
			}
			id = v.Leader
		}
		leader = c.ByID(id)
		if leader == nil {
			return fmt.Errorf("leader %s is not a node of the cluster", id)
		}
		return nil
	})
	return leader
}

// Followers are the running nodes other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Running() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// eventually calls fn until it returns nil or fails the test after timeout.
func eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := within(timeout, fn); err != nil {
		t.Fatalf("still waiting after %v: %v", timeout, err)
	}
}

// within is eventually returning the last error instead of failing.
func within(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort is a port for a node to bind later, below the ephemeral range so that no
// outgoing connection can take it first (see freeport).
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.Pick(t)
}

// freeHTTPPort is a free port P with P+1000 (the gRPC port) free too.
func freeHTTPPort(t testing.TB) int {
	t.Helper()
	return freeport.PickWith(t, 1000)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runCLI runs the roster binary with args (e.g. snapshot save).
func runCLI(args ...string) (int, string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rosterBin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), errb.String(), nil
	}
	if err != nil {
		return -1, out.String(), errb.String(), err
	}
	return 0, out.String(), errb.String(), nil
}
