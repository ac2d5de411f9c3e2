package healthcheck

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeOnce runs one probe of tg as a prober with cfg would.
func probeOnce(t *testing.T, cfg Config, tg Target) error {
	t.Helper()
	s := &store{}
	p := newProber(t, cfg, s, alone(), s)
	addr, err := probeAddr(tg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	return p.probers.probe(ctx, tg, addr)
}

func TestHTTPProbe(t *testing.T) {
	var redirectTargetHits atomic.Int64
	redirectTarget := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirectTargetHits.Add(1)
	}))
	t.Cleanup(redirectTarget.Close)

	var lastHeaders atomic.Pointer[http.Request]
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		lastHeaders.Store(r)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirectTarget.URL+"/ok", http.StatusFound)
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// Far more than the probe reads; the probe must neither hang nor fail on it.
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	cfg := testConfig(newFakeClock())
	cfg.Timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		checker Checker
		healthy bool
	}{
		{"200", Checker{Type: TypeHTTP, Path: "/ok"}, true},
		{"path without slash", Checker{Type: TypeHTTP, Path: "ok"}, true},
		{"500", Checker{Type: TypeHTTP, Path: "/fail"}, false},
		{"past the timeout", Checker{Type: TypeHTTP, Path: "/slow"}, false},
		{"302 not followed", Checker{Type: TypeHTTP, Path: "/redirect"}, false},
		{"302 expected", Checker{Type: TypeHTTP, Path: "/redirect", ExpectedCodes: []int{302}}, true},
		{"204 expected, 204", Checker{Type: TypeHTTP, Path: "/nocontent", ExpectedCodes: []int{204}}, true},
		{"204 expected, 200", Checker{Type: TypeHTTP, Path: "/ok", ExpectedCodes: []int{204}}, false},
		{"404", Checker{Type: TypeHTTP, Path: "/missing"}, false},
		{"big body", Checker{Type: TypeHTTP, Path: "/big"}, true},
		{"path naming another host", Checker{Type: TypeHTTP, Path: "@" + redirectTarget.Listener.Addr().String() + "/ok"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := probeOnce(t, cfg, target(addr, tc.checker))
			if (err == nil) != tc.healthy {
				t.Fatalf("probe = %v, want healthy=%v", err, tc.healthy)
			}
		})
	}
	if got := redirectTargetHits.Load(); got != 0 {
		t.Fatalf("the redirect's target got %d requests, want 0", got)
	}

	t.Run("headers", func(t *testing.T) {
		c := Checker{Type: TypeHTTP, Path: "/ok?probe=1", Headers: "X-Check: yes|Host:orders.example|broken|X-Two:a:b"}
		if err := probeOnce(t, cfg, target(addr, c)); err != nil {
			t.Fatal(err)
		}
		r := lastHeaders.Load()
		if r.Header.Get("X-Check") != "yes" || r.Host != "orders.example" || r.URL.RawQuery != "probe=1" {
			t.Fatalf("request had headers %v, host %q, query %q", r.Header, r.Host, r.URL.RawQuery)
		}
		if _, ok := r.Header["X-Two"]; ok {
			t.Fatalf("an item with two colons was sent; Nacos skips it")
		}
		if !r.Close {
			t.Errorf("the probe asked to keep its connection; want Connection: close")
		}
	})
}

func TestParseHeaders(t *testing.T) {
	h := ParseHeaders(" a : 1 |b:2||novalue|c:d:e|:x")
	if len(h) != 2 || h.Get("a") != "1" || h.Get("b") != "2" {
		t.Fatalf("ParseHeaders = %v, want a=1, b=2", h)
	}
	if len(ParseHeaders("")) != 0 || len(ParseHeaders("  ")) != 0 {
		t.Fatal("blank headers should parse to none")
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("billing", healthpb.HealthCheckResponse_NOT_SERVING)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	addr := ln.Addr().String()

	closed := listen(t, "127.0.0.1:0")
	closed.close()
	before := runtime.NumGoroutine()

	cfg := testConfig(newFakeClock())
	for _, tc := range []struct {
		name    string
		addr    string
		service string
		healthy bool
	}{
		{"serving", addr, "orders", true},
		{"not serving", addr, "billing", false},
		{"unknown service", addr, "nobody", false},
		{"whole server", addr, "", true},
		{"nothing listening", closed.addr, "orders", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := probeOnce(t, cfg, target(tc.addr, Checker{Type: TypeGRPC, GRPCService: tc.service}))
			if (err == nil) != tc.healthy {
				t.Fatalf("probe = %v, want healthy=%v", err, tc.healthy)
			}
		})
	}

	// Each probe's connection, and the goroutines gRPC runs for it, end with the probe.
	eventually(t, "goroutines back to the count before the probes", func() bool {
		return runtime.NumGoroutine() <= before
	})

	t.Run("flips", func(t *testing.T) {
		tg := target(addr, Checker{Type: TypeGRPC, GRPCService: "orders"})
		s := &store{}
		s.add(tg)
		clock := newFakeClock()
		r := startRounds(t, newProber(t, testConfig(clock), s, alone(), s), clock)
		r.run(3)
		wantFlips(t, s, tg.Key())
		hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
		r.run(3)
		wantFlips(t, s, tg.Key(), false)
		hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
		r.run(3)
		wantFlips(t, s, tg.Key(), false, true)
	})
}

// Proxy variables cannot be tested with real sockets here: net/http and gRPC never
// proxy loopback addresses anyway. So the test reads the client's configuration.
func TestHTTPClientSettings(t *testing.T) {
	d := newProbers(newDialer(guard{}))
	tr, ok := d.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T", d.http.Transport)
	}
	if tr.Proxy != nil {
		t.Error("the HTTP probe transport takes a proxy: probes must go to the instance only")
	}
	if !tr.DisableKeepAlives {
		t.Error("the HTTP probe transport keeps connections alive: its pool would grow with the instances")
	}
	if tr.MaxResponseHeaderBytes != httpHeaderLimit || tr.TLSClientConfig != nil {
		t.Errorf("header limit %d, TLS config %v", tr.MaxResponseHeaderBytes, tr.TLSClientConfig)
	}
	if d.http.CheckRedirect == nil || d.http.CheckRedirect(nil, nil) != http.ErrUseLastResponse {
		t.Error("the HTTP probe client would follow redirects")
	}
}
