package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roster-registry/roster/server"
)

// settleWith parses args over a config file holding text and returns the settled
// configuration.
func settleWith(t *testing.T, text string, args ...string) (server.Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "roster.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var v serverFlagValues
	fs := serverFlags(&v, io.Discard)
	if err := fs.Parse(append([]string{"--config", path}, args...)); err != nil {
		t.Fatal(err)
	}
	given, err := settle(fs, &v.configFile)
	if err != nil {
		return server.Config{}, err
	}
	return v.config(given), nil
}

// TestConfigFilePrecedence checks flags > ROSTER_* > file > defaults, key by key.
func TestConfigFilePrecedence(t *testing.T) {
	t.Setenv("ROSTER_HEARTBEAT_TIMEOUT", "21s")
	t.Setenv("ROSTER_RAFT_ADDR", "127.0.0.1:7001")
	file := `
http-addr = "127.0.0.1:9000"      # overridden by the flag below
raft-addr = "127.0.0.1:7999"      # overridden by ROSTER_RAFT_ADDR
heartbeat-timeout = "30s"         # overridden by ROSTER_HEARTBEAT_TIMEOUT
ip-delete-timeout = "45s"         # only here
max-body = "2MiB"
max-metadata = 2048
join = ["127.0.0.1:8848", "127.0.0.1:8849"]
bootstrap-expect = 2
auth = false
`
	cfg, err := settleWith(t, file, "--http-addr", "127.0.0.1:1234")
	if err != nil {
		t.Fatal(err)
	}
	def := server.DefaultConfig()
	checks := []struct {
		name      string
		got, want any
	}{
		{"http-addr (flag)", cfg.HTTPAddr, "127.0.0.1:1234"},
		{"raft-addr (env)", cfg.RaftAddr, "127.0.0.1:7001"},
		{"heartbeat-timeout (env)", cfg.HeartbeatTimeout, 21 * time.Second},
		{"ip-delete-timeout (file)", cfg.IPDeleteTimeout, 45 * time.Second},
		{"max-body (file)", cfg.MaxBody, int64(2 << 20)},
		{"max-metadata (file)", cfg.MaxMetadata, 2048},
		{"join (file array)", strings.Join(cfg.Join, ","), "127.0.0.1:8848,127.0.0.1:8849"},
		{"bootstrap-expect (file)", cfg.BootstrapExpect, 2},
		{"auth (file)", cfg.Auth.Mode, server.AuthOff},
		{"heartbeat-interval (default)", cfg.HeartbeatInterval, def.HeartbeatInterval},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestConfigFileEnvNamesFile checks that ROSTER_CONFIG names the file too.
func TestConfigFileEnvNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roster.toml")
	if err := os.WriteFile(path, []byte(`node-id = "from-file"`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROSTER_CONFIG", path)
	var v serverFlagValues
	fs := serverFlags(&v, io.Discard)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	given, err := settle(fs, &v.configFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := v.config(given); cfg.NodeID != "from-file" {
		t.Fatalf("node id %q", cfg.NodeID)
	}
}

// TestConfigFileErrors checks that every bad file stops the start with one line naming
// the key (or the line of a syntax error), exit status 2.
func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown key", `htp-addr = "127.0.0.1:1"`, `unknown key "htp-addr"`},
		{"snake case", `http_addr = "127.0.0.1:1"`, `did you mean "http-addr"`},
		{"nested config", `config = "other.toml"`, `unknown key "config"`},
		{"table", "[join]\na = \"x\"", `key "join": a table`},
		{"bad duration", `heartbeat-timeout = "soon"`, `key "heartbeat-timeout"`},
		{"bad int", `max-metadata = "lots"`, `key "max-metadata"`},
		{"array for one value", `http-addr = ["a", "b"]`, `key "http-addr": an array`},
		{"array of numbers", `join = [1, 2]`, `key "join": array element 1`},
		{"syntax", "http-addr = \n", "line 1"},
		{"invalid setting", `log-format = "xml"`, "log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "roster.toml")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"server", "--data-dir", t.TempDir(), "--config", path}, &stdout, &stderr)
			out := strings.TrimSuffix(stderr.String(), "\n")
			if code != 2 || strings.Contains(out, "\n") || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q", code, stderr.String(), tt.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"server", "--config", filepath.Join(t.TempDir(), "none.toml")}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "none.toml") {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	})
}

// TestExampleConfigFileIsValid checks that packaging/roster.toml, every key commented
// out or not, names only real flags with valid values.
func TestExampleConfigFileIsValid(t *testing.T) {
	data, err := os.ReadFile("../../packaging/roster.toml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		// "#key = value" lines are settings left at their default; "# " lines are prose.
		if strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "# ") && line != "#" {
			line = strings.TrimPrefix(line, "#")
		}
		lines = append(lines, line)
	}
	text := strings.Join(lines, "\n")
	var v serverFlagValues
	serverFlags(&v, io.Discard).VisitAll(func(f *flag.Flag) {
		// The test-only fault hooks (chaos suite) are not settings an operator writes.
		if f.Name != "config" && !strings.HasPrefix(f.Name, "test-") && !strings.Contains(text, "\n"+f.Name+" = ") {
			t.Errorf("packaging/roster.toml does not show --%s", f.Name)
		}
	})
	cfg, err := settleWith(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
