package registry

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/roster-registry/roster/fsm"
	"github.com/roster-registry/roster/healthcheck"
	"github.com/roster-registry/roster/naming"
)

var testView = ProbeView{Prober: "n1", Members: []string{"n1"}, Epoch: 1}

func targetOf(t *testing.T, r *Registry, svc naming.ServiceKey, ip string) (ProbeTarget, bool) {
	t.Helper()
	list, err := r.ProbeTargets()
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range list {
		if pt.Service == svc && pt.IP == ip {
			return pt, true
		}
	}
	return ProbeTarget{}, false
}

func TestProbeTargetsFollowWrites(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	if list, err := r.ProbeTargets(); err != nil || len(list) != 0 {
		t.Fatalf("targets of an empty registry: %v %v", list, err)
	}
	_ = r.Register(ctx, key("eph"), inst("1.1.1.1", 80, true))
	_ = r.Register(ctx, key("b"), inst("2.2.2.2", 8080, false))
	_ = r.Register(ctx, key("a"), inst("2.2.2.1", 8080, false))
	list, err := r.ProbeTargets()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Service != key("a") || list[1].Service != key("b") {
		t.Fatalf("targets = %+v, want the two persistent instances, a's first", list)
	}
	pt := list[1]
	if pt.IP != "2.2.2.2" || pt.Port != 8080 || pt.CheckPort != 8080 || pt.Cluster != naming.DefaultCluster ||
		pt.Checker != (naming.HealthChecker{Type: naming.CheckerTCP}) || !pt.Healthy || pt.Revision == 0 {
		t.Errorf("target = %+v, want a TCP check of the instance's port", pt)
	}
	// At steady state a call reads nothing: the same list comes back.
	again, _ := r.ProbeTargets()
	if &again[0] != &list[0] {
		t.Error("a second call without changes rebuilt the list")
	}

	// A changed cluster: an HTTP check of port 9000, then NONE (no longer a target).
	httpCheck := naming.Cluster{Name: naming.DefaultCluster, HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/h", ExpectedResponseCode: 200},
		CheckPort: 9000, UseInstancePort: false}
	if err := r.UpdateCluster(ctx, key("b"), httpCheck); err != nil {
		t.Fatal(err)
	}
	got, ok := targetOf(t, r, key("b"), "2.2.2.2")
	if !ok || got.Checker.Type != "HTTP" || got.CheckPort != 9000 || got.Revision != pt.Revision {
		t.Errorf("after the cluster update: %+v (revision %d before)", got, pt.Revision)
	}
	httpCheck.HealthChecker = naming.HealthChecker{Type: naming.CheckerNone}
	if err := r.UpdateCluster(ctx, key("b"), httpCheck); err != nil {
		t.Fatal(err)
	}
	if got, ok := targetOf(t, r, key("b"), "2.2.2.2"); ok {
		t.Errorf("an instance of a NONE cluster is a target: %+v", got)
	}
	_ = r.Deregister(ctx, key("a"), "2.2.2.1", 8080, naming.DefaultCluster, false)
	if list, _ := r.ProbeTargets(); len(list) != 0 {
		t.Errorf("targets after the last probed instance left: %+v", list)
	}
}

