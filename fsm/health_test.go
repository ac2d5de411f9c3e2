package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

var view = ProbeView{Prober: "n2", Members: []string{"n1", "n2", "n3"}, Epoch: 5}

func flip(svc string, ip string, port int, healthy bool, seen uint64, v ProbeView) FlipHealth {
	return FlipHealth{Service: key(svc), Instance: InstanceRef{IP: ip, Port: port, Cluster: "DEFAULT"}, Healthy: healthy, SeenRevision: seen, View: v}
}

func stampOf(t *testing.T, s *persistence.Store, svc naming.ServiceKey, ik string) persistence.Stamp {
	t.Helper()
	var st persistence.Stamp
	err := s.View(func(tx *persistence.Tx) error {
		in, stamp, err := tx.InstanceStamped(svc, ik)
		if err == nil && in == nil {
			err = fmt.Errorf("no instance %s", ik)
		}
		st = stamp
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEveryWriteStampsTheRevision: each command that writes an instance records its own
// Raft index as the instance's revision; a command that does not write it leaves it.
func TestEveryWriteStampsTheRevision(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	ik := "10.0.0.1#80#DEFAULT"
	steps := []struct {
		name  string
		c     Command
		wrote bool
	}{
		{"register", register("a", "10.0.0.1", 80), true},
		{"update", UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Weight: f64(2)}, true},
		{"register of another instance", register("a", "10.0.0.2", 80), false},
		{"metadata batch", UpdateMetadataBatch{Service: key("a"), Metadata: map[string]string{"k": "v"}}, true},
		{"manual health", UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Healthy: boolp(false)}, true},
		{"service update", PutService{Service: *naming.NewService(key("a"), false), Mode: PutUpdate}, false},
		{"re-register", register("a", "10.0.0.1", 80), true},
	}
	want := uint64(0)
	for i, step := range steps {
		index := uint64(i + 1)
		if r, rejected := f.Apply(cmdLog(t, index, step.c)).(*naming.Error); rejected {
			t.Fatalf("%s: %v", step.name, r)
		}
		if step.wrote {
			want = index
		}
		if got := stampOf(t, s, key("a"), ik).Revision; got != want {
			t.Errorf("after %s (index %d): revision %d, want %d", step.name, index, got, want)
		}
	}
}

// TestFlipHealth walks a flip's outcomes: applied, unchanged, refused for a stale
// revision (after another flip and after a user's write), for a stale view, for a gone
// instance and for a cluster checked by hand. A refusal changes nothing and notifies
// nothing.
func TestFlipHealth(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	var changes [][]naming.ServiceKey
	f.OnChange(func(c []naming.ServiceKey, _ bool) { changes = append(changes, c) })
	ik := "10.0.0.1#80#DEFAULT"
	var idx uint64
	apply := func(c Command) any {
		idx++
		return f.Apply(cmdLog(t, idx, c))
	}
	if r := apply(register("a", "10.0.0.1", 80)); r != nil { // index 1
		t.Fatal(r)
	}
	newer := ProbeView{Prober: "n1", Members: []string{"n1", "n3"}, Epoch: 6}
	steps := []struct {
		name    string
		c       FlipHealth
		want    FlipResult
		healthy bool // the instance's health after the step
	}{
		{"flip to unhealthy", flip("a", "10.0.0.1", 80, false, 1, view), FlipResult{FlipApplied, 2}, false},
		{"same result again, current revision", flip("a", "10.0.0.1", 80, false, 2, view), FlipResult{FlipUnchanged, 2}, false},
		{"a stale prober undoing it", flip("a", "10.0.0.1", 80, true, 1, view), FlipResult{FlipStaleRevision, 2}, false},
		{"a newer view flips back", flip("a", "10.0.0.1", 80, true, 2, newer), FlipResult{FlipApplied, 5}, true},
		{"the older view, though at the current revision", flip("a", "10.0.0.1", 80, false, 5, view), FlipResult{FlipStaleView, 5}, true},
		{"an instance that is not there", flip("a", "10.0.0.9", 80, false, 0, view), FlipResult{Outcome: FlipGone}, true},
		{"a service that is not there", flip("nosuch", "10.0.0.1", 80, false, 0, view), FlipResult{Outcome: FlipGone}, true},
	}
	for _, step := range steps {
		before := dump(t, s)
		nChanges := len(changes)
		got := apply(step.c)
		if !reflect.DeepEqual(got, step.want) {
			t.Fatalf("%s: answered %#v, want %#v", step.name, got, step.want)
		}
		in := instanceOf(t, s, key("a"), ik)
		if in.Healthy != step.healthy {
			t.Errorf("%s: healthy = %v, want %v", step.name, in.Healthy, step.healthy)
		}
		if step.want.Outcome != FlipApplied {
			if after := dump(t, s); !reflect.DeepEqual(after.Services, before.Services) || !reflect.DeepEqual(after.Instances, before.Instances) {
				t.Errorf("%s: a refused flip changed the state", step.name)
			}
			if len(changes) != nChanges {
				t.Errorf("%s: a refused flip notified %v", step.name, changes[nChanges:])
			}
		} else if len(changes) != nChanges+1 || !reflect.DeepEqual(changes[nChanges], []naming.ServiceKey{key("a")}) {
			t.Errorf("%s: notified %v, want the service once", step.name, changes[nChanges:])
		}
		if step.name == "a newer view flips back" {
			// Entries 3 (unchanged) and 4 (refused) wrote nothing; this one, entry 5, did.
			if st := stampOf(t, s, key("a"), ik); st != (persistence.Stamp{Revision: 5, FlipEpoch: 6}) {
				t.Errorf("stamp after the newer flip = %+v", st)
			}
		}
	}

	// A user's write after the prober looked: its flip is stale, however right it was.
	if r := apply(UpdateInstance{Service: key("a"), IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Weight: f64(3)}); r != nil {
		t.Fatal(r)
	}
	written := idx
	if got := apply(flip("a", "10.0.0.1", 80, false, 5, newer)); !reflect.DeepEqual(got, FlipResult{FlipStaleRevision, written}) {
		t.Errorf("flip after a newer write = %#v", got)
	}

	// Checker NONE: health is set by hand and no flip lands, even at the current revision.
	manual := naming.Cluster{Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: naming.CheckerNone}, Metadata: map[string]string{}}
	if r := apply(PutCluster{Service: key("a"), Cluster: manual}); r != nil {
		t.Fatal(r)
	}
	rev := stampOf(t, s, key("a"), ik).Revision
	if got := apply(flip("a", "10.0.0.1", 80, false, rev, newer)); !reflect.DeepEqual(got, FlipResult{FlipNotProbed, rev}) {
		t.Errorf("flip in a NONE cluster = %#v", got)
	}
	if !instanceOf(t, s, key("a"), ik).Healthy {
		t.Error("a flip changed the health of a NONE cluster's instance")
	}
}

