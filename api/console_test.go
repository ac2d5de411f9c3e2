package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// consoleMasks hide what changes from run to run in the console's answers.
var consoleMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`"raftAddr":"127\.0\.0\.1:\d+","raftPort":"\d+"`), `"raftAddr":"127.0.0.1:<port>","raftPort":"<port>"`},
}

func goldenConsole(t *testing.T, name string, a answer) {
	t.Helper()
	for _, m := range consoleMasks {
		a.body = m.re.ReplaceAllString(a.body, m.with)
	}
	golden(t, "console_"+name, a)
}

// consoleState registers what the console goldens show: in public, orders (ephemeral,
// two instances, one disabled), billing in group pay (persistent, two instances in a
// NONE cluster, one unhealthy, protect threshold 0.6 so the flag is raised), and idle
// (no instance); in dev, one service; and the created namespace staging.
func consoleState(t *testing.T, s *stack) {
	t.Helper()
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.1", "port", "8080", "metadata", `{"zone":"a"}`))
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.2", "port", "8080", "enabled", "false"))
	s.must("POST", "/nacos/v1/ns/service", vals("serviceName", "billing", "groupName", "pay", "protectThreshold", "0.6"))
	for _, ip := range []string{"10.0.1.1", "10.0.1.2"} {
		s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "billing", "groupName", "pay", "ip", ip, "port", "9090",
			"ephemeral", "false", "clusterName", "c1"))
	}
	s.must("PUT", "/nacos/v1/ns/cluster", vals("serviceName", "billing", "groupName", "pay", "clusterName", "c1",
		"checkPort", "80", "useInstancePort4Check", "true", "healthChecker", `{"type":"NONE"}`))
	s.must("PUT", "/nacos/v1/ns/health", vals("serviceName", "billing", "groupName", "pay", "ip", "10.0.1.2", "port", "9090",
		"clusterName", "c1", "healthy", "false"))
	s.must("POST", "/nacos/v1/ns/service", vals("serviceName", "idle"))
	s.must("POST", "/nacos/v1/ns/instance", vals("namespaceId", "dev", "serviceName", "orders", "ip", "10.0.2.1", "port", "8080"))
	if a := s.do("POST", "/nacos/v1/console/namespaces", vals("customNamespaceId", "staging", "namespaceName", "Staging", "namespaceDesc", "pre-production")); a.body != "true" {
		t.Fatalf("create staging: %d %s", a.status, a.body)
	}
}