func TestFlipHealth(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	svc := key("f")
	_ = r.Register(ctx, svc, inst("3.3.3.3", 80, false))
	pt, ok := targetOf(t, r, svc, "3.3.3.3")
	if !ok {
		t.Fatal("no target")
	}
	before, _ := r.List(ctx, Query{Service: svc})
	var mu sync.Mutex
	var watched []naming.ServiceKey
	r.Watch(func(k naming.ServiceKey) {
		mu.Lock()
		watched = append(watched, k)
		mu.Unlock()
	})

	if err := r.FlipHealth(ctx, svc, pt.Ref(), false, pt.Revision, testView); err != nil {
		t.Fatal(err)
	}
	got, err := r.Instance(ctx, svc, "3.3.3.3", 80, naming.DefaultCluster)
	if err != nil || got.Healthy {
		t.Fatalf("after the flip: %+v %v", got, err)
	}
	after, _ := r.List(ctx, Query{Service: svc, HealthyOnly: true})
	if len(after.Hosts) != 0 || after.LastRefTime <= before.LastRefTime {
		t.Errorf("list after the flip: %+v (lastRefTime before %d)", after, before.LastRefTime)
	}
	mu.Lock()
	if len(watched) != 1 || watched[0] != svc {
		t.Errorf("watchers saw %v, want the service once", watched)
	}
	mu.Unlock()
	flipped, _ := targetOf(t, r, svc, "3.3.3.3")
	if flipped.Healthy || flipped.Revision <= pt.Revision {
		t.Errorf("target after the flip: %+v", flipped)
	}

	// The same flip from the old observation is stale; the answer says the revision.
	err = r.FlipHealth(ctx, svc, pt.Ref(), true, pt.Revision, testView)
	var rej *fsm.FlipRejection
	if !errors.As(err, &rej) || rej.Outcome != fsm.FlipStaleRevision || rej.Revision != flipped.Revision {
		t.Fatalf("stale flip = %v, want a stale-revision rejection at %d", err, flipped.Revision)
	}
	if got, _ := r.Instance(ctx, svc, "3.3.3.3", 80, naming.DefaultCluster); got.Healthy {
		t.Error("a stale flip changed the health")
	}
	// Already so: a success that writes nothing.
	if err := r.FlipHealth(ctx, svc, pt.Ref(), false, flipped.Revision, testView); err != nil {
		t.Errorf("flip to the health it has = %v", err)
	}
	// Gone, and bad input.
	if err := r.FlipHealth(ctx, svc, InstanceRef{IP: "9.9.9.9", Port: 1, Cluster: naming.DefaultCluster}, false, 0, testView); !errors.As(err, &rej) || rej.Outcome != fsm.FlipGone {
		t.Errorf("flip of a missing instance = %v", err)
	}
	if err := r.FlipHealth(ctx, svc, pt.Ref(), true, flipped.Revision, ProbeView{Members: []string{"n1"}}); statusOf(err) != http.StatusBadRequest {
		t.Errorf("flip without a prober = %v", err)
	}
}

