package distro

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

// storesOnOneClock are members' stores sharing a fake clock, so their claims' epochs
// compare as the members' wall clocks would.
func storesOnOneClock(t *testing.T, n int) ([]*Store, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	out := make([]*Store, n)
	for i := range out {
		out[i] = New(Config{Timing: naming.DefaultTiming(), EmptyServiceTTL: time.Minute, Clock: clk, Logger: quietLogger()})
	}
	return out, clk
}

func listed(s *Store, svc naming.ServiceKey, key string) bool {
	_, ok := s.Instance(svc, key)
	return ok
}

// TestAHandedOverClientStaysListedUntilItsNewHolderPushes (R5): a client moved from n2
// to n3 (n3 took it by its beats); n1, paused meanwhile, gets n2's push, which no longer
// lists the client among n2's, before n3's. n1 used to remove the still-beating client
// until n3's push arrived (when n1 was paused, n3's push to it had timed out and was
// lost, so not before n3's next checksum round); n2's push now names the new holder,
// and n1 keeps the client as n3's.
func TestAHandedOverClientStaysListedUntilItsNewHolderPushes(t *testing.T) {
	st, clk := storesOnOneClock(t, 3)
	n1, n2, n3 := st[0], st[1], st[2]
	svc := svcKey("handover")
	key := naming.InstanceKey("10.0.0.1", 80, "DEFAULT")

	n2.Register(svc, inst("10.0.0.1", 80, "DEFAULT"))
	n1.Apply("n2", n2.PushGroup(svc))
	n3.Apply("n2", n2.PushGroup(svc))

	clk.Advance(time.Second)
	if _, ok := n3.Touch(svc, "10.0.0.1", 80, "DEFAULT"); !ok {
		t.Fatal("n3 does not hold the client")
	}
	n2.Apply("n3", n3.PushGroup(svc)) // n3's push reaches n2, not paused n1

	n1.Apply("n2", n2.PushGroup(svc))
	if !listed(n1, svc, key) {
		t.Fatal("n2's push removed the client it handed to n3 from n1's list")
	}
	if n1.Checksum("n3") != n3.Checksum("") || n1.Checksum("n2") != n2.Checksum("") {
		t.Fatal("n1 does not hold the client as n3's")
	}
	n1.Apply("n3", n3.PushGroup(svc))
	if got := n1.Instances(svc); len(got) != 1 {
		t.Fatalf("n1 lists %d instances, want 1", len(got))
	}

	// A client that is gone is still removed everywhere: its holder's push says so, and
	// its former holder no longer names it.
	n3.Deregister(svc, "10.0.0.1", 80, "DEFAULT")
	n2.Apply("n3", n3.PushGroup(svc))
	n1.Apply("n2", n2.PushGroup(svc))
	n1.Apply("n3", n3.PushGroup(svc))
	for i, s := range st {
		if listed(s, svc, key) {
			t.Fatalf("n%d still lists the deregistered client", i+1)
		}
	}
}

// TestAMovedEntryNamingTheReceiverRemovesIt: n1 holds a replica of n2 that n2 says n1
// took. n1 does not hold it as its own, so the claim is stale: the replica goes (as it
// did before Moved existed) rather than staying with no member expiring it.
func TestAMovedEntryNamingTheReceiverRemovesIt(t *testing.T) {
	st, _ := storesOnOneClock(t, 2)
	n1, n2 := st[0], st[1]
	svc := svcKey("self")
	n2.Register(svc, inst("10.0.0.1", 80, "DEFAULT"))
	r := NewReplicator(n1, ReplicatorConfig{Self: "n1", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	r.applyFrom("n2", 1, n2.PushGroup(svc))
	g := n2.PushGroup(svc)
	g.Moved, g.Entries = g.Entries, nil
	for i := range g.Moved {
		g.Moved[i].Source = "n1"
	}
	r.applyFrom("n2", 1, g)
	if got := n1.Instances(svc); len(got) != 0 {
		t.Fatalf("n1 kept a replica nobody expires: %+v", got)
	}
}

// TestAnOlderPushArrivingLateIsDropped (R5): a paused member finds the pushes sent to it
// before and after its pause waiting and handles them in any order. An older push
// handled last used to put back the older state: here it removed a client registered
// since.
func TestAnOlderPushArrivingLateIsDropped(t *testing.T) {
	st, _ := storesOnOneClock(t, 2)
	sender, receiver := st[0], st[1]
	svc := svcKey("late")
	from := NewReplicator(sender, ReplicatorConfig{Self: "n2", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	to := NewReplicator(receiver, ReplicatorConfig{Self: "n1", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	deliver := func(b SyncBatch) {
		t.Helper()
		wire, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		to.serveSync(rec, httptest.NewRequest(http.MethodPost, PathSync, bytes.NewReader(wire)))
		if rec.Code != http.StatusOK {
			t.Fatalf("sync answered %d: %s", rec.Code, rec.Body)
		}
	}

	sender.Register(svc, inst("10.0.0.1", 80, "DEFAULT"))
	older := from.SyncBatch([]naming.ServiceKey{svc})
	sender.Register(svc, inst("10.0.0.2", 80, "DEFAULT"))
	newer := from.SyncBatch([]naming.ServiceKey{svc})

	deliver(newer)
	deliver(older)
	if got := receiver.Instances(svc); len(got) != 2 {
		t.Fatalf("after the older push handled last the receiver lists %d instances, want 2", len(got))
	}

	// A restarted sender counts afresh: its pushes are taken again.
	restarted := NewReplicator(sender, ReplicatorConfig{Self: "n2", Peers: func() []Peer { return nil }, Logger: quietLogger()})
	restarted.incarnation = from.incarnation + 1
	sender.Deregister(svc, "10.0.0.2", 80, "DEFAULT")
	sender.reads.Store(0)
	deliver(restarted.SyncBatch([]naming.ServiceKey{svc}))
	if got := receiver.Instances(svc); len(got) != 1 {
		t.Fatalf("the restarted sender's push was dropped: %d instances, want 1", len(got))
	}
}
