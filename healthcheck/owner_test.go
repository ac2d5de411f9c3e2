package healthcheck

import (
	"fmt"
	"slices"
	"testing"

	"github.com/roster-registry/roster/naming"
)

func ownerKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		tg := target(fmt.Sprintf("127.0.%d.%d:%d", i/250, i%250+1, 8000+i%7), Checker{Type: TypeTCP})
		keys[i] = tg.Key()
	}
	return keys
}

func TestOwnerIsOneLiveMember(t *testing.T) {
	live := []string{"a", "b", "c"}
	for _, key := range ownerKeys(300) {
		o := Owner(key, live)
		if !slices.Contains(live, o) {
			t.Fatalf("Owner(%s) = %q, not a live member", key, o)
		}
		for _, order := range [][]string{{"c", "b", "a"}, {"b", "a", "c"}, {"a", "b", "c", "b"}} {
			if got := Owner(key, order); got != o {
				t.Fatalf("Owner(%s) is %q over %v but %q over %v: must not depend on order", key, o, live, got, order)
			}
		}
	}
	if got := Owner("k", nil); got != "" {
		t.Fatalf("Owner with no live member = %q, want \"\"", got)
	}
}

func TestOwnerSharesAreBalanced(t *testing.T) {
	live := []string{"a", "b", "c"}
	share := map[string]int{}
	for _, key := range ownerKeys(300) {
		share[Owner(key, live)]++
	}
	for _, id := range live {
		// Expected 100 each; a binomial(300, 1/3) lies in [70, 130] at ±3.7 σ.
		if n := share[id]; n < 70 || n > 130 {
			t.Fatalf("shares of 300 targets over %v = %v; want each within 70..130", live, share)
		}
	}
	t.Logf("shares of 300 targets: %v", share)
}

func TestOwnerMovesOnlyTheDeadMembersTargets(t *testing.T) {
	before := []string{"a", "b", "c"}
	after := []string{"a", "c"}
	moved, kept := 0, 0
	for _, key := range ownerKeys(300) {
		was, is := Owner(key, before), Owner(key, after)
		if was != "b" {
			if is != was {
				t.Fatalf("%s moved from %s to %s when b left; only b's targets may move", key, was, is)
			}
			kept++
			continue
		}
		moved++
	}
	if moved == 0 || kept == 0 {
		t.Fatalf("moved %d, kept %d: the test keys are degenerate", moved, kept)
	}
	// And b coming back takes back exactly what it had.
	for _, key := range ownerKeys(300) {
		if Owner(key, append(after, "b")) != Owner(key, before) {
			t.Fatalf("%s did not return to its owner when b came back", key)
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	keys := ownerKeys(10000)
	r := newRing([]string{"n1", "n2", "n3"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = r.owner(keys[i%len(keys)])
	}
}

func TestTargetKeyFormat(t *testing.T) {
	tg := Target{Service: naming.ServiceKey{Namespace: "ns", Group: "G", Name: "S"}, Cluster: "c1", IP: "10.0.0.1", Port: 8080}
	want := tg.Service.String() + "#" + naming.InstanceKey("10.0.0.1", 8080, "c1")
	if got := tg.Key(); got != want {
		t.Errorf("Key() = %q, want %q", got, want)
	}
	if got := string(tg.appendKey([]byte("junk")[:0])); got != want {
		t.Errorf("appendKey = %q, want %q", got, want)
	}
}
