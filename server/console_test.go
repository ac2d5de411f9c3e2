package server_test

import (
	"net/http"
	"testing"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestConsoleFlag: the web console is served by default, and --console=false leaves /
// and /console/ unrouted while the API goes on answering.
func TestConsoleFlag(t *testing.T) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status := func(t *testing.T, url string) int {
		t.Helper()
		resp, err := noRedirect.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	on := servertest.StartNode(t)
	base := "http://" + on.HTTPAddr()
	if got := status(t, base+"/"); got != http.StatusFound {
		t.Errorf("GET / = %d, want 302 to the console", got)
	}
	if got := status(t, base+"/console/"); got != http.StatusOK {
		t.Errorf("GET /console/ = %d, want 200", got)
	}
	off := servertest.StartNode(t, func(c *server.Config) { c.Console = false })
	base = "http://" + off.HTTPAddr()
	for _, path := range []string{"/", "/console/"} {
		if got := status(t, base+path); got != http.StatusNotFound {
			t.Errorf("--console=false: GET %s = %d, want 404", path, got)
		}
	}
	if got := status(t, base+"/healthz"); got != http.StatusOK {
		t.Errorf("--console=false: GET /healthz = %d", got)
	}
}
