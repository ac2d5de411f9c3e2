package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/roster-registry/roster/auth"
)

// AuthMode says whether client requests need credentials.
type AuthMode int

const (
	// AuthAuto turns auth on when a client port binds beyond loopback, unless Insecure.
	AuthAuto AuthMode = iota
	// AuthOn checks every client request (--auth).
	AuthOn
	// AuthOff checks none (--auth=false); beyond loopback it also needs Insecure.
	AuthOff
)

// AuthConfig is access control of the client ports.
type AuthConfig struct {
	Mode AuthMode
	// Insecure allows client ports beyond loopback without auth; the node then says so
	// at start and every hour.
	Insecure bool
	// TokenTTL is the lifetime of access tokens issued by login (at most auth.MaxTokenTTL).
	TokenTTL time.Duration
}

func defaultAuthConfig() AuthConfig { return AuthConfig{TokenTTL: auth.DefaultTokenTTL} }

func (c *AuthConfig) validate() error {
	if c.TokenTTL <= 0 || c.TokenTTL > auth.MaxTokenTTL {
		return fmt.Errorf("invalid value for --token-ttl: must be in (0, %s]", auth.MaxTokenTTL)
	}
	return nil
}

// resolve decides whether auth is on. A client port reachable beyond this host gets
// auth unless the operator says --insecure; turning it off there explicitly without
// --insecure is refused, so that nobody exposes an open registry by accident.
func (c *AuthConfig) resolve(clientAddrs []clientAddr) (enabled bool, exposed string, err error) {
	for _, a := range clientAddrs {
		if !isLoopback(a.addr) {
			exposed = "--" + a.flag + " " + a.addr
			break
		}
	}
	switch c.Mode {
	case AuthOn:
		enabled = true
	case AuthOff:
		enabled = false
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

// warnInsecure logs that client ports are open to anyone.
func warnInsecure(log *slog.Logger, exposed string) {
	log.Warn("auth is OFF on a client port reachable beyond this host (--insecure): anyone who reaches it can read and change the registry", "port", exposed)
}

// warnInsecureHourly repeats warnInsecure every hour until ctx ends.
func warnInsecureHourly(ctx context.Context, log *slog.Logger, exposed string) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			warnInsecure(log, exposed)
		}
	}
}
