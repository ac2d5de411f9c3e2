package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/grpcapi"
	"github.com/roster-registry/roster/registry"
)

// grpcOffset is Nacos' rule: the gRPC port for clients is the HTTP port + 1000.
const grpcOffset = 1000

// grpcConfig is the Nacos 2.x gRPC front's part of `roster server`.
type grpcConfig struct {
	Addr           string
	DetectIdle     time.Duration
	DetectTimeout  time.Duration
	PushTimeout    time.Duration
	MaxConnections int
}

func grpcFlags(fs *flag.FlagSet, c *grpcConfig) {
	fs.StringVar(&c.Addr, "grpc-addr", "", "gRPC listen address for Nacos 2.x clients (default: the HTTP host, port + 1000)")
	fs.DurationVar(&c.DetectIdle, "grpc-detect-idle", grpcapi.DefaultDetectIdle, "a gRPC connection silent this long is probed with ClientDetectionRequest")
	fs.DurationVar(&c.DetectTimeout, "grpc-detect-timeout", grpcapi.DefaultDetectTimeout, "a probed gRPC connection that does not answer within this is dropped with its instances")
	fs.DurationVar(&c.PushTimeout, "grpc-push-timeout", grpcapi.DefaultPushTimeout, "a push not acked within this is sent once more")
	fs.IntVar(&c.MaxConnections, "grpc-max-connections", grpcapi.DefaultMaxConnections, "most gRPC client connections held at once")
}

// addr is --grpc-addr, or the HTTP host with the HTTP port + 1000.
func (c *grpcConfig) addr(httpAddr string) (string, error) {
	if c.Addr != "" {
		return c.Addr, nil
	}
	host, portStr, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port+grpcOffset > 65535 {
		return "", fmt.Errorf("--http-addr port %s + %d is no port; set --grpc-addr", portStr, grpcOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+grpcOffset)), nil
}

func (c *grpcConfig) validate(httpAddr string) error {
	bad := func(flag, why string) error { return fmt.Errorf("invalid value for --%s: %s", flag, why) }
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return bad("grpc-addr", "want host:port, got "+strconv.Quote(c.Addr))
		}
	} else if _, err := c.addr(httpAddr); err != nil {
		return bad("grpc-addr", err.Error())
	}
	switch {
	case c.DetectIdle <= 0:
		return bad("grpc-detect-idle", "must be positive")
	case c.DetectTimeout <= 0:
		return bad("grpc-detect-timeout", "must be positive")
	case c.PushTimeout <= 0:
		return bad("grpc-push-timeout", "must be positive")
	case c.MaxConnections <= 0:
		return bad("grpc-max-connections", "must be positive")
	}
	return nil
}

// startGRPC listens on the gRPC address and serves Nacos 2.x clients until Stop.
func startGRPC(cfg *serverConfig, reg *registry.Registry, ready func() bool, authority *auth.Authority, log *slog.Logger) (*grpcapi.Server, error) {
	addr, err := cfg.GRPC.addr(cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	srv := grpcapi.New(grpcapi.Config{
		MaxMetadata:    cfg.MaxMetadata,
		MaxConnections: cfg.GRPC.MaxConnections,
		DetectIdle:     cfg.GRPC.DetectIdle,
		DetectTimeout:  cfg.GRPC.DetectTimeout,
		PushTimeout:    cfg.GRPC.PushTimeout,
		Ready:          ready,
		Auth:           authority,
		Logger:         log,
	}, reg)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("listen on --grpc-addr %s: %w", addr, err)
	}
	ln = cfg.Security.grpcListener(ln)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("grpc server", "err", err)
		}
	}()
	log.Info("grpc listening", "grpc", ln.Addr().String())
	return srv, nil
}

// drainGRPC tells gRPC clients to move (ConnectResetRequest), gives them a moment,
// then closes every connection.
func drainGRPC(srv *grpcapi.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Drain(ctx)
	srv.Stop()
}
