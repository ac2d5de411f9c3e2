package healthcheck

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Config. The interval and jitter are Nacos': a health-check task runs every
// 2 s plus a random delay of up to 5 s (HealthCheckTask's checkRtNormalized).
const (
	DefaultInterval    = 2 * time.Second
	DefaultJitter      = 5 * time.Second
	DefaultTimeout     = time.Second
	DefaultCheckTimes  = 3
	DefaultWorkers     = 256
	DefaultFlipTimeout = 10 * time.Second
	// DefaultCIDRs lets a probe dial any address (the --health-check-cidrs default).
	DefaultCIDRs = "0.0.0.0/0,::/0"
)

// Limits on what an HTTP probe reads of an answer.
const (
	httpBodyLimit   = 64 << 10
	httpHeaderLimit = 16 << 10
)

// Clock schedules the rounds. The production clock is time.After; tests use a fake that
// fires when the test says, so that they count rounds rather than wait for them.
type Clock interface {
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a Prober. Zero values take the defaults given per field.
type Config struct {
	// Interval is the least time between the end of one round and the start of the
	// next; 0 means DefaultInterval.
	Interval time.Duration
	// Jitter is the upper bound of a random delay added to each Interval, uniform in
	// [0, Jitter); 0 means DefaultJitter.
	Jitter time.Duration
	// Timeout bounds one probe: the connect, and for HTTP and gRPC the answer too; 0
	// means DefaultTimeout.
	Timeout time.Duration
	// CheckTimes is how many results in a row must disagree with the believed health
	// before it flips (Nacos' checkTimes); 0 means DefaultCheckTimes.
	CheckTimes int
	// Workers is the number of probes that may be in flight at once; 0 means
	// DefaultWorkers.
	Workers int
	// FlipTimeout bounds one Flip call; 0 means DefaultFlipTimeout.
	FlipTimeout time.Duration
	// AllowedCIDRs are the only networks a probe may dial (ParseCIDRs reads the flag's
	// comma list). A target outside them is never probed and keeps its stored health.
	// nil means every address (DefaultCIDRs); an empty non-nil list allows nothing.
	AllowedCIDRs []netip.Prefix
	// Clock defaults to the system clock.
	Clock Clock
	// Logger defaults to slog.Default(); the prober adds component=healthcheck.
	Logger *slog.Logger
}

// Validate reports a setting out of range, naming it.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("healthcheck: interval must not be negative, got %v", c.Interval)
	case c.Jitter < 0:
		return fmt.Errorf("healthcheck: jitter must not be negative, got %v", c.Jitter)
	case c.Timeout < 0:
		return fmt.Errorf("healthcheck: probe timeout must not be negative, got %v", c.Timeout)
	case c.CheckTimes < 0:
		return fmt.Errorf("healthcheck: check times must not be negative, got %d", c.CheckTimes)
	case c.Workers < 0:
		return fmt.Errorf("healthcheck: workers must not be negative, got %d", c.Workers)
	case c.FlipTimeout < 0:
		return fmt.Errorf("healthcheck: flip timeout must not be negative, got %v", c.FlipTimeout)
	}
	for _, p := range c.AllowedCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("healthcheck: allowed CIDRs: invalid prefix %v", p)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CheckTimes == 0 {
		c.CheckTimes = DefaultCheckTimes
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.FlipTimeout == 0 {
		c.FlipTimeout = DefaultFlipTimeout
	}
	if c.AllowedCIDRs == nil {
		all, err := ParseCIDRs(DefaultCIDRs)
		if err != nil {
			panic("healthcheck: DefaultCIDRs does not parse: " + err.Error())
		}
		c.AllowedCIDRs = all
	}
	// Masked, so that 10.1.2.3/8 means 10.0.0.0/8 and the list prints as it works.
	masked := make([]netip.Prefix, len(c.AllowedCIDRs))
	for i, p := range c.AllowedCIDRs {
		masked[i] = p.Masked()
	}
	c.AllowedCIDRs = masked
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ParseCIDRs reads a comma-separated list of CIDR prefixes (the --health-check-cidrs
// flag), such as "127.0.0.0/8,::1/128". A bare address means that address alone (/32 or
// /128). Blank items are skipped; an empty list parses to an empty, non-nil slice, which
// allows nothing.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			a, err := netip.ParseAddr(item)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("healthcheck: %q is not a CIDR prefix (want e.g. 127.0.0.0/8)", item)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("healthcheck: %q is not a CIDR prefix (want e.g. 127.0.0.0/8)", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
