package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// TestStoreFileMetrics: /metrics carries fsm.db's and raft.db's freelist and file size,
// and the sizes are those of the files on disk (R11 reads them to see churn reuse pages).
func TestStoreFileMetrics(t *testing.T) {
	cfg := servertest.Config(t)
	srv := servertest.New(t, cfg)
	srv.Start()
	servertest.WaitReady(t, srv)
	c := newClient(t)
	base := "http://" + srv.HTTPAddr() + "/nacos/v1/ns/instance"
	for port := 1; port <= 50; port++ {
		q := "?serviceName=m&ip=127.0.0.1&ephemeral=false&port=" + strconv.Itoa(port)
		if got := c.do(t, http.MethodPost, base+q); got != "ok" {
			t.Fatalf("register answered %q", got)
		}
		if got := c.do(t, http.MethodDelete, base+q); got != "ok" {
			t.Fatalf("deregister answered %q", got)
		}
	}
	files := map[string]string{
		"fsm":  filepath.Join(cfg.DataDir, "fsm.db"),
		"raft": filepath.Join(cfg.DataDir, "raft", "raft.db"),
	}
	// fsm.db commits in batches (100 ms), so its file settles shortly after the writes.
	eventually(t, 10*time.Second, func() (bool, string) {
		m := scrape(t, srv)
		for db, path := range files {
			prefix := "roster_" + db + "_db_"
			pages, okPages := m[prefix+"freelist_pages"]
			free, okFree := m[prefix+"free_bytes"]
			size, okSize := m[prefix+"file_bytes"]
			if !okPages || !okFree || !okSize {
				return false, prefix + "* gauges missing from /metrics"
			}
			fi, err := os.Stat(path)
			if err != nil {
				return false, err.Error()
			}
			if size != float64(fi.Size()) {
				return false, fmt.Sprintf("%s file_bytes %v, file on disk %d", db, size, fi.Size())
			}
			// Fifty registrations and deletions free pages; bbolt reuses them, it does
			// not give them back, so some are always on the list afterwards.
			if pages <= 0 || free != pages*float64(os.Getpagesize()) || free >= size {
				return false, fmt.Sprintf("%s freelist %v pages, %v free bytes of %v", db, pages, free, size)
			}
		}
		return true, ""
	})
}

// scrape reads every unlabelled sample of /metrics.
func scrape(t *testing.T, srv *server.Server) map[string]float64 {
	t.Helper()
	_, body := v1Call(t, srv, v1Request{"GET", "/metrics", nil})
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[name] = f
		}
	}
	return out
}
