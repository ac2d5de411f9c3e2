package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// roster runs the built roster binary as a user would and returns its exit status and
// output.
func roster(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	bin, _ := binaries(t)
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A -race binary sleeps 1 s at exit to catch late races; a CLI call has none to catch.
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run roster %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// TestCLI runs `roster instance` and `roster service` against a real server.
func TestCLI(t *testing.T) {
	s := StartServer(t)
	addr := []string{"--addr", s.URL}
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		code, out, errs := roster(t, append(args, addr...)...)
		if code != wantCode {
			t.Fatalf("roster %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
		}
		return out, errs
	}

	out, _ := run(0, "instance", "register", "--service", "cli-svc", "--ip", "127.0.0.61", "--port", "7300",
		"--ephemeral=false", "--weight", "2", "--metadata", "zone=a,rack=r1", "--cluster", "c1")
	if want := "registered persistent instance 127.0.0.61:7300 (cluster c1) in public/DEFAULT_GROUP@@cli-svc\n"; out != want {
		t.Errorf("register stdout = %q, want %q", out, want)
	}

	out, _ = run(0, "instance", "list", "--service", "cli-svc", "-o", "json")
	var info struct {
		Name  string `json:"name"`
		Hosts []struct {
			IP          string            `json:"ip"`
			Port        int               `json:"port"`
			Weight      float64           `json:"weight"`
			ClusterName string            `json:"clusterName"`
			Ephemeral   bool              `json:"ephemeral"`
			Enabled     bool              `json:"enabled"`
			Metadata    map[string]string `json:"metadata"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("instance list -o json: %v\n%s", err, out)
	}
	if info.Name != "DEFAULT_GROUP@@cli-svc" || len(info.Hosts) != 1 {
		t.Fatalf("instance list -o json = %s", out)
	}
	h := info.Hosts[0]
	if h.IP != "127.0.0.61" || h.Port != 7300 || h.Weight != 2 || h.ClusterName != "c1" || h.Ephemeral ||
		!h.Enabled || h.Metadata["zone"] != "a" || h.Metadata["rack"] != "r1" {
		t.Errorf("listed instance = %+v", h)
	}

	out, _ = run(0, "instance", "list", "--service", "cli-svc")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "IP ") || !strings.Contains(lines[1], "127.0.0.61") ||
		!strings.Contains(lines[1], "rack=r1,zone=a") {
		t.Errorf("instance list table =\n%s", out)
	}

	out, _ = run(0, "service", "list", "-o", "json")
	var svcs struct {
		Count    int      `json:"count"`
		Services []string `json:"services"`
	}
	if err := json.Unmarshal([]byte(out), &svcs); err != nil || svcs.Count != 1 || len(svcs.Services) != 1 || svcs.Services[0] != "cli-svc" {
		t.Errorf("service list -o json = %s (%v)", out, err)
	}
	out, _ = run(0, "service", "get", "--service", "cli-svc")
	if !strings.Contains(out, "NAME:") || !strings.Contains(out, "cli-svc") || !strings.Contains(out, "DEFAULT_GROUP") {
		t.Errorf("service get =\n%s", out)
	}

	// Errors: one line, the server's status and text, exit 1.
	_, errs := run(1, "instance", "register", "--service", "cli-svc", "--ip", "127.0.0.62", "--port", "7301")
	if want := "roster: 400: errCode: 400, errMsg: Current service DEFAULT_GROUP@@cli-svc is persistent service, can't register ephemeral instance.\n"; errs != want {
		t.Errorf("ephemeral into persistent: stderr = %q, want %q", errs, want)
	}
	_, errs = run(1, "service", "get", "--service", "nope")
	if want := "roster: 400: service not found, namespace: public, serviceName: DEFAULT_GROUP@@nope\n"; errs != want {
		t.Errorf("service get nope: stderr = %q, want %q", errs, want)
	}
	_, errs = run(2, "instance", "register", "--service", "cli-svc")
	if !strings.Contains(errs, "--ip is required") {
		t.Errorf("usage error: stderr = %q", errs)
	}

	run(0, "instance", "deregister", "--service", "cli-svc", "--ip", "127.0.0.61", "--port", "7300",
		"--cluster", "c1", "--ephemeral=false")
	out, _ = run(0, "instance", "list", "--service", "cli-svc", "-o", "json")
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Hosts) != 0 {
		t.Errorf("after deregister: %s (%v)", out, err)
	}
}
