package server

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/roster-registry/roster/grpcapi"
)

// grpcOffset is Nacos' rule: the gRPC port for clients is the HTTP port + 1000.
const grpcOffset = 1000

// GRPCConfig is the Nacos 2.x gRPC front.
type GRPCConfig struct {
	// Addr is the gRPC listen address; empty: the HTTP host with the HTTP port + 1000
	// (or a free port when the HTTP port is 0, which has no such partner).
	Addr string
	// DetectIdle: a connection silent this long is probed with ClientDetectionRequest.
	DetectIdle time.Duration
	// DetectTimeout: a probed connection that does not answer within this is dropped
	// with its instances.
	DetectTimeout time.Duration
	// PushTimeout: a push not acked within this is sent once more.
	PushTimeout time.Duration
	// PushDelay coalesces the changes to one service seen within it into one push:
	// shorter pushes sooner, longer sends fewer pushes during a burst of writes.
	PushDelay time.Duration
	// MaxConnections is the most client connections held at once.
	MaxConnections int
}

func defaultGRPCConfig() GRPCConfig {
	return GRPCConfig{
		DetectIdle:     grpcapi.DefaultDetectIdle,
		DetectTimeout:  grpcapi.DefaultDetectTimeout,
		PushTimeout:    grpcapi.DefaultPushTimeout,
		PushDelay:      grpcapi.DefaultPushDelay,
		MaxConnections: grpcapi.DefaultMaxConnections,
	}
}

// addr is Addr, or the HTTP host with the HTTP port + 1000.
func (c *GRPCConfig) addr(httpAddr string) (string, error) {
	if c.Addr != "" {
		return c.Addr, nil
	}
	host, portStr, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portStr)
	if err == nil && port == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if err != nil || port+grpcOffset > 65535 {
		return "", fmt.Errorf("--http-addr port %s + %d is no port; set --grpc-addr", portStr, grpcOffset)
	}
	return net.JoinHostPort(host, strconv.Itoa(port+grpcOffset)), nil
}

func (c *GRPCConfig) validate(httpAddr string) error {
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
	case c.PushDelay <= 0:
		return bad("grpc-push-delay", "must be positive")
	case c.MaxConnections <= 0:
		return bad("grpc-max-connections", "must be positive")
	}
	return nil
}

// drainGRPC tells gRPC clients to move (ConnectResetRequest), gives them a moment,
// then closes every connection.
func drainGRPC(srv *grpcapi.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	srv.Drain(ctx)
	srv.Stop()
}
