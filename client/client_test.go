package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is what the test server received.
type seen struct {
	Method      string
	Path        string
	Query       url.Values
	Form        url.Values // the body, parsed by hand: net/http skips DELETE bodies
	ContentType string
	UserAgent   string
}

// nacosServer is a real HTTP server standing in for Nacos at the edge: it records the
// one request it expects and answers a canned status and body.
type nacosServer struct {
	*httptest.Server
	mu     sync.Mutex
	got    []seen
	status int
	body   string
}

func newNacosServer(t *testing.T, status int, body string) *nacosServer {
	t.Helper()
	ns := &nacosServer{status: status, body: body}
	ns.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			t.Errorf("body %q is not form-encoded: %v", raw, err)
		}
		ns.mu.Lock()
		ns.got = append(ns.got, seen{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Form: form,
			ContentType: r.Header.Get("Content-Type"), UserAgent: r.UserAgent(),
		})
		ns.mu.Unlock()
		w.WriteHeader(ns.status)
		io.WriteString(w, ns.body)
	}))
	t.Cleanup(ns.Close)
	return ns
}

// only returns the single request the server saw.
func (ns *nacosServer) only(t *testing.T) seen {
	t.Helper()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if len(ns.got) != 1 {
		t.Fatalf("server saw %d requests, want 1: %+v", len(ns.got), ns.got)
	}
	return ns.got[0]
}

func newClient(t *testing.T, addr string, opts ...Option) *Client {
	t.Helper()
	c, err := New(addr, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", addr, err)
	}
	return c
}

// params flattens url.Values for comparison.
func params(v url.Values) map[string]string {
	m := make(map[string]string, len(v))
	for k, vs := range v {
		m[k] = strings.Join(vs, "|")
	}
	return m
}

// checkRequest asserts method, path and parameters: GET parameters in the query with an
// empty body, the others in a form body with an empty query.
func checkRequest(t *testing.T, got seen, method, path string, want map[string]string) {
	t.Helper()
	if got.Method != method || got.Path != path {
		t.Errorf("request = %s %s, want %s %s", got.Method, got.Path, method, path)
	}
	carrier, other := got.Form, got.Query
	if method == http.MethodGet {
		carrier, other = got.Query, got.Form
	} else if !strings.HasPrefix(got.ContentType, "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", got.ContentType)
	}
	if len(other) != 0 {
		t.Errorf("%s carried parameters in the wrong place: %v", method, other)
	}
	if p := params(carrier); !reflect.DeepEqual(p, want) {
		t.Errorf("params =\n  %v\nwant\n  %v", p, want)
	}
	if strings.HasPrefix(got.UserAgent, "Nacos-") {
		t.Errorf("User-Agent %q would subscribe to UDP pushes", got.UserAgent)
	}
}

