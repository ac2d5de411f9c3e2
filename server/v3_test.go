package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestV3AdminAPIAcrossCluster drives the Nacos 3 admin API as the maintainer client does,
// writing through a follower, and reads the result back through every member: the v3
// handlers go through the registry like v1's, so writes are forwarded and replicated.
func TestV3AdminAPIAcrossCluster(t *testing.T) {
	nodes := servertest.StartCluster(t, 3)
	_, followers := splitByRole(nodes)
	if len(followers) < 2 {
		t.Fatal("no two followers among three nodes")
	}
	follower, other := followers[0], followers[len(followers)-1]
	c := newClient(t)
	send := func(method string, n *server.Server, path string, q url.Values) string {
		t.Helper()
		u := "http://" + n.HTTPAddr() + path
		body := strings.NewReader(q.Encode())
		if method == http.MethodDelete {
			u, body = u+"?"+q.Encode(), strings.NewReader("")
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Code int             `json:"code"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Code != 0 {
			t.Fatalf("%s %s: %s code %d (%v)", method, path, resp.Status, out.Code, err)
		}
		return string(out.Data)
	}
	// get reads without failing the test: a member may not have applied a write yet.
	get := func(n *server.Server, pathAndQuery string) string {
		resp, err := c.Get("http://" + n.HTTPAddr() + pathAndQuery)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.Status + " " + b.String()
	}
	ns := "/nacos/v3/admin/ns"
	svc := url.Values{"namespaceId": {"public"}, "groupName": {"pay"}, "serviceName": {"billing"}, "ephemeral": {"false"},
		"protectThreshold": {"0.0"}, "metadata": {`{"owner":"a"}`}, "selector": {`{"type":"none","contextType":"NONE"}`}}
	if got := send(http.MethodPost, follower, ns+"/service", svc); got != `"ok"` {
		t.Fatalf("create service through %s: %s", follower.NodeID(), got)
	}
	inst := url.Values{"groupName": {"pay"}, "serviceName": {"billing"}, "clusterName": {"c1"}, "ip": {"10.0.0.6"}, "port": {"9090"},
		"weight": {"1.0"}, "healthy": {"true"}, "enabled": {"true"}, "metadata": {"{}"}, "ephemeral": {"false"}}
	send(http.MethodPost, follower, ns+"/instance", inst)
	partial := url.Values{"groupName": {"pay"}, "serviceName": {"billing"}, "clusterName": {"c1"}, "ip": {"10.0.0.6"}, "port": {"9090"},
		"metadata": {`{"k":"v"}`}, "weight": {"2.0"}}
	send(http.MethodPut, other, ns+"/instance/partial", partial)
	if got := send(http.MethodPost, other, "/nacos/v3/admin/core/namespace", url.Values{"namespaceId": {"dev"}, "namespaceName": {"Dev"}}); got != "true" {
		t.Fatalf("create namespace: %s", got)
	}

	list := url.Values{"groupName": {"pay"}, "serviceName": {"billing"}, "clusterName": {"c1"}}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			body := get(n, ns+"/instance/list?"+list.Encode())
			return strings.Contains(body, `"ip":"10.0.0.6"`) && strings.Contains(body, `"weight":2.0`) && strings.Contains(body, `"metadata":{"k":"v"}`),
				n.NodeID() + " lists " + body
		})
		eventually(t, 10*time.Second, func() (bool, string) {
			body := get(n, "/nacos/v3/admin/core/namespace?namespaceId=dev")
			return strings.Contains(body, `"namespaceShowName":"Dev"`), n.NodeID() + " shows " + body
		})
	}
	send(http.MethodDelete, other, ns+"/instance", inst)
	// The registry refuses a service delete against the receiving member's own view
	// while that still shows the instance, so wait until the follower has applied it.
	eventually(t, 10*time.Second, func() (bool, string) {
		body := get(follower, ns+"/instance/list?"+list.Encode())
		return strings.Contains(body, "cluster c1 is not found!"), follower.NodeID() + " lists " + body
	})
	send(http.MethodDelete, follower, ns+"/service", svc)
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() (bool, string) {
			body := get(n, ns+"/service/list?groupNameParam=pay")
			return strings.Contains(body, `"totalCount":0`), n.NodeID() + " lists " + body
		})
	}
}
