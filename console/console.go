// Package console is Roster's web console: static HTML, CSS and JavaScript modules
// embedded in the binary, and the handler that serves them. It holds no state and calls
// nothing of the registry: every action a page offers is a fetch, from the browser, of
// the same HTTP API that clients and the CLI use, carrying the signed-in user's token.
//
// The assets are split by who may load them. The sign-in shell (index.html, signin.js,
// style.css) is public; everything under app/ is the console proper and sits behind the
// node's access check like any route (the api package declares both). A browser loads
// app/ with a cookie that signin.js sets for that path alone, so the token never rides
// along on API requests as a cookie (those carry it as the accessToken header).
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Prefix is where the console is served; "/" redirects here.
const Prefix = "/console/"

// AppPrefix is the part of the console that needs a signed-in user.
const AppPrefix = Prefix + "app/"

// TokenCookie is the cookie, scoped to AppPrefix, with which the browser loads app/.
const TokenCookie = "roster_console_token"

// contentSecurityPolicy lets a page load nothing but this origin's own files and talk to
// nothing but this origin: the console needs no network beyond the node that serves it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the console under Prefix. Every file is read from the binary once.
func Handler() http.Handler {
	files := map[string]asset{}
	root, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[name] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	// mime's table may lack .js on a bare system; a module script must be JavaScript.
	for name, a := range files {
		if strings.HasSuffix(name, ".js") {
			a.contentType = "text/javascript; charset=utf-8"
			files[name] = a
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.Redirect(w, r, Prefix, http.StatusFound)
			return
		}
		if name == "" {
			name = "index.html"
		}
		a, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		// Revalidated on every load, so a new binary's console is picked up at once.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	})
}
