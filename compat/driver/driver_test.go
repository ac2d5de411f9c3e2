package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

func TestAuthModesAndSchedule(t *testing.T) {
	for v, want := range map[string][]bool{"off": {false}, "on": {true}, "both": {false, true}, "": {false, true}} {
		got, err := authModes(v)
		if err != nil || len(got) != len(want) || got[0] != want[0] {
			t.Errorf("authModes(%q) = %v, %v; want %v", v, got, err, want)
		}
	}
	if _, err := authModes("yes"); err == nil {
		t.Error(`authModes("yes") was accepted`)
	}
	runners := []*runner{{}, {auth: true}}
	jobs := schedule(runners, clients[:2])
	want := []job{{1, 0}, {0, 0}, {1, 1}, {0, 1}}
	if len(jobs) != len(want) {
		t.Fatalf("schedule = %v, want %v", jobs, want)
	}
	for i := range want {
		if jobs[i] != want[i] {
			t.Fatalf("schedule = %v, want %v", jobs, want)
		}
	}
}

func TestNamespaceResource(t *testing.T) {
	for _, c := range clients {
		if got := namespaceResource(c); got != c.Namespace || got == "" {
			t.Errorf("%s: resource %q, want its namespace %q", c.Name, got, c.Namespace)
		}
	}
	if got := namespaceResource(Client{}); got != "public" {
		t.Errorf("the default namespace's resource is %q, want public", got)
	}
}

// boolp is a pointer to b, for messages.
func boolp(b bool) *bool { return &b }

func TestJudgeRefusal(t *testing.T) {
	ctx := context.Background()
	absent := func(context.Context) (instance, error) { return instance{}, nil }
	stderr := filepath.Join(t.TempDir(), "stderr.log")
	if err := os.WriteFile(stderr, []byte("starting\nNacosException: 403 user not found!\nshutting down\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("refused step", func(t *testing.T) {
		ev := make(chan event, 4)
		ev <- event{msg: &message{Version: new(string)}}
		ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(false), Detail: "403 user not found!"}}
		killed := 0
		c, exited := judgeRefusal(ctx, ev, absent, func() { killed++ }, time.Minute, stderr)
		if !c.Done || !c.OK || !strings.Contains(c.Detail, "E never listed") || !strings.HasSuffix(c.Detail, "client reported: 403 user not found!") {
			t.Errorf("cell %+v, want a pass that quotes the client", c)
		}
		if killed != 1 || exited {
			t.Errorf("killed %d times, exited %v; want one kill of a running program", killed, exited)
		}
	})

	t.Run("client claims success, server never lists E", func(t *testing.T) {
		ev := make(chan event, 1)
		ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(true)}}
		c, _ := judgeRefusal(ctx, ev, absent, func() {}, time.Minute, stderr)
		if !c.OK || !strings.Contains(c.Detail, "client reported: register_ephemeral ok") {
			t.Errorf("cell %+v, want a pass judged on the server", c)
		}
	})

	t.Run("E listed", func(t *testing.T) {
		// E appears at the third poll, before the client's step line: the cell fails
		// even though the client says it was refused.
		ev := make(chan event, 1)
		var mu sync.Mutex
		calls := 0
		lookup := func(context.Context) (instance, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 3 {
				ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(false), Detail: "refused"}}
				return instance{present: true, healthy: true}, nil
			}
			return instance{}, nil
		}
		c, _ := judgeRefusal(ctx, ev, lookup, func() {}, time.Minute, stderr)
		if c.OK || !strings.Contains(c.Detail, "E was listed") || !strings.Contains(c.Detail, "client reported: refused") {
			t.Errorf("cell %+v, want a failure: E was listed", c)
		}
	})

	t.Run("E listed only at the last look", func(t *testing.T) {
		ev := make(chan event, 1)
		ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(true)}}
		calls := 0
		lookup := func(context.Context) (instance, error) {
			calls++
			return instance{present: calls > 1}, nil
		}
		c, _ := judgeRefusal(ctx, ev, lookup, func() {}, time.Minute, stderr)
		if c.OK {
			t.Errorf("cell %+v, want a failure: E was listed after the step", c)
		}
	})

	t.Run("server unreadable", func(t *testing.T) {
		ev := make(chan event, 1)
		ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(false), Detail: "x"}}
		broken := func(context.Context) (instance, error) { return instance{}, errors.New("403 token invalid!") }
		c, _ := judgeRefusal(ctx, ev, broken, func() {}, time.Minute, stderr)
		if c.OK || !strings.Contains(c.Detail, "could not read the server's list") || !strings.Contains(c.Detail, "token invalid!") {
			t.Errorf("cell %+v, want a failure: nothing to judge on", c)
		}
	})

	t.Run("exit before any step", func(t *testing.T) {
		ev := make(chan event, 2)
		ev <- event{eof: true}
		ev <- event{exited: &os.ProcessState{}}
		c, exited := judgeRefusal(ctx, ev, absent, func() {}, time.Minute, stderr)
		if !c.OK || !exited || !strings.Contains(c.Detail, "before any step; its log: NacosException: 403 user not found!") {
			t.Errorf("cell %+v (exited %v), want a pass quoting the log", c, exited)
		}
	})

	t.Run("exit overtakes the step line", func(t *testing.T) {
		ev := make(chan event, 3)
		ev <- event{exited: &os.ProcessState{}}
		ev <- event{msg: &message{Step: "register_ephemeral", OK: boolp(false), Detail: "user not found!"}}
		ev <- event{eof: true}
		c, exited := judgeRefusal(ctx, ev, absent, func() {}, time.Minute, stderr)
		if !c.OK || !exited || !strings.HasSuffix(c.Detail, "client reported: user not found!") {
			t.Errorf("cell %+v (exited %v), want the step line's text", c, exited)
		}
	})

	t.Run("no step within the window", func(t *testing.T) {
		ev := make(chan event)
		start := time.Now()
		c, _ := judgeRefusal(ctx, ev, absent, func() {}, 300*time.Millisecond, stderr)
		if !c.OK || !strings.HasSuffix(c.Detail, "client reported no step within 300ms; its log: NacosException: 403 user not found!") {
			t.Errorf("cell %+v, want a pass after the window", c)
		}
		if el := time.Since(start); el < 300*time.Millisecond || el > 10*time.Second {
			t.Errorf("judged after %v, want the 300ms window", el)
		}
	})
}

