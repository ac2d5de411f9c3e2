package server

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// TestConfig holds fault-injection hooks for the chaos suite (chaos/). They are hidden
// flags, never set in production: each one makes the node lie to itself on purpose.
type TestConfig struct {
	// PeerProxy maps a member's address (HTTP or Raft, host:port) to the address this
	// node dials instead, so that every node-to-node connection of this node (Raft,
	// forwarding and cluster calls, Distro) passes a fault proxy the test controls.
	// Both sides must be loopback addresses.
	PeerProxy map[string]string
	// ClockOffsetFile names a file holding a Go duration (e.g. "5m", "-5m", "0s") that
	// this node's wall clock is shifted by; it is re-read every 100 ms, so a test steps
	// the clock at run time. Only wall-clock readings move (as with a real step): the
	// monotonic clock that Raft and the expiry timers use does not.
	ClockOffsetFile string
}

func (c *TestConfig) validate() error {
	for from, to := range c.PeerProxy {
		for _, a := range []string{from, to} {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				return fmt.Errorf("invalid value for --test-peer-proxy: want addr=proxy pairs of host:port, got %q", a)
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("invalid value for --test-peer-proxy: %q is not a loopback address", a)
			}
		}
	}
	return nil
}

// ParsePeerProxy reads --test-peer-proxy's "addr=proxy,addr=proxy" text.
func ParsePeerProxy(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		from, to, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("want addr=proxy, got %q", pair)
		}
		out[strings.TrimSpace(from)] = strings.TrimSpace(to)
	}
	return out, nil
}

// wallClock is the node's wall clock with the test offset applied.
type wallClock struct {
	offset atomic.Int64 // nanoseconds
}

func (w *wallClock) Now() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) }

// watchClockOffset re-reads path until stop is closed, logging every step so that a
// chaos run's log shows when the clock moved.
func (w *wallClock) watch(path string, log *slog.Logger, stop <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
				if old := time.Duration(w.offset.Swap(int64(d))); old != d {
					log.Warn("test hook: wall clock stepped", "from_offset", old, "to_offset", d)
				}
			}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}
