// Package client is a small Go client of Roster's HTTP API: the Nacos v1 naming
// endpoints (/nacos/v1/ns, PROTOCOL.md §2) and login, and Roster's own routes under
// /roster/v1 (access control, the Raft operator, snapshots). The roster CLI and the tests
// use it; Nacos SDKs need nothing from it.
//
// Parameters go as Nacos' own clients send them: a form-encoded body for POST, PUT and
// DELETE, the query string for GET (a snapshot travels as the raw stream instead). Any
// answer other than HTTP 200 is an *Error carrying the status and the server's text.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/roster-registry/roster/naming"
)

// DefaultAddr is the address of a server started with no flags.
const DefaultAddr = "http://127.0.0.1:8848"

// DefaultTimeout bounds one request (connect, send, answer) unless WithTimeout or
// WithHTTPClient says otherwise.
const DefaultTimeout = 10 * time.Second

// basePath is Nacos' context path plus the v1 naming prefix.
const basePath = "/nacos/v1/ns"

// maxAnswer bounds how much of an answer is read; a list of 100 000 instances fits.
const maxAnswer = 64 << 20

// userAgent identifies the client. It deliberately is not a Nacos agent, so that a list
// call never subscribes to UDP pushes by accident.
const userAgent = "roster-client/1"

// Error is a non-200 answer: the HTTP status and the body as the server sent it.
type Error struct {
	Status int
	Body   string
}

// Error is "roster: <status>: <body>" on one line.
func (e *Error) Error() string {
	body := strings.Join(strings.Fields(e.Body), " ")
	return fmt.Sprintf("roster: %d: %s", e.Status, body)
}

// Client talks to one Roster (or Nacos) server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	http  *http.Client
	token atomic.Pointer[string] // access token sent as Authorization: Bearer
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client; its Timeout then bounds each request.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithTimeout sets the timeout of each request (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		hc := *c.http
		hc.Timeout = d
		c.http = &hc
	}
}

// WithToken sends an access token (from login) with every request.
func WithToken(token string) Option {
	return func(c *Client) { c.SetToken(token) }
}

// SetToken replaces the access token sent with every request; "" sends none.
func (c *Client) SetToken(token string) { c.token.Store(&token) }

// authorize adds the access token, if any, to a request.
func (c *Client) authorize(req *http.Request) {
	req.Header.Set("User-Agent", userAgent)
	if t := c.token.Load(); t != nil && *t != "" {
		req.Header.Set("Authorization", "Bearer "+*t)
	}
}

// LoginResult is Nacos' login answer.
type LoginResult struct {
	AccessToken string `json:"accessToken"`
	TokenTTL    int64  `json:"tokenTtl"`
	GlobalAdmin bool   `json:"globalAdmin"`
	Username    string `json:"username"`
}

// Login logs in with a username and password and uses the token for every later
// request.
func (c *Client) Login(ctx context.Context, username, password string) (*LoginResult, error) {
	v := url.Values{}
	v.Set("username", username)
	v.Set("password", password)
	b, err := c.doPath(ctx, http.MethodPost, "/nacos/v1/auth/login", v)
	if err != nil {
		return nil, err
	}
	var out LoginResult
	if err := decode(b, &out); err != nil {
		return nil, err
	}
	c.SetToken(out.AccessToken)
	return &out, nil
}

// New returns a client of the server at addr: "http://host:port", "https://host:port"
// or a bare "host:port". A path in addr is kept as a prefix in front of /nacos.
func New(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("client: bad address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: bad address %q: scheme must be http or https", addr)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: bad address %q: no host", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, http: &http.Client{Timeout: DefaultTimeout, Transport: newTransport()}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// newTransport keeps enough idle connections for a few dozen concurrent callers to one
// server; the default of 2 per host would reconnect on nearly every request.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

// Addr is the server address the client talks to.
func (c *Client) Addr() string { return c.base.String() }

// serviceParams are the parameters that name a service.
func serviceParams(svc ServiceRef) url.Values {
	v := url.Values{}
	v.Set("namespaceId", svc.namespace())
	v.Set("groupName", svc.group())
	v.Set("serviceName", svc.Name)
	return v
}

func instanceParams(svc ServiceRef, inst Instance) (url.Values, error) {
	v := serviceParams(svc)
	v.Set("ip", inst.IP)
	v.Set("port", strconv.Itoa(inst.Port))
	if inst.ClusterName != "" {
		v.Set("clusterName", inst.ClusterName)
	}
	v.Set("weight", strconv.FormatFloat(inst.Weight, 'f', -1, 64))
	v.Set("healthy", strconv.FormatBool(inst.Healthy))
	v.Set("enabled", strconv.FormatBool(inst.Enabled))
	v.Set("ephemeral", strconv.FormatBool(inst.Ephemeral))
	md, err := metadataJSON(inst.Metadata)
	if err != nil {
		return nil, err
	}
	v.Set("metadata", md)
	return v, nil
}

func metadataJSON(md map[string]string) (string, error) {
	if md == nil {
		md = map[string]string{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return "", fmt.Errorf("client: encode metadata: %w", err)
	}
	return string(b), nil
}

// RegisterInstance registers (or overwrites) an instance: POST /instance.
func (c *Client) RegisterInstance(ctx context.Context, svc ServiceRef, inst Instance) error {
	v, err := instanceParams(svc, inst)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, "/instance", v)
	return err
}

// DeregisterInstance removes the instance at inst's IP, Port and ClusterName from the
// ephemeral or persistent store as inst.Ephemeral says: DELETE /instance. The server
// answers ok even when nothing matched.
func (c *Client) DeregisterInstance(ctx context.Context, svc ServiceRef, inst Instance) error {
	v := serviceParams(svc)
	v.Set("ip", inst.IP)
	v.Set("port", strconv.Itoa(inst.Port))
	if inst.ClusterName != "" {
		v.Set("clusterName", inst.ClusterName)
	}
	v.Set("ephemeral", strconv.FormatBool(inst.Ephemeral))
	_, err := c.do(ctx, http.MethodDelete, "/instance", v)
	return err
}

// UpdateInstance sets an instance's weight, enabled flag and metadata: PUT /instance.
func (c *Client) UpdateInstance(ctx context.Context, svc ServiceRef, inst Instance) error {
	v, err := instanceParams(svc, inst)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, "/instance", v)
	return err
}

