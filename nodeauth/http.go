package nodeauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a node-to-node HTTP request.
const (
	// HeaderProtocol carries the node protocol's version; a node route refuses any other.
	HeaderProtocol = "X-Roster-Node-Protocol"
	// HeaderAuth carries, with a cluster key, "v1 <unix seconds> <hex HMAC-SHA256(key,
	// context, method, request URI, time)>".
	HeaderAuth = "X-Roster-Node-Auth"

	protocolVersion = "1"
	httpCtx         = "roster node http v1\x00"
)

// MaxClockSkew is how far a signed request's time may be from this node's clock. It is
// wide enough that a wall-clock step of a few minutes (an NTP correction, a VM resume)
// does not cut a member off from the others, which would stop Distro replication and
// beat forwarding and so remove live instances; WarnClockSkew makes such a step loud
// long before requests are refused.
const MaxClockSkew = 10 * time.Minute

// WarnClockSkew is the skew of an authenticated request beyond which OnSkew is told.
const WarnClockSkew = 30 * time.Second

// ErrUnauthorized is what Check returns for a request without a valid node credential.
var ErrUnauthorized = errors.New("nodeauth: this route is for Roster nodes only; the request carries no valid cluster credential")

func (c *Credential) httpMAC(method, uri string, unix int64) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(httpCtx))
	m.Write([]byte(method))
	m.Write([]byte{'\n'})
	m.Write([]byte(uri))
	m.Write([]byte{'\n'})
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	return m.Sum(nil)
}

// sign is the HeaderAuth value of a request made at now.
func (c *Credential) sign(method, uri string, now time.Time) string {
	t := now.Unix()
	return "v1 " + strconv.FormatInt(t, 10) + " " + hex.EncodeToString(c.httpMAC(method, uri, t))
}

// Check reports whether r was sent by a member: with mutual TLS, a client certificate
// the cluster CA signed; with a cluster key, a HeaderAuth MAC of r's method and request
// URI made within MaxClockSkew. Only headers and the TLS state are read, never the body.
func (c *Credential) Check(r *http.Request) error {
	if r.Header.Get(HeaderProtocol) != protocolVersion {
		return ErrUnauthorized
	}
	if c.cert != nil {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return ErrUnauthorized
		}
		if err := c.verifyPeer(r.TLS.PeerCertificates, x509.ExtKeyUsageClientAuth); err != nil {
			return ErrUnauthorized
		}
		return nil
	}
	parts := strings.Split(r.Header.Get(HeaderAuth), " ")
	if len(parts) != 3 || parts[0] != "v1" {
		return ErrUnauthorized
	}
	t, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ErrUnauthorized
	}
	d := c.wall().Sub(time.Unix(t, 0))
	got, err := hex.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, c.httpMAC(r.Method, r.RequestURI, t)) {
		return ErrUnauthorized
	}
	if d > WarnClockSkew || d < -WarnClockSkew {
		if c.OnSkew != nil {
			c.OnSkew(d)
		}
	}
	if d > MaxClockSkew || d < -MaxClockSkew {
		return fmt.Errorf("%w: the request was stamped %v away from this node's clock (more than %v): the members' clocks disagree", ErrUnauthorized, d.Round(time.Second), MaxClockSkew)
	}
	return nil
}

// Require answers 401 to a request without the node credential, before its body is
// read (the connection is closed, so an unread body is never parsed either).
func (c *Credential) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Check(r); err != nil {
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(err.Error()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RequireFunc is Require for a handler function.
func (c *Credential) RequireFunc(h http.HandlerFunc) http.HandlerFunc {
	return c.Require(h).ServeHTTP
}

// transport sends node-to-node requests with the credential.
type transport struct {
	c    *Credential
	base *http.Transport
}

// RoundTrip adds the protocol version and, with a cluster key, the request's MAC. With
// mutual TLS an http URL is sent over https with this node's certificate: member HTTP
// ports always accept TLS then.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Header.Set(HeaderProtocol, protocolVersion)
	if t.c.cert != nil {
		if out.URL.Scheme == "http" {
			out.URL.Scheme = "https"
		}
		out.Header.Del(HeaderAuth)
	} else {
		out.Header.Set(HeaderAuth, t.c.sign(out.Method, out.URL.RequestURI(), t.c.wall()))
	}
	return t.base.RoundTrip(out)
}

// Transport is the http.RoundTripper every request from this node to another goes
// through. It is shared, so connections to a peer are pooled across callers.
func (c *Credential) Transport() http.RoundTripper {
	c.transportOnce.Do(func() {
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.Proxy = nil // node-to-node traffic never goes through an environment proxy
		base.MaxIdleConnsPerHost = 16
		if len(c.DialRewrite) > 0 {
			dial := base.DialContext
			base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dial(ctx, network, c.dialAddr(addr))
			}
		}
		if c.cert != nil {
			base.TLSClientConfig = c.clientTLS([]string{"http/1.1"})
			base.ForceAttemptHTTP2 = false
		}
		c.transport = &transport{c: c, base: base}
	})
	return c.transport
}

// Client is an http.Client over Transport.
func (c *Credential) Client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: c.Transport(), Timeout: timeout}
}
