package nodeauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The Raft handshake. The dialer speaks first; nothing of Raft is read before it ends.
//
//	dialer → acceptor:  "RSTR" version mode [nonceD]                      (key: 32-byte nonce)
//	acceptor → dialer:  "RSTR" version mode [nonceA macA]                 (key: nonce, 32-byte MAC)
//	dialer → acceptor:  [macD]                                            (key only)
//	acceptor → dialer:  ack (1)
//
// mac = HMAC-SHA256(key, context || role || nonceD || nonceA), role "acceptor" or
// "dialer", compared in constant time. The acceptor proves the key before the dialer
// does, and each side's MAC covers the other side's fresh nonce, so neither a replayed
// nor a reflected answer passes. With mutual TLS the TLS handshake (client
// certificates required, ALPN "roster-raft/1") comes first and the preamble then only
// carries the version. A wrong magic, version or mode, a bad MAC, or a deadline
// closes the connection.
const (
	magic          = "RSTR"
	version   byte = 1
	modeKey   byte = 'K'
	modeTLS   byte = 'T'
	ackOK     byte = 0x5a
	nonceLen       = 32
	macLen         = sha256.Size
	headerLen      = len(magic) + 2
	raftALPN       = "roster-raft/1"
	raftCtx        = "roster raft handshake v1\x00"
)

// ErrHandshake is the error of every refused handshake.
var ErrHandshake = errors.New("nodeauth: node handshake failed")

func (c *Credential) mode() byte {
	if c.cert != nil {
		return modeTLS
	}
	return modeKey
}

func header(mode byte) []byte { return append([]byte(magic), version, mode) }

func (c *Credential) raftMAC(role string, nonceD, nonceA []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(raftCtx))
	m.Write([]byte(role))
	m.Write(nonceD)
	m.Write(nonceA)
	return m.Sum(nil)
}

func (c *Credential) raftServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.roots,
		NextProtos:   []string{raftALPN},
	}
}

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHandshake, fmt.Sprintf(format, args...))
}

// readHeader reads and checks the magic, version and mode.
func readHeader(r io.Reader, mode byte) error {
	h := make([]byte, headerLen)
	if _, err := io.ReadFull(r, h); err != nil {
		return fail("read preamble: %v", err)
	}
	switch {
	case string(h[:len(magic)]) != magic:
		return fail("not a Roster node connection")
	case h[len(magic)] != version:
		return fail("unsupported node protocol version %d (this node speaks %d)", h[len(magic)], version)
	case h[len(magic)+1] != mode:
		return fail("the peer uses another credential mode (%q, this node %q): give every node the same --cluster-key-file or --tls-* flags", h[len(magic)+1], mode)
	}
	return nil
}

// Accept runs the acceptor's side of the handshake on a new connection, within the
// handshake timeout, and returns the connection to hand to Raft (a *tls.Conn with
// mutual TLS). On failure it closes conn.
func (c *Credential) Accept(conn net.Conn) (net.Conn, error) {
	out, err := c.accept(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return out, nil
}

func (c *Credential) accept(conn net.Conn) (net.Conn, error) {
	if err := conn.SetDeadline(time.Now().Add(c.handshakeTimeout())); err != nil {
		return nil, err
	}
	if c.cert != nil {
		tc := tls.Server(conn, c.raftServerTLS())
		if err := tc.Handshake(); err != nil {
			return nil, fail("tls: %v", err)
		}
		if tc.ConnectionState().NegotiatedProtocol != raftALPN {
			return nil, fail("tls: the peer did not ask for %s", raftALPN)
		}
		conn = tc
	}
	mode := c.mode()
	if err := readHeader(conn, mode); err != nil {
		return nil, err
	}
	if mode == modeTLS {
		if _, err := conn.Write(append(header(mode), ackOK)); err != nil {
			return nil, fail("write: %v", err)
		}
	} else {
		nonceD := make([]byte, nonceLen)
		if _, err := io.ReadFull(conn, nonceD); err != nil {
			return nil, fail("read nonce: %v", err)
		}
		nonceA := make([]byte, nonceLen)
		if _, err := rand.Read(nonceA); err != nil {
			return nil, err
		}
		msg := append(header(mode), nonceA...)
		msg = append(msg, c.raftMAC("acceptor", nonceD, nonceA)...)
		if _, err := conn.Write(msg); err != nil {
			return nil, fail("write: %v", err)
		}
		macD := make([]byte, macLen)
		if _, err := io.ReadFull(conn, macD); err != nil {
			return nil, fail("read proof: %v", err)
		}
		if !hmac.Equal(macD, c.raftMAC("dialer", nonceD, nonceA)) {
			return nil, fail("the peer does not hold the cluster key")
		}
		if _, err := conn.Write([]byte{ackOK}); err != nil {
			return nil, fail("write: %v", err)
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}

// Dial runs the dialer's side of the handshake on conn within timeout (the handshake
// timeout when zero) and returns the connection for Raft. On failure it closes conn.
func (c *Credential) Dial(conn net.Conn, timeout time.Duration) (net.Conn, error) {
	out, err := c.dial(conn, timeout)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return out, nil
}

func (c *Credential) dial(conn net.Conn, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > c.handshakeTimeout() {
		timeout = c.handshakeTimeout()
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if c.cert != nil {
		cfg := c.clientTLS([]string{raftALPN})
		cfg.MinVersion = tls.VersionTLS13
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fail("tls: %v", err)
		}
		if tc.ConnectionState().NegotiatedProtocol != raftALPN {
			return nil, fail("tls: the peer does not speak %s", raftALPN)
		}
		conn = tc
	}
	mode := c.mode()
	hello := header(mode)
	var nonceD []byte
	if mode == modeKey {
		nonceD = make([]byte, nonceLen)
		if _, err := rand.Read(nonceD); err != nil {
			return nil, err
		}
		hello = append(hello, nonceD...)
	}
	if _, err := conn.Write(hello); err != nil {
		return nil, fail("write: %v", err)
	}
	if err := readHeader(conn, mode); err != nil {
		return nil, err
	}
	if mode == modeKey {
		buf := make([]byte, nonceLen+macLen)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, fail("read the peer's proof: %v", err)
		}
		nonceA, macA := buf[:nonceLen], buf[nonceLen:]
		if !hmac.Equal(macA, c.raftMAC("acceptor", nonceD, nonceA)) {
			return nil, fail("the peer does not hold the cluster key")
		}
		if _, err := conn.Write(c.raftMAC("dialer", nonceD, nonceA)); err != nil {
			return nil, fail("write: %v", err)
		}
	}
	ack := make([]byte, 1)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != ackOK {
		return nil, fail("the peer refused this node's credential")
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return conn, nil
}
