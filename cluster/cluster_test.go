package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/raftnode"
)

// outcome is what a caller of Apply is told in the end, as the registry reads it: the
// error, or a response that is an error (the leader's FSM answers a rejection as its
// response value; a follower gets it back as the error).
func outcome(res any, err error) error {
	if err != nil {
		return err
	}
	if e, ok := res.(error); ok {
		return e
	}
	return nil
}

// sameNamingError fails unless err is exactly want: a *naming.Error of the same status
// and message.
func sameNamingError(t *testing.T, what string, err error, want *naming.Error) {
	t.Helper()
	var ne *naming.Error
	if !errors.As(err, &ne) {
		t.Fatalf("%s: got %v (%T), want *naming.Error %d %q", what, err, err, want.Status, want.Message)
	}
	if *ne != *want {
		t.Fatalf("%s: got *naming.Error %d %q, want %d %q", what, ne.Status, ne.Message, want.Status, want.Message)
	}
}

// A write taken by a follower is committed through the leader: every member's FSM ends
// up holding it, the follower has applied it by the time Apply returns (its client
// reads its own write there), and the leader's FSM answer, rejection or value, reaches
// the follower typed as it left the leader.
func TestFollowerApplyCommitsThroughLeader(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	ctx := ctxFor(t, 20*time.Second)

	in := instance("10.0.0.1", 8080)
	in.Metadata = map[string]string{"version": "1"}
	f, res, err := tc.forwardedApply(ctx, register(t, ordersKey, in))
	if err != nil || res != nil {
		t.Fatalf("register on follower %s: res %v, err %v; want nil, nil", f.id, res, err)
	}
	// Read-your-writes: no waiting here.
	got := f.stored(ordersKey, in)
	if got == nil {
		applied, _ := f.store.Applied()
		t.Fatalf("follower %s has not applied its own write when Apply returned (applied index %d)", f.id, applied)
	}
	if !reflect.DeepEqual(*got, in) {
		t.Fatalf("follower %s stored %+v, want %+v", f.id, *got, in)
	}
	for _, n := range tc.nodes {
		eventually(t, 5*time.Second, func() bool { return n.stored(ordersKey, in) != nil })
	}

	// An FSM rejection crosses as the same *naming.Error, as the error (a forwarded
	// answer carries no value with it).
	ephemeral := fsm.PutService{Service: *naming.NewService(ephKey, true), Mode: fsm.PutUpsert}
	if f, res, err := tc.forwardedApply(ctx, encode(t, ephemeral)); err != nil || res != nil {
		t.Fatalf("create ephemeral service on follower %s: res %v, err %v", f.id, res, err)
	}
	f, res, err = tc.forwardedApply(ctx, register(t, ephKey, in))
	if res != nil {
		t.Fatalf("rejected register answered a value %v on %s", res, f.id)
	}
	sameNamingError(t, "persistent register into an ephemeral service, from a follower", err, naming.ErrEphemeralService(ephKey))
	if f.stored(ephKey, in) != nil {
		t.Fatal("a rejected register wrote its instance")
	}

	ephemeral.Mode = fsm.PutCreate
	createAgain := encode(t, ephemeral)
	f, res, err = tc.forwardedApply(ctx, createAgain)
	if res != nil {
		t.Fatalf("rejected create answered a value %v on %s", res, f.id)
	}
	sameNamingError(t, "create of an existing service, from a follower", err, naming.ErrServiceExists(ephKey))
	// The leader's own caller is told the very same thing.
	sameNamingError(t, "create of an existing service, on the leader", outcome(apply(t, ctx, tc.leader(), createAgain)), naming.ErrServiceExists(ephKey))

	// A command whose answer is a value: []string on the follower as on the leader.
	batch := fsm.UpdateMetadataBatch{Service: ordersKey, Metadata: map[string]string{"zone": "eu-1"}}
	f, res, err = tc.forwardedApply(ctx, encode(t, batch))
	if err != nil {
		t.Fatalf("metadata batch on follower %s: %v", f.id, err)
	}
	updated, ok := res.([]string)
	if want := []string{"10.0.0.1:8080:unknown:DEFAULT:persistent"}; !ok || !reflect.DeepEqual(updated, want) {
		t.Fatalf("metadata batch answered %#v (%T), want []string %q", res, res, want)
	}
	if got := f.stored(ordersKey, in); got == nil || got.Metadata["zone"] != "eu-1" || got.Metadata["version"] != "1" {
		t.Fatalf("follower %s does not read its own metadata batch: %+v", f.id, got)
	}
}

