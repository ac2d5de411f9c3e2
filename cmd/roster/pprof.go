package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofFlags defines --pprof-addr: Go's profiling endpoints on their own listener, off
// unless given, and only on a loopback address (they expose the process's internals).
func pprofFlags(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, "pprof-addr", "", "serve /debug/pprof/ on this loopback address (e.g. 127.0.0.1:6060); off when empty")
}

// checkPprofAddr refuses a pprof address that is not loopback.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof-addr %q: only a loopback address is allowed", addr)
	}
	return nil
}

// startPprof serves the profiling endpoints on addr until the returned stop is called.
func startPprof(addr string, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --pprof-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof endpoints on", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
