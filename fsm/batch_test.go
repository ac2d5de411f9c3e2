package fsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

// mixedCommands succeed and fail in every way a command can: each must answer in a
// batch what it answers as an entry of its own, and the refused ones must change
// nothing for the others.
func mixedCommands() []Command {
	q := &Quota{Services: 3, Instances: 4}
	withQuota := func(svc, ip string) RegisterInstance {
		c := register(svc, ip, 80)
		c.Quota = q
		return c
	}
	return []Command{
		PutService{Service: *naming.NewService(key("eph"), true), Mode: PutCreate},
		register("eph", "10.0.0.1", 80), // persistent into an ephemeral service: refused
		withQuota("ok", "10.0.0.2"),
		DeleteService{Service: key("none")},                                        // not found
		PutService{Service: *naming.NewService(key("ok"), false), Mode: PutCreate}, // exists by now
		UpdateInstance{Service: key("ok"), IP: "10.0.0.9", Port: 8080, Cluster: "DEFAULT"},
		DeleteService{Service: key("ok")}, // not empty
		withQuota("ok", "10.0.0.3"),
		withQuota("ok", "10.0.0.4"),
		withQuota("ok", "10.0.0.5"),
		withQuota("ok", "10.0.0.6"),  // a fifth instance: over the quota
		withQuota("two", "10.0.0.7"), // a third service, but over the instance quota
		deregister("ok", "10.0.0.5", 80),
		withQuota("ok", "10.0.0.6"), // fits again: the deregister before it counts
		UpdateMetadataBatch{Service: key("ok"), Metadata: map[string]string{"v": "2"}},
		UpdateMetadataBatch{Service: key("none"), Metadata: map[string]string{"v": "2"}},
	}
}

func encodeBatch(t *testing.T, cmds ...Command) []byte {
	t.Helper()
	encoded := make([][]byte, len(cmds))
	for i, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatalf("encode %T: %v", c, err)
		}
		encoded[i] = b
	}
	return AppendBatch(nil, encoded)
}

// TestBatchAnswersEachCommandAsAlone applies the same commands as one Batch entry and
// as one entry each: every command's answer, and the state left, are the same.
func TestBatchAnswersEachCommandAsAlone(t *testing.T) {
	cmds := mixedCommands()
	alone, folded := newFSM(t), newFSM(t)
	want := alone.ApplyBatch(logs(t, 1, cmds...))

	resp := folded.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: encodeBatch(t, cmds...)})
	got, ok := resp.(BatchResult)
	if !ok {
		t.Fatalf("batch response is %T (%v), want BatchResult", resp, resp)
	}
	if len(got) != len(cmds) {
		t.Fatalf("%d answers for %d commands", len(got), len(cmds))
	}
	for i := range cmds {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("command %d (%s): batched %#v, alone %#v", i, cmds[i].Type(), got[i], want[i])
		}
	}
	// The list is only worth something if it holds refusals and successes.
	var refused, succeeded int
	for _, r := range got {
		if _, ok := r.(*naming.Error); ok {
			refused++
		} else {
			succeeded++
		}
	}
	if refused < 5 || succeeded < 5 {
		t.Fatalf("%d refused and %d succeeded: the mix is not mixed", refused, succeeded)
	}
	a, b := dump(t, alone.Store()), dump(t, folded.Store())
	if !reflect.DeepEqual(a.Services, b.Services) || !reflect.DeepEqual(a.Instances, b.Instances) || a.Counts != b.Counts {
		t.Errorf("state differs:\n alone  %+v\n folded %+v", a, b)
	}
	if b.Index != 1 {
		t.Errorf("Applied = %d, want the batch's index 1", b.Index)
	}
	if st := folded.Stats(); st.Commands != uint64(len(cmds)) || st.Batches != 1 {
		t.Errorf("Stats = %+v, want %d commands in 1 batch", st, len(cmds))
	}
}

