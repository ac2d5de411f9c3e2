package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNacosV2SDKClusterFailover: a nacos-sdk-go v2 client (a child process) given all
// three nodes of a cluster registers an ephemeral instance and subscribes to its
// service. Every node lists the instance (Distro). When the node holding the client's
// connection is killed with -9, the client reconnects to a survivor and its redo
// registers the instance and the subscription again; meanwhile the survivors keep
// listing it (they hold it for the grace period, then the new connection owns it), and a
// change made afterwards through a survivor is pushed to the client.
func TestNacosV2SDKClusterFailover(t *testing.T) {
	c := StartCluster(t, 3)
	const svc, ip, port = "failover", "127.0.0.41", 1
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, strconv.Itoa(s.Port))
	}
	start := time.Now()
	child := startNacosV2Child(t, c.Nodes[0], svc, ip, port,
		"-server-ports", strings.Join(addrs, ","), "-subscribe", svc)
	child.awaitCallback(t, time.Time{}, 5*time.Second, ip+":1")
	c.waitHas(svc, map[int]bool{port: true}, 5*time.Second)
	t.Logf("registered, subscribed and listed on every node in %v", time.Since(start).Round(time.Millisecond))

	// The node holding the connection: the only one with a registered gRPC connection
	// and a subscription, and the one responsible for the instance in Distro.
	var owner *Server
	eventually(t, 5*time.Second, func() error {
		owner = nil
		for _, s := range c.Nodes {
			conns, subs := metric(t, s, "roster_grpc_registered_connections"), metric(t, s, "roster_grpc_subscriptions")
			switch {
			case conns == 1 && subs == 1 && owner == nil:
				owner = s
			case conns != 0 || subs != 0:
				return fmt.Errorf("%s: %v connections, %v subscriptions", s.NodeID, conns, subs)
			}
		}
		if owner == nil {
			return fmt.Errorf("no node holds the client's connection")
		}
		return nil
	})
	if r := c.responsibleFor(svc, port); r != owner {
		t.Fatalf("%s holds the connection but %s is responsible for the instance", owner.NodeID, r.NodeID)
	}
	var survivors []*Server
	for _, s := range c.Nodes {
		if s != owner {
			survivors = append(survivors, s)
		}
	}
	t.Logf("connection held by %s", owner.NodeID)

	// Sample the survivors' lists every 200 ms from before the kill until past the grace
	// period, recording each one's longest stretch without the instance.
	w := watchAbsence(survivors, svc, port)
	owner.kill9()
	killed := time.Now()

	// The client reconnects to a survivor and its redo registers the instance and the
	// subscription there.
	var next *Server
	eventually(t, 15*time.Second, func() error {
		for _, s := range survivors {
			if metric(t, s, "roster_grpc_registered_connections") == 1 && metric(t, s, "roster_grpc_subscriptions") == 1 {
				next = s
				return nil
			}
		}
		return fmt.Errorf("the client has not reconnected (with its subscription) to a survivor")
	})
	t.Logf("client reconnected to %s %v after the kill", next.NodeID, time.Since(killed).Round(time.Millisecond))
	eventually(t, 10*time.Second, func() error {
		if r := c.responsibleFor(svc, port); r != next {
			return fmt.Errorf("%s is responsible for the instance, not %s", r.NodeID, next.NodeID)
		}
		return nil
	})
	t.Logf("%s owns the instance %v after the kill", next.NodeID, time.Since(killed).Round(time.Millisecond))

	// Keep sampling until the grace period of the dead node's connection is well over: if
	// the redo had not taken, the instance would be gone by now.
	if d := ipDeleteTimeout + 2*time.Second - time.Since(killed); d > 0 {
		time.Sleep(d)
	}
	samples, gaps := w.stop()
	for _, s := range survivors {
		t.Logf("%s: %d samples, longest absence %v", s.NodeID, samples[s.NodeID], gaps[s.NodeID])
		if samples[s.NodeID] < 20 {
			t.Errorf("%s answered only %d list requests", s.NodeID, samples[s.NodeID])
		}
		// Ideally never absent; a short window while ownership moves is tolerated.
		if gaps[s.NodeID] > time.Second {
			t.Errorf("%s did not list the instance for %v", s.NodeID, gaps[s.NodeID])
		}
	}
	c.waitHas(svc, map[int]bool{port: true}, 2*time.Second)

	// A change through the other survivor reaches the client's subscription.
	other := survivors[0]
	if other == next {
		other = survivors[1]
	}
	change := time.Now()
	form := url.Values{"serviceName": {svc}, "ip": {"127.0.0.42"}, "port": {"2"}, "ephemeral": {"true"}}
	resp, err := fastHTTP.PostForm(other.URL+"/nacos/v1/ns/instance", form)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(resp); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("register through %s: %d %s", other.NodeID, resp.StatusCode, body)
	}
	cb := child.awaitCallback(t, change, 2*time.Second, "127.0.0.41:1,127.0.0.42:2")
	t.Logf("change through %s pushed by %s in %v; test took %v", other.NodeID, next.NodeID,
		cb.at.Sub(change).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// absenceWatch samples nodes' instance lists every 200 ms.
type absenceWatch struct {
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples map[string]int           // answered list requests per node
	gaps    map[string]time.Duration // longest stretch without the instance per node
}

func watchAbsence(nodes []*Server, svc string, port int) *absenceWatch {
	w := &absenceWatch{done: make(chan struct{}), samples: map[string]int{}, gaps: map[string]time.Duration{}}
	for _, s := range nodes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var since time.Time // first sample of the current absence
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				got, err := ports(s, svc, false)
				now := time.Now()
				if err == nil {
					w.mu.Lock()
					w.samples[s.NodeID]++
					switch {
					case !got[port] && since.IsZero():
						since = now
					case got[port] && !since.IsZero():
						// Absent from `since` until now: at most one interval longer.
						w.gaps[s.NodeID] = max(w.gaps[s.NodeID], now.Sub(since))
						since = time.Time{}
					}
					if !since.IsZero() {
						w.gaps[s.NodeID] = max(w.gaps[s.NodeID], now.Sub(since)+200*time.Millisecond)
					}
					w.mu.Unlock()
				}
				select {
				case <-w.done:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return w
}

func (w *absenceWatch) stop() (samples map[string]int, gaps map[string]time.Duration) {
	close(w.done)
	w.wg.Wait()
	return w.samples, w.gaps
}
