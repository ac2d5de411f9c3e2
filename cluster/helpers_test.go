package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/nodeauth"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/raftnode"
)

// testRaftTimeout is the Raft heartbeat, election and lease timeout of every test
// member. At 50 ms a machine under load (load average 15+) stalled leaders past it so
// often that leadership moved during every attempt of a test that needs one stable
// follower (TestConcurrentForwardedWritesShareRequests: "no follower kept its role for
// 5 tries"). Production's 1 s rides over such stalls.
var testRaftTimeout = flag.Duration("raft-timeout", time.Second, "Raft timeouts of the test members")

// Timing of the test clusters: everything is a setting, kept short.
const (
	testSyncInterval = 100 * time.Millisecond
	testHoldTimeout  = 2 * time.Second
	testCallTimeout  = 2 * time.Second
	formTimeout      = 15 * time.Second
)

// testNode is one real member in-process: a bbolt store and the FSM over it, Raft over
// TCP on loopback, the Cluster, and an HTTP server whose chi router carries the
// Cluster's internal routes.
type testNode struct {
	t     *testing.T
	id    string
	dir   string // the node's data dir: fsm.db, raft/, members.json
	addr  string // HTTP host:port
	srv   *httptest.Server
	store *persistence.Store
	fsm   *fsm.FSM
	raft  *raftnode.Node
	c     *Cluster

	handler atomic.Pointer[http.Handler]
	// fault, when set, runs before the route for requests to its path: a test's way of
	// breaking one route of this node (setFault).
	faultPath atomic.Pointer[string]
	fault     atomic.Pointer[http.HandlerFunc]
	// applied200 counts the forwarded writes this node's route answered 200: the
	// writes it took as leader from another member.
	applied200 atomic.Int64

	closeOnce sync.Once
}

// nodeOptions are the settings of one node.
type nodeOptions struct {
	cred            *nodeauth.Credential
	bootstrapExpect int
	join            []string
	hold            time.Duration
	callTimeout     time.Duration
	log             *slog.Logger
}

// newKey is a fresh cluster-key credential of 32 random bytes.
func newKey(t *testing.T) *nodeauth.Credential {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	cred, err := nodeauth.NewKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// listen starts the node's HTTP server so that its address is known before the
// Cluster is made; requests are served once build has installed the router.
func listen(t *testing.T, id string) *testNode {
	t.Helper()
	n := &testNode{t: t, id: id, dir: t.TempDir()}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := n.handler.Load()
		if h == nil {
			http.Error(w, "node not built yet", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	n.addr = n.srv.Listener.Addr().String()
	t.Cleanup(n.close)
	return n
}

// build opens the store, starts Raft, makes the Cluster and mounts its routes. It does
// not Start the Cluster.
func (n *testNode) build(opts nodeOptions) {
	t := n.t
	t.Helper()
	store, err := persistence.Open(filepath.Join(n.dir, "fsm.db"), persistence.Options{OpenTimeout: time.Second, NodeID: n.id})
	if err != nil {
		t.Fatal(err)
	}
	n.store = store
	applied := func() uint64 { i, _ := store.Applied(); return i }
	n.fsm = fsm.New(store, opts.log)
	node, err := raftnode.New(raftnode.Config{
		NodeID:             n.id,
		RaftAddr:           "127.0.0.1:0",
		DataDir:            filepath.Join(n.dir, "raft"),
		HeartbeatTimeout:   *testRaftTimeout,
		ElectionTimeout:    *testRaftTimeout,
		LeaderLeaseTimeout: *testRaftTimeout,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		FSMAppliedIndex:    applied,
		Logger:             opts.log,
		Credential:         opts.cred,
	}, n.fsm)
	if err != nil {
		t.Fatal(err)
	}
	n.raft = node
	hold := opts.hold
	if hold == 0 {
		hold = testHoldTimeout
	}
	callTimeout := opts.callTimeout
	if callTimeout == 0 {
		callTimeout = testCallTimeout
	}
	c, err := New(Config{
		NodeID:          n.id,
		HTTPAddr:        n.addr,
		RaftAddr:        node.Addr(),
		DataDir:         n.dir,
		BootstrapExpect: opts.bootstrapExpect,
		Join:            opts.join,
		HoldTimeout:     hold,
		SyncInterval:    testSyncInterval,
		CallTimeout:     callTimeout,
		Logger:          opts.log,
		Credential:      opts.cred,
		Applied:         applied,
	}, node)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	r := chi.NewRouter()
	r.Use(n.faults)
	c.Mount(r)
	var h http.Handler = r
	n.handler.Store(&h)
}

// faults runs the fault installed for a request's path instead of the route.
func (n *testNode) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, f := n.faultPath.Load(), n.fault.Load(); p != nil && f != nil && *p == r.URL.Path {
			(*f)(w, r)
			return
		}
		if r.URL.Path != PathApply && r.URL.Path != PathApplyBatch {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status != http.StatusOK {
			return
		}
		if r.URL.Path == PathApply {
			n.applied200.Add(1)
			return
		}
		// A batch answers 200 as a whole; what counts is each command's own status.
		var answers []applyAnswer
		if err := json.Unmarshal(sw.body.Bytes(), &answers); err == nil {
			for _, a := range answers {
				if a.Status == http.StatusOK {
					n.applied200.Add(1)
				}
			}
		}
	})
}

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// setFault makes h answer every request to path on this node.
func (n *testNode) setFault(path string, h http.HandlerFunc) {
	n.fault.Store(&h)
	n.faultPath.Store(&path)
}

func (n *testNode) clearFault() {
	n.faultPath.Store(nil)
	n.fault.Store(nil)
}

// close stops the node's parts in the reverse order of their making: the Cluster's
// background work, the HTTP server, Raft, the store. It is idempotent.
func (n *testNode) close() {
	n.closeOnce.Do(func() {
		if n.c != nil {
			n.c.Stop()
		}
		n.srv.Close()
		if n.raft != nil {
			if err := n.raft.Shutdown(); err != nil {
				n.t.Errorf("shutdown raft of %s: %v", n.id, err)
			}
		}
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				n.t.Errorf("close store of %s: %v", n.id, err)
			}
		}
	})
}

