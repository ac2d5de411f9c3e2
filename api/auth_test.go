package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
)

// login logs in through the API and returns the token.
func (s *stack) login(user, password string) string {
	s.t.Helper()
	a := s.do(http.MethodPost, "/nacos/v1/auth/login", vals("username", user, "password", password))
	if a.status != 200 {
		s.t.Fatalf("login %s = %d %q", user, a.status, a.body)
	}
	var out struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal([]byte(a.body), &out); err != nil {
		s.t.Fatal(err)
	}
	return out.AccessToken
}

// bootstrapACL creates the admin and returns its token.
func (s *stack) bootstrapACL() string {
	s.t.Helper()
	a := s.do(http.MethodPost, "/roster/v1/acl/bootstrap", nil)
	if a.status != 200 {
		s.t.Fatalf("bootstrap = %d %q", a.status, a.body)
	}
	var cred credentialAnswer
	if err := json.Unmarshal([]byte(a.body), &cred); err != nil {
		s.t.Fatal(err)
	}
	if cred.Username != "admin" || len(cred.Password) < 16 {
		s.t.Fatalf("bootstrap answered %+v", cred)
	}
	return s.login(cred.Username, cred.Password)
}

func withToken(v url.Values, token string) url.Values {
	if v == nil {
		v = url.Values{}
	}
	v.Set("accessToken", token)
	return v
}

// pathParams are a route pattern's {name} parameters.
var pathParams = regexp.MustCompile(`\{[^}]*\}`)

