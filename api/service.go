package api

import (
	"encoding/json"
	"net/http"
	"runtime"
	"sort"
	"strings"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// parseSelector reads a service selector: blank or {"type":"none"} is none; a label
// selector carries an expression; anything else is Nacos' 400. v2 URL-decodes it once
// more first (ServiceControllerV2.parseSelector).
func parseSelector(raw string, v *version) (*naming.Selector, error) {
	if v.v2 {
		raw = lenientUnescape(raw)
	}
	if raw == "" {
		return &naming.Selector{Type: "none"}, nil
	}
	var s naming.Selector
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, naming.ErrSelector
	}
	switch s.Type {
	case "none":
		return &naming.Selector{Type: "none"}, nil
	case "label":
		return &s, nil
	}
	return nil, naming.ErrSelector
}

func (a *API) createService(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		key, err := p.service(v.requiredString(serviceField))
		if err != nil {
			return err
		}
		// v1 makes a persistent service whatever is asked (Nacos 2.x); v2 takes ephemeral,
		// false when absent.
		svc := naming.NewService(key, v.v2 && p.boolean(false, "ephemeral"))
		if t := p.get("protectThreshold"); t != "" {
			if svc.ProtectThreshold, err = naming.ParseFloat(t); err != nil {
				return err
			}
		}
		if svc.Metadata, err = naming.ParseMetadata(p.get("metadata")); err != nil {
			return err
		}
		sel, err := parseSelector(p.get("selector"), v)
		if err != nil {
			return err
		}
		svc.Selector = *sel
		return a.reg.CreateService(r.Context(), svc)
	})
}

// updateService serves PUT /service. v1 needs protectThreshold and changes metadata
// and selector only when given; v2's form defaults them (0, no metadata, selector none)
// and sets all three, as ServiceControllerV2.update does.
func (a *API) updateService(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		key, err := p.service(v.requiredString(serviceField))
		if err != nil {
			return err
		}
		var u registry.ServiceUpdate
		th := 0.0
		switch t := p.get("protectThreshold"); {
		case t != "":
			if th, err = naming.ParseFloat(t); err != nil {
				return err
			}
		case !v.v2:
			return naming.MissingParameter("protectThreshold")
		}
		u.ProtectThreshold = &th
		if v.v2 || p.has("metadata") {
			if u.Metadata, err = naming.ParseMetadata(p.get("metadata")); err != nil {
				return err
			}
		}
		if v.v2 || p.has("selector") {
			if u.Selector, err = parseSelector(p.get("selector"), v); err != nil {
				return err
			}
		}
		return a.reg.UpdateService(r.Context(), key, u)
	})
}

func (a *API) deleteService(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		key, err := p.service(v.requiredString(serviceParam))
		if err != nil {
			return err
		}
		return a.reg.DeleteService(r.Context(), key)
	})
}

// serviceJSON is GET /service's answer (Nacos ServiceOperatorV2Impl.queryService).
type serviceJSON struct {
	NamespaceID      string            `json:"namespaceId"`
	GroupName        string            `json:"groupName"`
	Name             string            `json:"name"`
	ProtectThreshold naming.JavaDouble `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata"`
	Selector         naming.Selector   `json:"selector"`
	Clusters         []clusterJSON     `json:"clusters"`
}

type clusterJSON struct {
	Name          string               `json:"name"`
	HealthChecker naming.HealthChecker `json:"healthChecker"`
	Metadata      map[string]string    `json:"metadata"`
}

func emptyIfNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// serviceDetailV2 is GET /service's answer in v2 (ServiceDetailInfo).
type serviceDetailV2 struct {
	Namespace        string                   `json:"namespace"`
	ServiceName      string                   `json:"serviceName"`
	GroupName        string                   `json:"groupName"`
	ClusterMap       map[string]clusterInfoV2 `json:"clusterMap"`
	Metadata         map[string]string        `json:"metadata"`
	ProtectThreshold naming.JavaDouble        `json:"protectThreshold"`
	Selector         selectorV2               `json:"selector"`
	Ephemeral        bool                     `json:"ephemeral"`
}

// clusterInfoV2 is a cluster of ServiceDetailInfo (ClusterInfo; hosts is not filled
// by queryService).
type clusterInfoV2 struct {
	ClusterName   string               `json:"clusterName"`
	HealthChecker naming.HealthChecker `json:"healthChecker"`
	Metadata      map[string]string    `json:"metadata"`
	Hosts         []any                `json:"hosts"`
}

// selectorV2 is a selector as Jackson writes Nacos' selector objects (type and
// contextType from their getters; a label selector adds its expression).
type selectorV2 struct {
	Type        string `json:"type"`
	ContextType string `json:"contextType"`
	Expression  string `json:"expression,omitempty"`
}

func newSelectorV2(s naming.Selector) selectorV2 {
	if s.Type == "label" {
		return selectorV2{Type: "label", ContextType: "CMDB", Expression: s.Expression}
	}
	return selectorV2{Type: "none", ContextType: "NONE"}
}

