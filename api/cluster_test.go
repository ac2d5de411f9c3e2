package api

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	checkerTCP  = `{"type":"TCP"}`
	checkerHTTP = `{"type":"HTTP","path":"/health","headers":"","expectedResponseCode":200}`
)

func clusterParams(kv ...string) []string {
	base := []string{"serviceName", "billing", "clusterName", "c1", "checkPort", "8081", "useInstancePort4Check", "false", "healthChecker", checkerHTTP}
	out := []string{}
	for i := 0; i+1 < len(base); i += 2 {
		replaced := false
		for j := 0; j+1 < len(kv); j += 2 {
			if kv[j] == base[i] {
				replaced = true
			}
		}
		if !replaced {
			out = append(out, base[i], base[i+1])
		}
	}
	for j := 0; j+1 < len(kv); j += 2 {
		if kv[j+1] != "<absent>" {
			out = append(out, kv[j], kv[j+1])
		}
	}
	return out
}

func TestClusterGoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "DEFAULT_GROUP@@billing", "ip", "10.0.0.6", "port", "9090",
		"ephemeral", "false", "clusterName", "c1"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "billing", "ip", "10.0.0.7", "port", "9090", "ephemeral", "false"))
	golden(t, "health_checkers", s.do("GET", "/nacos/v1/ns/health/checkers", nil))
	// Before any PUT /cluster every cluster has Nacos' default: TCP.
	golden(t, "catalog_service_default", s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing")))
	s.must("PUT", "/nacos/v1/ns/cluster", vals(clusterParams("metadata", `{"zone":"a"}`)...))
	golden(t, "get_service_checker", s.do("GET", "/nacos/v1/ns/service", vals("serviceName", "billing")))
	// The console asks with the group apart and the namespace blank.
	golden(t, "catalog_service", s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing", "groupName", "DEFAULT_GROUP", "namespaceId", "")))
	golden(t, "catalog_service_unknown", s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "nope")))
}

func TestPutClusterKinds(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "billing", "ip", "10.0.0.6", "port", "9090", "ephemeral", "false", "clusterName", "c1"))
	for _, tt := range []struct{ checker, shown string }{
		{`{"type":"GRPC","service":"pkg.Billing"}`, `"healthChecker":{"type":"GRPC","service":"pkg.Billing"}`},
		{`{"type":"NONE"}`, `"healthChecker":{"type":"NONE"}`},
		{`{"type":"TCP","path":"/ignored"}`, `"healthChecker":{"type":"TCP"}`},
		{`{"type":"HTTP","expectedResponseCode":"204","headers":"A:b"}`, `"healthChecker":{"type":"HTTP","path":"","headers":"A:b","expectedResponseCode":204}`},
	} {
		s.must("PUT", "/nacos/v1/ns/cluster", vals(clusterParams("healthChecker", tt.checker, "useInstancePort4Check", "true")...))
		a := s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing"))
		if a.status != 200 || !strings.Contains(a.body, tt.shown) || !strings.Contains(a.body, `"useIPPort4Check":true`) {
			t.Errorf("after PUT /cluster with %s: %d %s", tt.checker, a.status, a.body)
		}
	}
}