// When the leader takes a forwarded write and the connection then dies without an
// answer, the follower cannot know whether the write was committed: Apply reports an
// unknown outcome, never success, and does not send the write again.
func TestApplyUnknownOutcomeWhenLeaderDiesMidWrite(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	ctx := ctxFor(t, 20*time.Second)

	// The fault never blocks: a failing test must fail, not hang in Close.
	var took atomic.Int64
	var body atomic.Pointer[[]byte]
	die := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if took.Add(1) == 1 {
			body.Store(&b)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	}

	var f *testNode
	var lost naming.Instance
	var cmd []byte
	var res any
	var err error
	for attempt := 1; ; attempt++ {
		// Every node but the writer dies this way, so a leadership change during the
		// write still meets a dying leader.
		f = tc.follower()
		for _, n := range tc.nodes {
			n.clearFault()
			if n != f {
				n.setFault(PathApplyBatch, die)
			}
		}
		lost = instance("10.0.0.2", 8000+attempt)
		cmd = register(t, ordersKey, lost)
		res, err = f.c.Apply(ctx, cmd)
		if took.Load() > 0 || attempt == retries {
			break
		}
		// No other node was asked: the writer had become the leader and wrote itself.
		t.Logf("attempt %d: %s wrote as leader (res %v, err %v); again on a follower", attempt, f.id, res, err)
	}
	if err == nil {
		t.Fatalf("Apply reported success (res %v) for a write whose answer never came", res)
	}
	if !errors.Is(err, raftnode.ErrUnknownOutcome) {
		t.Fatalf("Apply: %v; want an error wrapping raftnode.ErrUnknownOutcome", err)
	}
	if res != nil {
		t.Fatalf("Apply answered a value %v with its error", res)
	}
	if n := took.Load(); n != 1 {
		t.Fatalf("the write was taken %d times; want once: after its outcome became unknown it must not be sent again", n)
	}
	if got := *body.Load(); !bytes.Equal(got, appendFrame(nil, cmd)) {
		t.Fatalf("the leader took %q, want the command %q", got, cmd)
	}

	// With the leader healthy again the cluster takes writes; the lost one was never
	// proposed (the fault answered in the leader's place), which a follower, having
	// applied everything up to its next write, can tell.
	for _, n := range tc.nodes {
		n.clearFault()
	}
	next := instance("10.0.0.3", 8080)
	f, _, err = tc.forwardedApply(ctx, register(t, ordersKey, next))
	if err != nil {
		t.Fatalf("write after the fault: %v", err)
	}
	if f.stored(ordersKey, next) == nil {
		t.Fatal("the write after the fault is not applied on the follower")
	}
	if f.stored(ordersKey, lost) != nil {
		t.Fatal("the write the leader never proposed is stored")
	}
}

