package api

import (
	"bytes"
	"net/http"

	"github.com/roster-registry/roster/naming"
)

// The cluster and health-check endpoints: PUT /cluster (Nacos ClusterController), GET
// /health/checkers (HealthController) and the console's GET /catalog/service
// (CatalogController).

// updateCluster is PUT /cluster (v1) and PUT /v3/admin/ns/cluster. Nacos' parameter
// checker runs first (namespace, service and group, cluster, the check port under the
// name 'port', metadata), then the controller requires, on v1, clusterName, serviceName,
// checkPort, useInstancePort4Check and healthChecker in that order; v3's
// UpdateClusterForm asks for serviceName first and words each as a form field. Nothing
// is stored unless all of it is good.
func (a *API) updateCluster(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, key, err := readClusterForm(r, v)
		if err != nil {
			return err
		}
		if err := a.reg.UpdateCluster(r.Context(), key, c); err != nil {
			return err
		}
		return v.ok(w)
	}
}

func readClusterForm(r *http.Request, v *version) (naming.Cluster, naming.ServiceKey, error) {
	var key naming.ServiceKey
	p, err := readParams(r)
	if err != nil {
		return naming.Cluster{}, key, err
	}
	ns := p.namespace()
	if err := naming.CheckNamespace(ns); err != nil {
		return naming.Cluster{}, key, err
	}
	if raw := p.get("serviceName"); raw != "" {
		group, name, err := naming.SplitGroupedName(raw, p.get("groupName"))
		if err != nil {
			return naming.Cluster{}, key, err
		}
		key = naming.ServiceKey{Namespace: ns, Group: group, Name: name}
		if err := naming.CheckServiceKey(key); err != nil {
			return naming.Cluster{}, key, err
		}
	}
	if err := naming.CheckCluster(p.get("clusterName", "cluster")); err != nil {
		return naming.Cluster{}, key, err
	}
	checkPortStr := p.get("checkPort")
	var checkPort int
	if checkPortStr != "" {
		if checkPort, err = naming.ParsePort(checkPortStr); err != nil {
			return naming.Cluster{}, key, err
		}
	}
	md, err := naming.ParseMetadata(p.get("metadata"))
	if err != nil {
		return naming.Cluster{}, key, err
	}
	required := func(name, javaType string) *naming.Error {
		if v.v3 {
			return naming.MissingField(name, javaType)
		}
		return naming.RequiredParam(name)
	}
	if v.v3 && key.Name == "" {
		return naming.Cluster{}, key, required("serviceName", "String")
	}
	clusterName := p.get("clusterName")
	if clusterName == "" {
		return naming.Cluster{}, key, required("clusterName", "String")
	}
	if key.Name == "" {
		return naming.Cluster{}, key, required("serviceName", "String")
	}
	if checkPortStr == "" {
		return naming.Cluster{}, key, required("checkPort", "Integer")
	}
	useInstancePort := p.get("useInstancePort4Check")
	if useInstancePort == "" {
		return naming.Cluster{}, key, required("useInstancePort4Check", "Boolean")
	}
	rawChecker := p.get("healthChecker")
	if rawChecker == "" {
		return naming.Cluster{}, key, required("healthChecker", "String")
	}
	checker, err := naming.ParseHealthChecker(rawChecker)
	if err != nil {
		return naming.Cluster{}, key, err
	}
	return naming.Cluster{
		Name: clusterName, HealthChecker: checker, Metadata: md,
		CheckPort: checkPort, UseInstancePort: naming.ParseBool(useInstancePort, false),
	}, key, nil
}

// healthCheckers is GET /health/checkers: each supported type with its default
// settings, keyed by type, as Nacos lists its loaded checker classes (v3 in the
// envelope).
func (a *API) healthCheckers(v *version) handlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) error {
		b, err := checkersJSON()
		if err != nil {
			return err
		}
		return v.encoded(w, b)
	}
}

func checkersJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, typ := range naming.CheckerTypes() {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := naming.Marshal(typ)
		if err != nil {
			return nil, err
		}
		v, err := naming.Marshal(naming.DefaultChecker(typ))
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// catalogServiceJSON is GET /catalog/service's answer (Nacos
// CatalogServiceV2Impl.getServiceDetail): the service and one entry per cluster in the
// shape of Nacos' Cluster class.
type catalogServiceJSON struct {
	Service  catalogServiceInfo   `json:"service"`
	Clusters []catalogClusterJSON `json:"clusters"`
}

type catalogServiceInfo struct {
	Name             string            `json:"name"`
	GroupName        string            `json:"groupName"`
	ProtectThreshold naming.JavaDouble `json:"protectThreshold"`
	Selector         naming.Selector   `json:"selector"`
	Metadata         map[string]string `json:"metadata"`
}

// catalogDefaultPort is the defaultPort every cluster of Nacos' catalog answer has.
const catalogDefaultPort = 80

type catalogClusterJSON struct {
	ServiceName      string               `json:"serviceName"`
	Name             string               `json:"name"`
	HealthChecker    naming.HealthChecker `json:"healthChecker"`
	DefaultPort      int                  `json:"defaultPort"`
	DefaultCheckPort int                  `json:"defaultCheckPort"`
	UseIPPort4Check  bool                 `json:"useIPPort4Check"`
	Metadata         map[string]string    `json:"metadata"`
}

func (a *API) catalogService(w http.ResponseWriter, r *http.Request) error {
	_, key, err := serviceRequest(r, naming.MissingParameter)
	if err != nil {
		return err
	}
	d, err := a.reg.CatalogService(r.Context(), key)
	if err != nil {
		return err
	}
	out := catalogServiceJSON{
		Service: catalogServiceInfo{
			Name: key.Name, GroupName: key.Group,
			ProtectThreshold: naming.JavaDouble(d.Service.ProtectThreshold),
			Selector:         d.Service.Selector,
			Metadata:         emptyIfNil(d.Service.Metadata),
		},
		Clusters: []catalogClusterJSON{},
	}
	if out.Service.Selector.Type == "" {
		out.Service.Selector.Type = "none"
	}
	for _, c := range d.Clusters {
		out.Clusters = append(out.Clusters, catalogClusterJSON{
			ServiceName: key.Grouped(), Name: c.Name, HealthChecker: c.HealthChecker,
			DefaultPort: catalogDefaultPort, DefaultCheckPort: c.CheckPort, UseIPPort4Check: c.UseInstancePort,
			Metadata: emptyIfNil(c.Metadata),
		})
	}
	return writeJSON(w, out)
}
