package distro

import (
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTestStore is a Store on a fake clock with Nacos' default timing and TTL.
func newTestStore(t testing.TB) (*Store, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	s := New(Config{
		Timing:          naming.DefaultTiming(),
		EmptyServiceTTL: 60 * time.Second,
		Clock:           clk,
		Logger:          quietLogger(),
	})
	return s, clk
}

// check runs the expiry check at the fake clock's current time.
func check(s *Store, clk *fakeClock) { s.checkExpiry(clk.Now()) }

var svcA = naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "a"}

func inst(ip string, port int, cluster string) *naming.Instance {
	return &naming.Instance{
		IP: ip, Port: port, ClusterName: cluster, Weight: 1,
		Healthy: true, Enabled: true, Ephemeral: true,
		Metadata: map[string]string{"k": "v"},
	}
}

// changeLog records OnChange calls.
type changeLog struct {
	mu    sync.Mutex
	calls []naming.ServiceKey
}

func watch(s *Store) *changeLog {
	l := &changeLog{}
	s.OnChange(func(svc naming.ServiceKey) {
		l.mu.Lock()
		l.calls = append(l.calls, svc)
		l.mu.Unlock()
	})
	return l
}

// take returns and forgets the calls so far.
func (l *changeLog) take() []naming.ServiceKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

// expectCalls fails unless exactly n calls, all for svc, happened since the last take.
func (l *changeLog) expectCalls(t *testing.T, what string, svc naming.ServiceKey, n int) {
	t.Helper()
	got := l.take()
	if len(got) != n {
		t.Fatalf("%s: %d OnChange calls, want %d (%v)", what, len(got), n, got)
	}
	for _, k := range got {
		if k != svc {
			t.Fatalf("%s: OnChange for %v, want %v", what, k, svc)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

func mustInstance(t *testing.T, s *Store, svc naming.ServiceKey, key string) *naming.Instance {
	t.Helper()
	got, ok := s.Instance(svc, key)
	if !ok {
		t.Fatalf("instance %s of %v missing", key, svc)
	}
	return got
}

func ipOf(i int) string {
	return "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
}
