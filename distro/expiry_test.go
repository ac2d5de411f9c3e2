package distro

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

func TestExpiryAtTheTimeouts(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	log := watch(s)
	const key = "10.0.0.1#8080#DEFAULT"

	clk.Advance(15*time.Second - time.Nanosecond)
	check(s, clk)
	if !mustInstance(t, s, svcA, key).Healthy {
		t.Fatal("unhealthy before the heart beat timeout")
	}
	log.expectCalls(t, "before the heart beat timeout", svcA, 0)

	clk.Advance(time.Nanosecond)
	check(s, clk)
	if mustInstance(t, s, svcA, key).Healthy {
		t.Fatal("still healthy at the heart beat timeout")
	}
	log.expectCalls(t, "at the heart beat timeout", svcA, 1)

	clk.Advance(15*time.Second - time.Nanosecond)
	check(s, clk)
	if _, ok := s.Instance(svcA, key); !ok {
		t.Fatal("removed before the ip delete timeout")
	}
	log.expectCalls(t, "before the ip delete timeout", svcA, 0)

	clk.Advance(time.Nanosecond)
	check(s, clk)
	if _, ok := s.Instance(svcA, key); ok {
		t.Fatal("still present at the ip delete timeout")
	}
	log.expectCalls(t, "at the ip delete timeout", svcA, 1)
	if svc, n := s.Counts(); svc != 1 || n != 0 {
		t.Fatalf("Counts = %d, %d; want the empty service and no instances", svc, n)
	}
	if !s.HasService(svcA) {
		t.Fatal("service gone at once; it should stay for its empty TTL")
	}
}

// A check that is late (the ticker delayed, the process paused) removes an instance
// past both timeouts at once, with one notification.
func TestExpiryRemovesWithoutPassingThroughUnhealthy(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	log := watch(s)
	clk.Advance(31 * time.Second)
	check(s, clk)
	if _, ok := s.Instance(svcA, "10.0.0.1#8080#DEFAULT"); ok {
		t.Fatal("instance 31 s past its last beat still present")
	}
	log.expectCalls(t, "late check", svcA, 1)
}

func TestExpiryHonoursPreservedMetadata(t *testing.T) {
	s, clk := newTestStore(t)
	fast := inst("10.0.0.1", 1, "DEFAULT")
	fast.Metadata[naming.MetaHeartBeatTimeout] = "2000"
	fast.Metadata[naming.MetaIPDeleteTimeout] = "4000"
	slow := inst("10.0.0.2", 1, "DEFAULT")
	slow.Metadata[naming.MetaHeartBeatTimeout] = "40000"
	slow.Metadata[naming.MetaIPDeleteTimeout] = "50000"
	bad := inst("10.0.0.3", 1, "DEFAULT") // not digits: server defaults apply
	bad.Metadata[naming.MetaHeartBeatTimeout] = "2s"
	plain := inst("10.0.0.4", 1, "DEFAULT")
	for _, i := range []*naming.Instance{fast, slow, bad, plain} {
		s.Register(svcA, i)
	}

	state := func() map[string]string {
		out := map[string]string{}
		for _, i := range s.Instances(svcA) {
			if i.Healthy {
				out[i.IP] = "healthy"
			} else {
				out[i.IP] = "unhealthy"
			}
		}
		return out
	}
	expect := func(at string, want map[string]string) {
		t.Helper()
		check(s, clk)
		if got := state(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("at %s: %v, want %v", at, got, want)
		}
	}

	clk.Advance(2 * time.Second)
	expect("2s", map[string]string{"10.0.0.1": "unhealthy", "10.0.0.2": "healthy", "10.0.0.3": "healthy", "10.0.0.4": "healthy"})
	clk.Advance(2 * time.Second)
	expect("4s", map[string]string{"10.0.0.2": "healthy", "10.0.0.3": "healthy", "10.0.0.4": "healthy"})
	clk.Advance(11 * time.Second)
	expect("15s", map[string]string{"10.0.0.2": "healthy", "10.0.0.3": "unhealthy", "10.0.0.4": "unhealthy"})
	clk.Advance(15 * time.Second)
	expect("30s", map[string]string{"10.0.0.2": "healthy"})
	clk.Advance(10 * time.Second)
	expect("40s", map[string]string{"10.0.0.2": "unhealthy"})
	clk.Advance(10 * time.Second)
	expect("50s", map[string]string{})
}

func TestEmptyServiceTTL(t *testing.T) {
	s, clk := newTestStore(t)
	svcB := naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "b"}
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	long := inst("10.0.0.1", 8080, "DEFAULT") // outlives the whole test without beats
	long.Metadata[naming.MetaHeartBeatTimeout] = "3600000"
	long.Metadata[naming.MetaIPDeleteTimeout] = "3600000"
	s.Register(svcB, long)
	s.Deregister(svcA, "10.0.0.1", 8080, "DEFAULT")

	clk.Advance(60*time.Second - time.Nanosecond)
	check(s, clk)
	if !s.HasService(svcA) {
		t.Fatal("empty service gone before its TTL")
	}
	if got := s.Services("public"); len(got) != 2 {
		t.Fatalf("Services before the TTL = %v, want a and b", got)
	}

	clk.Advance(time.Nanosecond)
	if s.HasService(svcA) {
		t.Fatal("empty service still reported at its TTL")
	}
	if got := s.Services("public"); len(got) != 1 || got[0] != svcB {
		t.Fatalf("Services at the TTL = %v, want b only", got)
	}
	check(s, clk)
	if svc, n := s.Counts(); svc != 1 || n != 1 {
		t.Fatalf("Counts after the sweep = %d, %d; want 1, 1", svc, n)
	}

	// A register inside the window keeps the service; its TTL restarts when it empties again.
	s.Deregister(svcB, "10.0.0.1", 8080, "DEFAULT")
	clk.Advance(59 * time.Second)
	s.Register(svcB, inst("10.0.0.2", 8080, "DEFAULT"))
	s.Deregister(svcB, "10.0.0.2", 8080, "DEFAULT")
	clk.Advance(59 * time.Second)
	check(s, clk)
	if !s.HasService(svcB) {
		t.Fatal("service dropped although it was repopulated inside its TTL")
	}
	clk.Advance(time.Second)
	check(s, clk)
	if s.HasService(svcB) {
		t.Fatal("service kept past its TTL")
	}
	if svc, n := s.Counts(); svc != 0 || n != 0 {
		t.Fatalf("Counts = %d, %d; want 0, 0", svc, n)
	}
}

