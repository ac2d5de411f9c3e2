package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// form sends a form request to a node and returns the status and body.
func form(t *testing.T, srv *server.Server, method, path string, params url.Values) (int, string) {
	t.Helper()
	return v1Call(t, srv, v1Request{method: method, path: path, params: params})
}

func namespaceIDs(t *testing.T, srv *server.Server) string {
	t.Helper()
	list, err := srv.Registry().Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range list {
		ids = append(ids, n.ID+"="+n.Name)
	}
	return strings.Join(ids, ",")
}

// TestNamespacesReplicateAndSurviveSnapshots: a namespace created, edited and deleted
// through a follower's console endpoint is the same on every member; one with
// services is refused deletion on every path; a snapshot taken and restored brings the
// namespace records back as they were.
func TestNamespacesReplicateAndSurviveSnapshots(t *testing.T) {
	nodes := servertest.StartCluster(t, 3)
	leader, followers := splitByRole(nodes)
	if leader == nil || len(followers) == 0 {
		t.Fatal("no leader and follower")
	}
	follower := followers[len(followers)-1]
	nsPath := "/nacos/v1/console/namespaces"
	if code, body := form(t, follower, "POST", nsPath, url.Values{"customNamespaceId": {"dev"}, "namespaceName": {"Dev"}}); code != 200 || body != "true" {
		t.Fatalf("create through a follower: %d %s", code, body)
	}
	if code, body := form(t, follower, "PUT", nsPath, url.Values{"namespace": {"dev"}, "namespaceShowName": {"Development"}, "maxServices": {"5"}}); code != 200 || body != "true" {
		t.Fatalf("edit through a follower: %d %s", code, body)
	}
	want := "public=public,dev=Development"
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			got := namespaceIDs(t, n)
			return got == want, n.NodeID() + " lists " + got
		})
		info, err := n.Registry().Namespace("dev")
		if err != nil || info == nil || info.QuotaServices != 5 || info.Kind != registry.NamespaceCreated {
			t.Fatalf("%s: dev = %+v, %v", n.NodeID(), info, err)
		}
	}

	// A persistent service in dev: every member refuses to delete dev.
	if code, body := form(t, follower, "POST", "/nacos/v1/ns/instance", url.Values{"namespaceId": {"dev"}, "serviceName": {"db"},
		"ip": {"10.0.0.1"}, "port": {"5432"}, "ephemeral": {"false"}}); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			keys, _ := n.Registry().Services("dev")
			return len(keys) == 1, n.NodeID() + " has not got the service"
		})
		code, body := form(t, n, "DELETE", nsPath, url.Values{"namespaceId": {"dev"}})
		if code != http.StatusBadRequest || !strings.Contains(body, "still has 1 service") {
			t.Fatalf("%s deleted a namespace with a service: %d %s", n.NodeID(), code, body)
		}
	}
	// The FSM refuses it too, when a proposal gets past the registry's check.
	err := leader.Registry().DeleteNamespace(context.Background(), "dev")
	var ne *naming.Error
	if !asNamingError(err, &ne) || ne.Code != naming.CodeIllegalNamespace {
		t.Fatalf("registry delete: %v", err)
	}

	// Snapshot now; then add a namespace and restore: the records are the snapshot's.
	snap := download(t, follower)
	if code, body := form(t, leader, "POST", nsPath, url.Values{"customNamespaceId": {"later"}, "namespaceName": {"Later"}}); body != "true" {
		t.Fatalf("create later: %d %s", code, body)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		got := namespaceIDs(t, follower)
		return strings.Contains(got, "later"), got
	})
	upload(t, follower, snap)
	for _, n := range nodes {
		eventually(t, 20*time.Second, func() (bool, string) {
			got := namespaceIDs(t, n)
			return got == want, n.NodeID() + " after restore lists " + got
		})
	}

	// Emptied, dev can be deleted, on every member.
	if code, body := form(t, leader, "DELETE", "/nacos/v1/ns/instance", url.Values{"namespaceId": {"dev"}, "serviceName": {"db"},
		"ip": {"10.0.0.1"}, "port": {"5432"}, "ephemeral": {"false"}}); code != 200 {
		t.Fatalf("deregister: %d %s", code, body)
	}
	if code, body := form(t, leader, "DELETE", "/nacos/v1/ns/service", url.Values{"namespaceId": {"dev"}, "serviceName": {"db"}}); code != 200 {
		t.Fatalf("delete service: %d %s", code, body)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		code, body := form(t, follower, "DELETE", nsPath, url.Values{"namespaceId": {"dev"}})
		return code == 200 && body == "true", body
	})
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			got := namespaceIDs(t, n)
			return got == "public=public", n.NodeID() + " lists " + got
		})
	}
}