// serviceDetail is the version's shape of GET /service's answer.
func (v *version) serviceDetail(key naming.ServiceKey, d *registry.ServiceDetail) any {
	if v.v3 {
		return newServiceDetailInfo(key, d)
	}
	if v.v2 {
		out := serviceDetailV2{
			Namespace: key.Namespace, ServiceName: key.Name, GroupName: key.Group, ClusterMap: map[string]clusterInfoV2{},
			Metadata: emptyIfNil(d.Service.Metadata), ProtectThreshold: naming.JavaDouble(d.Service.ProtectThreshold),
			Selector: newSelectorV2(d.Service.Selector), Ephemeral: d.Service.Ephemeral,
		}
		for _, c := range d.Clusters {
			out.ClusterMap[c.Name] = clusterInfoV2{ClusterName: c.Name, HealthChecker: c.HealthChecker.Effective(), Metadata: emptyIfNil(c.Metadata)}
		}
		return out
	}
	out := serviceJSON{
		NamespaceID: key.Namespace, GroupName: key.Group, Name: key.Name,
		ProtectThreshold: naming.JavaDouble(d.Service.ProtectThreshold),
		Metadata:         emptyIfNil(d.Service.Metadata),
		Selector:         d.Service.Selector,
		Clusters:         []clusterJSON{},
	}
	if out.Selector.Type == "" {
		out.Selector.Type = "none"
	}
	for _, c := range d.Clusters {
		out.Clusters = append(out.Clusters, clusterJSON{Name: c.Name, HealthChecker: c.HealthChecker.Effective(), Metadata: emptyIfNil(c.Metadata)})
	}
	return out
}

func (a *API) getService(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		_, key, err := serviceRequest(r, v.requiredString(serviceParam))
		if err != nil {
			return err
		}
		d, err := a.reg.GetService(r.Context(), key)
		if err != nil {
			return err
		}
		return v.data(w, v.serviceDetail(key, d))
	}
}

// listServices serves GET /service/list. v1 needs pageNo and pageSize (read with
// NumberUtils.toInt: a bad number is 0) and answers the group's names without the group
// as "doms"; v2 defaults them to 1 and 20 (at most 500) and answers grouped names as
// "services".
func (a *API) listServices(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		ns := p.namespace()
		if err := naming.CheckNamespace(ns); err != nil {
			return err
		}
		pageNo, pageSize, err := pageParams(p, v)
		if err != nil {
			return err
		}
		group := p.get("groupName")
		if group == "" {
			group = naming.DefaultGroup
		}
		if group != "*" {
			if err := naming.CheckGroup(group); err != nil {
				return err
			}
		}
		count, names, err := a.reg.ServicePage(ns, group, pageNo, pageSize)
		if err != nil {
			return err
		}
		if names == nil {
			names = []string{}
		}
		if !v.v2 {
			return v.data(w, map[string]any{"count": count, "doms": names})
		}
		if group != "*" {
			for i, n := range names {
				names[i] = group + naming.GroupSeparator + n
			}
		}
		return v.data(w, serviceNameView{Count: count, Services: names})
	}
}

// serviceNameView is v2's /service/list answer (ServiceNameView).
type serviceNameView struct {
	Count    int      `json:"count"`
	Services []string `json:"services"`
}

func pageParams(p params, v *version) (pageNo, pageSize int, err error) {
	if !v.v2 {
		pageNoStr, err := p.required("pageNo")
		if err != nil {
			return 0, 0, err
		}
		pageSizeStr, err := p.required("pageSize")
		if err != nil {
			return 0, 0, err
		}
		pageNo, _ = naming.ParseInt(pageNoStr)
		pageSize, _ = naming.ParseInt(pageSizeStr)
		return pageNo, pageSize, nil
	}
	pageNo, pageSize = 1, 20
	if s := p.get("pageNo"); s != "" {
		if pageNo, err = naming.ParseInt(s); err != nil {
			return 0, 0, err
		}
	}
	if s := p.get("pageSize"); s != "" {
		if pageSize, err = naming.ParseInt(s); err != nil {
			return 0, 0, err
		}
	}
	return pageNo, min(pageSize, 500), nil
}

func (a *API) serviceNames(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	ns := p.get("namespaceId", "tenant")
	if err := naming.CheckNamespace(ns); err != nil {
		return err
	}
	expr := p.get("expr")
	keys, err := a.reg.Services(ns)
	if err != nil {
		return err
	}
	byNS := map[string][]string{}
	count := 0
	for _, k := range keys {
		if expr != "" && !strings.Contains(k.Grouped(), expr) || !a.mayRead(r, k.Namespace, k.Group) {
			continue
		}
		byNS[k.Namespace] = append(byNS[k.Namespace], k.Grouped())
		count++
	}
	return writeJSON(w, map[string]any{"services": byNS, "count": count})
}

// subscriberJSON is one entry of /service/subscribers.
type subscriberJSON struct {
	AddrStr     string `json:"addrStr"`
	Agent       string `json:"agent"`
	App         string `json:"app"`
	IP          string `json:"ip"`
	Port        int    `json:"port"`
	NamespaceID string `json:"namespaceId"`
	ServiceName string `json:"serviceName"`
	Cluster     string `json:"cluster"`
}

