package healthcheck

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a target of this member's share is not probed, as the skipped metric labels
// them.
const (
	skipCIDR    = "cidr"    // outside Config.AllowedCIDRs
	skipNotIP   = "not_ip"  // its ip is not a literal address
	skipUnknown = "checker" // a checker type this package does not know
)

// metrics are the prober's Prometheus collectors; the server registers them with the
// HTTP front's registry.
type metrics struct {
	probes     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	flips      *prometheus.CounterVec
	flipErrors prometheus.Counter
	skipped    *prometheus.CounterVec
	owned      prometheus.Gauge
	rounds     prometheus.Counter
	roundTime  prometheus.Histogram
	all        []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_healthcheck_probes_total", Help: "Health-check probes by checker type and result (success or failure).",
		}, []string{"type", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "roster_healthcheck_probe_duration_seconds", Help: "Health-check probe latency by checker type.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"type"}),
		flips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_healthcheck_flips_total", Help: "Health flips this member recorded, by the new health.",
		}, []string{"healthy"}),
		flipErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_healthcheck_flip_errors_total", Help: "Flips that could not be recorded (retried on the next repeated result).",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_healthcheck_skipped_total", Help: "Probes of this member's share not made, by reason: cidr (outside --health-check-cidrs), not_ip (not a literal IP), checker (unknown type).",
		}, []string{"reason"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "roster_healthcheck_owned_targets", Help: "Instances with a checker other than NONE in this member's share, as of the last round.",
		}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_healthcheck_rounds_total", Help: "Health-check rounds run by this member.",
		}),
		roundTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "roster_healthcheck_round_duration_seconds", Help: "Time to probe this member's whole share once; a round longer than the interval delays detection.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	m.all = []prometheus.Collector{m.probes, m.latency, m.flips, m.flipErrors, m.skipped, m.owned, m.rounds, m.roundTime}
	return m
}

func (m *metrics) flipped(healthy bool) { m.flips.WithLabelValues(strconv.FormatBool(healthy)).Inc() }
