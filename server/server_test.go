package server_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestSingleNodeInProcess starts one node on ports the system picks, writes and reads
// a persistent instance through HTTP, and checks that Close leaves no port open and no
// goroutine of the node running.
func TestSingleNodeInProcess(t *testing.T) {
	before := goroutines()
	srv := servertest.New(t, servertest.Config(t))
	srv.Start()
	servertest.WaitReady(t, srv)
	for name, addr := range map[string]string{"http": srv.HTTPAddr(), "grpc": srv.GRPCAddr(), "raft": srv.RaftAddr()} {
		if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
			t.Fatalf("%s address %q: want the bound port", name, addr)
		}
	}
	if srv.NodeID() == "" || !srv.IsLeader() {
		t.Fatalf("node %q leader=%v: a lone node leads itself", srv.NodeID(), srv.IsLeader())
	}

	c := newClient(t)
	base := "http://" + srv.HTTPAddr() + "/nacos/v1/ns/instance"
	if got := c.do(t, http.MethodPost, base+"?serviceName=a&ip=127.0.0.1&port=80&ephemeral=false"); got != "ok" {
		t.Fatalf("register answered %q, want ok", got)
	}
	list := c.do(t, http.MethodGet, base+"/list?serviceName=a")
	if !listed(list, "127.0.0.1", 80) {
		t.Fatalf("list does not show the instance: %s", list)
	}
	c.CloseIdleConnections()

	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, addr := range []string{srv.HTTPAddr(), srv.GRPCAddr(), srv.RaftAddr()} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Close", addr)
		}
	}
	checkNoGoroutinesLeft(t, before)
}

// TestCloseUnstarted: a node made but never started closes at once, ports and all.
func TestCloseUnstarted(t *testing.T) {
	before := goroutines()
	srv := servertest.New(t, servertest.Config(t))
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", srv.HTTPAddr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("HTTP port still accepts connections after Close")
	}
	select {
	case <-srv.Ready():
		t.Fatal("a node never started says it is ready")
	default:
	}
	srv.Start() // after Close: nothing
	checkNoGoroutinesLeft(t, before)
}

// TestNewUndoesWhatItOpened: when a port is taken, New fails and leaves the data dir
// free for the next attempt and nothing running.
func TestNewUndoesWhatItOpened(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	before := goroutines()
	cfg := servertest.Config(t)
	cfg.GRPC.Addr = taken.Addr().String()
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "listen on --grpc-addr") {
		t.Fatalf("New with the gRPC port taken: %v", err)
	}
	checkNoGoroutinesLeft(t, before)

	// fsm.db and raft.db are locked while open; a second New would wait for them and fail.
	cfg.GRPC.Addr = "127.0.0.1:0"
	servertest.Start(t, cfg)
}

// TestNewRefusesAnInvalidConfig: New validates, naming the flag as Validate does, and
// closes the listener it was given, which it owns.
func TestNewRefusesAnInvalidConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := servertest.Config(t)
	cfg.HTTPListener = ln
	cfg.HeartbeatInterval = 0
	if _, err := server.New(cfg); err == nil || err.Error() != "invalid value for --heartbeat-interval: must be positive" {
		t.Fatalf("New: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the given listener is still open: Accept = %v", err)
	}
}

// TestThreeNodeClusterInProcess forms a cluster of three in this process, checks that
// a persistent write sent to a follower reaches every member, and that closing the
// three leaves nothing of them running.
func TestThreeNodeClusterInProcess(t *testing.T) {
	before := goroutines()
	nodes := servertest.StartCluster(t, 3)
	_, followers := splitByRole(nodes)
	if len(followers) == 0 {
		t.Fatal("no follower among three nodes")
	}
	follower := followers[0]
	c := newClient(t)
	reg := "http://" + follower.HTTPAddr() + "/nacos/v1/ns/instance?serviceName=cp&ip=10.0.0.7&port=8080&ephemeral=false"
	if got := c.do(t, http.MethodPost, reg); got != "ok" {
		t.Fatalf("register through follower %s answered %q, want ok", follower.NodeID(), got)
	}
	for _, n := range nodes {
		list := "http://" + n.HTTPAddr() + "/nacos/v1/ns/instance/list?serviceName=cp"
		eventually(t, 10*time.Second, func() (bool, string) {
			body := c.do(t, http.MethodGet, list)
			return listed(body, "10.0.0.7", 8080), n.NodeID() + " lists " + body
		})
	}
	c.CloseIdleConnections()

	for _, n := range nodes {
		if err := n.Close(); err != nil {
			t.Errorf("close %s: %v", n.NodeID(), err)
		}
	}
	checkNoGoroutinesLeft(t, before)
}

// listed reports whether an instance/list answer holds ip:port.
func listed(body, ip string, port int) bool {
	var list struct {
		Hosts []struct {
			IP   string `json:"ip"`
			Port int    `json:"port"`
		} `json:"hosts"`
	}
	if json.Unmarshal([]byte(body), &list) != nil {
		return false
	}
	for _, h := range list.Hosts {
		if h.IP == ip && h.Port == port {
			return true
		}
	}
	return false
}

type client struct{ *http.Client }

func newClient(t *testing.T) client {
	c := client{&http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func (c client) do(t *testing.T, method, u string) string {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, u, resp.Status, b)
	}
	return string(b)
}

// eventually polls cond until it holds or the deadline passes; cond's text explains a
// failure.
func eventually(t *testing.T, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var goroutineHeader = regexp.MustCompile(`^goroutine (\d+) `)

// goroutines maps the id of every goroutine but the caller's to its stack.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // the caller's own
		}
		if m := goroutineHeader.FindStringSubmatch(g); m != nil {
			out[m[1]] = g
		}
	}
	return out
}

// checkNoGoroutinesLeft waits until every goroutine started since before has ended.
// hashicorp/raft is known to leave some behind after Shutdown; those are not the
// Server's to stop.
func checkNoGoroutinesLeft(t *testing.T, before map[string]string) {
	t.Helper()
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = left[:0]
		for id, stack := range goroutines() {
			if _, old := before[id]; old || strings.Contains(stack, "github.com/hashicorp/raft") {
				continue
			}
			left = append(left, stack)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(errors.New("goroutines still running after Close:\n\n" + strings.Join(left, "\n\n")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// splitByRole sorts a cluster's nodes, in order, into the one that leads now (nil when
// none does) and the others.
func splitByRole(nodes []*server.Server) (leader *server.Server, followers []*server.Server) {
	for _, n := range nodes {
		if n.IsLeader() {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	return leader, followers
}