// TestBatchFlipsMeetTheBatchRevision: the commands of a batch stamp the batch's index;
// a flip in the same entry after a write sees that write (its seen revision is older,
// so it is refused), and a flip on the revision before the batch is applied.
func TestBatchFlipsMeetTheBatchRevision(t *testing.T) {
	f := newFSM(t)
	applyOK(t, f, logs(t, 2, register("a", "10.0.0.1", 80), register("a", "10.0.0.2", 80)))
	applyOK(t, f, logs(t, 4, PutCluster{Service: key("a"), Cluster: naming.Cluster{Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "TCP"}}}))
	view := ProbeView{Prober: "n1", Members: []string{"n1"}, Epoch: 1}
	resp := f.Apply(&raft.Log{Index: 5, Term: 1, Type: raft.LogCommand, Data: encodeBatch(t,
		flip("a", "10.0.0.1", 80, false, 2, view), // seen at its register: applied
		register("a", "10.0.0.2", 80),             // rewritten at 5
		flip("a", "10.0.0.2", 80, false, 3, view), // seen before the rewrite: stale
	)})
	got, ok := resp.(BatchResult)
	if !ok || len(got) != 3 {
		t.Fatalf("response %#v", resp)
	}
	if r, ok := got[0].(FlipResult); !ok || r.Outcome != FlipApplied || r.Revision != 5 {
		t.Errorf("first flip: %#v, want applied at revision 5", got[0])
	}
	if got[1] != nil {
		t.Errorf("register: %v", got[1])
	}
	if r, ok := got[2].(FlipResult); !ok || r.Outcome != FlipStaleRevision || r.Revision != 5 {
		t.Errorf("stale flip: %#v, want refused at revision 5", got[2])
	}
	if in := instanceOf(t, f.Store(), key("a"), "10.0.0.1#80#DEFAULT"); in == nil || in.Healthy {
		t.Errorf("flipped instance = %+v", in)
	}
	if in := instanceOf(t, f.Store(), key("a"), "10.0.0.2#80#DEFAULT"); in == nil || !in.Healthy {
		t.Errorf("instance of the stale flip = %+v", in)
	}
}

