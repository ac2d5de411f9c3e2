package healthcheck

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs(" 127.0.0.0/8, ::1 ,10.1.2.3/8,,")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseCIDRs = %v, want %v", got, want)
	}
	for _, bad := range []string{"localhost", "10.0.0.0/33", "fe80::1%eth0", "127.0.0.1/8/1"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted it", bad)
		}
	}
	empty, err := ParseCIDRs("")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("ParseCIDRs(\"\") = %v, %v; want an empty, non-nil list", empty, err)
	}
	all, _ := ParseCIDRs(DefaultCIDRs)
	g := guard{allowed: all}
	for _, a := range []string{"10.0.0.1", "127.0.0.1", "::1", "2001:db8::1", "::ffff:10.0.0.1"} {
		if !g.permits(netip.MustParseAddr(a)) {
			t.Errorf("the default list refuses %s", a)
		}
	}
}

func TestGuardJudgesMappedAddressesAsIPv4(t *testing.T) {
	g := guard{allowed: mustCIDRs("127.0.0.0/8,::/0")}
	// ::/0 contains every IPv6 address, but ::ffff:10.0.0.1 reaches 10.0.0.1.
	if g.permits(netip.MustParseAddr("::ffff:10.0.0.1")) {
		t.Fatal("an IPv4-mapped address slipped past the IPv4 list through ::/0")
	}
	if !g.permits(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Fatal("::ffff:127.0.0.1 is 127.0.0.1, inside the list")
	}
	if (guard{allowed: []netip.Prefix{}}).permits(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("an empty list must allow nothing")
	}
}

func TestConfigValidateAndDefaults(t *testing.T) {
	for _, c := range []Config{
		{Interval: -1}, {Jitter: -time.Second}, {Timeout: -1}, {CheckTimes: -1}, {Workers: -2}, {FlipTimeout: -1},
		{AllowedCIDRs: []netip.Prefix{{}}},
	} {
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "healthcheck: ") {
			t.Errorf("Validate(%+v) = %v, want a healthcheck error", c, err)
		}
		if _, err := New(c, &store{}, alone(), &store{}); err == nil {
			t.Errorf("New accepted %+v", c)
		}
	}
	d := Config{}.withDefaults()
	if d.Interval != 2*time.Second || d.Jitter != 5*time.Second || d.CheckTimes != 3 || d.Workers != DefaultWorkers ||
		d.Timeout != DefaultTimeout || len(d.AllowedCIDRs) != 2 {
		t.Fatalf("defaults = %+v", d)
	}
	if _, err := New(Config{}, nil, alone(), &store{}); err == nil {
		t.Fatal("New accepted a nil Source")
	}
}
