package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestFollowerCutOffFromLeaderAnswersInTime (chaos R3): a follower whose HTTP link to
// the leader holds bytes (a partition that neither refuses nor resets, so nothing fails
// fast) must answer a consistent read and a persistent write it sends on with 503
// within ForwardTimeout, not keep the client until the client gives up. Raft is left
// alone, so the follower keeps hearing the leader's heartbeats and never stops
// believing in it: only the forward's own bound can end the wait.
func TestFollowerCutOffFromLeaderAnswersInTime(t *testing.T) {
	const n = 3
	const applyTimeout = time.Second
	const forwardTimeout = 2 * time.Second
	const margin = 2 * time.Second // scheduling on a loaded machine
	// links[i][j] carries what node i dials of node j's HTTP port.
	links := make([][]*delayLink, n)
	for i := range links {
		links[i] = make([]*delayLink, n)
	}
	nodes := servertest.StartCluster(t, n, func(i int, cfg *server.Config) {
		cfg.ApplyTimeout = applyTimeout
		cfg.ForwardTimeout = forwardTimeout
		cfg.Test.PeerProxy = map[string]string{}
		for j, addr := range cfg.Join {
			if j != i {
				links[i][j] = startDelayLink(t, addr, 0)
				cfg.Test.PeerProxy[addr] = links[i][j].addr()
			}
		}
	})
	heal := func() {
		for _, row := range links {
			for _, l := range row {
				if l != nil {
					l.held.Store(false)
				}
			}
		}
	}
	t.Cleanup(heal) // before the nodes close

	leader, follower := -1, -1
	for deadline := time.Now().Add(10 * time.Second); leader < 0; time.Sleep(10 * time.Millisecond) {
		for i, srv := range nodes {
			if srv.IsLeader() {
				leader = i
			}
		}
		if leader < 0 && time.Now().After(deadline) {
			t.Fatal("no leader within 10 s")
		}
	}
	follower = (leader + 1) % n
	base := "http://" + nodes[follower].HTTPAddr() + "/nacos/v1/ns/instance"
	hc := &http.Client{Timeout: 4 * forwardTimeout}
	call := func(method, u string) (int, string, time.Duration, error) {
		t0 := time.Now()
		req, err := http.NewRequest(method, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", time.Since(t0), err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), time.Since(t0), nil
	}
	// Through the healthy link both are answered, so what follows is the fault's doing.
	write := base + "?serviceName=held&ip=10.0.0.1&port=%d&ephemeral=false"
	if code, body, _, err := call(http.MethodPost, strings.Replace(write, "%d", "8080", 1)); err != nil || code != http.StatusOK {
		t.Fatalf("write through the follower before the fault: %d %q %v", code, body, err)
	}
	if code, body, _, err := call(http.MethodGet, base+"/list?serviceName=held&consistent=true"); err != nil || code != http.StatusOK {
		t.Fatalf("consistent read through the follower before the fault: %d %q %v", code, body, err)
	}

	links[follower][leader].held.Store(true)
	for _, c := range []struct{ name, method, url string }{
		{"consistent read", http.MethodGet, base + "/list?serviceName=held&consistent=true"},
		{"persistent write", http.MethodPost, strings.Replace(write, "%d", "8081", 1)},
	} {
		code, body, took, err := call(c.method, c.url)
		if err != nil {
			t.Fatalf("%s through a follower cut off from the leader: no answer within %v (%v); want 503 within the forward timeout %v", c.name, took.Round(time.Millisecond), err, forwardTimeout)
		}
		if code != http.StatusServiceUnavailable {
			t.Errorf("%s through a follower cut off from the leader: %d %q, want 503", c.name, code, body)
		}
		if took > forwardTimeout+margin {
			t.Errorf("%s answered after %v, want within the forward timeout %v (+%v)", c.name, took.Round(time.Millisecond), forwardTimeout, margin)
		}
		t.Logf("%s: %d after %v: %.120s", c.name, code, took.Round(time.Millisecond), body)
	}
}
