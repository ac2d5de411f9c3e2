package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// access is what a route requires. Every route must declare one in routeAccess: the
// authorize middleware refuses a route it finds there without one (fail closed), and a
// test walks the router to keep the table complete.
type access int

const (
	accessUndeclared access = iota
	// accessPublic needs nothing: health, readiness, metrics, login, ACL bootstrap.
	accessPublic
	// accessNode is node-to-node traffic; the node credential (cluster key or mutual
	// TLS) guards it, never a user's token.
	accessNode
	// accessAuthenticated needs any valid identity; the handler filters what it shows.
	accessAuthenticated
	// accessRead and accessWrite need that action on the request's namespace and group.
	accessRead
	accessWrite
	// accessAdmin needs auth.AdminRole.
	accessAdmin
)

func (k access) String() string {
	return [...]string{"undeclared", "public", "node", "authenticated", "read", "write", "admin"}[k]
}

// anyMethod in a routeAccess key covers every method of a pattern.
const anyMethod = "*"

// routeAccess declares every route's access, keyed "METHOD pattern" as chi reports the
// pattern.
var routeAccess = map[string]access{
	"GET /healthz":                           accessPublic,
	"GET /readyz":                            accessPublic,
	"* /metrics":                             accessPublic,
	"GET /nacos/v1/console/health/liveness":  accessPublic,
	"GET /nacos/v1/console/health/readiness": accessPublic,
	"POST /nacos/v1/auth/login":              accessPublic,
	"POST /nacos/v1/auth/users/login":        accessPublic,
	"POST /roster/v1/acl/bootstrap":          accessPublic,

	// The web console: its sign-in shell is public, the console proper needs a
	// signed-in user (console.go). The data it shows comes from the routes below.
	"GET /":                   accessPublic,
	"GET /console":            accessPublic,
	"GET " + consolePublic:    accessPublic,
	"GET " + consoleApp + "*": accessAuthenticated,

	"GET /nacos/v1/core/cluster/nodes":  accessAuthenticated,
	"GET /nacos/v1/core/cluster/self":   accessAuthenticated,
	"GET /nacos/v1/core/cluster/health": accessAuthenticated,

	"POST /nacos/v1/ns/instance":                  accessWrite,
	"DELETE /nacos/v1/ns/instance":                accessWrite,
	"PUT /nacos/v1/ns/instance":                   accessWrite,
	"PATCH /nacos/v1/ns/instance":                 accessWrite,
	"GET /nacos/v1/ns/instance":                   accessRead,
	"PUT /nacos/v1/ns/instance/beat":              accessWrite,
	"GET /nacos/v1/ns/instance/list":              accessRead,
	"* /nacos/v1/ns/instance/statuses":            accessRead,
	"PUT /nacos/v1/ns/instance/metadata/batch":    accessWrite,
	"DELETE /nacos/v1/ns/instance/metadata/batch": accessWrite,
	"POST /nacos/v1/ns/service":                   accessWrite,
	"DELETE /nacos/v1/ns/service":                 accessWrite,
	"PUT /nacos/v1/ns/service":                    accessWrite,
	"GET /nacos/v1/ns/service":                    accessRead,
	"GET /nacos/v1/ns/service/list":               accessRead,
	"* /nacos/v1/ns/service/names":                accessAuthenticated, // filtered per namespace and group
	"GET /nacos/v1/ns/service/subscribers":        accessRead,
	"PUT /nacos/v1/ns/health/instance":            accessWrite,
	"PUT /nacos/v1/ns/health":                     accessWrite,
	"GET /nacos/v1/ns/health/checkers":            accessAuthenticated, // Nacos secures it not at all; the list is static
	"PUT /nacos/v1/ns/cluster":                    accessWrite,
	"GET /nacos/v1/ns/catalog/service":            accessRead,
	"GET /nacos/v1/ns/raft/leader":                accessAuthenticated,
	"GET /nacos/v1/ns/operator/metrics":           accessAuthenticated,
	"GET /nacos/v1/ns/operator/servers":           accessAuthenticated,
	"GET /nacos/v1/ns/ops/metrics":                accessAuthenticated,
	"GET /nacos/v1/ns/ops/servers":                accessAuthenticated,

	// Open API v2: naming as its v1 equivalents; the client views are Nacos'
	// "nacos/admin" resource; namespaces are shown per what the caller may read.
	"GET /nacos/v2/console/health/liveness":  accessPublic,
	"GET /nacos/v2/console/health/readiness": accessPublic,

	"POST /nacos/v2/ns/instance":                      accessWrite,
	"DELETE /nacos/v2/ns/instance":                    accessWrite,
	"PUT /nacos/v2/ns/instance":                       accessWrite,
	"GET /nacos/v2/ns/instance":                       accessRead,
	"PUT /nacos/v2/ns/instance/beat":                  accessWrite,
	"GET /nacos/v2/ns/instance/list":                  accessRead,
	"PUT /nacos/v2/ns/instance/metadata/batch":        accessWrite,
	"DELETE /nacos/v2/ns/instance/metadata/batch":     accessWrite,
	"POST /nacos/v2/ns/service":                       accessWrite,
	"DELETE /nacos/v2/ns/service":                     accessWrite,
	"PUT /nacos/v2/ns/service":                        accessWrite,
	"GET /nacos/v2/ns/service":                        accessRead,
	"GET /nacos/v2/ns/service/list":                   accessRead,
	"* /nacos/v2/ns/catalog/instances":                accessRead,
	"PUT /nacos/v2/ns/health/instance":                accessWrite,
	"PUT /nacos/v2/ns/health":                         accessWrite,
	"GET /nacos/v2/ns/operator/metrics":               accessAuthenticated,
	"GET /nacos/v2/ns/ops/metrics":                    accessAuthenticated,
	"GET /nacos/v2/ns/operator/switches":              accessAuthenticated,
	"GET /nacos/v2/ns/ops/switches":                   accessAuthenticated,
	"PUT /nacos/v2/ns/operator/switches":              accessAdmin,
	"PUT /nacos/v2/ns/ops/switches":                   accessAdmin,
	"GET /nacos/v2/ns/client/list":                    accessAdmin,
	"GET /nacos/v2/ns/client":                         accessAdmin,
	"GET /nacos/v2/ns/client/publish/list":            accessAdmin,
	"GET /nacos/v2/ns/client/subscribe/list":          accessAdmin,
	"GET /nacos/v2/ns/client/service/publisher/list":  accessAdmin,
	"GET /nacos/v2/ns/client/service/subscriber/list": accessAdmin,

	"GET /nacos/v2/core/cluster/node/list":        accessAuthenticated,
	"GET /nacos/v2/core/cluster/node/self":        accessAuthenticated,
	"GET /nacos/v2/core/cluster/node/self/health": accessAuthenticated,

	"GET /nacos/v2/console/namespace/list":  accessAuthenticated, // filtered per namespace
	"GET /nacos/v2/console/namespace/exist": accessAuthenticated,
	"GET /nacos/v2/console/namespace":       accessRead,
	"POST /nacos/v2/console/namespace":      accessAdmin,
	"PUT /nacos/v2/console/namespace":       accessAdmin,
	"DELETE /nacos/v2/console/namespace":    accessAdmin,

	// The Nacos 3 admin API. Nacos guards it with AuthAdminFilter: each endpoint's
	// @Secured action (READ or WRITE) on the request's namespace and group, so these are
	// accessRead and accessWrite as Nacos marks them (the instance detail is WRITE there
	// too). Where Nacos names a resource of its own that no namespace grant covers (the
	// ops, core cluster and namespace controllers) or shows what spans namespaces (the
	// client views), only an admin may.
	"POST /nacos/v3/auth/user/login": accessPublic,

	"POST /nacos/v3/admin/ns/instance":                      accessWrite,
	"DELETE /nacos/v3/admin/ns/instance":                    accessWrite,
	"PUT /nacos/v3/admin/ns/instance":                       accessWrite,
	"GET /nacos/v3/admin/ns/instance":                       accessWrite,
	"GET /nacos/v3/admin/ns/instance/list":                  accessRead,
	"PUT /nacos/v3/admin/ns/instance/metadata/batch":        accessWrite,
	"DELETE /nacos/v3/admin/ns/instance/metadata/batch":     accessWrite,
	"PUT /nacos/v3/admin/ns/instance/partial":               accessWrite,
	"POST /nacos/v3/admin/ns/service":                       accessWrite,
	"DELETE /nacos/v3/admin/ns/service":                     accessWrite,
	"PUT /nacos/v3/admin/ns/service":                        accessWrite,
	"GET /nacos/v3/admin/ns/service":                        accessRead,
	"GET /nacos/v3/admin/ns/service/list":                   accessAuthenticated, // filtered per namespace and group
	"GET /nacos/v3/admin/ns/service/subscribers":            accessRead,
	"GET /nacos/v3/admin/ns/service/selector/types":         accessRead,
	"PUT /nacos/v3/admin/ns/cluster":                        accessWrite,
	"PUT /nacos/v3/admin/ns/health/instance":                accessWrite,
	"GET /nacos/v3/admin/ns/health/checkers":                accessWrite,
	"GET /nacos/v3/admin/ns/client/list":                    accessAdmin,
	"GET /nacos/v3/admin/ns/client":                         accessAdmin,
	"GET /nacos/v3/admin/ns/client/publish/list":            accessAdmin,
	"GET /nacos/v3/admin/ns/client/subscribe/list":          accessAdmin,
	"GET /nacos/v3/admin/ns/client/service/publisher/list":  accessAdmin,
	"GET /nacos/v3/admin/ns/client/service/subscriber/list": accessAdmin,
	"GET /nacos/v3/admin/ns/ops/switches":                   accessAdmin,
	"PUT /nacos/v3/admin/ns/ops/switches":                   accessAdmin,
	"GET /nacos/v3/admin/ns/ops/metrics":                    accessAdmin,
	"PUT /nacos/v3/admin/ns/ops/log":                        accessAdmin,

	"GET /nacos/v3/admin/core/cluster/node/list": accessAdmin,
	"GET /nacos/v3/admin/core/cluster/node/self": accessAdmin,
	"GET /nacos/v3/admin/core/namespace/list":    accessAdmin,
	"GET /nacos/v3/admin/core/namespace":         accessAdmin,
	"POST /nacos/v3/admin/core/namespace":        accessAdmin,
	"PUT /nacos/v3/admin/core/namespace":         accessAdmin,
	"DELETE /nacos/v3/admin/core/namespace":      accessAdmin,
	"GET /nacos/v3/admin/core/namespace/check":   accessAdmin,
	"GET /nacos/v3/admin/core/state/liveness":    accessPublic,
	"GET /nacos/v3/admin/core/state/readiness":   accessPublic,

	// The console's v1 namespace endpoints: as their v2 equivalents (Nacos secures them
	// as the console's "namespaces" resource: read for any user, write for admins).
	"GET /nacos/v1/console/namespaces":          accessAuthenticated, // filtered per namespace; show=all needs read below
	"POST /nacos/v1/console/namespaces":         accessAdmin,
	"GET /nacos/v1/console/server/state":        accessPublic, // the console reads it before sign-in (login_page_enabled)
	"GET /nacos/v1/console/server/announcement": accessPublic,
	"GET /nacos/v1/console/server/guide":        accessPublic,
	"POST /nacos/v1/core/cluster/server/leave":  accessAdmin,
	"GET /nacos/v1/ns/catalog/services":         accessAuthenticated, // filtered per group
	"GET /nacos/v1/ns/catalog/instances":        accessRead,
	"GET /nacos/v1/ns/service/selector/types":   accessAuthenticated,

	// The console's user, role and permission pages: administrators only, as Nacos
	// (a user may change their own password: the handler checks it); the first
	// administrator's creation is public like the ACL bootstrap, refused once any user
	// exists.
	"POST /nacos/v1/auth/users/admin":     accessPublic,
	"GET /nacos/v1/auth/users":            accessAdmin,
	"POST /nacos/v1/auth/users":           accessAdmin,
	"PUT /nacos/v1/auth/users":            accessAuthenticated,
	"DELETE /nacos/v1/auth/users":         accessAdmin,
	"GET /nacos/v1/auth/users/search":     accessAdmin,
	"GET /nacos/v1/auth/roles":            accessAdmin,
	"POST /nacos/v1/auth/roles":           accessAdmin,
	"DELETE /nacos/v1/auth/roles":         accessAdmin,
	"GET /nacos/v1/auth/roles/search":     accessAdmin,
	"GET /nacos/v1/auth/permissions":      accessAdmin,
	"POST /nacos/v1/auth/permissions":     accessAdmin,
	"DELETE /nacos/v1/auth/permissions":   accessAdmin,
	"PUT /nacos/v1/console/namespaces":    accessAdmin,
	"DELETE /nacos/v1/console/namespaces": accessAdmin,

	// Prometheus service discovery. Nacos asks only for an authenticated user (HTTP
	// Basic, PrometheusAuthFilter) on the all-namespaces route and for nothing on the
	// others; here the all-namespaces route lists only what the caller may read, and a
	// per-namespace route needs read on that namespace as a whole (every group).
	"GET /nacos/prometheus":                                             accessAuthenticated,
	"GET /nacos/prometheus/namespaceId/{namespaceId}":                   accessRead,
	"GET /nacos/prometheus/namespaceId/{namespaceId}/service/{service}": accessRead,

	"GET /roster/v1/operator/raft":                  accessAuthenticated,
	"GET /roster/v1/operator/distro/responsibility": accessRead,
	"DELETE /roster/v1/operator/raft/peer":          accessAdmin,
	"POST /roster/v1/operator/raft/transfer-leader": accessAdmin,
	"GET " + SnapshotPath:                           accessAdmin,
	"PUT " + SnapshotPath:                           accessAdmin,
	"GET /roster/v1/acl/users":                      accessAdmin,
	"POST /roster/v1/acl/users":                     accessAdmin,
	"PUT /roster/v1/acl/users":                      accessAdmin,
	"DELETE /roster/v1/acl/users":                   accessAdmin,
	"GET /roster/v1/acl/roles":                      accessAdmin,
	"POST /roster/v1/acl/roles":                     accessAdmin,
	"DELETE /roster/v1/acl/roles":                   accessAdmin,
	"GET /roster/v1/acl/grants":                     accessAdmin,
	"POST /roster/v1/acl/grants":                    accessAdmin,
	"DELETE /roster/v1/acl/grants":                  accessAdmin,
	"POST /roster/v1/acl/rotate-key":                accessAdmin,
	"GET /roster/v1/acl/whoami":                     accessAuthenticated,
}

