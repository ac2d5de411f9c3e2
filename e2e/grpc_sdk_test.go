package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clients2 "github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	constant2 "github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	model2 "github.com/nacos-group/nacos-sdk-go/v2/model"
	vo2 "github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/roster-registry/roster/client"
)

// sdk2LogPath is the one log of every in-process nacos-sdk-go v2 client (its logger is a
// process-wide global).
func sdk2LogPath() string { return filepath.Join(workDir, "sdk2", "log", "nacos-sdk.log") }

// newNacosV2Client returns a real nacos-sdk-go v2 naming client of s: HTTP port given,
// gRPC port derived (+1000) as with Nacos' default settings. It is closed when the test
// ends.
func newNacosV2Client(t *testing.T, s *Server, namespace string) naming_client.INamingClient {
	t.Helper()
	cacheDir := filepath.Join(workDir, "sdk2", "cache", strings.ReplaceAll(t.Name(), "/", "_"))
	c, err := clients2.NewNamingClient(vo2.NacosClientParam{
		ClientConfig: &constant2.ClientConfig{
			NamespaceId:          namespace,
			TimeoutMs:            5000,
			NotLoadCacheAtStart:  true,
			UpdateCacheWhenEmpty: true,
			CacheDir:             cacheDir,
			LogDir:               filepath.Dir(sdk2LogPath()),
			LogLevel:             "info",
		},
		ServerConfigs: []constant2.ServerConfig{{IpAddr: "127.0.0.1", Port: uint64(s.Port), ContextPath: "/nacos"}},
	})
	if err != nil {
		t.Fatalf("nacos-sdk-go v2 NewNamingClient: %v", err)
	}
	t.Cleanup(func() {
		c.CloseClient()
		if t.Failed() {
			t.Logf("nacos-sdk-go v2 log, last lines:\n%s", tail(sdk2LogPath(), 40))
		}
	})
	return c
}

// sub2 records a v2 subscription's callbacks.
type sub2 struct {
	mu    sync.Mutex
	calls []callback2
	ch    chan struct{}
}

type callback2 struct {
	at    time.Time
	hosts []model2.Instance
}

func newSub2() *sub2 { return &sub2{ch: make(chan struct{}, 1)} }

func (s *sub2) fn(hosts []model2.Instance, err error) {
	s.mu.Lock()
	s.calls = append(s.calls, callback2{at: time.Now(), hosts: append([]model2.Instance(nil), hosts...)})
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// await waits for a callback after since whose hosts satisfy ok and returns it.
func (s *sub2) await(t *testing.T, since time.Time, timeout time.Duration, what string, ok func([]model2.Instance) bool) callback2 {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, c := range s.calls {
			if !c.at.Before(since) && ok(c.hosts) {
				s.mu.Unlock()
				return c
			}
		}
		var last string
		if n := len(s.calls); n > 0 {
			last = hosts2(s.calls[n-1].hosts)
		}
		s.mu.Unlock()
		select {
		case <-s.ch:
		case <-deadline.C:
			t.Fatalf("no callback with %s within %v of the change (last callback: %s)", what, timeout, last)
		}
	}
}