// Without a leader a write waits for one up to HoldTimeout and then fails with
// raftnode.ErrNoLeader (the registry's 503), whether the quorum was lost or the
// cluster never formed.
func TestApplyNoLeaderAfterHoldTimeout(t *testing.T) {
	const hold = 500 * time.Millisecond
	const margin = 2 * time.Second

	check := func(t *testing.T, n *testNode) {
		t.Helper()
		in := instance("10.0.0.4", 8080)
		start := time.Now()
		res, err := n.c.Apply(ctxFor(t, 20*time.Second), register(t, ordersKey, in))
		elapsed := time.Since(start)
		if !errors.Is(err, raftnode.ErrNoLeader) {
			t.Fatalf("Apply: res %v, err %v; want an error wrapping raftnode.ErrNoLeader", res, err)
		}
		if errors.Is(err, raftnode.ErrUnknownOutcome) {
			t.Fatalf("Apply: %v: a write never proposed is not an unknown outcome", err)
		}
		if elapsed < hold {
			t.Fatalf("Apply gave up after %s, before the hold timeout %s", elapsed, hold)
		}
		if elapsed >= hold+margin {
			t.Fatalf("Apply gave up after %s, long past the hold timeout %s", elapsed, hold)
		}
		if n.stored(ordersKey, in) != nil {
			t.Fatal("the refused write is stored")
		}
		t.Logf("no leader after %s (hold %s)", elapsed, hold)
	}

	t.Run("quorum lost", func(t *testing.T) {
		tc := newCluster(t, 3, nodeOptions{hold: hold})
		leader := tc.leader()
		fs := tc.followers(leader)
		keep := fs[0]
		for _, n := range []*testNode{leader, fs[1]} {
			if err := n.raft.Shutdown(); err != nil {
				t.Fatalf("shut down raft of %s: %v", n.id, err)
			}
		}
		// Should leadership have moved to keep meanwhile, it steps down once its lease
		// lapses; a write it took as leader before that would be an unknown outcome.
		eventually(t, 5*time.Second, func() bool { return !keep.raft.IsLeader() })
		check(t, keep)
	})

	t.Run("never formed", func(t *testing.T) {
		// Expecting two nodes, this one never meets the other and never bootstraps.
		n := listen(t, "lonely")
		n.build(nodeOptions{cred: newKey(t), bootstrapExpect: 2, join: []string{n.addr}, hold: hold, log: testLogger(t)})
		n.c.Start()
		check(t, n)
		if n.raft.HasState() {
			t.Fatal("a node expecting two bootstrapped alone")
		}
	})
}

// A typed call reaches the member it is sent to (the path an ephemeral write takes to
// the member responsible for its client): values and *naming.Error come back as the
// handler returned them, internal failures come back as a generic 500 and the outcome
// of a call is classified as not sent or unknown.
func TestCallToMember(t *testing.T) {
	const callTimeout = 500 * time.Millisecond
	tc := newCluster(t, 2, nodeOptions{callTimeout: callTimeout})
	a, b := tc.nodes[0], tc.nodes[1]
	ctx := ctxFor(t, 20*time.Second)

	type greetRequest struct {
		Name string `json:"name"`
	}
	type greetAnswer struct {
		Greeting string   `json:"greeting"`
		From     string   `json:"from"`
		Tags     []string `json:"tags"`
	}
	const secret = "disk /dev/sdz1 on fire"
	var served atomic.Int64
	hung := make(chan struct{}, 1)
	b.c.Handle("greet", func(_ context.Context, raw json.RawMessage) (any, error) {
		served.Add(1)
		var req greetRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, naming.BadRequest("bad greet request")
		}
		return greetAnswer{Greeting: "hello " + req.Name, From: b.id, Tags: []string{"x", "y"}}, nil
	})
	b.c.Handle("refuse", func(context.Context, json.RawMessage) (any, error) {
		return nil, naming.ErrServiceNotFound(ordersKey)
	})
	b.c.Handle("fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("store: %s", secret)
	})
	b.c.Handle("hang", func(ctx context.Context, _ json.RawMessage) (any, error) {
		select {
		case hung <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done(): // the caller gave up
		case <-time.After(10 * time.Second):
		}
		return "too late", nil
	})

	t.Run("value", func(t *testing.T) {
		var got greetAnswer
		if err := a.c.Call(ctx, b.addr, "greet", greetRequest{Name: "ada"}, &got); err != nil {
			t.Fatalf("Call greet: %v", err)
		}
		want := greetAnswer{Greeting: "hello ada", From: b.id, Tags: []string{"x", "y"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("greet answered %+v, want %+v", got, want)
		}
	})

	t.Run("naming error", func(t *testing.T) {
		err := a.c.Call(ctx, b.addr, "refuse", struct{}{}, nil)
		sameNamingError(t, "refuse", err, naming.ErrServiceNotFound(ordersKey))
	})

	t.Run("internal error", func(t *testing.T) {
		err := a.c.Call(ctx, b.addr, "fail", struct{}{}, nil)
		var ne *naming.Error
		if !errors.As(err, &ne) || ne.Status != http.StatusInternalServerError {
			t.Fatalf("fail: %v (%T); want a 500 *naming.Error", err, err)
		}
		if strings.Contains(ne.Message, secret) || strings.Contains(ne.Message, "store:") {
			t.Fatalf("the internal error's text crossed to the caller: %q", ne.Message)
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		err := a.c.Call(ctx, b.addr, "no-such-method", struct{}{}, nil)
		var ne *naming.Error
		if !errors.As(err, &ne) || ne.Status != http.StatusNotFound {
			t.Fatalf("unknown method: %v (%T); want a 404 *naming.Error", err, err)
		}
	})

	t.Run("nobody listens", func(t *testing.T) {
		err := a.c.Call(ctx, deadAddr, "greet", greetRequest{Name: "ada"}, nil)
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("Call to a dead address: %v; want an error wrapping ErrNotSent", err)
		}
	})

	t.Run("no answer in time", func(t *testing.T) {
		start := time.Now()
		err := a.c.Call(ctx, b.addr, "hang", struct{}{}, nil)
		elapsed := time.Since(start)
		if !errors.Is(err, ErrCallOutcome) || errors.Is(err, ErrNotSent) {
			t.Fatalf("Call of a method that does not answer: %v; want ErrCallOutcome (it was served)", err)
		}
		select {
		case <-hung:
		default:
			t.Fatal("the hanging method was never served")
		}
		if elapsed < callTimeout || elapsed > callTimeout+2*time.Second {
			t.Fatalf("the call gave up after %s; CallTimeout is %s", elapsed, callTimeout)
		}
	})

	t.Run("wrong credential", func(t *testing.T) {
		// A node of another cluster: its own key, not the members'.
		stranger := listen(t, "stranger")
		stranger.build(nodeOptions{cred: newKey(t), log: testLogger(t)})
		before := served.Load()
		var got greetAnswer
		err := stranger.c.Call(ctx, b.addr, "greet", greetRequest{Name: "mallory"}, &got)
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("Call with another key: %v; want an error wrapping ErrNotSent", err)
		}
		if !strings.Contains(err.Error(), ErrCredentialRefused.Error()) {
			t.Fatalf("Call with another key: %v; want it to say the credential was refused", err)
		}
		if served.Load() != before || !reflect.DeepEqual(got, greetAnswer{}) {
			t.Fatalf("a call without the cluster's credential was served (%+v)", got)
		}
	})
}