// testCluster is N real nodes that formed one cluster.
type testCluster struct {
	t     *testing.T
	nodes []*testNode
	cred  *nodeauth.Credential
}

// newCluster starts n nodes that share one cluster key, each with BootstrapExpect n and
// every node's HTTP address to join, and waits until they formed: a leader known to
// all, every node in every node's configuration, the leader's HTTP address known.
func newCluster(t *testing.T, n int, opts nodeOptions) *testCluster {
	t.Helper()
	if opts.log == nil {
		opts.log = testLogger(t)
	}
	if opts.cred == nil {
		opts.cred = newKey(t)
	}
	tc := &testCluster{t: t, cred: opts.cred}
	var joins []string
	for i := range n {
		node := listen(t, fmt.Sprintf("n%d", i+1))
		tc.nodes = append(tc.nodes, node)
		joins = append(joins, node.addr)
	}
	opts.bootstrapExpect, opts.join = n, joins
	for _, node := range tc.nodes {
		node.build(opts)
	}
	for _, node := range tc.nodes {
		node.c.Start()
	}
	tc.waitFormed()
	return tc
}

// waitFormed waits until every node agrees on one leader, has every node in its
// configuration, and knows the leader's HTTP address.
func (tc *testCluster) waitFormed() {
	tc.t.Helper()
	eventually(tc.t, formTimeout, func() bool {
		leader := ""
		for _, n := range tc.nodes {
			id, _ := n.raft.Leader()
			if id == "" || (leader != "" && id != leader) {
				return false
			}
			leader = id
			servers, err := n.raft.Servers()
			if err != nil || len(servers) != len(tc.nodes) {
				return false
			}
			if _, ok := n.c.LeaderHTTP(); !ok {
				return false
			}
		}
		return true
	})
}

