// Package packaging holds the deployment files (container image, compose, Kubernetes,
// systemd) and tests them without a Docker daemon: the Dockerfile's required properties,
// the entrypoint's mapping of Nacos' image variables under each shell here, the command
// lines it produces run against the real binary, and sd_notify against a fake
// NOTIFY_SOCKET. packaging/check.sh runs the external validators.
package packaging

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/roster-registry/roster/testsupport/freeport"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// rosterBinary builds cmd/roster once for the package's tests and returns its path.
func rosterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "roster-packaging-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "roster")
		out, err := exec.Command("go", "build", "-o", buildPath, "../cmd/roster").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build ./cmd/roster: " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]instruction
	var pending string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && pending == "") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", path, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func find(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// TestDockerfile checks what the image must be: a multi-stage build of a static binary
// with the toolchain go.mod names, a non-root user, a data volume, the three ports, a
// HEALTHCHECK on /readyz without curl, and the entrypoint that maps Nacos' variables.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	from := find(build, "FROM")[0]
	if goVersion == nil || !strings.HasPrefix(from, "golang:"+string(goVersion[1])) || !strings.Contains(from, " AS ") {
		t.Errorf("build stage FROM %q: want golang:%s… AS <name>", from, goVersion[1])
	}
	static := false
	for _, run := range find(build, "RUN") {
		if strings.Contains(run, "CGO_ENABLED=0") && strings.Contains(run, "go build") && strings.Contains(run, "./cmd/roster") {
			static = true
		}
	}
	if !static {
		t.Error("no RUN CGO_ENABLED=0 go build ./cmd/roster in the build stage")
	}

	fromBuild := false
	for _, c := range find(final, "COPY") {
		if strings.HasPrefix(c, "--from=") {
			fromBuild = true
			continue
		}
		// Every file copied from the context must exist in the repository.
		fields := strings.Fields(c)
		for _, src := range fields[:len(fields)-1] {
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	if !fromBuild {
		t.Error("the final stage copies nothing from the build stage")
	}

	users := find(final, "USER")
	if len(users) == 0 {
		t.Error("no USER: the image would run as root")
	} else if u := strings.Split(users[len(users)-1], ":")[0]; u == "root" || u == "0" {
		t.Errorf("USER %s is root", users[len(users)-1])
	}

	volumes := strings.Join(find(final, "VOLUME"), " ")
	dataDir := ""
	for _, env := range find(final, "ENV") {
		if v, ok := strings.CutPrefix(env, "ROSTER_DATA_DIR="); ok {
			dataDir = v
		}
	}
	if dataDir == "" || !strings.Contains(volumes, dataDir) {
		t.Errorf("ROSTER_DATA_DIR %q is not a VOLUME (%s)", dataDir, volumes)
	}

	ports := strings.Fields(strings.Join(find(final, "EXPOSE"), " "))
	for _, p := range []string{"8848", "9848", "7848"} {
		if !slices.Contains(ports, p) {
			t.Errorf("port %s is not EXPOSEd (%v)", p, ports)
		}
	}

	health := find(final, "HEALTHCHECK")
	if len(health) != 1 || !strings.Contains(health[0], "docker-entrypoint.sh") || !strings.Contains(health[0], "health") ||
		strings.Contains(health[0], "curl") {
		t.Errorf("HEALTHCHECK %v: want the entrypoint's health (roster health on /readyz)", health)
	}
	entry := find(final, "ENTRYPOINT")
	if len(entry) != 1 || !strings.Contains(entry[0], "docker-entrypoint.sh") {
		t.Errorf("ENTRYPOINT %v: want docker-entrypoint.sh", entry)
	}
}

// shells are the shells the entrypoint must work under: sh (dash on Debian, busybox in
// the image when installed here) and bash.
func shells(t *testing.T) []string {
	var out []string
	for _, s := range []string{"sh", "bash", "dash", "busybox"} {
		if _, err := exec.LookPath(s); err == nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Skip("no shell to run the entrypoint with")
	}
	return out
}

// stubDir holds a `roster` that prints its arguments, one a line, and a `hostname`
// that answers node-a (or 10.1.2.3 with -i), so that the entrypoint's output is known.
func stubDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	stubs := map[string]string{
		"roster":   "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n",
		"hostname": "#!/bin/sh\nif [ \"$1\" = -i ]; then echo '10.1.2.3 fe80::1'; else echo node-a; fi\n",
	}
	for name, text := range stubs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runEntrypoint runs the entrypoint under shell with exactly env (plus PATH and TMPDIR).
func runEntrypoint(t *testing.T, shell, path, tmp string, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	argv := []string{"docker-entrypoint.sh"}
	if shell == "busybox" {
		argv = []string{"sh", "docker-entrypoint.sh"}
	}
	cmd := exec.Command(shell, append(argv, args...)...)
	cmd.Env = []string{"PATH=" + path, "TMPDIR=" + tmp}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), 0
}

