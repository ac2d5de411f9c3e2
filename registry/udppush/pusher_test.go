package udppush

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
)

var orders = naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}

const waitLimit = 5 * time.Second

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// serviceInfo is a ServiceInfo JSON as the registry would hand it to the pusher, with n
// hosts and characters that need escaping inside a JSON string.
func serviceInfo(clusters string, n int) []byte {
	var hosts []string
	for i := range n {
		hosts = append(hosts, fmt.Sprintf(`{"instanceId":"10.0.%d.%d#8080#DEFAULT#DEFAULT_GROUP@@orders","ip":"10.0.%d.%d","port":8080,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","serviceName":"DEFAULT_GROUP@@orders","metadata":{"zone":"a<b>&\"c\"","n":"%d"}}`, i/250, i%250, i/250, i%250, i))
	}
	return fmt.Appendf(nil, `{"name":"DEFAULT_GROUP@@orders","clusters":%q,"cacheMillis":10000,"hosts":[%s],"lastRefTime":1717000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`, clusters, strings.Join(hosts, ","))
}

// staticData serves serviceInfo(clusters, hosts) and records its calls.
type staticData struct {
	hosts int
	calls atomic.Int64
	mu    sync.Mutex
	asked []string
}

func (d *staticData) fn(svc naming.ServiceKey, clusters string) ([]byte, error) {
	d.calls.Add(1)
	d.mu.Lock()
	d.asked = append(d.asked, svc.String()+"|"+clusters)
	d.mu.Unlock()
	return serviceInfo(clusters, d.hosts), nil
}

func startPusher(t *testing.T, cfg Config, data DataFunc) *Pusher {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	p, err := New(cfg, data)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// client is a UDP socket standing in for a Nacos 1.x push receiver.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func newClient(t *testing.T) *client {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

func (c *client) addr() *net.UDPAddr { return c.conn.LocalAddr().(*net.UDPAddr) }

func (c *client) subscriber(clusters string) Subscriber {
	return Subscriber{Service: orders, Clusters: clusters, Addr: c.addr(), Agent: "Nacos-Go-Client:v1.1.4", App: "test"}
}

// recv returns the next packet within d, or ok=false when none came.
func (c *client) recv(d time.Duration) (pkt []byte, from *net.UDPAddr, ok bool) {
	c.t.Helper()
	buf := make([]byte, 64*1024)
	if err := c.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		c.t.Fatalf("deadline: %v", err)
	}
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil, false
		}
		c.t.Fatalf("read: %v", err)
	}
	return buf[:n], from, true
}

// mustRecv waits for a packet; what names it in the failure.
func (c *client) mustRecv(what string) ([]byte, *net.UDPAddr) {
	c.t.Helper()
	pkt, from, ok := c.recv(waitLimit)
	if !ok {
		c.t.Fatalf("no packet within %s: waiting for %s", waitLimit, what)
	}
	return pkt, from
}

// expectSilence asserts nothing arrives during d.
func (c *client) expectSilence(d time.Duration, why string) {
	c.t.Helper()
	if pkt, _, ok := c.recv(d); ok {
		c.t.Fatalf("unexpected packet (%s): %.200q", why, pkt)
	}
}

