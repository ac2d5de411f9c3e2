package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/server/servertest"
)

// TestNamespaceCommands drives "roster namespace" against a real node: create, list
// (table and JSON), update of quotas only, a refused delete, a delete.
func TestNamespaceCommands(t *testing.T) {
	srv := servertest.StartNode(t)
	addr := "http://" + srv.HTTPAddr()

	code, out, errs := cli(t, "namespace", "create", "--addr", addr, "--id", "dev", "--name", "Development", "--desc", "the dev team", "--max-services", "10")
	if code != 0 || out != "namespace dev: created\n" || errs != "" {
		t.Fatalf("create: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, _, errs = cli(t, "namespace", "create", "--addr", addr, "--id", "dev")
	if code != exitError || oneLine(t, errs) != "roster: 400: the namespaceId is existed, namespaceId: dev" {
		t.Fatalf("duplicate create: exit %d, stderr %q", code, errs)
	}
	code, out, errs = cli(t, "namespace", "update", "--addr", addr, "--id", "dev", "--max-instances", "50")
	if code != 0 || out != "namespace dev: updated\n" {
		t.Fatalf("update: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// A service in dev.
	resp, err := http.PostForm(addr+"/nacos/v1/ns/instance", url.Values{"namespaceId": {"dev"}, "serviceName": {"db"}, "ip": {"10.0.0.1"}, "port": {"5432"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()

	code, out, errs = cli(t, "namespace", "list", "--addr", addr)
	want := "ID      NAME         TYPE     SERVICES  INSTANCES  MAX SERVICES  MAX INSTANCES  DESCRIPTION\n" +
		"public  public       public   0         0          -             -              -\n" +
		"dev     Development  created  1         1          10            50             the dev team\n"
	if code != 0 || out != want {
		t.Fatalf("list: exit %d, stderr %q, table\n%s\nwant\n%s", code, errs, out, want)
	}
	code, out, _ = cli(t, "namespace", "list", "--addr", addr, "-o", "json")
	var list []client.Namespace
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[1].ServiceQuota != 10 || list[1].InstanceQuota != 50 {
		t.Fatalf("list json: exit %d, %s", code, out)
	}

	code, _, errs = cli(t, "namespace", "delete", "--addr", addr, "--id", "dev")
	if code != exitError || oneLine(t, errs) != "roster: 400: namespace dev still has 1 service(s); delete them before the namespace" {
		t.Fatalf("delete with a service: exit %d, stderr %q", code, errs)
	}
	code, _, errs = cli(t, "namespace", "delete", "--addr", addr, "--id", "public")
	if code != exitError || !strings.Contains(errs, "namespace public is built in") {
		t.Fatalf("delete public: exit %d, stderr %q", code, errs)
	}
	code, out, errs = cli(t, "namespace", "create", "--addr", addr, "--id", "tmp", "-o", "json")
	if code != 0 || !strings.Contains(out, `"namespace": "tmp"`) {
		t.Fatalf("create tmp: exit %d, %q %q", code, out, errs)
	}
	code, out, _ = cli(t, "namespace", "delete", "--addr", addr, "--id", "tmp")
	if code != 0 || out != "namespace tmp: deleted\n" {
		t.Fatalf("delete tmp: exit %d, %q", code, out)
	}
	code, _, errs = cli(t, "namespace", "update", "--addr", addr, "--id", "nope", "--max-services", "1")
	if code != exitError || oneLine(t, errs) != "roster: 404: namespaceId [ nope ] not exist" {
		t.Fatalf("update missing: exit %d, stderr %q", code, errs)
	}
}

func TestNamespaceUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"namespace"},
		{"namespace", "rename"},
		{"namespace", "create"},
		{"namespace", "delete"},
		{"namespace", "update", "--id", "x", "--max-services", "-2"},
		{"namespace", "create", "--id", "x", "extra"},
	} {
		if code, _, _ := cli(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
