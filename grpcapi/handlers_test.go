package grpcapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/grpc")

var (
	lastRefTimes  = regexp.MustCompile(`"lastRefTime":\d+`)
	connectionIDs = regexp.MustCompile(`"connectionId":"[^"]*"`)
)

// golden compares a response type and body with testdata/grpc/<name>.golden, with the
// time- and port-dependent values masked.
func golden(t *testing.T, name, typ, body string) {
	t.Helper()
	body = lastRefTimes.ReplaceAllString(body, `"lastRefTime":0`)
	body = connectionIDs.ReplaceAllString(body, `"connectionId":"<id>"`)
	got := typ + "\n" + body + "\n"
	path := filepath.Join("..", "testdata", "grpc", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./grpcapi -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s:\n got: %s\nwant: %s", name, got, want)
	}
}

func instanceReq(typ, service, ip string, port int, extra string) string {
	return fmt.Sprintf(`{"requestId":"","namespace":"","serviceName":%q,"groupName":"DEFAULT_GROUP","module":"naming","type":%q,`+
		`"instance":{"instanceId":"","ip":%q,"port":%d,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"","serviceName":"","metadata":{"zone":"a"},"instanceHeartBeatInterval":0,"ipDeleteTimeout":0,"instanceHeartBeatTimeOut":0%s}}`,
		service, typ, ip, port, extra)
}

// TestGoldenAnswers sends each request type as nacos-sdk-go v2 does and compares the
// answers with the golden files.
func TestGoldenAnswers(t *testing.T) {
	s := newStack(t, Config{})
	c := s.connect()

	typ, body := c.call("ServerCheckRequest", `{"headers":{},"requestId":"","module":"internal"}`)
	golden(t, "server_check", typ, body)
	typ, body = c.call("HealthCheckRequest", `{"requestId":"","module":"internal"}`)
	golden(t, "health_check", typ, body)

	typ, body = c.call("InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.5", 8080, ""))
	golden(t, "instance_register", typ, body)
	typ, body = c.call("BatchInstanceRequest", `{"namespace":"public","serviceName":"batch","groupName":"DEFAULT_GROUP","module":"naming","type":"batchRegisterInstance",`+
		`"instances":[{"ip":"10.0.0.7","port":1,"weight":2,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"c1","metadata":{}},`+
		`{"ip":"10.0.0.8","port":2,"weight":1,"healthy":true,"enabled":false,"ephemeral":true,"clusterName":"c2","metadata":null}]}`)
	golden(t, "batch_register", typ, body)
	typ, body = c.call("PersistentInstanceRequest", `{"namespace":"","serviceName":"billing","groupName":"","module":"naming","type":"registerInstance",`+
		`"instance":{"ip":"10.0.0.6","port":9090,"weight":1,"healthy":true,"enabled":true,"ephemeral":false,"clusterName":"c1","metadata":{}}}`)
	golden(t, "persistent_register", typ, body)

	typ, body = c.call("ServiceQueryRequest", `{"namespace":"public","serviceName":"orders","groupName":"DEFAULT_GROUP","module":"naming","cluster":"","healthyOnly":false,"udpPort":0}`)
	golden(t, "service_query", typ, body)
	typ, body = c.call("ServiceQueryRequest", `{"namespace":"public","serviceName":"batch","groupName":"DEFAULT_GROUP","module":"naming","cluster":"c1","healthyOnly":false,"udpPort":0}`)
	golden(t, "service_query_cluster", typ, body)
	typ, body = c.call("ServiceQueryRequest", `{"serviceName":"nope","module":"naming"}`)
	golden(t, "service_query_unknown", typ, body)
	typ, body = c.call("SubscribeServiceRequest", `{"requestId":"7","namespace":"public","serviceName":"billing","groupName":"DEFAULT_GROUP","module":"naming","subscribe":true,"clusters":""}`)
	golden(t, "subscribe", typ, body)
	typ, body = c.call("SubscribeServiceRequest", `{"namespace":"public","serviceName":"billing","groupName":"DEFAULT_GROUP","module":"naming","subscribe":false,"clusters":""}`)
	golden(t, "unsubscribe", typ, body)
	typ, body = c.call("ServiceListRequest", `{"namespace":"public","serviceName":"","groupName":"DEFAULT_GROUP","module":"naming","pageNo":1,"pageSize":2,"selector":""}`)
	golden(t, "service_list", typ, body)

	typ, body = c.call("InstanceRequest", instanceReq("deregisterInstance", "orders", "1.2.3.4", 1, ""))
	golden(t, "instance_deregister", typ, body)
	typ, body = c.call("PersistentInstanceRequest", `{"serviceName":"billing","module":"naming","type":"deregisterInstance","instance":{"ip":"10.0.0.6","port":9090,"clusterName":"c1"}}`)
	golden(t, "persistent_deregister", typ, body)
}

