package naming

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseHealthChecker(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want HealthChecker
	}{
		{"tcp", `{"type":"TCP"}`, HealthChecker{Type: "TCP"}},
		{"none", `{"type":"NONE"}`, HealthChecker{Type: "NONE"}},
		{"nacos' http form", `{"type":"HTTP","path":"/health","headers":"","expectedResponseCode":200}`,
			HealthChecker{Type: "HTTP", Path: "/health", ExpectedResponseCode: 200}},
		{"http defaults", `{"type":"HTTP"}`, HealthChecker{Type: "HTTP", ExpectedResponseCode: 200}},
		{"http nulls are defaults", `{"type":"HTTP","path":null,"headers":null,"expectedResponseCode":null}`, HealthChecker{Type: "HTTP", ExpectedResponseCode: 200}},
		{"http code as a string", `{"type":"HTTP","expectedResponseCode":"204"}`, HealthChecker{Type: "HTTP", ExpectedResponseCode: 204}},
		{"http headers and query", `{"type":"HTTP","path":"/h?x=1","headers":"Host:a|X-Token: b c","expectedResponseCode":503}`,
			HealthChecker{Type: "HTTP", Path: "/h?x=1", Headers: "Host:a|X-Token: b c", ExpectedResponseCode: 503}},
		{"grpc", `{"type":"GRPC","service":"pkg.Orders"}`, HealthChecker{Type: "GRPC", Service: "pkg.Orders"}},
		{"grpc overall", `{"type":"GRPC"}`, HealthChecker{Type: "GRPC"}},
		// Properties a type does not have are ignored, as Jackson is told to.
		{"tcp ignores http fields", `{"type":"TCP","path":"/x","expectedResponseCode":500,"extra":{"a":[1]}}`, HealthChecker{Type: "TCP"}},
		{"none ignores grpc fields", `{"service":"s","type":"NONE"}`, HealthChecker{Type: "NONE"}},
		{"spaces around", "  {\"type\" : \"TCP\"}\n", HealthChecker{Type: "TCP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHealthChecker(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseHealthChecker = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseHealthCheckerRefuses(t *testing.T) {
	const decode = "errCode: 101, errMsg: Nacos deserialize for class [com.alibaba.nacos.api.naming.pojo.healthcheck.AbstractHealthChecker] failed, cause error["
	tests := []struct {
		name, raw, text string // text: the message starts with it
	}{
		{"not JSON", `{type:TCP}`, decode},
		{"nacos' own bad example", `{"type"="TCP"}`, decode},
		{"empty", ``, decode},
		{"array", `[{"type":"TCP"}]`, decode},
		{"null", `null`, decode},
		{"trailing data", `{"type":"TCP"}{}`, decode},
		{"type not a string", `{"type":1}`, decode},
		{"code not a number", `{"type":"HTTP","expectedResponseCode":"ok"}`, decode},
		{"code a fraction", `{"type":"HTTP","expectedResponseCode":200.5}`, decode},
		{"path not a string", `{"type":"HTTP","path":["/"]}`, decode},
		{"no type", `{"path":"/health"}`, "Param 'healthChecker' is illegal, type is required (TCP, HTTP, GRPC, NONE)."},
		{"null type", `{"type":null}`, "Param 'healthChecker' is illegal, type is required"},
		{"unknown type", `{"type":"FOO"}`, `Param 'healthChecker' is illegal, type "FOO" is not supported (TCP, HTTP, GRPC, NONE).`},
		{"lower case", `{"type":"tcp"}`, `Param 'healthChecker' is illegal, type "tcp" is not supported`},
		{"mysql", `{"type":"MYSQL","user":"u","pwd":"p","cmd":"select 1"}`, `Param 'healthChecker' is illegal, type "MYSQL" is not supported`},
		{"code zero", `{"type":"HTTP","expectedResponseCode":0}`, "Param 'healthChecker' is illegal, expectedResponseCode should be between 100 and 599."},
		{"code 99", `{"type":"HTTP","expectedResponseCode":99}`, "Param 'healthChecker' is illegal, expectedResponseCode should be between 100 and 599."},
		{"code 600", `{"type":"HTTP","expectedResponseCode":600}`, "Param 'healthChecker' is illegal, expectedResponseCode should be between 100 and 599."},
		{"negative code", `{"type":"HTTP","expectedResponseCode":-200}`, "Param 'healthChecker' is illegal, expectedResponseCode"},
		{"relative path", `{"type":"HTTP","path":"health"}`, "Param 'healthChecker' is illegal, path should be empty or start with '/'."},
		{"path naming another host", `{"type":"HTTP","path":"@evil.example/"}`, "Param 'healthChecker' is illegal, path should be empty or start with '/'."},
		{"path with a space", `{"type":"HTTP","path":"/a b"}`, "Param 'healthChecker' is illegal, path should hold no spaces."},
		{"path with a line break", `{"type":"HTTP","path":"/a\r\nHost: x"}`, "Param 'healthChecker' is illegal, path should hold no control characters."},
		{"header injection", `{"type":"HTTP","headers":"A:b\r\nX:y"}`, "Param 'healthChecker' is illegal, headers should hold no control characters."},
		{"path too long", `{"type":"HTTP","path":"/` + strings.Repeat("a", MaxCheckerText) + `"}`, "Param 'healthChecker' is illegal, path should not exceed 1024 bytes."},
		{"grpc service with a space", `{"type":"GRPC","service":"a b"}`, "Param 'healthChecker' is illegal, service should hold no spaces."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHealthChecker(tt.raw)
			var ne *Error
			if !errors.As(err, &ne) {
				t.Fatalf("ParseHealthChecker = %+v, %v; want a *naming.Error", got, err)
			}
			if ne.Status != 400 || !strings.HasPrefix(ne.Message, tt.text) {
				t.Errorf("error = %d %q, want 400 starting %q", ne.Status, ne.Message, tt.text)
			}
		})
	}
}

// TestHealthCheckerJSON: each type encodes in Nacos' form, every field of the type
// present, and decodes back to itself.
func TestHealthCheckerJSON(t *testing.T) {
	tests := []struct {
		h    HealthChecker
		want string
	}{
		{HealthChecker{Type: "TCP"}, `{"type":"TCP"}`},
		{HealthChecker{Type: "NONE"}, `{"type":"NONE"}`},
		{DefaultChecker("HTTP"), `{"type":"HTTP","path":"","headers":"","expectedResponseCode":200}`},
		{HealthChecker{Type: "HTTP", Path: "/h", Headers: "A:b", ExpectedResponseCode: 204}, `{"type":"HTTP","path":"/h","headers":"A:b","expectedResponseCode":204}`},
		{DefaultChecker("GRPC"), `{"type":"GRPC","service":""}`},
		{HealthChecker{Type: "GRPC", Service: "pkg.Orders"}, `{"type":"GRPC","service":"pkg.Orders"}`},
		{HealthChecker{}, `{"type":""}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.h)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Marshal(%+v) = %s, want %s", tt.h, b, tt.want)
		}
		var back HealthChecker
		if err := json.Unmarshal(b, &back); err != nil || back != tt.h {
			t.Errorf("Unmarshal(%s) = %+v, %v", b, back, err)
		}
		if tt.h.Type != "" {
			if p, err := ParseHealthChecker(string(b)); err != nil || p != tt.h {
				t.Errorf("ParseHealthChecker(%s) = %+v, %v", b, p, err)
			}
		}
	}
	// A record of a version that had omitempty fields still reads.
	var old HealthChecker
	if err := json.Unmarshal([]byte(`{"type":"HTTP","path":"/ok","headers":"a|b","expectedResponseCode":204}`), &old); err != nil ||
		old != (HealthChecker{Type: "HTTP", Path: "/ok", Headers: "a|b", ExpectedResponseCode: 204}) {
		t.Errorf("old record = %+v, %v", old, err)
	}
}

func TestHealthCheckerValidateAndEffective(t *testing.T) {
	for _, h := range []HealthChecker{{}, {Type: "TCP"}, {Type: "NONE"}, {Type: "HTTP"}, {Type: "HTTP", ExpectedResponseCode: 599}, {Type: "GRPC", Service: "s"}} {
		if err := h.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", h, err)
		}
	}
	for _, h := range []HealthChecker{
		{Type: "TCP", Path: "/x"}, {Type: "NONE", Service: "s"}, {Path: "/x"}, {Type: "GRPC", Path: "/x"},
		{Type: "HTTP", Service: "s"}, {Type: "HTTP", ExpectedResponseCode: 600}, {Type: "MYSQL"},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", h)
		}
	}
	if e := (HealthChecker{}).Effective(); e != (HealthChecker{Type: "TCP"}) {
		t.Errorf("legacy Effective = %+v", e)
	}
	if e := (HealthChecker{Type: "HTTP", Path: "/h"}).Effective(); e != (HealthChecker{Type: "HTTP", Path: "/h", ExpectedResponseCode: 200}) {
		t.Errorf("HTTP Effective = %+v", e)
	}
	if (HealthChecker{Type: "NONE"}).Probed() || !(HealthChecker{}).Probed() || !(HealthChecker{Type: "GRPC"}).Probed() {
		t.Error("Probed is wrong")
	}
}

// TestClusterDefaults: a cluster without a record is Nacos' default, a TCP check of the
// instance's port; a stored one is returned as a copy with its checker made effective.
func TestClusterDefaults(t *testing.T) {
	svc := NewService(ServiceKey{Namespace: "public", Group: "G", Name: "s"}, false)
	got := svc.ClusterOf("DEFAULT")
	want := &Cluster{Name: "DEFAULT", HealthChecker: HealthChecker{Type: "TCP"}, Metadata: map[string]string{}, CheckPort: 80, UseInstancePort: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("default cluster = %+v", got)
	}
	if got.ProbePort(8080) != 8080 {
		t.Errorf("ProbePort = %d", got.ProbePort(8080))
	}
	svc.Clusters = map[string]*Cluster{
		"blue":   {Name: "blue", HealthChecker: HealthChecker{Type: "HTTP"}, Metadata: map[string]string{"k": "v"}, CheckPort: 9000},
		"legacy": {Name: "legacy"},
	}
	blue := svc.ClusterOf("blue")
	if blue.HealthChecker.ExpectedResponseCode != 200 || blue.ProbePort(8080) != 9000 {
		t.Errorf("blue = %+v, probe port %d", blue, blue.ProbePort(8080))
	}
	blue.Metadata["k"] = "changed"
	if svc.Clusters["blue"].Metadata["k"] != "v" {
		t.Error("ClusterOf shares the stored metadata")
	}
	legacy := svc.ClusterOf("legacy")
	if legacy.HealthChecker.Type != "TCP" || legacy.ProbePort(8080) != 8080 || legacy.Metadata == nil {
		t.Errorf("legacy = %+v, probe port %d", legacy, legacy.ProbePort(8080))
	}
}
