// Package api serves Roster's HTTP front on chi: the Nacos v1 naming endpoints that
// unchanged Nacos clients call and the Open API v2 (/nacos/v2: naming, clients, core
// cluster, console namespace and health), Nacos login, the cluster and console views
// they probe, Roster's own access-control (/roster/v1/acl), Raft operator
// (/roster/v1/operator) and snapshot (/roster/v1/snapshot) routes, Prometheus' HTTP
// service discovery on Nacos' paths (/nacos/prometheus, prometheus.go), and /healthz,
// /readyz and /metrics. It only translates: every handler calls the registry, which decides
// where a write goes and forwards it; the member-to-member routes are mounted from the
// registry too.
//
// An endpoint that both versions have is one handler: it parses and calls the registry
// once, and its version (version.go) writes the answer, bare in v1, in Nacos' Result
// envelope in v2. Handlers return an error; one table per version turns it into the
// answer: v1 Nacos' status and text (naming.Error), v2 the status with the error's v2
// code in the envelope; both answer 413 for an oversized body and a generic 500 whose
// detail is logged once with the request id.
package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// Config holds the HTTP front's settings.
type Config struct {
	// MaxBody bounds every request body (bytes); larger bodies get 413.
	MaxBody int64
	// NodeID and HTTPAddr describe this node in the cluster views.
	NodeID   string
	HTTPAddr string
	Version  string
	Logger   *slog.Logger
	// Ready reports whether the node serves traffic (leader known, log replayed).
	Ready func() bool
	// ExtraCollectors are registered in the node's Prometheus registry beside the
	// HTTP front's own (the gRPC front's connection and push metrics).
	ExtraCollectors []prometheus.Collector
	// MaxSnapshot bounds an uploaded snapshot (PUT /roster/v1/snapshot); larger ones get
	// 413. Default DefaultMaxSnapshot.
	MaxSnapshot int64
	// SpoolDir holds an uploaded snapshot while it is verified; default os.TempDir().
	SpoolDir string
	// Auth checks credentials and permissions; nil or disabled lets every request in
	// (login and ACL management still need it).
	Auth *auth.Authority
	// AuditLogger receives one line per write and admin action; default Logger.
	AuditLogger *slog.Logger
	// Console serves the web console's files under /console/ (the console package);
	// nil leaves /, /console and /console/ unrouted.
	Console http.Handler
}

// API is the HTTP front of one node.
type API struct {
	cfg     Config
	log     *slog.Logger
	reg     *registry.Registry
	metrics *metrics
	// auditLog gets the audit lines (auth.go).
	auditLog *slog.Logger

	restoring sync.Mutex // one snapshot restore at a time (snapshot.go)
}

// New builds the handler tree. Every route calls reg: the registry decides where a
// write goes and forwards it; this package only translates HTTP.
func New(cfg Config, reg *registry.Registry) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.MaxSnapshot <= 0 {
		cfg.MaxSnapshot = DefaultMaxSnapshot
	}
	if cfg.AuditLogger == nil {
		cfg.AuditLogger = cfg.Logger
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "api"), reg: reg, auditLog: cfg.AuditLogger.With("component", "audit")}
	a.metrics = newMetrics(a)
	return a.routes()
}

// handlerFunc is a handler that returns its failure to the one error writer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one row of a route table: a method, a path and what serves it.
type route struct {
	method  string
	path    string
	handler handlerFunc
}

// mount adds a table of routes, each answering its handler's error with writeError.
func (a *API) mount(r chi.Router, routes ...route) {
	for _, rt := range routes {
		r.Method(rt.method, rt.path, a.wrap(rt.handler))
	}
}

func (a *API) wrap(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	}
}

func (a *API) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.fastBeat) // before everything: it serves most beats by itself
	r.Use(middleware.RequestID)
	r.Use(a.instrument)
	r.Use(middleware.Recoverer)
	r.Use(a.limitBody)
	r.Use(a.authorize(r))

	a.operatorRoutes(r)
	a.webConsoleRoutes(r)
	a.aclRoutes(r)
	a.snapshotRoutes(r)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	r.Get("/readyz", a.readyz)
	r.Handle("/metrics", a.metrics.handler())

	r.Route("/nacos", func(r chi.Router) {
		r.Route("/v1/ns", func(r chi.Router) {
			r.Use(a.requireReady)
			r.Use(a.consistentReads)
			r.NotFound(a.noSuchAPI)
			r.MethodNotAllowed(a.noSuchAPI)
			a.namingRoutes(r)
		})
		r.Route("/v2/ns", func(r chi.Router) {
			r.Use(a.requireReady)
			r.Use(a.consistentReads)
			a.namingRoutesV2(r)
		})
		a.coreAndConsoleRoutesV2(r)
		r.Route("/v3/admin/ns", func(r chi.Router) {
			r.Use(a.requireReady)
			r.Use(a.consistentReads)
			a.adminNamingRoutesV3(r)
		})
		a.coreRoutesV3(r)
		a.namespaceRoutes(r)
		a.consoleRoutes(r)
		a.nacosAuthRoutes(r)
		a.prometheusRoutes(r)
		r.Post("/v1/auth/login", a.wrap(a.login))
		r.Post("/v1/auth/users/login", a.wrap(a.login))
		r.Route("/v1/core/cluster", func(r chi.Router) {
			r.Get("/nodes", a.wrap(a.clusterNodes))
			r.Get("/self", a.wrap(a.clusterSelf))
			r.Get("/health", a.wrap(a.clusterHealth))
		})
		r.Get("/v1/console/health/liveness", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "OK") })
		r.Get("/v1/console/health/readiness", func(w http.ResponseWriter, _ *http.Request) {
			if a.cfg.Ready() {
				writeText(w, http.StatusOK, "OK")
				return
			}
			writeText(w, http.StatusInternalServerError, "naming not in readiness")
		})
	})
	return r
}

