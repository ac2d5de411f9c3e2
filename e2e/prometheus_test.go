package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
)

// How long Prometheus takes to follow a change of its http_sd answer: it refreshes the
// discovery every second here, but its discovery manager hands target changes to the
// scrape manager at most every 5 s, and a new target is reported up after its first
// scrape.
const prometheusFollow = 40 * time.Second

// TestPrometheusDiscoversTargets runs a real Prometheus (Debian's package) with two
// jobs whose http_sd_configs point at Roster's /nacos/prometheus/namespaceId/public: one
// at a server with auth off, one at a server with --auth through basic_auth, as a
// Prometheus configured for Nacos with auth on does. Two persistent instances are
// registered in each, at 127.0.0.1 ports where the test serves /metrics: both become
// active targets of each job with Nacos' labels (__meta_clusterName among the
// discovered labels, metadata as target labels) and are scraped (health up). One is
// deregistered, and it leaves both jobs while the other stays.
func TestPrometheusDiscoversTargets(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed: Debian's prometheus package, which `bash e2e/prometheus.sh` " +
			"installs (make e2e runs it); that script reports why it could not")
	}
	open := NewServer(t, "n1")
	secured := NewServer(t, "n2")
	secured.Extra = []string{"--auth"}
	open.Launch()
	secured.Launch()
	open.WaitReady()
	secured.WaitReady()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	openClient := rosterClient(t, open)
	securedClient := prometheusUser(ctx, t, secured, "prometheus", "prometheus-password-1")

	// The scrape targets: loopback listeners that count Prometheus' scrapes.
	a, b := newMetricsTarget(t), newMetricsTarget(t)
	svc := client.ServiceRef{Namespace: "public", Group: "DEFAULT_GROUP", Name: "metrics-app"}
	instA := client.Instance{IP: "127.0.0.1", Port: a.port, Weight: 1, Healthy: true, Enabled: true,
		ClusterName: "DEFAULT", Metadata: map[string]string{"app.version": "1.0"}}
	instB := client.Instance{IP: "127.0.0.1", Port: b.port, Weight: 1, Healthy: true, Enabled: true,
		ClusterName: "cb"}
	for _, c := range []*client.Client{openClient, securedClient} {
		for _, inst := range []client.Instance{instA, instB} {
			if err := c.RegisterInstance(ctx, svc, inst); err != nil {
				t.Fatalf("register %s:%d at %s: %v", inst.IP, inst.Port, c.Addr(), err)
			}
		}
	}

	prom := startPrometheus(t, promBin, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: roster
    http_sd_configs:
      - url: %[1]s/nacos/prometheus/namespaceId/public
        refresh_interval: 1s
  - job_name: roster-auth
    http_sd_configs:
      - url: %[2]s/nacos/prometheus/namespaceId/public
        refresh_interval: 1s
        basic_auth:
          username: prometheus
          password: prometheus-password-1
`, open.URL, secured.URL))

	addrA, addrB := "127.0.0.1:"+strconv.Itoa(a.port), "127.0.0.1:"+strconv.Itoa(b.port)
	want := map[string]map[string]expectTarget{
		"roster":      {addrA: {cluster: "DEFAULT", labels: map[string]string{"app_version": "1.0"}}, addrB: {cluster: "cb"}},
		"roster-auth": {addrA: {cluster: "DEFAULT", labels: map[string]string{"app_version": "1.0"}}, addrB: {cluster: "cb"}},
	}
	start := time.Now()
	eventually(t, prometheusFollow, func() error { return prom.checkTargets(want) })
	t.Logf("both instances are up targets of both jobs %v after Prometheus started", time.Since(start).Round(time.Millisecond))
	if a.scrapes.Load() == 0 || b.scrapes.Load() == 0 {
		t.Fatalf("targets up but scrapes counted: a %d, b %d", a.scrapes.Load(), b.scrapes.Load())
	}

	for _, c := range []*client.Client{openClient, securedClient} {
		if err := c.DeregisterInstance(ctx, svc, instA); err != nil {
			t.Fatalf("deregister %s at %s: %v", addrA, c.Addr(), err)
		}
	}
	delete(want["roster"], addrA)
	delete(want["roster-auth"], addrA)
	start = time.Now()
	eventually(t, prometheusFollow, func() error { return prom.checkTargets(want) })
	t.Logf("the deregistered instance left both jobs %v after the deregistration", time.Since(start).Round(time.Millisecond))
}

// prometheusUser bootstraps the ACL of an --auth server and returns its admin's client,
// after creating a user that may read namespace public: the one Prometheus logs in as.
func prometheusUser(ctx context.Context, t *testing.T, s *Server, user, password string) *client.Client {
	t.Helper()
	admin, err := rosterClient(t, s).ACLBootstrap(ctx, "", "")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	c := rosterClient(t, s)
	if _, err := c.Login(ctx, admin.Username, admin.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	if err := c.BindRole(ctx, "monitoring", user); err != nil {
		t.Fatal(err)
	}
	if err := c.AddGrant(ctx, client.Grant{Role: "monitoring", Resource: "public", Action: "r"}); err != nil {
		t.Fatal(err)
	}
	return c
}

// metricsTarget is a /metrics endpoint on 127.0.0.1 that counts its scrapes.
type metricsTarget struct {
	port    int
	scrapes atomic.Int64
}

func newMetricsTarget(t *testing.T) *metricsTarget {
	t.Helper()
	m := &metricsTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		m.scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE roster_e2e_target gauge")
		fmt.Fprintln(w, "roster_e2e_target 1")
	}))
	t.Cleanup(srv.Close)
	port, err := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	m.port = port
	return m
}

// prometheus is a running Prometheus server on a loopback port.
type prometheus struct {
	url string
	log string
}

// startPrometheus runs prometheus with config on a free 127.0.0.1 port and a temporary
// storage dir, waits until /-/ready answers, and stops it when the test ends. The
// config has no alerting, remote storage or other outside targets: it dials Roster
// and the loopback targets Roster lists, nothing else.
func startPrometheus(t *testing.T, bin, config string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{url: "http://127.0.0.1:" + strconv.Itoa(freePort(t)), log: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(p.url, "http://"),
		"--log.level=debug",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log %s, last lines:\n%s", p.log, tail(p.log, 60))
		}
	})
	hc := &http.Client{Timeout: time.Second}
	eventually(t, 30*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready:\n%s", tail(p.log, 40))
		default:
		}
		resp, err := hc.Get(p.url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /-/ready = %s", resp.Status)
		}
		return nil
	})
	return p
}

// expectTarget is what one discovered target must carry.
type expectTarget struct {
	cluster string            // discovered __meta_clusterName
	labels  map[string]string // target labels besides job and instance
}

type promTarget struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	Labels           map[string]string `json:"labels"`
	ScrapePool       string            `json:"scrapePool"`
	Health           string            `json:"health"`
	LastError        string            `json:"lastError"`
}

// checkTargets compares Prometheus' active targets (GET /api/v1/targets) with want: per
// job, exactly these addresses, each up, with the cluster and labels given.
func (p *prometheus) checkTargets(want map[string]map[string]expectTarget) error {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(p.url + "/api/v1/targets?state=active")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		return fmt.Errorf("GET /api/v1/targets: status %q, %v", out.Status, err)
	}
	got := map[string]map[string]promTarget{}
	for _, tg := range out.Data.ActiveTargets {
		if got[tg.ScrapePool] == nil {
			got[tg.ScrapePool] = map[string]promTarget{}
		}
		got[tg.ScrapePool][tg.Labels["instance"]] = tg
	}
	for job, targets := range want {
		var have []string
		for addr := range got[job] {
			have = append(have, addr)
		}
		slices.Sort(have)
		if len(have) != len(targets) {
			return fmt.Errorf("job %s has targets %v, want %d: %v", job, have, len(targets), targets)
		}
		for addr, w := range targets {
			tg, ok := got[job][addr]
			switch {
			case !ok:
				return fmt.Errorf("job %s has targets %v, not %s", job, have, addr)
			case tg.DiscoveredLabels["__address__"] != addr || tg.DiscoveredLabels["__meta_clusterName"] != w.cluster:
				return fmt.Errorf("job %s target %s discovered labels %v, want __address__ %s, __meta_clusterName %s",
					job, addr, tg.DiscoveredLabels, addr, w.cluster)
			case tg.Labels["job"] != job:
				return fmt.Errorf("job %s target %s labels %v", job, addr, tg.Labels)
			case tg.Health != "up":
				return fmt.Errorf("job %s target %s health %q (last error %q), want up", job, addr, tg.Health, tg.LastError)
			}
			for k, v := range w.labels {
				if tg.Labels[k] != v {
					return fmt.Errorf("job %s target %s labels %v, want %s=%s", job, addr, tg.Labels, k, v)
				}
			}
			if len(tg.Labels) != 2+len(w.labels) {
				return fmt.Errorf("job %s target %s labels %v, want job, instance and %v only", job, addr, tg.Labels, w.labels)
			}
		}
	}
	return nil
}
