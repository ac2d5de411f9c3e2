package server

import (
	"fmt"
	"time"

	"github.com/roster-registry/roster/healthcheck"
)

// HealthCheckConfig is the active health checking of persistent instances: each member
// probes its share (TCP, HTTP or gRPC, per cluster) and commits only flips.
type HealthCheckConfig struct {
	// CIDRs limits what a probe may dial (comma-separated prefixes or addresses); an
	// instance outside is not probed and keeps the health it has. Default: every address.
	CIDRs string
	// Interval and Jitter space the rounds: Interval plus a random part of Jitter
	// (Nacos: about 2 s + up to 5 s).
	Interval time.Duration
	Jitter   time.Duration
	// Timeout bounds one probe.
	Timeout time.Duration
	// CheckTimes is how many results in a row flip health (Nacos' checkTimes).
	CheckTimes int
	// Workers bounds the probes in flight.
	Workers int
}

func defaultHealthCheckConfig() HealthCheckConfig {
	return HealthCheckConfig{
		CIDRs:      healthcheck.DefaultCIDRs,
		Interval:   healthcheck.DefaultInterval,
		Jitter:     healthcheck.DefaultJitter,
		Timeout:    healthcheck.DefaultTimeout,
		CheckTimes: healthcheck.DefaultCheckTimes,
		Workers:    healthcheck.DefaultWorkers,
	}
}

// prober is the prober's own configuration.
func (c *HealthCheckConfig) prober() (healthcheck.Config, error) {
	cidrs, err := healthcheck.ParseCIDRs(c.CIDRs)
	if err != nil {
		return healthcheck.Config{}, fmt.Errorf("invalid value for --health-check-cidrs: %v", err)
	}
	jitter := c.Jitter
	if jitter == 0 {
		// The prober reads a zero jitter as "use the default"; --health-check-jitter 0
		// means no jitter.
		jitter = time.Nanosecond
	}
	return healthcheck.Config{
		Interval: c.Interval, Jitter: jitter, Timeout: c.Timeout,
		CheckTimes: c.CheckTimes, Workers: c.Workers, AllowedCIDRs: cidrs,
	}, nil
}

func (c *HealthCheckConfig) validate() error {
	bad := func(flag, why string) error { return fmt.Errorf("invalid value for --%s: %s", flag, why) }
	switch {
	case c.Interval <= 0:
		return bad("health-check-interval", "must be positive")
	case c.Jitter < 0:
		return bad("health-check-jitter", "must not be negative")
	case c.Timeout <= 0:
		return bad("health-check-timeout", "must be positive")
	case c.CheckTimes <= 0:
		return bad("health-check-times", "must be positive")
	case c.Workers <= 0:
		return bad("health-check-workers", "must be positive")
	}
	if _, err := c.prober(); err != nil {
		return err
	}
	return nil
}
