package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// v3ClientPort masks a connection's ephemeral port, a number in ClientSummaryInfo.
var v3ClientPort = regexp.MustCompile(`"clientPort":[1-9]\d*`)

func goldenV3(t *testing.T, name string, a answer) {
	t.Helper()
	a.body = v3ClientPort.ReplaceAllString(maskV2(a.body), `"clientPort":1`)
	golden(t, "v3_"+name, a)
}

// maintainerInstance is what nacos-maintainer-client 3.1.0 sends for an instance
// (RequestUtil.toParameters(Service, Instance)): every field, metadata as JSON.
func maintainerInstance(service, group, ip, port, cluster string, ephemeral bool, extra ...string) url.Values {
	v := vals("namespaceId", "public", "groupName", group, "serviceName", service, "clusterName", cluster,
		"ip", ip, "port", port, "weight", "1.0", "healthy", "true", "enabled", "true", "metadata", "{}",
		"ephemeral", boolText(ephemeral))
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// maintainerService is RequestUtil.toParameters(Service): a NoneSelector serialises as
// {"type":"none","contextType":"NONE"}.
func maintainerService(service, group string, ephemeral bool, extra ...string) url.Values {
	v := vals("namespaceId", "public", "groupName", group, "serviceName", service, "metadata", "{}",
		"ephemeral", boolText(ephemeral), "protectThreshold", "0.0", "selector", `{"type":"none","contextType":"NONE"}`)
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

// TestV3GoldenAnswers calls every v3 admin endpoint once, with the parameters the
// maintainer client sends, against one state and keeps each answer in
// testdata/api/v3_*.golden.
func TestV3GoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	ns := "/nacos/v3/admin/ns"
	s.goldenCalls(t, goldenV3, "", []goldenCall{
		{"service_create", "POST", ns + "/service", maintainerService("billing", "pay", false, "metadata", `{"owner":"team-a"}`, "protectThreshold", "0.5")},
		{"service_create_label", "POST", ns + "/service", maintainerService("catalog", "DEFAULT_GROUP", false,
			"selector", `{"type":"label","expression":"CONSUMER.label.a = PROVIDER.label.a"}`)},
		{"instance_register", "POST", ns + "/instance", maintainerInstance("billing", "pay", "10.0.0.6", "9090", "c1", false, "metadata", `{"k":"v"}`)},
		{"instance_register_second", "POST", ns + "/instance", maintainerInstance("billing", "pay", "10.0.0.7", "9090", "c1", false, "healthy", "false")},
		{"instance_register_ephemeral", "POST", ns + "/instance", maintainerInstance("orders", "DEFAULT_GROUP", "10.0.0.5", "8080", "DEFAULT", true)},
		{"instance_update", "PUT", ns + "/instance", maintainerInstance("billing", "pay", "10.0.0.6", "9090", "c1", false, "weight", "3.0", "metadata", `{"k":"v2"}`)},
		{"instance_partial", "PUT", ns + "/instance/partial", vals("groupName", "pay", "serviceName", "billing", "clusterName", "c1",
			"ip", "10.0.0.7", "port", "9090", "enabled", "false")},
		{"instance_get", "GET", ns + "/instance", maintainerInstance("billing", "pay", "10.0.0.6", "9090", "c1", false)},
		{"instance_list", "GET", ns + "/instance/list", vals("namespaceId", "public", "groupName", "pay", "serviceName", "billing", "clusterName", "c1", "healthyOnly", "false")},
		{"instance_list_healthy", "GET", ns + "/instance/list", vals("groupName", "pay", "serviceName", "billing", "clusterName", "c1", "healthyOnly", "true")},
		{"instance_list_default_cluster", "GET", ns + "/instance/list", vals("serviceName", "orders")},
		{"metadata_batch_put", "PUT", ns + "/instance/metadata/batch", vals("namespaceId", "public", "groupName", "pay", "serviceName", "billing",
			"consistencyType", "persist", "metadata", `{"team":"x"}`,
			"instances", `[{"instanceId":null,"ip":"10.0.0.6","port":9090,"weight":1.0,"healthy":true,"enabled":true,"ephemeral":false,"clusterName":"c1","serviceName":null,"metadata":{}}]`)},
		{"metadata_batch_delete", "DELETE", ns + "/instance/metadata/batch", vals("groupName", "pay", "serviceName", "billing",
			"consistencyType", "persist", "metadata", `{"team":""}`, "instances", `[{"ip":"10.0.0.6","port":9090,"clusterName":"c1"}]`)},
		{"cluster_update", "PUT", ns + "/cluster", vals("namespaceId", "public", "groupName", "pay", "serviceName", "billing", "clusterName", "c1",
			"checkPort", "8080", "useInstancePort4Check", "false", "healthChecker", `{"type":"NONE"}`, "metadata", `{"zone":"z1"}`)},
		{"health_instance", "PUT", ns + "/health/instance", maintainerInstance("billing", "pay", "10.0.0.6", "9090", "c1", false, "healthy", "false")},
		{"health_checkers", "GET", ns + "/health/checkers", nil},
		{"service_get", "GET", ns + "/service", maintainerService("billing", "pay", false)},
		{"service_get_label", "GET", ns + "/service", vals("serviceName", "catalog")},
		{"service_get_ephemeral", "GET", ns + "/service", vals("serviceName", "orders")},
		{"service_update", "PUT", ns + "/service", maintainerService("catalog", "DEFAULT_GROUP", false, "protectThreshold", "0.25", "metadata", `{"a":"b"}`)},
		{"service_get_updated", "GET", ns + "/service", vals("serviceName", "catalog")},
		{"service_list", "GET", ns + "/service/list", vals("namespaceId", "public", "groupNameParam", "", "serviceNameParam", "",
			"withInstances", "false", "ignoreEmptyService", "false", "pageNo", "1", "pageSize", "10")},
		{"service_list_ignore_empty", "GET", ns + "/service/list", vals("ignoreEmptyService", "true")},
		{"service_list_filtered", "GET", ns + "/service/list", vals("groupNameParam", "pa", "serviceNameParam", "ill")},
		{"service_list_page2", "GET", ns + "/service/list", vals("pageNo", "2", "pageSize", "2")},
		{"service_list_with_instances", "GET", ns + "/service/list", vals("withInstances", "true", "serviceNameParam", "billing")},
		{"service_subscribers_none", "GET", ns + "/service/subscribers", vals("namespaceId", "public", "groupName", "pay", "serviceName", "billing",
			"pageNo", "1", "pageSize", "10", "aggregation", "true")},
		{"selector_types", "GET", ns + "/service/selector/types", nil},
		{"client_list", "GET", ns + "/client/list", nil},
		{"client_ipport", "GET", ns + "/client", vals("clientId", "10.0.0.5:8080#true")},
		{"client_publish_list", "GET", ns + "/client/publish/list", vals("clientId", "10.0.0.6:9090#false")},
		{"client_subscribe_list_none", "GET", ns + "/client/subscribe/list", vals("clientId", "10.0.0.5:8080#true")},
		{"client_service_publishers", "GET", ns + "/client/service/publisher/list", vals("namespaceId", "public", "groupName", "pay", "serviceName", "billing",
			"ip", "10.0.0.6", "port", "9090")},
		{"client_service_publishers_all", "GET", ns + "/client/service/publisher/list", vals("groupName", "pay", "serviceName", "billing")},
		{"client_service_subscribers_none", "GET", ns + "/client/service/subscriber/list", vals("serviceName", "orders")},
		{"ops_switches", "GET", ns + "/ops/switches", nil},
		{"ops_switches_update", "PUT", ns + "/ops/switches", vals("entry", "clientBeatInterval", "value", "3000")},
		{"ops_metrics_status", "GET", ns + "/ops/metrics", vals("onlyStatus", "true")},
		{"ops_metrics_full", "GET", ns + "/ops/metrics", vals("onlyStatus", "false")},
		{"ops_log", "PUT", ns + "/ops/log", vals("logName", "naming-server", "logLevel", "INFO")},
		{"instance_deregister", "DELETE", ns + "/instance", maintainerInstance("billing", "pay", "10.0.0.7", "9090", "c1", false)},
		{"instance_list_after_deregister", "GET", ns + "/instance/list", vals("groupName", "pay", "serviceName", "billing", "clusterName", "c1")},
		{"instance_deregister_ephemeral", "DELETE", ns + "/instance", maintainerInstance("orders", "DEFAULT_GROUP", "10.0.0.5", "8080", "DEFAULT", true)},
		{"service_delete", "DELETE", ns + "/service", maintainerService("catalog", "DEFAULT_GROUP", false)},
		{"node_list", "GET", "/nacos/v3/admin/core/cluster/node/list", vals("address", "", "state", "")},
		{"node_list_filtered", "GET", "/nacos/v3/admin/core/cluster/node/list", vals("address", "10.", "state", "up")},
		{"node_self", "GET", "/nacos/v3/admin/core/cluster/node/self", nil},
	})
}

// TestV3ErrorCodes answers one failure per error the v3 admin API gives and keeps each
// in testdata/api/v3_err_*.golden; refused writes change nothing.
func TestV3ErrorCodes(t *testing.T) {
	s := errorCodesStack(t)
	ns := "/nacos/v3/admin/ns"
	s.goldenCalls(t, goldenV3, "err_", append([]goldenCall{
		{"10000_instance_ip", "POST", ns + "/instance", vals("serviceName", "s", "port", "1")},
		{"10000_instance_port", "POST", ns + "/instance", vals("serviceName", "s", "ip", "10.0.0.1")},
		{"10000_instance_service", "DELETE", ns + "/instance", vals("ip", "10.0.0.1", "port", "1")},
		{"10000_instance_get", "GET", ns + "/instance", vals("serviceName", "eph-svc", "ip", "10.0.0.1")},
		{"10000_instance_list", "GET", ns + "/instance/list", nil},
		{"10000_partial", "PUT", ns + "/instance/partial", vals("serviceName", "eph-svc", "ip", "10.0.0.1")},
		{"10000_metadata", "PUT", ns + "/instance/metadata/batch", vals("serviceName", "persist-svc")},
		{"10000_service_get", "GET", ns + "/service", nil},
		{"10000_service_delete", "DELETE", ns + "/service", nil},
		{"10000_subscribers", "GET", ns + "/service/subscribers", nil},
		{"10000_cluster_service", "PUT", ns + "/cluster", vals("clusterName", "c1")},
		{"10000_cluster_checker", "PUT", ns + "/cluster", vals("serviceName", "persist-svc", "clusterName", "c1", "checkPort", "80", "useInstancePort4Check", "true")},
		{"10000_health_healthy", "PUT", ns + "/health/instance", vals("serviceName", "persist-svc")},
		{"10000_client_service", "GET", ns + "/client/service/publisher/list", nil},
		{"10000_switch_entry", "PUT", ns + "/ops/switches", vals("value", "1")},
		{"10000_log_name", "PUT", ns + "/ops/log", vals("logLevel", "INFO")},
		{"20002_page_no", "GET", ns + "/service/list", vals("pageNo", "0")},
		{"20002_page_size", "GET", ns + "/service/subscribers", vals("serviceName", "eph-svc", "pageSize", "-1")},
		{"23000_node_state", "GET", "/nacos/v3/admin/core/cluster/node/list", vals("state", "sleepy")},
		{"30000_list_no_service", "GET", ns + "/instance/list", vals("serviceName", "missing")},
		{"30000_list_no_cluster", "GET", ns + "/instance/list", vals("serviceName", "persist-svc")},
		{"30000_switch", "PUT", ns + "/ops/switches", vals("entry", "nonsense", "value", "1")},
	}, namingErrorCalls(ns)...))
	s.mustHaveOnlyErrorCodesServices(t)
	a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "eph-svc"))
	if !strings.Contains(a.body, `"weight":1.0`) || strings.Count(a.body, `"ip":`) != 1 {
		t.Fatalf("instances after refused writes: %s", a.body)
	}
}

