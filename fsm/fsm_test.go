package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

func openStore(t *testing.T, path string) *persistence.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "fsm.db")
	}
	s, err := persistence.Open(path, persistence.Options{OpenTimeout: 100 * time.Millisecond, InitialMmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newFSM(t *testing.T) *FSM {
	t.Helper()
	return New(openStore(t, ""), nil)
}

func cmdLog(t *testing.T, index uint64, c Command) *raft.Log {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatalf("encode %T: %v", c, err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: b}
}

// logs numbers commands from index first on.
func logs(t *testing.T, first uint64, cmds ...Command) []*raft.Log {
	t.Helper()
	out := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		out[i] = cmdLog(t, first+uint64(i), c)
	}
	return out
}

func key(name string) naming.ServiceKey {
	return naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: name}
}

func register(svc string, ip string, port int) RegisterInstance {
	return RegisterInstance{Service: key(svc), Instance: persistent(ip, port)}
}

func deregister(svc string, ip string, port int) DeregisterInstance {
	return DeregisterInstance{Service: key(svc), IP: ip, Port: port, Cluster: "DEFAULT"}
}

// applyOK applies one batch and fails on any non-nil response.
func applyOK(t *testing.T, f *FSM, batch []*raft.Log) {
	t.Helper()
	for i, r := range f.ApplyBatch(batch) {
		if r != nil {
			t.Fatalf("log %d: response %v", batch[i].Index, r)
		}
	}
}

type state struct {
	Index, Term uint64
	Services    []*naming.Service
	Instances   map[naming.ServiceKey][]*naming.Instance
	Counts      [2]int
}