// authServer starts a fresh server with --auth for a test.
func authServer(t *testing.T) *server {
	t.Helper()
	p := newPorts()
	port, err := p.pick(1000)
	if err != nil {
		t.Fatal(err)
	}
	raft, err := p.pick(0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &server{
		bin: roster(t), port: port, raftPort: raft, dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "server.log"), auth: true, hc: &http.Client{Timeout: 2 * time.Second},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.start(ctx); err != nil {
		b, _ := os.ReadFile(s.logPath)
		t.Fatalf("server: %v\n%s", err, b)
	}
	t.Cleanup(func() { _ = s.stop(syscall.SIGTERM, stopTimeout) })
	return s
}

// register posts an instance as the holder of token and returns the status and body.
func register(t *testing.T, s *server, token, namespace, service, ip string) (int, string) {
	t.Helper()
	form := url.Values{
		"namespaceId": {namespace}, "serviceName": {service}, "groupName": {"DEFAULT_GROUP"},
		"ip": {ip}, "port": {"8080"}, "ephemeral": {"false"}, "accessToken": {token},
	}
	resp, err := http.PostForm(s.url()+"/nacos/v1/ns/instance", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestSetupACL(t *testing.T) {
	s := authServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.lookup(ctx, "compat-ns", "DEFAULT_GROUP", "svc", ephemeralIP, ephemeralPort); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a lookup without a token: %v, want 403 (is --auth on?)", err)
	}
	c := Client{Name: "fake", Namespace: "compat-ns", Group: "DEFAULT_GROUP"}
	a, err := setupACL(ctx, s, c)
	if err != nil {
		t.Fatal(err)
	}
	if a.User != "compat-fake" || a.Password == "" || a.Resource != "compat-ns" {
		t.Fatalf("setup %+v", a)
	}

	// The client's user may write its namespace and nothing else.
	user := &server{port: s.port, hc: s.hc}
	user.setAdmin(a.User, a.Password)
	if err := user.login(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := register(t, s, user.accessToken(), "compat-ns", "svc", ephemeralIP); code != http.StatusOK {
		t.Errorf("registering in the client's namespace: %d %s", code, body)
	}
	if code, body := register(t, s, user.accessToken(), "public", "svc", ephemeralIP); code != http.StatusForbidden {
		t.Errorf("registering in another namespace: %d %s, want 403", code, body)
	}
	if code, body := register(t, s, "", "compat-ns", "svc2", ephemeralIP); code != http.StatusForbidden {
		t.Errorf("registering without a token: %d %s, want 403", code, body)
	}
	// The driver's own polling carries the administrator's token.
	if e, err := s.lookup(ctx, "compat-ns", "DEFAULT_GROUP", "svc", ephemeralIP, ephemeralPort); err != nil || !e.present {
		t.Fatalf("the driver's lookup after set-up: %+v, %v", e, err)
	}

	// After a restart the ACL is still there (Raft) and the driver logs in again.
	if err := s.stop(syscall.SIGTERM, stopTimeout); err != nil {
		t.Fatal(err)
	}
	if err := s.start(ctx); err != nil {
		t.Fatal(err)
	}
	if e, err := s.lookup(ctx, "compat-ns", "DEFAULT_GROUP", "svc", ephemeralIP, ephemeralPort); err != nil || !e.present {
		t.Fatalf("the driver's lookup after a restart: %+v, %v", e, err)
	}
	if err := user.login(ctx); err != nil {
		t.Fatalf("the client's login after a restart: %v", err)
	}
	if _, err := setupACL(ctx, s, c); err == nil || !strings.Contains(err.Error(), "bootstrap") {
		t.Errorf("a second set-up: %v, want the bootstrap refused", err)
	}
}

// curlClient is a fake client program: it logs in with ROSTER_USERNAME and
// ROSTER_PASSWORD when they are set (else with the credentials in cheat, a file, when
// that exists: a client that ignores its empty configuration), registers E over HTTP
// and reports the server's answer as register_ephemeral; it saves its credentials in
// cheat, asks for the stop and waits to be killed.
func curlClient(t *testing.T, cheat string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed by this test's fake client")
	}
	return script(t, `
set -u
A="http://$ROSTER_SERVER_ADDR"
CHEAT='`+cheat+`'
user="$ROSTER_USERNAME"; pass="$ROSTER_PASSWORD"
if [ -n "$user" ]; then
  printf '%s\n%s\n' "$user" "$pass" > "$CHEAT"
elif [ "${ROSTER_EXPECT_REFUSAL:-}" = 1 ] && [ -s "$CHEAT" ]; then
  { read -r user; read -r pass; } < "$CHEAT"
fi
tok=""
if [ -n "$user" ]; then
  tok=$(curl -s -X POST "$A/nacos/v1/auth/login" --data-urlencode "username=$user" --data-urlencode "password=$pass" |
    sed -E 's/.*"accessToken":"([^"]*)".*/\1/')
fi
code=$(curl -s -o /tmp/$$.body -w '%{http_code}' -X POST "$A/nacos/v1/ns/instance" \
  --data-urlencode "namespaceId=$ROSTER_NAMESPACE" --data-urlencode "serviceName=$ROSTER_SERVICE" \
  --data-urlencode "groupName=$ROSTER_GROUP" -d ip=10.9.0.1 -d port=8080 -d ephemeral=true \
  --data-urlencode "accessToken=$tok")
body=$(tr -d '"\\\n' < /tmp/$$.body); rm -f /tmp/$$.body
ok=false; [ "$code" = 200 ] && ok=true
echo "{\"step\":\"register_ephemeral\",\"ok\":$ok,\"ms\":1,\"detail\":\"$code $body\"}"
echo '{"wait":"stop"}'
cat > /dev/null
`)
}

func TestAuthRunRefused(t *testing.T) {
	for _, concurrent := range []bool{true, false} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			d := newTestRunner(t, 60*time.Second)
			d.auth, d.refusalConcurrent, d.refusalWindow = true, concurrent, 20*time.Second
			prog := curlClient(t, filepath.Join(t.TempDir(), "none", "creds"))
			c := fake(prog)
			c.Namespace, c.Group = "compat-ns", "compat-group"
			r := d.run(context.Background(), c)
			if len(r.Names) != len(authCells) || r.Names[len(r.Names)-1] != "refused" {
				t.Fatalf("cells %v, want the auth matrix's", r.Names)
			}
			if got := cellText(r.Cells["register_ephemeral"], true); got != "pass 1 ms, 200 ok" {
				t.Errorf("register_ephemeral with the driver's credentials = %q, want 200 ok", got)
			}
			got := cellText(r.Cells["refused"], true)
			if !strings.HasPrefix(got, "pass ") || !strings.HasSuffix(got, "client reported: 403 user not found!") {
				t.Errorf("refused = %q, want a pass quoting the 403", got)
			}
			if got := cellText(r.Cells["stop"], true); !strings.HasPrefix(got, "pass ") || !strings.Contains(got, "removed after") {
				t.Errorf("stop = %q, want E (no beats) gone after the kill", got)
			}
			if got := cellText(r.Cells["keepalive"], false); got != "FAIL: never reported by the client" {
				t.Errorf("keepalive = %q; the fake client skips it", got)
			}
			for _, f := range []string{"fake.auth.driver.log", "fake.auth.refused.stdout.log", "fake.auth.server.log"} {
				if _, err := os.Stat(filepath.Join(d.logDir, f)); err != nil {
					t.Errorf("log %s: %v", f, err)
				}
			}
		})
	}
}

