package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesEmbeddedFiles(t *testing.T) {
	h := Handler()
	for _, c := range []struct{ path, contentType, contains string }{
		{"/console/", "text/html; charset=utf-8", `<script type="module" src="signin.js">`},
		{"/console/index.html", "text/html; charset=utf-8", "signin-form"},
		{"/console/signin.js", "text/javascript; charset=utf-8", "/nacos/v1/auth/login"},
		{"/console/style.css", "text/css; charset=utf-8", ":root"},
		{"/console/app/app.js", "text/javascript; charset=utf-8", "export async function start"},
	} {
		rec := get(t, h, c.path)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != c.contentType || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("GET %s = %d %q, body has %q: %v", c.path, rec.Code, rec.Header().Get("Content-Type"), c.contains, strings.Contains(rec.Body.String(), c.contains))
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
		etag := rec.Header().Get("ETag")
		if again := get(t, h, c.path, "If-None-Match", etag); etag == "" || again.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q = %d, want 304", c.path, etag, again.Code)
		}
	}
	for _, p := range []string{"/console/nope.js", "/console/app/", "/console/../console.go"} {
		if rec := get(t, h, p); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/console/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/ = %d, want 405", rec.Code)
	}
}

// TestAssetsNeedNoNetwork: no file refers to another origin, and every module import
// and every file the HTML names is embedded, so the console works with no network but
// the node's.
func TestAssetsNeedNoNetwork(t *testing.T) {
	root, err := fs.Sub(assets, "assets")
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	imports := regexp.MustCompile(`(?:from\s+|import\()\s*'([^']+)'`)
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	n := 0
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to another origin: %s", name, m)
		}
		var names [][]byte
		for _, m := range imports.FindAllSubmatch(b, -1) {
			names = append(names, m[1])
		}
		if strings.HasSuffix(name, ".html") {
			for _, m := range refs.FindAllSubmatch(b, -1) {
				names = append(names, m[1])
			}
		}
		for _, ref := range names {
			target := path.Join(path.Dir(name), string(ref))
			if _, err := fs.Stat(root, target); err != nil {
				t.Errorf("%s names %s, which is not embedded", name, ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d files embedded", n)
	}
}