func TestFlipResultErr(t *testing.T) {
	for _, ok := range []FlipOutcome{FlipApplied, FlipUnchanged} {
		if err := (FlipResult{Outcome: ok}).Err(); err != nil {
			t.Errorf("%s: Err = %v", ok, err)
		}
	}
	err := FlipResult{Outcome: FlipStaleRevision, Revision: 9}.Err()
	var rej *FlipRejection
	if !errors.As(err, &rej) || rej.Outcome != FlipStaleRevision || rej.Revision != 9 {
		t.Fatalf("Err = %#v", err)
	}
	if err.Error() != "fsm: health flip refused (stale-revision, revision 9)" {
		t.Errorf("text = %q", err)
	}
}

// TestStaleProberAfterFailover plays the case the revision exists for: member n2 probes
// an instance, decides it is down, and stalls before its flip is committed; n3 takes
// over its share, sees the instance come back and flips it healthy. n2's flip, arriving
// last, is refused: the newer result stands.
func TestStaleProberAfterFailover(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	applyOK(t, f, logs(t, 1, register("a", "10.0.0.1", 80)))
	ik := "10.0.0.1#80#DEFAULT"
	// Both saw revision 1 (healthy). n3 first flips it down, then, one probe round later
	// at the revision its own flip made, up again.
	n2 := ProbeView{Prober: "n2", Members: []string{"n1", "n2", "n3"}, Epoch: 7}
	n3 := ProbeView{Prober: "n3", Members: []string{"n1", "n3"}, Epoch: 7}
	res := f.ApplyBatch(logs(t, 2,
		flip("a", "10.0.0.1", 80, false, 1, n3), // index 2: applied
		flip("a", "10.0.0.1", 80, true, 2, n3),  // index 3: applied
		flip("a", "10.0.0.1", 80, false, 1, n2), // index 4: n2, late, from its old observation
	))
	want := []any{FlipResult{FlipApplied, 2}, FlipResult{FlipApplied, 3}, FlipResult{FlipStaleRevision, 3}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("answers %#v, want %#v", res, want)
	}
	if !instanceOf(t, s, key("a"), ik).Healthy {
		t.Error("the stale prober undid the newer result")
	}
}

