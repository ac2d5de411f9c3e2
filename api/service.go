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
// selector carries an expression; anything else is Nacos' 400.
func parseSelector(raw string) (*naming.Selector, error) {
	if raw == "" {
		return &naming.Selector{Type: "none"}, nil
	}
	var s naming.Selector
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, naming.BadRequest("not match any type of selector!")
	}
	switch s.Type {
	case "none":
		return &naming.Selector{Type: "none"}, nil
	case "label":
		return &s, nil
	}
	return nil, naming.BadRequest("not match any type of selector!")
}

func (a *API) createService(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.service(naming.MissingParameter)
	if err != nil {
		return err
	}
	svc := naming.NewService(key, false)
	if t := p.get("protectThreshold"); t != "" {
		if svc.ProtectThreshold, err = naming.ParseFloat(t); err != nil {
			return err
		}
	}
	if svc.Metadata, err = naming.ParseMetadata(p.get("metadata")); err != nil {
		return err
	}
	sel, err := parseSelector(p.get("selector"))
	if err != nil {
		return err
	}
	svc.Selector = *sel
	if err := a.reg.CreateService(r.Context(), svc); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

func (a *API) updateService(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.service(naming.MissingParameter)
	if err != nil {
		return err
	}
	var u registry.ServiceUpdate
	t := p.get("protectThreshold")
	if t == "" {
		return naming.MissingParameter("protectThreshold")
	}
	th, err := naming.ParseFloat(t)
	if err != nil {
		return err
	}
	u.ProtectThreshold = &th
	if p.has("metadata") {
		if u.Metadata, err = naming.ParseMetadata(p.get("metadata")); err != nil {
			return err
		}
	}
	if p.has("selector") {
		if u.Selector, err = parseSelector(p.get("selector")); err != nil {
			return err
		}
	}
	if err := a.reg.UpdateService(r.Context(), key, u); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

func (a *API) deleteService(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.service(naming.MissingParameter)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteService(r.Context(), key); err != nil {
		return err
	}
	writeText(w, http.StatusOK, "ok")
	return nil
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

func (a *API) getService(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.service(naming.MissingParameter)
	if err != nil {
		return err
	}
	d, err := a.reg.GetService(r.Context(), key)
	if err != nil {
		return err
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
	return writeJSON(w, out)
}

func (a *API) listServices(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	ns := p.namespace()
	if err := naming.CheckNamespace(ns); err != nil {
		return err
	}
	pageNoStr, err := p.required("pageNo")
	if err != nil {
		return err
	}
	pageSizeStr, err := p.required("pageSize")
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
	// Nacos reads the page numbers with NumberUtils.toInt: a bad number is 0.
	pageNo, _ := naming.ParseInt(pageNoStr)
	pageSize, _ := naming.ParseInt(pageSizeStr)
	count, names, err := a.reg.ServicePage(ns, group, pageNo, pageSize)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	return writeJSON(w, map[string]any{"count": count, "doms": names})
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
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.service(naming.RequiredParam)
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

// metricsJSON is /operator/metrics with onlyStatus=false (Nacos MetricsInfoVo).
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

func (a *API) operatorMetrics(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	status := "UP"
	if !a.cfg.Ready() {
		status = "STARTING"
	}
	if p.boolean(true, "onlyStatus") {
		return writeJSON(w, map[string]string{"status": status})
	}
	c, err := a.reg.Counts()
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return writeJSON(w, metricsJSON{
		Status: status, ServiceCount: c.Services, InstanceCount: c.PersistentInstances + c.EphemeralInstances,
		SubscribeCount: a.reg.Pusher().Stats().Subscribers, ClientCount: c.EphemeralInstances,
		EphemeralInstances: c.EphemeralInstances, PersistentInstances: c.PersistentInstances,
		Mem: float64(ms.HeapInuse) / float64(ms.Sys),
	})
}
