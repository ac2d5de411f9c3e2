package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServerRefusesBadFlags checks that every bad value stops the start with exactly
// one line that names the flag.
func TestServerRefusesBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{[]string{"--heartbeat-timeout", "xyz"}, nil, "heartbeat-timeout"},
		{[]string{"--heartbeat-timeout", "1s"}, nil, "heartbeat-timeout"},
		{[]string{"--ip-delete-timeout", "10s"}, nil, "ip-delete-timeout"},
		{[]string{"--expiry-check-interval", "2s"}, nil, "expiry-check-interval"},
		{[]string{"--http-addr", "nohostport"}, nil, "http-addr"},
		{[]string{"--max-body", "-5"}, nil, "max-body"},
		{[]string{"--max-metadata", "0"}, nil, "max-metadata"},
		{[]string{"--memory-limit", "-1MiB"}, nil, "memory-limit"},
		{[]string{"--memory-limit", "lots"}, nil, "memory-limit"},
		{[]string{"--log-format", "xml"}, nil, "log-format"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{nil, map[string]string{"ROSTER_RAFT_ADDR": "bad"}, "raft-addr"},
		{nil, map[string]string{"ROSTER_HEARTBEAT_INTERVAL": "soon"}, "heartbeat-interval"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+tt.flag, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"server", "--data-dir", t.TempDir()}, tt.args...), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			out := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.Contains(out, tt.flag) {
				t.Fatalf("want one line naming %s, got %q", tt.flag, stderr.String())
			}
		})
	}
}

// TestEnvFillsUnsetFlags checks ROSTER_<FLAG> and that the command line wins.
func TestEnvFillsUnsetFlags(t *testing.T) {
	t.Setenv("ROSTER_HEARTBEAT_TIMEOUT", "20s")
	t.Setenv("ROSTER_HTTP_ADDR", "127.0.0.1:9999")
	var cfg serverFlagValues
	var stderr bytes.Buffer
	fs := serverFlags(&cfg, &stderr)
	if err := fs.Parse([]string{"--http-addr", "127.0.0.1:1234"}); err != nil {
		t.Fatal(err)
	}
	if _, err := settle(fs, &cfg.configFile); err != nil {
		t.Fatal(err)
	}
	if cfg.HeartbeatTimeout.String() != "20s" || cfg.HTTPAddr != "127.0.0.1:1234" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

// TestMemoryLimitFlag checks the sizes --memory-limit takes: units as --max-body's, and
// 0, which leaves GOMEMLIMIT in force.
func TestMemoryLimitFlag(t *testing.T) {
	for _, tt := range []struct {
		arg  string
		want int64
	}{{"150MiB", 150 << 20}, {"1GiB", 1 << 30}, {"536870912", 512 << 20}, {"0", 0}} {
		var cfg serverFlagValues
		var stderr bytes.Buffer
		fs := serverFlags(&cfg, &stderr)
		if err := fs.Parse([]string{"--memory-limit", tt.arg}); err != nil {
			t.Fatalf("%s: %v", tt.arg, err)
		}
		if cfg.MemoryLimit != tt.want {
			t.Fatalf("--memory-limit %s = %d, want %d", tt.arg, cfg.MemoryLimit, tt.want)
		}
	}
	var cfg serverFlagValues
	fs := serverFlags(&cfg, &bytes.Buffer{})
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimit != 0 {
		t.Fatalf("default --memory-limit = %d, want 0 (unset)", cfg.MemoryLimit)
	}
}