// TestFlipDeterministic applies a history with flips, refused and applied, one entry at
// a time and batched, on two FSMs: answers, state and stamps must agree.
func TestFlipDeterministic(t *testing.T) {
	history := func(t *testing.T) []*raft.Log {
		// The generator keeps the revision each write makes, so that some flips carry
		// the current one and others a stale one.
		rev := map[string]uint64{}
		var cmds []Command
		for i := 0; i < 40; i++ {
			index := uint64(i + 1)
			svc := fmt.Sprintf("s%d", (i/4)%2)
			port := 9000 + (i/8)%3
			id := fmt.Sprint(svc, port)
			v := ProbeView{Prober: "n1", Members: []string{"n1"}, Epoch: uint64(i / 10)}
			switch i % 4 {
			case 0:
				cmds = append(cmds, register(svc, "10.0.0.1", port))
				rev[id] = index
			case 1:
				cmds = append(cmds, flip(svc, "10.0.0.1", port, false, rev[id], v))
				rev[id] = index
			case 2:
				cmds = append(cmds, flip(svc, "10.0.0.1", port, true, rev[id]-1, v))
			case 3:
				cmds = append(cmds, UpdateInstance{Service: key(svc), IP: "10.0.0.1", Port: port, Cluster: "DEFAULT", Weight: f64(float64(i))})
				rev[id] = index
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
		t.Errorf("answers differ:\n one by one %v\n   batched %v", r1, r2)
	}
	outcomes := map[FlipOutcome]int{}
	for _, r := range r1 {
		if fr, ok := r.(FlipResult); ok {
			outcomes[fr.Outcome]++
		}
	}
	if outcomes[FlipApplied] != 10 || outcomes[FlipStaleRevision] != 10 {
		t.Errorf("outcomes %v, want 10 applied and 10 stale", outcomes)
	}
	if a, b := dump(t, one.Store()), dump(t, all.Store()); !reflect.DeepEqual(a, b) {
		t.Errorf("state differs:\n one by one %+v\n   batched %+v", a, b)
	}
	if a, b := stamps(t, one.Store()), stamps(t, all.Store()); !reflect.DeepEqual(a, b) {
		t.Errorf("stamps differ:\n one by one %v\n   batched %v", a, b)
	}
}

func stamps(t *testing.T, s *persistence.Store) map[string]persistence.Stamp {
	t.Helper()
	out := map[string]persistence.Stamp{}
	err := s.View(func(tx *persistence.Tx) error {
		list, err := tx.Services("")
		if err != nil {
			return err
		}
		for _, svc := range list {
			ins, err := tx.InstancesStamped(svc.Key)
			if err != nil {
				return err
			}
			for _, si := range ins {
				out[svc.Key.String()+"/"+si.Instance.Key()] = si.Stamp
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSnapshotCarriesRevisions: a member restored from a snapshot refuses the same stale
// flips the source refuses.
func TestSnapshotCarriesRevisions(t *testing.T) {
	src := newFSM(t)
	applyOK(t, src, logs(t, 1, register("a", "10.0.0.1", 80)))
	if r := src.Apply(cmdLog(t, 2, flip("a", "10.0.0.1", 80, false, 1, view))); !reflect.DeepEqual(r, FlipResult{FlipApplied, 2}) {
		t.Fatal(r)
	}
	var buf bytes.Buffer
	persistTo(t, src, &bufferSink{Buffer: &buf})
	dst := newFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if r := dst.Apply(cmdLog(t, 3, flip("a", "10.0.0.1", 80, true, 1, view))); !reflect.DeepEqual(r, FlipResult{FlipStaleRevision, 2}) {
		t.Errorf("stale flip after restore = %#v", r)
	}
	if st := stampOf(t, dst.Store(), key("a"), "10.0.0.1#80#DEFAULT"); st != (persistence.Stamp{Revision: 2, FlipEpoch: 5}) {
		t.Errorf("restored stamp = %+v", st)
	}
}

func TestPutCluster(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	var idx uint64
	apply := func(c Command) any {
		idx++
		return f.Apply(cmdLog(t, idx, c))
	}
	httpCheck := naming.Cluster{Name: "blue", HealthChecker: naming.HealthChecker{Type: naming.CheckerHTTP, Path: "/health", ExpectedResponseCode: 204},
		Metadata: map[string]string{"k": "v"}, CheckPort: 8081}
	if got := apply(PutCluster{Service: key("a"), Cluster: httpCheck}); !reflect.DeepEqual(got, ErrServiceNotFoundForCluster(key("a"))) {
		t.Fatalf("cluster of a missing service = %#v", got)
	}
	if serviceOf(t, s, key("a")) != nil {
		t.Fatal("a refused PutCluster created the service")
	}
	full := naming.Service{Key: key("a"), ProtectThreshold: 0.5, Metadata: map[string]string{"o": "1"}, Selector: naming.Selector{Type: "none"},
		Clusters: map[string]*naming.Cluster{"DEFAULT": naming.NewCluster("DEFAULT")}}
	if r := apply(PutService{Service: full, Mode: PutCreate}); r != nil {
		t.Fatal(r)
	}
	if r := apply(PutCluster{Service: key("a"), Cluster: httpCheck}); r != nil {
		t.Fatal(r)
	}
	want := full
	want.Clusters = map[string]*naming.Cluster{"DEFAULT": naming.NewCluster("DEFAULT"), "blue": &httpCheck}
	if got := serviceOf(t, s, key("a")); !reflect.DeepEqual(got, &want) {
		t.Errorf("after PutCluster:\n got %+v\nwant %+v", got, &want)
	}
	// A service the registry found only in the ephemeral store gets an ephemeral record.
	if r := apply(PutCluster{Service: key("e"), Cluster: *naming.NewCluster("DEFAULT"), Ephemeral: true}); r != nil {
		t.Fatal(r)
	}
	if got := serviceOf(t, s, key("e")); got == nil || !got.Ephemeral || got.Clusters["DEFAULT"] == nil {
		t.Errorf("ephemeral record = %+v", got)
	}
}

func TestValidateHealthCommands(t *testing.T) {
	good := flip("a", "10.0.0.1", 80, false, 1, view)
	tests := []struct {
		name string
		c    Command
		text string
	}{
		{"flip without a prober", func() Command { c := good; c.View.Prober = ""; return c }(), "without a prober"},
		{"flip with unsorted members", func() Command { c := good; c.View.Members = []string{"n2", "n1"}; return c }(), "sorted and distinct"},
		{"flip with duplicate members", func() Command { c := good; c.View.Members = []string{"n1", "n2", "n2"}; return c }(), "sorted and distinct"},
		{"flip by a prober outside its view", func() Command { c := good; c.View.Members = []string{"n1", "n3"}; return c }(), "not in its own view"},
		{"flip without ip", func() Command { c := good; c.Instance.IP = ""; return c }(), "Param 'ip' is required."},
		{"flip without cluster", func() Command { c := good; c.Instance.Cluster = ""; return c }(), "clusterName"},
		{"cluster with an unknown checker", PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "c", HealthChecker: naming.HealthChecker{Type: "MYSQL"}}}, "type \"MYSQL\" is not supported"},
		{"cluster with a bad code", PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "c", HealthChecker: naming.HealthChecker{Type: "HTTP", ExpectedResponseCode: 999}}}, "between 100 and 599"},
		{"cluster with a bad check port", PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "c", HealthChecker: naming.HealthChecker{Type: "TCP"}, CheckPort: 70000}}, "between 0 and 65535"},
		{"cluster without a name", PutCluster{Service: svcKey, Cluster: naming.Cluster{HealthChecker: naming.HealthChecker{Type: "TCP"}}}, "clusterName"},
		{"service with a bad checker", PutService{Service: naming.Service{Key: svcKey, Clusters: map[string]*naming.Cluster{"c": {Name: "c", HealthChecker: naming.HealthChecker{Type: "tcp"}}}}, Mode: PutUpsert}, "is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.c)
			var ne *naming.Error
			if !errors.As(err, &ne) || ne.Status != 400 || !bytes.Contains([]byte(ne.Message), []byte(tt.text)) {
				t.Fatalf("Encode = %v, want a 400 containing %q", err, tt.text)
			}
		})
	}
	if _, err := Encode(good); err != nil {
		t.Errorf("a good flip: %v", err)
	}
}

