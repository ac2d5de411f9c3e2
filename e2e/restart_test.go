package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// TestNacosSDKServerRestart: after a SIGTERM and restart on the same ports and data dir,
// persistent instances are there at once, and the ephemeral instance (memory only) comes
// back from the still-running client's full beats within a few beat intervals.
func TestNacosSDKServerRestart(t *testing.T) {
	s := StartServer(t)
	const ns, group = "e2e-restart", "RESTART"
	c := newNacosClient(t, s, ns)
	rc := rosterClient(t, s)

	eph := vo.RegisterInstanceParam{Ip: "127.0.0.41", Port: 7003, Weight: 3, Enable: true, Healthy: true,
		Metadata: map[string]string{"version": "1"}, ClusterName: "c1", ServiceName: "restart-e",
		GroupName: group, Ephemeral: true}
	wantE := expect{ip: eph.Ip, port: 7003, weight: 3, cluster: "c1", metadata: eph.Metadata,
		healthy: true, enabled: true, ephemeral: true, service: group + "@@restart-e"}
	per := vo.RegisterInstanceParam{Ip: "127.0.0.1", Port: uint64(listener(t)), Weight: 2, Enable: true,
		Healthy: true, Metadata: map[string]string{"version": "p"}, ClusterName: "c2", ServiceName: "restart-p",
		GroupName: group, Ephemeral: false}
	wantP := expect{ip: per.Ip, port: int(per.Port), weight: 2, cluster: "c2", metadata: per.Metadata,
		healthy: true, enabled: true, ephemeral: false, service: group + "@@restart-p"}
	register(t, c, eph)
	register(t, c, per)

	refE := client.ServiceRef{Namespace: ns, Group: group, Name: "restart-e"}
	refP := client.ServiceRef{Namespace: ns, Group: group, Name: "restart-p"}
	listed := func(ref client.ServiceRef, w expect) error {
		info, err := listHTTP(rc, ref)
		if err != nil {
			return err
		}
		h := findHTTP(info.Hosts, w.ip, w.port)
		if h == nil {
			return fmt.Errorf("%s: %s:%d not listed: %+v", ref.Name, w.ip, w.port, info.Hosts)
		}
		return checkHTTP(*h, w, true)
	}
	eventually(t, 3*time.Second, func() error { return listed(refE, wantE) })
	eventually(t, 3*time.Second, func() error { return listed(refP, wantP) })
	// The client's view, fetched (and subscribed) before the restart.
	if list, err := c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "restart-e", GroupName: group}); err != nil || len(list) != 1 {
		t.Fatalf("SelectAllInstances(restart-e) = %+v, %v", list, err)
	}

	s.Restart()
	restarted := time.Now()

	// Persistent data is on disk: listed as soon as the server is ready.
	if err := listed(refP, wantP); err != nil {
		t.Errorf("persistent instance right after the restart: %v", err)
	}

	// Ephemeral data was in memory only; the client's next full beat re-registers it.
	eventually(t, 5*heartbeatInterval, func() error { return listed(refE, wantE) })
	t.Logf("ephemeral instance back %v after the restart was ready (beat interval %v)",
		time.Since(restarted).Round(time.Millisecond), heartbeatInterval)

	// The SDK's own cache recovers too (the restarted server lost its UDP subscribers;
	// the SDK re-subscribes when it polls, every cacheMillis).
	eventually(t, 15*time.Second, func() error {
		list, err := c.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "restart-e", GroupName: group})
		if err != nil {
			return err
		}
		if len(list) != 1 {
			return fmt.Errorf("SelectAllInstances(restart-e) = %+v, want the instance", list)
		}
		return checkSDK(list[0], wantE)
	})

	// The instance keeps beating after its re-registration: still healthy two heartbeat
	// timeouts later.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(2 * heartbeatTimeout); time.Now().Before(end); <-tick.C {
		if err := listed(refE, wantE); err != nil {
			t.Fatalf("after re-registration: %v", err)
		}
	}
}
