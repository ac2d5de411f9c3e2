package nodeauth

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// maxPendingHandshakes bounds the connections being checked at once; more are closed
// at once, so a flood of silent connections costs bounded memory.
const maxPendingHandshakes = 128

// StreamLayer is a raft.StreamLayer whose Accept returns only connections that passed
// the handshake, and whose Dial proves this node's credential before Raft writes.
type StreamLayer struct {
	cred      *Credential
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger

	conns   chan net.Conn
	pending chan struct{}
	closed  chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu       sync.Mutex
	inFlight map[net.Conn]struct{}
	refused  int
	lastLog  time.Time
}

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer serves Raft on ln. advertise is the address peers dial (ln's address
// when nil). Refused connections are logged to log, at most once every 10 s.
func (c *Credential) NewStreamLayer(ln net.Listener, advertise net.Addr, log *slog.Logger) *StreamLayer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &StreamLayer{
		cred: c, ln: ln, advertise: advertise, log: log,
		conns:    make(chan net.Conn),
		pending:  make(chan struct{}, maxPendingHandshakes),
		closed:   make(chan struct{}),
		inFlight: map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *StreamLayer) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-s.closed:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		select {
		case s.pending <- struct{}{}:
		default:
			conn.Close()
			s.refuse(conn.RemoteAddr(), errors.New("too many connections in their handshake"))
			continue
		}
		if !s.track(conn) {
			conn.Close()
			<-s.pending
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.pending }()
			out, err := s.cred.Accept(conn)
			s.untrack(conn)
			if err != nil {
				s.refuse(conn.RemoteAddr(), err)
				return
			}
			select {
			case s.conns <- out:
			case <-s.closed:
				out.Close()
			}
		}()
	}
}

func (s *StreamLayer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return false
	default:
	}
	s.inFlight[c] = struct{}{}
	return true
}

func (s *StreamLayer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.inFlight, c)
	s.mu.Unlock()
}

func (s *StreamLayer) refuse(from net.Addr, err error) {
	s.mu.Lock()
	s.refused++
	now := time.Now()
	if now.Sub(s.lastLog) < 10*time.Second {
		s.mu.Unlock()
		return
	}
	n := s.refused
	s.refused, s.lastLog = 0, now
	s.mu.Unlock()
	s.log.Warn("refused a Raft connection without the cluster credential", "from", from.String(), "err", err, "refused", n)
}

// Accept returns the next authenticated connection.
func (s *StreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes connections still in their handshake and waits for
// the accept loop.
func (s *StreamLayer) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		close(s.closed)
		for c := range s.inFlight {
			c.Close()
		}
		s.mu.Unlock()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr is the advertised address.
func (s *StreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// Dial connects to a peer's Raft port and proves this node's credential.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", s.cred.dialAddr(string(address)))
	if err != nil {
		return nil, err
	}
	return s.cred.Dial(conn, timeout)
}