func (a *API) serviceSubscribers(w http.ResponseWriter, r *http.Request) error {
	p, key, err := serviceRequest(r, naming.RequiredParam)
	if err != nil {
		return err
	}
	pageNo, pageSize := 1, 1000
	if v := p.get("pageNo"); v != "" {
		if pageNo, err = naming.ParseInt(v); err != nil {
			return err
		}
	}
	if v := p.get("pageSize"); v != "" {
		if pageSize, err = naming.ParseInt(v); err != nil {
			return err
		}
	}
	subs := a.reg.Subscribers(key)
	all := make([]subscriberJSON, 0, len(subs))
	for _, s := range subs {
		all = append(all, subscriberJSON{
			AddrStr: s.Addr.String(), Agent: s.Agent, App: s.App, IP: s.Addr.IP.String(), Port: s.Addr.Port,
			NamespaceID: key.Namespace, ServiceName: key.Grouped(), Cluster: s.Clusters,
		})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].AddrStr < all[j].AddrStr })
	start := (pageNo - 1) * pageSize
	if start < 0 || pageSize < 0 {
		start, pageSize = 0, 0
	}
	if start > len(all) {
		start = len(all)
	}
	end := start + pageSize
	if end > len(all) {
		end = len(all)
	}
	return writeJSON(w, map[string]any{"subscribers": all[start:end], "count": len(all)})
}

// metricsJSON is v1's /operator/metrics with onlyStatus=false.
type metricsJSON struct {
	Status              string  `json:"status"`
	ServiceCount        int     `json:"serviceCount"`
	InstanceCount       int     `json:"instanceCount"`
	SubscribeCount      int     `json:"subscribeCount"`
	ClientCount         int     `json:"clientCount"`
	EphemeralInstances  int     `json:"ephemeralInstanceCount"`
	PersistentInstances int     `json:"persistentInstanceCount"`
	CPU                 float64 `json:"cpu"`
	Load                float64 `json:"load"`
	Mem                 float64 `json:"mem"`
}

// metricsInfoV2 is v2's (MetricsInfoVo, nulls omitted: onlyStatus leaves only status).
type metricsInfoV2 struct {
	Status                      string             `json:"status"`
	ServiceCount                *int               `json:"serviceCount,omitempty"`
	InstanceCount               *int               `json:"instanceCount,omitempty"`
	SubscribeCount              *int               `json:"subscribeCount,omitempty"`
	ClientCount                 *int               `json:"clientCount,omitempty"`
	ConnectionBasedClientCount  *int               `json:"connectionBasedClientCount,omitempty"`
	EphemeralIPPortClientCount  *int               `json:"ephemeralIpPortClientCount,omitempty"`
	PersistentIPPortClientCount *int               `json:"persistentIpPortClientCount,omitempty"`
	ResponsibleClientCount      *int               `json:"responsibleClientCount,omitempty"`
	CPU                         *naming.JavaDouble `json:"cpu,omitempty"`
	Load                        *naming.JavaDouble `json:"load,omitempty"`
	Mem                         *naming.JavaDouble `json:"mem,omitempty"`
}

func (a *API) operatorMetrics(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		status := "UP"
		if !a.cfg.Ready() {
			status = "STARTING"
		}
		// v3's MetricsInfo is v2's MetricsInfoVo without cpu, load and mem.
		if p.boolean(true, "onlyStatus") {
			if v.v2 {
				return v.data(w, metricsInfoV2{Status: status})
			}
			return v.data(w, map[string]string{"status": status})
		}
		c, err := a.reg.Counts()
		if err != nil {
			return err
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mem := float64(ms.HeapInuse) / float64(ms.Sys)
		memV2 := naming.JavaDouble(mem)
		subscribers := a.reg.Pusher().Stats().Subscribers
		if !v.v2 {
			return v.data(w, metricsJSON{
				Status: status, ServiceCount: c.Services, InstanceCount: c.PersistentInstances + c.EphemeralInstances,
				SubscribeCount: subscribers, ClientCount: c.EphemeralInstances,
				EphemeralInstances: c.EphemeralInstances, PersistentInstances: c.PersistentInstances,
				Mem: mem,
			})
		}
		cc, err := a.reg.ClientCounts()
		if err != nil {
			return err
		}
		services, instances := c.Services, c.PersistentInstances+c.EphemeralInstances
		clients := cc.Connections + cc.EphemeralIPPort + cc.PersistentIPPort
		var zero naming.JavaDouble
		out := metricsInfoV2{
			Status: status, ServiceCount: &services, InstanceCount: &instances, SubscribeCount: &cc.Subscriptions,
			ClientCount: &clients, ConnectionBasedClientCount: &cc.Connections, EphemeralIPPortClientCount: &cc.EphemeralIPPort,
			PersistentIPPortClientCount: &cc.PersistentIPPort, ResponsibleClientCount: &clients,
		}
		if !v.v3 {
			out.CPU, out.Load, out.Mem = &zero, &zero, &memV2
		}
		return v.data(w, out)
	}
}
