package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	rosterBin string
	buildErr  error
)

// roster builds the server from the repository root once per test run.
func roster(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "compat-driver-test-")
		if err != nil {
			buildErr = err
			return
		}
		rosterBin = filepath.Join(dir, "roster")
		cmd := exec.Command("go", "build", "-o", rosterBin, "./cmd/roster")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			rosterBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/roster: %v\n%s", buildErr, rosterBin)
	}
	return rosterBin
}

func newTestRunner(t *testing.T, timeout time.Duration) *runner {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return &runner{root: root, roster: roster(t), logDir: t.TempDir(), timeout: timeout, ports: newPorts(), runID: "test"}
}

// script writes a fake client program.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "client.sh")
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func fake(argv ...string) Client {
	return Client{Name: "fake", Language: "sh", Version: "table text", Namespace: "public", Group: "DEFAULT_GROUP", Argv: argv}
}

func TestNotBuilt(t *testing.T) {
	d := &runner{root: t.TempDir(), logDir: t.TempDir(), timeout: time.Second, ports: newPorts()}
	r := d.run(context.Background(), fake("compat/nothing/bin/x"))
	for _, name := range cells {
		c := r.Cells[name]
		if !c.Done || c.OK || !strings.Contains(c.Detail, "not built: run make compat") {
			t.Errorf("%s = %+v, want a not-built failure", name, c)
		}
	}
}

func TestEarlyExitAndFailedKeepalive(t *testing.T) {
	d := newTestRunner(t, 60*time.Second)
	prog := script(t, `
echo '{"version":"fake 1.0"}'
echo "a log line, not JSON"
echo '{"step":"register_ephemeral","ok":true,"ms":5,"detail":"x"}'
echo '{"wait":"keepalive"}'
read ans; echo "answer $ans" >&2
echo '{"step":"register_persistent","ok":false,"ms":1,"detail":"nope"}'
exit 3
`)
	r := d.run(context.Background(), fake(prog))
	if r.Version != "fake 1.0" {
		t.Errorf("version %q, want the reported one", r.Version)
	}
	want := map[string]string{
		"register_ephemeral":  "pass 5 ms",
		"keepalive":           "FAIL: E not listed",
		"register_persistent": "FAIL: nope",
		"list_select":         "FAIL: client exited early (exit status 3)",
		"stop":                "FAIL: client exited early (exit status 3)",
	}
	for name, prefix := range want {
		if got := cellText(r.Cells[name], false); !strings.HasPrefix(got, prefix) {
			t.Errorf("%s = %q, want %q…", name, got, prefix)
		}
	}
	b, err := os.ReadFile(filepath.Join(d.logDir, "fake.stderr.log"))
	if err != nil || !strings.Contains(string(b), `answer {"detail":"E not listed`) {
		t.Errorf("the client's stderr log %q (%v) lacks the driver's answer", b, err)
	}
}

func TestBadJSON(t *testing.T) {
	d := newTestRunner(t, 60*time.Second)
	prog := script(t, `
echo '{"step":"register_ephemeral","ok":true,"ms":5}'
echo '{"step": oops'
read ans
`)
	r := d.run(context.Background(), fake(prog))
	if got := cellText(r.Cells["register_ephemeral"], false); got != "pass 5 ms" {
		t.Errorf("register_ephemeral = %q", got)
	}
	if got := cellText(r.Cells["keepalive"], false); !strings.HasPrefix(got, "FAIL: bad JSON from client") {
		t.Errorf("keepalive = %q, want a bad-JSON failure", got)
	}
}

func TestTimeout(t *testing.T) {
	d := newTestRunner(t, 3*time.Second)
	prog := script(t, `
echo '{"step":"register_ephemeral","ok":true,"ms":5}'
read ans
`)
	start := time.Now()
	r := d.run(context.Background(), fake(prog))
	if got := cellText(r.Cells["update"], false); got != "FAIL: timed out after 3s" {
		t.Errorf("update = %q, want a timeout", got)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("run took %v after a 3s timeout", el)
	}
}

func TestMarkdownLayout(t *testing.T) {
	r1 := newResult(clients[1], cells)
	r0 := newResult(clients[0], cells)
	for _, name := range cells {
		r0.set(name, true, 7, "d|x")
	}
	r1.failRest("client exited early")
	a0 := newResult(clients[0], authCells)
	for _, name := range authCells {
		a0.set(name, true, 7, "d|x")
	}
	a0.set("refused", true, 900, "E never listed (5 polls); client reported: user not found!")
	a1 := newResult(clients[1], authCells)
	a1.failRest("ACL set-up: boom")
	rep := Report{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Roster: "v1", Machine: "linux/amd64, 2 cores",
		Matrices: []Matrix{{Results: []*Result{r0, r1}}, {Auth: true, Results: []*Result{a0, a1}}},
		Wall:     61 * time.Second, Parallel: 3, Subset: true, AllCount: len(clients), TimeoutPC: 150 * time.Second}
	md := rep.Markdown()
	if md != rep.Markdown() {
		t.Fatal("Markdown is not deterministic")
	}
	for _, want := range []string{
		"- Date: 2026-01-02 03:04 UTC", "- Roster: v1",
		"- auth off: 1 of 2 clients passed every cell", "- auth on (credentials in the client's config): 1 of 2 clients passed every cell",
		"- Total wall time: 1m1s",
		"\n## auth off\n", "\n## auth on (credentials in the client's config)\n",
		"| stop |\n|---|", "| stop | refused |\n|---|",
		"| go-v1 | Go | nacos-sdk-go v1.1.4 | pass 7 ms | pass 7 ms |",
		`pass 7 ms, d\|x |`,
		"| go-v2 | Go | nacos-sdk-go v2.x | FAIL: client exited early |",
		"| pass 900 ms, E never listed (5 polls); client reported: user not found! |\n",
		"| go-v2 | Go | nacos-sdk-go v2.x | FAIL: ACL set-up: boom |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, md)
		}
	}
	off, on := strings.Index(md, "## auth off"), strings.Index(md, "## auth on")
	if off < 0 || on < off {
		t.Error("the auth-off table does not come first")
	}
	if strings.Index(md, "| go-v1 |") > strings.Index(md, "| go-v2 |") {
		t.Error("rows are not in table order")
	}
	if strings.Count(md[:on], "refused |") != 0 {
		t.Error("the auth-off table has a refused column")
	}
}

func TestPortsNeverTwice(t *testing.T) {
	p := newPorts()
	seen := map[int]bool{}
	for range 50 {
		port, err := p.pick(1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []int{port, port + 1000} {
			if seen[q] {
				t.Fatalf("port %d handed out twice", q)
			}
			seen[q] = true
		}
	}
}

func TestSelectClients(t *testing.T) {
	sel, err := selectClients("go-v2, go-v1")
	if err != nil || len(sel) != 2 || sel[0].Name != "go-v1" || sel[1].Name != "go-v2" {
		t.Errorf("selectClients = %v, %v; want go-v1, go-v2 in table order", sel, err)
	}
	if _, err := selectClients("go-v3"); err == nil {
		t.Error("an unknown name was accepted")
	}
}
