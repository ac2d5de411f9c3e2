package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/roster-registry/roster/client"
)

// runHealth asks a node's /readyz and exits 0 only on 200. It is what container
// HEALTHCHECKs and scripts run where no curl or wget is installed: the image holds
// nothing but this binary and a shell.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("roster health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := os.Getenv("ROSTER_ADDR")
	if addr == "" {
		addr = client.DefaultAddr
	}
	fs.StringVar(&addr, "addr", addr, "server `URL` (env ROSTER_ADDR)")
	path := fs.String("path", "/readyz", "`path` to ask: /readyz (serves traffic) or /healthz (process alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "longest wait for the answer")
	caFile := fs.String("ca", "", "PEM `file` of the CA that signed the node's certificate, for an https:// --addr (default: the system's roots)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: roster health [flags]\n\nExit 0 when the node answers 200, 1 otherwise.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "roster health: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := strings.TrimSuffix(addr, "/") + *path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "roster health: %v\n", err)
		return exitUsage
	}
	httpClient := http.DefaultClient
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "roster health: --ca: %v\n", err)
			return exitUsage
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "roster health: --ca %s: no PEM certificate in it\n", *caFile)
			return exitUsage
		}
		httpClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "roster health: %v\n", err)
		return exitError
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "roster health: GET %s = %s: %s\n", url, resp.Status, strings.TrimSpace(string(body)))
		return exitError
	}
	fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return exitOK
}
