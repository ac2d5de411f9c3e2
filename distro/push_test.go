package distro

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPushToAStalledMemberDoesNotHoldUpTheOthers: while one member accepts pushes but
// never answers (SIGSTOPped), the others still get every batch at once. They used to
// wait for that member's timeout (5 s) per batch, so a member that took a client over
// by its beats told the others only seconds later, and one of them expired its own copy
// of the still-beating client meanwhile (R5: an instance removed on n2 that it had not
// adopted, while n1 was paused).
func TestPushToAStalledMemberDoesNotHoldUpTheOthers(t *testing.T) {
	release := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer stalled.Close()

	var mu sync.Mutex
	var got []string
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathSync {
			b, err := DecodeSyncBatch(r.Body)
			if err == nil {
				mu.Lock()
				for _, g := range b.Services {
					got = append(got, g.Service.Name)
				}
				mu.Unlock()
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer live.Close()
	received := func(name string) bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(got, ","), name)
	}

	s, _ := newTestStore(t)
	peers := []Peer{
		{ID: "n1", HTTPAddr: strings.TrimPrefix(stalled.URL, "http://")},
		{ID: "n2"},
		{ID: "n3", HTTPAddr: strings.TrimPrefix(live.URL, "http://")},
	}
	r := NewReplicator(s, ReplicatorConfig{
		Self: "n2", Peers: func() []Peer { return peers },
		PushDelay: 10 * time.Millisecond, VerifyInterval: time.Hour, PingInterval: time.Hour,
		Logger: quietLogger(),
	})
	r.Start()
	defer r.Stop()
	defer close(release)

	s.Register(svcKey("first"), inst("10.0.0.1", 80, "DEFAULT"))
	waitFor(t, 2*time.Second, "the first push at n3", func() bool { return received("first") })
	// The first push to n1 hangs now; the next change must still reach n3 at once.
	s.Register(svcKey("taken-over"), inst("10.0.0.2", 80, "DEFAULT"))
	waitFor(t, 2*time.Second, "the next push at n3 while n1 does not answer", func() bool { return received("taken-over") })
}

// TestAFailedPushIsSentAgain: a push the member did not take (it was paused and the
// request timed out, or it refused) is sent again, as the services are then, without
// a further change. It used to be dropped until the next checksum round, so a member
// resuming from a pause did not learn a takeover made meanwhile and its copy aged.
func TestAFailedPushIsSentAgain(t *testing.T) {
	var mu sync.Mutex
	attempts, taken := 0, 0
	member := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathSync {
			w.WriteHeader(http.StatusOK)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if attempts == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if b, err := DecodeSyncBatch(r.Body); err == nil && len(b.Services) == 1 && len(b.Services[0].Entries) == 1 {
			taken++
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer member.Close()

	s, _ := newTestStore(t)
	peers := []Peer{{ID: "n1", HTTPAddr: strings.TrimPrefix(member.URL, "http://")}, {ID: "n2"}}
	r := NewReplicator(s, ReplicatorConfig{
		Self: "n2", Peers: func() []Peer { return peers },
		PushDelay: 10 * time.Millisecond, VerifyInterval: time.Hour, PingInterval: time.Hour,
		Logger: quietLogger(),
	})
	r.Start()
	defer r.Stop()

	s.Register(svcKey("retried"), inst("10.0.0.1", 80, "DEFAULT"))
	waitFor(t, 5*time.Second, "the push taken on a second attempt", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return taken == 1
	})
}
