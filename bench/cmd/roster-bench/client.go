package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/roster-registry/roster/naming"
)

// requestTimeout bounds every benchmark request; the server's own apply timeout is 10s.
const requestTimeout = 30 * time.Second

// client speaks the Nacos v1 naming HTTP API to one server. All of a run's workers
// share its keep-alive Transport, sized so no worker waits for a connection.
type client struct {
	base string
	hc   *http.Client
}

func newClient(httpAddr string, conns int) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{base: "http://" + httpAddr, hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// httpError is an answer other than 200, or a 200 whose body says the call failed.
type httpError struct {
	method, path string
	status       int
	body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// do sends form as the query (GET) or as a form body (other methods) and returns the
// body of a 200 answer.
func (c *client) do(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	var body io.Reader
	u := c.base + path
	if method == http.MethodGet {
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &httpError{method, path, resp.StatusCode, string(data)}
	}
	return data, nil
}

// spec is one instance the bench registers, and what it expects to read back.
type spec struct {
	Service   string
	IP        string
	Port      int
	Cluster   string // "" = the server's DEFAULT
	Weight    float64
	Metadata  map[string]string
	Ephemeral bool
}

func (s *spec) form() url.Values {
	f := url.Values{
		"serviceName": {s.Service},
		"ip":          {s.IP},
		"port":        {strconv.Itoa(s.Port)},
		"ephemeral":   {strconv.FormatBool(s.Ephemeral)},
		"weight":      {strconv.FormatFloat(s.Weight, 'f', -1, 64)},
	}
	if s.Cluster != "" {
		f.Set("clusterName", s.Cluster)
	}
	if len(s.Metadata) > 0 {
		md, _ := json.Marshal(s.Metadata) // map[string]string always encodes
		f.Set("metadata", string(md))
	}
	return f
}

// register is POST /nacos/v1/ns/instance; the answer must be "ok".
func (c *client) register(ctx context.Context, s *spec) error {
	body, err := c.do(ctx, http.MethodPost, "/nacos/v1/ns/instance", s.form())
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return &httpError{http.MethodPost, "/nacos/v1/ns/instance", http.StatusOK, string(body)}
	}
	return nil
}

// beat is a light beat (ip, port, serviceName; no beat JSON): PUT
// /nacos/v1/ns/instance/beat. Code 20404 means the server no longer knows the instance.
func (c *client) beat(ctx context.Context, service, ip string, port int) error {
	const path = "/nacos/v1/ns/instance/beat"
	body, err := c.do(ctx, http.MethodPut, path, url.Values{
		"serviceName": {service}, "ip": {ip}, "port": {strconv.Itoa(port)},
	})
	if err != nil {
		return err
	}
	var ans struct {
		Code int `json:"code"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Code != 10200 {
		return &httpError{http.MethodPut, path, http.StatusOK, string(body)}
	}
	return nil
}

// list is GET /nacos/v1/ns/instance/list for every cluster of a service.
func (c *client) list(ctx context.Context, service string) (*naming.ServiceInfoJSON, error) {
	body, err := c.do(ctx, http.MethodGet, "/nacos/v1/ns/instance/list", url.Values{"serviceName": {service}})
	if err != nil {
		return nil, err
	}
	var info naming.ServiceInfoJSON
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&info); err != nil {
		return nil, fmt.Errorf("GET /nacos/v1/ns/instance/list?serviceName=%s: %w", service, err)
	}
	return &info, nil
}

// serverCounts is the part of GET /nacos/v1/ns/operator/metrics?onlyStatus=false the
// bench checks.
type serverCounts struct {
	Status              string `json:"status"`
	ServiceCount        int    `json:"serviceCount"`
	InstanceCount       int    `json:"instanceCount"`
	EphemeralInstances  int    `json:"ephemeralInstances"`
	PersistentInstances int    `json:"persistentInstances"`
}

func (c *client) counts(ctx context.Context) (*serverCounts, error) {
	body, err := c.do(ctx, http.MethodGet, "/nacos/v1/ns/operator/metrics", url.Values{"onlyStatus": {"false"}})
	if err != nil {
		return nil, err
	}
	var sc serverCounts
	if err := json.Unmarshal(body, &sc); err != nil {
		return nil, fmt.Errorf("GET /nacos/v1/ns/operator/metrics: %w", err)
	}
	return &sc, nil
}

// promValue reads one unlabelled sample from the server's Prometheus /metrics.
func (c *client) promValue(ctx context.Context, name string) (float64, error) {
	body, err := c.do(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(rest), 64)
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// ipFor is a distinct IPv4 address in 10.0.0.0/8 for each i < 2^24.
func ipFor(i int) string {
	return fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255)
}