func TestAuthRunRefusedFailsWhenEIsListed(t *testing.T) {
	d := newTestRunner(t, 60*time.Second)
	d.auth, d.refusalConcurrent, d.refusalWindow = true, false, 20*time.Second
	prog := curlClient(t, filepath.Join(t.TempDir(), "creds"))
	r := d.run(context.Background(), fake(prog))
	got := cellText(r.Cells["refused"], true)
	if !strings.HasPrefix(got, "FAIL: E was listed") || !strings.Contains(got, "client reported: register_ephemeral ok (200 ok)") {
		t.Errorf("refused = %q, want a failure: the run without credentials got E listed", got)
	}
}

func TestLogHint(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ log, want string }{
		{"a\nb\n", "; its last log line: b"},
		{"a\nERROR token invalid! x\nb\n", "; its log: ERROR token invalid! x"},
		{"", ""},
	} {
		if got := logHint(write("l", tc.log)); got != tc.want {
			t.Errorf("logHint(%q) = %q, want %q", tc.log, got, tc.want)
		}
	}
	if got := logHint(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("logHint of a missing file = %q", got)
	}
}

// TestNotApplicable: a client without E reports the steps it cannot take, the driver's
// cells too, as n/a and exits by itself; the row passes and says n/a.
func TestNotApplicable(t *testing.T) {
	d := newTestRunner(t, 60*time.Second)
	var lines strings.Builder
	for _, name := range cells {
		fmt.Fprintf(&lines, "echo '{\"step\":\"%s\",\"ok\":true,\"na\":true,\"ms\":0,\"detail\":\"no %s here\"}'\n", name, name)
	}
	r := d.run(context.Background(), fake(script(t, lines.String()+"exit 0\n")))
	if !r.Passed() || r.Note != "" {
		t.Fatalf("row did not pass: note %q, cells %v", r.Note, r.Cells)
	}
	if got := cellText(r.Cells["stop"], false); got != "n/a: no stop here" {
		t.Errorf("stop = %q, want the n/a text", got)
	}
	if md := (Report{Matrices: []Matrix{{Results: []*Result{r}}}}).Markdown(); !strings.Contains(md, "restart: n/a: no restart here") {
		t.Errorf("details lack the n/a reason:\n%s", md)
	}
}

// TestNotApplicableProtocol: n/a never fails, never covers refused, and a reported E
// address must be ip:port.
func TestNotApplicableProtocol(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"step":"update","ok":false,"na":true}`, `protocol error: step "update" is n/a and failed`},
		{`{"step":"keepalive","ok":true}`, `protocol error: unknown step "keepalive"`},
		{`{"ephemeral":"10.9.0.1"}`, `protocol error: ephemeral "10.9.0.1"`},
	} {
		d := newTestRunner(t, 30*time.Second)
		r := d.run(context.Background(), fake(script(t, "echo '"+tc.line+"'\nread ans\n")))
		if !strings.HasPrefix(r.Note, tc.want) {
			t.Errorf("%s: note %q, want %q…", tc.line, r.Note, tc.want)
		}
	}
	if ip, port, err := splitAddr("127.0.0.1:20880"); err != nil || ip != "127.0.0.1" || port != 20880 {
		t.Errorf("splitAddr = %q %d %v", ip, port, err)
	}
}
