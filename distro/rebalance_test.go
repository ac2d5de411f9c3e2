package distro

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

// clientWhere finds a client (ip:port) that the hash gives to want3 over three members
// and to want2 over the two left without n1.
func clientWhere(t *testing.T, all, left []Peer, want3, want2 string) *naming.Instance {
	t.Helper()
	for port := 1; port < 65536; port++ {
		c := net.JoinHostPort("10.0.0.1", strconv.Itoa(port))
		if responsibleOver(all, c).ID == want3 && responsibleOver(left, c).ID == want2 {
			return inst("10.0.0.1", port, "DEFAULT")
		}
	}
	t.Fatalf("no client goes from %s to %s", want3, want2)
	return nil
}

// TestMemberDeathRebalancesClientsOfTheLiveMembers: when n1 dies, the hash over the
// members left moves some clients between n2 and n3 as well. n2 no longer gets the beats
// of a client it kept that is now n3's, so it must not expire it (it used to, while n3's
// takeover had not reached it yet: R5, a still-beating instance removed on n2); and a
// replica of n3's that is now n2's is taken over by n2 with a fresh timer, so that it
// expires here if its client is gone.
func TestMemberDeathRebalancesClientsOfTheLiveMembers(t *testing.T) {
	s, clk := newTestStore(t)
	all := []Peer{{ID: "n1", HTTPAddr: "127.0.0.1:1"}, {ID: "n2", HTTPAddr: "127.0.0.1:2"}, {ID: "n3", HTTPAddr: "127.0.0.1:3"}}
	left := []Peer{all[1], all[2]}
	r := NewReplicator(s, ReplicatorConfig{
		Self: "n2", Peers: func() []Peer { return all },
		PingInterval: time.Second, DeadAfter: 3 * time.Second, Logger: quietLogger(),
	})
	now := time.Now()
	r.lastSeen["n1"], r.lastSeen["n3"] = now, now
	r.checkDeaths() // all three live: the first view

	svc := svcKey("moved")
	kept := clientWhere(t, all, left, "n2", "n3")
	s.Register(svc, kept)
	fromN3 := clientWhere(t, all, left, "n3", "n2")
	s.ApplyRemote("n3", svc, []Entry{{Instance: *fromN3, Epoch: 1}})
	s.ApplyRemote("n1", svcKey("of-n1"), []Entry{{Instance: *inst("10.0.0.2", 80, "DEFAULT"), Epoch: 1}})

	// n1 goes quiet; n2 finds it dead while n3 has taken the kept client over already.
	r.mu.Lock()
	r.lastSeen["n1"] = now.Add(-time.Minute)
	r.mu.Unlock()
	r.checkDeaths()

	clk.Advance(naming.DefaultTiming().IPDeleteTimeout + time.Second)
	check(s, clk)
	if _, ok := s.Instance(svc, kept.Key()); !ok {
		t.Fatal("n2 expired a client that the hash now gives to n3 (its beats go there)")
	}
	if _, ok := s.Instance(svc, fromN3.Key()); ok {
		t.Fatal("a replica of n3's that is now n2's was not taken over: nobody expires it")
	}
	// n3's claim (newer than n2's old one) replaces the handed-over copy.
	s.ApplyRemote("n3", svc, []Entry{{Instance: *kept, Epoch: time.Now().UnixNano()}})
	if s.Checksum("n3") == s.Checksum("") {
		t.Fatal("the handed-over client must be n3's replica")
	}
}
