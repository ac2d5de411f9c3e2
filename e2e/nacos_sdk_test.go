package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// pushDeadline is how soon a subscriber must see a change. The SDK polls only every
// cacheMillis (10 s), so a change seen this soon came by UDP push.
const pushDeadline = 2 * time.Second

// subscription collects what an SDK Subscribe callback receives.
type subscription struct {
	mu    sync.Mutex
	calls []callback
	ch    chan struct{} // signalled on every call
}

type callback struct {
	at    time.Time
	hosts []model.SubscribeService
	err   error
}

func newSubscription() *subscription { return &subscription{ch: make(chan struct{}, 1)} }

func (s *subscription) fn(hosts []model.SubscribeService, err error) {
	s.mu.Lock()
	s.calls = append(s.calls, callback{at: time.Now(), hosts: hosts, err: err})
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// await waits until a callback after since satisfies ok, and returns it.
func (s *subscription) await(t *testing.T, since time.Time, timeout time.Duration, what string, ok func([]model.SubscribeService) bool) callback {
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
		var seen []string
		for _, c := range s.calls {
			seen = append(seen, fmt.Sprintf("+%v %s", c.at.Sub(since).Round(time.Millisecond), hostList(c.hosts)))
		}
		s.mu.Unlock()
		select {
		case <-s.ch:
		case <-deadline.C:
			t.Fatalf("subscriber did not see %s within %v; callbacks: %v", what, timeout, seen)
		}
	}
}

func hostList(hosts []model.SubscribeService) string {
	var s []string
	for _, h := range hosts {
		s = append(s, fmt.Sprintf("%s:%d", h.Ip, h.Port))
	}
	slices.Sort(s)
	return "[" + strings.Join(s, " ") + "]"
}

func hasHosts(want ...string) func([]model.SubscribeService) bool {
	slices.Sort(want)
	return func(hosts []model.SubscribeService) bool { return hostList(hosts) == "["+strings.Join(want, " ")+"]" }
}

