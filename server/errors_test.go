package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/roster-registry/roster/grpcapi"
	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// One error model: every registry operation's refusal is a *naming.Error, and each front
// answers it with the same Nacos code — v1 HTTP as its status and text, gRPC as its
// errorCode and message ("Param check invalid:" before a parameter text, as Nacos'
// parameter checker does). The test calls the registry itself for the expected error,
// then both fronts with the same input.

// frontCase is one refusal: what the registry is asked, and the same request on each
// front that has the operation (gRPC has only the instance, subscribe, query and list
// operations of Nacos 2.x clients).
type frontCase struct {
	name     string
	registry func(ctx context.Context, r *registry.Registry) error
	v1       v1Request
	grpcType string // blank: the operation has no gRPC request
	grpcBody string
}

type v1Request struct {
	method, path string
	params       url.Values
}

func key(ns, name string) naming.ServiceKey {
	return naming.ServiceKey{Namespace: ns, Group: naming.DefaultGroup, Name: name}
}

func inst(ip string, port int, ephemeral bool) *naming.Instance {
	return &naming.Instance{IP: ip, Port: port, ClusterName: naming.DefaultCluster, Weight: 1, Healthy: true, Enabled: true, Ephemeral: ephemeral}
}

func grpcInstance(typ, ns, service, ip string, port int, instanceExtra string) string {
	return fmt.Sprintf(`{"requestId":"","namespace":%q,"serviceName":%q,"groupName":"DEFAULT_GROUP","module":"naming","type":%q,`+
		`"instance":{"ip":%q,"port":%d,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"","metadata":{}%s}}`,
		ns, service, typ, ip, port, instanceExtra)
}