// TestBatchReplay: a log holding batches and single entries, replayed on a fresh store
// (a follower catching up, or a restart whose fsm.db lost its tail), gives the same
// state; replayed onto the store that already applied it, it changes nothing.
func TestBatchReplay(t *testing.T) {
	history := []*raft.Log{
		cmdLog(t, 1, register("a", "10.0.0.1", 80)),
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: encodeBatch(t, register("a", "10.0.0.2", 80), deregister("a", "10.0.0.1", 80), register("b", "10.0.0.3", 80))},
		cmdLog(t, 3, deregister("b", "10.0.0.3", 80)),
		{Index: 4, Term: 2, Type: raft.LogCommand, Data: encodeBatch(t, register("b", "10.0.0.3", 80), DeleteService{Service: key("none")})},
	}
	path := filepath.Join(t.TempDir(), "fsm.db")
	store, err := persistence.Open(path, persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := New(store, nil)
	for _, l := range history {
		first.Apply(l)
	}
	want := dump(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	fresh := newFSM(t)
	fresh.ApplyBatch(history)
	if got := dump(t, fresh.Store()); !reflect.DeepEqual(got, want) {
		t.Errorf("replay on a fresh store:\n got %+v\nwant %+v", got, want)
	}

	reopened := openStore(t, path)
	again := New(reopened, nil)
	before := reopened.Stats().Commits
	for i, r := range again.ApplyBatch(history) {
		if r != nil {
			t.Errorf("replayed log %d answered %v", history[i].Index, r)
		}
	}
	if n := reopened.Stats().Commits - before; n != 0 {
		t.Errorf("replay of applied batches made %d commits", n)
	}
	if got := dump(t, reopened); !reflect.DeepEqual(got, want) {
		t.Errorf("replay on the same store:\n got %+v\nwant %+v", got, want)
	}
	if in := instanceOf(t, reopened, key("a"), "10.0.0.1#80#DEFAULT"); in != nil {
		t.Error("the batch's deregister did not hold")
	}
}

func TestBatchEncodeDecode(t *testing.T) {
	cmds := []Command{register("a", "10.0.0.1", 80), DeleteService{Service: key("x")}}
	framed := encodeBatch(t, cmds...)
	marshalled, err := Encode(Batch{Commands: cmds})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(framed, marshalled) {
		t.Errorf("AppendBatch and Encode differ:\n%q\n%q", framed, marshalled)
	}
	c, err := Decode(framed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Batch{Commands: cmds}) {
		t.Errorf("decoded %#v", c)
	}
	if BatchType.String() != "Batch" || BatchType.Ignorable() {
		t.Errorf("BatchType is %s, ignorable %v", BatchType, BatchType.Ignorable())
	}

	// An ignorable command this build does not know is kept in its place and skipped.
	reg, err := Encode(cmds[0])
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := AppendBatch(nil, [][]byte{[]byte("\x81\x01whatever"), reg})
	if _, err := Decode(withUnknown); err != nil {
		t.Errorf("batch with an ignorable unknown command: %v", err)
	}
	f := newFSM(t)
	resp := f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: withUnknown})
	if r, ok := resp.(BatchResult); !ok || len(r) != 2 || r[0] != nil || r[1] != nil {
		t.Errorf("batch with an ignorable unknown command answered %#v", resp)
	}
	if in := instanceOf(t, f.Store(), key("a"), "10.0.0.1#80#DEFAULT"); in == nil {
		t.Error("the known command beside the unknown one was not applied")
	}

	good := framed[2:]
	refused := map[string][]byte{
		"empty":              {byte(BatchType), CommandVersion},
		"nested":             AppendBatch(nil, [][]byte{framed}),
		"unknown mandatory":  AppendBatch(nil, [][]byte{[]byte("\x63\x01{}")}),
		"bad inner version":  AppendBatch(nil, [][]byte{append([]byte{byte(RegisterInstanceType), 9}, reg[2:]...)}),
		"truncated frame":    append([]byte{byte(BatchType), CommandVersion}, good[:len(good)-1]...),
		"frame of one byte":  {byte(BatchType), CommandVersion, 1, byte(RegisterInstanceType)},
		"garbage length":     {byte(BatchType), CommandVersion, 0xff, 0xff, 0xff},
		"unknown version":    append([]byte{byte(BatchType), 2}, good...),
		"inner body garbage": AppendBatch(nil, [][]byte{[]byte("\x01\x01{not json")}),
	}
	for name, b := range refused {
		if c, err := Decode(b); err == nil {
			t.Errorf("%s: decoded %#v", name, c)
		}
	}
	if _, err := Encode(Batch{}); err == nil {
		t.Error("an empty batch encoded")
	}
	if _, err := Encode(Batch{Commands: []Command{Batch{Commands: cmds}}}); err == nil || !strings.Contains(err.Error(), "batch") {
		t.Errorf("a nested batch encoded: %v", err)
	}
	if _, err := Encode(Batch{Commands: []Command{register("a", "", 80)}}); err == nil || !errors.As(err, new(*naming.Error)) {
		t.Errorf("a batch with an invalid command: %v, want its *naming.Error", err)
	}
}

// TestBatchStorageFailureAbortsAll: a storage failure inside a batch fails the whole
// entry, as it fails any Raft batch: nothing of it is written.
func TestBatchStorageFailureAbortsAll(t *testing.T) {
	f := newFSM(t)
	f.update = func(index, term uint64, fn func(tx *persistence.Tx) error) error {
		return f.store.Update(index, term, func(tx *persistence.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errors.New("disk broke")
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("a storage failure did not stop the FSM")
		}
		if st := dump(t, f.Store()); len(st.Services) != 0 {
			t.Errorf("a failed batch left %+v", st)
		}
	}()
	f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: encodeBatch(t, register("a", "10.0.0.1", 80), register("b", "10.0.0.2", 80))})
}
