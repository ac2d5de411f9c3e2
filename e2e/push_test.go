package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/model"
	"github.com/nacos-group/nacos-sdk-go/vo"

	"github.com/roster-registry/roster/client"
)

// TestNacosSDKPushClustersGzip: a subscriber of one cluster gets pushes whose ServiceInfo
// echoes its clusters (the SDK keys its cache on name + clusters), and a push larger than
// the SDK's 4024-byte UDP read arrives gzipped and whole.
func TestNacosSDKPushClustersGzip(t *testing.T) {
	s := StartServer(t)
	rc := rosterClient(t, s)
	ctx := ctxT(t)
	const group, name = "PUSH", "big"
	ref := client.ServiceRef{Group: group, Name: name}

	// 40 persistent instances, half in cluster ca; long metadata makes the ca list
	// larger than 4024 bytes of JSON.
	pad := strings.Repeat("x", 120)
	reg := func(i int, cluster string) {
		t.Helper()
		inst := client.NewInstance(fmt.Sprintf("127.0.10.%d", i+1), 30000+i)
		inst.Ephemeral, inst.ClusterName = false, cluster
		inst.Metadata = map[string]string{"i": strconv.Itoa(i), "pad": pad}
		if err := rc.RegisterInstance(ctx, ref, inst); err != nil {
			t.Fatalf("register #%d: %v", i, err)
		}
	}
	for i := range 40 {
		reg(i, []string{"ca", "cb"}[i%2])
	}

	c := newNacosClient(t, s, "")
	sub := newSubscription()
	firstFetch := time.Now()
	if err := c.Subscribe(&vo.SubscribeParam{ServiceName: name, GroupName: group, Clusters: []string{"ca"},
		SubscribeCallback: sub.fn}); err != nil {
		t.Fatalf("Subscribe(%s, clusters ca): %v", name, err)
	}
	onlyCA := func(n int) func([]model.SubscribeService) bool {
		return func(hosts []model.SubscribeService) bool {
			if len(hosts) != n {
				return false
			}
			for _, h := range hosts {
				if h.ClusterName != "ca" {
					return false
				}
			}
			return true
		}
	}
	sub.await(t, firstFetch, pushDeadline, "the 20 instances of cluster ca", onlyCA(20))

	svc, err := c.GetService(vo.GetServiceParam{ServiceName: name, GroupName: group, Clusters: []string{"ca"}})
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	if svc.Name != group+"@@"+name || svc.Clusters != "ca" {
		t.Errorf("GetService(clusters ca) = name %q clusters %q; want %q, \"ca\"", svc.Name, svc.Clusters, group+"@@"+name)
	}

	// The list the push will carry is larger than the SDK reads from one datagram.
	q := url.Values{"serviceName": {name}, "groupName": {group}, "clusters": {"ca"}}
	resp, err := http.Get(s.URL + "/nacos/v1/ns/instance/list?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(raw) <= 4024 {
		t.Fatalf("cluster ca's list is %d bytes; the test needs more than 4024", len(raw))
	}

	pollEarliest := firstFetch.Add(time.Duration(svc.CacheMillis) * time.Millisecond)
	if svc.CacheMillis < 5000 || time.Until(pollEarliest) < pushDeadline {
		t.Fatalf("cannot tell a push from a poll: cacheMillis %d, earliest poll in %v", svc.CacheMillis, time.Until(pollEarliest))
	}
	before := time.Now()
	reg(40, "ca")
	got := sub.await(t, before, pushDeadline, "the 21st instance of cluster ca (a gzipped push)", onlyCA(21))
	if !got.at.Before(pollEarliest) {
		t.Errorf("the change arrived at %v, not before the earliest poll %v", got.at, pollEarliest)
	}
	t.Logf("%d-byte list pushed to the ca subscriber %v after the registration",
		len(raw), got.at.Sub(before).Round(time.Millisecond))
}
