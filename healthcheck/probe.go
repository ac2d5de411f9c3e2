package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Errors a probe reports without dialing. Neither counts as a result: the target keeps
// the health it has.
var (
	// ErrNotAllowed: the address is outside Config.AllowedCIDRs.
	ErrNotAllowed = errors.New("healthcheck: address outside the allowed CIDRs")
	// ErrNotLiteralIP: the address is not a literal IP address and port; a probe never
	// looks a name up.
	ErrNotLiteralIP = errors.New("healthcheck: address is not a literal IP address and port")
)

// errBadPort: the port to probe is outside 1..65535. Unlike the two above it is a
// failed result, as dialing such a port is in Nacos.
var errBadPort = errors.New("healthcheck: port to probe out of range")

// guard decides which addresses a probe may dial.
type guard struct {
	allowed []netip.Prefix
}

// permits reports whether a may be dialed. An IPv4-mapped IPv6 address is judged as the
// IPv4 address it reaches, so that ::/0 cannot let ::ffff:10.0.0.1 past an IPv4 list; an
// address with a zone never matches (netip.Prefix.Contains).
func (g guard) permits(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// dialer is the only way out of this package: every probe, TCP, HTTP and gRPC alike,
// connects through dial.
type dialer struct {
	guard guard
	net   net.Dialer
}

func newDialer(g guard) *dialer {
	d := &dialer{guard: g}
	// TCP keep-alive probes are pointless on a connection that lives one check.
	d.net.KeepAlive = -1
	// The last word: the kernel is about to connect this socket to address. Whatever
	// path led here, nothing outside the list is connected to.
	d.net.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrNotLiteralIP, address)
		}
		if !d.guard.permits(ap.Addr()) {
			return fmt.Errorf("%w: %s", ErrNotAllowed, address)
		}
		return nil
	}
	return d
}

// dial connects to address, which must be a literal ip:port inside the allowed CIDRs.
// The literal check comes first so that a name never reaches the resolver.
func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrNotLiteralIP, address)
	}
	if !d.guard.permits(ap.Addr()) {
		return nil, fmt.Errorf("%w: %s", ErrNotAllowed, address)
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("healthcheck: refusing to dial network %q", network)
	}
	return d.net.DialContext(ctx, network, address)
}

// probeAddr resolves where a probe of t goes: its ip and the instance port or the
// checker's port. A non-literal ip is ErrNotLiteralIP, a port out of range errBadPort.
func probeAddr(t Target) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(t.IP)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrNotLiteralIP, t.IP)
	}
	port := t.DialPort()
	if port < 1 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("%w: %d", errBadPort, port)
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// probers runs single probes. It holds the one HTTP client, whose transport keeps no
// idle connections: each probe opens its own connection and closes it.
type probers struct {
	dialer *dialer
	http   *http.Client
}

func newProbers(d *dialer) *probers {
	transport := &http.Transport{
		// Never a proxy from the environment: the probe goes to the instance itself.
		Proxy:                  nil,
		DialContext:            d.dial,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: httpHeaderLimit,
		ForceAttemptHTTP2:      false,
	}
	return &probers{
		dialer: d,
		http: &http.Client{
			Transport: transport,
			// A redirect is answered, not followed: its status is the result.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// probe runs one check of t at addr within ctx's deadline. A nil error is a healthy
// result; ErrNotAllowed and ErrNotLiteralIP are no result at all.
func (p *probers) probe(ctx context.Context, t Target, addr netip.AddrPort) error {
	switch t.checkerType() {
	case TypeTCP:
		return p.tcp(ctx, addr)
	case TypeHTTP:
		return p.httpGet(ctx, *t.Checker, addr)
	case TypeGRPC:
		return p.grpcHealth(ctx, *t.Checker, addr)
	default:
		return fmt.Errorf("healthcheck: checker type %q is not probed", t.checkerType())
	}
}

func (p *probers) tcp(ctx context.Context, addr netip.AddrPort) error {
	conn, err := p.dialer.dial(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	// Close with a reset rather than a FIN: the side that closes first keeps the
	// connection in TIME_WAIT for a minute, and 10 000 instances probed every few
	// seconds would hold over 100 000 such sockets, and their local ports, here.
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return conn.Close()
}

// httpURL builds http://ip:port/path from parts that are never parsed as a host: the
// host is the literal address, and the path always starts with "/".
func httpURL(c Checker, addr netip.AddrPort) (*url.URL, error) {
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse("http://" + addr.String() + path)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: bad HTTP check path %q: %v", c.Path, err)
	}
	if u.Host != addr.String() || u.User != nil {
		return nil, fmt.Errorf("healthcheck: HTTP check path %q changes the host", c.Path)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

func (p *probers) httpGet(ctx context.Context, c Checker, addr netip.AddrPort) error {
	u, err := httpURL(c, addr)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "Roster-Health-Check")
	for name, values := range ParseHeaders(c.Headers) {
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = values[0]
			continue
		}
		req.Header[name] = values
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	// Read a little, so that a server that writes its answer before looking at the
	// connection is not reset mid-write, but never more than the limit.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, httpBodyLimit))
	resp.Body.Close()
	want := c.ExpectedCodes
	if len(want) == 0 {
		want = []int{DefaultExpectedCode}
	}
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("healthcheck: HTTP status %d, want %s", resp.StatusCode, codesText(want))
	}
	return nil
}

func codesText(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, " or ")
}

// grpcHealth calls grpc.health.v1.Health/Check over a connection of its own, closed
// when the probe ends; the connection dials through the guarded dialer, with no
// resolver ("passthrough") and no proxy.
func (p *probers) grpcHealth(ctx context.Context, c Checker, addr netip.AddrPort) error {
	// gRPC reports a failed dial as a status text; the refusal is kept aside so that the
	// probe still says "not dialed" rather than "failed".
	var refused atomic.Pointer[error]
	conn, err := grpc.NewClient("passthrough:///"+addr.String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, address string) (net.Conn, error) {
			conn, err := p.dialer.dial(ctx, "tcp", address)
			if errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrNotLiteralIP) {
				refused.Store(&err)
			}
			return conn, err
		}),
		grpc.WithNoProxy(),
		grpc.WithDisableServiceConfig(),
		grpc.WithUserAgent("Roster-Health-Check"),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.GRPCService})
	if r := refused.Load(); r != nil {
		return *r
	}
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("healthcheck: gRPC health status %v", s)
	}
	return nil
}