// TestErrors checks each refusal: Nacos' code, text and response type, and that
// nothing was stored.
func TestErrors(t *testing.T) {
	s := newStack(t, Config{MaxBody: 4096})
	if err := s.reg.Register(context.Background(), naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "persist"},
		&naming.Instance{IP: "10.0.0.1", Port: 1, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}

	// Before set-up: the server check works, anything else is 301; unknown types 302.
	c := s.dial()
	typ, body := c.call("HealthCheckRequest", `{}`)
	golden(t, "err_unregistered", typ, body)
	typ, body = c.call("ConfigQueryRequest", `{}`)
	golden(t, "err_no_handler", typ, body)

	c = s.connect()
	tests := []struct {
		name, typ, body string
	}{
		{"err_malformed_json", "InstanceRequest", `{"serviceName":`},
		{"err_wrong_shape", "InstanceRequest", `{"serviceName":"s","instance":{"port":"x"}}`},
		{"err_empty_body", "ServiceQueryRequest", ``},
		{"err_body_too_big", "InstanceRequest", `{"serviceName":"s","x":"` + strings.Repeat("a", 5000) + `"}`},
		{"err_no_type", "", `{}`},
		{"err_unsupported_type", "InstanceRequest", instanceReq("updateInstance", "s", "10.0.0.1", 1, "")},
		{"err_bad_service_name", "InstanceRequest", instanceReq("registerInstance", "a b", "10.0.0.1", 1, "")},
		{"err_grouped_service_name", "InstanceRequest", instanceReq("registerInstance", "G@@s", "10.0.0.1", 1, "")},
		{"err_bad_port", "InstanceRequest", instanceReq("registerInstance", "s", "10.0.0.1", 70000, "")},
		{"err_bad_cluster", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `"clusterName":""`, `"clusterName":"c_1"`, 1)},
		{"err_bad_weight", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `"weight":1`, `"weight":10001`, 1)},
		{"err_metadata_too_long", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `{"zone":"a"}`, `{"k":"`+strings.Repeat("v", 1100)+`"}`, 1)},
		{"err_into_persistent", "InstanceRequest", instanceReq("registerInstance", "persist", "10.0.0.1", 2, "")},
		{"err_batch_type", "BatchInstanceRequest", `{"serviceName":"s","type":"batchDeregisterInstance","instances":[]}`},
		{"err_batch_empty", "BatchInstanceRequest", `{"serviceName":"s","type":"batchRegisterInstance","instances":[]}`},
		{"err_subscribe_bad_clusters", "SubscribeServiceRequest", `{"serviceName":"s","subscribe":true,"clusters":"a b"}`},
		{"err_list_bad_namespace", "ServiceListRequest", `{"namespace":"a/b","pageNo":1,"pageSize":10}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, body := c.call(tt.typ, tt.body)
			golden(t, tt.name, typ, body)
		})
	}
	// The connection still works, and nothing of the refused writes was stored.
	typ, body = c.call("ServiceListRequest", `{"pageNo":1,"pageSize":100}`)
	if typ != "ServiceListResponse" || !strings.Contains(body, `"count":1,"serviceNames":["persist"]`) {
		t.Fatalf("after the refusals: %s %s", typ, body)
	}

	// Not ready: every request, the server check included, answers 300.
	s.ready.Store(false)
	typ, body = c.call("ServerCheckRequest", `{}`)
	golden(t, "err_not_ready", typ, body)
	s.ready.Store(true)
}

// TestPoisonInputIsRefused: numbers JSON cannot carry as numbers (a weight beyond a
// double, or "NaN" and "Infinity" as text, which Jackson coerces) and control
// characters in names and metadata keys are refused by every instance request with
// Nacos' code and text, and nothing is stored. Before, 1e400 was a 502 whose text named
// Go types, and control characters were stored.
func TestPoisonInputIsRefused(t *testing.T) {
	s := newStack(t, Config{})
	c := s.connect()
	const weightText = "instance format invalid: The weights range from 0.0 to 10000.0"
	withWeight := func(typ, w string) string {
		return strings.Replace(instanceReq(typ, "s", "10.0.0.1", 1, ""), `"weight":1`, `"weight":`+w, 1)
	}
	batch := func(second string) string {
		return `{"serviceName":"s","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.2","port":1},` + second + `]}`
	}
	paramCheck := func(text string) string { return "Param check invalid:" + text }
	tests := []struct {
		name, typ, body string
		respType        string
		code            int
		message         string
	}{
		{"weight beyond a double", "InstanceRequest", withWeight("registerInstance", "1e400"), "ErrorResponse", 400, weightText},
		{"negative weight beyond a double", "InstanceRequest", withWeight("registerInstance", "-1e400"), "ErrorResponse", 400, weightText},
		{"weight NaN as text", "InstanceRequest", withWeight("registerInstance", `"NaN"`), "ErrorResponse", 400, weightText},
		{"weight Infinity as text", "InstanceRequest", withWeight("registerInstance", `"Infinity"`), "ErrorResponse", 400, weightText},
		{"weight in Go's spelling", "InstanceRequest", withWeight("registerInstance", `"inf"`), "ErrorResponse", 502, `For input string: "inf"`},
		{"batch weight beyond a double", "BatchInstanceRequest", batch(`{"ip":"10.0.0.3","port":1,"weight":1e400}`), "ErrorResponse", 400, weightText},
		{"batch weight NaN as text", "BatchInstanceRequest", batch(`{"ip":"10.0.0.3","port":1,"weight":"NaN"}`), "ErrorResponse", 400, weightText},
		{"persistent weight beyond a double", "PersistentInstanceRequest", withWeight("registerInstance", "1e400"), "ErrorResponse", 400, weightText},
		{"persistent weight NaN as text", "PersistentInstanceRequest", withWeight("registerInstance", `"NaN"`), "ErrorResponse", 400, weightText},
		{"port beyond a double", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `"port":1`, `"port":1e400`, 1),
			"InstanceResponse", 400, paramCheck("Param 'port' is illegal, the value should be between 0 and 65535.")},
		{"service name NUL", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "S", "10.0.0.1", 1, ""), `"S"`, `"s\u0000v"`, 1),
			"InstanceResponse", 400, paramCheck("Param 'serviceName' is illegal, control characters should not appear in the param.")},
		{"batch service name NUL", "BatchInstanceRequest", strings.Replace(batch(`{"ip":"10.0.0.3","port":1}`), `"s"`, `"\u0000s"`, 1),
			"BatchInstanceResponse", 400, paramCheck("Param 'serviceName' is illegal, control characters should not appear in the param.")},
		{"persistent service name NUL", "PersistentInstanceRequest", strings.Replace(instanceReq("registerInstance", "S", "10.0.0.1", 1, ""), `"S"`, `"\u0000s"`, 1),
			"InstanceResponse", 400, paramCheck("Param 'serviceName' is illegal, control characters should not appear in the param.")},
		{"ip NUL", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `"10.0.0.1"`, `"10.0.0.1\u0000"`, 1),
			"InstanceResponse", 400, paramCheck("Param 'ip' is illegal, control characters should not appear in the param.")},
		{"group NUL", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `"DEFAULT_GROUP"`, `"G\u0000"`, 1),
			"InstanceResponse", 400, paramCheck("Param 'group' is illegal, illegal characters should not appear in the param.")},
		{"metadata key NUL", "InstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `{"zone":"a"}`, `{"z\u0000":"a"}`, 1),
			"InstanceResponse", 400, paramCheck("Param 'Metadata' is illegal, control characters should not appear in its keys.")},
		{"batch metadata key NUL", "BatchInstanceRequest", batch(`{"ip":"10.0.0.3","port":1,"metadata":{"\u001f":"a"}}`),
			"BatchInstanceResponse", 400, paramCheck("Param 'Metadata' is illegal, control characters should not appear in its keys.")},
		{"persistent metadata key NUL", "PersistentInstanceRequest", strings.Replace(instanceReq("registerInstance", "s", "10.0.0.1", 1, ""), `{"zone":"a"}`, `{"z\u0000":"a"}`, 1),
			"InstanceResponse", 400, paramCheck("Param 'Metadata' is illegal, control characters should not appear in its keys.")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, body := c.call(tt.typ, tt.body)
			var h ResponseHead
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatal(err)
			}
			if typ != tt.respType || h.ResultCode != 500 || h.ErrorCode != tt.code || h.Message != tt.message {
				t.Fatalf("got %s %d %d %q\nwant %s 500 %d %q", typ, h.ResultCode, h.ErrorCode, h.Message, tt.respType, tt.code, tt.message)
			}
		})
	}
	typ, body := c.call("ServiceListRequest", `{"pageNo":1,"pageSize":100}`)
	if typ != "ServiceListResponse" || !strings.Contains(body, `"count":0,`) {
		t.Fatalf("the refusals stored something: %s %s", typ, body)
	}
}

// TestOwnership checks that a connection holds one instance per service, that a
// deregister ignores ip and port, and that a closed connection takes its instances
// with it and leaves other connections' alone.
func TestOwnership(t *testing.T) {
	s := newStack(t, Config{})
	svc := naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}
	a, b := s.connect(), s.connect()
	if a.connID == b.connID || !regexp.MustCompile(`^\d+_127\.0\.0\.1_\d+$`).MatchString(a.connID) {
		t.Fatalf("connection ids %q %q", a.connID, b.connID)
	}
	list := func() []string {
		info, err := s.reg.List(context.Background(), registry.Query{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range info.Hosts {
			out = append(out, h.Addr())
		}
		return out
	}
	expect := func(what string, want ...string) {
		t.Helper()
		if got := list(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: instances %v, want %v", what, got, want)
		}
	}
	mustOK := func(c *client, typ, body string) {
		t.Helper()
		if rt, rb := c.call(typ, body); !strings.Contains(rb, `"resultCode":200`) {
			t.Fatalf("%s = %s %s", typ, rt, rb)
		}
	}
	mustOK(a, "InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.1", 1, ""))
	mustOK(b, "InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.2", 2, ""))
	expect("two connections", "10.0.0.1:1", "10.0.0.2:2")
	mustOK(a, "InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.3", 3, ""))
	expect("a re-registers elsewhere: replaced", "10.0.0.2:2", "10.0.0.3:3")
	mustOK(a, "InstanceRequest", instanceReq("deregisterInstance", "orders", "9.9.9.9", 9, ""))
	expect("a deregisters with another address", "10.0.0.2:2")
	mustOK(a, "BatchInstanceRequest", `{"serviceName":"orders","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.4","port":4},{"ip":"10.0.0.5","port":5}]}`)
	expect("a batch", "10.0.0.2:2", "10.0.0.4:4", "10.0.0.5:5")
	mustOK(a, "BatchInstanceRequest", `{"serviceName":"orders","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.5","port":5}]}`)
	expect("a batch replaces the list", "10.0.0.2:2", "10.0.0.5:5")
	if owner, _ := s.distro.Owner(svc, naming.InstanceKey("10.0.0.5", 5, "DEFAULT")); owner != a.connID {
		t.Fatalf("owner %q, want %q", owner, a.connID)
	}

	// Owned instances never expire by beats.
	s.distro.CheckExpiry()
	a.close()
	waitFor(t, 5*time.Second, "a's instances to go with its connection", func() bool { return fmt.Sprint(list()) == "[10.0.0.2:2]" })
	if open, reg := s.srv.Connections(); reg != 1 {
		t.Fatalf("connections open=%d registered=%d, want 1 registered", open, reg)
	}
	// b's stream ends while its TCP connection stays: dropped too, later calls get 301.
	if err := b.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b's instances to go with its stream", func() bool { return len(list()) == 0 })
	if typ, body := b.call("HealthCheckRequest", `{}`); !strings.Contains(body, `"errorCode":301`) {
		t.Fatalf("after the stream closed: %s %s", typ, body)
	}
}

// TestPush checks that every change reaches a subscriber as a NotifySubscriberRequest
// filtered by its clusters, with strictly increasing lastRefTime, and is acked.
func TestPush(t *testing.T) {
	s := newStack(t, Config{PushDelay: 5 * time.Millisecond})
	sub, all, pub := s.connect(), s.connect(), s.connect()
	if _, body := sub.call("SubscribeServiceRequest", `{"serviceName":"orders","subscribe":true,"clusters":"c1"}`); !strings.Contains(body, `"hosts":[]`) {
		t.Fatalf("subscribe: %s", body)
	}
	all.call("SubscribeServiceRequest", `{"serviceName":"orders","subscribe":true,"clusters":""}`)
	var last int64
	for i := 1; i <= 5; i++ {
		cluster := "c1"
		if i%2 == 0 {
			cluster = "c2"
		}
		body := strings.Replace(instanceReq("registerInstance", "orders", fmt.Sprintf("10.0.0.%d", i), i, ""), `"clusterName":""`, `"clusterName":"`+cluster+`"`, 1)
		pub.call("InstanceRequest", body)
		waitFor(t, 2*time.Second, fmt.Sprintf("push %d to the unfiltered subscriber", i), func() bool {
			p := all.serverRequests("NotifySubscriberRequest")
			return len(p) > 0 && strings.Contains(string(p[len(p)-1].Body), fmt.Sprintf(`"ip":"10.0.0.%d"`, i))
		})
		p := all.serverRequests("NotifySubscriberRequest")
		var n struct {
			RequestID   string `json:"requestId"`
			Module      string `json:"module"`
			ServiceInfo struct {
				Name        string `json:"name"`
				GroupName   string `json:"groupName"`
				Clusters    string `json:"clusters"`
				LastRefTime int64  `json:"lastRefTime"`
			} `json:"serviceInfo"`
		}
		if err := json.Unmarshal(p[len(p)-1].Body, &n); err != nil {
			t.Fatal(err)
		}
		if n.ServiceInfo.Name != "orders" || n.ServiceInfo.GroupName != "DEFAULT_GROUP" || n.Module != "naming" || n.RequestID == "" {
			t.Fatalf("push %d: %s", i, p[len(p)-1].Body)
		}
		if n.ServiceInfo.LastRefTime <= last {
			t.Fatalf("push %d: lastRefTime %d not after %d", i, n.ServiceInfo.LastRefTime, last)
		}
		last = n.ServiceInfo.LastRefTime
	}
	// The c1 subscriber saw only c1 hosts, with its clusters echoed.
	waitFor(t, 2*time.Second, "c1 pushes", func() bool {
		p := sub.serverRequests("NotifySubscriberRequest")
		return len(p) > 0 && strings.Contains(string(p[len(p)-1].Body), `"ip":"10.0.0.5"`)
	})
	for _, p := range sub.serverRequests("NotifySubscriberRequest") {
		if strings.Contains(string(p.Body), `"clusterName":"c2"`) || !strings.Contains(string(p.Body), `"clusters":"c1"`) {
			t.Fatalf("c1 subscriber got %s", p.Body)
		}
	}
	golden(t, "push_notify", "NotifySubscriberRequest", regexp.MustCompile(`"requestId":"\d+"`).ReplaceAllString(
		string(sub.serverRequests("NotifySubscriberRequest")[0].Body), `"requestId":"1"`))
	waitFor(t, 2*time.Second, "acks counted", func() bool { return counter(s.srv.metrics.pushes) >= 5 })

	// Unsubscribed: no more pushes; a publisher's close is pushed to the others.
	all.call("SubscribeServiceRequest", `{"serviceName":"orders","subscribe":false,"clusters":""}`)
	before := len(all.serverRequests("NotifySubscriberRequest"))
	pub.close()
	waitFor(t, 2*time.Second, "the publisher's departure pushed", func() bool {
		p := sub.serverRequests("NotifySubscriberRequest")
		return strings.Contains(string(p[len(p)-1].Body), `"hosts":[]`)
	})
	if after := len(all.serverRequests("NotifySubscriberRequest")); after != before {
		t.Fatalf("unsubscribed connection got %d more pushes", after-before)
	}
}

// TestPushRetry checks that an unacked push is sent once more, then given up.
func TestPushRetry(t *testing.T) {
	s := newStack(t, Config{PushDelay: 5 * time.Millisecond, PushTimeout: 200 * time.Millisecond})
	sub := s.connect()
	sub.noAck.Store(true)
	sub.call("SubscribeServiceRequest", `{"serviceName":"orders","subscribe":true}`)
	s.connect().call("InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.1", 1, ""))
	waitFor(t, 3*time.Second, "the push and its one retry", func() bool { return len(sub.serverRequests("NotifySubscriberRequest")) == 2 })
	waitFor(t, 3*time.Second, "the retry given up", func() bool { return counter(s.srv.metrics.pushFailures) == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := len(sub.serverRequests("NotifySubscriberRequest")); n != 2 {
		t.Fatalf("%d pushes, want 2 (one retry only)", n)
	}
}

// TestClientDetection checks that an idle connection is probed, kept while it
// answers, and dropped with its instances when it does not.
func TestClientDetection(t *testing.T) {
	s := newStack(t, Config{DetectIdle: 200 * time.Millisecond, DetectTimeout: 300 * time.Millisecond})
	good, bad := s.connect(), s.connect()
	bad.noDetect.Store(true)
	good.call("InstanceRequest", instanceReq("registerInstance", "a", "10.0.0.1", 1, ""))
	bad.call("InstanceRequest", instanceReq("registerInstance", "b", "10.0.0.2", 2, ""))
	waitFor(t, 5*time.Second, "the silent connection dropped", func() bool {
		_, reg := s.srv.Connections()
		return reg == 1
	})
	if n := len(good.serverRequests("ClientDetectionRequest")); n == 0 {
		t.Fatal("the answering connection was never probed")
	}
	if _, body := good.call("ServiceQueryRequest", `{"serviceName":"a"}`); !strings.Contains(body, `"ip":"10.0.0.1"`) {
		t.Fatalf("answering connection lost its instance: %s", body)
	}
	if _, body := good.call("ServiceQueryRequest", `{"serviceName":"b"}`); !strings.Contains(body, `"hosts":[]`) {
		t.Fatalf("silent connection kept its instance: %s", body)
	}
}

// TestStreamGarbage sends undecodable and unexpected messages on the stream: they are
// skipped and the connection goes on.
func TestStreamGarbage(t *testing.T) {
	s := newStack(t, Config{PushDelay: 5 * time.Millisecond})
	c := s.connect()
	sendMu.Lock()
	_ = c.stream.Send(&nacospb.Payload{})
	sendMu.Unlock()
	c.streamSend("InstanceRequest", `{"garbage`)
	c.streamSend("NotifySubscriberResponse", `not json`)
	c.streamSend("NotifySubscriberResponse", `{"requestId":"999","resultCode":200}`)
	c.streamSend("ConnectionSetupRequest", `{"clientVersion":"again"}`)
	waitFor(t, 2*time.Second, "garbage counted", func() bool { return counter(s.srv.metrics.streamGarbage) >= 3 })
	c.call("SubscribeServiceRequest", `{"serviceName":"orders","subscribe":true}`)
	c.call("InstanceRequest", instanceReq("registerInstance", "orders", "10.0.0.1", 1, ""))
	waitFor(t, 2*time.Second, "a push after the garbage", func() bool { return len(c.serverRequests("NotifySubscriberRequest")) > 0 })
}

