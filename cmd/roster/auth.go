package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/roster-registry/roster/auth"
)

// authConfig is the server's access-control settings.
type authConfig struct {
	Enabled  bool
	set      bool // --auth was given (or ROSTER_AUTH), so its value is the operator's choice
	Insecure bool
	TokenTTL time.Duration
}

func authFlags(fs *flag.FlagSet, c *authConfig) {
	fs.BoolVar(&c.Enabled, "auth", false, "check every client request's credentials and permissions (default: on when a client port binds beyond loopback)")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow client ports beyond loopback without auth (logged at start and every hour, and shown as roster_auth_enabled 0)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of access tokens issued by login (at most 24h)")
}

func (c *authConfig) validate() error {
	if c.TokenTTL <= 0 || c.TokenTTL > auth.MaxTokenTTL {
		return fmt.Errorf("invalid value for --token-ttl: must be in (0, %s]", auth.MaxTokenTTL)
	}
	return nil
}

// resolve decides whether auth is on. A client port reachable beyond this host gets
// auth unless the operator says --insecure; turning it off there explicitly without
// --insecure is refused, so that nobody exposes an open registry by accident.
func (c *authConfig) resolve(clientAddrs []clientAddr) (enabled bool, exposed string, err error) {
	for _, a := range clientAddrs {
		if !isLoopback(a.addr) {
			exposed = "--" + a.flag + " " + a.addr
			break
		}
	}
	switch {
	case c.set:
		enabled = c.Enabled
	default:
		enabled = exposed != "" && !c.Insecure
	}
	if !enabled && exposed != "" && !c.Insecure {
		return false, exposed, fmt.Errorf("%s is reachable beyond this host and --auth=false: give --insecure to run without auth there, or drop --auth=false", exposed)
	}
	return enabled, exposed, nil
}

// clientAddr is a client port's flag and listen address.
type clientAddr struct{ flag, addr string }

// isLoopback reports whether a listen address binds only to the loopback interface.
// An empty host or 0.0.0.0 / :: binds every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// warnInsecure logs, at start and every hour, that client ports are open to anyone.
func warnInsecure(ctx context.Context, log *slog.Logger, exposed string) {
	warn := func() {
		log.Warn("auth is OFF on a client port reachable beyond this host (--insecure): anyone who reaches it can read and change the registry", "port", exposed)
	}
	warn()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			warn()
		}
	}
}
