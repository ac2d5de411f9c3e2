package server

import (
	"strings"
	"testing"
)

func TestAuthExposureRules(t *testing.T) {
	loop := []clientAddr{{"http-addr", "127.0.0.1:8848"}, {"grpc-addr", "127.0.0.1:9848"}}
	open := []clientAddr{{"http-addr", "0.0.0.0:8848"}, {"grpc-addr", "0.0.0.0:9848"}}
	openGRPC := []clientAddr{{"http-addr", "127.0.0.1:8848"}, {"grpc-addr", ":9848"}}
	tests := []struct {
		name    string
		cfg     AuthConfig
		addrs   []clientAddr
		want    bool
		wantErr string
	}{
		{"loopback, nothing said", AuthConfig{}, loop, false, ""},
		{"loopback, --auth", AuthConfig{Mode: AuthOn}, loop, true, ""},
		{"0.0.0.0, nothing said", AuthConfig{}, open, true, ""},
		{"gRPC on every interface, nothing said", AuthConfig{}, openGRPC, true, ""},
		{"0.0.0.0, --auth=false", AuthConfig{Mode: AuthOff}, open, false, "--auth=false: give --insecure"},
		{"0.0.0.0, --insecure", AuthConfig{Insecure: true}, open, false, ""},
		{"0.0.0.0, --auth=false --insecure", AuthConfig{Mode: AuthOff, Insecure: true}, open, false, ""},
		{"0.0.0.0, --auth --insecure", AuthConfig{Mode: AuthOn, Insecure: true}, open, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := tt.cfg.resolve(tt.addrs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--http-addr") {
					t.Fatalf("resolve = %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolve = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "localhost:1": true, "[::1]:1": true, ":1": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "[::]:1": false} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v", addr, got)
		}
	}
}