func asNamingError(err error, ne **naming.Error) bool {
	e, ok := err.(*naming.Error)
	if ok {
		*ne = e
	}
	return ok
}

func download(t *testing.T, srv *server.Server) []byte {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/roster/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("snapshot download: %d %v", resp.StatusCode, err)
	}
	return b
}

func upload(t *testing.T, srv *server.Server, snap []byte) {
	t.Helper()
	// A restore whose outcome is unknown (503: leadership lost while committing it, as
	// a loaded machine can cause with the harness's short election timeout) is sent
	// again: restoring the same snapshot twice leaves the same state.
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequest(http.MethodPut, "http://"+srv.HTTPAddr()+"/roster/v1/snapshot", bytes.NewReader(snap))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("snapshot restore: %d %s", resp.StatusCode, b)
		}
		t.Logf("snapshot restore answered %d %s; sending it again", resp.StatusCode, b)
	}
}

// TestNamespaceQuotasHoldOnEveryPath: the server's default quotas and a namespace's
// own are refused with the same error through v1 HTTP (ephemeral and persistent
// registrations, service creation), the v2 API and gRPC (single and batch).
func TestNamespaceQuotasHoldOnEveryPath(t *testing.T) {
	srv := servertest.StartNode(t, func(c *server.Config) {
		c.NamespaceMaxServices = 2
		c.NamespaceMaxInstances = 3
	})
	reg := func(ns, svc, ip string, extra ...string) (int, string) {
		p := url.Values{"namespaceId": {ns}, "serviceName": {svc}, "ip": {ip}, "port": {"80"}}
		for i := 0; i+1 < len(extra); i += 2 {
			p.Set(extra[i], extra[i+1])
		}
		return form(t, srv, "POST", "/nacos/v1/ns/instance", p)
	}
	mustOK := func(code int, body string) {
		t.Helper()
		if code != 200 {
			t.Fatalf("refused: %d %s", code, body)
		}
	}
	mustRefuse := func(want string) func(int, string) {
		return func(code int, body string) {
			t.Helper()
			if code != http.StatusBadRequest || !strings.Contains(body, want) {
				t.Fatalf("got %d %q, want 400 with %q", code, body, want)
			}
		}
	}
	// public: two services, three instances.
	mustOK(reg("public", "a", "10.0.0.1"))
	mustOK(reg("public", "a", "10.0.0.2"))
	mustOK(reg("public", "b", "10.0.0.3", "ephemeral", "false"))
	mustRefuse("namespace public has reached its quota of 2 services")(reg("public", "c", "10.0.0.4"))
	mustRefuse("namespace public has reached its quota of 3 instances")(reg("public", "a", "10.0.0.5"))
	mustRefuse("namespace public has reached its quota of 3 instances")(reg("public", "b", "10.0.0.5", "ephemeral", "false"))
	mustRefuse("quota of 2 services")(form(t, srv, "POST", "/nacos/v1/ns/service", url.Values{"serviceName": {"c"}}))
	code, body := form(t, srv, "POST", "/nacos/v2/ns/instance", url.Values{"serviceName": {"a"}, "ip": {"10.0.0.6"}, "port": {"80"}})
	if code != 400 || !strings.Contains(body, `"code":23000`) || !strings.Contains(body, "quota of 3 instances") {
		t.Fatalf("v2 register over quota: %d %s", code, body)
	}
	// Re-registering what is there, and a beat, are no new instances.
	mustOK(reg("public", "a", "10.0.0.1"))

	// gRPC: a single register and a batch are refused the same way.
	g := dialGRPC(t, srv)
	ecode, msg := g.fail(t, "InstanceRequest", grpcInstance("registerInstance", "", "a", "10.0.0.7", 80, ""))
	if ecode != http.StatusBadRequest || msg != "namespace public has reached its quota of 3 instances" {
		t.Fatalf("gRPC register over quota: %d %q", ecode, msg)
	}
	ecode, msg = g.fail(t, "PersistentInstanceRequest", grpcInstance("registerInstance", "", "b", "10.0.0.9", 80, ""))
	if ecode != http.StatusBadRequest || msg != "namespace public has reached its quota of 3 instances" {
		t.Fatalf("gRPC persistent register over quota: %d %q", ecode, msg)
	}
	batch := `{"requestId":"","namespace":"","serviceName":"d","groupName":"DEFAULT_GROUP","module":"naming","type":"batchRegisterInstance",` +
		`"instances":[{"ip":"10.0.0.8","port":80,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"","metadata":{}}]}`
	ecode, msg = g.fail(t, "BatchInstanceRequest", batch)
	if ecode != http.StatusBadRequest || msg != "namespace public has reached its quota of 2 services" {
		t.Fatalf("gRPC batch over quota: %d %q", ecode, msg)
	}

	// A namespace's own quotas override the defaults: unlimited services, one instance.
	if code, body := form(t, srv, "POST", "/nacos/v1/console/namespaces", url.Values{"customNamespaceId": {"tight"}, "namespaceName": {"Tight"},
		"maxServices": {"0"}, "maxInstances": {"1"}}); body != "true" {
		t.Fatalf("create tight: %d %s", code, body)
	}
	mustOK(reg("tight", "x", "10.0.1.1"))
	mustRefuse("namespace tight has reached its quota of 1 instances")(reg("tight", "y", "10.0.1.2"))
	if code, body := form(t, srv, "POST", "/nacos/v1/ns/service", url.Values{"namespaceId": {"tight"}, "serviceName": {"y"}}); code != 200 {
		t.Fatalf("service in tight: %d %s", code, body)
	}
	// Dropping the override (-1) brings the defaults back: two services are there.
	if code, body := form(t, srv, "PUT", "/nacos/v1/console/namespaces", url.Values{"namespace": {"tight"}, "maxServices": {"-1"}, "maxInstances": {"-1"}}); body != "true" {
		t.Fatalf("edit tight: %d %s", code, body)
	}
	mustRefuse("quota of 2 services")(form(t, srv, "POST", "/nacos/v1/ns/service", url.Values{"namespaceId": {"tight"}, "serviceName": {"z"}}))
	mustOK(reg("tight", "y", "10.0.1.2", "ephemeral", "false"))

	// Nothing refused was stored.
	var list struct {
		Count int `json:"count"`
	}
	_, body = form(t, srv, "GET", "/nacos/v1/ns/service/list", url.Values{"pageNo": {"1"}, "pageSize": {"10"}})
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.Count != 2 {
		t.Fatalf("services in public: %s", body)
	}
}

