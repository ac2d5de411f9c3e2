package server

import (
	"net"
	"testing"
	"time"
)

func TestDefaultConfigIsTheEmbeddedDefault(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
	if cfg.HTTPAddr != "127.0.0.1:8848" || cfg.RaftAddr != "127.0.0.1:7848" || cfg.DataDir != "./roster-data" {
		t.Fatalf("addresses and data dir: %+v", cfg)
	}
	if grpc, err := cfg.GRPC.addr(cfg.HTTPAddr); err != nil || grpc != "127.0.0.1:9848" {
		t.Fatalf("gRPC address %q, %v; want Nacos' 127.0.0.1:9848", grpc, err)
	}
}

// TestValidateNamesTheFlag: the messages are those `roster server` prints.
func TestValidateNamesTheFlag(t *testing.T) {
	tests := []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.HeartbeatInterval = 0 }, "invalid value for --heartbeat-interval: must be positive"},
		{func(c *Config) { c.HeartbeatTimeout = time.Second }, "invalid value for --heartbeat-timeout: must be at least --heartbeat-interval"},
		{func(c *Config) { c.RaftAddr = "bad" }, `invalid value for --raft-addr: want host:port, got "bad"`},
		{func(c *Config) { c.BootstrapExpect = 3 }, "invalid value for --bootstrap-expect: needs --join with the other members' HTTP addresses"},
		{func(c *Config) { c.LogFormat = "xml" }, "invalid value for --log-format: want text or json"},
		{func(c *Config) { c.Join = []string{"127.0.0.1:1"} }, errNoClusterCredential.Error()},
		{func(c *Config) { c.GRPC.MaxConnections = 0 }, "invalid value for --grpc-max-connections: must be positive"},
		{func(c *Config) { c.ApplyTimeout = c.ForwardTimeout }, "invalid value for --forward-timeout: must be more than --apply-timeout (the leader waits that long for a commit before it answers)"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		tt.change(&cfg)
		if err := cfg.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Validate = %v, want %q", err, tt.want)
		}
	}
}

// TestPortZero: a system-picked HTTP port has no +1000 partner, so gRPC is picked too;
// a configured port is advertised as given, a port 0 as bound.
func TestPortZero(t *testing.T) {
	var g GRPCConfig
	if addr, err := g.addr("127.0.0.1:0"); err != nil || addr != "127.0.0.1:0" {
		t.Fatalf("gRPC address for HTTP port 0: %q, %v", addr, err)
	}
	if got := advertised("localhost:8848", "127.0.0.1:8848"); got != "localhost:8848" {
		t.Errorf("advertised a configured port as %q", got)
	}
	if got := advertised("127.0.0.1:0", "127.0.0.1:41234"); got != "127.0.0.1:41234" {
		t.Errorf("advertised port 0 as %q", got)
	}
}

// TestValidateUsesTheGivenListener: with HTTPListener, HTTPAddr plays no part.
func TestValidateUsesTheGivenListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.HTTPAddr = "not an address"
	cfg.HTTPListener = ln
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
