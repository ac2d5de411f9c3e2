// Package servertest runs Roster nodes inside a test process: one node or a cluster,
// on ports the system picks, with data in the test's temp dirs. Every node is closed
// when the test ends, and its log is shown only when the test failed.
package servertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
)

// ReadyTimeout bounds the wait for a node, or every node of a cluster, to be ready.
var ReadyTimeout = 60 * time.Second

// ElectionTimeout is every node's Raft election timeout. It was 200 ms, which a loaded
// machine's stalls made followers cross, so leadership moved under tests that picked
// their leader and follower once; production's 1 s (e2e and chaos use it too) rides
// over such stalls. A lone node elects itself at once whatever it is.
var ElectionTimeout = time.Second

// Config is a node's configuration for a test: HTTP, gRPC and Raft on 127.0.0.1 with
// ports the system picks, data in a new temp dir, the election timeout of
// ElectionTimeout, and a log kept in memory and printed if the test fails.
func Config(t testing.TB) server.Config {
	t.Helper()
	return config(t, "node")
}

// config is Config with the log shown under name.
func config(t testing.TB, name string) server.Config {
	cfg := server.DefaultConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GRPC.Addr = "127.0.0.1:0"
	// Health probes dial loopback only: tests register 10.x persistent instances.
	cfg.HealthCheck.CIDRs = "127.0.0.0/8"
	cfg.DataDir = t.TempDir()
	cfg.ElectionTimeout = ElectionTimeout
	cfg.Version = "test"
	cfg.Logger = cfg.NewLogger(logBuffer(t, name))
	return cfg
}

// Start creates and starts a node from cfg, closes it when the test ends and waits
// until it is ready.
func Start(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	srv := New(t, cfg)
	srv.Start()
	WaitReady(t, srv)
	return srv
}

// StartNode starts a lone node (a cluster of one) from Config, changed by each of
// opts in turn, and waits until it is ready.
func StartNode(t testing.TB, opts ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := Config(t)
	for _, o := range opts {
		o(&cfg)
	}
	return Start(t, cfg)
}

// StartCluster forms a cluster of n nodes (n1 … nN) and waits until every one is
// ready. Their HTTP ports are bound before any node starts, so each is told every
// member's address (Join) and the cluster forms at once (BootstrapExpect n); they
// share a cluster key. opts change each node's configuration; i is its index.
func StartCluster(t testing.TB, n int, opts ...func(i int, cfg *server.Config)) []*server.Server {
	t.Helper()
	key := ClusterKeyFile(t)
	lns := make([]net.Listener, n)
	join := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("servertest: bind HTTP port of n%d: %v", i+1, err)
		}
		lns[i], join[i] = ln, ln.Addr().String()
	}
	t.Cleanup(func() {
		// Listeners of nodes that never got to New; closing one twice is harmless.
		for _, ln := range lns {
			_ = ln.Close()
		}
	})
	nodes := make([]*server.Server, n)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		cfg := config(t, id)
		cfg.NodeID = id
		cfg.HTTPListener = lns[i]
		cfg.Join = join
		cfg.BootstrapExpect = n
		cfg.Security.ClusterKeyFile = key
		for _, o := range opts {
			o(i, &cfg)
		}
		nodes[i] = New(t, cfg)
	}
	for _, srv := range nodes {
		srv.Start()
	}
	for _, srv := range nodes {
		WaitReady(t, srv)
	}
	return nodes
}

// New creates a node without starting it and closes it when the test ends.
func New(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("servertest: close %s: %v", srv.NodeID(), err)
		}
	})
	return srv
}

// WaitReady waits until srv is ready, failing the test when it is not within
// ReadyTimeout or its HTTP port fails first.
func WaitReady(t testing.TB, srv *server.Server) {
	t.Helper()
	timer := time.NewTimer(ReadyTimeout)
	defer timer.Stop()
	select {
	case <-srv.Ready():
	case err := <-srv.Err():
		t.Fatalf("servertest: %s: %v", srv.NodeID(), err)
	case <-timer.C:
		t.Fatalf("servertest: %s not ready after %s", srv.NodeID(), ReadyTimeout)
	}
}

// ClusterKeyFile writes a new cluster key (mode 600, as nodes require) into a temp
// dir and returns its path, for Security.ClusterKeyFile of every member.
func ClusterKeyFile(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// logBuffer keeps a node's log in memory and prints it when the test has failed. A
// node's goroutines may log until Close returns, after which testing.T must not be
// written to from them, so nothing goes to t until the test's own cleanup.
func logBuffer(t testing.TB, name string) *syncBuffer {
	b := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, b.String())
		}
	})
	return b
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
