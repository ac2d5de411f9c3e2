package distro

import (
	"fmt"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

func addrs(list []*naming.Instance) string {
	out := ""
	for _, i := range list {
		out += i.Addr() + " "
	}
	return out
}

func TestOwnedReplaceDeregisterRemove(t *testing.T) {
	s, clk := newTestStore(t)
	svcB := naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "b"}
	changes := map[naming.ServiceKey]int{}
	s.OnChange(func(svc naming.ServiceKey) { changes[svc]++ })

	s.RegisterOwned(svcA, inst("10.0.0.1", 1, "DEFAULT"), "c1")
	s.RegisterOwned(svcA, inst("10.0.0.2", 2, "DEFAULT"), "c2")
	s.RegisterOwned(svcB, inst("10.0.0.1", 1, "DEFAULT"), "c1")
	// One instance per owner per service: a second register replaces the first.
	s.RegisterOwned(svcA, inst("10.0.0.3", 3, "DEFAULT"), "c1")
	if got := addrs(s.Instances(svcA)); got != "10.0.0.2:2 10.0.0.3:3 " {
		t.Fatalf("after replace: %s", got)
	}
	// Re-registering the same instance changes nothing and notifies nobody.
	before := changes[svcA]
	s.RegisterOwned(svcA, inst("10.0.0.3", 3, "DEFAULT"), "c1")
	if changes[svcA] != before {
		t.Fatal("an unchanged register notified")
	}
	// A batch replaces the owner's list.
	s.ReplaceOwned(svcA, "c1", []*naming.Instance{inst("10.0.0.4", 4, "DEFAULT"), inst("10.0.0.5", 5, "x")})
	if got := addrs(s.Instances(svcA)); got != "10.0.0.2:2 10.0.0.4:4 10.0.0.5:5 " {
		t.Fatalf("after batch: %s", got)
	}
	// Owned instances never expire by beats.
	clk.Advance(time.Hour)
	check(s, clk)
	if n := len(s.Instances(svcA)); n != 3 {
		t.Fatalf("owned instances expired: %d left", n)
	}
	// Deregister ignores addresses: everything c2 holds in svcA goes.
	if got := addrs(s.DeregisterOwned(svcA, "c2")); got != "10.0.0.2:2 " {
		t.Fatalf("deregister removed %s", got)
	}
	if s.Owners() != 1 {
		t.Fatalf("owners = %d, want 1", s.Owners())
	}
	removed := s.RemoveOwned("c1")
	if len(removed) != 2 || len(removed[svcA]) != 2 || len(removed[svcB]) != 1 {
		t.Fatalf("RemoveOwned = %v", removed)
	}
	if n := len(s.Instances(svcA)) + len(s.Instances(svcB)); n != 0 {
		t.Fatalf("%d instances left", n)
	}
	if s.Owners() != 0 || s.RemoveOwned("c1") != nil {
		t.Fatal("owner index not emptied")
	}
	if _, instances := s.Counts(); instances != 0 {
		t.Fatalf("count %d", instances)
	}
}

func TestOwnedTakenOverByBeatClient(t *testing.T) {
	s, clk := newTestStore(t)
	s.RegisterOwned(svcA, inst("10.0.0.1", 1, "DEFAULT"), "c1")
	// A 1.x registration of the same key takes the instance over: beats keep it now.
	s.Register(svcA, inst("10.0.0.1", 1, "DEFAULT"))
	if owner, ok := s.Owner(svcA, naming.InstanceKey("10.0.0.1", 1, "DEFAULT")); !ok || owner != "" {
		t.Fatalf("owner = %q %v", owner, ok)
	}
	if removed := s.RemoveOwned("c1"); removed != nil {
		t.Fatalf("dropping c1 removed the taken-over instance: %v", removed)
	}
	clk.Advance(31 * time.Second)
	check(s, clk)
	if n := len(s.Instances(svcA)); n != 0 {
		t.Fatalf("beat-kept instance did not expire: %d", n)
	}
	// And the other way round: a connection takes a beat-kept instance over.
	s.Register(svcA, inst("10.0.0.2", 2, "DEFAULT"))
	s.RegisterOwned(svcA, inst("10.0.0.2", 2, "DEFAULT"), "c2")
	clk.Advance(time.Hour)
	check(s, clk)
	if got := fmt.Sprint(len(s.Instances(svcA))); got != "1" {
		t.Fatalf("owned instance expired")
	}
}