// readTable reads the member table a node saved in its data dir.
func readTable(t *testing.T, dir string) []Member {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "members.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []Member
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("members.json: %v", err)
	}
	return list
}

// Every member knows every Raft server with its HTTP address, keeps that table in its
// data dir for the next start, and the leader's RemovePeer takes a member out of both
// the configuration and the table.
func TestMemberTable(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	var want []Member
	for _, n := range tc.nodes {
		want = append(want, Member{ID: n.id, RaftAddr: n.raft.Addr(), HTTPAddr: n.addr})
	}
	for _, n := range tc.nodes {
		eventually(t, 5*time.Second, func() bool { return reflect.DeepEqual(n.c.Members(), want) })
		eventually(t, 5*time.Second, func() bool { return reflect.DeepEqual(readTable(t, n.dir), want) })
	}

	// A Cluster made over a data dir (as on the next start) loads the table.
	leader := tc.leader()
	fs := tc.followers(leader)
	keep, gone := fs[0], fs[1]
	reloaded, err := New(Config{NodeID: keep.id, HTTPAddr: keep.addr, RaftAddr: keep.raft.Addr(), DataDir: keep.dir, Credential: tc.cred, Logger: testLogger(t)}, keep.raft)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range want {
		if got, ok := reloaded.Member(m.ID); !ok || got != m {
			t.Fatalf("reloaded table has %s as %+v (known %v), want %+v", m.ID, got, ok, m)
		}
	}
	if !KnowsOthers(keep.dir, keep.id) {
		t.Fatal("KnowsOthers is false over the data dir of a cluster member")
	}
	if KnowsOthers(t.TempDir(), keep.id) {
		t.Fatal("KnowsOthers is true over an empty data dir")
	}

	// RemovePeer on the leader.
	leader = tc.removePeer(gone.id)
	var rest []Member
	for _, m := range want {
		if m.ID != gone.id {
			rest = append(rest, m)
		}
	}
	servers, err := leader.raft.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		if s.ID == gone.id {
			t.Fatalf("%s is still in the configuration %+v", gone.id, servers)
		}
	}
	if got := leader.c.Members(); !reflect.DeepEqual(got, rest) {
		t.Fatalf("leader's members after RemovePeer: %+v, want %+v", got, rest)
	}
	if m, ok := leader.c.Member(gone.id); ok {
		t.Fatalf("leader's table still holds %+v", m)
	}
	if got := readTable(t, leader.dir); !reflect.DeepEqual(got, rest) {
		t.Fatalf("leader's members.json after RemovePeer: %+v, want %+v", got, rest)
	}
	// Every remaining member drops it too, from its Members and from the table it
	// keeps: a table entry left behind would come back to the leader's table with the
	// next leader.
	for _, n := range tc.nodes {
		if n == gone {
			continue
		}
		eventually(t, 5*time.Second, func() bool { return reflect.DeepEqual(n.c.Members(), rest) })
		eventually(t, 5*time.Second, func() bool {
			_, kept := n.c.Member(gone.id)
			return !kept && reflect.DeepEqual(readTable(t, n.dir), rest)
		})
	}
}