// TestPutClusterBadInput: each bad PUT /cluster gets Nacos' status and text, and the
// cluster stays as it was.
func TestPutClusterBadInput(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "billing", "ip", "10.0.0.6", "port", "9090", "ephemeral", "false", "clusterName", "c1"))
	s.must("PUT", "/nacos/v1/ns/cluster", vals(clusterParams()...))
	before := s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing"))
	const decode = "errCode: 101, errMsg: Nacos deserialize for class [com.alibaba.nacos.api.naming.pojo.healthcheck.AbstractHealthChecker] failed, cause error["
	tests := []struct {
		name   string
		params []string
		text   string // the answer starts with it
	}{
		{"no cluster name", clusterParams("clusterName", "<absent>"), "Param 'clusterName' is required."},
		{"no service", clusterParams("serviceName", "<absent>"), "Param 'serviceName' is required."},
		{"no check port", clusterParams("checkPort", "<absent>"), "Param 'checkPort' is required."},
		{"no useInstancePort4Check", clusterParams("useInstancePort4Check", "<absent>"), "Param 'useInstancePort4Check' is required."},
		{"no checker", clusterParams("healthChecker", "<absent>"), "Param 'healthChecker' is required."},
		{"checker not JSON", clusterParams("healthChecker", `{"type"="TCP"}`), decode},
		{"checker without type", clusterParams("healthChecker", `{"path":"/x"}`), "Param 'healthChecker' is illegal, type is required (TCP, HTTP, GRPC, NONE)."},
		{"unknown checker", clusterParams("healthChecker", `{"type":"MYSQL"}`), `Param 'healthChecker' is illegal, type "MYSQL" is not supported (TCP, HTTP, GRPC, NONE).`},
		{"bad expected code", clusterParams("healthChecker", `{"type":"HTTP","expectedResponseCode":700}`), "Param 'healthChecker' is illegal, expectedResponseCode should be between 100 and 599."},
		{"code not a number", clusterParams("healthChecker", `{"type":"HTTP","expectedResponseCode":"x"}`), decode},
		{"path to another host", clusterParams("healthChecker", `{"type":"HTTP","path":"@example.com/"}`), "Param 'healthChecker' is illegal, path should be empty or start with '/'."},
		{"check port not a number", clusterParams("checkPort", "http"), "Param 'port' is illegal, the value should be between 0 and 65535."},
		{"check port out of range", clusterParams("checkPort", "70000"), "Param 'port' is illegal, the value should be between 0 and 65535."},
		{"bad cluster name", clusterParams("clusterName", "c 1"), "Param 'cluster' is illegal, illegal characters should not appear in the param."},
		{"bad metadata", clusterParams("metadata", "zone"), "metadata format incorrect:zone"},
		{"metadata too long", clusterParams("metadata", `{"k":"`+strings.Repeat("v", 1100)+`"}`), "Param 'Metadata' is illegal, the param length should not exceed 1024."},
		{"bad service name", clusterParams("serviceName", "a b"), "Param 'serviceName' is illegal, illegal characters should not appear in the param."},
		{"bad namespace", clusterParams("namespaceId", "a/b"), "Param 'namespaceId/tenant' is illegal, illegal characters should not appear in the param."},
		// The checker's format is checked before the service's existence.
		{"unknown service", clusterParams("serviceName", "nope"), "service not found:DEFAULT_GROUP@@nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := s.do("PUT", "/nacos/v1/ns/cluster", vals(tt.params...))
			if a.status != 400 || !strings.HasPrefix(a.body, tt.text) {
				t.Fatalf("got %d %q\nwant 400 %q", a.status, a.body, tt.text)
			}
			if after := s.do("GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing")); after != before {
				t.Fatalf("a refused PUT /cluster changed the service:\n%s\nwas\n%s", after.body, before.body)
			}
		})
	}
	if a := s.do("GET", "/nacos/v1/ns/service", vals("serviceName", "nope")); a.status != 400 {
		t.Errorf("a refused PUT /cluster created a service: %d %s", a.status, a.body)
	}
}

