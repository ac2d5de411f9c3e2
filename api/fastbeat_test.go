package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// A beat served ahead of the router answers exactly what the routed chain answers (the
// consistency header sends a beat down the routed chain), for good and bad beats alike,
// and both are counted under the one route label set in the metrics.
func TestFastBeatAnswersAsRouted(t *testing.T) {
	s := newStack(t, stackOptions{})
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080"))
	beats := []url.Values{
		vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080"),
		vals("serviceName", "DEFAULT_GROUP@@orders", "ip", "10.0.0.5", "port", "8080"),
		vals("serviceName", "orders", "ip", "10.9.9.9", "port", "1"),
		vals("serviceName", "orders", "beat", `{"ip":"10.0.0.7","port":81,"cluster":"DEFAULT"}`),
		vals("serviceName", "orders", "beat", `{"ip":"10.0.0.7","port":"x"}`),
		vals("serviceName", "orders", "beat", `{not json`),
		vals("serviceName", "orders", "ip", "10.0.0.5", "port", "99999"),
		vals("ip", "10.0.0.5", "port", "8080"),
		vals("serviceName", "orders", "ip", "10.0.0.5", "port", "8080", "pad", strings.Repeat("x", 2<<20)),
	}
	send := func(form url.Values, routed bool) answer {
		req, err := http.NewRequest(http.MethodPut, s.srv.URL+beatPath, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if routed {
			req.Header.Set("X-Roster-Consistency", "consistent")
		}
		return s.send(req)
	}
	ok := 0
	for i, form := range beats {
		fast, routed := send(form, false), send(form, true)
		if fast != routed {
			t.Errorf("beat %d: fast path answered %d %q, the router %d %q", i, fast.status, fast.body, routed.status, routed.body)
		}
		if fast.status == http.StatusOK {
			ok += 2
		}
	}
	metrics := s.do("GET", "/metrics", nil).body
	want := `roster_http_requests_total{code="200",method="PUT",route="` + beatPath + `"} `
	if !strings.Contains(metrics, want+strconv.Itoa(ok)+"\n") {
		t.Errorf("/metrics lacks %s%d", want, ok)
	}
}
