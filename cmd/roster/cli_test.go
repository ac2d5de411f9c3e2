package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/roster-registry/roster/client"
)

// fakeNacos is a real HTTP server at the edge: it answers canned Nacos v1 texts per
// path and records what it was sent (query and form body merged, as Nacos reads them).
type fakeNacos struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []fakeReq
	answers map[string]fakeAnswer // "METHOD /path" → answer
}

type fakeReq struct {
	Method, Path string
	Params       map[string]string
}

type fakeAnswer struct {
	status int
	body   func(params url.Values) string
}

func newFakeNacos(t *testing.T) *fakeNacos {
	t.Helper()
	f := &fakeNacos{answers: map[string]fakeAnswer{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			t.Errorf("body %q: %v", raw, err)
		}
		all := r.URL.Query()
		for k, v := range form {
			all[k] = append(all[k], v...)
		}
		p := map[string]string{}
		for k, v := range all {
			p[k] = strings.Join(v, "|")
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, fakeReq{Method: r.Method, Path: r.URL.Path, Params: p})
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprintf(w, "no such api:%s:%s", r.Method, r.URL.Path)
			return
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body(all))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeNacos) answer(method, path string, status int, body string) {
	f.answerFunc(method, path, status, func(url.Values) string { return body })
}

func (f *fakeNacos) answerFunc(method, path string, status int, body func(url.Values) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method+" "+path] = fakeAnswer{status: status, body: body}
}

func (f *fakeNacos) requests() []fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeReq(nil), f.reqs...)
}

// cli runs the roster command line with buffers.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func oneLine(t *testing.T, stderr string) string {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not exactly one line: %q", stderr)
	}
	return strings.TrimSuffix(stderr, "\n")
}

func TestInstanceRegister(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("POST", "/nacos/v1/ns/instance", 200, "ok")

	code, out, errs := cli(t, "instance", "register", "--addr", f.URL, "--namespace", "dev", "--group", "PAY",
		"--service", "orders", "--ip", "10.0.0.5", "--port", "8080", "--cluster", "c1", "--weight", "2.5",
		"--ephemeral=false", "--metadata", "zone=a, rack=r1")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := "registered persistent instance 10.0.0.5:8080 (cluster c1) in dev/PAY@@orders\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %+v", reqs)
	}
	want := fakeReq{Method: "POST", Path: "/nacos/v1/ns/instance", Params: map[string]string{
		"namespaceId": "dev", "groupName": "PAY", "serviceName": "orders", "ip": "10.0.0.5", "port": "8080",
		"clusterName": "c1", "weight": "2.5", "healthy": "true", "enabled": "true", "ephemeral": "false",
		"metadata": `{"rack":"r1","zone":"a"}`,
	}}
	if !reflect.DeepEqual(reqs[0], want) {
		t.Errorf("request =\n  %+v\nwant\n  %+v", reqs[0], want)
	}
}