func (c *client) send(to *net.UDPAddr, b []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(b, to); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// pushData mirrors nacos-sdk-go v1's PushData, which is how G1 decodes the packet.
type pushData struct {
	PushType    string `json:"type"`
	Data        string `json:"data"`
	LastRefTime int64  `json:"lastRefTime"`
}

// decode gunzips when the packet starts with the gzip magic (as every client does) and
// checks the packet's shape: data a JSON string, lastRefTime a JSON number below 2^53.
func decode(t *testing.T, pkt []byte) (pushData, bool) {
	t.Helper()
	gzipped := bytes.HasPrefix(pkt, []byte{0x1f, 0x8b})
	raw := pkt
	if gzipped {
		zr, err := gzip.NewReader(bytes.NewReader(pkt))
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip: %v", err)
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("packet is not JSON: %v: %.200q", err, raw)
	}
	if len(fields) != 3 {
		t.Errorf("packet keys = %d, want type, data, lastRefTime: %.200q", len(fields), raw)
	}
	if d := fields["data"]; len(d) == 0 || d[0] != '"' {
		t.Errorf("data is not a JSON string: %.100q", d)
	}
	if r := fields["lastRefTime"]; len(r) == 0 || r[0] < '0' || r[0] > '9' {
		t.Errorf("lastRefTime is not a JSON number: %q", r)
	}
	var pd pushData
	if err := json.Unmarshal(raw, &pd); err != nil {
		t.Fatalf("decode packet: %v", err)
	}
	if pd.PushType != "dom" {
		t.Errorf("type = %q, want dom", pd.PushType)
	}
	if pd.LastRefTime <= 0 || pd.LastRefTime >= 1<<53 {
		t.Errorf("lastRefTime = %d, want in (0, 2^53)", pd.LastRefTime)
	}
	return pd, gzipped
}

// stringAck is what Java 1.x and nacos-sdk-go v1 send back.
func stringAck(seq int64) []byte {
	b, _ := json.Marshal(map[string]string{"type": "push-ack", "lastRefTime": strconv.FormatInt(seq, 10), "data": ""})
	return b
}

// numberAck is what the Node.js client sends back.
func numberAck(seq int64) []byte {
	b, _ := json.Marshal(map[string]any{"type": "push-ack", "lastRefTime": seq, "data": ""})
	return b
}

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitLimit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testAck(t *testing.T, ack func(int64) []byte) {
	const ackTimeout = 100 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{AckTimeout: ackTimeout, Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber("DEFAULT"))
	p.ServiceChanged(orders)

	pkt, from := c.mustRecv("the push")
	if from.Port != p.Addr().Port {
		t.Errorf("push came from port %d, want the pusher's %d", from.Port, p.Addr().Port)
	}
	pd, gzipped := decode(t, pkt)
	if gzipped {
		t.Errorf("a %d-byte packet was gzipped", len(pkt))
	}
	if want := string(serviceInfo("DEFAULT", 1)); pd.Data != want {
		t.Errorf("data =\n%s\nwant\n%s", pd.Data, want)
	}
	data.mu.Lock()
	asked := strings.Join(data.asked, ",")
	data.mu.Unlock()
	if want := orders.String() + "|DEFAULT"; asked != want {
		t.Errorf("DataFunc calls = %q, want %q", asked, want)
	}

	c.send(from, ack(pd.LastRefTime))
	waitFor(t, "the ack to be matched", func() bool { return p.Stats().Acks == 1 })
	c.expectSilence(4*ackTimeout, "an acked push must not be resent")
	st := p.Stats()
	if st.Pushes != 1 || st.Resends != 0 || st.Unacked != 0 || st.InFlight != 0 || st.Failures != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestPushStringAckStopsResend(t *testing.T) { testAck(t, stringAck) }

func TestPushNumericAckStopsResend(t *testing.T) { testAck(t, numberAck) }

func TestResendOnceWithoutAck(t *testing.T) {
	const ackTimeout = 100 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{AckTimeout: ackTimeout, Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)

	first, _ := c.mustRecv("the push")
	again, _ := c.mustRecv("the resend")
	if !bytes.Equal(first, again) {
		t.Errorf("resend differs from the push:\n%s\n%s", first, again)
	}
	c.expectSilence(4*ackTimeout, "only one resend")
	waitFor(t, "the push to be given up", func() bool {
		st := p.Stats()
		return st.Unacked == 1 && st.InFlight == 0
	})
	if st := p.Stats(); st.Pushes != 1 || st.Resends != 1 || st.Acks != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// An ack is matched by sender address as well as sequence, and nothing that arrives is
// answered: the pusher is no reflector.
func TestAckFromOtherAddressIsIgnored(t *testing.T) {
	const ackTimeout = 100 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{AckTimeout: ackTimeout, Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	spoofer := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)

	pkt, from := c.mustRecv("the push")
	pd, _ := decode(t, pkt)
	spoofer.send(from, stringAck(pd.LastRefTime))
	spoofer.send(from, []byte(`{"type":"dom","data":"{}","lastRefTime":1}`))
	spoofer.send(from, []byte("garbage"))
	waitFor(t, "the stray packets to be ignored", func() bool { return p.Stats().Ignored == 3 })
	if _, _, ok := c.recv(waitLimit); !ok {
		t.Fatal("no resend: a spoofed ack was accepted")
	}
	spoofer.expectSilence(2*ackTimeout, "incoming packets are never answered")
	if st := p.Stats(); st.Acks != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestLargePushIsGzipped(t *testing.T) {
	data := &staticData{hosts: 40}
	p := startPusher(t, Config{Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)

	pkt, from := c.mustRecv("the push")
	if !bytes.HasPrefix(pkt, []byte{0x1f, 0x8b}) {
		t.Fatalf("packet of %d bytes is not gzipped", len(pkt))
	}
	pd, _ := decode(t, pkt)
	want := serviceInfo("", 40)
	if len(want) < 4096 {
		t.Fatalf("test data too small: %d bytes", len(want))
	}
	if pd.Data != string(want) {
		t.Errorf("data after gunzip differs from the ServiceInfo given")
	}
	c.send(from, stringAck(pd.LastRefTime))
	waitFor(t, "the ack", func() bool { return p.Stats().Acks == 1 })
}

func TestOversizedPushIsNotSent(t *testing.T) {
	// 3 hosts are ~1 KiB of JSON, so the packet is gzipped and still above 300 bytes.
	data := &staticData{hosts: 3}
	p := startPusher(t, Config{Delay: 10 * time.Millisecond, MaxPacket: 300}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)
	waitFor(t, "the push to fail", func() bool { return p.Stats().Failures == 1 })
	c.expectSilence(50*time.Millisecond, "oversized packets are dropped")
	if st := p.Stats(); st.Pushes != 0 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestEachSubscriberGetsItsClusters(t *testing.T) {
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{Delay: 10 * time.Millisecond}, data.fn)
	a, b := newClient(t), newClient(t)
	p.Subscribe(a.subscriber(""))
	p.Subscribe(b.subscriber("c1,c2"))
	if n := len(p.Subscribers(orders)); n != 2 {
		t.Fatalf("subscribers = %d, want 2", n)
	}
	p.ServiceChanged(orders)
	for _, tc := range []struct {
		c        *client
		clusters string
	}{{a, ""}, {b, "c1,c2"}} {
		pkt, _ := tc.c.mustRecv("the push for clusters " + tc.clusters)
		pd, _ := decode(t, pkt)
		if pd.Data != string(serviceInfo(tc.clusters, 1)) {
			t.Errorf("clusters %q: got data for another filter: %.120s", tc.clusters, pd.Data)
		}
	}
}

func TestServiceChangedIsCoalesced(t *testing.T) {
	const delay = 50 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{Delay: delay}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	for range 1000 {
		p.ServiceChanged(orders)
	}
	c.mustRecv("the coalesced push")
	n := 1
	for {
		if _, _, ok := c.recv(5 * delay); !ok {
			break
		}
		n++
	}
	// A burst may straddle one flush, never more.
	if n > 2 || data.calls.Load() > 2 {
		t.Errorf("1000 changes gave %d packets and %d DataFunc calls, want at most 2", n, data.calls.Load())
	}
	// A later change is still pushed: nothing was lost in the pending set.
	p.ServiceChanged(orders)
	c.mustRecv("the push after the burst")
}

func TestSubscriberTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{SubscriberTTL: ttl, Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	sub := c.subscriber("")

	// Refreshing keeps it alive well past one TTL.
	p.Subscribe(sub)
	until := time.Now().Add(2 * ttl)
	for time.Now().Before(until) {
		p.Subscribe(sub)
		if n := len(p.Subscribers(orders)); n != 1 {
			t.Fatalf("refreshed subscriber gone: %d subscribers", n)
		}
		if st := p.Stats(); st.Subscribers != 1 {
			t.Fatalf("stats = %+v, want 1 subscriber", st)
		}
		time.Sleep(ttl / 6) // paces the refreshes; nothing is asserted on this timing
	}

	// Left alone, it expires and is swept.
	waitFor(t, "the subscriber to expire", func() bool {
		return len(p.Subscribers(orders)) == 0 && p.Stats().Subscribers == 0
	})
	p.ServiceChanged(orders)
	c.expectSilence(100*time.Millisecond, "expired subscribers get no push")
	if calls := data.calls.Load(); calls != 0 {
		t.Errorf("DataFunc called %d times for a service without subscribers", calls)
	}
}

func TestServiceChangedNeverBlocks(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	blocking := func(svc naming.ServiceKey, clusters string) ([]byte, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		return serviceInfo(clusters, 1), nil
	}
	p := startPusher(t, Config{Delay: 10 * time.Millisecond}, blocking)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("DataFunc was never called")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10000 {
			p.ServiceChanged(orders)
			p.ServiceChanged(naming.ServiceKey{Namespace: "public", Group: "g", Name: strconv.Itoa(i % 10)})
			if i%100 == 0 {
				p.Subscribe(c.subscriber(""))
				p.Subscribers(orders)
				p.Stats()
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("ServiceChanged blocked behind a blocked DataFunc")
	}
	close(release)
	c.mustRecv("the push once DataFunc returns")
}

func TestFailingDataFunc(t *testing.T) {
	var mode atomic.Int32 // 0 error, 1 panic, 2 ok
	fn := func(svc naming.ServiceKey, clusters string) ([]byte, error) {
		switch mode.Load() {
		case 0:
			return nil, errors.New("boom")
		case 1:
			panic("boom")
		}
		return serviceInfo(clusters, 1), nil
	}
	p := startPusher(t, Config{Delay: 10 * time.Millisecond}, fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))

	p.ServiceChanged(orders)
	waitFor(t, "the error to count as a failure", func() bool { return p.Stats().Failures == 1 })
	mode.Store(1)
	p.ServiceChanged(orders)
	waitFor(t, "the panic to count as a failure", func() bool { return p.Stats().Failures == 2 })
	c.expectSilence(50*time.Millisecond, "failed pushes send nothing")
	mode.Store(2)
	p.ServiceChanged(orders)
	c.mustRecv("a push once DataFunc works")
}

// A newer push replaces an unacked older one, which must then not be resent: the resend
// would hand the client stale data.
func TestSupersededPushIsNotResent(t *testing.T) {
	const ackTimeout = 500 * time.Millisecond
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{AckTimeout: ackTimeout, Delay: 10 * time.Millisecond}, data.fn)
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)
	first, _ := c.mustRecv("the first push")
	p.ServiceChanged(orders)
	second, from := c.mustRecv("the second push")
	pd1, _ := decode(t, first)
	pd2, _ := decode(t, second)
	if pd2.LastRefTime <= pd1.LastRefTime {
		t.Fatalf("second push seq %d is not after the first's %d", pd2.LastRefTime, pd1.LastRefTime)
	}
	c.send(from, numberAck(pd2.LastRefTime))
	waitFor(t, "the ack", func() bool { return p.Stats().Acks == 1 })
	c.expectSilence(3*ackTimeout, "the superseded push is not resent")
	if st := p.Stats(); st.Resends != 0 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSubscribeRefusesUnusableAddresses(t *testing.T) {
	data := &staticData{hosts: 1}
	p := startPusher(t, Config{MaxSubscribers: 2}, data.fn)
	for _, a := range []*net.UDPAddr{
		nil,
		{IP: net.IPv4(127, 0, 0, 1), Port: 0},
		{IP: net.IPv4zero, Port: 9},
		{IP: net.IPv6unspecified, Port: 9},
		{IP: net.IPv4(224, 0, 0, 1), Port: 9},
		{IP: net.IPv4bcast, Port: 9},
	} {
		p.Subscribe(Subscriber{Service: orders, Addr: a})
	}
	if st := p.Stats(); st.Rejected != 6 || st.Subscribers != 0 {
		t.Fatalf("stats = %+v, want 6 rejected, no subscribers", st)
	}

	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1001}
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1002}
	p.Subscribe(Subscriber{Service: orders, Addr: a, Agent: "old"})
	p.Subscribe(Subscriber{Service: orders, Addr: b})
	p.Subscribe(Subscriber{Service: orders, Addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1003}})
	p.Subscribe(Subscriber{Service: orders, Addr: a, Agent: "new"}) // a refresh is not a new entry
	subs := p.Subscribers(orders)
	if len(subs) != 2 || subs[0].Addr.Port != 1001 || subs[0].Agent != "new" || subs[1].Addr.Port != 1002 {
		t.Fatalf("subscribers = %+v", subs)
	}
	if st := p.Stats(); st.Rejected != 7 {
		t.Errorf("stats = %+v, want 7 rejected", st)
	}
	// Returned subscribers are copies.
	subs[0].Addr.Port = 1
	if p.Subscribers(orders)[0].Addr.Port != 1001 {
		t.Error("Subscribers shares its addresses with the caller")
	}
}

func TestStopIsIdempotentAndLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()

	data := &staticData{hosts: 1}
	p, err := New(Config{ListenAddr: "127.0.0.1:0", AckTimeout: 50 * time.Millisecond, Delay: 10 * time.Millisecond, Logger: quietLogger()}, data.fn)
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	p.Start()
	c := newClient(t)
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)
	c.mustRecv("a push before Stop")

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(p.Stop)
	}
	wg.Wait()
	p.Stop()
	// Calls after Stop are harmless.
	p.Start()
	p.Subscribe(c.subscriber(""))
	p.ServiceChanged(orders)
	p.Subscribers(orders)

	// Never started: Stop still releases the socket.
	q, err := New(Config{ListenAddr: "127.0.0.1:0", Logger: quietLogger()}, data.fn)
	if err != nil {
		t.Fatal(err)
	}
	q.Stop()
	q.Stop()
	if _, err := net.ListenUDP("udp", q.Addr()); err != nil {
		t.Errorf("socket still bound after Stop: %v", err)
	}

	waitFor(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= before })
}

