package fsm

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

func namespaces(t *testing.T, f *FSM) []*naming.Namespace {
	t.Helper()
	var out []*naming.Namespace
	if err := f.Store().View(func(tx *persistence.Tx) error {
		var err error
		out, err = tx.NamespaceRecords()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func refusal(t *testing.T, r any) *naming.Error {
	t.Helper()
	ne, ok := r.(*naming.Error)
	if !ok {
		t.Fatalf("response %v (%T), want a refusal", r, r)
	}
	return ne
}

func TestNamespaceCommands(t *testing.T) {
	f := newFSM(t)
	gen := f.NamespaceGeneration()
	five := 5
	dev := naming.Namespace{ID: "dev", Name: "Dev", Desc: "d", MaxServices: &five}
	applyOK(t, f, logs(t, 1,
		PutNamespace{Namespace: dev, Mode: PutCreate},
		PutNamespace{Namespace: naming.Namespace{ID: "alpha", Name: "A"}, Mode: PutUpsert},
	))
	if got := namespaces(t, f); len(got) != 2 || got[0].ID != "alpha" || !reflect.DeepEqual(got[1], &dev) {
		t.Fatalf("records %+v", got)
	}
	// Readers cache the records by generation: it moves with a namespace change only.
	if f.NamespaceGeneration() == gen {
		t.Error("generation did not move with a namespace change")
	}
	gen = f.NamespaceGeneration()
	applyOK(t, f, logs(t, 3, register("other", "10.9.9.9", 9)))
	if f.NamespaceGeneration() != gen {
		t.Error("generation moved without a namespace change")
	}
	applyOK(t, f, logs(t, 4, deregister("other", "10.9.9.9", 9), DeleteService{Service: key("other")}))
	res := f.ApplyBatch(logs(t, 6,
		PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "again"}, Mode: PutCreate},
		PutNamespace{Namespace: naming.Namespace{ID: "ghost", Name: "g"}, Mode: PutUpdate},
		PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "Development"}, Mode: PutUpdate},
	))
	if ne := refusal(t, res[0]); ne.Message != "the namespaceId is existed, namespaceId: dev" {
		t.Errorf("duplicate create: %v", ne)
	}
	if ne := refusal(t, res[1]); ne.Code != naming.CodeNamespaceNotExist {
		t.Errorf("update of a missing namespace: %v", ne)
	}
	if res[2] != nil {
		t.Fatalf("update: %v", res[2])
	}
	if got := namespaces(t, f); got[1].Name != "Development" || got[1].MaxServices != nil {
		t.Errorf("after update %+v", got[1])
	}

	// A persistent service in dev keeps it; gone, dev can be deleted; deleting what is
	// not there succeeds.
	svc := naming.ServiceKey{Namespace: "dev", Group: "G", Name: "db"}
	applyOK(t, f, logs(t, 9, RegisterInstance{Service: svc, Instance: persistent("10.0.0.1", 1)}))
	res = f.ApplyBatch(logs(t, 10, DeleteNamespace{ID: "dev"}))
	if ne := refusal(t, res[0]); ne.Message != "namespace dev still has 1 service(s); delete them before the namespace" {
		t.Errorf("delete with a service: %v", ne)
	}
	applyOK(t, f, logs(t, 11,
		DeregisterInstance{Service: svc, IP: "10.0.0.1", Port: 1, Cluster: "DEFAULT"},
		DeleteService{Service: svc},
		DeleteNamespace{ID: "dev"},
		DeleteNamespace{ID: "never"},
	))
	if got := namespaces(t, f); len(got) != 1 || got[0].ID != "alpha" {
		t.Errorf("after delete %+v", got)
	}
}

func TestNamespaceCommandsValidate(t *testing.T) {
	neg := -1
	for name, c := range map[string]Command{
		"blank id":       PutNamespace{Namespace: naming.Namespace{Name: "x"}, Mode: PutCreate},
		"public":         PutNamespace{Namespace: naming.Namespace{ID: "public", Name: "x"}, Mode: PutUpsert},
		"bad id":         PutNamespace{Namespace: naming.Namespace{ID: "a/b", Name: "x"}, Mode: PutCreate},
		"bad name":       PutNamespace{Namespace: naming.Namespace{ID: "a", Name: "a@b"}, Mode: PutCreate},
		"blank name":     PutNamespace{Namespace: naming.Namespace{ID: "a"}, Mode: PutCreate},
		"control":        PutNamespace{Namespace: naming.Namespace{ID: "a", Name: "a", Desc: "x\x00"}, Mode: PutCreate},
		"negative quota": PutNamespace{Namespace: naming.Namespace{ID: "a", Name: "a", MaxInstances: &neg}, Mode: PutCreate},
		"no mode":        PutNamespace{Namespace: naming.Namespace{ID: "a", Name: "a"}},
		"delete public":  DeleteNamespace{ID: "public"},
		"delete blank":   DeleteNamespace{},
	} {
		_, err := Encode(c)
		var ne *naming.Error
		if !errors.As(err, &ne) || ne.Status != 400 {
			t.Errorf("%s: Encode = %v, want a 400 refusal", name, err)
		}
	}
}