// ListInstances answers the instances of a service: GET /instance/list. An unknown
// service has no hosts.
func (c *Client) ListInstances(ctx context.Context, svc ServiceRef, opts ListOptions) (*ServiceInfo, error) {
	v := serviceParams(svc)
	v.Set("clusters", strings.Join(opts.Clusters, ","))
	v.Set("healthyOnly", strconv.FormatBool(opts.HealthyOnly))
	if opts.UDPPort > 0 {
		v.Set("udpPort", strconv.Itoa(opts.UDPPort))
	}
	if opts.ClientIP != "" {
		v.Set("clientIP", opts.ClientIP)
	}
	var info ServiceInfo
	if err := c.getJSON(ctx, "/instance/list", v, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// GetInstance answers one instance: GET /instance. A blank cluster is DEFAULT.
func (c *Client) GetInstance(ctx context.Context, svc ServiceRef, ip string, port int, cluster string) (*Instance, error) {
	v := serviceParams(svc)
	v.Set("ip", ip)
	v.Set("port", strconv.Itoa(port))
	if cluster != "" {
		v.Set("clusterName", cluster)
	}
	var inst Instance
	if err := c.getJSON(ctx, "/instance", v, &inst); err != nil {
		return nil, err
	}
	return &inst, nil
}

// Beat sends a full beat for inst, as nacos-sdk-go does: PUT /instance/beat with the
// "beat" JSON. A server that does not hold the instance registers it from the beat.
func (c *Client) Beat(ctx context.Context, svc ServiceRef, inst Instance) (*BeatResult, error) {
	cluster := inst.ClusterName
	if cluster == "" {
		cluster = naming.DefaultCluster
	}
	md := inst.Metadata
	if md == nil {
		md = map[string]string{}
	}
	b, err := json.Marshal(beatBody{
		IP: inst.IP, Port: inst.Port, Weight: inst.Weight, Cluster: cluster, Metadata: md,
		ServiceName: groupedName(svc), Ephemeral: true,
	})
	if err != nil {
		return nil, fmt.Errorf("client: encode beat: %w", err)
	}
	v := serviceParams(svc)
	v.Set("beat", string(b))
	return c.beat(ctx, v)
}

// LightBeat sends a beat with ip, port and cluster only, as Java clients do after their
// first beat. For an instance the server does not hold it answers Code BeatNotFound.
func (c *Client) LightBeat(ctx context.Context, svc ServiceRef, ip string, port int, cluster string) (*BeatResult, error) {
	v := serviceParams(svc)
	v.Set("ip", ip)
	v.Set("port", strconv.Itoa(port))
	if cluster != "" {
		v.Set("clusterName", cluster)
	}
	return c.beat(ctx, v)
}

func (c *Client) beat(ctx context.Context, v url.Values) (*BeatResult, error) {
	body, err := c.do(ctx, http.MethodPut, "/instance/beat", v)
	if err != nil {
		return nil, err
	}
	var res BeatResult
	if err := decode(body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func groupedName(svc ServiceRef) string {
	if strings.Contains(svc.Name, naming.GroupSeparator) {
		return svc.Name
	}
	return svc.group() + naming.GroupSeparator + svc.Name
}

// CreateService creates a service: POST /service. Nacos 2 makes it a persistent service,
// so later ephemeral registrations into it are refused.
func (c *Client) CreateService(ctx context.Context, svc ServiceRef, opts ServiceOptions) error {
	v := serviceParams(svc)
	v.Set("protectThreshold", strconv.FormatFloat(opts.ProtectThreshold, 'f', -1, 64))
	if opts.Metadata != nil {
		md, err := metadataJSON(opts.Metadata)
		if err != nil {
			return err
		}
		v.Set("metadata", md)
	}
	if opts.Selector != nil {
		b, err := json.Marshal(opts.Selector)
		if err != nil {
			return fmt.Errorf("client: encode selector: %w", err)
		}
		v.Set("selector", string(b))
	}
	_, err := c.do(ctx, http.MethodPost, "/service", v)
	return err
}

// GetService answers a service's detail: GET /service.
func (c *Client) GetService(ctx context.Context, svc ServiceRef) (*ServiceDetail, error) {
	var d ServiceDetail
	if err := c.getJSON(ctx, "/service", serviceParams(svc), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateCluster sets one cluster's health check, check port and metadata: PUT /cluster.
func (c *Client) UpdateCluster(ctx context.Context, svc ServiceRef, cl ClusterConfig) error {
	v := serviceParams(svc)
	v.Set("clusterName", cl.Name)
	v.Set("checkPort", strconv.Itoa(cl.CheckPort))
	v.Set("useInstancePort4Check", strconv.FormatBool(cl.UseInstancePort))
	b, err := json.Marshal(cl.HealthChecker)
	if err != nil {
		return fmt.Errorf("client: encode health checker: %w", err)
	}
	v.Set("healthChecker", string(b))
	md, err := metadataJSON(cl.Metadata)
	if err != nil {
		return err
	}
	v.Set("metadata", md)
	_, err = c.do(ctx, http.MethodPut, "/cluster", v)
	return err
}

// HealthCheckers answers the checker types the server supports, each with its default
// settings: GET /health/checkers.
func (c *Client) HealthCheckers(ctx context.Context) (map[string]HealthChecker, error) {
	out := map[string]HealthChecker{}
	if err := c.getJSON(ctx, "/health/checkers", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// SetHealth sets a persistent instance's health by hand: PUT /health/instance. The
// server allows it only in a cluster whose checker is NONE.
func (c *Client) SetHealth(ctx context.Context, svc ServiceRef, ip string, port int, cluster string, healthy bool) error {
	v := serviceParams(svc)
	v.Set("ip", ip)
	v.Set("port", strconv.Itoa(port))
	if cluster != "" {
		v.Set("clusterName", cluster)
	}
	v.Set("healthy", strconv.FormatBool(healthy))
	_, err := c.do(ctx, http.MethodPut, "/health/instance", v)
	return err
}

// DeleteService deletes an empty service: DELETE /service.
func (c *Client) DeleteService(ctx context.Context, svc ServiceRef) error {
	_, err := c.do(ctx, http.MethodDelete, "/service", serviceParams(svc))
	return err
}

// ListServices answers one page of a group's service names: GET /service/list.
func (c *Client) ListServices(ctx context.Context, q ServiceQuery) (*ServiceList, error) {
	if q.PageNo <= 0 {
		q.PageNo = 1
	}
	if q.PageSize <= 0 {
		q.PageSize = 100
	}
	ref := ServiceRef{Namespace: q.Namespace, Group: q.Group}
	v := url.Values{}
	v.Set("namespaceId", ref.namespace())
	v.Set("groupName", ref.group())
	v.Set("pageNo", strconv.Itoa(q.PageNo))
	v.Set("pageSize", strconv.Itoa(q.PageSize))
	var list ServiceList
	if err := c.getJSON(ctx, "/service/list", v, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Metrics answers the server's status and counts: GET /operator/metrics.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	v := url.Values{}
	v.Set("onlyStatus", "false")
	var m Metrics
	if err := c.getJSON(ctx, "/operator/metrics", v, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v url.Values, out any) error {
	body, err := c.do(ctx, http.MethodGet, path, v)
	if err != nil {
		return err
	}
	return decode(body, out)
}

func decode(body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: decode answer %.200q: %w", body, err)
	}
	return nil
}

// do sends one request and returns the body of a 200 answer. GET parameters go in the
// query; the others in a form body (Nacos reads both for every method, PROTOCOL.md §1.2).
func (c *Client) do(ctx context.Context, method, path string, v url.Values) ([]byte, error) {
	return c.doPath(ctx, method, basePath+path, v)
}

// doPath sends a request to a path outside the Nacos naming prefix (Roster's own API).
func (c *Client) doPath(ctx context.Context, method, fullPath string, v url.Values) ([]byte, error) {
	u := *c.base
	u.Path = c.base.Path + fullPath
	var body io.Reader
	if method == http.MethodGet {
		u.RawQuery = v.Encode()
	} else {
		body = strings.NewReader(v.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, fullPath, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, fullPath, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: read answer: %w", method, fullPath, err)
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("client: %s %s: answer larger than %d bytes", method, fullPath, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Status: resp.StatusCode, Body: string(b)}
	}
	return b, nil
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