// A node that has Raft state but is not in the configuration was removed: the leader
// refuses its announcement with ErrRemoved, taken directly, over HTTP, or proxied by a
// follower, and does not add it back.
func TestJoinRefusesRemovedNode(t *testing.T) {
	tc := newCluster(t, 3, nodeOptions{})
	leader := tc.leader()
	fs := tc.followers(leader)
	other, gone := fs[0], fs[1]
	// The test announces for the removed node; its own loop would do the same, later.
	gone.c.Stop()
	leader = tc.removePeer(gone.id)
	inConfig := func(n *testNode) bool {
		servers, err := n.raft.Servers()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range servers {
			if s.ID == gone.id {
				return true
			}
		}
		return false
	}
	eventually(t, 5*time.Second, func() bool { return !inConfig(other) })
	if !gone.raft.HasState() {
		t.Fatal("the removed node has no raft state")
	}

	// refused asks until the answer is ErrRemoved, failing at once on any success; the
	// other errors are those of a leadership change, which the tries outlast.
	refused := func(what string, join func() ([]Member, error)) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			table, err := join()
			switch {
			case errors.Is(err, ErrRemoved):
				return
			case err == nil:
				t.Fatalf("%s: the removed node was let in (table %+v)", what, table)
			case attempt == retries:
				t.Fatalf("%s: %v; want ErrRemoved", what, err)
			}
			t.Logf("%s, attempt %d: %v; repeating it", what, attempt, err)
			tc.leader()
		}
	}
	req := JoinRequest{ID: gone.id, RaftAddr: gone.raft.Addr(), HTTPAddr: gone.addr, HasState: true}
	refused("Join on the leader", func() ([]Member, error) { return tc.leader().c.Join(req) })
	for _, via := range []*testNode{leader, other} {
		refused("announce via "+via.id, func() ([]Member, error) { return gone.c.announce(via.addr) })
	}
	if inConfig(leader) {
		t.Fatal("the removed node is back in the configuration")
	}
	for _, n := range []*testNode{leader, other} {
		eventually(t, 5*time.Second, func() bool { _, kept := n.c.Member(gone.id); return !kept })
	}
}

// The leader serves joins concurrently and each may change the table (so may
// RemovePeer and the sync loop): members.json must end up holding the table as it is
// in memory, whatever the order of the writes, never an older table or a mix of two.
func TestMemberTableSavedUnderConcurrentChanges(t *testing.T) {
	n := listen(t, "n1")
	n.build(nodeOptions{cred: newKey(t), log: testLogger(t)})
	for round := range 10 {
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.c.record(Member{ID: fmt.Sprintf("m%02d-%02d", round, i), RaftAddr: "127.0.0.1:1", HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 10000+i)})
			}()
		}
		if round > 0 {
			// and, meanwhile, forget what the previous round added
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n.c.forget(fmt.Sprintf("m%02d-%02d", round-1, i))
				}()
			}
		}
		wg.Wait()
		n.c.mu.Lock()
		want := n.c.tableLocked()
		n.c.mu.Unlock()
		if len(want) != 21 {
			t.Fatalf("round %d: the table holds %d members, want 21", round, len(want))
		}
		if got := readTable(t, n.dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: members.json holds %d members, not the table's %d", round, len(got), len(want))
		}
	}
}
