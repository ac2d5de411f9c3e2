package api

import (
	"cmp"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// Prometheus HTTP service discovery, on Nacos' paths and in its shape (Nacos' prometheus
// module: ApiConstants, PrometheusController, PrometheusUtils). Prometheus'
// http_sd_configs polls one of these URLs and scrapes what it lists:
//
//	/nacos/prometheus                                   every namespace
//	/nacos/prometheus/namespaceId/{ns}                  one namespace, every group
//	/nacos/prometheus/namespaceId/{ns}/service/{name}   the services of that name, every group
//
// The answer is one target group per instance, in the http_sd format:
// {"targets":["ip:port"],"labels":{"__meta_clusterName":cluster, <metadata>}}. Nacos
// writes no namespace, group or service label; metadata keys become labels with '.' and
// '-' turned into '_', since Prometheus refuses the whole answer over one invalid label
// name. Only healthy, enabled instances are listed: a target Prometheus should scrape.
// An unknown namespace or service answers [].

const (
	prometheusPrefix = "/nacos/prometheus"
	// clusterNameLabel carries the instance's cluster. Prometheus drops labels that
	// start with "__" after relabelling, so it is seen in discoveredLabels and can be
	// kept with a relabel rule.
	clusterNameLabel = "__meta_clusterName"
	// namespaceParam is the path parameter of the per-namespace routes; the authorize
	// middleware checks the caller's read of that namespace as a whole.
	namespaceParam = "namespaceId"
)

// httpSDGroup is one entry of Prometheus' http_sd answer.
type httpSDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// prometheusRoutes are mounted under /nacos. They are reads of the registry like
// /nacos/v1/ns: refused while the node starts (Prometheus keeps its last targets over
// a failed refresh) and linearizable on request.
func (a *API) prometheusRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(a.requireReady)
		r.Use(a.consistentReads)
		r.Get("/prometheus", a.wrap(a.prometheusAll))
		r.Get("/prometheus/namespaceId/{"+namespaceParam+"}", a.wrap(a.prometheusNamespace))
		r.Get("/prometheus/namespaceId/{"+namespaceParam+"}/service/{service}", a.wrap(a.prometheusService))
	})
}

// prometheusAll lists every namespace's instances that the caller may read: Nacos asks
// only for an authenticated user here, and Roster's grants decide what that user sees.
func (a *API) prometheusAll(w http.ResponseWriter, r *http.Request) error {
	return a.writeTargets(w, r, "", func(k naming.ServiceKey) bool { return a.mayRead(r, k.Namespace, k.Group) })
}

func (a *API) prometheusNamespace(w http.ResponseWriter, r *http.Request) error {
	ns := pathParam(chi.RouteContext(r.Context()), namespaceParam)
	if ns == "" {
		return writeJSON(w, []httpSDGroup{})
	}
	return a.writeTargets(w, r, ns, func(naming.ServiceKey) bool { return true })
}

// prometheusService matches the plain service name in every group of the namespace, as
// Nacos compares Service.getName(); a grouped name (G@@S) matches nothing.
func (a *API) prometheusService(w http.ResponseWriter, r *http.Request) error {
	rctx := chi.RouteContext(r.Context())
	ns, name := pathParam(rctx, namespaceParam), pathParam(rctx, "service")
	if ns == "" {
		return writeJSON(w, []httpSDGroup{})
	}
	return a.writeTargets(w, r, ns, func(k naming.ServiceKey) bool { return k.Name == name })
}

// writeTargets answers the healthy, enabled instances of the services of namespace
// ("" = every namespace) that keep accepts, one target group each, ordered by cluster
// (Nacos groups the instances by cluster name), then service and address, so that
// repeated polls answer the same bytes for the same state.
func (a *API) writeTargets(w http.ResponseWriter, r *http.Request, namespace string, keep func(naming.ServiceKey) bool) error {
	keys, err := a.reg.Services(namespace)
	if err != nil {
		return err
	}
	type target struct {
		svc  naming.ServiceKey
		inst *naming.Instance
	}
	var found []target
	for _, k := range keys {
		if !keep(k) {
			continue
		}
		info, err := a.reg.List(r.Context(), registry.Query{Service: k, HealthyOnly: true})
		if err != nil {
			return err
		}
		for _, inst := range info.Hosts {
			found = append(found, target{k, inst})
		}
	}
	slices.SortFunc(found, func(x, y target) int {
		return cmp.Or(
			cmp.Compare(x.inst.ClusterName, y.inst.ClusterName),
			cmp.Compare(x.svc.Namespace, y.svc.Namespace),
			cmp.Compare(x.svc.Group, y.svc.Group),
			cmp.Compare(x.svc.Name, y.svc.Name),
			cmp.Compare(x.inst.IP, y.inst.IP),
			cmp.Compare(x.inst.Port, y.inst.Port),
		)
	})
	groups := make([]httpSDGroup, 0, len(found))
	for _, t := range found {
		groups = append(groups, httpSDGroup{
			Targets: []string{net.JoinHostPort(t.inst.IP, strconv.Itoa(t.inst.Port))},
			Labels:  prometheusLabels(t.inst),
		})
	}
	return writeJSON(w, groups)
}

var labelNameReplacer = strings.NewReplacer(".", "_", "-", "_")

// prometheusLabels are an instance's labels: its cluster, then its metadata with '.'
// and '-' in keys turned into '_' (a metadata key that becomes __meta_clusterName
// replaces the cluster, as in Nacos, which writes metadata last). Where two keys become
// one name, Nacos fails the whole request; here the key already spelled that way wins,
// else the smallest key, so the answer never depends on map order.
func prometheusLabels(inst *naming.Instance) map[string]string {
	labels := map[string]string{clusterNameLabel: inst.ClusterName}
	from := map[string]string{}
	for key, value := range inst.Metadata {
		name := labelNameReplacer.Replace(key)
		if prev, taken := from[name]; taken && (prev == name || key != name && prev < key) {
			continue
		}
		labels[name], from[name] = value, key
	}
	return labels
}

// pathParam is a path parameter as the router matched it, unescaped: chi matches the
// escaped path when there is one, and the authorize middleware and the handlers must
// read the same namespace.
func pathParam(rctx *chi.Context, name string) string {
	if rctx == nil {
		return ""
	}
	v := rctx.URLParam(name)
	if u, err := url.PathUnescape(v); err == nil {
		v = u
	}
	return strings.TrimSpace(v)
}

// routePath is the path the router matches: chi uses the escaped form when the URL has
// one, so the authorize middleware must find the route from the same string.
func routePath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}
