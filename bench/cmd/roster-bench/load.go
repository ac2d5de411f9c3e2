package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrorSamples is how many distinct failures a result quotes.
const maxErrorSamples = 5

// loadResult is the outcome of one batch of requests.
type loadResult struct {
	OK          int            `json:"ok"`
	Errors      int            `json:"errors"`
	Seconds     float64        `json:"seconds"`
	Rate        float64        `json:"per_second"` // successful requests per second
	Latency     latencySummary `json:"latency"`    // of successful requests
	FirstErrors []string       `json:"first_errors,omitempty"`

	samples latencies // every successful request's latency, for combine
}

// combine adds up the results of several batches (rounds of one measurement).
func combine(parts ...loadResult) loadResult {
	var out loadResult
	var all []latencies
	for _, p := range parts {
		out.OK += p.OK
		out.Errors += p.Errors
		out.Seconds += p.Seconds
		out.FirstErrors = append(out.FirstErrors, p.FirstErrors...)
		all = append(all, p.samples)
	}
	out.FirstErrors = firstN(out.FirstErrors)
	out.samples = merge(all)
	out.Latency = out.samples.summarize()
	if out.Seconds > 0 {
		out.Rate = float64(out.OK) / out.Seconds
	}
	return out
}

// errorLog keeps a count and the first few messages of failures.
type errorLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < maxErrorSamples {
		e.first = append(e.first, err.Error())
	}
}

func (e *errorLog) snapshot() (int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, append([]string(nil), e.first...)
}

// runN calls op once for each i in [0, n) from conc workers. It stops early when ctx
// ends; requests already sent finish (each is bounded by requestTimeout).
func (b *bench) runN(ctx context.Context, label string, n, conc int, op func(ctx context.Context, i int) error) loadResult {
	var next atomic.Int64
	return b.runWorkers(ctx, label, n, conc, func() (int, bool) {
		i := int(next.Add(1) - 1)
		return i, i < n && ctx.Err() == nil
	}, op)
}

// runFor keeps conc workers calling op with increasing i, from first on, until d has
// passed. Requests in flight at the end finish and count; the rate divides by the real
// elapsed time.
func (b *bench) runFor(ctx context.Context, label string, d time.Duration, conc, first int, op func(ctx context.Context, i int) error) loadResult {
	var next atomic.Int64
	next.Store(int64(first))
	deadline := time.Now().Add(d)
	return b.runWorkers(ctx, label, 0, conc, func() (int, bool) {
		return int(next.Add(1) - 1), time.Now().Before(deadline) && ctx.Err() == nil
	}, op)
}

func (b *bench) runWorkers(ctx context.Context, label string, total, conc int, next func() (int, bool), op func(ctx context.Context, i int) error) loadResult {
	var (
		errs  errorLog
		done  atomic.Int64
		wg    sync.WaitGroup
		parts = make([]latencies, conc)
	)
	// Requests are not cancelled by ctx mid-flight: an interrupted request would count
	// as a server error. ctx only stops new ones.
	reqCtx := context.WithoutCancel(ctx)
	stopProgress := b.progress(label, total, &done)
	t0 := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := next()
				if !ok {
					return
				}
				start := time.Now()
				if err := op(reqCtx, i); err != nil {
					errs.add(err)
					continue
				}
				parts[w].add(time.Since(start))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	stopProgress()
	lat := merge(parts)
	nerr, first := errs.snapshot()
	return loadResult{
		OK:          len(lat),
		Errors:      nerr,
		Seconds:     elapsed.Seconds(),
		Rate:        float64(len(lat)) / elapsed.Seconds(),
		Latency:     lat.summarize(),
		FirstErrors: first,
		samples:     lat,
	}
}

// progress prints a line to the progress writer every progressEvery while a long
// batch runs, and returns the function that stops it.
func (b *bench) progress(label string, total int, done *atomic.Int64) func() {
	if label == "" {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t0 := time.Now()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				rate := float64(n) / time.Since(t0).Seconds()
				if total > 0 {
					b.logf("%s: %d/%d (%.0f/s)", label, n, total, rate)
				} else {
					b.logf("%s: %d (%.0f/s)", label, n, rate)
				}
			}
		}
	}()
	return func() { close(stop); <-finished }
}