func TestInstanceRegisterDefaultsAndJSON(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("POST", "/nacos/v1/ns/instance", 200, "ok")
	t.Setenv("ROSTER_ADDR", f.URL)

	code, out, errs := cli(t, "instance", "register", "-o", "json", "--service", "orders", "--ip", "10.0.0.5", "--port", "8080")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var got actionResult
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	want := actionResult{Result: "registered", Namespace: "public", Service: "DEFAULT_GROUP@@orders",
		IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT", Ephemeral: true}
	if got != want {
		t.Errorf("json = %+v, want %+v", got, want)
	}
	p := f.requests()[0].Params
	for k, v := range map[string]string{"namespaceId": "public", "groupName": "DEFAULT_GROUP", "clusterName": "DEFAULT",
		"weight": "1", "ephemeral": "true", "metadata": "{}"} {
		if p[k] != v {
			t.Errorf("param %s = %q, want %q", k, p[k], v)
		}
	}
}

func TestInstanceServerError(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("POST", "/nacos/v1/ns/instance", 400,
		"errCode: 400, errMsg: Current service DEFAULT_GROUP@@orders is ephemeral service, can't register persistent instance. ")
	code, out, errs := cli(t, "instance", "register", "--addr", f.URL, "--service", "orders", "--ip", "10.0.0.5",
		"--port", "1", "--ephemeral=false")
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if got, want := oneLine(t, errs), "roster: 400: errCode: 400, errMsg: Current service DEFAULT_GROUP@@orders is ephemeral service, can't register persistent instance."; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}

	f.answer("GET", "/nacos/v1/ns/instance/list", 400, "Param 'serviceName' is illegal, illegal characters should not appear in the param.\n")
	code, _, errs = cli(t, "instance", "list", "--addr", f.URL, "--service", "a b")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if got, want := oneLine(t, errs), "roster: 400: Param 'serviceName' is illegal, illegal characters should not appear in the param."; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	code, _, errs := cli(t, "service", "list", "--addr", "http://"+addr)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if line := oneLine(t, errs); !strings.HasPrefix(line, "roster: ") || !strings.Contains(line, "refused") {
		t.Errorf("stderr = %q, want one roster: line about the refused connection", line)
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeNacos(t)
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"instance"}, "Usage: roster instance <command>"},
		{[]string{"instance", "frob"}, `unknown command "frob"`},
		{[]string{"service", "frob"}, `unknown command "frob"`},
		{[]string{"instance", "register", "--addr", f.URL, "--service", "s", "--port", "1"}, "--ip is required"},
		{[]string{"instance", "register", "--addr", f.URL, "--service", "s", "--ip", "10.0.0.5"}, "--port is required"},
		{[]string{"instance", "register", "--addr", f.URL, "--ip", "10.0.0.5", "--port", "1"}, "--service is required"},
		{[]string{"instance", "register", "--addr", f.URL, "--service", " ", "--ip", "10.0.0.5", "--port", "1"}, "--service is required"},
		{[]string{"instance", "register", "--addr", f.URL, "--service", "s", "--ip", "h", "--port", "x"}, `invalid value "x" for flag -port`},
		{[]string{"instance", "register", "--addr", f.URL, "--service", "s", "--ip", "h", "--port", "1", "--metadata", "novalue"}, `"novalue" is not k=v`},
		{[]string{"instance", "register", "--addr", f.URL, "--service", "s", "--ip", "h", "--port", "1", "--metadata", "{bad"}, "not a JSON object"},
		{[]string{"instance", "list", "--addr", f.URL, "--service", "s", "-o", "yaml"}, `-o "yaml": want table or json`},
		{[]string{"instance", "list", "--addr", f.URL, "--service", "s", "extra"}, `unexpected argument "extra"`},
		{[]string{"instance", "list", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"instance", "deregister", "--addr", f.URL, "--service", "s"}, "--ip is required"},
		{[]string{"service", "get", "--addr", f.URL}, "--service is required"},
		{[]string{"service", "list", "--addr", "ftp://x"}, "--addr: client: bad address"},
	}
	for _, tt := range tests {
		code, out, errs := cli(t, tt.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tt.args, code, errs)
		}
		if out != "" {
			t.Errorf("%v: stdout %q, want nothing", tt.args, out)
		}
		if !strings.Contains(errs, tt.want) {
			t.Errorf("%v: stderr %q, want it to contain %q", tt.args, errs, tt.want)
		}
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("usage errors sent requests: %+v", reqs)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := cli(t, "instance", "-h")
	if code != 0 || !strings.Contains(out, "register") {
		t.Errorf("instance -h: exit %d, stdout %q", code, out)
	}
	code, _, errs := cli(t, "instance", "register", "-h")
	if code != 0 || !strings.Contains(errs, "-metadata k=v,k=v") || !strings.Contains(errs, "ROSTER_ADDR") {
		t.Errorf("instance register -h: exit %d, stderr %q", code, errs)
	}
	code, _, errs = cli(t, "service", "list", "-h")
	if code != 0 || !strings.Contains(errs, "Usage: roster service list") {
		t.Errorf("service list -h: exit %d, stderr %q", code, errs)
	}
}

func TestInstanceDeregister(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("DELETE", "/nacos/v1/ns/instance", 200, "ok")
	code, out, errs := cli(t, "instance", "deregister", "--addr", f.URL, "--service", "PAY@@orders",
		"--ip", "10.0.0.5", "--port", "8080", "--ephemeral=false")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := "deregistered persistent instance 10.0.0.5:8080 (cluster DEFAULT) from public/PAY@@orders\n"; out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
	want := fakeReq{Method: "DELETE", Path: "/nacos/v1/ns/instance", Params: map[string]string{
		"namespaceId": "public", "groupName": "DEFAULT_GROUP", "serviceName": "PAY@@orders", "ip": "10.0.0.5",
		"port": "8080", "clusterName": "DEFAULT", "ephemeral": "false",
	}}
	if reqs := f.requests(); len(reqs) != 1 || !reflect.DeepEqual(reqs[0], want) {
		t.Errorf("requests = %+v\nwant %+v", reqs, want)
	}
}

