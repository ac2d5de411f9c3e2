package e2e

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecondProcessOnSameDataDirFails: a second roster on a data dir that a running
// node holds exits at once, non-zero, with one line that says the dir is in use, and
// the running node keeps serving.
func TestSecondProcessOnSameDataDirFails(t *testing.T) {
	s := StartServer(t)
	bin, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, "server", "--health-check-cidrs", "127.0.0.0/8",
		"--http-addr", "127.0.0.1:"+strconv.Itoa(freeHTTPPort(t)),
		"--raft-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--data-dir", s.DataDir).CombinedOutput()
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("second process on %s started; output:\n%s", s.DataDir, out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1; output:\n%s", err, out)
	}
	text := strings.TrimSpace(string(out))
	if !strings.Contains(text, "is in use by another roster process") || strings.Contains(text, "\n") {
		t.Fatalf("want one line saying the data dir is in use, got:\n%s", text)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("took %v to refuse; the lock should be detected within the 1 s bbolt open timeout", elapsed)
	}
	c := rosterClient(t, s)
	if _, err := c.Metrics(ctxT(t)); err != nil {
		t.Fatalf("the running node stopped serving: %v", err)
	}
}