// nodeRoutePrefixes are the node-to-node routes' prefixes (cluster and distro packages
// mount them); every route under them is accessNode.
var nodeRoutePrefixes = []string{"/roster/v1/cluster/", "/roster/v1/distro/"}

// accessOf returns a route's declared access.
func accessOf(method, pattern string) access {
	if k, ok := routeAccess[method+" "+pattern]; ok {
		return k
	}
	if k, ok := routeAccess[anyMethod+" "+pattern]; ok {
		return k
	}
	for _, p := range nodeRoutePrefixes {
		if strings.HasPrefix(pattern, p) {
			return accessNode
		}
	}
	return accessUndeclared
}

type identityKey struct{}

// identityFrom returns the caller's identity, or nil when auth is off.
func identityFrom(ctx context.Context) *auth.Identity {
	id, _ := ctx.Value(identityKey{}).(*auth.Identity)
	return id
}

// mayRead reports whether the caller may read a group of a namespace. With auth off
// everyone may.
func (a *API) mayRead(r *http.Request, namespace, group string) bool {
	if !a.authOn() {
		return true
	}
	id := identityFrom(r.Context())
	return id != nil && id.Can(auth.Read, namespace, group)
}

func (a *API) authOn() bool { return a.cfg.Auth != nil && a.cfg.Auth.Enabled() }