// TestV3ClientViews registers through a real 2.x gRPC connection and a 1.x UDP
// subscriber and reads them back through the v3 client and subscriber views.
func TestV3ClientViews(t *testing.T) {
	s := clientViewsStack(t)
	s.subscribeUDP(t)

	ns := "/nacos/v3/admin/ns"
	conn := connectionID(t, s.do("GET", ns+"/client/list", nil), 2)
	goldenV3(t, "clients_connection", s.do("GET", ns+"/client", vals("clientId", conn)))
	goldenV3(t, "clients_connection_published", s.do("GET", ns+"/client/publish/list", vals("clientId", conn)))
	goldenV3(t, "clients_connection_subscribed", s.do("GET", ns+"/client/subscribe/list", vals("clientId", conn)))
	goldenV3(t, "clients_udp_subscribed", s.do("GET", ns+"/client/subscribe/list", vals("clientId", "127.0.0.1:54321#true")))
	goldenV3(t, "clients_service_publishers", s.do("GET", ns+"/client/service/publisher/list", vals("serviceName", "orders")))
	goldenV3(t, "clients_service_subscribers", s.do("GET", ns+"/client/service/subscriber/list", vals("serviceName", "orders")))
	goldenV3(t, "service_subscribers", s.do("GET", ns+"/service/subscribers", vals("serviceName", "orders")))
	goldenV3(t, "service_subscribers_page2", s.do("GET", ns+"/service/subscribers", vals("serviceName", "orders", "pageNo", "2", "pageSize", "1")))
}

