package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/roster-registry/roster/naming"
)

// beatPath is the route of Nacos 1.x client beats: the most frequent request a
// registry gets (one per instance every 5 s).
const beatPath = "/nacos/v1/ns/instance/beat"

// fastBeat serves v1 beats ahead of the routing and the other middlewares when nothing
// but parsing, the touch and the answer is asked of them: client auth off, the node
// ready, no consistency header. The answer is the routed one's byte for byte, and the
// request is counted under the same route in the metrics; what is skipped is the
// router's walks, the per-request middleware allocations and the request id, which is
// made only if the request fails. Everything else goes on to next.
func (a *API) fastBeat(next http.Handler) http.Handler {
	beat := a.beat(apiV1)
	okRequests := a.metrics.requests.WithLabelValues(beatPath, http.MethodPut, "200")
	latency := a.metrics.latency.WithLabelValues(beatPath, http.MethodPut)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != beatPath || r.URL.RawPath != "" ||
			a.authOn() || !a.cfg.Ready() || wantsConsistent(r) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		a.serveFastBeat(sw, r, beat)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		if status == http.StatusOK {
			okRequests.Inc()
		} else {
			a.metrics.requests.WithLabelValues(beatPath, http.MethodPut, strconv.Itoa(status)).Inc()
		}
		latency.Observe(elapsed.Seconds())
		if a.log.Enabled(r.Context(), slog.LevelDebug) {
			a.log.Debug("request", "method", r.Method, "route", beatPath, "status", status, "duration", elapsed)
		}
	})
}

// serveFastBeat is the routed chain's work for one beat: Recoverer's recovery,
// limitBody's bound, and the handler with the v1 error table.
func (a *API) serveFastBeat(w http.ResponseWriter, r *http.Request, beat handlerFunc) {
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			a.log.Error("panic serving a beat", "panic", fmt.Sprint(rec))
			w.WriteHeader(http.StatusInternalServerError)
		}
	}()
	limit := a.bodyLimit(r)
	if r.ContentLength > limit {
		a.writeError(w, r, &http.MaxBytesError{Limit: limit})
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	err := beat(w, r)
	if err == nil {
		return
	}
	var ne *naming.Error
	var tooBig *http.MaxBytesError
	if !errors.As(err, &ne) && !errors.As(err, &tooBig) {
		// An internal failure is logged and answered with a request id, as routed.
		id := r.Header.Get(middleware.RequestIDHeader)
		if id == "" {
			id = fmt.Sprintf("beat-%06d", middleware.NextRequestID())
		}
		r = r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id))
	}
	a.writeError(w, r, err)
}

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}