// TestManualHealthOnlyForNone: PUT /health/instance is refused with Nacos' text where
// the servers check (TCP by default, and ephemeral services) and applied for NONE.
func TestManualHealthOnlyForNone(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	svc := key("m")
	_ = r.Register(ctx, svc, inst("4.4.4.4", 80, false))
	_ = r.Register(ctx, key("eph"), inst("4.4.4.5", 80, true))
	for _, c := range []struct {
		svc naming.ServiceKey
		ip  string
	}{{svc, "4.4.4.4"}, {key("eph"), "4.4.4.5"}, {key("nosuch"), "4.4.4.6"}} {
		err := r.SetHealth(ctx, c.svc, c.ip, 80, naming.DefaultCluster, false)
		want := "health check is still working, service: DEFAULT_GROUP@@" + c.svc.Name + ", cluster: DEFAULT"
		if statusOf(err) != http.StatusBadRequest || err.Error() != want {
			t.Errorf("manual health in %s = %v, want 400 %q", c.svc.Name, err, want)
		}
	}
	pt, _ := targetOf(t, r, svc, "4.4.4.4")
	if err := r.UpdateCluster(ctx, svc, naming.Cluster{Name: naming.DefaultCluster, HealthChecker: naming.HealthChecker{Type: naming.CheckerNone}}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetHealth(ctx, svc, "4.4.4.4", 80, naming.DefaultCluster, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Instance(ctx, svc, "4.4.4.4", 80, naming.DefaultCluster); got.Healthy {
		t.Error("manual health was not applied")
	}
	// The checker is on again; a result from before the manual change is stale.
	if err := r.UpdateCluster(ctx, svc, naming.Cluster{Name: naming.DefaultCluster, HealthChecker: naming.HealthChecker{Type: naming.CheckerTCP}}); err != nil {
		t.Fatal(err)
	}
	var rej *fsm.FlipRejection
	if err := r.FlipHealth(ctx, svc, pt.Ref(), true, pt.Revision, testView); !errors.As(err, &rej) || rej.Outcome != fsm.FlipStaleRevision {
		t.Errorf("flip from before the manual change = %v", err)
	}
}

func TestUpdateCluster(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	c := naming.Cluster{Name: "blue", HealthChecker: naming.HealthChecker{Type: "GRPC", Service: "pkg.S"}, Metadata: map[string]string{"k": "v"}, CheckPort: 9090}
	err := r.UpdateCluster(ctx, key("ghost"), c)
	if statusOf(err) != http.StatusBadRequest || err.Error() != "service not found:DEFAULT_GROUP@@ghost" {
		t.Fatalf("cluster of a missing service = %v", err)
	}
	bad := c
	bad.HealthChecker.Type = "FOO"
	if err := r.UpdateCluster(ctx, key("ghost"), bad); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("bad checker = %v", err)
	}
	_ = r.Register(ctx, key("p"), inst("5.5.5.5", 80, false))
	if err := r.UpdateCluster(ctx, key("p"), c); err != nil {
		t.Fatal(err)
	}
	d, err := r.GetService(ctx, key("p"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Clusters) != 2 || d.Clusters[0].Name != "DEFAULT" || d.Clusters[1].Name != "blue" {
		t.Fatalf("clusters = %+v", d.Clusters)
	}
	if def := d.Clusters[0]; def.HealthChecker.Type != "TCP" || !def.UseInstancePort || def.CheckPort != 80 {
		t.Errorf("the instance's cluster without a record = %+v, want Nacos' default", def)
	}
	if blue := d.Clusters[1]; blue.HealthChecker != c.HealthChecker || blue.CheckPort != 9090 || blue.Metadata["k"] != "v" {
		t.Errorf("blue = %+v", blue)
	}
	// A service update leaves the clusters as they are.
	th := 0.5
	if err := r.UpdateService(ctx, key("p"), ServiceUpdate{ProtectThreshold: &th}); err != nil {
		t.Fatal(err)
	}
	if d, err := r.GetService(ctx, key("p")); err != nil || d.Service.ProtectThreshold != 0.5 || d.Clusters[1].HealthChecker != c.HealthChecker {
		t.Errorf("after a service update: %+v %v", d, err)
	}
	// A service only the ephemeral store knows gets a record, ephemeral, and no targets.
	_ = r.Register(ctx, key("e"), inst("6.6.6.6", 80, true))
	if err := r.UpdateCluster(ctx, key("e"), c); err != nil {
		t.Fatal(err)
	}
	if d, err := r.GetService(ctx, key("e")); err != nil || len(d.Clusters) != 2 || !d.Service.Ephemeral {
		t.Errorf("ephemeral service after the cluster update: %+v %v", d, err)
	}
	if _, ok := targetOf(t, r, key("e"), "6.6.6.6"); ok {
		t.Error("an ephemeral instance is a probe target")
	}
	if err := r.Register(ctx, key("e"), inst("6.6.6.7", 80, true)); err != nil {
		t.Errorf("the service is no longer ephemeral: %v", err)
	}
	if _, err := r.CatalogService(ctx, key("ghost")); statusOf(err) != http.StatusNotFound || err.Error() != "service DEFAULT_GROUP@@ghost is not found!" {
		t.Errorf("catalog of a missing service = %v", err)
	}
}

func TestProberSourceWalksTheSameTargets(t *testing.T) {
	r, _, _ := newRegistry(t)
	ctx := context.Background()
	for _, name := range []string{"c", "a", "b"} {
		for _, port := range []int{8080, 8081} {
			if err := r.Register(ctx, key(name), inst("2.2.2.2", port, false)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// c probes the cluster's checkPort, b an HTTP path, a the instances' own ports.
	if err := r.UpdateCluster(ctx, key("c"), naming.Cluster{Name: naming.DefaultCluster,
		HealthChecker: naming.HealthChecker{Type: naming.CheckerTCP}, CheckPort: 9000, UseInstancePort: false}); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateCluster(ctx, key("b"), naming.Cluster{Name: naming.DefaultCluster,
		HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/h", ExpectedResponseCode: 204}, UseInstancePort: true}); err != nil {
		t.Fatal(err)
	}
	list, err := r.ProbeTargets()
	if err != nil {
		t.Fatal(err)
	}
	got := probeSource{r}.Targets()
	if len(got) != len(list) || len(got) != 6 {
		t.Fatalf("prober source lists %d targets, ProbeTargets %d, want 6", len(got), len(list))
	}
	wantDial := []int{8080, 8081, 8080, 8081, 9000, 9000} // a, b, c
	for i, g := range got {
		if g.DialPort() != wantDial[i] {
			t.Errorf("target %d (%s:%d of %s) dials %d, want %d", i, g.IP, g.Port, g.Service.Name, g.DialPort(), wantDial[i])
		}
	}
	if c := got[2].Checker; c.Type != healthcheck.TypeHTTP || c.Path != "/h" || len(c.ExpectedCodes) != 1 || c.ExpectedCodes[0] != 204 {
		t.Errorf("b's checker = %+v", c)
	}
	// The targets of one cluster share its checker; other clusters have their own.
	if got[0].Checker != got[1].Checker || got[4].Checker != got[5].Checker || got[0].Checker == got[4].Checker || got[0].Checker == got[2].Checker {
		t.Error("checkers are not shared per cluster, or shared across clusters")
	}
	for i, pt := range list {
		g := got[i]
		if g.Service != pt.Service || g.IP != pt.IP || g.Port != pt.Port || g.Cluster != pt.Cluster ||
			g.Revision != pt.Revision || g.Healthy != pt.Healthy || string(g.Checker.Type) != string(pt.Checker.Type) || g.DialPort() != pt.CheckPort {
			t.Errorf("target %d: prober source %+v, ProbeTargets %+v", i, g, pt)
		}
	}
}