// TestConsoleGoldenAnswers calls every console endpoint of CONSOLE.md (and its edges:
// a blank namespaceId, paging past the end, filters) and keeps each answer in
// testdata/api/console_*.golden.
func TestConsoleGoldenAnswers(t *testing.T) {
	s := newStack(t, stackOptions{})
	consoleState(t, s)
	nsPath := "/nacos/v1/console/namespaces"
	type call struct {
		name, method, path string
		params             url.Values
	}
	calls := []call{
		{"server_state", "GET", "/nacos/v1/console/server/state", nil},
		{"server_announcement", "GET", "/nacos/v1/console/server/announcement", vals("language", "en-US")},
		{"namespaces", "GET", nsPath, nil},
		{"namespaces_blank_namespace", "GET", nsPath, vals("namespaceId", "")},
		{"namespace_show_public_blank", "GET", nsPath, vals("show", "all", "namespaceId", "")},
		{"namespace_show_created", "GET", nsPath, vals("show", "all", "namespaceId", "staging")},
		{"namespace_show_used", "GET", nsPath, vals("show", "all", "namespaceId", "dev")},
		{"namespace_show_missing", "GET", nsPath, vals("show", "all", "namespaceId", "nope")},
		{"namespace_exist_created", "GET", nsPath, vals("checkNamespaceIdExist", "true", "customNamespaceId", "staging")},
		{"namespace_exist_used", "GET", nsPath, vals("checkNamespaceIdExist", "true", "customNamespaceId", "dev")},
		{"namespace_exist_public", "GET", nsPath, vals("checkNamespaceIdExist", "true", "customNamespaceId", "public")},
		{"namespace_exist_blank", "GET", nsPath, vals("checkNamespaceIdExist", "true", "customNamespaceId", "")},
		{"namespace_create", "POST", nsPath, vals("customNamespaceId", "qa", "namespaceName", "QA", "namespaceDesc", "")},
		{"namespace_create_duplicate", "POST", nsPath, vals("customNamespaceId", "qa", "namespaceName", "QA again")},
		{"namespace_create_bad_id", "POST", nsPath, vals("customNamespaceId", "a/b", "namespaceName", "x")},
		{"namespace_create_bad_name", "POST", nsPath, vals("customNamespaceId", "qb", "namespaceName", "a@b")},
		{"namespace_create_public", "POST", nsPath, vals("customNamespaceId", "public", "namespaceName", "p")},
		{"namespace_create_no_name", "POST", nsPath, vals("customNamespaceId", "qc")},
		{"namespace_create_bad_quota", "POST", nsPath, vals("customNamespaceId", "qd", "namespaceName", "d", "maxServices", "-5")},
		{"namespace_edit", "PUT", nsPath, vals("namespace", "qa", "namespaceShowName", "Quality", "namespaceDesc", "testers")},
		{"namespace_edit_used", "PUT", nsPath, vals("namespace", "dev", "namespaceShowName", "Development")},
		{"namespace_edit_missing", "PUT", nsPath, vals("namespace", "nope", "namespaceShowName", "x")},
		{"namespace_edit_public", "PUT", nsPath, vals("namespace", "public", "namespaceShowName", "x")},
		{"namespaces_after_writes", "GET", nsPath, nil},
		{"namespace_delete", "DELETE", nsPath, vals("namespaceId", "qa")},
		{"namespace_delete_gone", "DELETE", nsPath, vals("namespaceId", "qa")},
		{"namespace_delete_with_services", "DELETE", nsPath, vals("namespaceId", "dev")},
		{"namespace_delete_public", "DELETE", nsPath, vals("namespaceId", "public")},
		{"namespace_delete_blank", "DELETE", nsPath, vals("namespaceId", "")},

		{"catalog_services", "GET", "/nacos/v1/ns/catalog/services", vals("withInstances", "false", "pageNo", "1", "pageSize", "10", "namespaceId", "")},
		{"catalog_services_no_paging", "GET", "/nacos/v1/ns/catalog/services", nil},
		{"catalog_services_page2", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "2", "pageSize", "2")},
		{"catalog_services_past_end", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "9", "pageSize", "2")},
		{"catalog_services_page_size_0", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "0")},
		{"catalog_services_has_ip_count", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "10", "hasIpCount", "true")},
		{"catalog_services_name_filter", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "10", "serviceNameParam", "rde")},
		{"catalog_services_group_filter", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "10", "groupNameParam", "pa")},
		{"catalog_services_filter_none", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "10", "serviceNameParam", "zzz")},
		{"catalog_services_dev", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "1", "pageSize", "10", "namespaceId", "dev")},
		{"catalog_services_bad_page", "GET", "/nacos/v1/ns/catalog/services", vals("pageNo", "x", "pageSize", "10")},
		{"catalog_services_with_instances", "GET", "/nacos/v1/ns/catalog/services", vals("withInstances", "true", "pageNo", "1", "pageSize", "10")},
		{"catalog_service_blank_namespace", "GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing", "groupName", "pay", "namespaceId", "")},
		{"catalog_instances", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "clusterName", "DEFAULT", "groupName", "DEFAULT_GROUP", "pageNo", "1", "pageSize", "10", "namespaceId", "")},
		{"catalog_instances_page2", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "clusterName", "DEFAULT", "pageNo", "2", "pageSize", "1")},
		{"catalog_instances_past_end", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "clusterName", "DEFAULT", "pageNo", "3", "pageSize", "1")},
		{"catalog_instances_grouped", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "pay@@billing", "clusterName", "c1", "pageNo", "1", "pageSize", "10")},
		{"catalog_instances_other_cluster", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "clusterName", "c9", "pageNo", "1", "pageSize", "10")},
		{"catalog_instances_no_cluster", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "pageNo", "1", "pageSize", "10")},
		{"catalog_instances_no_page", "GET", "/nacos/v1/ns/catalog/instances", vals("serviceName", "orders", "clusterName", "DEFAULT", "pageSize", "10")},
		{"selector_types", "GET", "/nacos/v1/ns/service/selector/types", nil},
		{"cluster_nodes", "GET", "/nacos/v1/core/cluster/nodes", vals("withInstances", "false", "pageNo", "1", "pageSize", "10", "keyword", "")},
		{"cluster_nodes_keyword", "GET", "/nacos/v1/core/cluster/nodes", vals("keyword", "8848")},
		{"cluster_nodes_keyword_none", "GET", "/nacos/v1/core/cluster/nodes", vals("keyword", "10.9.")},
	}
	for _, c := range calls {
		goldenConsole(t, c.name, s.do(c.method, c.path, c.params))
	}
	// The service dialog, the cluster dialog, the subscriber page and the delete button.
	more := []call{
		{"service_create", "POST", "/nacos/v1/ns/service", vals("serviceName", "web", "groupName", "DEFAULT_GROUP", "protectThreshold", "0.2",
			"metadata", "team=a,tier=front", "selector", `{"type":"none"}`, "namespaceId", "")},
		{"service_edit", "PUT", "/nacos/v1/ns/service", vals("serviceName", "web", "groupName", "DEFAULT_GROUP", "protectThreshold", "0.3",
			"metadata", `{"team":"b"}`, "selector", `{"type":"label","expression":"CONSUMER.label.a = PROVIDER.label.a"}`, "namespaceId", "")},
		{"catalog_service_edited", "GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "web", "groupName", "DEFAULT_GROUP", "namespaceId", "")},
		{"cluster_edit_grouped", "PUT", "/nacos/v1/ns/cluster", vals("serviceName", "pay@@billing", "clusterName", "c1", "metadata", `{"zone":"z"}`,
			"checkPort", "9091", "useInstancePort4Check", "false", "healthChecker", `{"type":"NONE"}`, "namespaceId", "")},
		{"catalog_service_cluster_edited", "GET", "/nacos/v1/ns/catalog/service", vals("serviceName", "billing", "groupName", "pay")},
		{"subscribers", "GET", "/nacos/v1/ns/service/subscribers", vals("serviceName", "orders", "groupName", "DEFAULT_GROUP", "pageNo", "1", "pageSize", "10", "namespaceId", "")},
		{"service_delete_not_empty", "DELETE", "/nacos/v1/ns/service", vals("serviceName", "orders", "groupName", "DEFAULT_GROUP", "namespaceId", "")},
		{"service_delete", "DELETE", "/nacos/v1/ns/service", vals("serviceName", "web", "groupName", "DEFAULT_GROUP", "namespaceId", "")},
	}
	for _, c := range more {
		goldenConsole(t, c.name, s.do(c.method, c.path, c.params))
	}
	goldenConsole(t, "server_leave_bad_body", s.json("POST", "/nacos/v1/core/cluster/server/leave", `{"a":1}`))
	goldenConsole(t, "server_leave_unknown", s.json("POST", "/nacos/v1/core/cluster/server/leave", `["10.9.9.9:8848"]`))
	// The console's instance edit and online/offline toggle go through PUT /instance and
	// show in the instance table.
	s.must("PUT", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.2", "port", "8080", "clusterName", "DEFAULT",
		"ephemeral", "true", "weight", "3", "enabled", "true", "metadata", `{"zone":"b"}`))
	goldenConsole(t, "catalog_instances_after_edit", s.do("GET", "/nacos/v1/ns/catalog/instances",
		vals("serviceName", "orders", "clusterName", "DEFAULT", "pageNo", "1", "pageSize", "10")))
}