const listAnswer = `{"name":"DEFAULT_GROUP@@orders","groupName":"DEFAULT_GROUP","clusters":"a,b","cacheMillis":10000,
"hosts":[{"instanceId":"10.0.0.5#8080#a#DEFAULT_GROUP@@orders","ip":"10.0.0.5","port":8080,"weight":1.0,"healthy":true,
"enabled":true,"ephemeral":true,"clusterName":"a","serviceName":"DEFAULT_GROUP@@orders","metadata":{"zone":"a","rack":"1"}},
{"ip":"10.0.0.6","port":9090,"weight":0.5,"healthy":false,"enabled":true,"ephemeral":false,"clusterName":"b",
"serviceName":"DEFAULT_GROUP@@orders","metadata":{}}],
"lastRefTime":1717000000000,"checksum":"","allIPs":false,"reachProtectionThreshold":false,"valid":true}`

func TestInstanceList(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/ns/instance/list", 200, listAnswer)

	code, out, errs := cli(t, "instance", "list", "--addr", f.URL, "--service", "orders", "--cluster", "a,b", "--healthy-only")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := "IP        PORT  CLUSTER  WEIGHT  HEALTHY  ENABLED  EPHEMERAL  METADATA\n" +
		"10.0.0.5  8080  a        1       true     true     true       rack=1,zone=a\n" +
		"10.0.0.6  9090  b        0.5     false    true     false      -\n"
	if out != want {
		t.Errorf("table =\n%s\nwant\n%s", out, want)
	}
	p := f.requests()[0].Params
	for k, v := range map[string]string{"serviceName": "orders", "clusters": "a,b", "healthyOnly": "true", "namespaceId": "public"} {
		if p[k] != v {
			t.Errorf("param %s = %q, want %q", k, p[k], v)
		}
	}
	if _, ok := p["udpPort"]; ok {
		t.Errorf("the CLI must not subscribe to pushes: %v", p)
	}

	code, out, errs = cli(t, "instance", "list", "--addr", f.URL, "--service", "orders", "-o", "json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var got, orig map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if err := json.Unmarshal([]byte(listAnswer), &orig); err != nil {
		t.Fatal(err)
	}
	if got["name"] != orig["name"] || len(got["hosts"].([]any)) != 2 {
		t.Errorf("json = %v", got)
	}
	h := got["hosts"].([]any)[0].(map[string]any)
	if h["ip"] != "10.0.0.5" || h["port"] != 8080.0 || h["clusterName"] != "a" || h["metadata"].(map[string]any)["zone"] != "a" {
		t.Errorf("json host = %v", h)
	}
}

func TestInstanceListEmptyJSON(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/ns/instance/list", 200, `{"name":"DEFAULT_GROUP@@x","hosts":[]}`)
	code, out, _ := cli(t, "instance", "list", "--addr", f.URL, "--service", "x", "-o", "json")
	if code != 0 || !strings.Contains(out, `"hosts": []`) {
		t.Errorf("exit %d, stdout %q; want hosts as an empty list", code, out)
	}
}

func TestServiceListPages(t *testing.T) {
	const total = 2*servicePageSize + 7
	f := newFakeNacos(t)
	f.answerFunc("GET", "/nacos/v1/ns/service/list", 200, func(v url.Values) string {
		no, _ := strconv.Atoi(v.Get("pageNo"))
		size, _ := strconv.Atoi(v.Get("pageSize"))
		var names []string
		for i := (no - 1) * size; i < no*size && i < total; i++ {
			names = append(names, fmt.Sprintf("svc-%04d", i))
		}
		b, _ := json.Marshal(map[string]any{"count": total, "doms": names})
		return string(b)
	})
	code, out, errs := cli(t, "service", "list", "--addr", f.URL, "--namespace", "dev", "--group", "PAY", "-o", "json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var res serviceListResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Count != total || len(res.Services) != total || res.Services[total-1] != fmt.Sprintf("svc-%04d", total-1) {
		t.Errorf("got count %d, %d names", res.Count, len(res.Services))
	}
	if res.Namespace != "dev" || res.Group != "PAY" {
		t.Errorf("namespace/group = %q/%q", res.Namespace, res.Group)
	}
	reqs := f.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		want := map[string]string{"namespaceId": "dev", "groupName": "PAY", "pageNo": strconv.Itoa(i + 1),
			"pageSize": strconv.Itoa(servicePageSize)}
		if !reflect.DeepEqual(r.Params, want) {
			t.Errorf("request %d params = %v, want %v", i, r.Params, want)
		}
	}
}

func TestServiceListTable(t *testing.T) {
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/ns/service/list", 200, `{"count":2,"doms":["orders","payments"]}`)
	code, out, errs := cli(t, "service", "list", "--addr", f.URL)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := "NAMESPACE  GROUP          NAME\npublic     DEFAULT_GROUP  orders\npublic     DEFAULT_GROUP  payments\n"
	if out != want {
		t.Errorf("table =\n%s\nwant\n%s", out, want)
	}
}