func TestConfig(t *testing.T) {
	ok := func(naming.ServiceKey, string) ([]byte, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  Config
		data DataFunc
	}{
		{"nil data", Config{}, nil},
		{"delay above 1s", Config{Delay: 2 * time.Second}, ok},
		{"negative ack timeout", Config{AckTimeout: -1}, ok},
		{"negative ttl", Config{SubscriberTTL: -1}, ok},
		{"packet above UDP max", Config{MaxPacket: 70000}, ok},
		{"bad listen address", Config{ListenAddr: "127.0.0.1:notaport"}, ok},
	} {
		if p, err := New(tc.cfg, tc.data); err == nil {
			p.Stop()
			t.Errorf("%s: New succeeded", tc.name)
		} else if !strings.HasPrefix(err.Error(), "udppush: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
	}
	p, err := New(Config{ListenAddr: "127.0.0.1:0"}, ok)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	c := p.cfg
	if c.AckTimeout != DefaultAckTimeout || c.SubscriberTTL != DefaultSubscriberTTL || c.Delay != DefaultDelay ||
		c.MaxPacket != DefaultMaxPacket || c.MaxSubscribers != DefaultMaxSubscribers {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"type":"push-ack","lastRefTime":"1717000000000123","data":""}`, 1717000000000123, true},
		{`{"type":"push-ack","lastRefTime":1717000000000123,"data":""}`, 1717000000000123, true},
		{`{"type":"push-ack","lastRefTime":1.717000000000123e15,"data":""}`, 1717000000000123, true},
		{`{"type":"unknow-ack","lastRefTime":"42","data":""}`, 42, true},
		{`{"type":"push-ack","lastRefTime":"x","data":""}`, 0, false},
		{`{"type":"push-ack","lastRefTime":-5,"data":""}`, 0, false},
		{`{"type":"push-ack","lastRefTime":1.5,"data":""}`, 0, false},
		{`{"type":"push-ack","data":""}`, 0, false},
		{`not json`, 0, false},
		{``, 0, false},
	} {
		got, ok := parseAck([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseAck(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestEncodePacket builds the packet a subscriber receives, plain and gzipped, and
// refuses one over the limit.
func TestEncodePacket(t *testing.T) {
	for _, hosts := range []int{1, 40} {
		info := serviceInfo("DEFAULT", hosts)
		pkt, err := EncodePacket(info, 7, DefaultMaxPacket)
		if err != nil {
			t.Fatal(err)
		}
		pd, gzipped := decode(t, pkt)
		if pd.Data != string(info) || pd.LastRefTime != 7 || gzipped != (hosts > 1) {
			t.Errorf("%d hosts: packet %+v, gzipped %v", hosts, pd, gzipped)
		}
	}
	if _, err := EncodePacket(serviceInfo("DEFAULT", 1), 1, 10); err == nil {
		t.Error("a packet over the limit was built")
	}
}

// TestPushPacketSharedBySubscribers: the subscribers of a service with one clusters
// filter get the same packet (one sequence, gzipped once), it is built once per change
// whatever their number, and each subscriber's ack settles only its own push.
func TestPushPacketSharedBySubscribers(t *testing.T) {
	const subscribers, changes = 10, 3
	data := &staticData{hosts: 20} // past gzipThreshold
	p := startPusher(t, Config{Delay: 5 * time.Millisecond, AckTimeout: time.Minute}, data.fn)
	var cs []*client
	for range subscribers {
		c := newClient(t)
		p.Subscribe(c.subscriber(""))
		cs = append(cs, c)
	}
	for k := 1; k <= changes; k++ {
		p.ServiceChanged(orders)
		var first []byte
		var seq int64
		for i, c := range cs {
			pkt, from := c.mustRecv(fmt.Sprintf("change %d", k))
			if first == nil {
				first = append([]byte(nil), pkt...)
				pd, gzipped := decode(t, pkt)
				if !gzipped {
					t.Fatalf("a %d-byte packet was not gzipped", len(pkt))
				}
				seq = pd.LastRefTime
			} else if !bytes.Equal(pkt, first) {
				t.Fatalf("change %d: subscriber %d got another packet than subscriber 0", k, i)
			}
			c.send(from, stringAck(seq))
			want := uint64((k-1)*subscribers + i + 1)
			waitFor(t, "the ack matched", func() bool { return p.Stats().Acks == want })
			if st := p.Stats(); st.InFlight != subscribers-i-1 {
				t.Fatalf("change %d, after %d acks: %d in flight, want %d", k, i+1, st.InFlight, subscribers-i-1)
			}
		}
	}
	st := p.Stats()
	if st.Encodes != changes || st.Pushes != subscribers*changes || st.Failures != 0 || st.Ignored != 0 {
		t.Fatalf("stats = %+v, want %d encodes for %d pushes", st, changes, subscribers*changes)
	}
	if n := data.calls.Load(); n != changes {
		t.Fatalf("DataFunc called %d times, want %d", n, changes)
	}
}
