package nodeauth

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// maxPendingSniffs bounds the connections whose first byte is awaited at once.
const maxPendingSniffs = 4096

// SniffTLS serves TLS and plain connections on one listener, told apart by their first
// byte (22 starts a TLS handshake record): TLS connections are returned as *tls.Conn
// over cfg, so that an HTTP server sees their certificates; the others as they are.
// A connection that sends nothing within timeout is closed. It lets an HTTP port stay
// plain for clients while members reach it with mutual TLS.
func SniffTLS(ln net.Listener, cfg *tls.Config, timeout time.Duration) net.Listener {
	s := &sniffListener{
		Listener: ln, cfg: cfg, timeout: timeout,
		conns:   make(chan net.Conn),
		pending: make(chan struct{}, maxPendingSniffs),
		closed:  make(chan struct{}),
	}
	go s.loop()
	return s
}

type sniffListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration

	conns   chan net.Conn
	pending chan struct{}
	closed  chan struct{}
	once    sync.Once
	errMu   sync.Mutex
	err     error
}

func (s *sniffListener) loop() {
	var backoff time.Duration
	for {
		conn, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-s.closed:
					return
				case <-time.After(backoff):
				}
				continue
			}
			s.errMu.Lock()
			s.err = err
			s.errMu.Unlock()
			s.Close()
			return
		}
		backoff = 0
		select {
		case s.pending <- struct{}{}:
		default:
			conn.Close()
			continue
		}
		go func() {
			defer func() { <-s.pending }()
			out, ok := s.sniff(conn)
			if !ok {
				conn.Close()
				return
			}
			select {
			case s.conns <- out:
			case <-s.closed:
				conn.Close()
			}
		}()
	}
}

func (s *sniffListener) sniff(conn net.Conn) (net.Conn, bool) {
	b := make([]byte, 1)
	_ = conn.SetReadDeadline(time.Now().Add(s.timeout))
	done := make(chan struct{})
	go func() {
		select {
		case <-s.closed:
			_ = conn.SetReadDeadline(time.Now())
		case <-done:
		}
	}()
	n, _ := conn.Read(b)
	close(done)
	if n != 1 {
		return nil, false
	}
	_ = conn.SetReadDeadline(time.Time{})
	pc := &peeked{Conn: conn, first: b[0], has: true}
	if b[0] == 22 {
		return tls.Server(pc, s.cfg), true
	}
	return pc, true
}

func (s *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		s.errMu.Lock()
		defer s.errMu.Unlock()
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
}

func (s *sniffListener) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.Listener.Close()
	})
	return err
}

// peeked is a connection whose first byte was read already.
type peeked struct {
	net.Conn
	mu    sync.Mutex
	first byte
	has   bool
}

func (p *peeked) Read(b []byte) (int, error) {
	p.mu.Lock()
	if p.has && len(b) > 0 {
		b[0] = p.first
		p.has = false
		p.mu.Unlock()
		return 1, nil
	}
	p.mu.Unlock()
	return p.Conn.Read(b)
}
