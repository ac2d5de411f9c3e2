// Package nodeauth owns the credential one Roster node proves to another: mutual TLS
// against the cluster's CA, or a shared cluster key. Every node-to-node path checks it
// before it reads a message: the Raft port (StreamLayer: a handshake before any Raft
// byte), the internal HTTP routes (Require: before the body is read), and every HTTP
// request a node sends to another (Transport).
//
// With a cluster key the proof is a mutual challenge–response (Raft) or an HMAC of the
// request line and the time (HTTP); the key never crosses the wire. The key
// authenticates; it does not encrypt. Across a network others can reach, use mutual TLS.
package nodeauth

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// MinKeyLen is the shortest cluster key accepted, in bytes.
const MinKeyLen = 32

// maxKeyFile bounds a key file: a key is a line of text, never a large file.
const maxKeyFile = 4096

// DefaultHandshakeTimeout bounds a Raft connection's handshake.
const DefaultHandshakeTimeout = 5 * time.Second

// Mode names how a credential is proved.
type Mode string

const (
	ModeClusterKey Mode = "cluster-key"
	ModeMutualTLS  Mode = "mutual-tls"
)

// Credential is a node's proof of membership. It is safe for concurrent use.
type Credential struct {
	key []byte // cluster key mode

	// mutual TLS mode
	cert  *tls.Certificate
	roots *x509.CertPool

	// HandshakeTimeout bounds each Raft handshake; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// DialRewrite, a test-only fault hook, maps a peer address (host:port) to the
	// address dialled instead, so that a test can put a fault proxy on each link. Every
	// node-to-node connection (Raft and HTTP) is dialled through it. Set before use.
	DialRewrite map[string]string
	// Wall tells the wall-clock time the HTTP MAC is stamped and checked with; nil is
	// time.Now. A test shifts it to step one node's clock.
	Wall func() time.Time
	// OnSkew, when set, is told the skew of every request whose MAC is valid but whose
	// time is more than WarnClockSkew from this node's clock (the server logs it and
	// counts it in a metric). It must be cheap and safe for concurrent use.
	OnSkew func(skew time.Duration)

	transportOnce sync.Once
	transport     *transport
}

// dialAddr is the address to dial for a peer's addr (DialRewrite applied).
func (c *Credential) dialAddr(addr string) string {
	if to, ok := c.DialRewrite[addr]; ok {
		return to
	}
	return addr
}

func (c *Credential) wall() time.Time {
	if c.Wall != nil {
		return c.Wall()
	}
	return time.Now()
}

// NewKey makes a cluster-key credential of a copy of key (at least MinKeyLen bytes).
func NewKey(key []byte) (*Credential, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("nodeauth: a cluster key needs at least %d bytes, got %d", MinKeyLen, len(key))
	}
	return &Credential{key: bytes.Clone(key)}, nil
}

// Ephemeral makes a cluster-key credential of a random key that no other node knows: a
// node holding it runs alone and accepts no peer.
func Ephemeral() *Credential {
	key := make([]byte, MinKeyLen)
	if _, err := rand.Read(key); err != nil {
		panic("nodeauth: no randomness: " + err.Error())
	}
	return &Credential{key: key}
}

// LoadKeyFile reads a cluster key file: at least MinKeyLen bytes once trailing white
// space (a final newline) is dropped, and not readable or writable by other users.
func LoadKeyFile(path string) (*Credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cluster key file: %w", err)
	}
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("cluster key file %s is not a regular file", path)
	case st.Mode().Perm()&0o007 != 0:
		return nil, fmt.Errorf("cluster key file %s is accessible to other users (mode %04o); run: chmod 600 %s", path, st.Mode().Perm(), path)
	case st.Size() > maxKeyFile:
		return nil, fmt.Errorf("cluster key file %s is %d bytes; a key is at most %d", path, st.Size(), maxKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("cluster key file %s: %w", path, err)
	}
	key := bytes.TrimRight(b, " \t\r\n")
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("cluster key file %s holds %d bytes; a cluster key needs at least %d (e.g. openssl rand -hex 32 > %s)", path, len(key), MinKeyLen, path)
	}
	return &Credential{key: key}, nil
}

// LoadTLS makes a mutual-TLS credential from PEM files: this node's certificate and
// key, and the CA that signed every member's certificate.
func LoadTLS(certFile, keyFile, caFile string) (*Credential, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read --tls-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", caFile)
	}
	return NewTLS(cert, roots)
}

// NewTLS makes a mutual-TLS credential: cert is this node's, roots the cluster's CA.
func NewTLS(cert tls.Certificate, roots *x509.CertPool) (*Credential, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("nodeauth: a TLS credential needs a certificate")
	}
	if roots == nil {
		return nil, errors.New("nodeauth: a TLS credential needs the cluster CA")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("nodeauth: parse certificate: %w", err)
	}
	cert.Leaf = leaf
	// This node's own certificate must pass the check its peers will make.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	// A node is a server to its peers and their client: both usages must be allowed.
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return nil, fmt.Errorf("nodeauth: this node's certificate does not verify against the cluster CA for %s: %w", usageName(u), err)
		}
	}
	return &Credential{cert: &cert, roots: roots}, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "server authentication"
	}
	return "client authentication"
}

// Mode reports how the credential is proved.
func (c *Credential) Mode() Mode {
	if c.cert != nil {
		return ModeMutualTLS
	}
	return ModeClusterKey
}

// Certificate is the node's certificate in mutual-TLS mode, else nil.
func (c *Credential) Certificate() *tls.Certificate { return c.cert }

func (c *Credential) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

// verifyPeer checks a peer's certificate chain against the cluster CA. Any certificate
// the CA signed is a member: names are not checked, since nodes dial one another by
// address, so the CA must be the cluster's own.
func (c *Credential) verifyPeer(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("nodeauth: the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// clientTLS is the configuration this node dials another with.
func (c *Credential) clientTLS(protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*c.cert},
		NextProtos:   protos,
		// The chain is checked against the cluster CA in VerifyConnection instead of
		// against a host name (see verifyPeer).
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		},
	}
}

// PortTLS is the TLS configuration of a port that serves clients and nodes alike (the
// HTTP port): cert is the port's certificate; with a mutual-TLS credential a client
// certificate is asked for, verified against the cluster CA when one is presented
// (ordinary clients present none), and Require accepts the request as a node's.
func PortTLS(cert tls.Certificate, c *Credential, protos []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   protos,
	}
	if c != nil && c.cert != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = c.roots
	}
	return cfg
}
