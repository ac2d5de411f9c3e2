package chaos

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Link is the fault proxy of one directed node-to-node link: node From dials node To's
// HTTP and Raft ports through it (the node's --test-peer-proxy). Every connection From
// opens to To passes it, in both byte directions, so a fault set here is a fault of what
// From sends To and of To's answers on those connections.
type Link struct {
	From, To string

	mu      sync.Mutex
	fault   Fault
	conns   map[net.Conn]bool
	rng     *rand.Rand
	proxies []*proxy
	// changed is closed by the next Set: a held chunk waits on it rather than polling,
	// since a 10 s partition piles up held connections (every Raft retry dials anew)
	// whose polling would take CPU from the healthy links this process also carries.
	changed chan struct{}
}

// Fault is what a link does to its traffic.
type Fault struct {
	// Drop closes every open connection and every new one at once (a refused, reset
	// link).
	Drop bool
	// BlackholeOut holds the bytes From sends (they are delivered once healed, as TCP
	// retransmits would); BlackholeIn holds To's answers. Both: a blackhole.
	BlackholeOut, BlackholeIn bool
	// Delay and Jitter delay every chunk by Delay ± Jitter, in order.
	Delay, Jitter time.Duration
}

// Healthy is the fault-free link.
var Healthy = Fault{}

// Blackhole holds every byte either way.
var Blackhole = Fault{BlackholeOut: true, BlackholeIn: true}

func (l *Link) Set(f Fault) {
	l.mu.Lock()
	l.fault = f
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
	var drop []net.Conn
	if f.Drop {
		for c := range l.conns {
			drop = append(drop, c)
		}
	}
	l.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

func (l *Link) get() Fault {
	f, _ := l.watch()
	return f
}

// watch returns the fault and a channel closed when it next changes.
func (l *Link) watch() (Fault, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.fault, l.changed
}

func (l *Link) delay(f Fault) time.Duration {
	if f.Delay == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d := f.Delay
	if f.Jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(2*f.Jitter))) - f.Jitter
	}
	return max(d, 0)
}

func (l *Link) track(c net.Conn, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.conns[c] = true
	} else {
		delete(l.conns, c)
	}
}

// proxy forwards one listener of a link to one target address.
type proxy struct {
	link   *Link
	ln     net.Listener
	target string
	closed atomic.Bool
	done   chan struct{} // closed by Close
	// bytes counts what passed, for the suite's own sanity checks.
	bytes atomic.Int64
}

func newProxy(l *Link, target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{link: l, ln: ln, target: target, done: make(chan struct{})}
	l.mu.Lock()
	l.proxies = append(l.proxies, p)
	l.mu.Unlock()
	go p.serve()
	return p, nil
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) Close() {
	if p.closed.Swap(true) {
		return
	}
	close(p.done)
	p.ln.Close()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(in net.Conn) {
	if p.link.get().Drop {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		in.Close()
		return
	}
	p.link.track(in, true)
	p.link.track(out, true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(out, in, func(f Fault) bool { return f.BlackholeOut }) }()
	go func() { defer wg.Done(); p.pump(in, out, func(f Fault) bool { return f.BlackholeIn }) }()
	wg.Wait()
	p.link.track(in, false)
	p.link.track(out, false)
}

// pump copies src to dst chunk by chunk, holding chunks while held(fault) and delaying
// each by the link's delay. It stops (closing both) at the first error.
func (p *proxy) pump(dst, src net.Conn, held func(Fault) bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				f, changed := p.link.watch()
				if f.Drop || p.closed.Load() {
					return
				}
				if !held(f) {
					if d := p.link.delay(f); d > 0 {
						time.Sleep(d)
					}
					break
				}
				select {
				case <-changed:
				case <-p.done:
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.bytes.Add(int64(n))
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