// sharedNamingRoutes are the naming endpoints both versions serve with one handler
// each: the handler parses and calls the registry, the version answers.
func (a *API) sharedNamingRoutes(r chi.Router, v *version) {
	r.Post("/instance", a.serve(v, a.registerInstance(v)))
	r.Delete("/instance", a.serve(v, a.deregisterInstance(v)))
	r.Put("/instance", a.serve(v, a.updateInstance(v)))
	r.Get("/instance", a.serve(v, a.getInstance(v)))
	r.Put("/instance/beat", a.serve(v, a.beat(v)))
	r.Get("/instance/list", a.serve(v, a.listInstances(v)))
	r.Put("/instance/metadata/batch", a.serve(v, a.metadataBatch(v, false)))
	r.Delete("/instance/metadata/batch", a.serve(v, a.metadataBatch(v, true)))

	r.Post("/service", a.serve(v, a.createService(v)))
	r.Delete("/service", a.serve(v, a.deleteService(v)))
	r.Put("/service", a.serve(v, a.updateService(v)))
	r.Get("/service", a.serve(v, a.getService(v)))
	r.Get("/service/list", a.serve(v, a.listServices(v)))

	r.Put("/health/instance", a.serve(v, a.setHealth(v)))
	r.Put("/health", a.serve(v, a.setHealth(v)))

	for _, prefix := range []string{"/operator", "/ops"} {
		r.Get(prefix+"/metrics", a.serve(v, a.operatorMetrics(v)))
	}
}

// namingRoutes are /nacos/v1/ns.
func (a *API) namingRoutes(r chi.Router) {
	a.sharedNamingRoutes(r, apiV1)
	r.Patch("/instance", a.serve(apiV1, a.patchInstance(apiV1)))
	r.HandleFunc("/instance/statuses", a.wrap(a.instanceStatuses))
	r.HandleFunc("/service/names", a.wrap(a.serviceNames))
	r.Get("/service/subscribers", a.wrap(a.serviceSubscribers))
	r.Get("/health/checkers", a.serve(apiV1, a.healthCheckers(apiV1)))
	r.Put("/cluster", a.serve(apiV1, a.updateCluster(apiV1)))
	r.Get("/catalog/service", a.wrap(a.catalogService))
	a.consoleNamingRoutes(r)
	r.Get("/raft/leader", a.wrap(a.raftLeader))
	for _, prefix := range []string{"/operator", "/ops"} {
		r.Get(prefix+"/servers", a.wrap(a.operatorServers))
	}
}

// limitBody bounds every request body.
func (a *API) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := a.bodyLimit(r)
		if r.ContentLength > limit {
			a.fail(versionOf(r), w, r, &http.MaxBytesError{Limit: limit})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		next.ServeHTTP(w, r)
	})
}

// requireReady answers Nacos' 503 while the node is starting (TrafficReviseFilter).
func (a *API) requireReady(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Ready() {
			writeText(w, http.StatusServiceUnavailable, "server is STARTINGnow, please try again later!")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) noSuchAPI(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusNotImplemented, "no such api:"+r.Method+":"+r.URL.Path)
}

func (a *API) readyz(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Ready() {
		writeText(w, http.StatusOK, "ok")
		return
	}
	writeText(w, http.StatusServiceUnavailable, "not ready: waiting for a Raft leader and the log replay")
}

// writeError is the v1 front's one table from errors to answers: a *naming.Error is its
// status and Nacos text (the registry translates every cluster and Raft failure into
// one), an oversized body is 413, anything else a logged 500.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ne *naming.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ne):
		writeText(w, ne.Status, ne.Message)
	case errors.As(err, &tooBig):
		writeText(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit))
	default:
		id := middleware.GetReqID(r.Context())
		a.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		writeText(w, http.StatusInternalServerError, "caused: internal error (request id "+id+");")
	}
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := naming.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// member is Nacos' cluster Member as its core/cluster and operator views show it.
type member struct {
	IP            string         `json:"ip"`
	Port          int            `json:"port"`
	State         string         `json:"state"`
	ExtendInfo    map[string]any `json:"extendInfo"`
	Address       string         `json:"address"`
	FailAccessCnt int            `json:"failAccessCnt"`
	Abilities     map[string]any `json:"abilities"`
}

// clusterNodes is GET /nacos/v1/core/cluster/nodes; keyword keeps the members whose
// address contains it.
func (a *API) clusterNodes(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	ms, err := a.members()
	if err != nil {
		return err
	}
	return writeJSON(w, restResult(http.StatusOK, nil, filterMembers(ms, p.get("keyword"))))
}

func (a *API) clusterSelf(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.members()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.ExtendInfo["nodeId"] == a.cfg.NodeID {
			return writeJSON(w, map[string]any{"code": 200, "message": nil, "data": m})
		}
	}
	return writeJSON(w, map[string]any{"code": 200, "message": nil, "data": nil})
}

func (a *API) clusterHealth(w http.ResponseWriter, r *http.Request) error {
	state := "UP"
	if !a.cfg.Ready() {
		state = "STARTING"
	}
	return writeJSON(w, map[string]any{"code": 200, "message": nil, "data": state})
}

func (a *API) operatorServers(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.members()
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"servers": ms})
}