// authorize is the one access check in front of every HTTP route: it finds the route's
// pattern, looks up its declared access and checks the caller against it. It answers
// Nacos' 403 texts (token invalid!, token expired!, user not found!, authorization
// failed!). Writes and admin actions are audited with who, what, where and the result.
func (a *API) authorize(router *chi.Mux) func(http.Handler) http.Handler {
	// staticRoutes remembers the routes whose pattern is their path (no parameters):
	// "METHOD path" -> pattern. Only such routes are kept, so it holds at most one entry
	// per static route whatever paths clients send, and the hot routes (beats, lists,
	// registrations) skip a second walk of the router.
	var staticRoutes sync.Map
	// find returns the route's pattern and its URL parameters (none for a static one).
	find := func(r *http.Request) (string, *chi.Context) {
		rctx := chi.NewRouteContext()
		path := routePath(r)
		key := r.Method + " " + path
		if p, ok := staticRoutes.Load(key); ok {
			return p.(string), rctx
		}
		pattern := router.Find(rctx, r.Method, path)
		if pattern != "" && pattern == path && !strings.ContainsAny(pattern, "{*") {
			staticRoutes.Store(key, pattern)
		}
		return pattern, rctx
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pattern, rctx := find(r)
			if pattern == "" {
				next.ServeHTTP(w, r) // no route: the not-found answers run, nothing else
				return
			}
			need := accessOf(r.Method, pattern)
			switch need {
			case accessUndeclared:
				a.log.Error("route has no declared access; refused", "method", r.Method, "route", pattern)
				deny(w, r, http.StatusForbidden, auth.ErrForbidden.Error())
				return
			case accessNode:
				// Checked here as well as on the routes themselves: a member's MAC or
				// certificate, before the body is read.
				if a.reg.CheckNode(r) != nil {
					w.Header().Set("Connection", "close")
					writeText(w, http.StatusUnauthorized, registry.ErrNodeUnauthorized.Error())
					return
				}
				next.ServeHTTP(w, r)
				return
			case accessPublic:
				next.ServeHTTP(w, r)
				return
			}
			if !a.authOn() {
				next.ServeHTTP(w, r)
				return
			}
			rb, err := cachedParams(r)
			if err != nil {
				a.fail(versionOf(r), w, r, err)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), paramsKey{}, rb))
			p := rb.p
			var ns, group string
			if need == accessRead || need == accessWrite {
				ns, group = requestScope(pattern, rctx, p)
			}
			creds := credentialsOf(r, p, strings.HasPrefix(pattern, prometheusPrefix))
			if strings.HasPrefix(pattern, consoleApp) {
				creds = consoleCredentials(r, creds)
			}
			id, err := a.cfg.Auth.Identify(creds)
			if err == nil {
				err = checkAccess(id, need, ns, group)
			}
			if err != nil {
				if need >= accessWrite {
					a.audit(r, pattern, "", ns, group, denyStatus(err))
				}
				deny(w, r, denyStatus(err), err.Error())
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
			if need < accessWrite {
				next.ServeHTTP(w, r)
				return
			}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			a.audit(r, pattern, id.Name, ns, group, ww.Status())
		})
	}
}

