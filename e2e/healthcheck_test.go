package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	model2 "github.com/nacos-group/nacos-sdk-go/v2/model"
	vo2 "github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/roster-registry/roster/healthcheck"
	"github.com/roster-registry/roster/naming"
)

// Active health checks of persistent instances against real roster processes. The
// instances are real sockets the test opens and closes (TCP listeners, HTTP servers,
// grpc.health servers), all on 127.0.0.0/8; health is read back through
// /nacos/v1/ns/instance/list on every node and through a real nacos-sdk-go v2
// subscriber's pushes.

// hcTiming is the prober's timing a test gives its servers.
type hcTiming struct {
	interval, jitter, timeout time.Duration
	times                     int
}

func (h hcTiming) flags() []string {
	return []string{
		"--health-check-interval", h.interval.String(),
		"--health-check-jitter", h.jitter.String(),
		"--health-check-timeout", h.timeout.String(),
		"--health-check-times", strconv.Itoa(h.times),
	}
}

// round is the longest pause between two rounds: the interval plus all of the jitter.
func (h hcTiming) round() time.Duration { return h.interval + h.jitter }

// flipBound is interval × (checkTimes + 2), with the interval at its longest (plus the
// jitter and a probe that runs into its timeout): the bound for a flip once the
// prober that owns the instance is probing it.
func (h hcTiming) flipBound() time.Duration {
	return time.Duration(h.times+2) * (h.round() + h.timeout)
}

// minFlip is the least time a flip can take after the change: checkTimes results in a
// row come from checkTimes rounds, which start at least an interval apart.
func (h hcTiming) minFlip() time.Duration { return time.Duration(h.times-1) * h.interval }

// observeSlack covers what lies between the prober's flip and the test seeing it: the
// Raft commit, its replication to the node read, and the test's 50 ms poll, on a busy
// 2-core machine running -race binaries.
const observeSlack = time.Second

// Distro's liveness (distro.ReplicatorConfig defaults; not flags): every member pings
// the others every second and takes one unheard of for 3 s as dead. The prober shares
// out the instances over these live members.
const (
	distroPing      = time.Second
	distroDeadAfter = 3 * time.Second
)

// probeListener is a TCP listener standing for an instance's process: it can stop and
// start again on the same address, and counts the connections it accepted. While
// stopped it keeps the port bound without listening, so that a connection to it is
// refused and no other program on this shared machine can take the port meanwhile
// (one that did would answer the probes, and the instance would turn healthy again).
type probeListener struct {
	t        *testing.T
	addr     string
	mu       sync.Mutex
	ln       net.Listener
	holder   int // the socket holding the port while stopped, -1 when none
	accepted atomic.Int64
}

func newProbeListener(t *testing.T, ip string) *probeListener {
	t.Helper()
	l := &probeListener{t: t, addr: net.JoinHostPort(ip, "0"), holder: -1}
	l.start()
	t.Cleanup(func() {
		l.stop()
		l.release()
	})
	return l
}

func (l *probeListener) start() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
	var ln net.Listener
	var err error
	// The port may be in use a moment longer (a connection the kernel still holds).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ln, err = net.Listen("tcp", l.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("listen %s again: %v", l.addr, err)
	}
	l.ln, l.addr = ln, ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			_ = c.Close()
		}
	}()
}

// stop closes the listener and holds its port with a socket bound but not listening.
func (l *probeListener) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln == nil {
		return
	}
	_ = l.ln.Close()
	l.ln = nil
	fd, err := holdPort(l.addr)
	if err != nil {
		l.t.Errorf("hold the port of the stopped listener %s: %v", l.addr, err)
		return
	}
	l.holder = fd
}

func (l *probeListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
}

func (l *probeListener) releaseLocked() {
	if l.holder >= 0 {
		_ = syscall.Close(l.holder)
		l.holder = -1
	}
}