// TestNacosSDKRegisterSelectSubscribe drives the real nacos-sdk-go v1.1.4 naming client
// in a non-default namespace and group: persistent and ephemeral registration, the three
// read calls field for field, update, UDP push to a subscriber, deregistration and the
// service list.
func TestNacosSDKRegisterSelectSubscribe(t *testing.T) {
	s := StartServer(t)
	const ns, group = "e2e-dev", "E2E_GROUP"
	a := newNacosClient(t, s, ns)

	persistent := vo.RegisterInstanceParam{
		Ip: "127.0.0.1", Port: uint64(listener(t)), Weight: 2.5, Enable: true, Healthy: true,
		Metadata: map[string]string{"zone": "a", "kind": "persistent"}, ClusterName: "c1",
		ServiceName: "orders-p", GroupName: group, Ephemeral: false,
	}
	wantP := expect{ip: persistent.Ip, port: int(persistent.Port), weight: 2.5, cluster: "c1",
		metadata: persistent.Metadata, healthy: true, enabled: true, ephemeral: false, service: group + "@@orders-p"}
	ephemeral := vo.RegisterInstanceParam{
		Ip: "127.0.0.11", Port: 8081, Weight: 1.5, Enable: true, Healthy: true,
		Metadata: map[string]string{"zone": "b"}, ClusterName: "c2",
		ServiceName: "orders-e", GroupName: group, Ephemeral: true,
	}
	wantE := expect{ip: ephemeral.Ip, port: 8081, weight: 1.5, cluster: "c2", metadata: ephemeral.Metadata,
		healthy: true, enabled: true, ephemeral: true, service: group + "@@orders-e"}
	register(t, a, persistent)
	register(t, a, ephemeral)

	// SelectAllInstances: the first call fetches (and subscribes); later calls read the
	// SDK's cache, which pushes keep current.
	eventually(t, 3*time.Second, func() error {
		list, err := a.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "orders-p", GroupName: group})
		if err != nil {
			return fmt.Errorf("SelectAllInstances(orders-p): %v", err)
		}
		if len(list) != 1 {
			return fmt.Errorf("SelectAllInstances(orders-p) = %d instances, want 1: %+v", len(list), list)
		}
		return checkSDK(list[0], wantP)
	})

	firstFetchE := time.Now()
	var cacheMillis uint64
	eventually(t, 3*time.Second, func() error {
		list, err := a.SelectInstances(vo.SelectInstancesParam{ServiceName: "orders-e", GroupName: group, HealthyOnly: true})
		if err != nil {
			return fmt.Errorf("SelectInstances(orders-e, healthy): %v", err)
		}
		if len(list) != 1 {
			return fmt.Errorf("SelectInstances(orders-e, healthy) = %d instances, want 1: %+v", len(list), list)
		}
		if err := checkSDK(list[0], wantE); err != nil {
			return err
		}
		// v1.1.4 returns the hosts whose healthy flag equals HealthyOnly.
		if un, err := a.SelectInstances(vo.SelectInstancesParam{ServiceName: "orders-e", GroupName: group, HealthyOnly: false}); err != nil || len(un) != 0 {
			return fmt.Errorf("SelectInstances(orders-e, unhealthy) = %+v, %v; want none", un, err)
		}
		svc, err := a.GetService(vo.GetServiceParam{ServiceName: "orders-e", GroupName: group})
		if err != nil {
			return fmt.Errorf("GetService(orders-e): %v", err)
		}
		if svc.Name != group+"@@orders-e" || svc.Clusters != "" || len(svc.Hosts) != 1 {
			return fmt.Errorf("GetService(orders-e) = name %q clusters %q hosts %d; want %q, \"\", 1",
				svc.Name, svc.Clusters, len(svc.Hosts), group+"@@orders-e")
		}
		cacheMillis = svc.CacheMillis
		return checkSDK(svc.Hosts[0], wantE)
	})
	t.Logf("cacheMillis = %d", cacheMillis)

	// The service list of the namespace and group, and nothing of it in public.
	list, err := a.GetAllServicesInfo(vo.GetAllServiceInfoParam{NameSpace: ns, GroupName: group, PageNo: 1, PageSize: 100})
	if err != nil {
		t.Fatalf("GetAllServicesInfo(%s, %s): %v", ns, group, err)
	}
	slices.Sort(list.Doms)
	if list.Count != 2 || !slices.Equal(list.Doms, []string{"orders-e", "orders-p"}) {
		t.Errorf("GetAllServicesInfo(%s, %s) = count %d, doms %v; want 2, [orders-e orders-p]", ns, group, list.Count, list.Doms)
	}
	pub, err := a.GetAllServicesInfo(vo.GetAllServiceInfoParam{NameSpace: "public", GroupName: group, PageNo: 1, PageSize: 100})
	if err != nil || pub.Count != 0 || len(pub.Doms) != 0 {
		t.Errorf("GetAllServicesInfo(public, %s) = %+v, %v; want nothing (other namespace)", group, pub, err)
	}

	// Subscribe, then a second client registers: the subscriber must see it by push.
	sub := newSubscription()
	if err := a.Subscribe(&vo.SubscribeParam{ServiceName: "orders-e", GroupName: group, SubscribeCallback: sub.fn}); err != nil {
		t.Fatalf("Subscribe(orders-e): %v", err)
	}
	sub.await(t, firstFetchE, pushDeadline, "the initial list", hasHosts("127.0.0.11:8081"))

	b := newNacosClient(t, s, ns)
	second := vo.RegisterInstanceParam{
		Ip: "127.0.0.12", Port: 8082, Weight: 1, Enable: true, Healthy: true,
		Metadata: map[string]string{"zone": "c"}, ServiceName: "orders-e", GroupName: group, Ephemeral: true,
	}
	if cacheMillis < 5000 {
		t.Fatalf("cacheMillis %d is too short to tell a push from a poll", cacheMillis)
	}
	// The SDK polls a service only when cacheMillis have passed since it last processed
	// it, and it first fetched orders-e at firstFetchE: until then, news is a push.
	pollEarliest := firstFetchE.Add(time.Duration(cacheMillis) * time.Millisecond)
	if time.Until(pollEarliest) < pushDeadline {
		t.Fatalf("test too slow: the SDK may poll orders-e at %v, before the push deadline", pollEarliest)
	}
	before := time.Now()
	register(t, b, second)
	got := sub.await(t, before, pushDeadline, "the second instance", hasHosts("127.0.0.11:8081", "127.0.0.12:8082"))
	if !got.at.Before(pollEarliest) {
		t.Errorf("the change arrived at %v, not before the earliest poll %v: not shown to be a push", got.at, pollEarliest)
	}
	t.Logf("subscriber saw the registration %v after it (push; earliest poll %v later)",
		got.at.Sub(before).Round(time.Millisecond), pollEarliest.Sub(before).Round(time.Millisecond))
	for _, h := range got.hosts {
		if h.Ip == "127.0.0.12" && (h.Weight != 1 || !h.Healthy || !h.Enable || h.Metadata["zone"] != "c" ||
			h.ServiceName != group+"@@orders-e" || h.ClusterName != "DEFAULT") {
			t.Errorf("pushed instance = %+v", h)
		}
	}

	// UpdateInstance (PUT /instance): new weight and metadata reach the subscriber.
	before = time.Now()
	if ok, err := a.UpdateInstance(vo.UpdateInstanceParam{
		Ip: ephemeral.Ip, Port: ephemeral.Port, ClusterName: "c2", ServiceName: "orders-e", GroupName: group,
		Ephemeral: true, Weight: 4, Enable: true, Metadata: map[string]string{"zone": "b2"},
	}); err != nil || !ok {
		t.Fatalf("UpdateInstance = %v, %v", ok, err)
	}
	sub.await(t, before, pushDeadline, "the updated weight and metadata", func(hosts []model.SubscribeService) bool {
		for _, h := range hosts {
			if h.Ip == ephemeral.Ip && h.Weight == 4 && h.Metadata["zone"] == "b2" {
				return true
			}
		}
		return false
	})
	wantE.weight, wantE.metadata = 4, map[string]string{"zone": "b2"}
	eventually(t, pushDeadline, func() error {
		list, err := a.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "orders-e", GroupName: group})
		if err != nil {
			return err
		}
		inst := findSDK(list, ephemeral.Ip, int(ephemeral.Port))
		if inst == nil {
			return fmt.Errorf("updated instance missing from %+v", list)
		}
		return checkSDK(*inst, wantE)
	})

	// DeregisterInstance by the second client: pushed again.
	before = time.Now()
	if ok, err := b.DeregisterInstance(vo.DeregisterInstanceParam{Ip: second.Ip, Port: second.Port,
		ServiceName: "orders-e", GroupName: group, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("DeregisterInstance = %v, %v", ok, err)
	}
	got = sub.await(t, before, pushDeadline, "the deregistration", hasHosts("127.0.0.11:8081"))
	t.Logf("subscriber saw the deregistration %v after it", got.at.Sub(before).Round(time.Millisecond))

	// Deregister the persistent instance: the SDK's cached list empties.
	if ok, err := a.DeregisterInstance(vo.DeregisterInstanceParam{Ip: persistent.Ip, Port: persistent.Port,
		Cluster: "c1", ServiceName: "orders-p", GroupName: group, Ephemeral: false}); err != nil || !ok {
		t.Fatalf("DeregisterInstance(persistent) = %v, %v", ok, err)
	}
	eventually(t, pushDeadline, func() error {
		list, err := a.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "orders-p", GroupName: group})
		if err != nil || len(list) != 0 {
			return fmt.Errorf("SelectAllInstances(orders-p) after deregistration = %+v, %v; want none", list, err)
		}
		return nil
	})
	rc := rosterClient(t, s)
	info, err := listHTTP(rc, client.ServiceRef{Namespace: ns, Group: group, Name: "orders-p"})
	if err != nil || len(info.Hosts) != 0 {
		t.Errorf("GET /instance/list orders-p after deregistration = %+v, %v; want no hosts", info, err)
	}
}