func checkAccess(id *auth.Identity, need access, ns, group string) error {
	ok := true
	switch need {
	case accessAdmin:
		ok = id.Admin()
	case accessRead:
		ok = id.Can(auth.Read, ns, group)
	case accessWrite:
		ok = id.Can(auth.Write, ns, group)
	}
	if !ok {
		return auth.ErrForbidden
	}
	return nil
}

func denyStatus(err error) int {
	if errors.Is(err, auth.ErrTooManyAttempts) {
		return http.StatusTooManyRequests
	}
	return http.StatusForbidden
}

// audit writes one line per write or admin action. It never logs credentials.
func (a *API) audit(r *http.Request, route, user, ns, group string, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	a.auditLog.Info("audit", "user", user, "method", r.Method, "route", route, "namespace", ns, "group", group,
		"status", status, "source", sourceAddr(r), "request_id", middleware.GetReqID(r.Context()))
}

// requestScope is the namespace and group a read or write is about. A route whose path
// names the namespace (Prometheus discovery) covers all of it: group "" asks for a grant
// on the whole namespace.
func requestScope(pattern string, rctx *chi.Context, p params) (namespace, group string) {
	if strings.Contains(pattern, "{"+namespaceParam+"}") {
		return pathParam(rctx, namespaceParam), ""
	}
	return p.namespace(), requestGroup(p)
}