func TestRequests(t *testing.T) {
	svc := ServiceRef{Namespace: "dev", Group: "PAY", Name: "orders"}
	inst := Instance{
		IP: "10.0.0.5", Port: 8080, ClusterName: "c1", Weight: 1.5,
		Healthy: true, Enabled: false, Ephemeral: false, Metadata: map[string]string{"zone": "a"},
	}
	svcParams := map[string]string{"namespaceId": "dev", "groupName": "PAY", "serviceName": "orders"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range svcParams {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	instParams := with(map[string]string{
		"ip": "10.0.0.5", "port": "8080", "clusterName": "c1", "weight": "1.5",
		"healthy": "true", "enabled": "false", "ephemeral": "false", "metadata": `{"zone":"a"}`,
	})

	tests := []struct {
		name   string
		answer string
		call   func(ctx context.Context, c *Client) error
		method string
		path   string
		want   map[string]string
	}{
		{
			name: "register", answer: "ok", method: "POST", path: "/nacos/v1/ns/instance", want: instParams,
			call: func(ctx context.Context, c *Client) error { return c.RegisterInstance(ctx, svc, inst) },
		},
		{
			name: "update", answer: "ok", method: "PUT", path: "/nacos/v1/ns/instance", want: instParams,
			call: func(ctx context.Context, c *Client) error { return c.UpdateInstance(ctx, svc, inst) },
		},
		{
			name: "deregister", answer: "ok", method: "DELETE", path: "/nacos/v1/ns/instance",
			want: with(map[string]string{"ip": "10.0.0.5", "port": "8080", "clusterName": "c1", "ephemeral": "false"}),
			call: func(ctx context.Context, c *Client) error { return c.DeregisterInstance(ctx, svc, inst) },
		},
		{
			name: "register defaults", answer: "ok", method: "POST", path: "/nacos/v1/ns/instance",
			want: map[string]string{
				"namespaceId": "public", "groupName": "DEFAULT_GROUP", "serviceName": "orders",
				"ip": "10.0.0.6", "port": "0", "clusterName": "DEFAULT", "weight": "1",
				"healthy": "true", "enabled": "true", "ephemeral": "true", "metadata": `{}`,
			},
			call: func(ctx context.Context, c *Client) error {
				return c.RegisterInstance(ctx, ServiceRef{Name: "orders"}, NewInstance("10.0.0.6", 0))
			},
		},
		{
			name: "get instance", answer: `{"ip":"10.0.0.5","port":8080}`, method: "GET", path: "/nacos/v1/ns/instance",
			want: with(map[string]string{"ip": "10.0.0.5", "port": "8080", "clusterName": "c1"}),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetInstance(ctx, svc, "10.0.0.5", 8080, "c1")
				return err
			},
		},
		{
			name: "list", answer: `{"hosts":[]}`, method: "GET", path: "/nacos/v1/ns/instance/list",
			want: with(map[string]string{"clusters": "c1,c2", "healthyOnly": "true"}),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListInstances(ctx, svc, ListOptions{Clusters: []string{"c1", "c2"}, HealthyOnly: true})
				return err
			},
		},
		{
			name: "list subscribing", answer: `{"hosts":[]}`, method: "GET", path: "/nacos/v1/ns/instance/list",
			want: with(map[string]string{"clusters": "", "healthyOnly": "false", "udpPort": "55000", "clientIP": "127.0.0.1"}),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListInstances(ctx, svc, ListOptions{UDPPort: 55000, ClientIP: "127.0.0.1"})
				return err
			},
		},
		{
			name: "light beat", answer: `{"clientBeatInterval":5000,"code":20404}`, method: "PUT", path: "/nacos/v1/ns/instance/beat",
			want: with(map[string]string{"ip": "10.0.0.5", "port": "8080", "clusterName": "c1"}),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.LightBeat(ctx, svc, "10.0.0.5", 8080, "c1")
				return err
			},
		},
		{
			name: "create service", answer: "ok", method: "POST", path: "/nacos/v1/ns/service",
			want: with(map[string]string{"protectThreshold": "0.5", "metadata": `{"k":"v"}`, "selector": `{"type":"label","expression":"x"}`}),
			call: func(ctx context.Context, c *Client) error {
				return c.CreateService(ctx, svc, ServiceOptions{
					ProtectThreshold: 0.5, Metadata: map[string]string{"k": "v"},
					Selector: &Selector{Type: "label", Expression: "x"},
				})
			},
		},
		{
			name: "get service", answer: `{"name":"orders"}`, method: "GET", path: "/nacos/v1/ns/service", want: svcParams,
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetService(ctx, svc)
				return err
			},
		},
		{
			name: "delete service", answer: "ok", method: "DELETE", path: "/nacos/v1/ns/service", want: svcParams,
			call: func(ctx context.Context, c *Client) error { return c.DeleteService(ctx, svc) },
		},
		{
			name: "list services", answer: `{"count":0,"doms":[]}`, method: "GET", path: "/nacos/v1/ns/service/list",
			want: map[string]string{"namespaceId": "dev", "groupName": "PAY", "pageNo": "3", "pageSize": "7"},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListServices(ctx, ServiceQuery{Namespace: "dev", Group: "PAY", PageNo: 3, PageSize: 7})
				return err
			},
		},
		{
			name: "list services defaults", answer: `{"count":0,"doms":[]}`, method: "GET", path: "/nacos/v1/ns/service/list",
			want: map[string]string{"namespaceId": "public", "groupName": "DEFAULT_GROUP", "pageNo": "1", "pageSize": "100"},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListServices(ctx, ServiceQuery{})
				return err
			},
		},
		{
			name: "metrics", answer: `{"status":"UP"}`, method: "GET", path: "/nacos/v1/ns/operator/metrics",
			want: map[string]string{"onlyStatus": "false"},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Metrics(ctx)
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNacosServer(t, http.StatusOK, tt.answer)
			if err := tt.call(context.Background(), newClient(t, ns.URL)); err != nil {
				t.Fatalf("call: %v", err)
			}
			checkRequest(t, ns.only(t), tt.method, tt.path, tt.want)
		})
	}
}

