package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/roster-registry/roster/naming"
)

// prometheusState registers what the Prometheus discovery tests read: two namespaces,
// two groups holding a service of the same name, clusters, metadata keys with '.' and
// '-', and instances that must not be listed (unhealthy, disabled).
func prometheusState(s *stack, token string) {
	s.t.Helper()
	reg := func(kv ...string) {
		s.t.Helper()
		v := vals(kv...)
		if token != "" {
			v = withToken(v, token)
		}
		s.must(http.MethodPost, "/nacos/v1/ns/instance", v)
	}
	reg("serviceName", "orders", "ip", "127.0.0.1", "port", "9101", "metadata", `{"version":"1.2","app.zone":"a","team-name":"x"}`)
	reg("serviceName", "orders", "ip", "127.0.0.2", "port", "9101", "clusterName", "ca")
	reg("serviceName", "orders", "groupName", "pay", "ip", "127.0.0.3", "port", "9102", "ephemeral", "false")
	reg("serviceName", "billing", "ip", "127.0.0.4", "port", "9103", "ephemeral", "false", "metadata", "k=v")
	reg("serviceName", "billing", "ip", "127.0.0.5", "port", "9103", "ephemeral", "false", "healthy", "false")
	reg("serviceName", "billing", "ip", "127.0.0.6", "port", "9103", "ephemeral", "false", "enabled", "false")
	reg("namespaceId", "A", "serviceName", "orders", "ip", "127.0.0.7", "port", "9104", "clusterName", "cb")
}

// TestPrometheusGoldenAnswers keeps every discovery answer in testdata/api/prometheus_*.
func TestPrometheusGoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	prometheusState(s, "")
	// The instances left out are there, one unhealthy and one disabled.
	billing := naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "billing"}
	for ip, want := range map[string][2]bool{"127.0.0.5": {false, true}, "127.0.0.6": {true, false}} {
		inst, err := s.reg.Instance(context.Background(), billing, ip, 9103, naming.DefaultCluster)
		if err != nil || inst.Healthy != want[0] || inst.Enabled != want[1] {
			t.Fatalf("instance %s = %+v, %v; want healthy %v enabled %v", ip, inst, err, want[0], want[1])
		}
	}
	for _, c := range []struct{ name, path string }{
		{"all", "/nacos/prometheus"},
		{"namespace", "/nacos/prometheus/namespaceId/public"},
		{"namespace_other", "/nacos/prometheus/namespaceId/A"},
		{"namespace_unknown", "/nacos/prometheus/namespaceId/nope"},
		{"service", "/nacos/prometheus/namespaceId/public/service/orders"},
		{"service_billing", "/nacos/prometheus/namespaceId/public/service/billing"},
		{"service_grouped_name", "/nacos/prometheus/namespaceId/public/service/pay@@orders"},
		{"service_unknown", "/nacos/prometheus/namespaceId/public/service/nope"},
		{"service_unknown_namespace", "/nacos/prometheus/namespaceId/nope/service/orders"},
	} {
		golden(t, "prometheus_"+c.name, s.do(http.MethodGet, c.path, nil))
	}
}