func TestNamespacesInSnapshot(t *testing.T) {
	src := newFSM(t)
	next := fill(t, src)
	one := 1
	applyOK(t, src, logs(t, next,
		PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "Dev", MaxInstances: &one}, Mode: PutCreate},
		PutNamespace{Namespace: naming.Namespace{ID: "qa", Name: "QA"}, Mode: PutCreate},
	))
	sink := &bufferSink{Buffer: &bytes.Buffer{}}
	persistTo(t, src, sink)
	dst := newFSM(t)
	applyOK(t, dst, logs(t, 1, PutNamespace{Namespace: naming.Namespace{ID: "stale", Name: "S"}, Mode: PutCreate}))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g, w := namespaces(t, dst), namespaces(t, src); !reflect.DeepEqual(g, w) {
		t.Errorf("restored %+v, want %+v", g, w)
	}
}

// TestQuotaHoldsInTheFSM: commands carrying the proposer's default quotas are refused
// past them in log order, with the registry's error; a namespace record's own quota
// overrides the defaults; a replacement adds nothing; an entry without a quota (written
// before quotas were carried) is not checked.
func TestQuotaHoldsInTheFSM(t *testing.T) {
	f := newFSM(t)
	q := &Quota{Services: 2, Instances: 3}
	withQuota := func(svc, ip string) RegisterInstance {
		c := register(svc, ip, 80)
		c.Quota = q
		return c
	}
	res := f.ApplyBatch(logs(t, 1,
		withQuota("a", "10.0.0.1"),
		withQuota("a", "10.0.0.2"),
		withQuota("b", "10.0.0.3"),
		withQuota("c", "10.0.0.4"), // a third service
		withQuota("a", "10.0.0.4"), // a fourth instance
		withQuota("a", "10.0.0.1"), // a replacement
		PutService{Service: *naming.NewService(key("c"), false), Mode: PutCreate, Quota: q},
		UpdateInstance{Service: key("b"), IP: "10.0.0.5", Port: 80, Cluster: "DEFAULT", Upsert: ptr(persistent("10.0.0.5", 80)), Quota: q},
	))
	want := []*naming.Error{nil, nil, nil,
		naming.ErrQuota("public", "services", 2), naming.ErrQuota("public", "instances", 3), nil,
		naming.ErrQuota("public", "services", 2), naming.ErrQuota("public", "instances", 3)}
	for i, r := range res {
		if want[i] == nil {
			if r != nil {
				t.Errorf("command %d: %v, want success", i, r)
			}
			continue
		}
		if got := refusal(t, r); *got != *want[i] {
			t.Errorf("command %d: %+v, want %+v", i, got, want[i])
		}
	}
	if st := dump(t, f.Store()); st.Counts != [2]int{2, 3} {
		t.Fatalf("counts %v, want 2 services and 3 instances", st.Counts)
	}
	// Without a carried quota nothing is checked.
	applyOK(t, f, logs(t, 9, register("a", "10.0.0.9", 80)))

	// A record's own quota wins over the carried default.
	one := 1
	dev := func(name, ip string) RegisterInstance {
		c := RegisterInstance{Service: naming.ServiceKey{Namespace: "dev", Group: "DEFAULT_GROUP", Name: name}, Instance: persistent(ip, 80), Quota: q}
		return c
	}
	res = f.ApplyBatch(logs(t, 10,
		PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "Dev", MaxInstances: &one}, Mode: PutCreate},
		dev("x", "10.0.1.1"),
		dev("x", "10.0.1.2"),
	))
	if res[0] != nil || res[1] != nil {
		t.Fatalf("dev: %v", res)
	}
	if got := refusal(t, res[2]); *got != *naming.ErrQuota("dev", "instances", 1) {
		t.Fatalf("dev over its own quota: %+v", got)
	}
}

func ptr[T any](v T) *T { return &v }
