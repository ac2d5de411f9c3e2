package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// Active health checks end to end inside one process: real nodes, real listeners for
// the instances, the prober's flips through Raft, health read back from the registry.

// fastChecks makes rounds short so that a flip takes well under a second.
func fastChecks(cfg *server.Config) {
	cfg.HealthCheck.Interval = 40 * time.Millisecond
	cfg.HealthCheck.Jitter = 20 * time.Millisecond
	cfg.HealthCheck.Timeout = 300 * time.Millisecond
	cfg.HealthCheck.CheckTimes = 2
}

// instanceListener is a TCP listener standing for an instance's process; it can stop
// and start again on the same port.
type instanceListener struct {
	t    *testing.T
	addr string
	ln   net.Listener
}

func listen(t *testing.T, addr string) *instanceListener {
	t.Helper()
	l := &instanceListener{t: t, addr: addr}
	l.start()
	t.Cleanup(l.stop)
	return l
}

func (l *instanceListener) start() {
	l.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for { // the port of a listener just closed may linger a moment
		if ln, err = net.Listen("tcp", l.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	l.ln, l.addr = ln, ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

func (l *instanceListener) stop() {
	if l.ln != nil {
		_ = l.ln.Close()
		l.ln = nil
	}
}

func (l *instanceListener) port() int {
	_, p, _ := net.SplitHostPort(l.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// waitFor waits for cond, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually(t, timeout, func() (bool, string) { return cond(), "waiting for " + what })
}

func healthOf(t *testing.T, srv *server.Server, svc naming.ServiceKey, ip string, port int, cluster string) bool {
	t.Helper()
	in, err := srv.Registry().Instance(context.Background(), svc, ip, port, cluster)
	if err != nil {
		t.Fatalf("instance %s:%d: %v", ip, port, err)
	}
	return in.Healthy
}

func TestTCPCheckFlipsAPersistentInstance(t *testing.T) {
	srv := servertest.StartNode(t, fastChecks)
	ctx := context.Background()
	alive := listen(t, "127.0.0.1:0")
	dying := listen(t, "127.0.0.1:0")
	svc := key("public", "tcp")
	for _, l := range []*instanceListener{alive, dying} {
		if err := srv.Registry().Register(ctx, svc, inst("127.0.0.1", l.port(), false)); err != nil {
			t.Fatal(err)
		}
	}
	dying.stop()
	waitFor(t, 10*time.Second, "the stopped instance to turn unhealthy", func() bool {
		return !healthOf(t, srv, svc, "127.0.0.1", dying.port(), naming.DefaultCluster)
	})
	if !healthOf(t, srv, svc, "127.0.0.1", alive.port(), naming.DefaultCluster) {
		t.Fatal("the instance whose listener runs turned unhealthy")
	}
	// The list shows it (two instances, one healthy: above the protect threshold).
	status, body := v1Call(t, srv, v1Request{"GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"tcp"}, "healthyOnly": {"true"}}})
	if status != http.StatusOK || !containsPort(body, alive.port()) || containsPort(body, dying.port()) {
		t.Fatalf("healthy list = %d %s", status, body)
	}
	dying.start()
	waitFor(t, 10*time.Second, "the restarted instance to turn healthy again", func() bool {
		return healthOf(t, srv, svc, "127.0.0.1", dying.port(), naming.DefaultCluster)
	})
}

func containsPort(body string, port int) bool {
	return strings.Contains(body, `"port":`+strconv.Itoa(port)+`,`)
}

func TestHTTPCheckFollowsTheExpectedCode(t *testing.T) {
	srv := servertest.StartNode(t, fastChecks)
	var status atomic.Int32
	status.Store(http.StatusOK)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(app.Close)
	host, portStr, _ := net.SplitHostPort(app.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	// A second, healthy instance keeps the service above the protect threshold.
	other := listen(t, "127.0.0.1:0")
	for _, p := range []int{port, other.port()} {
		if code, text := v1Call(t, srv, v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"web"}, "ip": {host},
			"port": {strconv.Itoa(p)}, "ephemeral": {"false"}, "clusterName": {"api"}}}); code != 200 {
			t.Fatalf("register: %d %s", code, text)
		}
	}
	if code, text := v1Call(t, srv, v1Request{"PUT", "/nacos/v1/ns/cluster", url.Values{"serviceName": {"web"}, "clusterName": {"api"},
		"checkPort": {"80"}, "useInstancePort4Check": {"true"},
		"healthChecker": {`{"type":"HTTP","path":"/health","headers":"","expectedResponseCode":200}`}}}); code != 200 {
		t.Fatalf("PUT /cluster: %d %s", code, text)
	}
	svc := key("public", "web")
	status.Store(http.StatusInternalServerError)
	waitFor(t, 10*time.Second, "a 500 to turn the instance unhealthy", func() bool { return !healthOf(t, srv, svc, host, port, "api") })
	status.Store(http.StatusOK)
	waitFor(t, 10*time.Second, "a 200 to turn it healthy again", func() bool { return healthOf(t, srv, svc, host, port, "api") })
}

func TestNoneClusterKeepsManualHealth(t *testing.T) {
	srv := servertest.StartNode(t, fastChecks)
	l := listen(t, "127.0.0.1:0")
	l.stop() // nothing answers: a probe would fail
	params := url.Values{"serviceName": {"manual"}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(l.port())}, "ephemeral": {"false"}}
	if code, text := v1Call(t, srv, v1Request{"POST", "/nacos/v1/ns/instance", params}); code != 200 {
		t.Fatalf("register: %d %s", code, text)
	}
	// The default TCP checker refuses manual health.
	health := url.Values{"serviceName": {"manual"}, "ip": {"127.0.0.1"}, "port": {strconv.Itoa(l.port())}, "healthy": {"true"}}
	if code, _ := v1Call(t, srv, v1Request{"PUT", "/nacos/v1/ns/health/instance", health}); code != http.StatusBadRequest {
		t.Fatalf("manual health under TCP = %d, want 400", code)
	}
	if code, text := v1Call(t, srv, v1Request{"PUT", "/nacos/v1/ns/cluster", url.Values{"serviceName": {"manual"}, "clusterName": {"DEFAULT"},
		"checkPort": {"80"}, "useInstancePort4Check": {"true"}, "healthChecker": {`{"type":"NONE"}`}}}); code != 200 {
		t.Fatalf("PUT /cluster: %d %s", code, text)
	}
	if code, text := v1Call(t, srv, v1Request{"PUT", "/nacos/v1/ns/health/instance", health}); code != 200 {
		t.Fatalf("manual health under NONE = %d %s", code, text)
	}
	// Twenty rounds later the dead port is still healthy: NONE is never probed.
	start := roundsRun(t, srv)
	waitFor(t, 20*time.Second, "twenty health-check rounds", func() bool { return roundsRun(t, srv) >= start+20 })
	if !healthOf(t, srv, key("public", "manual"), "127.0.0.1", l.port(), naming.DefaultCluster) {
		t.Fatal("a NONE cluster's instance was flipped by a probe")
	}
}

// TestProbesMoveWhenAMemberLeaves: in a 3-node cluster every instance is probed by one
// live member; when a member stops, the survivors take its share and its instances
// still turn unhealthy when their listeners stop.
func TestProbesMoveWhenAMemberLeaves(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, func(_ int, cfg *server.Config) { fastChecks(cfg) })
	ctx := context.Background()
	svc := key("public", "spread")
	var ls []*instanceListener
	for i := 0; i < 30; i++ {
		l := listen(t, "127.0.0.1:0")
		ls = append(ls, l)
		// A register is idempotent: one that met a leadership change (fast elections on a
		// busy machine) is sent again.
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if err = nodes[i%3].Registry().Register(ctx, svc, inst("127.0.0.1", l.port(), false)); err == nil {
				break
			}
			t.Logf("register %d, attempt %d: %v", i, attempt+1, err)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[2].Close(); err != nil {
		t.Logf("close n3: %v", err)
	}
	survivor := nodes[0]
	// Stop a third of the listeners: whichever member probed them, the survivors must
	// see them fail once they hold the departed member's share.
	for i := 0; i < 30; i += 3 {
		ls[i].stop()
	}
	waitFor(t, 30*time.Second, "every stopped instance to turn unhealthy on the survivors", func() bool {
		for i := 0; i < 30; i++ {
			want := i%3 != 0
			if healthOf(t, survivor, svc, "127.0.0.1", ls[i].port(), naming.DefaultCluster) != want {
				return false
			}
		}
		return true
	})
}

// roundsRun is the node's roster_healthcheck_rounds_total.
func roundsRun(t *testing.T, srv *server.Server) int {
	t.Helper()
	_, body := v1Call(t, srv, v1Request{"GET", "/metrics", nil})
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "roster_healthcheck_rounds_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("rounds metric %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatal("no roster_healthcheck_rounds_total in /metrics")
	return 0
}
