package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"
)

// waiter answers a client's waits by watching E on the client's server.
type waiter struct {
	srv                *server
	ns, group, service string
	// ip and port are E's address: the contract's unless the client reported its own;
	// an empty ip matches any instance of the service.
	ip   string
	port int
	logf func(string, ...any)
}

func newWaiter(srv *server, c Client, service string, logf func(string, ...any)) *waiter {
	return &waiter{srv: srv, ns: c.Namespace, group: c.Group, service: service, ip: ephemeralIP, port: ephemeralPort, logf: logf}
}

func (w *waiter) lookupE(ctx context.Context) (instance, error) {
	return w.srv.lookup(ctx, w.ns, w.group, w.service, w.ip, w.port)
}

// splitAddr parses a client's "ip:port".
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 || net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("want ip:port")
	}
	return host, port, nil
}

// keepalive requires E present and healthy at every poll (every 200 ms) for three
// heartbeat timeouts.
func (w *waiter) keepalive(ctx context.Context) (bool, int64, string) {
	period := 3 * heartbeatTimeout
	start := time.Now()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	polls := 0
	for {
		e, err := w.lookupE(ctx)
		polls++
		elapsed := time.Since(start)
		switch {
		case err != nil:
			return false, elapsed.Milliseconds(), fmt.Sprintf("after %.1fs: %v", elapsed.Seconds(), err)
		case !e.present:
			return false, elapsed.Milliseconds(), fmt.Sprintf("E not listed after %.1fs (poll %d)", elapsed.Seconds(), polls)
		case !e.healthy:
			return false, elapsed.Milliseconds(), fmt.Sprintf("E unhealthy after %.1fs (poll %d)", elapsed.Seconds(), polls)
		}
		if elapsed >= period {
			return true, elapsed.Milliseconds(), fmt.Sprintf("healthy for %.0fs (%d polls)", period.Seconds(), polls)
		}
		select {
		case <-ctx.Done():
			return false, time.Since(start).Milliseconds(), "interrupted: " + ctx.Err().Error()
		case <-tick.C:
		}
	}
}

// restart stops the server with SIGTERM, starts it again on the same ports and data
// dir and waits (≤ 30 s after ready) for E to be listed healthy again.
func (w *waiter) restart(ctx context.Context) (bool, int64, string) {
	t0 := time.Now()
	if err := w.srv.stop(syscall.SIGTERM, stopTimeout); err != nil {
		return false, time.Since(t0).Milliseconds(), "stop: " + err.Error()
	}
	stopped := time.Since(t0)
	t1 := time.Now()
	if err := w.srv.start(ctx); err != nil {
		return false, time.Since(t0).Milliseconds(), "start again: " + err.Error()
	}
	ready := time.Since(t1)
	w.logf("restart: stopped in %v, ready in %v", stopped.Round(time.Millisecond), ready.Round(time.Millisecond))
	t2 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "not listed"
	for {
		e, err := w.lookupE(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				last = err.Error()
			}
		case e.present && e.healthy:
			back := time.Since(t2)
			return true, back.Milliseconds(), fmt.Sprintf("E back %.1fs after ready (stop %.1fs, ready %.1fs)",
				back.Seconds(), stopped.Seconds(), ready.Seconds())
		case e.present:
			last = "listed unhealthy"
		default:
			last = "not listed"
		}
		select {
		case <-ctx.Done():
			return false, time.Since(t2).Milliseconds(), fmt.Sprintf("E not back %.0fs after ready: %s", time.Since(t2).Seconds(), last)
		case <-tick.C:
		}
	}
}

// stop watches E after the client was killed: it must turn unhealthy and then be
// removed (beats), or be removed at once (a gRPC connection), within 30 s.
func (w *waiter) stop(ctx context.Context) (bool, int64, string) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var unhealthyAt time.Duration
	last := "no answer yet"
	for {
		e, err := w.lookupE(ctx)
		now := time.Since(t0)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				last = err.Error()
			}
		case !e.present:
			if unhealthyAt > 0 {
				return true, now.Milliseconds(), fmt.Sprintf("unhealthy after %.1fs, removed after %.1fs", unhealthyAt.Seconds(), now.Seconds())
			}
			return true, now.Milliseconds(), fmt.Sprintf("removed directly after %.1fs", now.Seconds())
		case !e.healthy:
			if unhealthyAt == 0 {
				unhealthyAt = now
			}
			last = "still listed unhealthy"
		default:
			last = "still listed healthy"
		}
		select {
		case <-ctx.Done():
			return false, time.Since(t0).Milliseconds(), fmt.Sprintf("E not removed %.0fs after the kill: %s", time.Since(t0).Seconds(), last)
		case <-tick.C:
		}
	}
}