// leader is the node that is leader now, waiting for one.
func (tc *testCluster) leader() *testNode {
	tc.t.Helper()
	var found *testNode
	eventually(tc.t, formTimeout, func() bool {
		for _, n := range tc.nodes {
			if n.raft.IsLeader() {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// follower is a node that is a follower now and knows the leader's HTTP address.
func (tc *testCluster) follower() *testNode {
	tc.t.Helper()
	var found *testNode
	eventually(tc.t, formTimeout, func() bool {
		for _, n := range tc.nodes {
			id, _ := n.raft.Leader()
			if _, ok := n.c.LeaderHTTP(); ok && id != "" && id != n.id && !n.raft.IsLeader() {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// takenFromOthers is how many forwarded writes the nodes other than n took as leader.
func (tc *testCluster) takenFromOthers(n *testNode) int64 {
	var sum int64
	for _, o := range tc.nodes {
		if o != n {
			sum += o.applied200.Load()
		}
	}
	return sum
}

// forwardedApply applies a command that may be repeated on a follower and returns the
// follower and Apply's answer, which the leader gave: a try that a leadership change
// cut short (unknown outcome), or that the follower served itself because it had
// become the leader meanwhile, is repeated on a follower of the moment. Only this test
// writes, so a write taken by another node is this one.
func (tc *testCluster) forwardedApply(ctx context.Context, cmd []byte) (*testNode, any, error) {
	tc.t.Helper()
	for attempt := 1; attempt <= retries; attempt++ {
		f := tc.follower()
		before := tc.takenFromOthers(f)
		res, err := f.c.Apply(ctx, cmd)
		taken := tc.takenFromOthers(f) - before
		switch {
		case errors.Is(err, raftnode.ErrUnknownOutcome):
			tc.t.Logf("apply on %s, attempt %d: %v; repeating it", f.id, attempt, err)
		case taken == 0:
			tc.t.Logf("apply on %s, attempt %d: not forwarded (it had become the leader); repeating it", f.id, attempt)
		case taken > 1:
			tc.t.Fatalf("one Apply on %s was taken by the leader %d times", f.id, taken)
		default:
			return f, res, err
		}
	}
	tc.t.Fatalf("no forwarded apply in %d tries", retries)
	return nil, nil, nil
}

// followers are the nodes that are not the given leader.
func (tc *testCluster) followers(leader *testNode) []*testNode {
	var out []*testNode
	for _, n := range tc.nodes {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// eventually polls cond until it holds, failing the test when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		<-tick.C
	}
}

// ctxFor is a context that ends after d or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// deadAddr is a loopback address nobody listens on: no socket can listen on port 0,
// so the dial is refused. (A port freed by closing a listener is no such address: on a
// shared machine another process may bind it before the call dials.)
const deadAddr = "127.0.0.1:0"

// lostLeadership reports whether err is how Raft reports a leadership change in the
// middle of an operation: the leader's 50 ms lease can lapse on a busy machine.
func lostLeadership(err error) bool {
	return errors.Is(err, raftnode.ErrUnknownOutcome) || errors.Is(err, raftnode.ErrNotLeader) || errors.Is(err, raftnode.ErrNoLeader)
}

// retries bounds how often a test repeats a step that a leadership change cut short.
const retries = 5

// apply is n's Apply of a command that may be repeated, tried again when a leadership
// change left its outcome unknown: reporting that is Apply's job (see
// TestApplyUnknownOutcomeWhenLeaderDiesMidWrite), not the subject of the tests that
// use this.
func apply(t *testing.T, ctx context.Context, n *testNode, cmd []byte) (any, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		res, err := n.c.Apply(ctx, cmd)
		if !errors.Is(err, raftnode.ErrUnknownOutcome) || attempt == retries {
			return res, err
		}
		t.Logf("apply on %s, attempt %d: %v; repeating it", n.id, attempt, err)
	}
}

// removePeer removes a member through the leader, again through the leader of the
// moment when a leadership change cut a try short (removing is idempotent), and returns
// the node on which it succeeded.
func (tc *testCluster) removePeer(id string) *testNode {
	tc.t.Helper()
	for attempt := 1; attempt <= retries; attempt++ {
		leader := tc.leader()
		if leader.id == id {
			// The member to remove became the leader: it hands leadership on first.
			err := leader.raft.TransferLeadership()
			tc.t.Logf("%s, to be removed, is the leader; transferred leadership: %v", id, err)
			continue
		}
		err := leader.c.RemovePeer(id)
		if err == nil {
			return leader
		}
		if !lostLeadership(err) {
			tc.t.Fatalf("RemovePeer(%s) on %s: %v", id, leader.id, err)
		}
		tc.t.Logf("RemovePeer(%s) on %s, attempt %d: %v; repeating it", id, leader.id, attempt, err)
	}
	tc.t.Fatalf("RemovePeer(%s) did not succeed in %d tries", id, retries)
	return nil
}

// Commands of the tests.

var (
	ordersKey = naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}
	ephKey    = naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "sessions"}
)

func instance(ip string, port int) naming.Instance {
	return naming.Instance{IP: ip, Port: port, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true}
}

func encode(t *testing.T, c fsm.Command) []byte {
	t.Helper()
	b, err := fsm.Encode(c)
	if err != nil {
		t.Fatalf("encode %T: %v", c, err)
	}
	return b
}

func register(t *testing.T, k naming.ServiceKey, in naming.Instance) []byte {
	t.Helper()
	return encode(t, fsm.RegisterInstance{Service: k, Instance: in})
}

// stored reads an instance from a node's FSM store (nil when absent).
func (n *testNode) stored(k naming.ServiceKey, in naming.Instance) *naming.Instance {
	n.t.Helper()
	var got *naming.Instance
	err := n.fsm.Store().View(func(tx *persistence.Tx) error {
		var err error
		got, err = tx.Instance(k, in.Key())
		return err
	})
	if err != nil {
		n.t.Fatalf("read %s on %s: %v", in.Key(), n.id, err)
	}
	return got
}

// testLogger writes to t.Log until the test ends (raft's goroutines may outlive it).
// Warnings and errors only, unless -v.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
