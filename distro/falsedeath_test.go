package distro

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

// deliverPush applies from's push of svc at to as the receiving Replicator does
// (applyFrom): Moved entries naming the receiver itself are dropped.
func deliverPush(fromID string, from *Store, toID string, to *Store, svc naming.ServiceKey) {
	g := from.PushGroup(svc)
	var moved []Entry
	for _, e := range g.Moved {
		if e.Source != toID {
			moved = append(moved, e)
		}
	}
	g.Moved = moved
	to.Apply(fromID, g)
}

// TestAFalseDeathDoesNotRemoveTheAdoptedClientsOfALiveMember (R12 full): n2 and n3
// declared each other dead at the same moment and each adopted the other's client,
// with a fresh claim. n3's push reached n2 and n1, n2's reached n1 but not n3 (its
// push timed out under load, and n3 answered again only after n2's delete timeout).
// Beats go to each client's responsible member again, c to n3 and d to n2. n2's
// adopted copy of c outranked n3's older claim everywhere it had gone, got no beats,
// turned unhealthy and was removed, and the removal reached n1: a still-beating client
// missing from n1 and n2 until n3's next checksum round. n2 now hands the copy to n3,
// which it knows kept the client, once it stops getting its beats. (Had n2's push
// reached n3, n3 would have given c to n2's claim and taken it back with a newer one at
// c's next beat: the old code recovered then, unless n3's clock was behind, below.)
func TestAFalseDeathDoesNotRemoveTheAdoptedClientsOfALiveMember(t *testing.T) {
	st, clk := storesOnOneClock(t, 3)
	falseDeathOfN2AndN3(t, st, clk, true)
}

// TestAFalseDeathWithTheOwnersClockBehindDoesNotRemoveItsClients (R12 full, the
// leader's wall clock stepped back): every push arrives, but n3's clock is 5 minutes
// behind. n3 gives c to n2's newer claim and takes it back at c's next beat, with a
// claim stamped by its clock, which still loses to n2's everywhere: n2's copy got no
// beats and was removed as in the lost-push case.
func TestAFalseDeathWithTheOwnersClockBehindDoesNotRemoveItsClients(t *testing.T) {
	clk := newFakeClock()
	st := make([]*Store, 3)
	for i := range st {
		cfg := Config{Timing: naming.DefaultTiming(), EmptyServiceTTL: time.Minute, Clock: clk, Logger: quietLogger()}
		if i == 2 {
			cfg.Wall = func() time.Time { return clk.Now().Add(-5 * time.Minute) }
		}
		st[i] = New(cfg)
	}
	falseDeathOfN2AndN3(t, st, clk, false)
}

