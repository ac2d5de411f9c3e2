package api

import (
	"net/http"
	"testing"
)

// consoleStub stands in for the console package's files: it answers with the path it
// was asked for, so a test sees which requests got through to it.
var consoleStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "console "+r.URL.Path)
})

// TestWebConsoleRoutes: / leads to the console; with auth on, the sign-in shell is public,
// the console proper needs a token (the cookie the sign-in script sets will do), and
// that cookie is no credential anywhere else.
func TestWebConsoleRoutes(t *testing.T) {
	s := newStack(t, stackOptions{auth: true, console: true})
	token := s.bootstrapACL()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/console"} {
		resp, err := noRedirect.Get(s.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s = %d to %q, want 302 to /console/", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, path := range []string{"/console/", "/console/signin.js", "/console/style.css"} {
		if a := s.raw(http.MethodGet, path); a.status != 200 || a.body != "console "+path {
			t.Errorf("anonymous GET %s = %d %q, want the public file", path, a.status, a.body)
		}
	}
	get := func(path string, cookie *http.Cookie, header string) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if header != "" {
			req.Header.Set("accessToken", header)
		}
		return s.send(req)
	}
	app := "/console/app/app.js"
	if a := get(app, nil, ""); a.status != http.StatusForbidden || a.body != "user not found!" {
		t.Errorf("anonymous GET %s = %d %q, want 403 user not found!", app, a.status, a.body)
	}
	if a := get(app, &http.Cookie{Name: consoleTokenCookie, Value: "not-a-token"}, ""); a.status != http.StatusForbidden {
		t.Errorf("GET %s with a bad cookie = %d %q, want 403", app, a.status, a.body)
	}
	cookie := &http.Cookie{Name: consoleTokenCookie, Value: token}
	if a := get(app, cookie, ""); a.status != 200 || a.body != "console "+app {
		t.Errorf("GET %s with the token cookie = %d %q", app, a.status, a.body)
	}
	if a := get(app, nil, token); a.status != 200 {
		t.Errorf("GET %s with the accessToken header = %d %q", app, a.status, a.body)
	}
	// The cookie is a credential for the console's files only.
	for _, path := range []string{"/roster/v1/acl/whoami", "/nacos/v1/ns/instance/list?serviceName=s", "/roster/v1/acl/users"} {
		if a := get(path, cookie, ""); a.status != http.StatusForbidden {
			t.Errorf("GET %s with only the console cookie = %d %q, want 403", path, a.status, a.body)
		}
	}
}

// TestWhoAmIListsOwnGrants: whoami tells a user the grants it holds through its roles,
// and no one else's.
func TestWhoAmIListsOwnGrants(t *testing.T) {
	s := newStack(t, stackOptions{auth: true})
	admin := s.bootstrapACL()
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/roster/v1/acl/users?username=reader&password=reader-password-1"},
		{http.MethodPost, "/roster/v1/acl/users?username=other&password=other-password-1"},
		{http.MethodPost, "/roster/v1/acl/roles?role=readers&username=reader"},
		{http.MethodPost, "/roster/v1/acl/roles?role=others&username=other"},
		{http.MethodPost, "/roster/v1/acl/grants?role=readers&resource=shop&action=r"},
		{http.MethodPost, "/roster/v1/acl/grants?role=others&resource=billing&action=rw"},
	} {
		if a := s.do(c.method, c.path+"&accessToken="+admin, nil); a.status != 200 {
			t.Fatalf("%s %s = %d %q", c.method, c.path, a.status, a.body)
		}
	}
	token := s.login("reader", "reader-password-1")
	a := s.do(http.MethodGet, "/roster/v1/acl/whoami?accessToken="+token, nil)
	want := `{"authEnabled":true,"globalAdmin":false,"grants":[{"role":"readers","resource":"shop","action":"r"}],"username":"reader"}`
	if a.status != 200 || a.body != want {
		t.Fatalf("whoami = %d %s, want %s", a.status, a.body, want)
	}
}

// TestNoWebConsole: without a console, / and /console/ are not routes, and the
// server state says so.
func TestNoWebConsole(t *testing.T) {
	s := newStack(t, stackOptions{})
	for _, path := range []string{"/", "/console/", "/console/app/app.js"} {
		if a := s.raw(http.MethodGet, path); a.status != http.StatusNotFound {
			t.Errorf("GET %s without a console = %d %q, want 404", path, a.status, a.body)
		}
	}
}