// TestV3NotReady: the v3 naming routes answer Nacos' plain 503 while the node starts.
func TestV3NotReady(t *testing.T) {
	s := newStack(t, stackOptions{ready: func() bool { return false }})
	goldenV3(t, "not_ready_naming", s.do("GET", "/nacos/v3/admin/ns/instance/list", vals("serviceName", "x")))
	goldenV3(t, "not_ready_liveness", s.do("GET", "/nacos/v3/admin/core/state/liveness", nil))
	goldenV3(t, "not_ready_readiness", s.do("GET", "/nacos/v3/admin/core/state/readiness", nil))
}

// TestV3State: Nacos 3's liveness and readiness, which the 3.x naming client's HTTP
// health check reads (code 0 is healthy); public, as in Nacos.
func TestV3State(t *testing.T) {
	s := newStack(t, stackOptions{})
	goldenV3(t, "state_liveness", s.do("GET", "/nacos/v3/admin/core/state/liveness", nil))
	goldenV3(t, "state_readiness", s.do("GET", "/nacos/v3/admin/core/state/readiness", nil))
}

// TestV3Auth checks the v3 login (Nacos 3's HttpLoginProcessor: username in the query,
// password in the body, the bare token JSON read back), the plain-text refusals of
// Nacos' AuthAdminFilter, and that the admin API asks for the grant Nacos asks for.
func TestV3Auth(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	admin := s.bootstrapACL()
	for _, c := range []struct{ op, role, resource, action string }{
		{"POST", "readers", "dev", "r"},
		{"POST", "writers", "dev", "rw"},
	} {
		s.must(c.op, "/roster/v1/acl/grants", withToken(vals("role", c.role, "resource", c.resource, "action", c.action), admin))
	}
	for _, u := range []string{"reader", "writer"} {
		if a := s.do("POST", "/roster/v1/acl/users", withToken(vals("username", u, "password", u+"-password-123"), admin)); a.status != 200 {
			t.Fatalf("create %s: %d %s", u, a.status, a.body)
		}
		s.must("POST", "/roster/v1/acl/roles", withToken(vals("role", u+"s", "username", u), admin))
	}

	req, _ := http.NewRequest("POST", s.srv.URL+"/nacos/v3/auth/user/login?username=reader", strings.NewReader("password=reader-password-123"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	a := s.send(req)
	var tok struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    *int64 `json:"tokenTtl"`
		GlobalAdmin *bool  `json:"globalAdmin"`
		Username    string `json:"username"`
	}
	if err := json.Unmarshal([]byte(a.body), &tok); a.status != 200 || err != nil || tok.AccessToken == "" || tok.TokenTTL == nil ||
		tok.GlobalAdmin == nil || *tok.GlobalAdmin || tok.Username != "reader" {
		t.Fatalf("v3 login = %d %s", a.status, a.body)
	}
	reader := tok.AccessToken
	goldenV3(t, "login_bad_password", s.do("POST", "/nacos/v3/auth/user/login", vals("username", "reader", "password", "wrong")))
	writer := s.login("writer", "writer-password-123")

	ns := "/nacos/v3/admin/ns"
	goldenV3(t, "err_403_no_credentials", s.do("GET", ns+"/instance/list", vals("serviceName", "x")))
	goldenV3(t, "err_403_bad_token", s.do("GET", ns+"/instance/list", vals("serviceName", "x", "accessToken", "garbage")))
	goldenV3(t, "err_403_no_grant", s.do("POST", ns+"/instance", withToken(maintainerInstance("x", "DEFAULT_GROUP", "10.0.0.1", "1", "DEFAULT", false, "namespaceId", "dev"), reader)))

	register := maintainerInstance("x", "DEFAULT_GROUP", "10.0.0.1", "1", "DEFAULT", false, "namespaceId", "dev")
	for _, c := range []struct {
		name, method, path, token string
		params                    url.Values
		status                    int
	}{
		{"writer registers in dev", "POST", ns + "/instance", writer, register, 200},
		{"reader lists dev", "GET", ns + "/instance/list", reader, vals("namespaceId", "dev", "serviceName", "x"), 200},
		{"reader cannot read an instance's detail (WRITE in Nacos)", "GET", ns + "/instance", reader, register, 403},
		{"writer reads an instance's detail", "GET", ns + "/instance", writer, register, 200},
		{"reader cannot list public", "GET", ns + "/instance/list", reader, vals("serviceName", "x"), 403},
		{"writer cannot see clients", "GET", ns + "/client/list", writer, nil, 403},
		{"writer cannot read ops", "GET", ns + "/ops/metrics", writer, nil, 403},
		{"writer cannot list members", "GET", "/nacos/v3/admin/core/cluster/node/list", writer, nil, 403},
		{"admin lists members", "GET", "/nacos/v3/admin/core/cluster/node/list", admin, nil, 200},
		{"admin sees clients", "GET", ns + "/client/list", admin, nil, 200},
	} {
		if a := s.do(c.method, c.path, withToken(c.params, c.token)); a.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, a.status, a.body, c.status)
		}
	}
	// The service list is open to any user and shows only what the user may read.
	s.must("POST", "/nacos/v1/ns/service", withToken(vals("serviceName", "hidden"), admin))
	a = s.do("GET", ns+"/service/list", withToken(vals("namespaceId", "dev"), reader))
	if d := string(v2Data(t, a)); !strings.Contains(d, `"name":"x"`) || !strings.Contains(d, `"totalCount":1`) {
		t.Fatalf("reader's dev list: %s", d)
	}
	a = s.do("GET", ns+"/service/list", withToken(nil, reader))
	if d := string(v2Data(t, a)); !strings.Contains(d, `"totalCount":0`) {
		t.Fatalf("reader's public list shows what it may not read: %s", d)
	}
}