// TestEntrypointMapsNacosVariables runs the entrypoint for a table of Nacos image
// settings under every shell and compares the command line it runs.
func TestEntrypointMapsNacosVariables(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef0123456789abcdef"
	three := "node-a:8848 node-b:8848 node-c:8848"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // the stub's arguments, or the refusal's text with code 2
		fail bool
		key  string // the cluster key file's wanted content
	}{
		{name: "no variables: standalone on every interface",
			want: []string{"server", "--http-addr=0.0.0.0:8848", "--raft-addr=127.0.0.1:7848"}},
		{name: "standalone on another port",
			env:  map[string]string{"MODE": "standalone", "NACOS_SERVER_PORT": "8000"},
			want: []string{"server", "--http-addr=0.0.0.0:8000", "--raft-addr=127.0.0.1:7000"}},
		{name: "NACOS_APPLICATION_PORT wins over NACOS_SERVER_PORT",
			env:  map[string]string{"NACOS_APPLICATION_PORT": "9000", "NACOS_SERVER_PORT": "8000"},
			want: []string{"server", "--http-addr=0.0.0.0:9000", "--raft-addr=127.0.0.1:8000"}},
		{name: "cluster in hostname mode, key from NACOS_AUTH_TOKEN",
			env: map[string]string{"MODE": "cluster", "PREFER_HOST_MODE": "hostname", "NACOS_SERVERS": three,
				"NACOS_AUTH_ENABLE": "true", "NACOS_AUTH_TOKEN": key},
			want: []string{"server", "--http-addr=node-a:8848", "--raft-addr=node-a:7848",
				"--join=node-a:8848,node-b:8848,node-c:8848", "--bootstrap-expect=3", "--node-id=node-a",
				"--cluster-key-file=$TMP/roster-cluster.key", "--auth=true"},
			key: key},
		{name: "cluster implied by NACOS_SERVERS, ip mode, commas, default ports, raft_port tails",
			env: map[string]string{"NACOS_SERVERS": "10.1.2.3,10.1.2.4?raft_port=7848, 10.1.2.5:8848", "ROSTER_CLUSTER_KEY": key + "x"},
			want: []string{"server", "--http-addr=10.1.2.3:8848", "--raft-addr=10.1.2.3:7848",
				"--join=10.1.2.3:8848,10.1.2.4:8848,10.1.2.5:8848", "--bootstrap-expect=3",
				"--cluster-key-file=$TMP/roster-cluster.key"},
			key: key + "x"},
		{name: "ROSTER_CLUSTER_KEY wins over NACOS_AUTH_TOKEN, NACOS_SERVER_IP over the host",
			env: map[string]string{"NACOS_SERVERS": three, "NACOS_SERVER_IP": "192.0.2.7", "ROSTER_CLUSTER_KEY": "roster-" + key,
				"NACOS_AUTH_TOKEN": key},
			want: []string{"server", "--http-addr=192.0.2.7:8848", "--raft-addr=192.0.2.7:7848",
				"--join=node-a:8848,node-b:8848,node-c:8848", "--bootstrap-expect=3", "--cluster-key-file=$TMP/roster-cluster.key"},
			key: "roster-" + key},
		{name: "ROSTER_ variables suppress the flags they set",
			env: map[string]string{"NACOS_SERVERS": three, "PREFER_HOST_MODE": "hostname", "ROSTER_HTTP_ADDR": "x:1",
				"ROSTER_NODE_ID": "n1", "ROSTER_CLUSTER_KEY_FILE": "/run/key", "ROSTER_AUTH": "true", "NACOS_AUTH_ENABLE": "false"},
			want: []string{"server", "--raft-addr=node-a:7848", "--join=node-a:8848,node-b:8848,node-c:8848",
				"--bootstrap-expect=3", "--insecure=true"}},
		{name: "auth off as in Nacos, token lifetime, ignored Nacos settings",
			env: map[string]string{"MODE": "standalone", "NACOS_AUTH_ENABLE": "false", "NACOS_AUTH_TOKEN_EXPIRE_SECONDS": "3600",
				"JVM_XMS": "1g", "SPRING_DATASOURCE_PLATFORM": "mysql"},
			want: []string{"server", "--http-addr=0.0.0.0:8848", "--raft-addr=127.0.0.1:7848", "--auth=false", "--insecure=true",
				"--token-ttl=3600s"}},
		{name: "flags after the image name are added, quotes intact",
			args: []string{"--log-level", "debug", "--node-id", "it's a node"},
			want: []string{"server", "--http-addr=0.0.0.0:8848", "--raft-addr=127.0.0.1:7848", "--log-level", "debug", "--node-id", "it's a node"}},
		{name: "another command runs as is",
			args: []string{"roster", "acl", "bootstrap"},
			want: []string{"acl", "bootstrap"}},
		{name: "health of a standalone node asks loopback",
			args: []string{"health"},
			want: []string{"health", "--addr", "http://127.0.0.1:8848"}},
		{name: "health of a cluster member asks its own name",
			env:  map[string]string{"NACOS_SERVERS": three, "PREFER_HOST_MODE": "hostname", "NACOS_SERVER_PORT": "8850"},
			args: []string{"health"},
			want: []string{"health", "--addr", "http://node-a:8850"}},
		{name: "health with ROSTER_HTTP_ADDR on every interface",
			env:  map[string]string{"ROSTER_HTTP_ADDR": "0.0.0.0:9000"},
			args: []string{"health"},
			want: []string{"health", "--addr", "http://127.0.0.1:9000"}},
		{name: "health of a node serving TLS",
			env:  map[string]string{"ROSTER_TLS_CERT": "/certs/node.pem", "ROSTER_TLS_CA": "/certs/ca.pem"},
			args: []string{"health"},
			want: []string{"health", "--addr", "https://127.0.0.1:8848", "--ca", "/certs/ca.pem"}},
		{name: "health of a node with certificates for members only",
			env:  map[string]string{"ROSTER_TLS_CERT": "/certs/node.pem", "ROSTER_CLIENT_TLS": "false"},
			args: []string{"health"},
			want: []string{"health", "--addr", "http://127.0.0.1:8848"}},
		{name: "bad MODE", env: map[string]string{"MODE": "replicated"}, fail: true, want: []string{"MODE=replicated"}},
		{name: "cluster without members", env: map[string]string{"MODE": "cluster"}, fail: true, want: []string{"NACOS_SERVERS"}},
		{name: "bad port", env: map[string]string{"NACOS_SERVER_PORT": "http"}, fail: true, want: []string{"http is not a port"}},
		{name: "port without room for Raft", env: map[string]string{"NACOS_SERVER_PORT": "80"}, fail: true, want: []string{"port 80"}},
		{name: "bad NACOS_AUTH_ENABLE", env: map[string]string{"NACOS_AUTH_ENABLE": "yes"}, fail: true, want: []string{"NACOS_AUTH_ENABLE=yes"}},
		{name: "bad PREFER_HOST_MODE", env: map[string]string{"PREFER_HOST_MODE": "fqdn"}, fail: true, want: []string{"PREFER_HOST_MODE=fqdn"}},
		{name: "bad token lifetime", env: map[string]string{"NACOS_AUTH_TOKEN_EXPIRE_SECONDS": "5h"}, fail: true, want: []string{"NACOS_AUTH_TOKEN_EXPIRE_SECONDS"}},
	}
	for _, shell := range shells(t) {
		for _, tt := range tests {
			t.Run(shell+"/"+tt.name, func(t *testing.T) {
				stubs := stubDir(t)
				tmp := t.TempDir()
				stdout, stderr, code := runEntrypoint(t, shell, stubs+":/usr/bin:/bin", tmp, tt.env, tt.args...)
				if tt.fail {
					if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want[0]) {
						t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 naming %q", code, stdout, stderr, tt.want[0])
					}
					return
				}
				if code != 0 {
					t.Fatalf("exit %d, stderr %q", code, stderr)
				}
				got := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
				want := make([]string, len(tt.want))
				for i, w := range tt.want {
					want[i] = strings.ReplaceAll(w, "$TMP", tmp)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("roster got\n  %q\nwant\n  %q", got, want)
				}
				if _, ignored := tt.env["JVM_XMS"]; ignored && !strings.Contains(stderr, "SPRING_DATASOURCE_PLATFORM JVM_XMS") {
					t.Errorf("stderr %q does not name the ignored settings", stderr)
				}
				if tt.key != "" {
					path := filepath.Join(tmp, "roster-cluster.key")
					st, err := os.Stat(path)
					if err != nil {
						t.Fatal(err)
					}
					data, _ := os.ReadFile(path)
					if string(data) != tt.key || st.Mode().Perm() != 0o600 {
						t.Fatalf("key file %q mode %v, want %q mode 0600", data, st.Mode().Perm(), tt.key)
					}
				}
			})
		}
	}
}