// json sends a JSON body.
func (s *stack) json(method, path, body string) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return s.send(req)
}

// TestConsoleNamespaceGeneratedID: a namespace created without an id gets a UUID, is
// listed as created, and takes services.
func TestConsoleNamespaceGeneratedID(t *testing.T) {
	s := newStack(t, stackOptions{})
	if a := s.do("POST", "/nacos/v1/console/namespaces", vals("customNamespaceId", "", "namespaceName", "Generated")); a.body != "true" {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var list struct {
		Code int             `json:"code"`
		Data []namespaceJSON `json:"data"`
	}
	a := s.do("GET", "/nacos/v1/console/namespaces", nil)
	if err := json.Unmarshal([]byte(a.body), &list); err != nil || list.Code != 200 || len(list.Data) != 2 {
		t.Fatalf("list: %s (%v)", a.body, err)
	}
	id := list.Data[1].Namespace
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) ||
		list.Data[1].NamespaceShowName != "Generated" || list.Data[1].Type != 2 {
		t.Fatalf("generated namespace: %+v", list.Data[1])
	}
	s.must("POST", "/nacos/v1/ns/instance", vals("namespaceId", id, "serviceName", "s", "ip", "10.0.0.1", "port", "1"))
	if l := s.list("namespaceId", id, "serviceName", "s"); len(l.Hosts) != 1 {
		t.Fatalf("instances in the generated namespace: %+v", l)
	}
}

