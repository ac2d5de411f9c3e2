package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadParamsMergesQueryAndBodyForEveryMethod(t *testing.T) {
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		r := httptest.NewRequest(method, "/x?serviceName=q&ip=1.1.1.1", strings.NewReader("port=80&ip=2.2.2.2"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		p, err := readParams(r)
		if err != nil {
			t.Fatal(err)
		}
		if p.get("serviceName") != "q" || p.get("port") != "80" || p.get("ip") != "1.1.1.1" {
			t.Errorf("%s: params %v", method, p)
		}
	}
}

func TestLenientUnescape(t *testing.T) {
	for in, want := range map[string]string{
		"a+b":           "a b",
		"%7B%22a%22%7D": `{"a"}`,
		"100%":          "100%",
		"%zz":           "%zz",
		`{"a":"b"}`:     `{"a":"b"}`,
		"G@@S":          "G@@S",
		"%E4%B8%AD":     "中",
	} {
		if got := lenientUnescape(in); got != want {
			t.Errorf("lenientUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestParamsReadBytesAsJava: each byte that is not part of UTF-8 becomes U+FFFD, in
// the query and in the body, in names and in values.
func TestParamsReadBytesAsJava(t *testing.T) {
	p := params{}
	p.parse("serviceName=u%FF%FEv&k%FF=x&raw=\xe4\xb8\xad\xff")
	if got := p.get("serviceName"); got != "u\ufffd\ufffdv" {
		t.Errorf("serviceName = %q", got)
	}
	if got := p.get("k\ufffd"); got != "x" {
		t.Errorf("a name that is not UTF-8: %v", p)
	}
	if got := p.get("raw"); got != "中\ufffd" {
		t.Errorf("raw bytes = %q", got)
	}
	if got := javaText("plain"); got != "plain" {
		t.Errorf("javaText(plain) = %q", got)
	}
}

func TestParamsTrimAndAliases(t *testing.T) {
	p := params{}
	p.parse("clusterName=+&cluster=c1&enable=false&healthy=%20")
	if p.cluster() != "c1" {
		t.Errorf("cluster alias: %q", p.cluster())
	}
	if p.boolean(true, "enabled", "enable") {
		t.Error("enable alias not read")
	}
	if !p.boolean(true, "healthy") {
		t.Error("blank healthy must give the default")
	}
	if p.namespace() != "public" {
		t.Errorf("namespace default: %q", p.namespace())
	}
}

// FuzzParams feeds arbitrary query strings and bodies through the parameter reader
// and the instance parser: they must return an answer or a *naming.Error, never panic.
// Seeds come from testdata/params.
func FuzzParams(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "testdata", "params", "*.txt"))
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		query, body, _ := strings.Cut(string(b), "\n")
		f.Add(query, body)
	}
	f.Add("serviceName=a&ip=1.1.1.1&port=1", "")
	f.Fuzz(func(t *testing.T, query, body string) {
		r := &http.Request{Method: "POST", URL: mustURL(query), Header: http.Header{}, Body: nopBody(body)}
		p, err := readParams(r)
		if err != nil {
			return
		}
		for _, v := range []*version{apiV1, apiV2} {
			_, _, _ = instanceParams(p, v)
			_, _, _, _, _ = addrParams(p, v, queryParam)
		}
	})
}

func mustURL(rawQuery string) *url.URL {
	return &url.URL{Path: "/nacos/v1/ns/instance", RawQuery: rawQuery}
}

func nopBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