func TestGroupedNameKeepsItsGroup(t *testing.T) {
	ns := newNacosServer(t, http.StatusOK, `{"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}`)
	c := newClient(t, ns.URL)
	if _, err := c.Beat(context.Background(), ServiceRef{Group: "IGNORED", Name: "PAY@@orders"}, NewInstance("10.0.0.5", 8080)); err != nil {
		t.Fatal(err)
	}
	got := ns.only(t)
	var beat map[string]any
	if err := json.Unmarshal([]byte(got.Form.Get("beat")), &beat); err != nil {
		t.Fatalf("beat %q: %v", got.Form.Get("beat"), err)
	}
	if beat["serviceName"] != "PAY@@orders" {
		t.Errorf("beat serviceName = %v, want PAY@@orders", beat["serviceName"])
	}
	if got.Form.Get("serviceName") != "PAY@@orders" {
		t.Errorf("serviceName = %q, want PAY@@orders", got.Form.Get("serviceName"))
	}
}

func TestBeat(t *testing.T) {
	ns := newNacosServer(t, http.StatusOK, `{"clientBeatInterval":1000,"code":10200,"lightBeatEnabled":true}`)
	c := newClient(t, ns.URL)
	inst := Instance{IP: "10.0.0.5", Port: 8080, Weight: 2, Metadata: map[string]string{"preserved.heart.beat.interval": "1000"}}
	res, err := c.Beat(context.Background(), ServiceRef{Name: "orders"}, inst)
	if err != nil {
		t.Fatal(err)
	}
	if *res != (BeatResult{ClientBeatInterval: 1000, Code: BeatOK, LightBeatEnabled: true}) {
		t.Errorf("result = %+v", *res)
	}
	got := ns.only(t)
	if got.Method != http.MethodPut || got.Path != "/nacos/v1/ns/instance/beat" {
		t.Errorf("request = %s %s", got.Method, got.Path)
	}
	var beat map[string]any
	if err := json.Unmarshal([]byte(got.Form.Get("beat")), &beat); err != nil {
		t.Fatalf("beat %q: %v", got.Form.Get("beat"), err)
	}
	want := map[string]any{
		"ip": "10.0.0.5", "port": 8080.0, "weight": 2.0, "serviceName": "DEFAULT_GROUP@@orders",
		"cluster": "DEFAULT", "metadata": map[string]any{"preserved.heart.beat.interval": "1000"}, "ephemeral": true,
	}
	if !reflect.DeepEqual(beat, want) {
		t.Errorf("beat = %v\nwant %v", beat, want)
	}
}