// requestGroup is the group a naming request is about: groupName, else the group of a
// grouped serviceName, else Nacos' default.
func requestGroup(p params) string {
	if g := p.get("groupName"); g != "" {
		return g
	}
	if g, _, ok := strings.Cut(p.get("serviceName"), naming.GroupSeparator); ok && g != "" {
		return g
	}
	return naming.DefaultGroup
}

// credentialsOf reads a request's credentials in Nacos' order: Authorization: Bearer,
// the accessToken parameter, then username and password parameters. Where basic is
// set (Prometheus discovery, where Nacos takes HTTP Basic: what a Prometheus configured
// for Nacos sends, through its basic_auth), Authorization: Basic gives the username and
// password when the parameters do not.
func credentialsOf(r *http.Request, p params, basic bool) auth.Credentials {
	c := auth.Credentials{AccessToken: p.get("accessToken"), Username: p.get("username"), Password: p.get("password"), Source: sourceAddr(r)}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		c.Bearer = strings.TrimSpace(h[7:])
	}
	if c.AccessToken == "" {
		c.AccessToken = r.Header.Get("accessToken")
	}
	if user, password, ok := r.BasicAuth(); basic && ok && c.Username == "" && c.Password == "" {
		c.Username, c.Password = user, password
	}
	return c
}

// sourceAddr is the TCP peer's address, never a header a client could set.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// login answers POST /nacos/v1/auth/login and /nacos/v1/auth/users/login as Nacos does.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Auth == nil {
		return naming.Errorf(http.StatusNotImplemented, "auth is not configured on this node")
	}
	p, err := readParams(r)
	if err != nil {
		return err
	}
	tok, err := a.cfg.Auth.Login(sourceAddr(r), p.get("username"), p.get("password"))
	switch {
	case errors.Is(err, auth.ErrNoKey):
		return naming.Unavailable(err.Error())
	case err != nil:
		writeText(w, denyStatus(err), err.Error())
		return nil
	}
	w.Header().Set("Authorization", "Bearer "+tok.AccessToken)
	return writeJSON(w, map[string]any{
		"accessToken": tok.AccessToken,
		"tokenTtl":    int64(tok.TTL / time.Second),
		"globalAdmin": tok.GlobalAdmin,
		"username":    tok.Username,
	})
}