func hosts2(list []model2.Instance) string {
	var out []string
	for _, h := range list {
		out = append(out, fmt.Sprintf("%s:%d/w%g", h.Ip, h.Port, h.Weight))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func exactly2(want string) func([]model2.Instance) bool {
	return func(list []model2.Instance) bool { return hosts2(list) == want }
}

// TestNacosV2SDK runs the v2 SDK's naming calls against a real server: ephemeral
// instances over gRPC, persistent ones over HTTP, reads, pushes within 1 s of each
// change, and CloseClient taking the client's instances away.
func TestNacosV2SDK(t *testing.T) {
	s := StartServer(t)
	rc := rosterClient(t, s)
	const ns, group, name = "v2ns", "G2", "orders"
	ref := client.ServiceRef{Namespace: ns, Group: group, Name: name}
	subscriber := newNacosV2Client(t, s, ns)
	publisher := newNacosV2Client(t, s, ns)

	sub := newSub2()
	if err := subscriber.Subscribe(&vo2.SubscribeParam{ServiceName: name, GroupName: group, SubscribeCallback: sub.fn}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}

	// Register over gRPC: the subscriber is pushed the instance within 1 s.
	change := time.Now()
	ok, err := publisher.RegisterInstance(vo2.RegisterInstanceParam{Ip: "127.0.0.11", Port: 8080, Weight: 2, Enable: true, Healthy: true,
		Metadata: map[string]string{"zone": "a"}, ClusterName: "c1", ServiceName: name, GroupName: group, Ephemeral: true})
	if err != nil || !ok {
		t.Fatalf("RegisterInstance = %v, %v", ok, err)
	}
	cb := sub.await(t, change, time.Second, "the registered instance", exactly2("127.0.0.11:8080/w2"))
	t.Logf("register pushed in %v", cb.at.Sub(change).Round(time.Millisecond))
	h := cb.hosts[0]
	if h.ClusterName != "c1" || h.Metadata["zone"] != "a" || !h.Healthy || !h.Enable || !h.Ephemeral ||
		h.ServiceName != group+"@@"+name || h.InstanceId != "127.0.0.11#8080#c1#"+group+"@@"+name {
		t.Fatalf("pushed instance: %+v", h)
	}

	// SelectInstances and the plain HTTP list agree.
	list, err := subscriber.SelectInstances(vo2.SelectInstancesParam{ServiceName: name, GroupName: group, HealthyOnly: true})
	if err != nil || hosts2(list) != "127.0.0.11:8080/w2" {
		t.Fatalf("SelectInstances = %s, %v", hosts2(list), err)
	}
	info, err := listHTTP(rc, ref)
	if err != nil || len(info.Hosts) != 1 || info.Hosts[0].IP != "127.0.0.11" {
		t.Fatalf("HTTP list = %+v, %v", info, err)
	}

	// UpdateInstance is a re-register: the new weight is pushed.
	change = time.Now()
	if ok, err := publisher.UpdateInstance(vo2.UpdateInstanceParam{Ip: "127.0.0.11", Port: 8080, Weight: 5, Enable: true, Healthy: true,
		Metadata: map[string]string{"zone": "b"}, ClusterName: "c1", ServiceName: name, GroupName: group, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("UpdateInstance = %v, %v", ok, err)
	}
	cb = sub.await(t, change, time.Second, "the updated weight", exactly2("127.0.0.11:8080/w5"))
	t.Logf("update pushed in %v", cb.at.Sub(change).Round(time.Millisecond))

	// BatchRegisterInstance replaces the connection's list.
	change = time.Now()
	if ok, err := publisher.BatchRegisterInstance(vo2.BatchRegisterInstanceParam{ServiceName: name, GroupName: group, Instances: []vo2.RegisterInstanceParam{
		{Ip: "127.0.0.12", Port: 1, Weight: 1, Enable: true, Healthy: true, Ephemeral: true},
		{Ip: "127.0.0.13", Port: 2, Weight: 1, Enable: true, Healthy: true, Ephemeral: true},
	}}); err != nil || !ok {
		t.Fatalf("BatchRegisterInstance = %v, %v", ok, err)
	}
	cb = sub.await(t, change, time.Second, "the batch", exactly2("127.0.0.12:1/w1,127.0.0.13:2/w1"))
	t.Logf("batch pushed in %v", cb.at.Sub(change).Round(time.Millisecond))

	// A persistent instance: the SDK sends it over HTTP, Roster puts it through Raft.
	pport := listener(t)
	if ok, err := publisher.RegisterInstance(vo2.RegisterInstanceParam{Ip: "127.0.0.1", Port: uint64(pport), Weight: 1, Enable: true, Healthy: true,
		ServiceName: "billing", GroupName: group, Ephemeral: false}); err != nil || !ok {
		t.Fatalf("persistent RegisterInstance = %v, %v", ok, err)
	}
	all, err := subscriber.SelectAllInstances(vo2.SelectAllInstancesParam{ServiceName: "billing", GroupName: group})
	if err != nil || len(all) != 1 || all[0].Ephemeral || all[0].Port != uint64(pport) {
		t.Fatalf("SelectAllInstances(billing) = %+v, %v", all, err)
	}

	// GetAllServicesInfo lists the group's services over gRPC.
	svcs, err := subscriber.GetAllServicesInfo(vo2.GetAllServiceInfoParam{NameSpace: ns, GroupName: group, PageNo: 1, PageSize: 10})
	if err != nil || svcs.Count != 2 || strings.Join(svcs.Doms, ",") != "billing,orders" {
		t.Fatalf("GetAllServicesInfo = %+v, %v", svcs, err)
	}

	// Deregister: the connection's instances of the service go (whatever ip and port).
	change = time.Now()
	if ok, err := publisher.DeregisterInstance(vo2.DeregisterInstanceParam{Ip: "127.0.0.12", Port: 1, ServiceName: name, GroupName: group, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("DeregisterInstance = %v, %v", ok, err)
	}
	cb = sub.await(t, change, time.Second, "the deregistration", exactly2(""))
	t.Logf("deregister pushed in %v", cb.at.Sub(change).Round(time.Millisecond))
	if ok, err := publisher.DeregisterInstance(vo2.DeregisterInstanceParam{Ip: "127.0.0.1", Port: uint64(pport), ServiceName: "billing", GroupName: group, Ephemeral: false}); err != nil || !ok {
		t.Fatalf("persistent DeregisterInstance = %v, %v", ok, err)
	}

	// CloseClient: the connection closes and its instances go within 2 s.
	if ok, err := publisher.RegisterInstance(vo2.RegisterInstanceParam{Ip: "127.0.0.14", Port: 3, Weight: 1, Enable: true, Healthy: true,
		ServiceName: name, GroupName: group, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("RegisterInstance = %v, %v", ok, err)
	}
	sub.await(t, time.Now().Add(-time.Second), time.Second, "the last instance", exactly2("127.0.0.14:3/w1"))
	closed := time.Now()
	publisher.CloseClient()
	eventually(t, 2*time.Second, func() error {
		info, err := listHTTP(rc, ref)
		if err != nil {
			return err
		}
		if len(info.Hosts) != 0 {
			return fmt.Errorf("%d instances still listed after CloseClient", len(info.Hosts))
		}
		return nil
	})
	cb = sub.await(t, closed, 2*time.Second, "the closed client's departure", exactly2(""))
	t.Logf("CloseClient pushed in %v", cb.at.Sub(closed).Round(time.Millisecond))
}

// nacosV2Child is a cmd/nacosv2client process holding one instance over gRPC.
type nacosV2Child struct {
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer

	mu        sync.Mutex
	callbacks []callbackLine
}

// callbackLine is one subscription callback the child printed.
type callbackLine struct {
	at    time.Time
	hosts string
}

// awaitCallback waits for a callback at or after since listing exactly hosts.
func (c *nacosV2Child) awaitCallback(t *testing.T, since time.Time, timeout time.Duration, hosts string) callbackLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		for _, cb := range c.callbacks {
			if !cb.at.Before(since.Truncate(time.Millisecond)) && cb.hosts == hosts {
				c.mu.Unlock()
				return cb
			}
		}
		seen := fmt.Sprint(c.callbacks)
		c.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no callback with [%s] within %v (callbacks: %s)", hosts, timeout, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	child2Once sync.Once
	child2Bin  string
	child2Err  error
)

func startNacosV2Child(t *testing.T, s *Server, service, ip string, port int, extra ...string) *nacosV2Child {
	t.Helper()
	binaries(t) // roster itself
	child2Once.Do(func() {
		child2Bin = filepath.Join(workDir, "nacosv2client")
		out, err := exec.Command("go", "build", "-o", child2Bin, "./cmd/nacosv2client").CombinedOutput()
		if err != nil {
			child2Err = fmt.Errorf("go build ./cmd/nacosv2client: %v\n%s", err, out)
		}
	})
	if child2Err != nil {
		t.Fatal(child2Err)
	}
	dir := filepath.Join(workDir, fmt.Sprintf("child2-%s-%d", service, port))
	args := []string{"-server-port", strconv.Itoa(s.Port), "-service", service, "-ip", ip, "-port", strconv.Itoa(port), "-dir", dir}
	cmd := exec.Command(child2Bin, append(args, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &nacosV2Child{cmd: cmd, exited: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	registered := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "registered" {
				close(registered)
			}
			if rest, ok := strings.CutPrefix(line, "callback "); ok {
				ms, hosts, _ := strings.Cut(rest, " ")
				n, _ := strconv.ParseInt(ms, 10, 64)
				c.mu.Lock()
				c.callbacks = append(c.callbacks, callbackLine{at: time.UnixMilli(n), hosts: hosts})
				c.mu.Unlock()
			}
		}
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-c.exited
	})
	select {
	case <-registered:
	case <-c.exited:
		t.Fatalf("nacosv2client exited before registering: %s", c.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("nacosv2client did not register within 30s")
	}
	return c
}

// TestNacosV2SDKClientGone: a v2 client killed with -9 loses its instance as soon as the
// kernel closes its connection; a frozen one (SIGSTOP: the connection stays open)
// loses it once it fails the server's ClientDetectionRequest. Neither is touched by
// the beat timers meanwhile.
func TestNacosV2SDKClientGone(t *testing.T) {
	t.Setenv("ROSTER_GRPC_DETECT_IDLE", "1s")
	t.Setenv("ROSTER_GRPC_DETECT_TIMEOUT", "1s")
	s := StartServer(t)
	rc := rosterClient(t, s)
	count := func(name string) int {
		info, err := listHTTP(rc, client.ServiceRef{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return len(info.Hosts)
	}
	killed := startNacosV2Child(t, s, "killed", "127.0.0.21", 1)
	frozen := startNacosV2Child(t, s, "frozen", "127.0.0.22", 2)
	if count("killed") != 1 || count("frozen") != 1 {
		t.Fatal("children's instances not listed")
	}

	start := time.Now()
	_ = killed.cmd.Process.Kill()
	<-killed.exited
	eventually(t, 2*time.Second, func() error {
		if n := count("killed"); n != 0 {
			return fmt.Errorf("killed client's instance still listed")
		}
		return nil
	})
	t.Logf("kill -9: instance gone after %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Idle 1 s, then 1 s to answer, checked every quarter second: gone within ~3 s.
	eventually(t, 6*time.Second, func() error {
		if n := count("frozen"); n != 0 {
			return fmt.Errorf("frozen client's instance still listed")
		}
		return nil
	})
	t.Logf("SIGSTOP: instance gone after %v (detection)", time.Since(start).Round(time.Millisecond))
	if time.Since(start) < time.Second {
		t.Fatalf("frozen client dropped before its idle time")
	}
}

// TestNacosV2SDKServerRestart: after SIGTERM (the server sends ConnectResetRequest) and
// a restart on the same ports, a v2 client (a child process) reconnects by itself and
// its redo brings back its instance and its subscription, which then receives pushes
// again.
func TestNacosV2SDKServerRestart(t *testing.T) {
	s := StartServer(t)
	rc := rosterClient(t, s)
	c := startNacosV2Child(t, s, "redo", "127.0.0.31", 1, "-subscribe", "watched")
	c.awaitCallback(t, time.Time{}, 5*time.Second, "")

	s.Restart()
	restarted := time.Now()
	// Ephemeral data is memory only: the instance is back only through the client's redo.
	eventually(t, 30*time.Second, func() error {
		info, err := listHTTP(rc, client.ServiceRef{Name: "redo"})
		if err != nil {
			return err
		}
		if len(info.Hosts) != 1 || info.Hosts[0].IP != "127.0.0.31" {
			return fmt.Errorf("instance not re-registered yet")
		}
		return nil
	})
	t.Logf("instance back %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// The subscription is back too: once the server holds it again, a change (here a
	// plain HTTP registration) is pushed within 1 s.
	eventually(t, 30*time.Second, func() error {
		if v := metric(t, s, "roster_grpc_subscriptions"); v != 1 {
			return fmt.Errorf("roster_grpc_subscriptions = %v, want 1", v)
		}
		return nil
	})
	change := time.Now()
	inst := client.NewInstance("127.0.0.32", 2)
	if err := rc.RegisterInstance(ctxT(t), client.ServiceRef{Name: "watched"}, inst); err != nil {
		t.Fatal(err)
	}
	cb := c.awaitCallback(t, change, time.Second, "127.0.0.32:2")
	t.Logf("push after restart in %v", cb.at.Sub(change).Round(time.Millisecond))
}

// metric reads one unlabelled sample from the server's /metrics (-1 if absent).
func metric(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}
