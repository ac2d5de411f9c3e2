package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
)

var countedNamespaces = []string{naming.DefaultNamespace, "dev", "prod"}

// recount counts each namespace's service records and instances from the records.
func recount(t *testing.T, s *persistence.Store) map[string][2]int {
	t.Helper()
	out := map[string][2]int{}
	err := s.View(func(tx *persistence.Tx) error {
		services, err := tx.Services("")
		if err != nil {
			return err
		}
		for _, svc := range services {
			c := out[svc.Key.Namespace]
			c[0]++
			out[svc.Key.Namespace] = c
		}
		return tx.ForEachInstance(func(k naming.ServiceKey, _ *naming.Instance) error {
			c := out[k.Namespace]
			c[1]++
			out[k.Namespace] = c
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCounters fails unless every namespace's stored counters equal a recount.
func checkCounters(t *testing.T, s *persistence.Store, when string) {
	t.Helper()
	want := recount(t, s)
	err := s.View(func(tx *persistence.Tx) error {
		for _, ns := range countedNamespaces {
			services, instances, err := tx.NamespaceCounts(ns)
			if err != nil {
				return err
			}
			if got := [2]int{services, instances}; got != want[ns] {
				t.Errorf("%s: namespace %s counters say %d services, %d instances; a recount finds %d and %d",
					when, ns, got[0], got[1], want[ns][0], want[ns][1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// randomCommand is one of the commands that add or remove services and instances, in
// one of three namespaces, some with a quota the counters decide on.
func randomCommand(rng *rand.Rand) Command {
	ns := countedNamespaces[rng.IntN(len(countedNamespaces))]
	svc := naming.ServiceKey{Namespace: ns, Group: "DEFAULT_GROUP", Name: fmt.Sprintf("s%d", rng.IntN(5))}
	ip, port := fmt.Sprintf("10.0.0.%d", rng.IntN(10)), 80
	var q *Quota
	if rng.IntN(2) == 0 {
		q = &Quota{Services: 4, Instances: 20}
	}
	switch r := rng.IntN(20); {
	case r < 8:
		return RegisterInstance{Service: svc, Instance: persistent(ip, port), Quota: q}
	case r < 13:
		return DeregisterInstance{Service: svc, IP: ip, Port: port, Cluster: "DEFAULT"}
	case r < 15:
		return UpdateInstance{Service: svc, IP: ip, Port: port, Cluster: "DEFAULT", Weight: ptr(2.0), Upsert: ptr(persistent(ip, port)), Quota: q}
	case r < 17:
		return PutService{Service: *naming.NewService(svc, false), Mode: PutUpsert, Quota: q}
	case r < 18:
		return UpdateMetadataBatch{Service: svc, Metadata: map[string]string{"k": "v"}}
	default:
		return DeleteService{Service: svc}
	}
}

// TestNamespaceCountersMatchARecount: after every batch of a random history of
// registrations, deregistrations, upserts, service puts and deletes (a part refused by
// quotas or by non-empty services) the stored per-namespace counters equal a count of
// the records; so they do after a lost batch was put back, after the file is reopened,
// and in an FSM restored from a snapshot of it. The history is the same as a fresh FSM
// applying every entry once gives.
func TestNamespaceCountersMatchARecount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	opts := persistence.Options{OpenTimeout: 100 * time.Millisecond, InitialMmapSize: 1 << 20, CommitInterval: time.Hour, CommitEntries: 1000}
	store, err := persistence.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	f := New(store, nil)
	f.diskFullRetry = time.Millisecond
	once := newFSM(t) // the same entries, each applied once, no batch lost

	rng := rand.New(rand.NewPCG(7, 11))
	next := uint64(1)
	refused, lost := 0, 0
	for round := range 80 {
		var cmds []Command
		for range 1 + rng.IntN(15) {
			cmds = append(cmds, randomCommand(rng))
		}
		batch := logs(t, next, cmds...)
		for _, r := range f.ApplyBatch(batch) {
			if _, ok := r.(*naming.Error); ok {
				refused++
			}
		}
		once.ApplyBatch(logs(t, next, cmds...))
		next += uint64(len(cmds))
		checkCounters(t, store, fmt.Sprintf("round %d", round))
		switch round % 10 {
		case 3:
			if err := store.Flush(); err != nil {
				t.Fatal(err)
			}
		case 7:
			// The open batch is lost, as on a failed commit; the next ApplyBatch puts
			// its entries back.
			if err := store.Update(next, 1, func(*persistence.Tx) error { return errors.New("commit: no space left on device") }); err == nil {
				t.Fatal("the failing update succeeded")
			}
			lost++
		}
	}
	if refused == 0 {
		t.Fatal("no command was refused: the quotas were never reached")
	}
	if got, want := dump(t, store), dump(t, once.Store()); !reflect.DeepEqual(got, want) {
		t.Fatalf("after %d lost batches the state differs from one applied once:\n got %+v\nwant %+v", lost, got, want)
	}
	checkCounters(t, once.Store(), "applied once")

	// A snapshot restored elsewhere, over state of its own.
	sink := &bufferSink{Buffer: &bytes.Buffer{}}
	persistTo(t, f, sink)
	dst := newFSM(t)
	applyOK(t, dst, logs(t, 1, RegisterInstance{Service: naming.ServiceKey{Namespace: "dev", Group: "G", Name: "stale"}, Instance: persistent("10.9.9.9", 1)}))
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, dst.Store(), "restored")
	if got, want := recount(t, dst.Store()), recount(t, store); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored store counts %v, the source %v", got, want)
	}

	// Reopened from the file.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if store, err = persistence.Open(path, opts); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, store, "reopened")
}

// BenchmarkRegisterIntoALargeNamespace is the cost of applying one registration that
// carries a quota into a namespace of 10 000 instances (100 services of 100): the quota
// check used to list and count them all on every apply.
func BenchmarkRegisterIntoALargeNamespace(b *testing.B) {
	store, err := persistence.Open(filepath.Join(b.TempDir(), "fsm.db"), persistence.Options{
		OpenTimeout: time.Second, CommitInterval: time.Hour, CommitEntries: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	f := New(store, nil)
	q := &Quota{Instances: 1 << 30}
	svc := func(i int) naming.ServiceKey {
		return naming.ServiceKey{Namespace: "big", Group: "DEFAULT_GROUP", Name: fmt.Sprintf("s%03d", i%100)}
	}
	index := uint64(0)
	logOf := func(c Command) *raft.Log {
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		index++
		return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
	}
	var batch []*raft.Log
	for i := range 10_000 {
		batch = append(batch, logOf(RegisterInstance{Service: svc(i), Instance: persistent(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), 80)}))
	}
	for _, r := range f.ApplyBatch(batch) {
		if r != nil {
			b.Fatal(r)
		}
	}
	if err := store.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new instance each time, then its removal (not timed), so the namespace stays
		// at 10 000 and every registration is a new one the quota must count.
		in := persistent(fmt.Sprintf("10.200.%d.%d", (i>>8)&255, i&255), 81)
		if r := f.Apply(logOf(RegisterInstance{Service: svc(i), Instance: in, Quota: q})); r != nil {
			b.Fatal(r)
		}
		b.StopTimer()
		if r := f.Apply(logOf(DeregisterInstance{Service: svc(i), IP: in.IP, Port: in.Port, Cluster: "DEFAULT"})); r != nil {
			b.Fatal(r)
		}
		b.StartTimer()
	}
}