// TestDrain checks that Drain sends ConnectResetRequest to every registered
// connection and that new server checks are refused meanwhile.
func TestDrain(t *testing.T) {
	s := newStack(t, Config{})
	a, b := s.connect(), s.connect()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s.srv.Drain(ctx)
	for _, c := range []*client{a, b} {
		waitFor(t, 2*time.Second, "ConnectResetRequest", func() bool { return len(c.serverRequests("ConnectResetRequest")) == 1 })
	}
	if _, body := s.dial().call("ServerCheckRequest", `{}`); !strings.Contains(body, `"errorCode":300`) {
		t.Fatalf("server check while draining: %s", body)
	}
}

// TestStopFailsStreams: stopping ends every stream with UNAVAILABLE, never a clean end
// of stream, so that clients which reconnect only on a failed stream come back.
func TestStopFailsStreams(t *testing.T) {
	s := newStack(t, Config{})
	c := s.connectWith(true)
	go s.srv.Stop()
	for {
		_, err := c.stream.Recv()
		if err == nil {
			continue
		}
		if code := status.Code(err); code != codes.Unavailable {
			t.Fatalf("stream ended with %v (%v), want Unavailable", code, err)
		}
		return
	}
}

// TestStuckSubscriberDoesNotDelayOthers: a subscriber that stops reading its stream
// (its HTTP/2 window fills, its sender blocks) holds at most one queued push per
// subscription, never delays the pushes to the other subscribers of the service, and
// is dropped once its write has been blocked for PushTimeout.
func TestStuckSubscriberDoesNotDelayOthers(t *testing.T) {
	const pushTimeout = 3 * time.Second
	s := newStack(t, Config{PushDelay: time.Millisecond, PushTimeout: pushTimeout, SendQueue: 4})
	fast1, fast2 := s.connect(), s.connect()
	stuck := s.connectWith(true, grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	for _, c := range []*client{fast1, stuck, fast2} {
		c.call("SubscribeServiceRequest", `{"serviceName":"big","subscribe":true}`)
	}
	stuck.call("InstanceRequest", instanceReq("registerInstance", "other", "10.0.0.1", 1, ""))
	pub := s.connect()
	pad := strings.Repeat("x", 900)
	var worst time.Duration
	began := time.Now()
	for round := 1; round <= 30; round++ {
		var insts []string
		for i := range 60 {
			insts = append(insts, fmt.Sprintf(`{"ip":"10.1.%d.%d","port":1,"metadata":{"pad":"%s","round":"%d"}}`, round, i, pad, round))
		}
		start := time.Now()
		if _, body := pub.call("BatchInstanceRequest", `{"serviceName":"big","type":"batchRegisterInstance","instances":[`+strings.Join(insts, ",")+`]}`); !strings.Contains(body, `"resultCode":200`) {
			t.Fatalf("round %d: %s", round, body)
		}
		want := fmt.Sprintf(`"round":"%d"`, round)
		for _, c := range []*client{fast1, fast2} {
			waitFor(t, time.Second, fmt.Sprintf("round %d pushed to a reading subscriber", round), func() bool {
				p := c.serverRequests("NotifySubscriberRequest")
				return len(p) > 0 && strings.Contains(string(p[len(p)-1].Body), want)
			})
		}
		worst = max(worst, time.Since(start))
	}
	// 30 pushes of ~60 KB each on a 64 KiB window: the stuck sender blocked long ago,
	// but coalescing kept its queue (4 slots) from overflowing: it is the write blocked
	// for PushTimeout that drops it, not the queue.
	_, reg := s.srv.Connections()
	if time.Since(began) < pushTimeout && reg != 4 {
		t.Fatalf("the stuck subscriber was dropped before its write was blocked for PushTimeout (%d registered)", reg)
	}
	waitFor(t, 10*time.Second, "the stuck subscriber dropped", func() bool {
		_, reg := s.srv.Connections()
		return reg == 3
	})
	if _, body := fast1.call("ServiceQueryRequest", `{"serviceName":"other"}`); !strings.Contains(body, `"hosts":[]`) {
		t.Fatalf("the dropped connection kept its instance: %s", body)
	}
	// The last round's acks may still be on their way when the stuck one is dropped.
	waitFor(t, 5*time.Second, "≥ 60 acked pushes", func() bool { return counter(s.srv.metrics.pushes) >= 60 })
	t.Logf("slowest write-to-push of the reading subscribers: %v", worst)
}

// TestPushEncodedOncePerChange: every subscriber of a service with the same clusters
// filter receives byte-identical NotifySubscriberRequests (requestId included), the
// request is encoded once per change and filter however many subscribers share it,
// and every subscriber's ack still matches its push.
func TestPushEncodedOncePerChange(t *testing.T) {
	const subscribers, changes = 12, 4
	s := newStack(t, Config{PushDelay: time.Millisecond})
	var all, c1 []*client
	for i := range subscribers {
		c := s.connect()
		clusters := ""
		if i%3 == 0 {
			clusters = "c1"
			c1 = append(c1, c)
		} else {
			all = append(all, c)
		}
		c.call("SubscribeServiceRequest", `{"serviceName":"shared","subscribe":true,"clusters":"`+clusters+`"}`)
	}
	pub := s.connect()
	for k := 1; k <= changes; k++ {
		pub.call("InstanceRequest", strings.Replace(instanceReq("registerInstance", "shared", "10.0.0.1", 1, ""),
			`"clusterName":""`, fmt.Sprintf(`"clusterName":"c1","metadata":{"change":"%d"}`, k), 1))
		want := fmt.Sprintf(`"change":"%d"`, k)
		for _, group := range [][]*client{all, c1} {
			var first []byte
			for _, c := range group {
				waitFor(t, 3*time.Second, fmt.Sprintf("change %d pushed", k), func() bool {
					p := c.serverRequests("NotifySubscriberRequest")
					return len(p) == k && strings.Contains(string(p[k-1].Body), want)
				})
				body := c.serverRequests("NotifySubscriberRequest")[k-1].Body
				if first == nil {
					first = body
				} else if !bytes.Equal(body, first) {
					t.Fatalf("change %d: subscribers of one filter got different pushes:\n%s\n%s", k, first, body)
				}
			}
		}
		if a, b := all[0].serverRequests("NotifySubscriberRequest")[k-1].Body, c1[0].serverRequests("NotifySubscriberRequest")[k-1].Body; bytes.Equal(a, b) {
			t.Fatalf("change %d: the c1 filter got the unfiltered push: %s", k, a)
		}
	}
	if got := counter(s.srv.metrics.pushEncodes); got != 2*changes {
		t.Fatalf("pushes encoded = %v, want %d (one per change and clusters filter)", got, 2*changes)
	}
	waitFor(t, 3*time.Second, "every push acked", func() bool { return counter(s.srv.metrics.pushes) == subscribers*changes })
	if f := counter(s.srv.metrics.pushFailures); f != 0 {
		t.Fatalf("%v push failures", f)
	}
}