// TestEveryRouteDeclaresAccess walks every route the router has and checks that each
// declares its access and, with auth on, refuses a request without credentials unless
// it is public or node-to-node.
func TestEveryRouteDeclaresAccess(t *testing.T) {
	s := newStack(t, stackOptions{auth: true, console: true})
	s.bootstrapACL()
	mux := s.srv.Config.Handler.(*chi.Mux)
	n := 0
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		need := accessOf(method, route)
		if need == accessUndeclared {
			t.Errorf("%s %s declares no access", method, route)
			return nil
		}
		if need == accessPublic || need == accessNode {
			return nil
		}
		path := pathParams.ReplaceAllString(strings.ReplaceAll(route, "/*", "/x"), "x")
		req, err := http.NewRequest(method, s.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := "user not found!"
		if strings.HasPrefix(route, v2Prefix) {
			// The v2 API refuses in its envelope, as Nacos' v2 handler answers an
			// AccessException.
			want = `{"code":10001,"message":"access denied","data":"user not found!"}`
		}
		if method == http.MethodHead {
			want = ""
		}
		if a := s.send(req); a.status != http.StatusForbidden || a.body != want {
			t.Errorf("%s %s (%s) without credentials = %d %q, want 403 %s", method, route, need, a.status, a.body, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("walked only %d routes", n)
	}
	for key := range routeAccess {
		method, pattern, _ := strings.Cut(key, " ")
		if method == anyMethod {
			method = http.MethodGet
		}
		if mux.Find(chi.NewRouteContext(), method, pattern) != pattern {
			t.Errorf("routeAccess declares %q, which the router does not have", key)
		}
	}
}

func TestUndeclaredRouteIsRefused(t *testing.T) {
	if got := accessOf(http.MethodPost, "/nacos/v1/ns/brand-new"); got != accessUndeclared {
		t.Fatalf("accessOf(new route) = %s", got)
	}
	if got := accessOf(http.MethodGet, "/nacos/v2/ns/brand-new"); got != accessUndeclared {
		t.Fatalf("accessOf(new v2 route) = %s", got)
	}
	if got := accessOf(http.MethodPost, "/roster/v1/cluster/apply"); got != accessNode {
		t.Fatalf("accessOf(cluster apply) = %s", got)
	}
}

func TestNamespaceGrantsOverHTTP(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	admin := s.bootstrapACL()
	mustOK := func(method, path string, v url.Values) string {
		t.Helper()
		a := s.do(method, path, v)
		if a.status != 200 {
			t.Fatalf("%s %s = %d %q", method, path, a.status, a.body)
		}
		return a.body
	}
	created := mustOK(http.MethodPost, "/roster/v1/acl/users", withToken(vals("username", "alice"), admin))
	var alice credentialAnswer
	if err := json.Unmarshal([]byte(created), &alice); err != nil {
		t.Fatal(err)
	}
	mustOK(http.MethodPost, "/roster/v1/acl/roles", withToken(vals("role", "team-a", "username", "alice"), admin))
	mustOK(http.MethodPost, "/roster/v1/acl/grants", withToken(vals("role", "team-a", "resource", "A", "action", "rw"), admin))
	// Admin writes an instance into B for the read checks.
	mustOK(http.MethodPost, "/nacos/v1/ns/instance", withToken(vals("namespaceId", "B", "serviceName", "svc", "ip", "10.0.0.2", "port", "80", "ephemeral", "false"), admin))

	tok := s.login("alice", alice.Password)
	inA := vals("namespaceId", "A", "serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")
	mustOK(http.MethodPost, "/nacos/v1/ns/instance", withToken(inA, tok))
	mustOK(http.MethodGet, "/nacos/v1/ns/instance/list", withToken(vals("namespaceId", "A", "serviceName", "svc"), tok))

	inB := vals("namespaceId", "B", "serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false")
	for _, c := range []struct {
		method, path string
		v            url.Values
	}{
		{http.MethodPost, "/nacos/v1/ns/instance", inB},
		{http.MethodDelete, "/nacos/v1/ns/instance", vals("namespaceId", "B", "serviceName", "svc", "ip", "10.0.0.2", "port", "80", "ephemeral", "false")},
		{http.MethodGet, "/nacos/v1/ns/instance/list", vals("namespaceId", "B", "serviceName", "svc")},
		{http.MethodGet, "/nacos/v1/ns/service/list", vals("namespaceId", "B")},
		{http.MethodGet, "/roster/v1/acl/users", nil},
		{http.MethodPost, "/roster/v1/acl/rotate-key", nil},
	} {
		if a := s.do(c.method, c.path, withToken(c.v, tok)); a.status != 403 || a.body != "authorization failed!" {
			t.Errorf("alice %s %s in B = %d %q, want 403 authorization failed!", c.method, c.path, a.status, a.body)
		}
	}
	// The v2 API applies the same grants, refusing in its envelope.
	mustV2 := func(method, path string, v url.Values) {
		t.Helper()
		if a := s.do(method, path, withToken(v, tok)); a.status != 200 || !strings.HasPrefix(a.body, `{"code":0,"message":"success"`) {
			t.Fatalf("alice %s %s = %d %q", method, path, a.status, a.body)
		}
	}
	mustV2(http.MethodPost, "/nacos/v2/ns/instance", vals("namespaceId", "A", "serviceName", "svc2", "ip", "10.0.0.1", "port", "80"))
	mustV2(http.MethodGet, "/nacos/v2/ns/instance/list", vals("namespaceId", "A", "serviceName", "svc2"))
	mustV2(http.MethodGet, "/nacos/v2/console/namespace", vals("namespaceId", "A"))
	for _, c := range []struct {
		method, path string
		v            url.Values
	}{
		{http.MethodPost, "/nacos/v2/ns/instance", vals("namespaceId", "B", "serviceName", "svc2", "ip", "10.0.0.1", "port", "80")},
		{http.MethodGet, "/nacos/v2/ns/instance/list", vals("namespaceId", "B", "serviceName", "svc")},
		{http.MethodGet, "/nacos/v2/ns/catalog/instances", vals("namespaceId", "B", "serviceName", "svc", "pageNo", "1", "pageSize", "1")},
		{http.MethodGet, "/nacos/v2/console/namespace", vals("namespaceId", "B")},
		{http.MethodGet, "/nacos/v2/ns/client/list", nil},
		{http.MethodPost, "/nacos/v2/console/namespace", vals("namespaceId", "A", "namespaceName", "A")},
	} {
		want := `{"code":10001,"message":"access denied","data":"authorization failed!"}`
		if a := s.do(c.method, c.path, withToken(c.v, tok)); a.status != 403 || a.body != want {
			t.Errorf("alice v2 %s %s = %d %q, want 403 %s", c.method, c.path, a.status, a.body, want)
		}
	}
	// The namespace list shows alice public and A, not B.
	list := s.do(http.MethodGet, "/nacos/v2/console/namespace/list", withToken(nil, tok))
	if !strings.Contains(list.body, `"namespace":"A"`) || strings.Contains(list.body, `"namespace":"B"`) || !strings.Contains(list.body, `"namespace":"public"`) {
		t.Errorf("namespace list for alice = %s", list.body)
	}
	// The catalog shows alice only what she may read.
	names := mustOK(http.MethodGet, "/nacos/v1/ns/service/names", withToken(nil, tok))
	if !strings.Contains(names, `"A"`) || strings.Contains(names, `"B"`) {
		t.Errorf("service/names for alice = %s", names)
	}
	// Identity from the Authorization header and from username+password works too.
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/nacos/v1/ns/instance/list?namespaceId=A&serviceName=svc", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if a := s.send(req); a.status != 200 {
		t.Errorf("Bearer header: %d %q", a.status, a.body)
	}
	if a := s.do(http.MethodGet, "/nacos/v1/ns/instance/list", vals("namespaceId", "A", "serviceName", "svc", "username", "alice", "password", alice.Password)); a.status != 200 {
		t.Errorf("username+password: %d %q", a.status, a.body)
	}
	// A header that looks like a node's or a forwarded request grants nothing.
	req, _ = http.NewRequest(http.MethodGet, s.srv.URL+"/nacos/v1/ns/instance/list?namespaceId=A&serviceName=svc", nil)
	req.Header.Set("X-Roster-Forwarded", "1")
	req.Header.Set("User-Agent", "Nacos-Server")
	if a := s.send(req); a.status != 403 {
		t.Errorf("forwarded header without credentials: %d %q", a.status, a.body)
	}
	// Bad tokens answer Nacos' texts.
	for tok, want := range map[string]string{"garbage": "token invalid!", tok + "x": "token invalid!"} {
		if a := s.do(http.MethodGet, "/nacos/v1/ns/instance/list", withToken(vals("namespaceId", "A", "serviceName", "svc"), tok)); a.status != 403 || a.body != want {
			t.Errorf("token %q… = %d %q, want 403 %q", tok[:4], a.status, a.body, want)
		}
	}
	if a := s.do(http.MethodPost, "/roster/v1/acl/bootstrap", nil); a.status != 409 {
		t.Errorf("second bootstrap = %d %q, want 409", a.status, a.body)
	}
	// Rotating the key keeps alice's token valid.
	mustOK(http.MethodPost, "/roster/v1/acl/rotate-key", withToken(nil, admin))
	mustOK(http.MethodGet, "/nacos/v1/ns/instance/list", withToken(vals("namespaceId", "A", "serviceName", "svc"), tok))
}

func TestLoginAnswer(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	a := s.do(http.MethodPost, "/roster/v1/acl/bootstrap", vals("username", "nacos", "password", "s3cret-pass"))
	if a.status != 200 {
		t.Fatalf("bootstrap = %d %q", a.status, a.body)
	}
	for _, path := range []string{"/nacos/v1/auth/login", "/nacos/v1/auth/users/login"} {
		// Java sends the username in the query and the password in the body.
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path+"?username=nacos", strings.NewReader("password=s3cret-pass"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		if _, isNumber := out["tokenTtl"].(float64); !isNumber || out["globalAdmin"] != true || out["username"] != "nacos" || out["accessToken"] == "" {
			t.Errorf("%s answered %v", path, out)
		}
		if !strings.HasPrefix(resp.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("%s: no Authorization header", path)
		}
	}
	if a := s.do(http.MethodPost, "/nacos/v1/auth/login", vals("username", "nacos", "password", "wrong")); a.status != 403 || a.body != "user not found!" {
		t.Errorf("wrong password = %d %q", a.status, a.body)
	}
}

func TestAuthOffLetsEveryoneIn(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must(http.MethodPost, "/nacos/v1/ns/instance", vals("serviceName", "svc", "ip", "10.0.0.1", "port", "80", "ephemeral", "false"))
	if a := s.do(http.MethodGet, "/metrics", nil); !strings.Contains(a.body, "roster_auth_enabled 0") {
		t.Error("/metrics does not show roster_auth_enabled 0")
	}
}

// lockedBuffer is a log sink safe for the node's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCredentialsNeverLogged drives logins, token and password requests (good and bad)
// with debug logging on and checks that no token or password reaches the log.
func TestCredentialsNeverLogged(t *testing.T) {
	logs := &lockedBuffer{}
	s := newStack(t, stackOptions{auth: true, logTo: logs})
	s.do(http.MethodPost, "/roster/v1/acl/bootstrap", vals("username", "root", "password", "Pw-root-secret"))
	tok := s.login("root", "Pw-root-secret")
	s.do(http.MethodPost, "/nacos/v1/auth/login", vals("username", "root", "password", "Pw-wrong-secret"))
	s.do(http.MethodPost, "/nacos/v1/ns/instance", withToken(vals("serviceName", "svc", "ip", "10.0.0.1", "port", "80"), tok))
	s.do(http.MethodPost, "/nacos/v1/ns/instance", withToken(vals("serviceName", "svc", "ip", "bad ip", "port", "80"), tok))
	s.do(http.MethodGet, "/nacos/v1/ns/instance/list", vals("serviceName", "svc", "username", "root", "password", "Pw-root-secret"))
	s.do(http.MethodGet, "/nacos/v1/ns/instance/list", withToken(vals("serviceName", "svc"), tok+"tampered"))
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/nacos/v1/ns/instance/list?serviceName=svc", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	s.send(req)
	out := logs.String()
	if !strings.Contains(out, "msg=audit") {
		t.Fatal("no audit lines logged; the test would prove nothing")
	}
	for _, secret := range []string{tok, tok[len(tok)-20:], "Pw-root-secret", "Pw-wrong-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a credential (%q…)", secret[:6])
		}
	}
}
