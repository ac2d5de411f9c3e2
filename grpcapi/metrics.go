package grpcapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gRPC front's Prometheus collectors; cmd/roster registers them in the
// HTTP front's registry (api.Config.ExtraCollectors).
type metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	pushes        prometheus.Counter
	pushFailures  prometheus.Counter
	pushRetries   prometheus.Counter
	pushEncodes   prometheus.Counter
	pushLatency   prometheus.Histogram
	streamGarbage prometheus.Counter
	all           []prometheus.Collector
}

// knownTypes bounds the request type label: anything else is "other".
var knownTypes = map[string]bool{
	"ServerCheckRequest": true, "HealthCheckRequest": true, "InstanceRequest": true,
	"BatchInstanceRequest": true, "PersistentInstanceRequest": true, "ServiceQueryRequest": true,
	"SubscribeServiceRequest": true, "ServiceListRequest": true,
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_grpc_requests_total", Help: "gRPC requests by type and answer (resultCode/errorCode).",
		}, []string{"type", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "roster_grpc_request_duration_seconds", Help: "gRPC request latency by type.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"type"}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_grpc_pushes_total", Help: "NotifySubscriberRequests acked by the client.",
		}),
		pushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_grpc_push_failures_total", Help: "Pushes given up: not acked after a retry, refused, not rendered, or dropped with their connection.",
		}),
		pushRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_grpc_push_retries_total", Help: "Pushes sent again after their ack timed out.",
		}),
		pushEncodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_grpc_push_encodes_total", Help: "NotifySubscriberRequests encoded: one per change and clusters filter, shared by all its subscribers.",
		}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roster_grpc_push_latency_seconds", Help: "From a change of a service to the subscriber's ack of its push.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		streamGarbage: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_grpc_stream_bad_messages_total", Help: "Stream messages that could not be read or were not expected (skipped).",
		}),
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "roster_grpc_connections", Help: "Open gRPC (TCP) connections.",
	}, func() float64 { return float64(s.conns.len()) })
	registered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "roster_grpc_registered_connections", Help: "gRPC connections past ConnectionSetupRequest.",
	}, func() float64 { return float64(s.registered.Load()) })
	subs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "roster_grpc_subscriptions", Help: "Subscriptions held by gRPC connections.",
	}, func() float64 { return float64(s.hub.subscriptions()) })
	m.all = []prometheus.Collector{m.requests, m.latency, m.pushes, m.pushFailures, m.pushRetries, m.pushEncodes, m.pushLatency, m.streamGarbage, open, registered, subs}
	return m
}

func (m *metrics) observeRequest(typ string, rep reply, d time.Duration) {
	if !knownTypes[typ] {
		typ = "other"
	}
	code := "200"
	if rep.typ == "ErrorResponse" || !jsonSuccess(rep.body) {
		code = errorCodeOf(rep.body)
	}
	m.requests.WithLabelValues(typ, code).Inc()
	m.latency.WithLabelValues(typ).Observe(d.Seconds())
}

// Collectors are the collectors to register in the node's Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector { return s.metrics.all }

// jsonSuccess reports whether a response body says success; bodies are ours, so a
// prefix check of the head suffices.
func jsonSuccess(body []byte) bool {
	return len(body) > 16 && string(body[:17]) == `{"resultCode":200`
}

// errorCodeOf extracts errorCode from a response body written by this package.
func errorCodeOf(body []byte) string {
	const key = `"errorCode":`
	s := string(body)
	for i := 0; i+len(key) < len(s); i++ {
		if s[i:i+len(key)] == key {
			j := i + len(key)
			k := j
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if n, err := strconv.Atoi(s[j:k]); err == nil {
				return strconv.Itoa(n)
			}
		}
	}
	return "500"
}