// TestPrometheusAnswerIsHTTPSD checks what Prometheus' http_sd client requires of the
// answer: 200, an application/json content type, and a JSON array of target groups
// whose label names are valid.
func TestPrometheusAnswerIsHTTPSD(t *testing.T) {
	s := newStack(t, stackOptions{})
	prometheusState(s, "")
	resp, err := http.Get(s.srv.URL + "/nacos/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		t.Fatalf("answer %d, Content-Type %q", resp.StatusCode, ct)
	}
	var groups []httpSDGroup
	if err := json.NewDecoder(resp.Body).Decode(&groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 5 {
		t.Fatalf("%d target groups, want 5 (healthy and enabled only): %+v", len(groups), groups)
	}
	for _, g := range groups {
		if len(g.Targets) != 1 || !strings.HasPrefix(g.Targets[0], "127.0.0.") {
			t.Errorf("targets %v, want one loopback ip:port", g.Targets)
		}
		for name := range g.Labels {
			if !validLabelName(name) {
				t.Errorf("label name %q is invalid for Prometheus", name)
			}
		}
	}
	// The empty answer is an empty array, never null.
	if a := s.do(http.MethodGet, "/nacos/prometheus/namespaceId/nope", nil); a.status != 200 || a.body != "[]" {
		t.Fatalf("unknown namespace = %d %q, want 200 []", a.status, a.body)
	}
}

// validLabelName is Prometheus' label name rule: [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(name string) bool {
	for i, c := range name {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return name != ""
}

func TestPrometheusLabels(t *testing.T) {
	for _, c := range []struct {
		name     string
		metadata map[string]string
		want     map[string]string
	}{
		{"none", nil, map[string]string{"__meta_clusterName": "DEFAULT"}},
		{"dots and dashes", map[string]string{"preserved.register.source": "SPRING_CLOUD", "team-name": "x", "plain": "p"},
			map[string]string{"__meta_clusterName": "DEFAULT", "preserved_register_source": "SPRING_CLOUD", "team_name": "x", "plain": "p"}},
		// Nacos writes the metadata after the cluster, so a key of that name replaces it.
		{"metadata over cluster", map[string]string{"__meta_clusterName": "m"}, map[string]string{"__meta_clusterName": "m"}},
		// Keys that become one name: the one spelled that way wins, else the smallest.
		{"exact name wins", map[string]string{"a.b": "dot", "a_b": "underscore", "a-b": "dash"}, map[string]string{"__meta_clusterName": "DEFAULT", "a_b": "underscore"}},
		{"smallest key wins", map[string]string{"a.b": "dot", "a-b": "dash"}, map[string]string{"__meta_clusterName": "DEFAULT", "a_b": "dash"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for range 20 { // map order varies from run to run; the answer must not
				got := prometheusLabels(&naming.Instance{ClusterName: "DEFAULT", Metadata: c.metadata})
				if len(got) != len(c.want) {
					t.Fatalf("labels %v, want %v", got, c.want)
				}
				for k, v := range c.want {
					if got[k] != v {
						t.Fatalf("labels %v, want %v", got, c.want)
					}
				}
			}
		})
	}
}

// TestPrometheusAuth: with auth off every discovery route answers without credentials
// (TestPrometheusGoldenAnswers); with it on, none does, HTTP Basic (what Prometheus'
// basic_auth sends, and what Nacos takes here) works as well as a token, the
// all-namespaces route lists only what the caller may read, and a per-namespace route
// needs read on that whole namespace.
func TestPrometheusAuth(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	const adminPassword = "Pw-prometheus-admin"
	if a := s.do(http.MethodPost, "/roster/v1/acl/bootstrap", vals("username", "admin", "password", adminPassword)); a.status != 200 {
		t.Fatalf("bootstrap = %d %q", a.status, a.body)
	}
	admin := s.login("admin", adminPassword)
	prometheusState(s, admin)
	paths := []string{
		"/nacos/prometheus",
		"/nacos/prometheus/namespaceId/public",
		"/nacos/prometheus/namespaceId/public/service/orders",
	}
	for _, p := range paths {
		if a := s.do(http.MethodGet, p, nil); a.status != 403 || a.body != "user not found!" {
			t.Errorf("GET %s without credentials = %d %q, want 403 user not found!", p, a.status, a.body)
		}
	}

	user := func(name, resource string) string {
		t.Helper()
		a := s.do(http.MethodPost, "/roster/v1/acl/users", withToken(vals("username", name), admin))
		var cred credentialAnswer
		if a.status != 200 || json.Unmarshal([]byte(a.body), &cred) != nil {
			t.Fatalf("create user %s = %d %q", name, a.status, a.body)
		}
		for _, step := range []struct {
			path string
			v    url.Values
		}{
			{"/roster/v1/acl/roles", vals("role", name+"-role", "username", name)},
			{"/roster/v1/acl/grants", vals("role", name+"-role", "resource", resource, "action", "r")},
		} {
			if a := s.do(http.MethodPost, step.path, withToken(step.v, admin)); a.status != 200 {
				t.Fatalf("POST %s = %d %q", step.path, a.status, a.body)
			}
		}
		return cred.Password
	}
	basic := func(path, name, password string) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(name, password)
		return s.send(req)
	}
	targets := func(a answer) string {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("answer %d %q, want 200", a.status, a.body)
		}
		var groups []httpSDGroup
		if err := json.Unmarshal([]byte(a.body), &groups); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range groups {
			out = append(out, g.Targets...)
		}
		return strings.Join(out, " ")
	}

	// The admin sees everything, by Basic and by token alike.
	const everything = "127.0.0.4:9103 127.0.0.1:9101 127.0.0.3:9102 127.0.0.2:9101 127.0.0.7:9104"
	if got := targets(basic("/nacos/prometheus", "admin", adminPassword)); got != everything {
		t.Errorf("admin by Basic: %s, want %s", got, everything)
	}
	if got := targets(s.do(http.MethodGet, "/nacos/prometheus", withToken(nil, admin))); got != everything {
		t.Errorf("admin by token: %s, want %s", got, everything)
	}
	if a := basic("/nacos/prometheus", "admin", adminPassword+"x"); a.status != 403 || a.body != "user not found!" {
		t.Errorf("wrong Basic password = %d %q", a.status, a.body)
	}
	// Basic is taken on the discovery routes only, as Nacos takes it.
	if a := basic("/nacos/v1/ns/instance/list?serviceName=orders", "admin", adminPassword); a.status != 403 || a.body != "user not found!" {
		t.Errorf("Basic on /nacos/v1/ns/instance/list = %d %q, want 403 user not found!", a.status, a.body)
	}

	// A reader of namespace A sees A only, and may not ask for public.
	readerA := user("reader-a", "A")
	if got := targets(basic("/nacos/prometheus", "reader-a", readerA)); got != "127.0.0.7:9104" {
		t.Errorf("reader of A, all namespaces: %s", got)
	}
	if got := targets(basic("/nacos/prometheus/namespaceId/A", "reader-a", readerA)); got != "127.0.0.7:9104" {
		t.Errorf("reader of A, namespace A: %s", got)
	}
	for _, p := range paths[1:] {
		if a := basic(p, "reader-a", readerA); a.status != 403 || a.body != "authorization failed!" {
			t.Errorf("reader of A, GET %s = %d %q, want 403 authorization failed!", p, a.status, a.body)
		}
	}

	// A reader of one group of public sees that group in the all-namespaces answer, but
	// the per-namespace routes cover every group of public and need all of it.
	readerPay := user("reader-pay", "public:pay")
	if got := targets(basic("/nacos/prometheus", "reader-pay", readerPay)); got != "127.0.0.3:9102" {
		t.Errorf("reader of public:pay, all namespaces: %s", got)
	}
	for _, p := range paths[1:] {
		if a := basic(p, "reader-pay", readerPay); a.status != 403 || a.body != "authorization failed!" {
			t.Errorf("reader of public:pay, GET %s = %d %q, want 403 authorization failed!", p, a.status, a.body)
		}
	}
	// An escaped path reaches the route the authorize middleware checked.
	if a := basic("/nacos/prometheus/namespaceId/A%2Fservice%2Forders", "reader-a", readerA); a.status != 403 {
		t.Errorf("escaped namespace path = %d %q, want 403", a.status, a.body)
	}
}
