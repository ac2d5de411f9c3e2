package nodeauth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roster-registry/roster/nodeauth/testcerts"
)

func mustKey(t *testing.T, s string) *Credential {
	t.Helper()
	c, err := NewKey([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	keyA = "cluster A key: at least thirty-two bytes long"
	keyB = "cluster B key: at least thirty-two bytes long"
)

// listen starts a stream layer of c on a free loopback port.
func listen(t *testing.T, c *Credential) *StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := c.NewStreamLayer(ln, nil, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// accepted runs Accept in the background; the channel yields what it returns.
func accepted(s *StreamLayer) <-chan net.Conn {
	ch := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := s.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	return ch
}

// roundTrip checks that a connection pair carries bytes both ways once authenticated.
func roundTrip(t *testing.T, dialled net.Conn, acc <-chan net.Conn) {
	t.Helper()
	var server net.Conn
	select {
	case server = <-acc:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection was accepted")
	}
	defer server.Close()
	if _, err := dialled.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, err := server.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(dialled, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

// expectClosed checks that the server closes conn without sending anything.
func expectClosed(t *testing.T, conn net.Conn, within time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", within)
	}
	if len(b) > 0 {
		t.Fatalf("the server answered %q to an unauthenticated connection", b)
	}
}

// noneAccepted checks that acc delivers conn-less: a good dial afterwards is the first
// thing Accept returns.
func noneAccepted(t *testing.T, c *Credential, s *StreamLayer, acc <-chan net.Conn) {
	t.Helper()
	good, err := s.Dial(rafAddr(s), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Write([]byte("good")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-acc:
		defer got.Close()
		buf := make([]byte, 4)
		_ = got.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(got, buf); err != nil || string(buf) != "good" {
			t.Fatalf("Accept returned a connection that is not the authenticated one: %q %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the authenticated connection was not accepted")
	}
}

func rafAddr(s *StreamLayer) raft.ServerAddress { return raft.ServerAddress(s.Addr().String()) }

func TestKeyHandshakeConnects(t *testing.T) {
	c := mustKey(t, keyA)
	s := listen(t, c)
	acc := accepted(s)
	conn, err := s.Dial(rafAddr(s), time.Second)
	if err != nil {
		t.Fatalf("Dial with the cluster key: %v", err)
	}
	defer conn.Close()
	roundTrip(t, conn, acc)
}

func TestWrongKeyIsRefusedBothWays(t *testing.T) {
	a, b := mustKey(t, keyA), mustKey(t, keyB)
	s := listen(t, a)
	acc := accepted(s)
	other := listen(t, b)
	if _, err := other.Dial(rafAddr(s), time.Second); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Dial with another key = %v, want ErrHandshake", err)
	}
	noneAccepted(t, a, s, acc)

	// An acceptor without the key fails the dialer's check of its proof.
	if _, err := s.Dial(rafAddr(other), time.Second); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Dial to a node with another key = %v, want ErrHandshake", err)
	}
}

func TestSilentConnectionIsClosedAtTheDeadline(t *testing.T) {
	c := mustKey(t, keyA)
	c.HandshakeTimeout = 200 * time.Millisecond
	s := listen(t, c)
	acc := accepted(s)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	expectClosed(t, conn, 5*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the handshake timeout", d)
	}
	noneAccepted(t, c, s, acc)
}

func TestSlowHandshakeIsClosed(t *testing.T) {
	c := mustKey(t, keyA)
	c.HandshakeTimeout = 300 * time.Millisecond
	s := listen(t, c)
	acc := accepted(s)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A correct preamble and half a nonce, then nothing.
	if _, err := conn.Write(append(header(modeKey), make([]byte, nonceLen/2)...)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn, 5*time.Second)
	noneAccepted(t, c, s, acc)
}

func TestGarbageIsClosedBeforeAnythingIsDecoded(t *testing.T) {
	for name, payload := range map[string][]byte{
		"http":              []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"raft rpc":          append([]byte{0}, bytes.Repeat([]byte{0x85}, 64)...), // rpcAppendEntries, msgpack map
		"newer version":     append([]byte(magic), version+1, modeKey),
		"tls mode":          append([]byte(magic), version, modeTLS),
		"tls client hello":  {22, 3, 1, 0, 200, 1, 0, 0},
		"bad proof":         nil, // filled below
		"zeroes":            make([]byte, 200),
		"magic in disguise": []byte("RSTX\x01K"),
	} {
		t.Run(name, func(t *testing.T) {
			c := mustKey(t, keyA)
			s := listen(t, c)
			acc := accepted(s)
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if name == "bad proof" {
				// A well-formed hello; the answer's proof is read and a wrong one sent.
				if _, err := conn.Write(append(header(modeKey), make([]byte, nonceLen)...)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, headerLen+nonceLen+macLen)
				if _, err := io.ReadFull(conn, buf); err != nil {
					t.Fatal(err)
				}
				payload = make([]byte, macLen)
			}
			if _, err := conn.Write(payload); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, conn, 5*time.Second)
			noneAccepted(t, c, s, acc)
		})
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", keyA+"\n", 0o600)
	c, err := LoadKeyFile(good)
	if err != nil {
		t.Fatalf("LoadKeyFile(good) = %v", err)
	}
	if !bytes.Equal(c.key, []byte(keyA)) {
		t.Fatalf("key %q, want the file's content without its final newline", c.key)
	}
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"short":              {"too short\n", 0o600, "at least 32"},
		"short once trimmed": {strings.Repeat("x", 30) + "\n\n\n", 0o600, "at least 32"},
		"world-readable":     {keyA, 0o644, "chmod 600"},
		"group-other rw":     {keyA, 0o606, "chmod 600"},
		"too large":          {strings.Repeat("k", maxKeyFile+1), 0o600, "at most"},
	} {
		p := write(strings.ReplaceAll(name, " ", "_"), tc.content, tc.mode)
		if _, err := LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: LoadKeyFile = %v, want an error saying %q", name, err, tc.want)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadKeyFile(missing) succeeded")
	}
	if _, err := LoadKeyFile(dir); err == nil {
		t.Error("LoadKeyFile(a directory) succeeded")
	}
}

// tlsCred issues a node certificate of ca and makes a credential of it.
func tlsCred(t *testing.T, ca *testcerts.CA, name string, usages ...x509.ExtKeyUsage) *Credential {
	t.Helper()
	cert, err := ca.TLSCert(name, usages...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewTLS(cert, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T, name string) *testcerts.CA {
	t.Helper()
	ca, err := testcerts.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestMutualTLSHandshake(t *testing.T) {
	ca, other := newCA(t, "cluster"), newCA(t, "other")
	a, b := tlsCred(t, ca, "n1"), tlsCred(t, ca, "n2")
	s := listen(t, a)
	acc := accepted(s)
	conn, err := listen(t, b).Dial(rafAddr(s), time.Second)
	if err != nil {
		t.Fatalf("Dial with a certificate of the cluster CA: %v", err)
	}
	defer conn.Close()
	if _, ok := conn.(*tls.Conn); !ok {
		t.Fatalf("dialled connection is %T, want *tls.Conn", conn)
	}
	roundTrip(t, conn, acc)

	// A certificate of another CA is refused, and so is a node that trusts another CA.
	stranger := tlsCred(t, other, "n9")
	if _, err := listen(t, stranger).Dial(rafAddr(s), time.Second); err == nil {
		t.Fatal("Dial with a certificate of another CA succeeded")
	}
	noneAccepted(t, a, s, acc)
	strangerLn := listen(t, stranger)
	if _, err := s.Dial(rafAddr(strangerLn), time.Second); err == nil {
		t.Fatal("Dial to a node with a certificate of another CA succeeded")
	}

	// A cluster-key node cannot talk to a TLS node.
	if _, err := listen(t, mustKey(t, keyA)).Dial(rafAddr(s), time.Second); err == nil {
		t.Fatal("Dial with a cluster key to a TLS node succeeded")
	}
	noneAccepted(t, a, s, acc)
}

func TestMutualTLSWithoutClientCertificateIsRefused(t *testing.T) {
	ca := newCA(t, "cluster")
	a := tlsCred(t, ca, "n1")
	s := listen(t, a)
	acc := accepted(s)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{raftALPN}})
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	err = tc.Handshake()
	if err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		_, _ = tc.Write(header(modeTLS))
		_, err = tc.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("a TLS client without a certificate got an answer")
	}
	noneAccepted(t, a, s, acc)
}

func TestNewTLSRefusesCertificatesThatCannotWork(t *testing.T) {
	ca, other := newCA(t, "cluster"), newCA(t, "other")
	cert, err := other.TLSCert("n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTLS(cert, ca.Pool()); err == nil {
		t.Error("NewTLS accepted a certificate of another CA")
	}
	serverOnly, err := ca.TLSCert("n1", x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTLS(serverOnly, ca.Pool()); err == nil || !strings.Contains(err.Error(), "client authentication") {
		t.Errorf("NewTLS(server-auth only) = %v, want a refusal naming client authentication", err)
	}
}

func TestLoadTLSFromFiles(t *testing.T) {
	ca := newCA(t, "cluster")
	f, err := ca.WriteFiles(t.TempDir(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadTLS(f.Cert, f.Key, f.CA)
	if err != nil {
		t.Fatalf("LoadTLS: %v", err)
	}
	if c.Mode() != ModeMutualTLS {
		t.Fatalf("mode %s", c.Mode())
	}
	if _, err := LoadTLS(f.Cert, f.Key, f.Cert+".missing"); err == nil {
		t.Error("LoadTLS with a missing CA file succeeded")
	}
	if _, err := LoadTLS(f.Cert, f.Cert, f.CA); err == nil {
		t.Error("LoadTLS with a certificate as key succeeded")
	}
}

// bodySpy records whether a request body was read.
type bodySpy struct {
	r    io.Reader
	read bool
}

func (b *bodySpy) Read(p []byte) (int, error) { b.read = true; return b.r.Read(p) }

func TestRequireWithClusterKey(t *testing.T) {
	c := mustKey(t, keyA)
	var bodyRead bool
	srv := httptest.NewServer(c.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodyRead = true
		_, _ = w.Write(b)
	})))
	defer srv.Close()

	// The member's own transport passes, method, path and query included.
	resp, err := c.Client(5*time.Second).Post(srv.URL+"/roster/v1/cluster/apply?x=1%202", "application/octet-stream", strings.NewReader("cmd"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "cmd" {
		t.Fatalf("with the key: %d %q", resp.StatusCode, b)
	}

	now := time.Now()
	for name, h := range map[string]http.Header{
		"no credential":    {},
		"no protocol":      {HeaderAuth: {c.sign("POST", "/roster/v1/cluster/apply", now)}},
		"other key":        {HeaderProtocol: {"1"}, HeaderAuth: {mustKey(t, keyB).sign("POST", "/roster/v1/cluster/apply", now)}},
		"other path":       {HeaderProtocol: {"1"}, HeaderAuth: {c.sign("POST", "/roster/v1/cluster/join", now)}},
		"other method":     {HeaderProtocol: {"1"}, HeaderAuth: {c.sign("GET", "/roster/v1/cluster/apply", now)}},
		"too old":          {HeaderProtocol: {"1"}, HeaderAuth: {c.sign("POST", "/roster/v1/cluster/apply", now.Add(-MaxClockSkew-time.Minute))}},
		"from the future":  {HeaderProtocol: {"1"}, HeaderAuth: {c.sign("POST", "/roster/v1/cluster/apply", now.Add(MaxClockSkew+time.Minute))}},
		"other version":    {HeaderProtocol: {"2"}, HeaderAuth: {c.sign("POST", "/roster/v1/cluster/apply", now)}},
		"malformed":        {HeaderProtocol: {"1"}, HeaderAuth: {"v1 " + strconv.FormatInt(now.Unix(), 10) + " zz"}},
		"truncated mac":    {HeaderProtocol: {"1"}, HeaderAuth: {c.sign("POST", "/roster/v1/cluster/apply", now)[:40]}},
		"empty auth field": {HeaderProtocol: {"1"}, HeaderAuth: {"v1  "}},
	} {
		spy := &bodySpy{r: strings.NewReader("forged")}
		req, _ := http.NewRequest("POST", srv.URL+"/roster/v1/cluster/apply", spy)
		req.ContentLength = 6
		for k, v := range h {
			req.Header[k] = v
		}
		bodyRead = false
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || bodyRead {
			t.Errorf("%s: status %d, handler ran %v; want 401 and no handler", name, resp.StatusCode, bodyRead)
		}
	}
}

func TestRequireWithMutualTLS(t *testing.T) {
	ca, other := newCA(t, "cluster"), newCA(t, "other")
	node := tlsCred(t, ca, "n1")
	portCert, err := ca.TLSCert("n1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(node.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("member"))
	})))
	srv.TLS = PortTLS(portCert, node, []string{"http/1.1"})
	srv.StartTLS()
	defer srv.Close()
	url := "http://" + srv.Listener.Addr().String() + "/roster/v1/distro/ping"

	// A member: its transport upgrades to https and presents its certificate.
	resp, err := tlsCred(t, ca, "n2").Client(5 * time.Second).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "member" {
		t.Fatalf("member: %d %q", resp.StatusCode, b)
	}

	// An ordinary client (no certificate) connects but is refused the node route.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err = plain.Get(strings.Replace(url, "http://", "https://", 1))
	if err != nil {
		t.Fatalf("a client without a certificate could not connect: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no client certificate: %d, want 401", resp.StatusCode)
	}
	// Even with the protocol header.
	req, _ := http.NewRequest("GET", strings.Replace(url, "http://", "https://", 1), nil)
	req.Header.Set(HeaderProtocol, "1")
	if resp, err = plain.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no client certificate with the protocol header: %d, want 401", resp.StatusCode)
	}

	// A certificate of another CA is refused in the handshake.
	stranger, err := other.TLSCert("n9")
	if err != nil {
		t.Fatal(err)
	}
	// (GetClientCertificate: it is sent although the server names another CA.)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}}}
	if resp, err := c.Get(strings.Replace(url, "http://", "https://", 1)); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate of another CA got %d", resp.StatusCode)
	}
}

func TestSniffServesPlainAndTLSOnOnePort(t *testing.T) {
	ca := newCA(t, "cluster")
	node := tlsCred(t, ca, "n1")
	portCert, err := ca.TLSCert("n1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/node", node.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("node")) })))
	mux.HandleFunc("/client", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("client")) })
	srv := &http.Server{Handler: mux}
	sl := SniffTLS(ln, PortTLS(portCert, node, []string{"http/1.1"}), 200*time.Millisecond)
	go func() { _ = srv.Serve(sl) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	get := func(c *http.Client, path string) (int, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(&http.Client{Timeout: 5 * time.Second}, "/client"); code != 200 || body != "client" {
		t.Fatalf("plain client: %d %q", code, body)
	}
	if code, _ := get(&http.Client{Timeout: 5 * time.Second}, "/node"); code != http.StatusUnauthorized {
		t.Fatalf("plain request to a node route: %d, want 401", code)
	}
	if code, body := get(tlsCred(t, ca, "n2").Client(5*time.Second), "/node"); code != 200 || body != "node" {
		t.Fatalf("member over TLS: %d %q", code, body)
	}
	// A silent connection is dropped after the sniff timeout.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectClosed(t, conn, 5*time.Second)
}