// TestV1V2V3SameData reads one state through v1, v2 and v3 and checks that they carry
// the same data (instances, metadata, health, protect threshold, clusters), differing
// only in envelope and shape; then it writes the same changes through each version into
// triplet services and compares what each wrote.
func TestV1V2V3SameData(t *testing.T) {
	s := newStack(t, stackOptions{})
	for i, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", ip, "port", "80", "ephemeral", "false",
			"healthy", boolText(i == 0), "clusterName", "a", "metadata", `{"i":"`+ip+`"}`))
	}
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "pt", "ip", "10.0.0.4", "port", "80", "ephemeral", "false", "clusterName", "a", "enabled", "false"))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "eph", "groupName", "g1", "ip", "10.0.1.1", "port", "81", "weight", "2.5", "metadata", "k=v"))
	s.must("PUT", "/nacos/v1/ns/service", vals("serviceName", "pt", "protectThreshold", "0.5", "metadata", `{"owner":"a"}`))

	type inst struct {
		InstanceID  string            `json:"instanceId"`
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		ClusterName string            `json:"clusterName"`
		Metadata    map[string]string `json:"metadata"`
	}
	t.Run("instance list is v2's catalog view", func(t *testing.T) {
		var v2 struct{ Instances []inst }
		var v3 []inst
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v2/ns/catalog/instances", vals("serviceName", "pt", "pageNo", "1", "pageSize", "10"))), &v2)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/instance/list", vals("serviceName", "pt", "clusterName", "a"))), &v3)
		if len(v3) != 4 || fmt.Sprint(v2.Instances) != fmt.Sprint(v3) {
			t.Fatalf("v2 catalog %+v\nv3 list %+v", v2.Instances, v3)
		}
	})
	t.Run("instance list agrees with v1 where v1 shows everything", func(t *testing.T) {
		var v1 struct{ Hosts []inst }
		var v3 []inst
		decodeJSON(t, []byte(s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "g1@@eph")).body), &v1)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/instance/list", vals("serviceName", "eph", "groupName", "g1"))), &v3)
		if len(v3) != 1 || fmt.Sprint(v1.Hosts) != fmt.Sprint(v3) {
			t.Fatalf("v1 %+v\nv3 %+v", v1.Hosts, v3)
		}
	})
	t.Run("instance detail", func(t *testing.T) {
		q := vals("serviceName", "pt", "ip", "10.0.0.2", "port", "80", "clusterName", "a")
		var v1, v2, v3 inst
		decodeJSON(t, []byte(s.do("GET", "/nacos/v1/ns/instance", q).body), &v1)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v2/ns/instance", q)), &v2)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/instance", q)), &v3)
		// v1's and v2's detail carry no enabled flag.
		v3.Enabled = false
		if fmt.Sprint(v1) != fmt.Sprint(v2) || fmt.Sprint(v2) != fmt.Sprint(v3) || v1.Metadata["i"] != "10.0.0.2" {
			t.Fatalf("v1 %+v\nv2 %+v\nv3 %+v", v1, v2, v3)
		}
	})
	t.Run("service detail", func(t *testing.T) {
		type detail struct {
			ProtectThreshold float64           `json:"protectThreshold"`
			Metadata         map[string]string `json:"metadata"`
			Selector         struct{ Type string }
			ClusterMap       map[string]struct{ ClusterName string }
			Clusters         []struct{ Name string }
		}
		var v1, v2, v3 detail
		decodeJSON(t, []byte(s.do("GET", "/nacos/v1/ns/service", vals("serviceName", "pt")).body), &v1)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v2/ns/service", vals("serviceName", "pt"))), &v2)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/service", vals("serviceName", "pt"))), &v3)
		if v1.ProtectThreshold != 0.5 || v2.ProtectThreshold != 0.5 || v3.ProtectThreshold != 0.5 ||
			v1.Metadata["owner"] != "a" || fmt.Sprint(v2.Metadata) != fmt.Sprint(v1.Metadata) || fmt.Sprint(v3.Metadata) != fmt.Sprint(v1.Metadata) ||
			v2.Selector.Type != v1.Selector.Type || v3.Selector.Type != v1.Selector.Type {
			t.Fatalf("v1 %+v\nv2 %+v\nv3 %+v", v1, v2, v3)
		}
		if len(v1.Clusters) != 1 || fmt.Sprint(v2.ClusterMap) != fmt.Sprint(v3.ClusterMap) || v3.ClusterMap[v1.Clusters[0].Name].ClusterName != "a" {
			t.Fatalf("clusters: v1 %+v v2 %+v v3 %+v", v1.Clusters, v2.ClusterMap, v3.ClusterMap)
		}
	})
	t.Run("service list", func(t *testing.T) {
		var v1 struct {
			Count int      `json:"count"`
			Doms  []string `json:"doms"`
		}
		var v3 struct {
			TotalCount int `json:"totalCount"`
			PageItems  []struct {
				Name, GroupName string
				IPCount         int `json:"ipCount"`
				Healthy         int `json:"healthyInstanceCount"`
				TriggerFlag     string
			}
		}
		decodeJSON(t, []byte(s.do("GET", "/nacos/v1/ns/service/list", vals("pageNo", "1", "pageSize", "10")).body), &v1)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/service/list", vals("groupNameParam", "DEFAULT_GROUP"))), &v3)
		if v1.Count != v3.TotalCount || len(v3.PageItems) != 1 || v1.Doms[0] != v3.PageItems[0].Name {
			t.Fatalf("v1 %+v v3 %+v", v1, v3)
		}
		// 2 of 4 healthy (the disabled one counts) is at the 0.5 threshold: v3 flags it;
		// v1's list, which leaves the disabled one out (1 of 3), protects.
		if it := v3.PageItems[0]; it.IPCount != 4 || it.Healthy != 2 || it.TriggerFlag != "true" {
			t.Fatalf("v3 view %+v", it)
		}
		if !strings.Contains(s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", "pt")).body, `"reachProtectionThreshold":true`) {
			t.Fatal("v1 does not protect")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		var v2, v3 map[string]any
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v2/ns/operator/metrics", vals("onlyStatus", "false"))), &v2)
		decodeJSON(t, v2Data(t, s.do("GET", "/nacos/v3/admin/ns/ops/metrics", vals("onlyStatus", "false"))), &v3)
		delete(v2, "cpu")
		delete(v2, "load")
		delete(v2, "mem")
		if fmt.Sprint(v2) != fmt.Sprint(v3) {
			t.Fatalf("v2 %v\nv3 %v", v2, v3)
		}
	})

	// The same writes through each version, into triplet services.
	type write struct {
		method, path, v3path string
		params               []string
	}
	writes := []write{
		{"POST", "/instance", "/instance", []string{"ip", "10.1.0.1", "port", "80", "metadata", `{"a":"1"}`, "weight", "2", "ephemeral", "false"}},
		{"POST", "/instance", "/instance", []string{"ip", "10.1.0.2", "port", "80", "ephemeral", "false"}},
		{"PUT", "/instance", "/instance", []string{"ip", "10.1.0.1", "port", "80", "weight", "4", "metadata", `{"a":"2","b":"3"}`, "ephemeral", "false"}},
		{"PUT", "/instance/metadata/batch", "/instance/metadata/batch", []string{"metadata", `{"team":"x"}`, "consistencyType", "persist"}},
		{"DELETE", "/instance/metadata/batch", "/instance/metadata/batch", []string{"metadata", `{"b":""}`, "consistencyType", "persist", "instances", `[{"ip":"10.1.0.1","port":80}]`}},
		{"PATCH", "/instance", "/instance/partial", []string{"ip", "10.1.0.2", "port", "80", "enabled", "false", "weight", "1.5"}},
		{"PUT", "/cluster", "/cluster", []string{"clusterName", "DEFAULT", "checkPort", "80", "useInstancePort4Check", "true", "healthChecker", `{"type":"NONE"}`}},
		{"PUT", "/health/instance", "/health/instance", []string{"ip", "10.1.0.1", "port", "80", "healthy", "false"}},
		{"PUT", "/service", "/service", []string{"protectThreshold", "0.9", "metadata", `{"o":"p"}`}},
	}
	bases := map[string]string{"trio1": "/nacos/v1/ns", "trio2": "/nacos/v2/ns", "trio3": "/nacos/v3/admin/ns"}
	for i, w := range writes {
		for svc, base := range bases {
			path, method := w.path, w.method
			switch {
			case svc == "trio3":
				path = w.v3path
				if method == "PATCH" {
					method = "PUT"
				}
			case svc == "trio2" && (w.path == "/cluster" || method == "PATCH"):
				// v2 has neither: its callers use v1's.
				base = "/nacos/v1/ns"
			}
			if a := s.do(method, base+path, vals(append([]string{"serviceName", svc}, w.params...)...)); a.status != 200 {
				t.Fatalf("write %d to %s: %d %s", i, base+path, a.status, a.body)
			}
		}
	}
	noTime := `"lastRefTime":0`
	read := func(svc string) string {
		a := s.do("GET", "/nacos/v1/ns/instance/list", vals("serviceName", svc))
		return strings.ReplaceAll(lastRefTimes.ReplaceAllString(a.body, noTime), svc, "trio")
	}
	v1, v2, v3 := read("trio1"), read("trio2"), read("trio3")
	if v1 != v2 || v2 != v3 {
		t.Fatalf("lists differ:\nv1 %s\nv2 %s\nv3 %s", v1, v2, v3)
	}
	if !strings.Contains(v1, `"metadata":{"a":"2","team":"x"}`) || !strings.Contains(v1, `"reachProtectionThreshold":true`) {
		t.Fatalf("the writes did not land: %s", v1)
	}
	detail := func(svc string) string {
		return strings.ReplaceAll(s.do("GET", "/nacos/v1/ns/service", vals("serviceName", svc)).body, svc, "trio")
	}
	if d1, d3 := detail("trio1"), detail("trio3"); d1 != d3 || !strings.Contains(d1, `"type":"NONE"`) {
		t.Fatalf("service details differ:\nv1 %s\nv3 %s", d1, d3)
	}
}

