package freeport

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// TestPickStaysOutOfTheEphemeralRange: every port, and every offset neighbour, lies
// below the kernel's ephemeral range, is bindable, and is never handed out twice, even
// when picked from many goroutines at once.
func TestPickStaysOutOfTheEphemeralRange(t *testing.T) {
	ephLo, ephHi := ephemeralRange()
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				p := PickWith(t, 1000)
				mu.Lock()
				for _, q := range []int{p, p + 1000} {
					if seen[q] {
						t.Errorf("port %d handed out twice", q)
					}
					seen[q] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for q := range seen {
		if q >= ephLo && q <= ephHi {
			t.Errorf("port %d lies in the ephemeral range %d-%d", q, ephLo, ephHi)
		}
		if q < windowLow || q >= windowHigh {
			t.Errorf("port %d lies outside the window [%d, %d)", q, windowLow, windowHigh)
		}
	}
	p := Pick(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("picked port %d is not bindable: %v", p, err)
	}
	l.Close()
}

// TestPickWithNegativeOffset: a base port with a neighbour below it (packaging's Raft
// port is HTTP - 1000) keeps the neighbour inside the window too.
func TestPickWithNegativeOffset(t *testing.T) {
	for range 50 {
		p := PickWith(t, -1000, 1000)
		if p-1000 < low || p+1000 >= high {
			t.Fatalf("PickWith(-1000, 1000) = %d: a neighbour lies outside [%d, %d)", p, low, high)
		}
	}
}

// TestPickSkipsABoundPort: a port something listens on is never returned.
func TestPickSkipsABoundPort(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	bound := map[int]bool{}
	// Hold a block of the window so that random picks hit bound ports often.
	for p := low; p < low+500 && p < high; p++ {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			held = append(held, l)
			bound[p] = true
		}
	}
	for range 200 {
		if p := Pick(t); bound[p] {
			t.Fatalf("Pick returned %d, which is bound", p)
		}
	}
}

func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		ephLo, ephHi, low, high int
	}{
		{32768, 60999, 20000, 32768}, // Linux's default
		{28000, 60999, 20000, 28000}, // the range reaches into the window
		{1024, 25000, 25001, 32768},  // only the part above the range is left
		{1024, 65535, 20000, 20000},  // nothing is left: no pick, a clear failure
	} {
		if lo, hi := window(tc.ephLo, tc.ephHi); lo != tc.low || hi != tc.high {
			t.Errorf("window(%d, %d) = [%d, %d), want [%d, %d)", tc.ephLo, tc.ephHi, lo, hi, tc.low, tc.high)
		}
	}
}