// TestManualHealth: PUT /health/instance is Nacos' 400 for a persistent instance whose
// cluster is checked (TCP unless set otherwise) and for an ephemeral service, and works
// once the cluster's checker is NONE.
func TestManualHealth(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "per", "ip", "10.0.0.1", "port", "80", "ephemeral", "false"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "ip", "10.0.0.2", "port", "80"))
	health := func(svc, ip, healthy string) answer {
		return s.do("PUT", "/nacos/v1/ns/health/instance", vals("serviceName", svc, "ip", ip, "port", "80", "healthy", healthy))
	}
	for _, c := range []struct{ svc, ip string }{{"per", "10.0.0.1"}, {"eph", "10.0.0.2"}} {
		a := health(c.svc, c.ip, "false")
		want := "health check is still working, service: DEFAULT_GROUP@@" + c.svc + ", cluster: DEFAULT"
		if a.status != 400 || a.body != want {
			t.Errorf("manual health of %s = %d %q, want 400 %q", c.svc, a.status, a.body, want)
		}
	}
	if l := s.list("serviceName", "per", "healthyOnly", "true"); len(l.Hosts) != 1 {
		t.Fatalf("a refused health change took effect: %+v", l)
	}
	s.must("PUT", "/nacos/v1/ns/cluster", vals("serviceName", "per", "clusterName", "DEFAULT", "checkPort", "80",
		"useInstancePort4Check", "true", "healthChecker", `{"type":"NONE"}`))
	if a := health("per", "10.0.0.1", "false"); a.status != 200 || a.body != "ok" {
		t.Fatalf("manual health in a NONE cluster = %d %q", a.status, a.body)
	}
	if l := s.list("serviceName", "per", "healthyOnly", "true"); len(l.Hosts) != 0 {
		t.Errorf("the instance is still healthy: %+v", l)
	}
	// The alias and the legacy path.
	if a := s.do("PUT", "/nacos/v1/ns/health", vals("serviceName", "per", "ip", "10.0.0.1", "port", "80", "valid", "true")); a.status != 200 {
		t.Fatalf("PUT /health with valid = %d %q", a.status, a.body)
	}
	if l := s.list("serviceName", "per", "healthyOnly", "true"); len(l.Hosts) != 1 {
		t.Errorf("the instance is not healthy again: %+v", l)
	}
	// Back to TCP: manual changes are refused again.
	s.must("PUT", "/nacos/v1/ns/cluster", vals("serviceName", "per", "clusterName", "DEFAULT", "checkPort", "80",
		"useInstancePort4Check", "true", "healthChecker", checkerTCP))
	if a := health("per", "10.0.0.1", "false"); a.status != 400 {
		t.Errorf("manual health after the checker is back = %d %q", a.status, a.body)
	}
}

// TestClusterRoutesAccess: PUT /cluster needs write on the service's namespace and
// group, GET /catalog/service read, GET /health/checkers any identity.
func TestClusterRoutesAccess(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	admin := s.bootstrapACL()
	s.must("POST", "/nacos/v1/ns/instance", withToken(vals("namespaceId", "A", "serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false"), admin))
	created := s.do("POST", "/roster/v1/acl/users", withToken(vals("username", "reader"), admin))
	var reader credentialAnswer
	if err := json.Unmarshal([]byte(created.body), &reader); err != nil {
		t.Fatal(err)
	}
	s.must("POST", "/roster/v1/acl/roles", withToken(vals("role", "ro", "username", "reader"), admin))
	s.must("POST", "/roster/v1/acl/grants", withToken(vals("role", "ro", "resource", "A", "action", "r"), admin))
	tok := s.login("reader", reader.Password)

	put := vals("namespaceId", "A", "serviceName", "svc", "clusterName", "DEFAULT", "checkPort", "80", "useInstancePort4Check", "true", "healthChecker", `{"type":"NONE"}`)
	if a := s.do("PUT", "/nacos/v1/ns/cluster", withToken(put, tok)); a.status != 403 || a.body != "authorization failed!" {
		t.Errorf("PUT /cluster by a reader = %d %q", a.status, a.body)
	}
	if a := s.do("GET", "/nacos/v1/ns/catalog/service", withToken(vals("namespaceId", "A", "serviceName", "svc"), tok)); a.status != 200 ||
		!strings.Contains(a.body, `"healthChecker":{"type":"TCP"}`) {
		t.Errorf("the reader's catalog = %d %q", a.status, a.body)
	}
	if a := s.do("GET", "/nacos/v1/ns/catalog/service", withToken(vals("namespaceId", "B", "serviceName", "svc"), tok)); a.status != 403 {
		t.Errorf("catalog of another namespace = %d %q", a.status, a.body)
	}
	if a := s.do("GET", "/nacos/v1/ns/health/checkers", withToken(nil, tok)); a.status != 200 {
		t.Errorf("checkers = %d %q", a.status, a.body)
	}
	s.must("PUT", "/nacos/v1/ns/cluster", withToken(put, admin))
}
