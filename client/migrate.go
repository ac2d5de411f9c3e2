package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// CatalogCluster is one cluster of GET /catalog/service, with its check port settings.
type CatalogCluster struct {
	Name             string            `json:"name"`
	HealthChecker    HealthChecker     `json:"healthChecker"`
	DefaultCheckPort int               `json:"defaultCheckPort"`
	UseIPPort4Check  bool              `json:"useIPPort4Check"`
	Metadata         map[string]string `json:"metadata"`
}

// CatalogService is the answer of GET /catalog/service: a service and its clusters.
type CatalogService struct {
	Service struct {
		Name             string            `json:"name"`
		GroupName        string            `json:"groupName"`
		ProtectThreshold float64           `json:"protectThreshold"`
		Selector         Selector          `json:"selector"`
		Metadata         map[string]string `json:"metadata"`
	} `json:"service"`
	Clusters []CatalogCluster `json:"clusters"`
}

// CatalogService answers GET /catalog/service: the service's detail with every cluster's
// check port, which GET /service leaves out.
func (c *Client) CatalogService(ctx context.Context, svc ServiceRef) (*CatalogService, error) {
	var out CatalogService
	if err := c.getJSON(ctx, "/catalog/service", serviceParams(svc), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateService sets a service's protect threshold, metadata and selector: PUT /service.
func (c *Client) UpdateService(ctx context.Context, svc ServiceRef, opts ServiceOptions) error {
	v, err := serviceOptionParams(svc, opts)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, "/service", v)
	return err
}

// CreateEphemeralService creates a service of the ephemeral kind through the v2 Open
// API (POST /nacos/v2/ns/service ephemeral=true), which v1 cannot: its clients then
// register their ephemeral instances into it.
func (c *Client) CreateEphemeralService(ctx context.Context, svc ServiceRef, opts ServiceOptions) error {
	v, err := serviceOptionParams(svc, opts)
	if err != nil {
		return err
	}
	v.Set("ephemeral", "true")
	b, err := c.doPath(ctx, http.MethodPost, "/nacos/v2/ns/service", v)
	if err != nil {
		return err
	}
	var res struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := decode(b, &res); err != nil {
		return err
	}
	if res.Code != 0 {
		return &Error{Status: http.StatusOK, Body: fmt.Sprintf("code %d: %s", res.Code, res.Message)}
	}
	return nil
}

func serviceOptionParams(svc ServiceRef, opts ServiceOptions) (url.Values, error) {
	v := serviceParams(svc)
	v.Set("protectThreshold", strconv.FormatFloat(opts.ProtectThreshold, 'f', -1, 64))
	md, err := metadataJSON(opts.Metadata)
	if err != nil {
		return nil, err
	}
	v.Set("metadata", md)
	sel := Selector{Type: "none"}
	if opts.Selector != nil {
		sel = *opts.Selector
	}
	b, err := json.Marshal(sel)
	if err != nil {
		return nil, fmt.Errorf("client: encode selector: %w", err)
	}
	v.Set("selector", string(b))
	return v, nil
}

// Token is the access token the client sends ("" for none).
func (c *Client) Token() string {
	if t := c.token.Load(); t != nil {
		return *t
	}
	return ""
}