// A beat between the scan and the change wins; a re-registration after a deregistration
// is a fresh instance. Both are exercised by changing the store between scan and apply.
func TestExpiryRechecksUnderTheWriteLock(t *testing.T) {
	s, clk := newTestStore(t)
	s.Register(svcA, inst("10.0.0.1", 1, "DEFAULT"))
	s.Register(svcA, inst("10.0.0.2", 1, "DEFAULT"))
	s.Register(svcA, inst("10.0.0.3", 1, "DEFAULT"))
	at := clk.Advance(31 * time.Second)
	now := int64(at.Sub(s.base))

	sh := s.shardOf(svcA)
	cands := s.scan(sh, now, nil)
	if len(cands) != 3 {
		t.Fatalf("scan found %d candidates, want 3", len(cands))
	}
	s.Beat(svcA, "10.0.0.1", 1, "DEFAULT")
	s.Deregister(svcA, "10.0.0.2", 1, "DEFAULT")
	s.Register(svcA, inst("10.0.0.2", 1, "DEFAULT"))
	applied := 0
	for _, c := range cands {
		if s.apply(sh, c, now) {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("%d changes applied, want only 10.0.0.3's", applied)
	}
	if got := len(s.Instances(svcA)); got != 2 {
		t.Fatalf("%d instances left, want 2", got)
	}
}

// Many goroutines register, beat, update, deregister and read while the real ticker
// expires what stops beating. Run with -race.
func TestConcurrentUseWithTicker(t *testing.T) {
	s := New(Config{
		Timing:          naming.Timing{HeartBeatInterval: time.Millisecond, HeartBeatTimeout: 20 * time.Millisecond, IPDeleteTimeout: 40 * time.Millisecond},
		CheckInterval:   time.Millisecond,
		EmptyServiceTTL: 10 * time.Millisecond,
		Logger:          quietLogger(),
	})
	var notified atomic.Int64
	s.OnChange(func(svc naming.ServiceKey) {
		notified.Add(1)
		_ = s.Instances(svc)
	})
	s.Start()
	defer s.Stop()

	const workers, ops = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				svc := naming.ServiceKey{Namespace: "public", Group: "G", Name: fmt.Sprintf("s%d", rng.IntN(5))}
				ip := fmt.Sprintf("10.0.%d.%d", w, rng.IntN(10))
				switch rng.IntN(7) {
				case 0, 1:
					s.Register(svc, inst(ip, 80, "DEFAULT"))
				case 2, 3:
					if got, ok := s.Beat(svc, ip, 80, "DEFAULT"); ok && !got.Healthy {
						t.Errorf("beat returned an unhealthy instance")
					}
				case 4:
					s.Deregister(svc, ip, 80, "DEFAULT")
				case 5:
					s.Update(svc, ip+"#80#DEFAULT", func(i *naming.Instance) { i.Weight = float64(rng.IntN(100)) })
				case 6:
					for _, i := range s.Instances(svc) {
						i.Metadata["x"] = "y"
					}
					s.Services("")
					s.HasService(svc)
					s.Counts()
				}
			}
		}()
	}
	wg.Wait()

	// With no more beats everything expires, then the empty services go.
	waitFor(t, 10*time.Second, "all instances and services to expire", func() bool {
		svc, n := s.Counts()
		return svc == 0 && n == 0
	})
	if len(s.Services("")) != 0 {
		t.Fatalf("Services after expiry = %v", s.Services(""))
	}
	if notified.Load() == 0 {
		t.Fatal("no OnChange calls")
	}
}

// The production path: the real clock and ticker.
func TestExpiryWithRealClock(t *testing.T) {
	s := New(Config{
		Timing:          naming.Timing{HeartBeatInterval: 50 * time.Millisecond, HeartBeatTimeout: 100 * time.Millisecond, IPDeleteTimeout: 200 * time.Millisecond},
		CheckInterval:   20 * time.Millisecond,
		EmptyServiceTTL: 50 * time.Millisecond,
		Logger:          quietLogger(),
	})
	s.Start()
	defer s.Stop()

	start := time.Now()
	s.Register(svcA, inst("10.0.0.1", 8080, "DEFAULT"))
	const key = "10.0.0.1#8080#DEFAULT"

	waitFor(t, 5*time.Second, "the instance to turn unhealthy", func() bool {
		got, ok := s.Instance(svcA, key)
		return ok && !got.Healthy
	})
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("unhealthy after %v, before the 100ms timeout", d)
	}
	waitFor(t, 5*time.Second, "the instance to be removed", func() bool {
		_, ok := s.Instance(svcA, key)
		return !ok
	})
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("removed after %v, before the 200ms timeout", d)
	}
	waitFor(t, 5*time.Second, "the empty service to vanish", func() bool {
		svc, _ := s.Counts()
		return svc == 0
	})
}
