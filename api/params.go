package api

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/roster-registry/roster/naming"
)

// params are a request's parameters as Nacos reads servlet parameters: the query string
// and an application/x-www-form-urlencoded body merged, for every method including
// DELETE (which Go's ParseForm skips). Decoding is lenient: a bad % escape keeps its raw
// text, '+' is a space, and values are trimmed; blank means absent.
type params map[string][]string

// readParams reads the query and the form body. The body was already limited by the
// size-limit middleware; reading past the limit fails with *http.MaxBytesError.
func readParams(r *http.Request) (params, error) {
	p, _, err := readParamsBody(r)
	return p, err
}

// paramsKey holds the parameters the authorize middleware already read, with the body
// they came from, so the handler does not read the body twice.
type paramsKey struct{}

type readBody struct {
	p    params
	body []byte
}

// cachedParams reads a request's parameters once for the middleware; the handler's
// readParams then finds them in the context.
func cachedParams(r *http.Request) (*readBody, error) {
	if rb, ok := r.Context().Value(paramsKey{}).(*readBody); ok {
		return rb, nil
	}
	p, body, err := readParamsBody(r)
	if err != nil {
		return nil, err
	}
	return &readBody{p: p, body: body}, nil
}

// readParamsBody is readParams that also returns the body it read, so that a request
// can be sent on to another member unchanged.
func readParamsBody(r *http.Request) (params, []byte, error) {
	if rb, ok := r.Context().Value(paramsKey{}).(*readBody); ok {
		return rb.p, rb.body, nil
	}
	p := params{}
	p.parse(r.URL.RawQuery)
	if r.Body == nil || r.Body == http.NoBody {
		return p, nil, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, nil, err
	}
	// Nacos' endpoints take parameters only: a body of another type is read (for the
	// size limit) but not parsed.
	if ct == "" || mt == "application/x-www-form-urlencoded" {
		p.parse(string(body))
	}
	return p, body, nil
}

func (p params) parse(s string) {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k = javaText(lenientUnescape(k))
		if k == "" {
			continue
		}
		p[k] = append(p[k], javaText(lenientUnescape(v)))
	}
}

// lenientUnescape decodes %XX and '+'; an invalid escape is kept as written, since Go
// v1.1.4 sends values like metadata JSON without encoding them.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// javaText reads parameter bytes as UTF-8 the way Java's decoder does (Nacos reads every
// parameter into a Java String): each byte that is not part of a valid sequence becomes
// U+FFFD. Bytes that are not UTF-8 would otherwise be stored under one name and listed,
// replicated and snapshotted under another, since JSON replaces them.
func javaText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		b.WriteRune(r) // an invalid byte ranges as utf8.RuneError, U+FFFD
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// get returns the first non-blank value among the names (aliases), trimmed.
func (p params) get(names ...string) string {
	for _, n := range names {
		for _, v := range p[n] {
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return ""
}

// required returns the value or Nacos' "Param 'x' is required." error.
func (p params) required(name string, aliases ...string) (string, error) {
	v := p.get(append([]string{name}, aliases...)...)
	if v == "" {
		return "", naming.RequiredParam(name)
	}
	return v, nil
}

// has reports whether any of the names carries a non-blank value.
func (p params) has(names ...string) bool { return p.get(names...) != "" }

func (p params) boolean(def bool, names ...string) bool {
	return naming.ParseBool(p.get(names...), def)
}

// namespace is namespaceId (or tenant), blank → public.
func (p params) namespace() string {
	if ns := p.get("namespaceId", "tenant", "namespace"); ns != "" {
		return ns
	}
	return naming.DefaultNamespace
}

// serviceRequest reads a request's parameters and the service they name; missing
// makes the front's error for a missing service name.
func serviceRequest(r *http.Request, missing func(string) *naming.Error) (params, naming.ServiceKey, error) {
	p, err := readParams(r)
	if err != nil {
		return nil, naming.ServiceKey{}, err
	}
	key, err := p.service(missing)
	return p, key, err
}

// service resolves serviceName + groupName by Nacos' v1 grouped-name rule and checks
// the names. missing decides the text for an absent serviceName.
func (p params) service(missing func(string) *naming.Error) (naming.ServiceKey, error) {
	ns := p.namespace()
	if err := naming.CheckNamespace(ns); err != nil {
		return naming.ServiceKey{}, err
	}
	raw := p.get("serviceName")
	if raw == "" {
		return naming.ServiceKey{}, missing("serviceName")
	}
	group, name, err := naming.SplitGroupedName(raw, p.get("groupName"))
	if err != nil {
		return naming.ServiceKey{}, err
	}
	key := naming.ServiceKey{Namespace: ns, Group: group, Name: name}
	if err := naming.CheckServiceKey(key); err != nil {
		return naming.ServiceKey{}, err
	}
	return key, nil
}

// cluster is clusterName (alias cluster), blank → DEFAULT.
func (p params) cluster() string {
	if c := p.get("clusterName", "cluster"); c != "" {
		return c
	}
	return naming.DefaultCluster
}