func TestServiceGet(t *testing.T) {
	const answer = `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"orders","protectThreshold":0.5,
"metadata":{"owner":"pay"},"selector":{"type":"none"},"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"metadata":{}}]}`
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/ns/service", 200, answer)
	code, out, errs := cli(t, "service", "get", "--addr", f.URL, "--service", "orders")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := "NAMESPACE:          public\nGROUP:              DEFAULT_GROUP\nNAME:               orders\n" +
		"PROTECT THRESHOLD:  0.5\nSELECTOR:           none\nMETADATA:           owner=pay\nCLUSTERS:           DEFAULT (TCP)\n"
	if out != want {
		t.Errorf("table =\n%s\nwant\n%s", out, want)
	}
	want2 := map[string]string{"namespaceId": "public", "groupName": "DEFAULT_GROUP", "serviceName": "orders"}
	if p := f.requests()[0].Params; !reflect.DeepEqual(p, want2) {
		t.Errorf("params = %v, want %v", p, want2)
	}

	code, out, _ = cli(t, "service", "get", "--addr", f.URL, "--service", "orders", "-o", "json")
	var d map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d["protectThreshold"] != 0.5 || d["name"] != "orders" {
		t.Errorf("json: exit %d, stdout %q", code, out)
	}

	f.answer("GET", "/nacos/v1/ns/service", 400, "service not found, namespace: public, serviceName: DEFAULT_GROUP@@nope")
	code, _, errs = cli(t, "service", "get", "--addr", f.URL, "--service", "nope")
	if got, want := oneLine(t, errs), "roster: 400: service not found, namespace: public, serviceName: DEFAULT_GROUP@@nope"; code != 1 || got != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, got, want)
	}
}

func TestParseMetadata(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"":                 nil,
		"a=1":              {"a": "1"},
		" a = 1 , b=2 ":    {"a": "1", "b": "2"},
		"a=":               {"a": ""},
		"url=http://h?x=1": {"url": "http://h?x=1"},
		`{"a":"1","b":""}`: {"a": "1", "b": ""},
	} {
		got, err := parseMetadata(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseMetadata(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"a", "=1", "a=1,,b=2", `{"a":1}`} {
		if _, err := parseMetadata(in); err == nil {
			t.Errorf("parseMetadata(%q) succeeded, want an error", in)
		}
	}
}

// TestServiceGetCheckers: each cluster's health check is on the CLUSTERS line, with what
// an HTTP or gRPC check asks for, and in full with -o json.
func TestServiceGetCheckers(t *testing.T) {
	const answer = `{"namespaceId":"public","groupName":"DEFAULT_GROUP","name":"orders","protectThreshold":0.0,"metadata":{},"selector":{"type":"none"},` +
		`"clusters":[{"name":"DEFAULT","healthChecker":{"type":"TCP"},"metadata":{}},` +
		`{"name":"api","healthChecker":{"type":"HTTP","path":"/health","headers":"X-A:1","expectedResponseCode":204},"metadata":{}},` +
		`{"name":"root","healthChecker":{"type":"HTTP","path":"","headers":"","expectedResponseCode":200},"metadata":{}},` +
		`{"name":"rpc","healthChecker":{"type":"GRPC","service":"pkg.Orders"},"metadata":{}},` +
		`{"name":"all","healthChecker":{"type":"GRPC","service":""},"metadata":{}},` +
		`{"name":"manual","healthChecker":{"type":"NONE"},"metadata":{}}]}`
	f := newFakeNacos(t)
	f.answer("GET", "/nacos/v1/ns/service", 200, answer)
	code, out, errs := cli(t, "service", "get", "--addr", f.URL, "--service", "orders")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	want := "CLUSTERS:           DEFAULT (TCP), api (HTTP /health headers X-A:1 expect 204), root (HTTP / expect 200), " +
		"rpc (GRPC pkg.Orders), all (GRPC), manual (NONE)\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("table =\n%s\nwant it to end in\n%s", out, want)
	}
	code, out, _ = cli(t, "service", "get", "--addr", f.URL, "--service", "orders", "-o", "json")
	var d struct {
		Clusters []struct {
			Name          string               `json:"name"`
			HealthChecker client.HealthChecker `json:"healthChecker"`
		} `json:"clusters"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || len(d.Clusters) != 6 ||
		d.Clusters[1].HealthChecker != (client.HealthChecker{Type: "HTTP", Path: "/health", Headers: "X-A:1", ExpectedResponseCode: 204}) ||
		d.Clusters[3].HealthChecker != (client.HealthChecker{Type: "GRPC", Service: "pkg.Orders"}) {
		t.Errorf("json: exit %d, stdout %s", code, out)
	}
}