// TestProbeTargetsOf: persistent instances of probed clusters, with the effective checker
// and the port to dial; nothing of NONE clusters or ephemeral services.
func TestProbeTargetsOf(t *testing.T) {
	f := newFSM(t)
	s := f.Store()
	svc := naming.Service{Key: key("a"), Selector: naming.Selector{Type: "none"}, Clusters: map[string]*naming.Cluster{
		"http":   {Name: "http", HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/h"}, Metadata: map[string]string{}, CheckPort: 8081},
		"manual": {Name: "manual", HealthChecker: naming.HealthChecker{Type: "NONE"}, Metadata: map[string]string{}},
		"legacy": {Name: "legacy", HealthChecker: naming.HealthChecker{}, Metadata: map[string]string{}},
	}}
	in := func(ip, cluster string) Command {
		i := persistent(ip, 80)
		i.ClusterName = cluster
		return RegisterInstance{Service: key("a"), Instance: i}
	}
	applyOK(t, f, logs(t, 1, PutService{Service: svc, Mode: PutCreate}, in("10.0.0.1", "http"), in("10.0.0.2", "manual"),
		in("10.0.0.3", "legacy"), in("10.0.0.4", "DEFAULT")))
	var got []ProbeTarget
	err := s.View(func(tx *persistence.Tx) error {
		stored, err := tx.Service(key("a"))
		if err != nil {
			return err
		}
		got, err = ProbeTargetsOf(tx, stored)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	k := key("a")
	want := []ProbeTarget{
		{Service: k, IP: "10.0.0.1", Port: 80, Cluster: "http", Checker: naming.HealthChecker{Type: "HTTP", Path: "/h", ExpectedResponseCode: 200}, CheckPort: 8081, Healthy: true, Revision: 2},
		{Service: k, IP: "10.0.0.3", Port: 80, Cluster: "legacy", Checker: naming.HealthChecker{Type: "TCP"}, CheckPort: 80, Healthy: true, Revision: 4},
		{Service: k, IP: "10.0.0.4", Port: 80, Cluster: "DEFAULT", Checker: naming.HealthChecker{Type: "TCP"}, CheckPort: 80, Healthy: true, Revision: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets:\n got %+v\nwant %+v", got, want)
	}
	if got[0].Ref() != (InstanceRef{IP: "10.0.0.1", Port: 80, Cluster: "http"}) {
		t.Errorf("Ref = %+v", got[0].Ref())
	}
	if err := s.View(func(tx *persistence.Tx) error {
		eph, err := ProbeTargetsOf(tx, naming.NewService(key("a"), true))
		if err == nil && eph != nil {
			err = fmt.Errorf("ephemeral service has targets %v", eph)
		}
		return err
	}); err != nil {
		t.Error(err)
	}
}

// TestHealthEncodingIsStable pins the bytes of the health commands, as
// TestEncodingIsStable does for the others.
func TestHealthEncodingIsStable(t *testing.T) {
	b, err := Encode(FlipHealth{Service: svcKey, Instance: InstanceRef{IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT"}, Healthy: true, SeenRevision: 41,
		View: ProbeView{Prober: "n2", Members: []string{"n1", "n2"}, Epoch: 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := "\x08\x01" + `{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"orders"},` +
		`"instance":{"ip":"10.0.0.5","port":8080,"cluster":"DEFAULT"},"healthy":true,"seenRevision":41,` +
		`"view":{"prober":"n2","members":["n1","n2"],"epoch":3}}`
	if string(b) != want {
		t.Errorf("Encode =\n %q\nwant\n %q", b, want)
	}
	b, err = Encode(PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "blue", Metadata: map[string]string{}, CheckPort: 8081,
		HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/health", ExpectedResponseCode: 204}}})
	if err != nil {
		t.Fatal(err)
	}
	want = "\x09\x01" + `{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"orders"},` +
		`"cluster":{"name":"blue","healthChecker":{"type":"HTTP","path":"/health","headers":"","expectedResponseCode":204},"metadata":{},` +
		`"checkPort":8081,"useInstancePort4Check":false},"ephemeral":false}`
	if string(b) != want {
		t.Errorf("Encode =\n %q\nwant\n %q", b, want)
	}
}