func TestEveryRegistryErrorReachesEachFrontWithTheSameCode(t *testing.T) {
	srv := servertest.StartNode(t)
	reg := srv.Registry()
	ctx := context.Background()
	// A persistent service and an ephemeral one to collide with.
	if err := reg.Register(ctx, key("public", "persist"), inst("127.0.0.1", 1, false)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, key("public", "eph"), inst("127.0.0.1", 2, true)); err != nil {
		t.Fatal(err)
	}
	bigMeta := `{"k":"` + strings.Repeat("v", naming.DefaultMaxMetadata+10) + `"}`
	weight := func(w float64) *float64 { return &w }

	cases := []frontCase{
		{
			name: "register ephemeral into a persistent service",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.Register(ctx, key("public", "persist"), inst("127.0.0.3", 3, true))
			},
			v1:       v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"persist"}, "ip": {"127.0.0.3"}, "port": {"3"}}},
			grpcType: "InstanceRequest", grpcBody: grpcInstance("registerInstance", "", "persist", "127.0.0.3", 3, ""),
		},
		{
			name: "register persistent into an ephemeral service",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.Register(ctx, key("public", "eph"), inst("127.0.0.3", 3, false))
			},
			v1:       v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"eph"}, "ip": {"127.0.0.3"}, "port": {"3"}, "ephemeral": {"false"}}},
			grpcType: "PersistentInstanceRequest", grpcBody: grpcInstance("registerInstance", "", "eph", "127.0.0.3", 3, ""),
		},
		{
			name: "register with a weight out of range",
			registry: func(ctx context.Context, r *registry.Registry) error {
				in := inst("127.0.0.4", 4, true)
				in.Weight = 10001
				return r.Register(ctx, key("public", "w"), in)
			},
			v1:       v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"w"}, "ip": {"127.0.0.4"}, "port": {"4"}, "weight": {"10001"}}},
			grpcType: "InstanceRequest", grpcBody: strings.Replace(grpcInstance("registerInstance", "", "w", "127.0.0.4", 4, ""), `"weight":1`, `"weight":10001`, 1),
		},
		{
			name: "register with metadata over the limit",
			registry: func(ctx context.Context, r *registry.Registry) error {
				in := inst("127.0.0.4", 4, true)
				in.Metadata = map[string]string{"k": strings.Repeat("v", naming.DefaultMaxMetadata+10)}
				return r.Register(ctx, key("public", "m"), in)
			},
			v1:       v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"m"}, "ip": {"127.0.0.4"}, "port": {"4"}, "metadata": {bigMeta}}},
			grpcType: "InstanceRequest", grpcBody: strings.Replace(grpcInstance("registerInstance", "", "m", "127.0.0.4", 4, ""), `"metadata":{}`, `"metadata":`+bigMeta, 1),
		},
		{
			name: "register into a cluster with a bad name",
			registry: func(ctx context.Context, r *registry.Registry) error {
				in := inst("127.0.0.4", 4, true)
				in.ClusterName = "c_1"
				return r.Register(ctx, key("public", "c"), in)
			},
			v1:       v1Request{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"c"}, "ip": {"127.0.0.4"}, "port": {"4"}, "clusterName": {"c_1"}}},
			grpcType: "InstanceRequest", grpcBody: strings.Replace(grpcInstance("registerInstance", "", "c", "127.0.0.4", 4, ""), `"clusterName":""`, `"clusterName":"c_1"`, 1),
		},
		{
			name: "deregister in a bad namespace",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.Deregister(ctx, key("a/b", "s"), "127.0.0.4", 4, naming.DefaultCluster, true)
			},
			v1:       v1Request{"DELETE", "/nacos/v1/ns/instance", url.Values{"namespaceId": {"a/b"}, "serviceName": {"s"}, "ip": {"127.0.0.4"}, "port": {"4"}}},
			grpcType: "InstanceRequest", grpcBody: grpcInstance("deregisterInstance", "a/b", "s", "127.0.0.4", 4, ""),
		},
		{
			name: "list with a bad cluster list",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.List(ctx, registry.Query{Service: key("public", "eph"), Clusters: "a b"})
				return err
			},
			v1:       v1Request{"GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"eph"}, "clusters": {"a b"}}},
			grpcType: "SubscribeServiceRequest", grpcBody: `{"namespace":"","serviceName":"eph","groupName":"DEFAULT_GROUP","subscribe":true,"clusters":"a b","module":"naming"}`,
		},
		{
			name: "query with a bad cluster list",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.List(ctx, registry.Query{Service: key("public", "eph"), Clusters: "a b"})
				return err
			},
			v1:       v1Request{"GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"eph"}, "clusters": {"a b"}}},
			grpcType: "ServiceQueryRequest", grpcBody: `{"namespace":"","serviceName":"eph","groupName":"DEFAULT_GROUP","cluster":"a b","healthyOnly":false,"udpPort":0,"module":"naming"}`,
		},
		{
			name: "update of a service that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.Update(ctx, key("public", "nosuch"), inst("127.0.0.5", 5, true))
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/instance", url.Values{"serviceName": {"nosuch"}, "ip": {"127.0.0.5"}, "port": {"5"}}},
		},
		{
			name: "patch of an instance that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.PatchInstance(ctx, key("public", "eph"), "127.0.0.9", 9, naming.DefaultCluster, registry.Patch{Weight: weight(2)})
			},
			v1: v1Request{"PATCH", "/nacos/v1/ns/instance", url.Values{"serviceName": {"eph"}, "ip": {"127.0.0.9"}, "port": {"9"}, "weight": {"2"}}},
		},
		{
			name: "get of an instance that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.Instance(ctx, key("public", "eph"), "127.0.0.9", 9, naming.DefaultCluster)
				return err
			},
			v1: v1Request{"GET", "/nacos/v1/ns/instance", url.Values{"serviceName": {"eph"}, "ip": {"127.0.0.9"}, "port": {"9"}}},
		},
		{
			name: "health of an ephemeral service",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.SetHealth(ctx, key("public", "eph"), "127.0.0.1", 2, naming.DefaultCluster, false)
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/health/instance", url.Values{"serviceName": {"eph"}, "ip": {"127.0.0.1"}, "port": {"2"}, "healthy": {"false"}}},
		},
		{
			name: "health of a persistent instance its cluster checks",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.SetHealth(ctx, key("public", "persist"), "127.0.0.1", 1, naming.DefaultCluster, false)
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/health/instance", url.Values{"serviceName": {"persist"}, "ip": {"127.0.0.1"}, "port": {"1"}, "healthy": {"false"}}},
		},
		{
			name: "cluster of a service that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.UpdateCluster(ctx, key("public", "nosuch"), naming.Cluster{Name: naming.DefaultCluster, HealthChecker: naming.HealthChecker{Type: naming.CheckerNone}})
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/cluster", url.Values{"serviceName": {"nosuch"}, "clusterName": {"DEFAULT"}, "checkPort": {"0"},
				"useInstancePort4Check": {"false"}, "healthChecker": {`{"type":"NONE"}`}}},
		},
		{
			name: "cluster with a checker of a type Roster does not probe",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.UpdateCluster(ctx, key("public", "persist"), naming.Cluster{Name: naming.DefaultCluster, HealthChecker: naming.HealthChecker{Type: "MYSQL"}})
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/cluster", url.Values{"serviceName": {"persist"}, "clusterName": {"DEFAULT"}, "checkPort": {"0"},
				"useInstancePort4Check": {"false"}, "healthChecker": {`{"type":"MYSQL"}`}}},
		},
		{
			name: "catalog of a service that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.CatalogService(ctx, key("public", "nosuch"))
				return err
			},
			v1: v1Request{"GET", "/nacos/v1/ns/catalog/service", url.Values{"serviceName": {"nosuch"}}},
		},
		{
			name: "persistent metadata batch over the limit",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.UpdateMetadataBatch(ctx, key("public", "persist"), true, nil, map[string]string{"k": strings.Repeat("v", naming.DefaultMaxMetadata+10)}, false)
				return err
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/instance/metadata/batch", url.Values{"serviceName": {"persist"}, "consistencyType": {"persist"}, "metadata": {bigMeta}}},
		},
		{
			name: "create of a service that exists",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.CreateService(ctx, naming.NewService(key("public", "persist"), false))
			},
			v1: v1Request{"POST", "/nacos/v1/ns/service", url.Values{"serviceName": {"persist"}}},
		},
		{
			name: "update of a service that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.UpdateService(ctx, key("public", "nosuch"), registry.ServiceUpdate{ProtectThreshold: weight(0.5)})
			},
			v1: v1Request{"PUT", "/nacos/v1/ns/service", url.Values{"serviceName": {"nosuch"}, "protectThreshold": {"0.5"}}},
		},
		{
			name: "delete of a service that still has instances",
			registry: func(ctx context.Context, r *registry.Registry) error {
				return r.DeleteService(ctx, key("public", "persist"))
			},
			v1: v1Request{"DELETE", "/nacos/v1/ns/service", url.Values{"serviceName": {"persist"}}},
		},
		{
			name: "get of a service that does not exist",
			registry: func(ctx context.Context, r *registry.Registry) error {
				_, err := r.GetService(ctx, key("public", "nosuch"))
				return err
			},
			v1: v1Request{"GET", "/nacos/v1/ns/service", url.Values{"serviceName": {"nosuch"}}},
		},
	}

	g := dialGRPC(t, srv)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.registry(ctx, reg)
			var want *naming.Error
			if !errors.As(err, &want) {
				t.Fatalf("registry answered %v, want a *naming.Error", err)
			}
			status, text := v1Call(t, srv, tc.v1)
			if status != want.Status || text != want.Message {
				t.Errorf("v1 answered %d %q, registry %d %q", status, text, want.Status, want.Message)
			}
			if tc.grpcType == "" {
				return
			}
			code, msg := g.fail(t, tc.grpcType, tc.grpcBody)
			if code != want.Status || (msg != want.Message && msg != "Param check invalid:"+want.Message) {
				t.Errorf("gRPC answered errorCode %d %q, registry %d %q", code, msg, want.Status, want.Message)
			}
		})
	}
}

