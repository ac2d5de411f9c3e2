// Package freeport picks loopback TCP ports for servers a test starts as child processes
// (or hands to a server by number), which bind them some time after the pick.
//
// A port the kernel picks (":0") comes from its ephemeral range (Linux: 32768–60999 by
// default), the same range every outgoing connection on the machine takes its source
// port from. Between the pick and the child's bind, one of the thousands of connections
// a loaded test machine opens can take that port, and the child fails with "address
// already in use" (seen in chaos R12 and e2e). So ports are picked in a window below
// the ephemeral range, which no outgoing connection uses; a port already handed out by
// this process is never handed out again, and every port is checked free by a bind just
// before it is returned.
//
// The e2e and chaos modules and the main module's tests that start roster processes
// all pick their ports here.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The window ports are picked from, before it is cut down to stay clear of the
// ephemeral range: wide enough that two test processes picking at random at the same
// moment rarely meet, and above the ports well-known services listen on.
const (
	windowLow  = 20000
	windowHigh = 32768
)

// attempts bounds the random picks per call before the test is failed.
const attempts = 500

var (
	mu        sync.Mutex
	handedOut = map[int]bool{}
	low, high = window(ephemeralRange())
)

// ephemeralRange reads the kernel's ephemeral port range, with Linux's default when it
// cannot be read.
func ephemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, 60999
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768, 60999
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo > hi {
		return 32768, 60999
	}
	return lo, hi
}

// window returns the part [low, high) of the default window that lies outside the
// ephemeral range [ephLo, ephHi]: the larger piece when the range cuts it in two.
func window(ephLo, ephHi int) (int, int) {
	below := [2]int{windowLow, min(windowHigh, ephLo)}
	above := [2]int{max(windowLow, ephHi+1), windowHigh}
	if below[1]-below[0] >= above[1]-above[0] {
		return below[0], max(below[0], below[1])
	}
	return above[0], above[1]
}

// Pick returns a port on 127.0.0.1 that was free a moment ago, lies outside the
// ephemeral range, and was not handed out before by this process.
func Pick(t testing.TB) int {
	t.Helper()
	return PickWith(t)
}

// PickWith returns a port P as Pick does such that P+off, for every off of offsets,
// is free, outside the ephemeral range and not handed out before as well; all of them
// are handed out. Roster's gRPC port is its HTTP port + 1000 (Nacos' rule), so
// PickWith(t, 1000) is an HTTP port whose gRPC neighbour is free.
func PickWith(t testing.TB, offsets ...int) int {
	t.Helper()
	p, ok := pick(offsets)
	if !ok {
		t.Fatalf("freeport: no free port P in [%d, %d) with P%+v free too after %d attempts", low, high, offsets, attempts)
	}
	return p
}

func pick(offsets []int) (int, bool) {
	lo, hi := low, high
	for _, off := range offsets {
		lo = max(lo, low-off)
		hi = min(hi, high-off)
	}
	if lo >= hi {
		return 0, false
	}
	mu.Lock()
	defer mu.Unlock()
	for range attempts {
		p := lo + rand.IntN(hi-lo)
		all := append([]int{p}, offsets...)
		for i := 1; i < len(all); i++ {
			all[i] += p
		}
		if anyHandedOut(all) || !allFree(all) {
			continue
		}
		for _, q := range all {
			handedOut[q] = true
		}
		return p, true
	}
	return 0, false
}

func anyHandedOut(ports []int) bool {
	for _, p := range ports {
		if handedOut[p] {
			return true
		}
	}
	return false
}

// allFree binds each port on 127.0.0.1 and releases it.
func allFree(ports []int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}
