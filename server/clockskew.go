package server

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roster-registry/roster/nodeauth"
)

// skewWarner logs a member's clock skew at most every 30 s and counts every request
// that showed one.
type skewWarner struct {
	log     *slog.Logger
	count   atomic.Uint64
	lastLog atomic.Int64
}

func (w *skewWarner) observe(d time.Duration) {
	w.count.Add(1)
	now := time.Now().UnixNano()
	last := w.lastLog.Load()
	if now-last < int64(30*time.Second) || !w.lastLog.CompareAndSwap(last, now) {
		return
	}
	w.log.Warn("a member's clock differs from this node's; node-to-node requests are refused beyond the limit",
		"skew", d.Round(time.Millisecond), "limit", nodeauth.MaxClockSkew, "requests_with_skew", w.count.Load())
}

// collector exports the count, so that a clock step shows on a dashboard as well.
func (w *skewWarner) collector() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "roster_node_clock_skew_requests_total",
		Help: "Authenticated node-to-node requests stamped more than 30 s away from this node's clock.",
	}, func() float64 { return float64(w.count.Load()) })
}
