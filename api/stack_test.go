package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/cluster"
	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/registry/udppush"
)

// stack is one real node in-process: bbolt in a temp dir, Raft over TCP on 127.0.0.1,
// the distro store, the registry and the HTTP front on an httptest server.
type stack struct {
	t      *testing.T
	srv    *httptest.Server
	reg    *registry.Registry
	distro *distro.Store
	clock  *fakeClock
	node   *raftnode.Node
	dir    string // data dir: fsm.db, raft/, uploads being verified

	authority *auth.Authority
}

type stackOptions struct {
	maxBody     int64
	maxSnapshot int64
	timing      naming.Timing
	auth        bool      // authentication and authorization on
	logTo       io.Writer // debug log of the whole node; nil discards
	ready       func() bool
	// namespaceMaxServices and namespaceMaxInstances are the registry's default quotas.
	namespaceMaxServices, namespaceMaxInstances int
}

// fakeClock is a settable clock for the distro store; tests move it forward to expire
// instances without waiting.
type fakeClock struct{ now atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.now.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func newStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	dir := t.TempDir()
	logTo := opts.logTo
	if logTo == nil {
		logTo = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := persistence.Open(filepath.Join(dir, "fsm.db"), persistence.Options{OpenTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	machine := fsm.New(store, log)
	node, err := raftnode.New(raftnode.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "raft"), Bootstrap: true,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		FSMAppliedIndex: func() uint64 { i, _ := store.Applied(); return i },
		Logger:          log,
	}, machine)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.WaitLeader(ctx); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	if err := node.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	timing := opts.timing
	if timing == (naming.Timing{}) {
		timing = naming.DefaultTiming()
	}
	clock := &fakeClock{}
	clock.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	d := distro.New(distro.Config{Timing: timing, CheckInterval: time.Hour, Clock: clock, Logger: log})
	reg, err := registry.New(registry.Config{Timing: timing, Logger: log,
		NamespaceMaxServices: opts.namespaceMaxServices, NamespaceMaxInstances: opts.namespaceMaxInstances,
		Push: udppush.Config{ListenAddr: "127.0.0.1:0", Delay: 20 * time.Millisecond, Logger: log}}, soloParts(t, dir, node, machine, d))
	if err != nil {
		t.Fatal(err)
	}
	reg.Start()
	authority := auth.New(auth.Config{Enabled: opts.auth, TokenTTL: time.Hour})
	machine.OnAuthChange(func(doc []byte) { _ = authority.Load(doc) })
	if err := reg.EnsureSigningKey(ctx, authority); err != nil {
		t.Fatal(err)
	}
	h := New(Config{MaxBody: opts.maxBody, NodeID: "n1", HTTPAddr: "127.0.0.1:8848", Version: "test", Logger: log,
		MaxSnapshot: opts.maxSnapshot, SpoolDir: dir, Auth: authority, Ready: opts.ready}, reg)
	srv := httptest.NewServer(h)
	s := &stack{t: t, srv: srv, reg: reg, distro: d, clock: clock, node: node, dir: dir, authority: authority}
	t.Cleanup(func() {
		srv.Close()
		reg.Close()
		d.Stop()
		_ = node.Shutdown()
		_ = store.Close()
	})
	return s
}

// soloParts completes the parts of a node that is a cluster of one.
func soloParts(t *testing.T, dir string, node *raftnode.Node, machine *fsm.FSM, d *distro.Store) registry.Parts {
	t.Helper()
	c, err := cluster.New(cluster.Config{NodeID: node.ID(), RaftAddr: node.Addr(), DataDir: dir}, node)
	if err != nil {
		t.Fatal(err)
	}
	rep := distro.NewReplicator(d, distro.ReplicatorConfig{Self: node.ID(), Peers: func() []distro.Peer { return []distro.Peer{{ID: node.ID()}} }})
	return registry.Parts{Node: node, FSM: machine, Ephemeral: d, Replicator: rep, Cluster: c}
}

// answer is a status and body.
type answer struct {
	status int
	body   string
}

// do sends a request with the params in the query (GET) or a form body (others),
// unless raw is set, in which case the query is sent exactly as given.
func (s *stack) do(method, path string, params url.Values) answer {
	s.t.Helper()
	var body io.Reader
	target := s.srv.URL + path
	if method == http.MethodGet {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return s.send(req)
}

// raw sends a request whose query string is used verbatim (Go v1.1.4 style).
func (s *stack) raw(method, pathAndQuery string) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+pathAndQuery, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.send(req)
}

func (s *stack) send(req *http.Request) answer {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return answer{resp.StatusCode, string(b)}
}

// must asserts a 200 "ok" answer.
func (s *stack) must(method, path string, params url.Values) {
	s.t.Helper()
	if a := s.do(method, path, params); a.status != 200 || a.body != "ok" {
		s.t.Fatalf("%s %s %v = %d %q, want 200 ok", method, path, params, a.status, a.body)
	}
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}
