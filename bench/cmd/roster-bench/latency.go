package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies collects request durations. At the bench's sizes (at most a few million
// samples) keeping every sample and sorting gives exact percentiles cheaply.
type latencies []time.Duration

func (l *latencies) add(d time.Duration) { *l = append(*l, d) }

// merge concatenates per-worker collections.
func merge(parts []latencies) latencies {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	all := make(latencies, 0, n)
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// latencySummary is the figures printed and written to JSON, in milliseconds.
type latencySummary struct {
	N      int     `json:"n"`
	MinMS  float64 `json:"min_ms"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// summarize sorts l in place and reads nearest-rank percentiles.
func (l latencies) summarize() latencySummary {
	if len(l) == 0 {
		return latencySummary{}
	}
	slices.Sort(l)
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return latencySummary{
		N:      len(l),
		MinMS:  ms(l[0]),
		MeanMS: ms(sum / time.Duration(len(l))),
		P50MS:  ms(l.percentile(50)),
		P90MS:  ms(l.percentile(90)),
		P99MS:  ms(l.percentile(99)),
		P999MS: ms(l.percentile(99.9)),
		MaxMS:  ms(l[len(l)-1]),
	}
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted samples: the
// smallest sample with at least p% of the samples at or below it.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	// The small tolerance keeps float error (99.9/100*1000 = 999.0000000000001) from
	// moving the rank up by one.
	rank := int(math.Ceil(p*float64(len(l))/100 - 1e-9))
	rank = min(max(rank, 1), len(l))
	return l[rank-1]
}

func (s latencySummary) String() string {
	if s.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s  max %s  (mean %s, n=%d)",
		fmtMS(s.P50MS), fmtMS(s.P99MS), fmtMS(s.P999MS), fmtMS(s.MaxMS), fmtMS(s.MeanMS), s.N)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.3fms", v)
	}
}