// TestConsoleAuthPagesGolden drives the user, role and permission pages' endpoints with
// auth on and keeps each answer in testdata/api/console_auth_*.golden.
func TestConsoleAuthPagesGolden(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	goldenConsole(t, "auth_server_state_before_admin", s.do("GET", "/nacos/v1/console/server/state", nil))
	admin := s.bootstrapACL()
	tok := func(kv ...string) url.Values { return withToken(vals(kv...), admin) }
	type call struct {
		name, method, path string
		params             url.Values
	}
	calls := []call{
		{"server_state", "GET", "/nacos/v1/console/server/state", nil},
		{"create_admin_refused", "POST", "/nacos/v1/auth/users/admin", vals("password", "x")},
		{"user_create", "POST", "/nacos/v1/auth/users", tok("username", "alice", "password", "alice-secret")},
		{"user_create_bob", "POST", "/nacos/v1/auth/users", tok("username", "bob", "password", "bob-secret")},
		{"user_create_duplicate", "POST", "/nacos/v1/auth/users", tok("username", "alice", "password", "x")},
		{"user_create_no_password", "POST", "/nacos/v1/auth/users", tok("username", "carol")},
		{"users", "GET", "/nacos/v1/auth/users", tok("pageNo", "1", "pageSize", "10")},
		{"users_page2", "GET", "/nacos/v1/auth/users", tok("pageNo", "2", "pageSize", "2")},
		{"users_past_end", "GET", "/nacos/v1/auth/users", tok("pageNo", "5", "pageSize", "2")},
		{"users_blur", "GET", "/nacos/v1/auth/users", tok("pageNo", "1", "pageSize", "10", "search", "blur", "username", "li")},
		{"users_accurate", "GET", "/nacos/v1/auth/users", tok("pageNo", "1", "pageSize", "10", "search", "accurate", "username", "li")},
		{"users_search", "GET", "/nacos/v1/auth/users/search", tok("username", "b")},
		{"role_add", "POST", "/nacos/v1/auth/roles", tok("role", "dev-readers", "username", "alice")},
		{"role_add_bob", "POST", "/nacos/v1/auth/roles", tok("role", "dev-readers", "username", "bob")},
		{"role_add_unknown_user", "POST", "/nacos/v1/auth/roles", tok("role", "dev-readers", "username", "nobody")},
		{"roles", "GET", "/nacos/v1/auth/roles", tok("pageNo", "1", "pageSize", "10")},
		{"roles_of_user", "GET", "/nacos/v1/auth/roles", tok("pageNo", "1", "pageSize", "10", "username", "alice")},
		{"roles_search", "GET", "/nacos/v1/auth/roles/search", tok("role", "dev")},
		{"permission_add", "POST", "/nacos/v1/auth/permissions", tok("role", "dev-readers", "resource", "dev:*:*", "action", "r")},
		{"permission_add_public_group", "POST", "/nacos/v1/auth/permissions", tok("role", "dev-readers", "resource", ":pay:*", "action", "rw")},
		{"permission_add_all", "POST", "/nacos/v1/auth/permissions", tok("role", "ops", "resource", "*:*:*", "action", "rw")},
		{"permission_add_bad_action", "POST", "/nacos/v1/auth/permissions", tok("role", "dev-readers", "resource", "dev:*:*", "action", "x")},
		{"permission_add_single_resource", "POST", "/nacos/v1/auth/permissions", tok("role", "dev-readers", "resource", "dev:*:config/x", "action", "r")},
		{"permissions", "GET", "/nacos/v1/auth/permissions", tok("pageNo", "1", "pageSize", "10")},
		{"permissions_of_role", "GET", "/nacos/v1/auth/permissions", tok("pageNo", "1", "pageSize", "10", "role", "ops")},
		{"permission_delete", "DELETE", "/nacos/v1/auth/permissions", tok("role", "ops", "resource", "*:*:*", "action", "rw")},
		{"role_delete_user", "DELETE", "/nacos/v1/auth/roles", tok("role", "dev-readers", "username", "bob")},
		{"user_password", "PUT", "/nacos/v1/auth/users", tok("username", "bob", "newPassword", "bob-new-secret")},
		{"user_delete", "DELETE", "/nacos/v1/auth/users", tok("username", "bob")},
		{"user_delete_admin", "DELETE", "/nacos/v1/auth/users", tok("username", "admin")},
		{"users_anonymous", "GET", "/nacos/v1/auth/users", vals("pageNo", "1", "pageSize", "10")},
	}
	for _, c := range calls {
		goldenConsole(t, "auth_"+c.name, s.do(c.method, c.path, c.params))
	}
	// A user may change their own password, not another's, and cannot see the pages.
	alice := s.login("alice", "alice-secret")
	goldenConsole(t, "auth_user_own_password", s.do("PUT", "/nacos/v1/auth/users", withToken(vals("username", "alice", "newPassword", "alice-2"), alice)))
	goldenConsole(t, "auth_user_other_password", s.do("PUT", "/nacos/v1/auth/users", withToken(vals("username", "admin", "newPassword", "x"), alice)))
	goldenConsole(t, "auth_users_not_admin", s.do("GET", "/nacos/v1/auth/users", withToken(vals("pageNo", "1", "pageSize", "10"), alice)))
	// The permission granted through the page works: alice reads dev, not staging.
	s.must("POST", "/nacos/v1/ns/instance", tok("namespaceId", "dev", "serviceName", "s", "ip", "10.0.0.1", "port", "1"))
	s.must("POST", "/nacos/v1/ns/instance", tok("namespaceId", "staging", "serviceName", "s", "ip", "10.0.0.1", "port", "1"))
	alice = s.login("alice", "alice-2")
	goldenConsole(t, "auth_namespaces_as_reader", s.do("GET", "/nacos/v1/console/namespaces", withToken(nil, alice)))
	goldenConsole(t, "auth_namespace_show_denied", s.do("GET", "/nacos/v1/console/namespaces", withToken(vals("show", "all", "namespaceId", "staging"), alice)))
	goldenConsole(t, "auth_catalog_dev_as_reader", s.do("GET", "/nacos/v1/ns/catalog/services", withToken(vals("namespaceId", "dev", "pageNo", "1", "pageSize", "10"), alice)))
	goldenConsole(t, "auth_namespace_create_as_reader", s.do("POST", "/nacos/v1/console/namespaces", withToken(vals("customNamespaceId", "x", "namespaceName", "x"), alice)))
	goldenConsole(t, "auth_server_leave_as_reader", s.json("POST", "/nacos/v1/core/cluster/server/leave?accessToken="+alice, `["127.0.0.1:8848"]`))
}