// TestV3Namespaces runs the maintainer client's namespace calls (CoreMaintainerService:
// list, get, create, update, check, delete) and their refusals through
// /nacos/v3/admin/core/namespace and keeps each answer in testdata/api/v3_namespace_*.
func TestV3Namespaces(t *testing.T) {
	s := newStack(t, stackOptions{})
	core := "/nacos/v3/admin/core/namespace"
	s.goldenCalls(t, goldenV3, "", []goldenCall{
		{"namespace_list", "GET", core + "/list", nil},
		{"namespace_get_public", "GET", core, vals("namespaceId", "public")},
		{"namespace_create", "POST", core, vals("namespaceId", "dev", "namespaceName", "Dev", "namespaceDesc", "development")},
		{"namespace_get_created", "GET", core, vals("namespaceId", "dev")},
		{"namespace_update", "PUT", core, vals("namespaceId", "dev", "namespaceName", "Dev 2", "namespaceDesc", "still development")},
		{"namespace_list_created", "GET", core + "/list", nil},
		{"namespace_check", "GET", core + "/check", vals("namespaceId", "dev")},
		{"namespace_check_public", "GET", core + "/check", vals("namespaceId", "public")},
		{"namespace_check_unknown", "GET", core + "/check", vals("namespaceId", "nope")},
		{"namespace_delete", "DELETE", core, vals("namespaceId", "dev")},
		{"namespace_check_deleted", "GET", core + "/check", vals("namespaceId", "dev")},
		{"err_10000_namespace_form", "POST", core, vals("namespaceName", "x")},
		{"err_10000_namespace_get", "GET", core, nil},
		{"err_10000_namespace_check", "GET", core + "/check", nil},
		{"err_22000_namespace_pattern", "POST", core, vals("namespaceId", "a/b", "namespaceName", "p")},
		{"err_22000_namespace_name", "PUT", core, vals("namespaceId", "dev", "namespaceName", "a@b")},
		{"err_22001_namespace_missing", "GET", core, vals("namespaceId", "dev")},
	})
	// A namespace created through v3 takes instances through v3.
	if a := s.do("POST", core, vals("namespaceId", "prod", "namespaceName", "Prod")); a.status != 200 {
		t.Fatalf("create prod: %d %s", a.status, a.body)
	}
	if a := s.do("POST", "/nacos/v3/admin/ns/instance", maintainerInstance("orders", "DEFAULT_GROUP", "10.0.2.1", "80", "DEFAULT", false, "namespaceId", "prod")); a.status != 200 {
		t.Fatalf("register in prod: %d %s", a.status, a.body)
	}
	goldenV3(t, "namespace_get_in_use", s.do("GET", core, vals("namespaceId", "prod")))
	goldenV3(t, "err_namespace_delete_in_use", s.do("DELETE", core, vals("namespaceId", "prod")))
}
