package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/roster-registry/roster/naming"
)

// Namespace is one entry of Nacos' console namespace list.
type Namespace struct {
	ID   string `json:"namespace"`
	Name string `json:"namespaceShowName"`
	Desc string `json:"namespaceDesc"`
}

// ListNamespaces answers GET /nacos/v1/console/namespaces. Nacos' public namespace has
// the id "" there; it is answered as "public".
func (c *Client) ListNamespaces(ctx context.Context) ([]Namespace, error) {
	b, err := c.doPath(ctx, http.MethodGet, "/nacos/v1/console/namespaces", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Data []Namespace `json:"data"`
	}
	if err := decode(b, &out); err != nil {
		return nil, err
	}
	for i := range out.Data {
		if out.Data[i].ID == "" {
			out.Data[i].ID = naming.DefaultNamespace
		}
	}
	return out.Data, nil
}

// CreateNamespace is POST /nacos/v1/console/namespaces with Nacos' parameters.
func (c *Client) CreateNamespace(ctx context.Context, ns Namespace) error {
	v := url.Values{}
	v.Set("customNamespaceId", ns.ID)
	v.Set("namespaceName", ns.Name)
	v.Set("namespaceDesc", ns.Desc)
	_, err := c.doPath(ctx, http.MethodPost, "/nacos/v1/console/namespaces", v)
	return err
}

// UpdateNamespace is PUT /nacos/v1/console/namespaces: a new name and description.
func (c *Client) UpdateNamespace(ctx context.Context, ns Namespace) error {
	v := url.Values{}
	v.Set("namespace", ns.ID)
	v.Set("namespaceShowName", ns.Name)
	v.Set("namespaceDesc", ns.Desc)
	_, err := c.doPath(ctx, http.MethodPut, "/nacos/v1/console/namespaces", v)
	return err
}

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
