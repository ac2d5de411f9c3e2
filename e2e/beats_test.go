package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// TestNacosSDKBeatsKeepAliveThenExpire: the SDK's own beats keep an ephemeral instance
// healthy for three heartbeat timeouts; once the client process dies (no deregister) the
// instance turns unhealthy after the heartbeat timeout and disappears after the delete
// timeout.
func TestNacosSDKBeatsKeepAliveThenExpire(t *testing.T) {
	s := StartServer(t)
	const svcName = "beating"
	svc := client.ServiceRef{Name: svcName}
	rc := rosterClient(t, s)

	// A second, in-process instance stays healthy throughout, so that the dying one is
	// answered as unhealthy: with every instance unhealthy the protect threshold (0.0)
	// would answer them all as healthy.
	keeper := newNacosClient(t, s, "")
	register(t, keeper, vo.RegisterInstanceParam{Ip: "127.0.0.31", Port: 7001, Weight: 1, Enable: true,
		Healthy: true, ServiceName: svcName, Ephemeral: true})

	child := StartChild(t, s, ChildSpec{Service: svcName, IP: "127.0.0.32", Port: 7002, Weight: 2,
		Metadata: `{"role":"child"}`})
	const ip, port = "127.0.0.32", 7002

	eventually(t, 3*time.Second, func() error {
		info, err := listHTTP(rc, svc)
		if err != nil {
			return err
		}
		if findHTTP(info.Hosts, ip, port) == nil || findHTTP(info.Hosts, "127.0.0.31", 7001) == nil {
			return fmt.Errorf("want both instances listed, have %+v", info.Hosts)
		}
		return nil
	})

	// Healthy at every poll for 3 × the heartbeat timeout.
	hold := 3 * heartbeatTimeout
	polls := 0
	tick := time.NewTicker(200 * time.Millisecond)
	for end := time.Now().Add(hold); time.Now().Before(end); <-tick.C {
		info, err := listHTTP(rc, svc)
		if err != nil {
			t.Fatalf("after %d polls: %v", polls, err)
		}
		polls++
		h := findHTTP(info.Hosts, ip, port)
		switch {
		case h == nil:
			t.Fatalf("poll %d: the beating instance is gone: %+v", polls, info.Hosts)
		case !h.Healthy || info.ReachProtectionThreshold:
			t.Fatalf("poll %d: the beating instance is not healthy (healthy=%v, reachProtectionThreshold=%v)",
				polls, h.Healthy, info.ReachProtectionThreshold)
		}
		if err := checkHTTP(*h, expect{ip: ip, port: port, weight: 2, cluster: "DEFAULT",
			metadata: map[string]string{"role": "child"}, healthy: true, enabled: true, ephemeral: true,
			service: "DEFAULT_GROUP@@" + svcName}, true); err != nil {
			t.Fatalf("poll %d: %v", polls, err)
		}
	}
	tick.Stop()
	t.Logf("healthy at all %d polls over %v", polls, hold)

	// The client dies without deregistering.
	child.Kill()
	killed := time.Now()

	// The last beat was at most one beat interval before the kill, so the instance must
	// turn unhealthy between (timeout - interval) and (timeout + check interval) later.
	var unhealthyAt time.Time
	eventually(t, heartbeatTimeout+3*time.Second, func() error {
		info, err := listHTTP(rc, svc)
		if err != nil {
			return err
		}
		h := findHTTP(info.Hosts, ip, port)
		if h == nil {
			return fmt.Errorf("instance removed before it was seen unhealthy")
		}
		if h.Healthy {
			return fmt.Errorf("instance still healthy %v after the client died", time.Since(killed).Round(time.Millisecond))
		}
		unhealthyAt = time.Now()
		return nil
	})
	if d := unhealthyAt.Sub(killed); d < heartbeatTimeout-heartbeatInterval-500*time.Millisecond {
		t.Errorf("instance turned unhealthy %v after the client died; heartbeat timeout is %v", d, heartbeatTimeout)
	}

	var goneAt time.Time
	eventually(t, ipDeleteTimeout+3*time.Second, func() error {
		info, err := listHTTP(rc, svc)
		if err != nil {
			return err
		}
		if h := findHTTP(info.Hosts, ip, port); h != nil {
			return fmt.Errorf("instance still listed %v after the client died (healthy=%v)", time.Since(killed).Round(time.Millisecond), h.Healthy)
		}
		if findHTTP(info.Hosts, "127.0.0.31", 7001) == nil {
			return fmt.Errorf("the beating keeper instance vanished too: %+v", info.Hosts)
		}
		goneAt = time.Now()
		return nil
	})
	if d := goneAt.Sub(killed); d < ipDeleteTimeout-heartbeatInterval-500*time.Millisecond {
		t.Errorf("instance removed %v after the client died; delete timeout is %v", d, ipDeleteTimeout)
	}
	t.Logf("after the kill: unhealthy at +%v (timeout %v), removed at +%v (delete timeout %v)",
		unhealthyAt.Sub(killed).Round(time.Millisecond), heartbeatTimeout,
		goneAt.Sub(killed).Round(time.Millisecond), ipDeleteTimeout)
}