// falseDeathOfN2AndN3 runs the false death on stores n1, n2, n3, with n2's pushes to
// n3 lost until the end when lostPush is set.
func falseDeathOfN2AndN3(t *testing.T, st []*Store, clk *fakeClock, lostPush bool) {
	t.Helper()
	ids := []string{"n1", "n2", "n3"}
	n1, n2, n3 := st[0], st[1], st[2]
	svc := svcKey("falsedeath")
	c := inst("10.0.0.3", 80, "DEFAULT") // responsible member n3
	d := inst("10.0.0.2", 80, "DEFAULT") // responsible member n2
	keyC, keyD := c.Key(), d.Key()
	// As the Replicator, a member pushes only after a change of its own, and a push
	// on a cut link is lost.
	var dirtyMu sync.Mutex
	dirty := make([]bool, len(st))
	for i, s := range st {
		s.OnLocalChange(func(naming.ServiceKey) {
			dirtyMu.Lock()
			dirty[i] = true
			dirtyMu.Unlock()
		})
	}
	cut := map[[2]string]bool{}
	n3.Register(svc, c)
	n2.Register(svc, d)
	var probe func(when string) // checks the lists after every push delivered
	pushAll := func(when string) {
		dirtyMu.Lock()
		changed := slices.Clone(dirty)
		clear(dirty)
		dirtyMu.Unlock()
		for i, from := range st {
			for j, to := range st {
				if i != j && changed[i] && !cut[[2]string{ids[i], ids[j]}] {
					deliverPush(ids[i], from, ids[j], to, svc)
					if probe != nil {
						probe(when + ", " + ids[i] + "'s push applied at " + ids[j])
					}
				}
			}
		}
	}
	pushAll("registered")

	clk.Advance(time.Second)
	if n2.Adopt("n3", func(string) bool { return true }) != 1 || n3.Adopt("n2", func(string) bool { return true }) != 1 {
		t.Fatal("n2 and n3 did not adopt each other's client")
	}
	cut[[2]string{"n2", "n3"}] = lostPush
	pushAll("adopted")

	// While n3 hears nothing of n2's, it cannot know that n2 took d back: then only
	// the members that hear both are checked for d.
	n3Keys := []string{keyC, keyD}
	if lostPush {
		n3Keys = n3Keys[:1]
	}
	probe = func(when string) {
		t.Helper()
		for _, p := range []struct {
			node string
			s    *Store
			keys []string
		}{{"n1", n1, []string{keyC, keyD}}, {"n2", n2, []string{keyC, keyD}}, {"n3", n3, n3Keys}} {
			for _, key := range p.keys {
				got, ok := p.s.Instance(svc, key)
				if !ok {
					t.Fatalf("%s: %s no longer lists the still-beating %s", when, p.node, key)
				}
				if !got.Healthy {
					t.Fatalf("%s: %s lists the still-beating %s as unhealthy", when, p.node, key)
				}
			}
		}
	}

	timing := naming.DefaultTiming()
	end := timing.IPDeleteTimeout + 2*timing.HeartBeatTimeout
	for elapsed := time.Duration(0); elapsed < end; elapsed += timing.HeartBeatInterval {
		clk.Advance(timing.HeartBeatInterval)
		if _, ok := n3.Touch(svc, c.IP, c.Port, c.ClusterName); !ok {
			t.Fatalf("after %v: c's beat found no instance at n3", elapsed)
		}
		if _, ok := n2.Touch(svc, d.IP, d.Port, d.ClusterName); !ok {
			t.Fatalf("after %v: d's beat found no instance at n2", elapsed)
		}
		for _, s := range st {
			check(s, clk)
		}
		probe("after " + elapsed.String())
		pushAll("after " + elapsed.String())
	}

	// Once n2's pushes reach n3 again, every member lists both, each held as its own
	// by its responsible member only.
	delete(cut, [2]string{"n2", "n3"})
	dirty[1] = true // n2 sends its lost push again, as its services are now
	probe = nil
	pushAll("healed")
	for i, s := range st {
		if got := s.Instances(svc); len(got) != 2 {
			t.Fatalf("n%d lists %d instances, want 2", i+1, len(got))
		}
	}
	wantHolder := map[string]string{keyC: "n3", keyD: "n2"}
	for i, s := range st {
		for _, h := range s.Holdings(svc) {
			holder := h.Source
			if holder == "" {
				holder = ids[i]
			}
			if holder != wantHolder[h.Key] {
				t.Fatalf("%s holds %s as %s's, want %s's", ids[i], h.Key, holder, wantHolder[h.Key])
			}
		}
	}
}

// TestAHandedBackClientThatStoppedBeatingIsStillRemoved: the handover of an adopted
// copy to its rival keeps no client alive for ever. c stops beating during the false
// death; n2 hands its copy to n3, which still holds c as its own and expires it, and
// n3's push removes it from the others.
func TestAHandedBackClientThatStoppedBeatingIsStillRemoved(t *testing.T) {
	st, clk := storesOnOneClock(t, 3)
	n1, n2, n3 := st[0], st[1], st[2]
	svc := svcKey("stopped")
	c := inst("10.0.0.3", 80, "DEFAULT")
	n3.Register(svc, c)
	deliverPush("n3", n3, "n1", n1, svc)
	deliverPush("n3", n3, "n2", n2, svc)

	clk.Advance(time.Second)
	n2.Adopt("n3", func(string) bool { return true })
	deliverPush("n2", n2, "n1", n1, svc)
	deliverPush("n3", n3, "n2", n2, svc) // n3's older claim: n2 remembers n3 kept c

	timing := naming.DefaultTiming()
	clk.Advance(timing.HeartBeatTimeout)
	check(n2, clk)
	deliverPush("n2", n2, "n1", n1, svc)
	deliverPush("n2", n2, "n3", n3, svc)
	for i, s := range st {
		if h := s.Holdings(svc); len(h) != 1 || (h[0].Source != "n3" && i != 2) || (i == 2 && h[0].Source != "") {
			t.Fatalf("n%d holds %+v, want c as n3's", i+1, h)
		}
	}

	clk.Advance(timing.IPDeleteTimeout)
	check(n3, clk)
	deliverPush("n3", n3, "n1", n1, svc)
	deliverPush("n3", n3, "n2", n2, svc)
	for i, s := range st {
		if listed(s, svc, c.Key()) {
			t.Fatalf("n%d still lists the client that stopped beating", i+1)
		}
	}
}