// TestNacosSDKDefaultNamespace registers with a client that sets no namespace and no
// group: the instance lands in public / DEFAULT_GROUP.
func TestNacosSDKDefaultNamespace(t *testing.T) {
	s := StartServer(t)
	c := newNacosClient(t, s, "")
	p := vo.RegisterInstanceParam{Ip: "127.0.0.21", Port: 9001, Weight: 1, Enable: true, Healthy: true,
		ServiceName: "plain", Ephemeral: true}
	register(t, c, p)
	want := expect{ip: p.Ip, port: 9001, weight: 1, cluster: "DEFAULT", healthy: true, enabled: true,
		ephemeral: true, service: "DEFAULT_GROUP@@plain"}

	rc := rosterClient(t, s)
	for _, ref := range []client.ServiceRef{{Name: "plain"}, {Namespace: "public", Group: "DEFAULT_GROUP", Name: "plain"}} {
		info, err := listHTTP(rc, ref)
		if err != nil {
			t.Fatalf("GET /instance/list %+v: %v", ref, err)
		}
		if info.Name != "DEFAULT_GROUP@@plain" || info.GroupName != "DEFAULT_GROUP" || len(info.Hosts) != 1 {
			t.Fatalf("GET /instance/list %+v = name %q group %q hosts %+v", ref, info.Name, info.GroupName, info.Hosts)
		}
		if err := checkHTTP(info.Hosts[0], want, true); err != nil {
			t.Error(err)
		}
	}
	list, err := c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "plain"})
	if err != nil || len(list) != 1 {
		t.Fatalf("SelectAllInstances(plain) = %+v, %v", list, err)
	}
	if err := checkSDK(list[0], want); err != nil {
		t.Error(err)
	}
	svcs, err := c.GetAllServicesInfo(vo.GetAllServiceInfoParam{})
	if err != nil || !slices.Contains(svcs.Doms, "plain") {
		t.Errorf("GetAllServicesInfo() = %+v, %v; want plain listed", svcs, err)
	}
	other, err := listHTTP(rc, client.ServiceRef{Namespace: "e2e-other", Name: "plain"})
	if err != nil || len(other.Hosts) != 0 {
		t.Errorf("namespace e2e-other sees %+v, %v; want nothing", other, err)
	}
}