// holdPort binds a TCP socket to addr (an IPv4 ip:port) without listening on it: a
// SYN to it is answered with a reset, and the kernel gives the port to no one else.
func holdPort(addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return -1, fmt.Errorf("not an IPv4 address and port: %q", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// As net.Listen sets it, so that the bind succeeds beside the closed listener's
	// connections the kernel may still hold.
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *probeListener) ip() string {
	h, _, _ := net.SplitHostPort(l.addr)
	return h
}

func (l *probeListener) port() int {
	_, p, _ := net.SplitHostPort(l.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// v1Do sends a Nacos v1 request: form as the query of a GET, else as a form body.
func v1Do(s *Server, method, path string, form url.Values) (int, string, error) {
	u := s.URL + path
	var body io.Reader
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := fastHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, readAll(resp), nil
}

// registerPersistent registers ip:port in svc (DEFAULT cluster) over HTTP v1.
func registerPersistent(t *testing.T, s *Server, svc, ip string, port int) {
	t.Helper()
	code, body, err := v1Do(s, http.MethodPost, "/nacos/v1/ns/instance", url.Values{"serviceName": {svc}, "ip": {ip},
		"port": {strconv.Itoa(port)}, "ephemeral": {"false"}})
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("register %s %s:%d: %d %q %v", svc, ip, port, code, body, err)
	}
}

// setChecker sets the DEFAULT cluster's checker of svc (PUT /nacos/v1/ns/cluster),
// probing each instance's own port.
func setChecker(t *testing.T, s *Server, svc, checker string) {
	t.Helper()
	code, body, err := v1Do(s, http.MethodPut, "/nacos/v1/ns/cluster", url.Values{"serviceName": {svc}, "clusterName": {"DEFAULT"},
		"checkPort": {"80"}, "useInstancePort4Check": {"true"}, "healthChecker": {checker}})
	if err != nil || code != 200 {
		t.Fatalf("PUT /cluster %s %s: %d %q %v", svc, checker, code, body, err)
	}
}

// healthList is instance/list of svc on node s: the health of each ip:port.
func healthList(s *Server, svc string) (map[string]bool, error) {
	code, body, err := v1Do(s, http.MethodGet, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {svc}})
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("list %s on %s: %d %s", svc, s.NodeID, code, body)
	}
	var info struct {
		Hosts []struct {
			IP      string `json:"ip"`
			Port    int    `json:"port"`
			Healthy bool   `json:"healthy"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(info.Hosts))
	for _, h := range info.Hosts {
		out[net.JoinHostPort(h.IP, strconv.Itoa(h.Port))] = h.Healthy
	}
	return out, nil
}

// hostport is the key healthList and healthOf2 use.
func hostport(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// healthOf2 is the health of every host of a v2 callback, by ip:port.
func healthOf2(hosts []model2.Instance) map[string]bool {
	out := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		out[hostport(h.Ip, int(h.Port))] = h.Healthy
	}
	return out
}

// sameHealth reports whether got lists exactly the hosts of want, each with its health.
func sameHealth(got, want map[string]bool) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			return false
		}
	}
	return true
}

// readMetric reads one sample of node s's /metrics, labels included in name as
// Prometheus prints them; found is false when it is absent. It does not fail the test,
// so a watching goroutine may call it.
func readMetric(s *Server, name string) (v float64, found bool, err error) {
	resp, err := fastHTTP.Get(s.URL + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil, err
		}
	}
	return 0, false, sc.Err()
}

// metricOr0 is a sample of /metrics, labels included in name, 0 when absent (a
// counter vector shows a label value only once it was counted).
func metricOr0(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	if v := metric(t, s, name); v >= 0 {
		return v
	}
	return 0
}

// healthCase is one service of TestHealthCheckSingleNode: an instance whose health the
// test changes and a companion that stays healthy, so that the protect threshold (0:
// only a service with no healthy instance is shown all healthy) never hides a flip.
type healthCase struct {
	name    string
	checker string // "" keeps the default TCP checker
	target  int    // the port of the instance whose health changes
	steady  int    // the port of the always-healthy companion
	steps   []healthStep
}

type healthStep struct {
	what    string
	apply   func()
	healthy bool // the target's health after the step
}

// TestHealthCheckSingleNode: one node with fast rounds (100 ms + up to 50 ms, 2 results
// in a row, 300 ms probe timeout); for each checker type a persistent instance whose
// socket the test controls. A stopped TCP listener, an HTTP server answering 500, the
// wrong code or nothing within the timeout, and a grpc.health server NOT_SERVING each
// turn the instance unhealthy in instance/list and in a nacos-sdk-go v2 subscriber's
// callback, within interval × (checkTimes + 2) (+ the commit and the poll) and not
// before checkTimes rounds; the TCP listener started again on the same port, the
// expected HTTP code and SERVING turn it healthy again, seen the same ways.
func TestHealthCheckSingleNode(t *testing.T) {
	timing := hcTiming{interval: 100 * time.Millisecond, jitter: 50 * time.Millisecond, timeout: 300 * time.Millisecond, times: 2}
	s := StartServerWith(t, timing.flags()...)
	subscriber := newNacosV2Client(t, s, "")

	// TCP: a listener the test stops and starts again on the same port.
	tcpTarget, tcpSteady := newProbeListener(t, "127.0.0.1"), newProbeListener(t, "127.0.0.1")

	// HTTP: /health answers the code in mode; the checker expects 204, so a 200 is
	// the wrong code.
	var mode atomic.Value
	mode.Store("ok")
	httpTarget := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		switch mode.Load() {
		case "ok":
			w.WriteHeader(http.StatusNoContent)
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
		case "200":
			w.WriteHeader(http.StatusOK)
		case "slow": // answers the right code, but after the probe's timeout
			select {
			case <-r.Context().Done():
			case <-time.After(3 * timing.timeout):
			}
			w.WriteHeader(http.StatusNoContent)
		}
	})
	httpSteady := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

	// gRPC: grpc.health servers; the checker asks about one service name.
	const grpcService = "roster.e2e.Probe"
	grpcTarget, grpcHealth := serveGRPCHealth(t, grpcService)
	grpcSteady, _ := serveGRPCHealth(t, grpcService)

	setMode := func(m string) func() { return func() { mode.Store(m) } }
	setGRPC := func(st healthpb.HealthCheckResponse_ServingStatus) func() {
		return func() { grpcHealth.SetServingStatus(grpcService, st) }
	}
	cases := []healthCase{
		{name: "hc-tcp", target: tcpTarget.port(), steady: tcpSteady.port(), steps: []healthStep{
			{"the listener stopped", tcpTarget.stop, false},
			{"the listener started again on the same port", tcpTarget.start, true},
		}},
		{name: "hc-http", checker: `{"type":"HTTP","path":"/health","headers":"User-Agent:roster-e2e","expectedResponseCode":204}`,
			target: httpTarget, steady: httpSteady, steps: []healthStep{
				{"HTTP 500", setMode("500"), false},
				{"the expected code (204)", setMode("ok"), true},
				{"HTTP 200 where 204 is expected", setMode("200"), false},
				{"the expected code again", setMode("ok"), true},
				{"no answer within the probe timeout", setMode("slow"), false},
				{"prompt answers again", setMode("ok"), true},
			}},
		{name: "hc-grpc", checker: `{"type":"GRPC","service":"` + grpcService + `"}`,
			target: grpcTarget, steady: grpcSteady, steps: []healthStep{
				{"NOT_SERVING", setGRPC(healthpb.HealthCheckResponse_NOT_SERVING), false},
				{"SERVING", setGRPC(healthpb.HealthCheckResponse_SERVING), true},
			}},
	}
	for _, hc := range cases {
		t.Run(hc.name, func(t *testing.T) {
			registerPersistent(t, s, hc.name, "127.0.0.1", hc.target)
			registerPersistent(t, s, hc.name, "127.0.0.1", hc.steady)
			if hc.checker != "" {
				setChecker(t, s, hc.name, hc.checker)
			}
			sub := newSub2()
			if err := subscriber.Subscribe(&vo2.SubscribeParam{ServiceName: hc.name, GroupName: naming.DefaultGroup, SubscribeCallback: sub.fn}); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			t.Cleanup(func() {
				_ = subscriber.Unsubscribe(&vo2.SubscribeParam{ServiceName: hc.name, GroupName: naming.DefaultGroup, SubscribeCallback: sub.fn})
			})
			target, steady := hostport("127.0.0.1", hc.target), hostport("127.0.0.1", hc.steady)
			want := map[string]bool{target: true, steady: true}
			waitHealth(t, s, hc.name, want, 10*time.Second)
			sub.await(t, time.Time{}, 10*time.Second, "both instances healthy", func(h []model2.Instance) bool { return sameHealth(healthOf2(h), want) })

			for _, step := range hc.steps {
				want := map[string]bool{target: step.healthy, steady: true}
				change := time.Now()
				step.apply()
				bound := timing.flipBound() + observeSlack
				listed := waitHealth(t, s, hc.name, want, bound)
				cb := sub.await(t, change, bound, fmt.Sprintf("%s healthy=%v", target, step.healthy),
					func(h []model2.Instance) bool { return sameHealth(healthOf2(h), want) })
				t.Logf("%s: healthy=%v listed after %v, pushed after %v (bound %v)", step.what, step.healthy,
					listed.Round(time.Millisecond), cb.at.Sub(change).Round(time.Millisecond), bound)
				if listed < timing.minFlip() {
					t.Fatalf("%s: health flipped after %v, before %d results in a row could have been seen (%v)",
						step.what, listed, timing.times, timing.minFlip())
				}
			}
		})
	}
}

// waitHealth waits until instance/list on s shows exactly want, and returns how long
// that took.
func waitHealth(t *testing.T, s *Server, svc string, want map[string]bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, func() error {
		got, err := healthList(s, svc)
		if err != nil {
			return err
		}
		if !sameHealth(got, want) {
			return fmt.Errorf("%s lists %v, want %v", svc, got, want)
		}
		return nil
	})
	return time.Since(start)
}

// serveHTTP runs an HTTP server on 127.0.0.1 and returns its port.
func serveHTTP(t *testing.T, h http.HandlerFunc) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// serveGRPCHealth runs a gRPC server with the standard health service on 127.0.0.1,
// service SERVING, and returns its port and the health server to change.
func serveGRPCHealth(t *testing.T, service string) (int, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return ln.Addr().(*net.TCPAddr).Port, hs
}

// TestHealthCheckOutsideCIDRsNeverDialed: a node allowed to probe 127.0.0.1/32 only
// never dials an instance at 127.0.0.2 or 127.0.0.3 (loopback addresses that never
// leave the machine), over many rounds: a listener on 127.0.0.2 sees no connection, and
// an instance on 127.0.0.3 with nothing listening, which a probe would turn unhealthy,
// stays healthy. roster_healthcheck_skipped_total{reason="cidr"} counts them, the debug
// log says so, and an instance inside the list is probed meanwhile (its listener counts
// the probes), which shows that rounds ran.
func TestHealthCheckOutsideCIDRsNeverDialed(t *testing.T) {
	timing := hcTiming{interval: 50 * time.Millisecond, jitter: 20 * time.Millisecond, timeout: 300 * time.Millisecond, times: 1}
	s := StartServerWith(t, append(timing.flags(), "--health-check-cidrs", "127.0.0.1/32")...)
	inside := newProbeListener(t, "127.0.0.1")
	outside := newProbeListener(t, "127.0.0.2")
	silent := newProbeListener(t, "127.0.0.3")
	silent.stop() // nothing answers there: a probe would fail at once
	const svc = "hc-cidr"
	for _, l := range []*probeListener{inside, outside, silent} {
		registerPersistent(t, s, svc, l.ip(), l.port())
	}
	const rounds = 40
	start := time.Now()
	eventually(t, 60*time.Second, func() error {
		if n := inside.accepted.Load(); n < rounds {
			return fmt.Errorf("the instance inside the list was probed %d times, want %d", n, rounds)
		}
		if n := metricOr0(t, s, `roster_healthcheck_skipped_total{reason="cidr"}`); n < 2*rounds {
			return fmt.Errorf("roster_healthcheck_skipped_total{reason=\"cidr\"} = %v, want >= %d", n, 2*rounds)
		}
		return nil
	})
	t.Logf("%d probes of the allowed instance and %v skips in %v", inside.accepted.Load(),
		metricOr0(t, s, `roster_healthcheck_skipped_total{reason="cidr"}`), time.Since(start).Round(time.Millisecond))
	if n := outside.accepted.Load(); n != 0 {
		t.Fatalf("the listener on 127.0.0.2, outside --health-check-cidrs, accepted %d connections", n)
	}
	got, err := healthList(s, svc)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{hostport(inside.ip(), inside.port()): true, hostport(outside.ip(), outside.port()): true,
		hostport(silent.ip(), silent.port()): true}
	if !sameHealth(got, want) {
		t.Fatalf("list = %v, want every instance healthy as registered %v", got, want)
	}
	if v := metricOr0(t, s, `roster_healthcheck_probes_total{type="tcp",result="failure"}`); v != 0 {
		t.Fatalf("%v failed probes: something outside the list was dialed", v)
	}
	logText, err := os.ReadFile(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*probeListener{outside, silent} {
		said := false
		for _, line := range strings.Split(string(logText), "\n") {
			if strings.Contains(line, "not probed") && strings.Contains(line, "reason=cidr") &&
				strings.Contains(line, "ip="+l.ip()+" ") {
				said = true
			}
		}
		if !said {
			t.Fatalf("no debug line says %s is not probed (reason=cidr)", l.ip())
		}
	}
}

// clusterInstance is one instance of TestHealthCheckClusterKill9.
type clusterInstance struct {
	svc   string
	l     *probeListener
	owner string // the member probing it while all three are live
	// stopped is set when the test stops its listener.
	stopped bool
}

func (ci *clusterInstance) key() string {
	return healthcheck.Target{Service: naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: ci.svc},
		Cluster: naming.DefaultCluster, IP: "127.0.0.1", Port: ci.l.port()}.Key()
}

// TestHealthCheckClusterKill9: 3 real nodes, 300 persistent instances over 300 loopback
// listeners in 6 services, registered through all three nodes. Which member probes
// which instance is computed here with the prober's own rendezvous hash
// (healthcheck.Owner over Target.Key) and checked against each member's
// roster_healthcheck_owned_targets. The Raft leader, which probes about a third, is
// killed -9; right after, 20 listeners of its share and 10 of the survivors' are
// stopped. The survivors notice the death by Distro's liveness (dead after 3 s without
// an answer to the 1 s pings) and take its share, as their owned_targets show; every
// stopped instance turns unhealthy on both survivors within interval × (checkTimes + 2)
// (+ the commit and the poll) of that (or of its stop, for the survivors' own), all of
// them within the liveness bound plus that of the kill, and no running instance is ever
// listed unhealthy. The killed member restarts on its data dir: for 20 rounds after it
// is ready (and caught up) all three nodes list the stopped ones unhealthy and the
// running ones healthy, it takes its share back, and no member records another flip.
func TestHealthCheckClusterKill9(t *testing.T) {
	timing := hcTiming{interval: 200 * time.Millisecond, jitter: 100 * time.Millisecond, timeout: 300 * time.Millisecond, times: 2}
	c := StartCluster(t, 3, timing.flags()...)
	const n, services = 300, 6
	all := make([]*clusterInstance, n)
	ids := []string{"n1", "n2", "n3"}
	for i := range all {
		all[i] = &clusterInstance{svc: fmt.Sprintf("hc-cluster-%d", i%services), l: newProbeListener(t, "127.0.0.1")}
		all[i].owner = healthcheck.Owner(all[i].key(), ids)
	}
	svcNames := make([]string, services)
	for i := range svcNames {
		svcNames[i] = fmt.Sprintf("hc-cluster-%d", i)
	}

	// Register through all three nodes, 16 at a time; a write that met a leadership
	// change on the busy machine is sent again (registration is idempotent).
	var wg sync.WaitGroup
	work := make(chan int)
	var regErr atomic.Pointer[error]
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var err error
				for attempt := 0; attempt < 20; attempt++ {
					var o outcome
					if o, err = putInstance(c.Nodes[i%3], all[i].svc, all[i].l.port()); o == acked {
						err = nil
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					regErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for i := range all {
		work <- i
	}
	close(work)
	wg.Wait()
	if e := regErr.Load(); e != nil {
		t.Fatalf("register: %v", *e)
	}
	wantAll := func() map[string]map[string]bool {
		out := map[string]map[string]bool{}
		for _, svc := range svcNames {
			out[svc] = map[string]bool{}
		}
		for _, ci := range all {
			out[ci.svc][hostport("127.0.0.1", ci.l.port())] = !ci.stopped
		}
		return out
	}
	// listedAs reports the first difference between what node s lists and want.
	listedAs := func(s *Server, want map[string]map[string]bool) error {
		for _, svc := range svcNames {
			got, err := healthList(s, svc)
			if err != nil {
				return err
			}
			if !sameHealth(got, want[svc]) {
				for hp, w := range want[svc] {
					if g, ok := got[hp]; !ok || g != w {
						return fmt.Errorf("%s lists %s %s healthy=%v (present %v), want healthy=%v", s.NodeID, svc, hp, g, ok, w)
					}
				}
				return fmt.Errorf("%s lists %d instances of %s, want %d", s.NodeID, len(got), svc, len(want[svc]))
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, func() error {
		for _, s := range c.Nodes {
			if err := listedAs(s, wantAll()); err != nil {
				return err
			}
		}
		return nil
	})

	// Each member probes the share the hash gives it.
	share := map[string]int{}
	for _, ci := range all {
		share[ci.owner]++
	}
	t.Logf("shares with all three live: %v", share)
	owned := func(s *Server) float64 { return metric(t, s, "roster_healthcheck_owned_targets") }
	eventually(t, 10*time.Second, func() error {
		for _, s := range c.Nodes {
			if got := owned(s); got != float64(share[s.NodeID]) {
				return fmt.Errorf("%s owns %v targets, the hash gives it %d", s.NodeID, got, share[s.NodeID])
			}
		}
		return nil
	})

	victim := c.Leader()
	var survivors []*Server
	var survivorIDs []string
	for _, s := range c.Nodes {
		if s != victim {
			survivors = append(survivors, s)
			survivorIDs = append(survivorIDs, s.NodeID)
		}
	}
	shareAfter := map[string]int{}
	for _, ci := range all {
		shareAfter[healthcheck.Owner(ci.key(), survivorIDs)]++
	}
	// The listeners to stop: 20 of the victim's share and 10 of the survivors'.
	var stopped, victims []*clusterInstance
	others := 0
	for _, ci := range all {
		switch {
		case ci.owner == victim.NodeID && len(victims) < 20:
			victims = append(victims, ci)
			stopped = append(stopped, ci)
		case ci.owner != victim.NodeID && others < 10:
			others++
			stopped = append(stopped, ci)
		}
	}
	if len(victims) < 20 {
		t.Fatalf("the leader %s probes only %d instances", victim.NodeID, share[victim.NodeID])
	}

	killed := time.Now()
	victim.kill9()
	for _, ci := range stopped {
		ci.l.stop()
		ci.stopped = true
	}
	stoppedAt := time.Now()
	t.Logf("killed the leader %s (probing %d), stopped %d listeners (%d of its share) %v later",
		victim.NodeID, share[victim.NodeID], len(stopped), len(victims), stoppedAt.Sub(killed).Round(time.Millisecond))

	// The survivors have taken the dead member's share over when each one's
	// owned_targets gauge (set at the start of every round) shows its share among two:
	// watched every 20 ms on a goroutine of its own, so that the time is sharp.
	noticedc := make(chan time.Time, 1)
	stopNotice := make(chan struct{})
	defer close(stopNotice)
	go func() {
		for {
			took := true
			for _, s := range survivors {
				if v, ok, err := readMetric(s, "roster_healthcheck_owned_targets"); err != nil || !ok || v != float64(shareAfter[s.NodeID]) {
					took = false
				}
			}
			if took {
				noticedc <- time.Now()
				return
			}
			select {
			case <-stopNotice:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	// Watch until every stopped instance is unhealthy on both survivors, noting when
	// each is first seen so; a running instance listed unhealthy fails the test.
	var noticed time.Time
	flippedAt := map[*clusterInstance]time.Time{}
	deadline := killed.Add(distroDeadAfter + 2*distroPing + timing.flipBound() + 30*time.Second)
	for len(flippedAt) < len(stopped) || noticed.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: survivors took the share over at %v; %d of %d stopped instances unhealthy on both",
				time.Since(killed), noticed, len(flippedAt), len(stopped))
		}
		select {
		case noticed = <-noticedc:
		default:
		}
		unhealthy := map[string]int{} // ip:port -> survivors listing it unhealthy
		for _, s := range survivors {
			for _, svc := range svcNames {
				got, err := healthList(s, svc)
				if err != nil {
					t.Logf("list on %s: %v", s.NodeID, err)
					continue
				}
				for hp, h := range got {
					if !h {
						unhealthy[hp]++
					}
				}
			}
		}
		now := time.Now()
		for _, ci := range all {
			hp := hostport("127.0.0.1", ci.l.port())
			switch {
			case !ci.stopped && unhealthy[hp] > 0:
				t.Fatalf("running instance %s (%s, probed by %s) listed unhealthy", hp, ci.svc, ci.owner)
			case ci.stopped && unhealthy[hp] == len(survivors) && flippedAt[ci].IsZero():
				flippedAt[ci] = now
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	noticeDelay := noticed.Sub(killed)
	livenessBound := distroDeadAfter + 2*distroPing + timing.round() + observeSlack
	t.Logf("survivors held the dead member's share %v after the kill (liveness bound %v)", noticeDelay.Round(time.Millisecond), livenessBound)
	if noticeDelay > livenessBound {
		t.Errorf("the survivors took the dead member's share %v after the kill, beyond the liveness bound %v", noticeDelay, livenessBound)
	}
	bound := timing.flipBound() + observeSlack
	var worstVictim, worstOther time.Duration
	for _, ci := range stopped {
		at := flippedAt[ci]
		from := stoppedAt
		if ci.owner == victim.NodeID {
			// Its new owner probes it from the round that took the share over.
			from = noticed
			worstVictim = max(worstVictim, at.Sub(from))
		} else {
			worstOther = max(worstOther, at.Sub(from))
		}
		if d := at.Sub(from); d > bound {
			t.Errorf("%s (%s, probed by %s) unhealthy on both survivors %v after its prober had it, beyond %v",
				hostport("127.0.0.1", ci.l.port()), ci.svc, ci.owner, d.Round(time.Millisecond), bound)
		}
		if d, total := at.Sub(killed), livenessBound+bound; d > total {
			t.Errorf("%s unhealthy %v after the kill, beyond the liveness bound plus the flip bound %v", hostport("127.0.0.1", ci.l.port()), d, total)
		}
	}
	t.Logf("flips seen on both survivors: worst %v after the takeover for the dead member's share, worst %v after the stop for the survivors' own (bound %v each)",
		worstVictim.Round(time.Millisecond), worstOther.Round(time.Millisecond), bound)

	flips := func(s *Server, healthy bool) float64 {
		return metricOr0(t, s, fmt.Sprintf(`roster_healthcheck_flips_total{healthy="%v"}`, healthy))
	}
	// A prober counts a flip once the commit is confirmed to it. One whose leader was
	// lost before confirming ("outcome unknown") may still have been committed: it is
	// counted as a flip error, and the retry finds the new revision and is refused.
	var toUnhealthy, flipErrors float64
	for _, s := range survivors {
		if v := flips(s, true); v != 0 {
			t.Errorf("%s recorded %v flips to healthy: no listener came back", s.NodeID, v)
		}
		toUnhealthy += flips(s, false)
		flipErrors += metricOr0(t, s, "roster_healthcheck_flip_errors_total")
	}
	t.Logf("the survivors recorded %v flips to unhealthy and %v flip errors for %d stopped listeners", toUnhealthy, flipErrors, len(stopped))
	if toUnhealthy > float64(len(stopped)) {
		t.Errorf("the survivors recorded %v flips to unhealthy for %d stopped listeners: an instance flipped twice", toUnhealthy, len(stopped))
	}
	if toUnhealthy+flipErrors < float64(len(stopped)) {
		t.Errorf("the survivors recorded %v flips and %v flip errors, fewer than the %d instances that turned unhealthy", toUnhealthy, flipErrors, len(stopped))
	}
	survivorFlips := map[string]float64{}
	for _, s := range survivors {
		survivorFlips[s.NodeID] = flips(s, false)
	}

	// The killed member comes back on its data dir. The survivors are watched from
	// before its start: a flip reversed or lost at any moment of the rejoin is seen.
	want := wantAll()
	watchErr := make(chan error, 1)
	stopWatch := make(chan struct{})
	go func() {
		defer close(watchErr)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, s := range survivors {
				if err := listedAs(s, want); err != nil {
					watchErr <- err
					return
				}
			}
		}
	}()
	victim.Start()
	ready := time.Now()
	eventually(t, 10*time.Second, func() error { return listedAs(victim, want) })
	t.Logf("restarted %s lists every flip %v after it was ready", victim.NodeID, time.Since(ready).Round(time.Millisecond))
	hold := 20 * timing.round()
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := listedAs(victim, want); err != nil {
			t.Fatalf("restarted member, %v after ready: %v", time.Since(ready).Round(time.Millisecond), err)
		}
	}
	close(stopWatch)
	if err := <-watchErr; err != nil {
		t.Fatalf("a survivor, during the restart: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if got := owned(victim); got != float64(share[victim.NodeID]) {
			return fmt.Errorf("restarted %s owns %v targets, want its share %d back", victim.NodeID, got, share[victim.NodeID])
		}
		return nil
	})
	if v := flips(victim, true) + flips(victim, false); v != 0 {
		t.Errorf("the restarted member recorded %v flips: it reversed or repeated what the survivors wrote", v)
	}
	for _, s := range survivors {
		if v := flips(s, false); v != survivorFlips[s.NodeID] || flips(s, true) != 0 {
			t.Errorf("%s recorded more flips during the restart: %v to unhealthy (was %v), %v to healthy",
				s.NodeID, v, survivorFlips[s.NodeID], flips(s, true))
		}
	}
	t.Logf("for %v after the restart all three list %d stopped instances unhealthy and %d running healthy", hold, len(stopped), n-len(stopped))
}