// TestNoLeaderReachesEachFrontAsTheSameCode: the Raft sentinel of a write that finds no
// leader is translated once, in the registry, and both fronts answer its 503.
func TestNoLeaderReachesEachFrontAsTheSameCode(t *testing.T) {
	nodes := servertest.StartCluster(t, 3, func(_ int, cfg *server.Config) { cfg.HoldTimeout = 300 * time.Millisecond })
	survivor := nodes[0]
	for _, n := range nodes[1:] {
		if err := n.Close(); err != nil {
			t.Logf("close: %v", err)
		}
	}
	g := dialGRPC(t, survivor)
	// Wait until the survivor has stepped down: a write it took as leader would be an
	// unknown outcome instead (another answer, tested in the cluster package).
	deadline := time.Now().Add(10 * time.Second)
	for survivor.Registry().Leader() != "" {
		if time.Now().After(deadline) {
			t.Fatal("the lone survivor still knows a leader")
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, with a deadline
	}
	err := survivor.Registry().Register(context.Background(), key("public", "p"), inst("127.0.0.6", 6, false))
	var want *naming.Error
	if !errors.As(err, &want) || want.Status != http.StatusServiceUnavailable {
		t.Fatalf("registry answered %v, want a 503 *naming.Error", err)
	}
	status, text := v1Call(t, survivor, v1Request{"POST", "/nacos/v1/ns/instance",
		url.Values{"serviceName": {"p"}, "ip": {"127.0.0.6"}, "port": {"6"}, "ephemeral": {"false"}}})
	if status != want.Status || text != want.Message {
		t.Errorf("v1 answered %d %q, registry %d %q", status, text, want.Status, want.Message)
	}
	code, msg := g.fail(t, "PersistentInstanceRequest", grpcInstance("registerInstance", "", "p", "127.0.0.6", 6, ""))
	if code != want.Status || msg != want.Message {
		t.Errorf("gRPC answered errorCode %d %q, registry %d %q", code, msg, want.Status, want.Message)
	}
}

func v1Call(t testing.TB, srv *server.Server, r v1Request) (int, string) {
	t.Helper()
	target := "http://" + srv.HTTPAddr() + r.path
	var body io.Reader
	if r.method == http.MethodGet {
		target += "?" + r.params.Encode()
	} else {
		body = strings.NewReader(r.params.Encode())
	}
	req, err := http.NewRequest(r.method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// grpcClient is a bare Nacos 2.x client connection: set up as the clients do, then
// unary requests.
type grpcClient struct {
	req nacospb.RequestClient
	cc  *grpc.ClientConn
}

// dialGRPC connects to srv for the rest of the test.
func dialGRPC(t testing.TB, srv *server.Server) *grpcClient {
	t.Helper()
	g := connectGRPC(t, srv)
	t.Cleanup(g.close)
	return g
}

func (g *grpcClient) close() { _ = g.cc.Close() }

// connectGRPC connects to srv; the caller closes the client.
func connectGRPC(t testing.TB, srv *server.Server) *grpcClient {
	t.Helper()
	cc, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcClient{req: nacospb.NewRequestClient(cc), cc: cc}
	typ, _ := g.call(t, "ServerCheckRequest", `{"module":"internal"}`)
	if typ != "ServerCheckResponse" {
		t.Fatalf("ServerCheckRequest answered %s", typ)
	}
	stream, err := nacospb.NewBiRequestStreamClient(cc).RequestBiStream(context.Background())
	if err != nil {
		g.close()
		t.Fatal(err)
	}
	go func() { // drain what the server sends; these tests answer nothing
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	setup := `{"clientVersion":"Nacos-Go-Client:v2.3.2","tenant":"","labels":{"source":"sdk","module":"naming"},"clientAbilities":{},"module":"internal"}`
	if err := stream.Send(grpcapi.EncodePayload("ConnectionSetupRequest", []byte(setup))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if typ, _ := g.call(t, "HealthCheckRequest", `{"module":"internal"}`); typ == "HealthCheckResponse" {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatal("the gRPC connection was never registered")
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, with a deadline
	}
}

func (g *grpcClient) call(t testing.TB, typ, body string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := g.req.Request(ctx, grpcapi.EncodePayload(typ, []byte(body)))
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return p.GetMetadata().GetType(), string(p.GetBody().GetValue())
}

// fail sends a request that must be refused and returns Nacos' errorCode and message.
func (g *grpcClient) fail(t testing.TB, typ, body string) (int, string) {
	t.Helper()
	respType, answer := g.call(t, typ, body)
	var head struct {
		ResultCode int    `json:"resultCode"`
		ErrorCode  int    `json:"errorCode"`
		Message    string `json:"message"`
		Success    bool   `json:"success"`
	}
	if err := json.Unmarshal([]byte(answer), &head); err != nil {
		t.Fatalf("%s answered %s %q: %v", typ, respType, answer, err)
	}
	if head.Success || head.ResultCode != 500 {
		t.Fatalf("%s was not refused: %s %s", typ, respType, answer)
	}
	return head.ErrorCode, head.Message
}
