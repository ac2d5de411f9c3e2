package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerRefusesIncompleteCredentials: a cluster without a credential and partial
// or conflicting credential flags stop the start with one line naming the flags.
func TestServerRefusesIncompleteCredentials(t *testing.T) {
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cluster without credential", []string{"--bootstrap-expect", "3", "--join", "127.0.0.1:1,127.0.0.1:2"}, "--cluster-key-file"},
		{"join without credential", []string{"--join", "127.0.0.1:1"}, "--cluster-key-file"},
		{"cert alone", []string{"--tls-cert", "a.crt"}, "go together"},
		{"cert and key without ca", []string{"--tls-cert", "a.crt", "--tls-key", "a.key"}, "go together"},
		{"ca alone", []string{"--tls-ca", "ca.crt"}, "go together"},
		{"both modes", []string{"--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-ca", "ca.crt", "--cluster-key-file", key}, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"server", "--data-dir", t.TempDir()}, tt.args...), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			out := strings.TrimSuffix(stderr.String(), "\n")
			if strings.Contains(out, "\n") || !strings.Contains(out, tt.want) {
				t.Fatalf("want one line saying %q, got %q", tt.want, stderr.String())
			}
		})
	}
}