func dump(t *testing.T, s *persistence.Store) state {
	t.Helper()
	st := state{Instances: map[naming.ServiceKey][]*naming.Instance{}}
	st.Index, st.Term = s.Applied()
	err := s.View(func(tx *persistence.Tx) error {
		var err error
		if st.Services, err = tx.Services(""); err != nil {
			return err
		}
		if st.Counts[0], st.Counts[1], err = tx.Counts(); err != nil {
			return err
		}
		return tx.ForEachInstance(func(k naming.ServiceKey, in *naming.Instance) error {
			st.Instances[k] = append(st.Instances[k], in)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func instanceOf(t *testing.T, s *persistence.Store, svc naming.ServiceKey, ik string) *naming.Instance {
	t.Helper()
	var in *naming.Instance
	err := s.View(func(tx *persistence.Tx) error {
		var err error
		in, err = tx.Instance(svc, ik)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func serviceOf(t *testing.T, s *persistence.Store, k naming.ServiceKey) *naming.Service {
	t.Helper()
	var svc *naming.Service
	err := s.View(func(tx *persistence.Tx) error {
		var err error
		svc, err = tx.Service(k)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestApplyBatchIsOneTransaction(t *testing.T) {
	f := newFSM(t)
	batch := logs(t, 1, register("a", "10.0.0.1", 80), register("b", "10.0.0.2", 80))
	batch = append(batch, &raft.Log{Index: 3, Term: 2, Type: raft.LogConfiguration, Data: []byte("not a command")})
	batch = append(batch, cmdLog(t, 4, PutService{Service: *naming.NewService(key("c"), false), Mode: PutCreate}))
	batch[3].Term = 2

	before := f.Store().Stats().Commits
	resp := f.ApplyBatch(batch)
	if len(resp) != len(batch) {
		t.Fatalf("%d responses for %d logs", len(resp), len(batch))
	}
	for i, r := range resp {
		if r != nil {
			t.Errorf("response %d = %v", i, r)
		}
	}
	if n := f.Store().Stats().Commits - before; n != 1 {
		t.Errorf("batch took %d commits, want 1", n)
	}
	if idx, term := f.Store().Applied(); idx != 4 || term != 2 {
		t.Errorf("Applied = %d, %d; want 4, 2", idx, term)
	}
	st := dump(t, f.Store())
	if st.Counts != [2]int{3, 2} {
		t.Errorf("Counts = %v, want [3 2]", st.Counts)
	}
}

func TestNonCommandLogsOnlyAdvanceTheIndex(t *testing.T) {
	f := newFSM(t)
	for i, typ := range []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogBarrier} {
		l := &raft.Log{Index: uint64(i + 1), Term: 1, Type: typ, Data: []byte{0xde, 0xad}}
		if r := f.Apply(l); r != nil {
			t.Errorf("%v: response %v", typ, r)
		}
		if idx, _ := f.Store().Applied(); idx != l.Index {
			t.Errorf("%v: Applied = %d, want %d", typ, idx, l.Index)
		}
	}
	if st := dump(t, f.Store()); len(st.Services) != 0 {
		t.Errorf("state changed: %+v", st)
	}
}

func TestUnknownIgnorableCommandIsSkipped(t *testing.T) {
	f := newFSM(t)
	batch := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("\x81\x07anything at all")},
		cmdLog(t, 2, register("a", "10.0.0.1", 80)),
	}
	applyOK(t, f, batch)
	if idx, _ := f.Store().Applied(); idx != 2 {
		t.Errorf("Applied = %d, want 2", idx)
	}
}

// TestReplayAfterReopenIsSkipped restarts on the same file and replays logs the store
// already holds, as Raft does after a restart. Applying a replayed deregister at index 5
// after the register at index 6 would delete a live instance.
func TestReplayAfterReopenIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	store, err := persistence.Open(path, persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := New(store, nil)
	history := logs(t, 4, register("a", "10.0.0.1", 80), deregister("a", "10.0.0.1", 80), register("a", "10.0.0.1", 80))
	for _, l := range history {
		applyOK(t, f, []*raft.Log{l})
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = openStore(t, path)
	f = New(store, nil)
	if idx, _ := store.Applied(); idx != 6 {
		t.Fatalf("Applied after reopen = %d, want 6", idx)
	}
	before := store.Stats().Commits
	var notified int
	f.OnChange(func([]naming.ServiceKey, bool) { notified++ })
	for _, batch := range [][]*raft.Log{history[1:2], history, history[2:]} {
		resp := f.ApplyBatch(batch)
		if len(resp) != len(batch) {
			t.Fatalf("%d responses for %d logs", len(resp), len(batch))
		}
		for i, r := range resp {
			if r != nil {
				t.Errorf("replayed log %d: response %v", batch[i].Index, r)
			}
		}
	}
	if in := instanceOf(t, store, key("a"), "10.0.0.1#80#DEFAULT"); in == nil {
		t.Fatal("replayed deregister deleted the instance")
	}
	if n := store.Stats().Commits - before; n != 0 || notified != 0 {
		t.Errorf("replay made %d commits and %d notifications, want none", n, notified)
	}

	// A batch straddling the applied index applies only its new part.
	mixed := append(history[1:], cmdLog(t, 7, deregister("a", "10.0.0.1", 80)))
	applyOK(t, f, mixed)
	if in := instanceOf(t, store, key("a"), "10.0.0.1#80#DEFAULT"); in != nil {
		t.Error("the new deregister at 7 was not applied")
	}
	if idx, _ := store.Applied(); idx != 7 {
		t.Errorf("Applied = %d, want 7", idx)
	}
}

func TestBusinessRejectionDoesNotAbortBatch(t *testing.T) {
	f := newFSM(t)
	eph := naming.NewService(key("eph"), true)
	applyOK(t, f, logs(t, 1, PutService{Service: *eph, Mode: PutCreate}))

	batch := logs(t, 2,
		register("eph", "10.0.0.1", 80),                                            // persistent into ephemeral service
		register("ok", "10.0.0.2", 80),                                             // fine
		DeleteService{Service: key("none")},                                        // not found
		PutService{Service: *naming.NewService(key("ok"), false), Mode: PutCreate}, // exists now
		UpdateInstance{Service: key("ok"), IP: "10.0.0.9", Port: 8080, Cluster: "DEFAULT"},
		DeleteService{Service: key("ok")}, // not empty
		register("ok", "10.0.0.3", 80),    // fine
	)
	resp := f.ApplyBatch(batch)
	want := []any{
		naming.ErrEphemeralService(key("eph")),
		nil,
		naming.ErrServiceNotFound(key("none")),
		naming.ErrServiceExists(key("ok")),
		naming.BadRequest("instance not exist: 10.0.0.9:8080:unknown:DEFAULT_1.0_true_false_DEFAULT"),
		naming.ErrServiceNotEmpty(key("ok")),
		nil,
	}
	if !reflect.DeepEqual(resp, want) {
		t.Errorf("responses:\n got %v\nwant %v", resp, want)
	}
	if got := resp[0].(*naming.Error).Message; got != "errCode: 400, errMsg: Current service DEFAULT_GROUP@@eph is ephemeral service, can't register persistent instance. " {
		t.Errorf("ephemeral service text = %q", got)
	}
	st := dump(t, f.Store())
	if st.Index != 8 {
		t.Errorf("Applied = %d, want 8", st.Index)
	}
	if len(st.Instances[key("eph")]) != 0 || len(st.Instances[key("ok")]) != 2 {
		t.Errorf("instances = %v", st.Instances)
	}
	if svc := serviceOf(t, f.Store(), key("eph")); svc == nil || !svc.Ephemeral {
		t.Errorf("ephemeral service record = %+v", svc)
	}
}

func TestInstanceSemantics(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	ik := "10.0.0.1#80#DEFAULT"
	var idx uint64
	apply := func(c Command) any {
		idx++
		return f.Apply(cmdLog(t, idx, c))
	}

	// Register creates a persistent service record with Nacos' defaults.
	if r := apply(register("a", "10.0.0.1", 80)); r != nil {
		t.Fatal(r)
	}
	if svc := serviceOf(t, s, key("a")); !reflect.DeepEqual(svc, naming.NewService(key("a"), false)) {
		t.Errorf("created service = %+v", svc)
	}
	// A repeat register overwrites.
	again := register("a", "10.0.0.1", 80)
	again.Instance.Weight = 7
	again.Instance.Metadata = map[string]string{"v": "2"}
	if r := apply(again); r != nil {
		t.Fatal(r)
	}
	if in := instanceOf(t, s, key("a"), ik); in.Weight != 7 || in.Metadata["v"] != "2" {
		t.Errorf("after overwrite: %+v", in)
	}
	if st := dump(t, s); st.Counts != [2]int{1, 1} {
		t.Errorf("Counts = %v", st.Counts)
	}

	// A partial update changes only what it names.
	if r := apply(UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Enabled: boolp(false)}); r != nil {
		t.Fatal(r)
	}
	want := persistent("10.0.0.1", 80)
	want.Weight, want.Enabled, want.Metadata = 7, false, map[string]string{"v": "2"}
	if in := instanceOf(t, s, key("a"), ik); !reflect.DeepEqual(in, &want) {
		t.Errorf("after partial update: %+v, want %+v", in, want)
	}
	if r := apply(UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT",
		Weight: f64(0.5), Healthy: boolp(false), Metadata: map[string]string{"w": "1"}}); r != nil {
		t.Fatal(r)
	}
	want.Weight, want.Healthy, want.Metadata = 0.5, false, map[string]string{"w": "1"}
	if in := instanceOf(t, s, key("a"), ik); !reflect.DeepEqual(in, &want) {
		t.Errorf("after update: %+v, want %+v", in, want)
	}
	if r := apply(UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Metadata: map[string]string{}}); r != nil {
		t.Fatal(r)
	}
	if in := instanceOf(t, s, key("a"), ik); len(in.Metadata) != 0 {
		t.Errorf("empty metadata did not clear: %+v", in.Metadata)
	}

	// Update of a missing instance: a 400 in Nacos' words, or a register with Upsert.
	r := apply(UpdateInstance{Service: key("a"), IP: "10.0.0.2", Port: 81, Cluster: "DEFAULT", Weight: f64(2), Healthy: boolp(false)})
	if e, ok := r.(*naming.Error); !ok || e.Status != 400 || e.Message != "instance not exist: 10.0.0.2:81:unknown:DEFAULT_2.0_false_false_DEFAULT" {
		t.Errorf("update of missing instance = %#v", r)
	}
	up := persistent("10.0.0.2", 81)
	if r := apply(UpdateInstance{Service: key("b"), IP: "10.0.0.2", Port: 81, Cluster: "DEFAULT", Weight: f64(2), Upsert: &up}); r != nil {
		t.Fatal(r)
	}
	if in := instanceOf(t, s, key("b"), "10.0.0.2#81#DEFAULT"); !reflect.DeepEqual(in, &up) {
		t.Errorf("upserted = %+v, want %+v", in, up)
	}
	if serviceOf(t, s, key("b")) == nil {
		t.Error("upsert did not create the service")
	}

	// Deregister: absent is success, present is removed, the service record stays.
	if r := apply(deregister("a", "10.9.9.9", 1)); r != nil {
		t.Errorf("deregister of absent = %v", r)
	}
	if r := apply(deregister("nosuch", "10.9.9.9", 1)); r != nil {
		t.Errorf("deregister in absent service = %v", r)
	}
	if r := apply(deregister("a", "10.0.0.1", 80)); r != nil {
		t.Fatal(r)
	}
	if instanceOf(t, s, key("a"), ik) != nil || serviceOf(t, s, key("a")) == nil {
		t.Error("deregister did not remove just the instance")
	}
}

func TestServiceSemantics(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	var idx uint64
	apply := func(c Command) any {
		idx++
		return f.Apply(cmdLog(t, idx, c))
	}
	full := naming.Service{
		Key: key("s"), ProtectThreshold: 0.4, Metadata: map[string]string{"a": "1"},
		Selector: naming.Selector{Type: "none"},
		Clusters: map[string]*naming.Cluster{"DEFAULT": {Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "NONE"}, Metadata: map[string]string{}}},
	}
	steps := []struct {
		name string
		c    Command
		want any
	}{
		{"update missing", PutService{Service: full, Mode: PutUpdate}, naming.ErrServiceNotFound(key("s"))},
		{"delete missing", DeleteService{Service: key("s")}, naming.ErrServiceNotFound(key("s"))},
		{"create", PutService{Service: full, Mode: PutCreate}, nil},
		{"create again", PutService{Service: full, Mode: PutCreate}, naming.ErrServiceExists(key("s"))},
		{"update without clusters, trying to turn ephemeral", PutService{Service: naming.Service{
			Key: key("s"), Ephemeral: true, ProtectThreshold: 0.8, Selector: naming.Selector{Type: "label", Expression: "x"}}, Mode: PutUpdate}, nil},
		{"register", register("s", "10.0.0.1", 80), nil},
		{"delete not empty", DeleteService{Service: key("s")}, naming.ErrServiceNotEmpty(key("s"))},
		{"deregister", deregister("s", "10.0.0.1", 80), nil},
		{"upsert new", PutService{Service: *naming.NewService(key("t"), true), Mode: PutUpsert}, nil},
		{"delete", DeleteService{Service: key("s")}, nil},
	}
	for _, step := range steps {
		if got := apply(step.c); !reflect.DeepEqual(got, step.want) {
			t.Errorf("%s: response %v, want %v", step.name, got, step.want)
		}
		if step.name == "update without clusters, trying to turn ephemeral" {
			want := full
			want.ProtectThreshold, want.Metadata, want.Selector = 0.8, nil, naming.Selector{Type: "label", Expression: "x"}
			if got := serviceOf(t, s, key("s")); !reflect.DeepEqual(got, &want) {
				t.Errorf("after update: %+v, want %+v (Ephemeral and Clusters kept)", got, want)
			}
		}
	}
	if serviceOf(t, s, key("s")) != nil {
		t.Error("service s survived its delete")
	}
	if svc := serviceOf(t, s, key("t")); svc == nil || !svc.Ephemeral {
		t.Errorf("upserted service t = %+v", svc)
	}
}

func TestUpdateMetadataBatch(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	a := persistent("10.0.0.1", 80)
	a.Metadata = map[string]string{"keep": "1", "v": "old"}
	b := persistent("10.0.0.2", 80)
	c := persistent("10.0.0.1", 81)
	c.ClusterName = "blue"
	applyOK(t, f, logs(t, 1,
		RegisterInstance{Service: key("m"), Instance: b},
		RegisterInstance{Service: key("m"), Instance: a},
		RegisterInstance{Service: key("m"), Instance: c},
	))
	var idx uint64 = 3
	apply := func(cmd Command) any {
		idx++
		return f.Apply(cmdLog(t, idx, cmd))
	}

	got := apply(UpdateMetadataBatch{Service: key("m"), Metadata: map[string]string{"v": "new", "x": "y"}})
	want := []string{"10.0.0.1:80:unknown:DEFAULT:persistent", "10.0.0.1:81:unknown:blue:persistent", "10.0.0.2:80:unknown:DEFAULT:persistent"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge all = %#v, want %#v", got, want)
	}
	if in := instanceOf(t, s, key("m"), a.Key()); !reflect.DeepEqual(in.Metadata, map[string]string{"keep": "1", "v": "new", "x": "y"}) {
		t.Errorf("merged metadata = %v", in.Metadata)
	}
	if in := instanceOf(t, s, key("m"), b.Key()); !reflect.DeepEqual(in.Metadata, map[string]string{"v": "new", "x": "y"}) {
		t.Errorf("merged metadata of an instance without any = %v", in.Metadata)
	}

	got = apply(UpdateMetadataBatch{Service: key("m"), Remove: true, Metadata: map[string]string{"x": "", "absent": ""},
		Instances: []InstanceRef{{IP: "10.0.0.2", Port: 80, Cluster: "DEFAULT"}, {IP: "10.9.9.9", Port: 1, Cluster: "DEFAULT"}, {IP: "10.0.0.1", Port: 81, Cluster: "blue"}}})
	want = []string{"10.0.0.2:80:unknown:DEFAULT:persistent", "10.0.0.1:81:unknown:blue:persistent"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("remove listed = %#v, want %#v", got, want)
	}
	if in := instanceOf(t, s, key("m"), b.Key()); !reflect.DeepEqual(in.Metadata, map[string]string{"v": "new"}) {
		t.Errorf("after remove = %v", in.Metadata)
	}
	if in := instanceOf(t, s, key("m"), a.Key()); in.Metadata["x"] != "y" {
		t.Errorf("unlisted instance changed: %v", in.Metadata)
	}

	if got := apply(UpdateMetadataBatch{Service: key("none"), Metadata: map[string]string{"a": "b"}}); !reflect.DeepEqual(got, []string{}) {
		t.Errorf("batch on a missing service = %#v, want []string{}", got)
	}
}

func TestOnChange(t *testing.T) {
	f := newFSM(t)
	type call struct {
		changed []naming.ServiceKey
		all     bool
	}
	var calls []call
	f.OnChange(func(changed []naming.ServiceKey, all bool) { calls = append(calls, call{changed, all}) })

	applyOK(t, f, logs(t, 1, register("s", "10.0.0.1", 80), register("t", "10.0.0.1", 80), register("s", "10.0.0.2", 80)))
	f.ApplyBatch(logs(t, 4, DeleteService{Service: key("none")}, deregister("u", "10.0.0.1", 1)))
	want := []call{{[]naming.ServiceKey{key("s"), key("t")}, false}}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls = %+v, want %+v (nothing for a batch that changed nothing)", calls, want)
	}

	// Restore tells everyone everything may have changed.
	var buf bytes.Buffer
	persistTo(t, f, &bufferSink{Buffer: &buf})
	calls = nil
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if want := []call{{nil, true}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls after Restore = %+v, want %+v", calls, want)
	}
}

// bufferSink is a raft.SnapshotSink into memory.
type bufferSink struct {
	*bytes.Buffer
	closed, cancelled bool
	failAfter         int // fail writes once this many bytes are written; 0 = never
}

func (s *bufferSink) ID() string { return "buffer" }

func (s *bufferSink) Close() error {
	s.closed = true
	return nil
}

func (s *bufferSink) Cancel() error {
	s.cancelled = true
	return nil
}

func (s *bufferSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errors.New("no space left on device")
	}
	return s.Buffer.Write(p)
}

func persistTo(t *testing.T, f *FSM, sink raft.SnapshotSink) {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
}

// fill applies a mixed history and returns the next free index.
func fill(t *testing.T, f *FSM) uint64 {
	t.Helper()
	var cmds []Command
	for i := 0; i < 20; i++ {
		in := persistent(fmt.Sprintf("10.0.%d.%d", i/5, i), 8000+i)
		in.Metadata = map[string]string{"i": fmt.Sprint(i)}
		cmds = append(cmds, RegisterInstance{Service: key(fmt.Sprintf("svc-%d", i%4)), Instance: in})
	}
	cmds = append(cmds,
		PutService{Service: naming.Service{Key: key("meta-only"), ProtectThreshold: 0.5, Selector: naming.Selector{Type: "none"},
			Clusters: map[string]*naming.Cluster{"DEFAULT": {Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "TCP"}}}}, Mode: PutCreate},
		PutService{Service: *naming.NewService(naming.ServiceKey{Namespace: "dev", Group: "G", Name: "eph"}, true), Mode: PutCreate},
		deregister("svc-1", "10.0.0.1", 8001),
		UpdateMetadataBatch{Service: key("svc-2"), Metadata: map[string]string{"batch": "yes"}},
	)
	for i, r := range f.ApplyBatch(logs(t, 1, cmds...)) {
		if _, rejected := r.(*naming.Error); rejected {
			t.Fatalf("command %d rejected: %v", i, r)
		}
	}
	return uint64(len(cmds)) + 1
}

func TestSnapshotPersistRestore(t *testing.T) {
	src := newFSM(t)
	next := fill(t, src)
	want := dump(t, src.Store())

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply goes on while the snapshot is open; the snapshot keeps its view.
	applyOK(t, src, logs(t, next, register("later", "10.1.1.1", 1)))
	sink := &bufferSink{Buffer: &bytes.Buffer{}}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Errorf("sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}

	dst := newFSM(t)
	applyOK(t, dst, logs(t, 1, register("stale", "10.2.2.2", 2)))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.Store()); !reflect.DeepEqual(got, want) {
		t.Errorf("restored:\n got %+v\nwant %+v", got, want)
	}
	// The restored FSM applies what follows the snapshot, and skips what it covers.
	applyOK(t, dst, logs(t, next-1, register("covered", "10.3.3.3", 3), register("later", "10.1.1.1", 1)))
	if instanceOf(t, dst.Store(), key("covered"), "10.3.3.3#3#DEFAULT") != nil {
		t.Error("a log covered by the snapshot was applied")
	}
	if instanceOf(t, dst.Store(), key("later"), "10.1.1.1#1#DEFAULT") == nil {
		t.Error("the log after the snapshot was not applied")
	}
}

// TestSnapshotThroughFileSnapshotStore goes through Raft's own file snapshot store, as
// raftnode does.
func TestSnapshotThroughFileSnapshotStore(t *testing.T) {
	src := newFSM(t)
	fill(t, src)
	want := dump(t, src.Store())

	fss, err := raft.NewFileSnapshotStore(t.TempDir(), 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := fss.Create(raft.SnapshotVersionMax, want.Index, want.Term, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	persistTo(t, src, sink)
	_, rc, err := fss.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	dst := newFSM(t)
	if err := dst.Restore(rc); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.Store()); !reflect.DeepEqual(got, want) {
		t.Errorf("restored:\n got %+v\nwant %+v", got, want)
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := newFSM(t)
	fill(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufferSink{Buffer: &bytes.Buffer{}, failAfter: 100}
	if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Persist = %v, want the write error", err)
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink closed=%v cancelled=%v, want cancelled", sink.closed, sink.cancelled)
	}
}

func TestRestoreOfCorruptSnapshotChangesNothing(t *testing.T) {
	src := newFSM(t)
	fill(t, src)
	var buf bytes.Buffer
	persistTo(t, src, &bufferSink{Buffer: &buf})
	bad := buf.Bytes()[:buf.Len()-10]

	dst := newFSM(t)
	applyOK(t, dst, logs(t, 1, register("mine", "10.0.0.1", 1)))
	before := dump(t, dst.Store())
	notified := false
	dst.OnChange(func([]naming.ServiceKey, bool) { notified = true })
	err := dst.Restore(io.NopCloser(bytes.NewReader(bad)))
	if !errors.Is(err, persistence.ErrSnapshotTruncated) {
		t.Errorf("Restore = %v, want ErrSnapshotTruncated", err)
	}
	if after := dump(t, dst.Store()); !reflect.DeepEqual(after, before) || notified {
		t.Errorf("a failed restore changed state (%v) or notified (%v)", !reflect.DeepEqual(after, before), notified)
	}
}

// TestRestoreNeverHandsTheFSMAnOutOfRangeRecord: a snapshot whose records no write
// path takes (here a weight over 10000, written past the FSM straight into a store) is
// refused as corrupt before anything changes or anyone is told of a change.
func TestRestoreNeverHandsTheFSMAnOutOfRangeRecord(t *testing.T) {
	src := openStore(t, "")
	bad := naming.Instance{IP: "10.0.0.9", Port: 9, ClusterName: naming.DefaultCluster, Weight: 20000, Healthy: true, Enabled: true}
	if err := src.Update(5, 1, func(tx *persistence.Tx) error { return tx.PutInstance(key("poison"), &bad) }); err != nil {
		t.Fatal(err)
	}
	sn, err := src.OpenSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = sn.WriteTo(&buf)
	sn.Release()
	if err != nil {
		t.Fatal(err)
	}

	dst := newFSM(t)
	applyOK(t, dst, logs(t, 1, register("mine", "10.0.0.1", 1)))
	before := dump(t, dst.Store())
	notified := false
	dst.OnChange(func([]naming.ServiceKey, bool) { notified = true })
	err = dst.Restore(io.NopCloser(&buf))
	if !errors.Is(err, persistence.ErrSnapshotCorrupt) || !strings.Contains(err.Error(), "The weights range from 0.0 to 10000.0") {
		t.Errorf("Restore = %v, want ErrSnapshotCorrupt naming the weight", err)
	}
	if after := dump(t, dst.Store()); !reflect.DeepEqual(after, before) || notified {
		t.Errorf("a refused restore changed state (%v) or notified (%v)", !reflect.DeepEqual(after, before), notified)
	}
}

// TestDeterministic applies the same log one entry at a time and all at once: state
// and responses must not depend on how Raft batches.
func TestDeterministic(t *testing.T) {
	history := func(t *testing.T) []*raft.Log {
		var cmds []Command
		for i := 0; i < 30; i++ {
			svc := fmt.Sprintf("s%d", i%3)
			switch i % 5 {
			case 0, 1:
				in := persistent("10.0.0.1", 9000+i%7)
				in.Metadata = map[string]string{"i": fmt.Sprint(i), "z": "1", "a": "2"}
				cmds = append(cmds, RegisterInstance{Service: key(svc), Instance: in})
			case 2:
				cmds = append(cmds, deregister(svc, "10.0.0.1", 9000+i%7))
			case 3:
				cmds = append(cmds, UpdateMetadataBatch{Service: key(svc), Metadata: map[string]string{"m": fmt.Sprint(i)}})
			case 4:
				cmds = append(cmds, DeleteService{Service: key(svc)})
			}
		}
		return logs(t, 1, cmds...)
	}
	one, all := newFSM(t), newFSM(t)
	var r1 []any
	for _, l := range history(t) {
		r1 = append(r1, one.Apply(l))
	}
	r2 := all.ApplyBatch(history(t))
	if !reflect.DeepEqual(r1, r2) {
		t.Errorf("responses differ:\n one by one %v\n   batched %v", r1, r2)
	}
	if a, b := dump(t, one.Store()), dump(t, all.Store()); !reflect.DeepEqual(a, b) {
		t.Errorf("state differs:\n one by one %+v\n   batched %+v", a, b)
	}
}

func TestApplyPanicsOnGarbage(t *testing.T) {
	good, err := Encode(register("a", "10.0.0.1", 80))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("garbage!")},
		{"unknown mandatory type", []byte("\x7f\x01{}")},
		{"unknown version", append([]byte{good[0], 9}, good[2:]...)},
		{"truncated body", good[:len(good)-3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFSM(t)
			applyOK(t, f, logs(t, 1, register("a", "10.0.0.9", 1)))
			before := dump(t, f.Store())
			panicked := func() (p any) {
				defer func() { p = recover() }()
				f.ApplyBatch([]*raft.Log{
					cmdLog(t, 2, register("b", "10.0.0.1", 80)),
					{Index: 3, Term: 1, Type: raft.LogCommand, Data: tt.data},
				})
				return nil
			}()
			if panicked == nil {
				t.Fatal("ApplyBatch did not panic")
			}
			if msg := fmt.Sprint(panicked); !strings.Contains(msg, "fsm: log 3") {
				t.Errorf("panic %q does not name the log", msg)
			}
			// Nothing of the batch was written, not even the good entry before it.
			if after := dump(t, f.Store()); !reflect.DeepEqual(after, before) {
				t.Errorf("state changed: %+v", after)
			}
		})
	}
}

func TestAuthChange(t *testing.T) {
	f := newFSM(t)
	var docs [][]byte
	f.OnAuthChange(func(doc []byte) { docs = append(docs, doc) })
	hash, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.NewKey(time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	resp := f.ApplyBatch(logs(t, 1,
		AuthChange{Change: auth.Change{Op: auth.OpBootstrap, User: "root", PasswordHash: hash}},
		AuthChange{Change: auth.Change{Op: auth.OpBootstrap, User: "again", PasswordHash: hash}},
		AuthChange{Change: auth.Change{Op: auth.OpInitKey, Key: key}},
	))
	if resp[0] != nil || resp[2] != nil {
		t.Fatalf("responses = %v", resp)
	}
	if ne, ok := resp[1].(*naming.Error); !ok || ne.Status != 409 {
		t.Fatalf("second bootstrap answered %v, want a 409 *naming.Error", resp[1])
	}
	if len(docs) != 1 {
		t.Fatalf("OnAuthChange ran %d times for one batch", len(docs))
	}
	st, err := auth.Decode(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Users["root"]; !ok || len(st.Users) != 1 || st.CurrentKey() == nil || st.CurrentKey().ID != key.ID {
		t.Fatalf("state after the batch: %+v", st)
	}
	if _, err := Encode(AuthChange{Change: auth.Change{Op: auth.OpCreateUser, User: "x", PasswordHash: "plain"}}); err == nil {
		t.Error("Encode accepted a change without a bcrypt hash")
	}

	// The document travels through a snapshot into another FSM.
	sink := &bufferSink{Buffer: &bytes.Buffer{}}
	persistTo(t, f, sink)
	g := newFSM(t)
	var restored []byte
	g.OnAuthChange(func(doc []byte) { restored = doc })
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(restored, docs[0]) {
		t.Fatalf("auth state after restore = %s, want %s", restored, docs[0])
	}
}