func TestDecodesNacosAnswers(t *testing.T) {
	ctx := context.Background()
	svc := ServiceRef{Name: "orders"}
	t.Run("service info", func(t *testing.T) {
		// The example of PROTOCOL.md §3.2, with an unknown key a Nacos 1 server adds.
		ns := newNacosServer(t, http.StatusOK, `{"name":"DEFAULT_GROUP@@orders","groupName":"DEFAULT_GROUP","clusters":"","cacheMillis":10000,
 "hosts":[{"instanceId":"10.0.0.5#8080#DEFAULT#DEFAULT_GROUP@@orders","ip":"10.0.0.5","port":8080,
  "weight":1.0,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT",
  "serviceName":"DEFAULT_GROUP@@orders","metadata":{"zone":"a"},"instanceHeartBeatInterval":5000,
  "instanceHeartBeatTimeOut":15000,"ipDeleteTimeout":30000,"marked":false}],
 "lastRefTime":1717000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true,"dom":"x"}`)
		info, err := newClient(t, ns.URL).ListInstances(ctx, svc, ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := &ServiceInfo{
			Name: "DEFAULT_GROUP@@orders", GroupName: "DEFAULT_GROUP", CacheMillis: 10000,
			LastRefTime: 1717000000000, Valid: true,
			Hosts: []Instance{{
				InstanceID: "10.0.0.5#8080#DEFAULT#DEFAULT_GROUP@@orders", IP: "10.0.0.5", Port: 8080,
				Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, ClusterName: "DEFAULT",
				ServiceName: "DEFAULT_GROUP@@orders", Metadata: map[string]string{"zone": "a"},
				HeartBeatInterval: 5000, HeartBeatTimeout: 15000, IPDeleteTimeout: 30000,
			}},
		}
		if !reflect.DeepEqual(info, want) {
			t.Errorf("info =\n  %+v\nwant\n  %+v", info, want)
		}
	})
	t.Run("service detail", func(t *testing.T) {
		ns := newNacosServer(t, http.StatusOK, `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"orders","protectThreshold":0.5,"metadata":{"k":"v"},"selector":{"type":"none"},"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"metadata":{}}]}`)
		d, err := newClient(t, ns.URL).GetService(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		want := &ServiceDetail{
			NamespaceID: "public", GroupName: "DEFAULT_GROUP", Name: "orders", ProtectThreshold: 0.5,
			Metadata: map[string]string{"k": "v"}, Selector: Selector{Type: "none"},
			Clusters: []Cluster{{Name: "DEFAULT", HealthChecker: HealthChecker{Type: "TCP"}, Metadata: map[string]string{}}},
		}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("detail =\n  %+v\nwant\n  %+v", d, want)
		}
	})
	t.Run("instance", func(t *testing.T) {
		ns := newNacosServer(t, http.StatusOK, `{"service":"DEFAULT_GROUP@@orders","ip":"10.0.0.5","port":8080,"clusterName":"DEFAULT","weight":2.0,"healthy":false,"instanceId":"10.0.0.5#8080#DEFAULT#DEFAULT_GROUP@@orders","metadata":{}}`)
		inst, err := newClient(t, ns.URL).GetInstance(ctx, svc, "10.0.0.5", 8080, "")
		if err != nil {
			t.Fatal(err)
		}
		want := &Instance{
			Service: "DEFAULT_GROUP@@orders", IP: "10.0.0.5", Port: 8080, ClusterName: "DEFAULT", Weight: 2,
			InstanceID: "10.0.0.5#8080#DEFAULT#DEFAULT_GROUP@@orders", Metadata: map[string]string{},
		}
		if !reflect.DeepEqual(inst, want) {
			t.Errorf("instance =\n  %+v\nwant\n  %+v", inst, want)
		}
	})
	t.Run("service list", func(t *testing.T) {
		ns := newNacosServer(t, http.StatusOK, `{"count":7,"doms":["a","b"]}`)
		list, err := newClient(t, ns.URL).ListServices(ctx, ServiceQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if list.Count != 7 || !reflect.DeepEqual(list.Names, []string{"a", "b"}) {
			t.Errorf("list = %+v", list)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		ns := newNacosServer(t, http.StatusOK, `{"status":"UP","serviceCount":3,"instanceCount":5,"subscribeCount":1,"cpu":0.5,"load":0.1,"mem":0.2}`)
		m, err := newClient(t, ns.URL).Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := Metrics{Status: "UP", ServiceCount: 3, InstanceCount: 5, SubscribeCount: 1, CPU: 0.5, Load: 0.1, Mem: 0.2}
		if *m != want {
			t.Errorf("metrics = %+v, want %+v", *m, want)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		ns := newNacosServer(t, http.StatusOK, `ok`)
		_, err := newClient(t, ns.URL).Metrics(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), "client: decode answer") {
			t.Errorf("err = %v, want a decode error", err)
		}
	})
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{400, "Param 'ip' is required.", "roster: 400: Param 'ip' is required."},
		{400, "errCode: 400, errMsg: Current service DEFAULT_GROUP@@a is persistent service, can't register ephemeral instance. ",
			"roster: 400: errCode: 400, errMsg: Current service DEFAULT_GROUP@@a is persistent service, can't register ephemeral instance."},
		{500, "caused: boom;\ncaused: deeper;\n", "roster: 500: caused: boom; caused: deeper;"},
		{503, "server is STARTINGnow, please try again later!", "roster: 503: server is STARTINGnow, please try again later!"},
	}
	for _, tt := range tests {
		ns := newNacosServer(t, tt.status, tt.body)
		err := newClient(t, ns.URL).RegisterInstance(context.Background(), ServiceRef{Name: "a"}, NewInstance("10.0.0.5", 1))
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v (%T), want *Error", err, err)
		}
		if e.Status != tt.status || e.Body != tt.body {
			t.Errorf("Error = {%d %q}, want {%d %q}", e.Status, e.Body, tt.status, tt.body)
		}
		if e.Error() != tt.want {
			t.Errorf("Error() = %q, want %q", e.Error(), tt.want)
		}
		if !IsStatus(err, tt.status) || IsStatus(err, 200) {
			t.Errorf("IsStatus(err, %d) wrong", tt.status)
		}
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c := newClient(t, srv.URL, WithTimeout(100*time.Millisecond))
	start := time.Now()
	_, err := c.Metrics(context.Background())
	if err == nil || IsStatus(err, 0) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c = newClient(t, srv.URL)
	errc := make(chan error, 1)
	go func() { errc <- c.DeleteService(ctx, ServiceRef{Name: "a"}) }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request did not return within 10s")
	}
}

func TestNew(t *testing.T) {
	for addr, want := range map[string]string{
		"":                          "http://127.0.0.1:8848",
		"127.0.0.1:9000":            "http://127.0.0.1:9000",
		"http://h:1/":               "http://h:1",
		"https://h:1/prefix/?x=1#y": "https://h:1/prefix",
	} {
		c, err := New(addr)
		if err != nil {
			t.Errorf("New(%q): %v", addr, err)
			continue
		}
		if c.Addr() != want {
			t.Errorf("New(%q).Addr() = %q, want %q", addr, c.Addr(), want)
		}
	}
	for _, addr := range []string{"ftp://h:1", "http://", "http://[::1"} {
		if _, err := New(addr); err == nil || !strings.HasPrefix(err.Error(), "client: ") {
			t.Errorf("New(%q) err = %v, want a client: error", addr, err)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	ns := newNacosServer(t, http.StatusOK, `{"status":"UP"}`)
	if _, err := newClient(t, ns.URL+"/proxy").Metrics(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ns.only(t).Path; got != "/proxy/nacos/v1/ns/operator/metrics" {
		t.Errorf("path = %q", got)
	}
}

func TestHealthRequests(t *testing.T) {
	ctx := context.Background()
	svc := ServiceRef{Name: "orders"}
	ns := newNacosServer(t, http.StatusOK, "ok")
	c := newClient(t, ns.URL)
	err := c.UpdateCluster(ctx, svc, ClusterConfig{Name: "api", CheckPort: 8081, Metadata: map[string]string{"k": "v"},
		HealthChecker: HealthChecker{Type: "HTTP", Path: "/health", ExpectedResponseCode: 204}})
	if err != nil {
		t.Fatal(err)
	}
	checkRequest(t, ns.only(t), http.MethodPut, "/nacos/v1/ns/cluster", map[string]string{
		"namespaceId": "public", "groupName": "DEFAULT_GROUP", "serviceName": "orders", "clusterName": "api", "checkPort": "8081",
		"useInstancePort4Check": "false", "healthChecker": `{"type":"HTTP","path":"/health","expectedResponseCode":204}`, "metadata": `{"k":"v"}`,
	})

	ns = newNacosServer(t, http.StatusOK, "ok")
	c = newClient(t, ns.URL)
	if err := c.SetHealth(ctx, svc, "10.0.0.5", 8080, "api", false); err != nil {
		t.Fatal(err)
	}
	checkRequest(t, ns.only(t), http.MethodPut, "/nacos/v1/ns/health/instance", map[string]string{
		"namespaceId": "public", "groupName": "DEFAULT_GROUP", "serviceName": "orders", "ip": "10.0.0.5", "port": "8080", "clusterName": "api", "healthy": "false",
	})

	ns = newNacosServer(t, http.StatusOK, `{"TCP":{"type":"TCP"},"HTTP":{"type":"HTTP","path":"","headers":"","expectedResponseCode":200},"NONE":{"type":"NONE"},"GRPC":{"type":"GRPC","service":""}}`)
	c = newClient(t, ns.URL)
	got, err := c.HealthCheckers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]HealthChecker{"TCP": {Type: "TCP"}, "HTTP": {Type: "HTTP", ExpectedResponseCode: 200}, "NONE": {Type: "NONE"}, "GRPC": {Type: "GRPC"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HealthCheckers = %v", got)
	}
	checkRequest(t, ns.only(t), http.MethodGet, "/nacos/v1/ns/health/checkers", map[string]string{})
}
