package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the node's Prometheus registry: request counts and latencies by route,
// instance and service counts by kind, Raft state, and push counters. Gauges read the
// stores at scrape time, so nothing is kept in step by hand.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(a *API) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "roster_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})

	counts := func(pick func(c countsView) float64) func() float64 {
		return func() float64 {
			c, err := a.reg.Counts()
			if err != nil {
				return 0
			}
			return pick(countsView{c.PersistentInstances, c.EphemeralInstances, c.PersistentServices, c.EphemeralServices})
		}
	}
	instances := func(kind string, f func(c countsView) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_instances", Help: "Registered instances by kind.", ConstLabels: prometheus.Labels{"kind": kind},
		}, counts(f))
	}
	services := func(kind string, f func(c countsView) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roster_services", Help: "Services by kind.", ConstLabels: prometheus.Labels{"kind": kind},
		}, counts(f))
	}
	raftGauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	pushCounter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	p := a.reg.Pusher()
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency,
		instances("persistent", func(c countsView) float64 { return float64(c.persistentInstances) }),
		instances("ephemeral", func(c countsView) float64 { return float64(c.ephemeralInstances) }),
		services("persistent", func(c countsView) float64 { return float64(c.persistentServices) }),
		services("ephemeral", func(c countsView) float64 { return float64(c.ephemeralServices) }),
		raftGauge("roster_raft_is_leader", "1 when this node is the Raft leader.", func() float64 {
			if a.reg.IsLeader() {
				return 1
			}
			return 0
		}),
		raftGauge("roster_raft_term", "Current Raft term.", func() float64 { return float64(a.reg.RaftStats().Term) }),
		raftGauge("roster_raft_commit_index", "Raft commit index.", func() float64 { return float64(a.reg.RaftStats().CommitIndex) }),
		raftGauge("roster_raft_applied_index", "Raft applied index.", func() float64 { return float64(a.reg.RaftStats().AppliedIndex) }),
		raftGauge("roster_ready", "1 when the node serves traffic.", func() float64 {
			if a.cfg.Ready() {
				return 1
			}
			return 0
		}),
		raftGauge("roster_auth_enabled", "1 when requests are authenticated and authorized; 0 when every client is let in.", func() float64 {
			if a.authOn() {
				return 1
			}
			return 0
		}),
		pushCounter("roster_udp_pushes_total", "UDP pushes sent to 1.x subscribers.", func() uint64 { return p.Stats().Pushes }),
		pushCounter("roster_udp_push_encodes_total", "UDP push packets built: one per change and clusters filter, shared by its subscribers.", func() uint64 { return p.Stats().Encodes }),
		pushCounter("roster_udp_push_acks_total", "UDP push acks received.", func() uint64 { return p.Stats().Acks }),
		pushCounter("roster_udp_push_resends_total", "UDP pushes resent after a missing ack.", func() uint64 { return p.Stats().Resends }),
		pushCounter("roster_udp_push_failures_total", "UDP pushes that failed or were dropped.", func() uint64 { return p.Stats().Failures }),
	)
	m.reg.MustRegister(a.cfg.ExtraCollectors...)
	return m
}

type countsView struct {
	persistentInstances, ephemeralInstances, persistentServices, ephemeralServices int
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// instrument records every request by its chi route pattern (never the raw path, so
// tokens in query strings and unbounded paths never become labels).
func (a *API) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		a.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		a.metrics.latency.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		a.log.Debug("request", "request_id", middleware.GetReqID(r.Context()), "method", r.Method,
			"route", route, "status", status, "duration", elapsed)
	})
}
