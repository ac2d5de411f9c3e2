package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/roster-registry/roster/grpcapi"
	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

// v2Masks hide what changes from run to run in v2 answers: connection ids and ports,
// times, Raft's ephemeral port and the memory ratio.
var v2Masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{13}_127\.0\.0\.1_\d+`), "<connection>"},
	{regexp.MustCompile(`"lastUpdatedTime":\d+`), `"lastUpdatedTime":0`},
	{regexp.MustCompile(`"clientPort":"\d+"`), `"clientPort":"<port>"`},
	{regexp.MustCompile(`"raftAddr":"127\.0\.0\.1:\d+","raftPort":"\d+"`), `"raftAddr":"127.0.0.1:<port>","raftPort":"<port>"`},
	{regexp.MustCompile(`"mem":[0-9.eE-]+`), `"mem":0.0`},
}

func goldenV2(t *testing.T, name string, a answer) {
	t.Helper()
	a.body = maskV2(a.body)
	golden(t, "v2_"+name, a)
}

// maskV2 applies v2Masks to an answer's body.
func maskV2(body string) string {
	for _, m := range v2Masks {
		body = m.re.ReplaceAllString(body, m.with)
	}
	return body
}

// decodeJSON reads raw into v, failing the test where raw is not v's JSON.
func decodeJSON(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}

// goldenCall is one call of a golden test: its answer is kept as the golden name.
type goldenCall struct {
	name, method, path string
	params             url.Values
}

// goldenCalls makes each call in order and keeps its answer with keep (goldenV2 or
// goldenV3), under prefix and the call's name.
func (s *stack) goldenCalls(t *testing.T, keep func(*testing.T, string, answer), prefix string, calls []goldenCall) {
	t.Helper()
	for _, c := range calls {
		keep(t, prefix+c.name, s.do(c.method, c.path, c.params))
	}
}

// errorCodesStack is the state the error code tests refuse writes against: a
// persistent service persist-svc and an ephemeral instance of eph-svc; a body may be
// 4096 bytes.
func errorCodesStack(t *testing.T) *stack {
	t.Helper()
	s := newStack(t, stackOptions{maxBody: 4096})
	s.must("POST", "/nacos/v1/ns/service", vals("serviceName", "persist-svc"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1", "port", "1"))
	return s
}

// namingErrorCalls are the refusals v2's and v3's naming routes (under ns) answer
// alike, each with its front's envelope; they run against errorCodesStack.
func namingErrorCalls(ns string) []goldenCall {
	return []goldenCall{
		{"10000_client_id", "GET", ns + "/client", nil},
		{"20002_number", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1", "port", "1", "weight", "abc")},
		{"20004_instance", "GET", ns + "/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.9", "port", "1")},
		{"20004_client", "GET", ns + "/client", vals("clientId", "10.9.9.9:1#true")},
		{"21001_weight", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1", "port", "1", "weight", "10001")},
		{"21002_metadata", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1", "port", "1", "metadata", "zone")},
		{"21004_update_no_service", "PUT", ns + "/instance", vals("serviceName", "ghost", "ip", "10.0.0.1", "port", "1")},
		{"21006_selector", "POST", ns + "/service", vals("serviceName", "sel", "selector", `{"type":"x"}`)},
		{"21007_service_exists", "POST", ns + "/service", vals("serviceName", "persist-svc")},
		{"21008_service_get", "GET", ns + "/service", vals("serviceName", "missing")},
		{"21008_service_update", "PUT", ns + "/service", vals("serviceName", "missing")},
		{"21008_service_delete", "DELETE", ns + "/service", vals("serviceName", "missing")},
		{"21009_service_not_empty", "DELETE", ns + "/service", vals("serviceName", "eph-svc")},
		{"30000_kind_conflict", "POST", ns + "/instance", vals("serviceName", "persist-svc", "ip", "10.0.0.1", "port", "1")},
		{"30000_health_ephemeral", "PUT", ns + "/health/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1", "port", "1", "healthy", "false")},
		{"30000_body_too_big", "POST", ns + "/instance", vals("serviceName", "big", "ip", "10.0.0.1", "port", "1", "app", strings.Repeat("x", 5000))},
		{"param_check_plain", "POST", ns + "/instance", vals("serviceName", "a b", "ip", "10.0.0.1", "port", "1")},
		{"param_check_port", "GET", ns + "/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1", "port", "x")},
	}
}

// mustHaveOnlyErrorCodesServices fails unless errorCodesStack's two services are all
// there is: refused writes create nothing.
func (s *stack) mustHaveOnlyErrorCodesServices(t *testing.T) {
	t.Helper()
	a := s.do("GET", "/nacos/v1/ns/service/list", vals("pageNo", "1", "pageSize", "100"))
	if a.body != `{"count":2,"doms":["eph-svc","persist-svc"]}` {
		t.Fatalf("services after refused writes: %s", a.body)
	}
}

// clientViewsStack is a stack with a real 2.x gRPC connection of app shop that has
// registered orders' 10.0.0.7:7070 and subscribed to orders as app shop-web.
func clientViewsStack(t *testing.T) *stack {
	t.Helper()
	s := newStack(t, stackOptions{})
	srv := grpcapi.New(grpcapi.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s.reg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	c := dialGRPC(t, ln.Addr().String(), "shop")
	reg := `{"namespace":"public","serviceName":"orders","groupName":"DEFAULT_GROUP","module":"naming","type":"registerInstance",` +
		`"instance":{"ip":"10.0.0.7","port":7070,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","metadata":{}}}`
	if typ, body := c.call("InstanceRequest", reg, nil); typ != "InstanceResponse" {
		t.Fatalf("register: %s %s", typ, body)
	}
	sub := `{"namespace":"public","serviceName":"orders","groupName":"DEFAULT_GROUP","module":"naming","subscribe":true,"clusters":""}`
	if typ, body := c.call("SubscribeServiceRequest", sub, map[string]string{"app": "shop-web"}); typ != "SubscribeServiceResponse" {
		t.Fatalf("subscribe: %s %s", typ, body)
	}
	return s
}

// subscribeUDP subscribes to orders as a 1.x client does: the list call with the
// udpPort (54321) of a pushing agent.
func (s *stack) subscribeUDP(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/nacos/v1/ns/instance/list?serviceName=orders&udpPort=54321&app=legacy", nil)
	req.Header.Set("User-Agent", "Nacos-Java-Client:v1.4.1")
	if a := s.send(req); a.status != 200 {
		t.Fatalf("v1 subscribe: %d %s", a.status, a.body)
	}
}

// connectionID reads a client list of want ids and picks the connection's (the one
// id that is no ip:port).
func connectionID(t *testing.T, list answer, want int) (conn string) {
	t.Helper()
	var ids []string
	if err := json.Unmarshal(v2Data(t, list), &ids); err != nil || len(ids) != want {
		t.Fatalf("client list %s (%v)", list.body, err)
	}
	for _, id := range ids {
		if !strings.Contains(id, ":") {
			conn = id
		}
	}
	if conn == "" {
		t.Fatalf("no connection among %v", ids)
	}
	return conn
}

// v2Data unwraps a successful v2 answer: the envelope must be {0, "success", data}.
func v2Data(t *testing.T, a answer) json.RawMessage {
	t.Helper()
	var env struct {
		Code    *int            `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if a.status != http.StatusOK {
		t.Fatalf("v2 answer %d %s", a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &env); err != nil || env.Code == nil || *env.Code != 0 || env.Message != "success" {
		t.Fatalf("v2 answer is no success envelope: %s (%v)", a.body, err)
	}
	return env.Data
}

// TestV2GoldenAnswers calls every Open API v2 endpoint once against one state and keeps
// each answer in testdata/api/v2_*.golden.
func TestV2GoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	ns := "/nacos/v2/ns"
	s.goldenCalls(t, goldenV2, "", []goldenCall{
		{"instance_register", "POST", ns + "/instance", vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080", "metadata", `{"zone":"a"}`)},
		{"instance_register_persistent", "POST", ns + "/instance", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.0.6", "port", "9090",
			"ephemeral", "false", "weight", "2", "clusterName", "c1", "metadata", "k=v")},
		{"instance_update", "PUT", ns + "/instance", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.0.6", "port", "9090",
			"ephemeral", "false", "weight", "3", "clusterName", "c1", "metadata", `{"k":"v2"}`)},
		{"instance_get", "GET", ns + "/instance", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.0.6", "port", "9090", "clusterName", "c1")},
		{"instance_list", "GET", ns + "/instance/list", vals("serviceName", "orders")},
		{"instance_list_cluster", "GET", ns + "/instance/list", vals("serviceName", "billing", "groupName", "pay", "clusterName", "c1")},
		{"instance_list_unknown", "GET", ns + "/instance/list", vals("serviceName", "nope")},
		{"instance_beat", "PUT", ns + "/instance/beat", vals("serviceName", "DEFAULT_GROUP@@orders", "ip", "10.0.0.5", "port", "8080")},
		{"instance_beat_unknown", "PUT", ns + "/instance/beat", vals("serviceName", "DEFAULT_GROUP@@orders", "ip", "10.9.9.9", "port", "1")},
		{"metadata_batch_put", "PUT", ns + "/instance/metadata/batch", vals("serviceName", "billing", "groupName", "pay", "consistencyType", "persist",
			"metadata", `{"team":"x"}`, "instances", `[{"ip":"10.0.0.6","port":9090,"clusterName":"c1"}]`)},
		{"metadata_batch_delete", "DELETE", ns + "/instance/metadata/batch", vals("serviceName", "billing", "groupName", "pay", "consistencyType", "persist",
			"metadata", `{"team":""}`)},
		// Manual health is for clusters whose checker is NONE.
		{"cluster_checker_none", "PUT", "/nacos/v1/ns/cluster", vals("serviceName", "billing", "groupName", "pay", "clusterName", "c1",
			"checkPort", "80", "useInstancePort4Check", "true", "healthChecker", `{"type":"NONE"}`)},
		{"health_instance", "PUT", ns + "/health/instance", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.0.6", "port", "9090", "clusterName", "c1", "healthy", "false")},
		{"health", "PUT", ns + "/health", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.0.6", "port", "9090", "clusterName", "c1", "healthy", "true")},
		{"service_create", "POST", ns + "/service", vals("serviceName", "catalog", "ephemeral", "true", "protectThreshold", "0.5", "metadata", `{"owner":"team-a"}`,
			"selector", `{"type":"label","expression":"CONSUMER.label.a = PROVIDER.label.a"}`)},
		{"service_get", "GET", ns + "/service", vals("serviceName", "catalog")},
		{"service_update", "PUT", ns + "/service", vals("serviceName", "catalog", "protectThreshold", "0.25")},
		{"service_get_updated", "GET", ns + "/service", vals("serviceName", "catalog")},
		{"service_get_persistent", "GET", ns + "/service", vals("serviceName", "billing", "groupName", "pay")},
		{"service_list", "GET", ns + "/service/list", nil},
		{"service_list_group", "GET", ns + "/service/list", vals("groupName", "pay", "pageNo", "1", "pageSize", "10")},
		{"service_delete", "DELETE", ns + "/service", vals("serviceName", "catalog")},
		{"catalog_instances", "GET", ns + "/catalog/instances", vals("serviceName", "pay@@billing", "pageNo", "1", "pageSize", "10")},
		{"catalog_instances_empty_page", "GET", ns + "/catalog/instances", vals("serviceName", "pay@@billing", "pageNo", "2", "pageSize", "10")},
		{"metrics_status", "GET", ns + "/operator/metrics", nil},
		{"metrics_full", "GET", ns + "/operator/metrics", vals("onlyStatus", "false")},
		{"switches", "GET", ns + "/operator/switches", nil},
		{"switches_update", "PUT", ns + "/operator/switches", vals("entry", "clientBeatInterval", "value", "3000")},
		{"client_list", "GET", ns + "/client/list", nil},
		{"client_ipport", "GET", ns + "/client", vals("clientId", "10.0.0.5:8080#true")},
		{"client_ipport_persistent", "GET", ns + "/client", vals("clientId", "10.0.0.6:9090#false")},
		{"client_publish_list", "GET", ns + "/client/publish/list", vals("clientId", "10.0.0.6:9090#false")},
		{"client_subscribe_list_none", "GET", ns + "/client/subscribe/list", vals("clientId", "10.0.0.5:8080#true")},
		{"client_service_publishers", "GET", ns + "/client/service/publisher/list", vals("serviceName", "orders")},
		{"client_service_publishers_persistent", "GET", ns + "/client/service/publisher/list", vals("serviceName", "billing", "groupName", "pay", "ephemeral", "false")},
		{"client_service_subscribers_none", "GET", ns + "/client/service/subscriber/list", vals("serviceName", "orders")},
		{"instance_deregister", "DELETE", ns + "/instance", vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080")},
		{"instance_list_after_deregister", "GET", ns + "/instance/list", vals("serviceName", "orders")},
		{"node_list", "GET", "/nacos/v2/core/cluster/node/list", nil},
		{"node_list_filtered", "GET", "/nacos/v2/core/cluster/node/list", vals("address", "10.", "state", "up")},
		{"node_self", "GET", "/nacos/v2/core/cluster/node/self", nil},
		{"node_self_health", "GET", "/nacos/v2/core/cluster/node/self/health", nil},
		{"namespace_list", "GET", "/nacos/v2/console/namespace/list", nil},
		{"namespace_get_public", "GET", "/nacos/v2/console/namespace", vals("namespaceId", "public")},
		{"namespace_exist", "GET", "/nacos/v2/console/namespace/exist", vals("customNamespaceId", "public")},
		{"namespace_exist_not", "GET", "/nacos/v2/console/namespace/exist", vals("customNamespaceId", "dev")},
		{"namespace_create", "POST", "/nacos/v2/console/namespace", vals("namespaceId", "staging", "namespaceName", "Staging", "namespaceDesc", "pre-production")},
		{"namespace_exist_created", "GET", "/nacos/v2/console/namespace/exist", vals("customNamespaceId", "staging")},
		{"namespace_edit", "PUT", "/nacos/v2/console/namespace", vals("namespaceId", "staging", "namespaceName", "Staging 2", "maxServices", "3")},
		{"namespace_get_created", "GET", "/nacos/v2/console/namespace", vals("namespaceId", "staging")},
		{"namespace_list_created", "GET", "/nacos/v2/console/namespace/list", nil},
		{"namespace_delete", "DELETE", "/nacos/v2/console/namespace", vals("namespaceId", "staging")},
		{"namespace_delete_gone", "DELETE", "/nacos/v2/console/namespace", vals("namespaceId", "staging")},
		{"liveness", "GET", "/nacos/v2/console/health/liveness", nil},
		{"readiness", "GET", "/nacos/v2/console/health/readiness", nil},
	})
	// A namespace known by its services.
	s.must("POST", "/nacos/v1/ns/instance", vals("namespaceId", "dev", "serviceName", "orders", "ip", "10.0.1.5", "port", "8080"))
	goldenV2(t, "namespace_list_with_dev", s.do("GET", "/nacos/v2/console/namespace/list", nil))
	goldenV2(t, "namespace_get_dev", s.do("GET", "/nacos/v2/console/namespace", vals("namespaceId", "dev")))
	goldenV2(t, "err_22000_namespace_not_empty", s.do("DELETE", "/nacos/v2/console/namespace", vals("namespaceId", "dev")))
	goldenV2(t, "err_22000_namespace_public", s.do("DELETE", "/nacos/v2/console/namespace", vals("namespaceId", "public")))
}

// TestV2ErrorCodes answers one failure per v2 error code (PROTOCOL.md §7 and the codes
// Roster's registry raises) and keeps each in testdata/api/v2_err_*.golden; refused
// writes change nothing.
func TestV2ErrorCodes(t *testing.T) {
	s := errorCodesStack(t)
	ns := "/nacos/v2/ns"
	s.goldenCalls(t, goldenV2, "err_", append([]goldenCall{
		{"10000_form_field", "POST", ns + "/instance", vals("serviceName", "s", "port", "1")},
		{"10000_form_integer", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1")},
		{"10000_form_service", "POST", ns + "/service", nil},
		{"10000_form_healthy", "PUT", ns + "/health/instance", vals("serviceName", "persist-svc", "ip", "10.0.0.1", "port", "1")},
		{"10000_form_metadata", "PUT", ns + "/instance/metadata/batch", vals("serviceName", "persist-svc")},
		{"10000_request_param", "GET", ns + "/service", nil},
		{"10000_request_param_port", "GET", ns + "/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1")},
		{"10000_switch_entry", "PUT", ns + "/operator/switches", vals("value", "1")},
		{"10000_namespace_form", "POST", "/nacos/v2/console/namespace", vals("namespaceName", "x")},
		{"20002_grouped_name", "POST", ns + "/instance", vals("serviceName", "g@@", "ip", "10.0.0.1", "port", "1")},
		{"20004_no_ips", "GET", ns + "/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1", "port", "1", "clusterName", "other")},
		{"21004_cluster", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1", "port", "1", "clusterName", "c_1")},
		{"21004_beat_timeouts", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1", "port", "1", "metadata", `{"preserved.heart.beat.interval":"20000"}`)},
		{"22000_namespace_exists", "POST", "/nacos/v2/console/namespace", vals("namespaceId", "public", "namespaceName", "p")},
		{"22000_namespace_pattern", "POST", "/nacos/v2/console/namespace", vals("namespaceId", "a/b", "namespaceName", "p")},
		{"22000_namespace_name", "PUT", "/nacos/v2/console/namespace", vals("namespaceId", "dev", "namespaceName", "a@b")},
		{"22001_namespace_missing", "GET", "/nacos/v2/console/namespace", vals("namespaceId", "dev")},
		{"23000_node_state", "GET", "/nacos/v2/core/cluster/node/list", vals("state", "sleepy")},
		{"30000_switch", "PUT", ns + "/operator/switches", vals("entry", "nonsense", "value", "1")},
		{"catalog_plain", "GET", ns + "/catalog/instances", vals("serviceName", "eph-svc", "pageNo", "1")},
	}, namingErrorCalls(ns)...))
	s.mustHaveOnlyErrorCodesServices(t)

	t.Run("10001 access denied", func(t *testing.T) {
		s := newStack(t, stackOptions{auth: true})
		s.bootstrapACL()
		goldenV2(t, "err_10001_no_credentials", s.do("GET", ns+"/instance/list", vals("serviceName", "x")))
		goldenV2(t, "err_10001_bad_token", s.do("GET", ns+"/instance/list", vals("serviceName", "x", "accessToken", "garbage")))
	})
}

// TestV1V2SameData reads the same state through v1 and v2 and checks that the answers
// carry the same data (instances, metadata, health, protect threshold), differing only
// in the envelope and in the few key names v2 spells differently; then it writes the
// same changes through each version into twin services and compares the results.
func TestV1V2SameData(t *testing.T) {
	s := newStack(t, stackOptions{})
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", ip, "port", "80", "ephemeral", "false",
			"healthy", boolText(i == 0), "clusterName", []string{"a", "a", "b"}[i], "metadata", `{"i":"`+ip+`"}`))
	}
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", "10.0.0.4", "port", "80", "ephemeral", "false", "enabled", "false"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "groupName", "g1", "ip", "10.0.1.1", "port", "81", "weight", "2.5", "metadata", "k=v"))
	s.must("PUT", "/nacos/v1/ns/service", vals("serviceName", "pt", "protectThreshold", "0.5", "metadata", `{"owner":"a"}`))

	same := func(t *testing.T, v1, v2 answer) {
		t.Helper()
		if v1.status != http.StatusOK {
			t.Fatalf("v1 answer %d %s", v1.status, v1.body)
		}
		if d := string(v2Data(t, v2)); d != v1.body {
			t.Errorf("data differs\n v1: %s\n v2: %s", v1.body, d)
		}
	}
	for _, c := range []struct {
		name   string
		v1, v2 url.Values
	}{
		{"protected list", vals("serviceName", "pt"), vals("serviceName", "pt")},
		{"one cluster", vals("serviceName", "pt", "clusters", "a"), vals("serviceName", "pt", "clusterName", "a")},
		{"healthy only", vals("serviceName", "pt", "healthyOnly", "true"), vals("serviceName", "pt", "healthyOnly", "true")},
		{"grouped ephemeral", vals("serviceName", "g1@@eph"), vals("serviceName", "eph", "groupName", "g1")},
		{"unknown service", vals("serviceName", "nope"), vals("serviceName", "nope")},
	} {
		t.Run("list "+c.name, func(t *testing.T) {
			same(t, s.do("GET", "/nacos/v1/ns/instance/list", c.v1), s.do("GET", "/nacos/v2/ns/instance/list", c.v2))
		})
	}
	t.Run("list shows the protect threshold", func(t *testing.T) {
		d := v2Data(t, s.do("GET", "/nacos/v2/ns/instance/list", vals("serviceName", "pt")))
		if !strings.Contains(string(d), `"reachProtectionThreshold":true`) || strings.Contains(string(d), `"healthy":false`) {
			t.Fatalf("threshold 0.5 with 1 of 3 healthy should protect: %s", d)
		}
	})
	t.Run("instance detail", func(t *testing.T) {
		v1 := s.do("GET", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", "10.0.0.2", "port", "80", "clusterName", "a"))
		v2 := s.do("GET", "/nacos/v2/ns/instance", vals("serviceName", "pt", "ip", "10.0.0.2", "port", "80", "clusterName", "a"))
		// v2's InstanceDetailInfoVo names the grouped service "serviceName".
		same(t, answer{v1.status, strings.Replace(v1.body, `{"service":`, `{"serviceName":`, 1)}, v2)
	})
	t.Run("service detail", func(t *testing.T) {
		var v1 struct {
			ProtectThreshold float64           `json:"protectThreshold"`
			Metadata         map[string]string `json:"metadata"`
			Selector         struct{ Type string }
			Clusters         []struct{ Name string }
		}
		var v2 struct {
			ProtectThreshold float64           `json:"protectThreshold"`
			Metadata         map[string]string `json:"metadata"`
			Selector         struct{ Type string }
			ClusterMap       map[string]struct{ ClusterName string }
		}
		if err := json.Unmarshal([]byte(s.do("GET", "/nacos/v1/ns/service", vals("serviceName", "pt")).body), &v1); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(v2Data(t, s.do("GET", "/nacos/v2/ns/service", vals("serviceName", "pt"))), &v2); err != nil {
			t.Fatal(err)
		}
		if v1.ProtectThreshold != 0.5 || v2.ProtectThreshold != v1.ProtectThreshold || v1.Metadata["owner"] != "a" ||
			len(v2.Metadata) != len(v1.Metadata) || v2.Metadata["owner"] != "a" || v2.Selector.Type != v1.Selector.Type {
			t.Fatalf("service detail differs: v1 %+v v2 %+v", v1, v2)
		}
		if len(v1.Clusters) != len(v2.ClusterMap) {
			t.Fatalf("clusters differ: v1 %+v v2 %+v", v1.Clusters, v2.ClusterMap)
		}
		for _, c := range v1.Clusters {
			if v2.ClusterMap[c.Name].ClusterName != c.Name {
				t.Fatalf("v2 lacks cluster %s: %+v", c.Name, v2.ClusterMap)
			}
		}
	})
	t.Run("service list", func(t *testing.T) {
		var v1 struct {
			Count int      `json:"count"`
			Doms  []string `json:"doms"`
		}
		var v2 struct {
			Count    int      `json:"count"`
			Services []string `json:"services"`
		}
		decodeJSON(t, []byte(s.do("GET", "/nacos/v1/ns/service/list", vals("pageNo", "1", "pageSize", "10")).body), &v1)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v2/ns/service/list", nil)), &v2)
		// DEFAULT_GROUP holds pt alone (eph is in g1).
		if v1.Count != 1 || len(v1.Doms) != 1 || v1.Count != v2.Count || len(v1.Doms) != len(v2.Services) {
			t.Fatalf("v1 %+v v2 %+v", v1, v2)
		}
		for i := range v1.Doms {
			if "DEFAULT_GROUP@@"+v1.Doms[i] != v2.Services[i] {
				t.Fatalf("v1 %+v v2 %+v", v1, v2)
			}
		}
	})
	t.Run("metrics status", func(t *testing.T) {
		same(t, s.do("GET", "/nacos/v1/ns/operator/metrics", nil), s.do("GET", "/nacos/v2/ns/operator/metrics", nil))
	})
	t.Run("beat", func(t *testing.T) {
		b := vals("serviceName", "g1@@eph", "ip", "10.0.1.1", "port", "81")
		v1, v2 := s.do("PUT", "/nacos/v1/ns/instance/beat", b), s.do("PUT", "/nacos/v2/ns/instance/beat", b)
		if v1.status != 200 || v1 != v2 {
			t.Fatalf("beat: v1 %d %s, v2 %d %s (both bare)", v1.status, v1.body, v2.status, v2.body)
		}
	})

	// The same writes through each version, into twin services.
	type write struct {
		method, path string
		params       []string
	}
	writes := []write{
		{"POST", "/instance", []string{"ip", "10.1.0.1", "port", "80", "metadata", `{"a":"1"}`, "weight", "2"}},
		{"POST", "/instance", []string{"ip", "10.1.0.2", "port", "80", "healthy", "false", "clusterName", "c2"}},
		{"PUT", "/instance", []string{"ip", "10.1.0.1", "port", "80", "weight", "4", "metadata", `{"a":"2","b":"3"}`}},
		{"PUT", "/instance/metadata/batch", []string{"metadata", `{"team":"x"}`}},
		{"DELETE", "/instance/metadata/batch", []string{"metadata", `{"b":""}`, "instances", `[{"ip":"10.1.0.1","port":80}]`}},
		{"PUT", "/service", []string{"protectThreshold", "0.9"}},
	}
	for i, w := range writes {
		v1 := s.do(w.method, "/nacos/v1/ns"+w.path, vals(append([]string{"serviceName", "twin1"}, w.params...)...))
		v2 := s.do(w.method, "/nacos/v2/ns"+w.path, vals(append([]string{"serviceName", "twin2"}, w.params...)...))
		if v1.status != 200 || v2.status != 200 {
			t.Fatalf("write %d: v1 %d %s, v2 %d %s", i, v1.status, v1.body, v2.status, v2.body)
		}
		if v1.body != "ok" {
			// The metadata batch answers data in both: the same data.
			same(t, v1, v2)
		} else if string(v2Data(t, v2)) != `"ok"` {
			t.Fatalf("write %d: v2 answered %s", i, v2.body)
		}
	}
	v1 := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "twin1"))
	v2 := s.do("GET", "/nacos/v2/ns/instance/list", vals("serviceName", "twin2"))
	noTime := `"lastRefTime":0`
	same(t, answer{v1.status, strings.ReplaceAll(lastRefTimes.ReplaceAllString(v1.body, noTime), "twin1", "twin2")},
		answer{v2.status, lastRefTimes.ReplaceAllString(v2.body, noTime)})
	if !strings.Contains(v1.body, `"reachProtectionThreshold":true`) || !strings.Contains(v1.body, `"metadata":{"a":"2","team":"x"}`) {
		t.Fatalf("the writes did not land: %s", v1.body)
	}
}

// grpcClient is a raw Nacos 2.x client for the client-view tests: one connection, its
// stream, unary calls.
type grpcClient struct {
	t      *testing.T
	req    nacospb.RequestClient
	stream nacospb.BiRequestStream_RequestBiStreamClient
}

func dialGRPC(t *testing.T, addr, appName string) *grpcClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	c := &grpcClient{t: t, req: nacospb.NewRequestClient(cc)}
	if typ, body := c.call("ServerCheckRequest", `{"module":"internal"}`, nil); typ != "ServerCheckResponse" {
		t.Fatalf("server check: %s %s", typ, body)
	}
	c.stream, err = nacospb.NewBiRequestStreamClient(cc).RequestBiStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := c.stream.Recv(); err != nil {
				return
			}
		}
	}()
	setup := `{"clientVersion":"Nacos-Java-Client:v2.3.2","tenant":"","labels":{"source":"sdk","module":"naming","AppName":"` + appName + `"},"module":"internal"}`
	if err := c.stream.Send(grpcapi.EncodePayload("ConnectionSetupRequest", []byte(setup))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if typ, _ := c.call("HealthCheckRequest", `{"module":"internal"}`, nil); typ == "HealthCheckResponse" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection was never registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *grpcClient) call(typ, body string, headers map[string]string) (string, string) {
	c.t.Helper()
	p := grpcapi.EncodePayload(typ, []byte(body))
	p.Metadata.Headers = headers
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.req.Request(ctx, p)
	if err != nil {
		c.t.Fatalf("%s: %v", typ, err)
	}
	return out.GetMetadata().GetType(), string(out.GetBody().GetValue())
}

// TestV2ClientViews registers through a real 2.x gRPC connection, a 1.x HTTP client and a
// 1.x UDP subscriber, and reads them back through the /client endpoints.
func TestV2ClientViews(t *testing.T) {
	s := clientViewsStack(t)
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080"))
	s.subscribeUDP(t)

	ns := "/nacos/v2/ns"
	list := s.do("GET", ns+"/client/list", nil)
	goldenV2(t, "clients_list", list)
	conn := connectionID(t, list, 3)
	goldenV2(t, "clients_connection", s.do("GET", ns+"/client", vals("clientId", conn)))
	goldenV2(t, "clients_connection_published", s.do("GET", ns+"/client/publish/list", vals("clientId", conn)))
	goldenV2(t, "clients_connection_subscribed", s.do("GET", ns+"/client/subscribe/list", vals("clientId", conn)))
	goldenV2(t, "clients_udp", s.do("GET", ns+"/client", vals("clientId", "127.0.0.1:54321#true")))
	goldenV2(t, "clients_udp_subscribed", s.do("GET", ns+"/client/subscribe/list", vals("clientId", "127.0.0.1:54321#true")))
	goldenV2(t, "clients_service_publishers", s.do("GET", ns+"/client/service/publisher/list", vals("serviceName", "orders")))
	goldenV2(t, "clients_service_publishers_by_addr", s.do("GET", ns+"/client/service/publisher/list", vals("serviceName", "orders", "ip", "10.0.0.7", "port", "7070")))
	goldenV2(t, "clients_service_subscribers", s.do("GET", ns+"/client/service/subscriber/list", vals("serviceName", "orders")))
	goldenV2(t, "clients_metrics", s.do("GET", ns+"/operator/metrics", vals("onlyStatus", "false")))
}

// TestV2NotReady checks what a node that is not ready answers on v2: the naming routes
// Nacos' plain 503 (its TrafficReviseFilter runs before any controller), readiness a
// failure Result with status 200, liveness ok.
func TestV2NotReady(t *testing.T) {
	s := newStack(t, stackOptions{ready: func() bool { return false }})
	goldenV2(t, "not_ready_naming", s.do("GET", "/nacos/v2/ns/instance/list", vals("serviceName", "x")))
	goldenV2(t, "not_ready_readiness", s.do("GET", "/nacos/v2/console/health/readiness", nil))
	goldenV2(t, "not_ready_liveness", s.do("GET", "/nacos/v2/console/health/liveness", nil))
	goldenV2(t, "not_ready_node_health", s.do("GET", "/nacos/v2/core/cluster/node/self/health", nil))
}