// freeBasePort returns a port p such that p-1000 (Raft), p (HTTP) and p+1000 (gRPC) are
// all free on 127.0.0.1 now, below the ephemeral range, and unlike every port handed out
// before in this process.
func freeBasePort(t *testing.T) int {
	t.Helper()
	return freeport.PickWith(t, -1000, 1000)
}

// TestEntrypointCommandLinesRunTheRealBinary runs the entrypoint with the real roster
// for a standalone node and for a three-node cluster, all on 127.0.0.1 (NACOS_SERVER_IP),
// and waits until every node answers /readyz through the entrypoint's own health mode:
// every flag the entrypoint emits is one the server takes.
func TestEntrypointCommandLinesRunTheRealBinary(t *testing.T) {
	bin := rosterBinary(t)
	binDir := filepath.Dir(bin)
	path := binDir + ":/usr/bin:/bin"
	common := map[string]string{"NACOS_SERVER_IP": "127.0.0.1", "ROSTER_HEALTH_CHECK_CIDRS": "127.0.0.0/8",
		"ROSTER_ELECTION_TIMEOUT": "300ms", "ROSTER_LOG_LEVEL": "warn"}

	t.Run("standalone", func(t *testing.T) {
		port := freeBasePort(t)
		env := map[string]string{"MODE": "standalone", "NACOS_SERVER_PORT": strconv.Itoa(port), "ROSTER_DATA_DIR": t.TempDir()}
		for k, v := range common {
			env[k] = v
		}
		stop := startEntrypoint(t, path, env)
		waitHealthy(t, path, env)
		stop()
	})

	t.Run("three nodes", func(t *testing.T) {
		key := strings.Repeat("c0ffee", 8)
		var ports []int
		var servers []string
		for range 3 {
			p := freeBasePort(t)
			ports = append(ports, p)
			servers = append(servers, "127.0.0.1:"+strconv.Itoa(p))
		}
		var envs []map[string]string
		var stops []func()
		for _, p := range ports {
			env := map[string]string{"MODE": "cluster", "NACOS_SERVERS": strings.Join(servers, " "), "NACOS_SERVER_PORT": strconv.Itoa(p),
				"NACOS_AUTH_TOKEN": key, "ROSTER_DATA_DIR": t.TempDir(), "ROSTER_NODE_ID": "n" + strconv.Itoa(p)}
			for k, v := range common {
				env[k] = v
			}
			envs = append(envs, env)
			stops = append(stops, startEntrypoint(t, path, env))
		}
		for _, env := range envs {
			waitHealthy(t, path, env)
		}
		// The three formed one cluster: each lists three Raft peers.
		out, err := exec.Command(bin, "operator", "raft", "list-peers", "--addr", "http://"+servers[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("list-peers: %v\n%s", err, out)
		}
		for _, p := range ports {
			if !strings.Contains(string(out), "n"+strconv.Itoa(p)) {
				t.Errorf("list-peers does not show n%d:\n%s", p, out)
			}
		}
		for _, stop := range stops {
			stop()
		}
	})
}

// startEntrypoint starts the entrypoint in the background; stop sends SIGTERM and waits
// for a clean exit.
func startEntrypoint(t *testing.T, path string, env map[string]string) (stop func()) {
	t.Helper()
	cmd := exec.Command("sh", "docker-entrypoint.sh")
	cmd.Env = []string{"PATH=" + path, "TMPDIR=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		if err := <-done; err != nil {
			t.Errorf("roster exited with %v:\n%s", err, stderr.String())
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("roster output:\n%s", stderr.String())
			}
		}
	})
	return stop
}

// waitHealthy runs the entrypoint's health mode until it exits 0, within a deadline.
func waitHealthy(t *testing.T, path string, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, "sh", "docker-entrypoint.sh", "health")
		cmd.Env = []string{"PATH=" + path, "TMPDIR=" + t.TempDir()}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		last = string(out)
		pause(ctx)
	}
	t.Fatalf("node on port %s never became healthy; last answer: %s", env["NACOS_SERVER_PORT"], last)
}