// TestConsoleNodeLeave: the console's node leave, sent to a follower, reaches the
// leader with its JSON body and removes the named member from the Raft configuration.
func TestConsoleNodeLeave(t *testing.T) {
	nodes := servertest.StartCluster(t, 3)
	leader, followers := splitByRole(nodes)
	if leader == nil || len(followers) != 2 {
		t.Fatal("no leader and two followers")
	}
	gone := followers[1]
	body := `["` + gone.HTTPAddr() + `"]`
	resp, err := http.Post("http://"+followers[0].HTTPAddr()+"/nacos/v1/core/cluster/server/leave", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"code":200,"message":null,"data":"ok"}` {
		t.Fatalf("leave answered %d %s", resp.StatusCode, b)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		servers, err := leader.Registry().RaftServers()
		if err != nil {
			return false, err.Error()
		}
		for _, s := range servers {
			if s.ID == gone.NodeID() {
				return false, gone.NodeID() + " is still a peer"
			}
		}
		return len(servers) == 2, fmt.Sprintf("%d servers", len(servers))
	})
	// The node list no longer shows it.
	eventually(t, 10*time.Second, func() (bool, string) {
		code, list := form(t, followers[0], "GET", "/nacos/v1/core/cluster/nodes", url.Values{"keyword": {gone.HTTPAddr()}})
		return code == 200 && strings.Contains(list, `"data":[]`), list
	})
}

// TestPersistentQuotaHoldsAcrossMembers: persistent registrations sent at once through
// two members, each of which sees room in its own view, leave exactly the quota: the
// FSM refuses the ones past it in log order, with the registry's error.
func TestPersistentQuotaHoldsAcrossMembers(t *testing.T) {
	const quota, perMember = 3, 6
	nodes := servertest.StartCluster(t, 3, func(_ int, c *server.Config) { c.NamespaceMaxInstances = quota })
	type result struct {
		code int
		body string
	}
	results := make(chan result, 2*perMember)
	start := make(chan struct{})
	for m, n := range nodes[:2] {
		for i := 0; i < perMember; i++ {
			ip := fmt.Sprintf("10.0.%d.%d", m, i+1)
			go func() {
				<-start
				code, body := form(t, n, "POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"db"},
					"ip": {ip}, "port": {"5432"}, "ephemeral": {"false"}})
				results <- result{code, body}
			}()
		}
	}
	close(start)
	ok := 0
	for i := 0; i < 2*perMember; i++ {
		r := <-results
		switch {
		case r.code == 200:
			ok++
		case r.code == http.StatusBadRequest && r.body == "namespace public has reached its quota of 3 instances":
		default:
			t.Errorf("register: %d %q", r.code, r.body)
		}
	}
	if ok != quota {
		t.Errorf("%d registrations accepted, want %d", ok, quota)
	}
	key := naming.ServiceKey{Namespace: "public", Group: naming.DefaultGroup, Name: "db"}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			info, err := n.Registry().Namespace("public")
			if err != nil {
				return false, err.Error()
			}
			return info.Instances == quota, fmt.Sprintf("%s holds %d instances of %v", n.NodeID(), info.Instances, key)
		})
	}
}

// TestDeleteServiceRightAfterDeregisterElsewhere: a persistent service emptied through
// one member can be deleted through another at once, before that member has applied
// the deregistration: the FSM, not the member's view, decides that it is empty.
func TestDeleteServiceRightAfterDeregisterElsewhere(t *testing.T) {
	nodes := servertest.StartCluster(t, 3)
	a, followers := splitByRole(nodes)
	if a == nil || len(followers) == 0 {
		t.Fatal("no leader and follower")
	}
	b := followers[len(followers)-1]
	for i := 0; i < 20; i++ {
		svc := fmt.Sprintf("db%d", i)
		inst := url.Values{"serviceName": {svc}, "ip": {"10.0.0.1"}, "port": {"5432"}, "ephemeral": {"false"}}
		if code, body := form(t, a, "POST", "/nacos/v1/ns/instance", inst); code != 200 {
			t.Fatalf("register %s: %d %s", svc, code, body)
		}
		// Both have the instance: a deregistration through a member that has not (after
		// a change of leader) would find nothing to remove there.
		for _, n := range []*server.Server{a, b} {
			eventually(t, 10*time.Second, func() (bool, string) {
				keys, _ := n.Registry().Services("public")
				for _, k := range keys {
					if k.Name == svc {
						return true, ""
					}
				}
				return false, n.NodeID() + " has not got " + svc
			})
		}
		if code, body := form(t, a, "DELETE", "/nacos/v1/ns/instance", inst); code != 200 {
			t.Fatalf("deregister %s: %d %s", svc, code, body)
		}
		if code, body := form(t, b, "DELETE", "/nacos/v1/ns/service", url.Values{"serviceName": {svc}}); code != 200 || body != "ok" {
			t.Fatalf("delete %s through %s right after the deregistration: %d %s", svc, b.NodeID(), code, body)
		}
	}
	// Still refused while an instance is there, through any member.
	inst := url.Values{"serviceName": {"kept"}, "ip": {"10.0.0.1"}, "port": {"5432"}, "ephemeral": {"false"}}
	if code, body := form(t, b, "POST", "/nacos/v1/ns/instance", inst); code != 200 {
		t.Fatalf("register kept: %d %s", code, body)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			keys, _ := n.Registry().Services("public")
			return len(keys) == 1, n.NodeID() + " has not got kept"
		})
		code, body := form(t, n, "DELETE", "/nacos/v1/ns/service", url.Values{"serviceName": {"kept"}})
		if code != http.StatusBadRequest || !strings.Contains(body, "is not empty") {
			t.Fatalf("%s deleted a service with an instance: %d %s", n.NodeID(), code, body)
		}
	}
}
