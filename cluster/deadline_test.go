package cluster

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// answerDeadline bounds the wait for the answer to begin, not the answer's body, and
// leaves requests marked WithoutForwardTimeout alone.
func TestAnswerDeadlineBoundsOnlyTheStartOfTheAnswer(t *testing.T) {
	const timeout = 200 * time.Millisecond
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/late": // answers only after three timeouts
			select {
			case <-time.After(3 * timeout):
			case <-release:
				return
			}
			io.WriteString(w, "late")
		case "/stream": // answers at once, then streams for three timeouts
			w.(http.Flusher).Flush()
			for range 3 {
				time.Sleep(timeout)
				io.WriteString(w, "chunk ")
				w.(http.Flusher).Flush()
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Transport: answerDeadline{next: http.DefaultTransport, timeout: timeout}}
	get := func(ctx context.Context, path string) (string, time.Duration, error) {
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			return "", time.Since(t0), err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), time.Since(t0), err
	}

	_, took, err := get(context.Background(), "/late")
	if !errors.Is(err, errLeaderSilent) {
		t.Fatalf("late answer: err %v, want errLeaderSilent", err)
	}
	if took > timeout+2*time.Second { // scheduling on a loaded machine
		t.Errorf("late answer given up after %v, want about %v", took, timeout)
	}
	if body, _, err := get(context.Background(), "/stream"); err != nil || strings.Count(body, "chunk") != 3 {
		t.Errorf("a stream that began in time: %q, %v; want all 3 chunks", body, err)
	}
	if body, _, err := get(WithoutForwardTimeout(context.Background()), "/late"); err != nil || body != "late" {
		t.Errorf("late answer to an unbounded request: %q, %v; want it", body, err)
	}
}
