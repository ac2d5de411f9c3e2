package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// The Nacos 3 admin API for naming (Nacos 3.1 naming/controllers/v3, core's
// NacosClusterControllerV3 and NamespaceControllerV3, the auth plugin's UserControllerV3
// login), what Nacos' maintainer client (nacos-maintainer-client 3.1.0) and its 3.x
// console call. Where v1 or v2 has the same endpoint, the handler is the shared one
// answered by apiV3; docs/protocol-v3.md lists every route, its parameters and answer.

// adminNamingRoutesV3 are /nacos/v3/admin/ns.
func (a *API) adminNamingRoutesV3(r chi.Router) {
	v := apiV3
	r.Post("/instance", a.serve(v, a.registerInstance(v)))
	r.Delete("/instance", a.serve(v, a.deregisterInstance(v)))
	r.Put("/instance", a.serve(v, a.updateInstance(v)))
	r.Get("/instance", a.serve(v, a.getInstance(v)))
	r.Get("/instance/list", a.serve(v, a.instanceListV3))
	r.Put("/instance/metadata/batch", a.serve(v, a.metadataBatch(v, false)))
	r.Delete("/instance/metadata/batch", a.serve(v, a.metadataBatch(v, true)))
	r.Put("/instance/partial", a.serve(v, a.patchInstance(v)))

	r.Post("/service", a.serve(v, a.createService(v)))
	r.Delete("/service", a.serve(v, a.deleteService(v)))
	r.Put("/service", a.serve(v, a.updateService(v)))
	r.Get("/service", a.serve(v, a.getService(v)))
	r.Get("/service/list", a.serve(v, a.serviceListV3))
	r.Get("/service/subscribers", a.serve(v, a.serviceSubscribersV3))
	r.Get("/service/selector/types", a.serve(v, a.selectorTypesV3))

	r.Put("/cluster", a.serve(v, a.updateCluster(v)))
	r.Put("/health/instance", a.serve(v, a.setHealth(v)))
	r.Get("/health/checkers", a.serve(v, a.healthCheckers(v)))

	a.clientRoutes(r, v)

	r.Get("/ops/switches", a.serve(v, a.switches))
	r.Put("/ops/switches", a.serve(v, a.updateSwitch))
	r.Get("/ops/metrics", a.serve(v, a.operatorMetrics(v)))
	r.Put("/ops/log", a.serve(v, a.setLogLevel))
}

// coreRoutesV3 are /nacos/v3/admin/core (cluster members, namespaces) and the v3 login.
func (a *API) coreRoutesV3(r chi.Router) {
	r.Get("/v3/admin/core/cluster/node/list", a.serve(apiV3, a.nodeList))
	r.Get("/v3/admin/core/cluster/node/self", a.serve(apiV3, a.nodeSelf))
	// NamespaceControllerV3 is NamespaceControllerV2 under new paths, with /check (a
	// count) in place of /exist (a boolean).
	r.Get("/v3/admin/core/namespace/list", a.serve(apiV3, a.namespaceList))
	r.Get("/v3/admin/core/namespace", a.serve(apiV3, a.getNamespace))
	r.Post("/v3/admin/core/namespace", a.serve(apiV3, a.writeNamespace(apiV3, namespaceCreate)))
	r.Put("/v3/admin/core/namespace", a.serve(apiV3, a.writeNamespace(apiV3, namespaceEdit)))
	r.Delete("/v3/admin/core/namespace", a.serve(apiV3, a.writeNamespace(apiV3, namespaceDelete)))
	r.Get("/v3/admin/core/namespace/check", a.serve(apiV3, a.checkNamespaceV3))
	// The 3.x naming client's HTTP health check (NamingHttpClientProxy.serverHealthy,
	// used by getServerStatus while its gRPC connection is down) reads liveness' code.
	r.Get("/v3/admin/core/state/liveness", func(w http.ResponseWriter, _ *http.Request) { _ = apiV3.data(w, "ok") })
	r.Get("/v3/admin/core/state/readiness", func(w http.ResponseWriter, _ *http.Request) {
		if a.cfg.Ready() {
			_ = apiV3.data(w, "ok")
			return
		}
		writeResult(w, http.StatusOK, result{Code: naming.CodeServerError, Message: "naming not in readiness"})
	})
	// UserControllerV3.login answers the bare login JSON, and its failures are the
	// console handler's plain 403 text: v1's login exactly.
	r.Post("/v3/auth/user/login", a.wrap(a.login))
}

// checkNamespaceV3 is GET /v3/admin/core/namespace/check?namespaceId= (@RequestParam):
// how many namespaces have the id, 0 or 1 (Nacos counts its tenant rows); public
// counts.
func (a *API) checkNamespaceV3(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if _, present := p["namespaceId"]; !present {
		return naming.MissingRequestParam("namespaceId", "String")
	}
	id := p.get("namespaceId")
	if id == "" {
		return apiV3.data(w, 0)
	}
	ok, err := a.reg.NamespaceRecorded(id)
	if err != nil {
		return err
	}
	if ok {
		return apiV3.data(w, 1)
	}
	return apiV3.data(w, 0)
}

// errPageParam is PageForm's refusal of a page number or size below 1.
func errPageParam(name string, n int) error {
	return naming.APIError(http.StatusBadRequest, naming.CodeParameterValidate,
		fmt.Sprintf("Required parameter '%s' should be positive integer, current is %d", name, n))
}

// pageFormV3 reads PageForm: pageNo (1) and pageSize (100), both at least 1.
func pageFormV3(p params) (pageNo, pageSize int, err error) {
	pageNo, pageSize = 1, 100
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
	if pageNo < 1 {
		return 0, 0, errPageParam("pageNo", pageNo)
	}
	if pageSize < 1 {
		return 0, 0, errPageParam("pageSize", pageSize)
	}
	return pageNo, pageSize, nil
}

// subPage cuts a page out of all as Nacos' PageUtil.subPage fills a Page: pageNumber is
// the page asked for, pagesAvailable is totalCount/pageSize+1 (Nacos' own count, one more
// than the pages there are when the size divides the total), both 0 for an empty source.
func subPage[T any](all []T, pageNo, pageSize int) page[T] {
	out := page[T]{PageNumber: pageNo, PageItems: []T{}}
	if len(all) == 0 {
		return out
	}
	out.TotalCount = len(all)
	out.PagesAvailable = len(all)/pageSize + 1
	start := min(max((pageNo-1)*pageSize, 0), len(all))
	end := min(start+pageSize, len(all))
	out.PageItems = all[start:end]
	return out
}

// instanceListV3 is GET /v3/admin/ns/instance/list (InstanceListForm): every instance
// of one cluster (clusterName, DEFAULT when blank), the disabled and unhealthy included
// unless healthyOnly, as Nacos' catalog lists them: an unknown service or a cluster
// without instances is Nacos' 404. It is not a subscription: nothing is pushed.
func (a *API) instanceListV3(w http.ResponseWriter, r *http.Request) error {
	p, svc, err := serviceRequest(r, apiV3.requiredString(formField))
	if err != nil {
		return err
	}
	if err := naming.CheckClusters(p.get("clusterName")); err != nil {
		return err
	}
	cluster := p.cluster()
	healthyOnly := springBool(p.get("healthyOnly"))
	if _, err := a.reg.GetService(r.Context(), svc); err != nil {
		var ne *naming.Error
		if errors.As(err, &ne) && ne.Code == naming.CodeServiceNotExist {
			return naming.Errorf(http.StatusNotFound, "service %s is not found!", svc.Grouped())
		}
		return err
	}
	all, err := a.reg.AllInstances(r.Context(), svc)
	if err != nil {
		return err
	}
	out := []naming.InstanceJSON{}
	found := false
	for _, inst := range all {
		if inst.ClusterName != cluster {
			continue
		}
		found = true
		if healthyOnly && !inst.Healthy {
			continue
		}
		out = append(out, naming.NewInstanceJSON(svc, inst, a.reg.Timing()))
	}
	if !found {
		return naming.Errorf(http.StatusNotFound, "cluster %s is not found!", cluster)
	}
	return apiV3.data(w, out)
}

// springBool reads a Boolean form field as Spring binds it: true, on, yes or 1.
func springBool(s string) bool {
	switch strings.ToLower(s) {
	case "true", "on", "yes", "1":
		return true
	}
	return false
}

// serviceListV3 is GET /v3/admin/ns/service/list (ServiceListForm, PageForm): the
// namespace's services whose group contains groupNameParam and whose name contains
// serviceNameParam, a page at a time, as ServiceViews, or with withInstances as
// ServiceDetailInfos carrying each cluster's instances (pageListServiceDetail, which
// fills only the names, metadata and hosts). Nacos matches the two parameters as
// regular expressions wrapped in .*; Roster matches them as plain text. Only the
// services the caller may read are listed.
func (a *API) serviceListV3(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	ns := p.namespace()
	if err := naming.CheckNamespace(ns); err != nil {
		return err
	}
	pageNo, pageSize, err := pageFormV3(p)
	if err != nil {
		return err
	}
	groupPart, namePart := p.get("groupNameParam"), p.get("serviceNameParam")
	ignoreEmpty, withInstances := springBool(p.get("ignoreEmptyService")), springBool(p.get("withInstances"))
	keys, err := a.reg.Services(ns)
	if err != nil {
		return err
	}
	type listed struct {
		key       naming.ServiceKey
		instances []*naming.Instance
	}
	var kept []listed
	for _, k := range keys {
		if !strings.Contains(k.Group, groupPart) || !strings.Contains(k.Name, namePart) || !a.mayRead(r, k.Namespace, k.Group) {
			continue
		}
		insts, err := a.reg.AllInstances(r.Context(), k)
		if err != nil {
			return err
		}
		if ignoreEmpty && !withInstances && len(insts) == 0 {
			continue
		}
		kept = append(kept, listed{k, insts})
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].key.Grouped() < kept[j].key.Grouped() })
	pg := subPage(kept, pageNo, pageSize)
	if withInstances {
		out := page[serviceDetailInfo]{TotalCount: pg.TotalCount, PageNumber: pg.PageNumber, PagesAvailable: pg.PagesAvailable, PageItems: []serviceDetailInfo{}}
		for _, s := range pg.PageItems {
			d, err := a.reg.GetService(r.Context(), s.key)
			if err != nil {
				return err
			}
			out.PageItems = append(out.PageItems, a.serviceWithInstances(s.key, d, s.instances))
		}
		return apiV3.data(w, out)
	}
	out := page[serviceView]{TotalCount: pg.TotalCount, PageNumber: pg.PageNumber, PagesAvailable: pg.PagesAvailable, PageItems: []serviceView{}}
	for _, s := range pg.PageItems {
		d, err := a.reg.GetService(r.Context(), s.key)
		if err != nil {
			return err
		}
		clusters := map[string]bool{}
		healthy := 0
		for _, inst := range s.instances {
			clusters[inst.ClusterName] = true
			if inst.Healthy {
				healthy++
			}
		}
		// Nacos compares healthy/ipCount with the threshold in Java doubles: 0/0 is NaN,
		// and NaN <= t is false.
		trigger := len(s.instances) > 0 && float64(healthy)/float64(len(s.instances)) <= d.Service.ProtectThreshold
		out.PageItems = append(out.PageItems, serviceView{
			Name: s.key.Name, GroupName: s.key.Group, ClusterCount: len(clusters), IPCount: len(s.instances),
			HealthyInstanceCount: healthy, TriggerFlag: boolText(trigger),
		})
	}
	return apiV3.data(w, out)
}

// serviceWithInstances is one item of the withInstances list, filled as Nacos'
// pageListServiceDetail fills it: names, metadata and each cluster's hosts; everything
// else keeps ServiceDetailInfo's and ClusterInfo's defaults (nulls, port 80).
func (a *API) serviceWithInstances(key naming.ServiceKey, d *registry.ServiceDetail, insts []*naming.Instance) serviceDetailInfo {
	out := serviceDetailInfo{ServiceName: key.Name, GroupName: key.Group, ClusterMap: map[string]clusterInfo{}, Metadata: emptyIfNil(d.Service.Metadata)}
	for _, inst := range insts {
		c, ok := out.ClusterMap[inst.ClusterName]
		if !ok {
			c = clusterInfo{HealthyCheckPort: naming.DefaultCheckPort, UseInstancePortForCheck: true, Hosts: []naming.InstanceJSON{}}
		}
		c.Hosts = append(c.Hosts, naming.NewInstanceJSON(key, inst, a.reg.Timing()))
		out.ClusterMap[inst.ClusterName] = c
	}
	return out
}

// subscriberInfo is one subscriber of /service/subscribers (SubscriberInfo; address is
// its getter, ip:port).
type subscriberInfo struct {
	NamespaceID string `json:"namespaceId"`
	GroupName   string `json:"groupName"`
	ServiceName string `json:"serviceName"`
	IP          string `json:"ip"`
	Port        int    `json:"port"`
	Agent       string `json:"agent"`
	AppName     string `json:"appName"`
	Address     string `json:"address"`
}

// serviceSubscribersV3 is GET /v3/admin/ns/service/subscribers (ServiceForm, PageForm,
// AggregationForm): the service's subscribers, gRPC connections and UDP subscribers,
// a page at a time. An unknown service has none. aggregation (Nacos: ask every member)
// is read but changes nothing: Roster's subscription view already spans the members it
// knows of through the registry.
func (a *API) serviceSubscribersV3(w http.ResponseWriter, r *http.Request) error {
	p, svc, err := serviceRequest(r, apiV3.requiredString(formField))
	if err != nil {
		return err
	}
	pageNo, pageSize, err := pageFormV3(p)
	if err != nil {
		return err
	}
	subs, err := a.reg.ServiceSubscriptions(svc)
	if err != nil {
		return err
	}
	all := make([]subscriberInfo, 0, len(subs))
	for _, s := range subs {
		all = append(all, subscriberInfo{
			NamespaceID: s.Service.Namespace, GroupName: s.Service.Group, ServiceName: s.Service.Name,
			IP: s.IP, Port: s.Port, Agent: s.Agent, AppName: s.App, Address: fmt.Sprintf("%s:%d", s.IP, s.Port),
		})
	}
	return apiV3.data(w, subPage(all, pageNo, pageSize))
}

// selectorTypesV3 is GET /v3/admin/ns/service/selector/types: the selector types Nacos
// 3 loads, in the order its SelectorManager's HashMap gives them (both keys share a
// bucket, so the service-loader order: label, then none).
func (a *API) selectorTypesV3(w http.ResponseWriter, _ *http.Request) error {
	return apiV3.data(w, []string{"label", "none"})
}

// setLogLevel is PUT /v3/admin/ns/ops/log (logName and logLevel, @RequestParam). Nacos
// sets a level of its naming loggers; Roster's logging is its configuration, so the
// change is refused as a switch change is.
func (a *API) setLogLevel(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	for _, name := range []string{"logName", "logLevel"} {
		if !p.has(name) {
			return naming.MissingRequestParam(name, "String")
		}
	}
	return naming.APIError(http.StatusInternalServerError, naming.CodeServerError,
		"log levels cannot be changed at run time on Roster; set --log-level in the server's configuration")
}

// clusterInfo is a cluster of ServiceDetailInfo (ClusterInfo). queryService leaves
// hosts null; the withInstances list fills only hosts.
type clusterInfo struct {
	ClusterName             *string               `json:"clusterName"`
	HealthChecker           *naming.HealthChecker `json:"healthChecker"`
	HealthyCheckPort        int                   `json:"healthyCheckPort"`
	UseInstancePortForCheck bool                  `json:"useInstancePortForCheck"`
	Metadata                map[string]string     `json:"metadata"`
	Hosts                   []naming.InstanceJSON `json:"hosts"`
}

// serviceDetailInfo is v3's service detail (api/naming/pojo/maintainer/ServiceDetailInfo):
// v2's with the namespace named namespaceId and the clusters' check port settings.
type serviceDetailInfo struct {
	NamespaceID      *string                `json:"namespaceId"`
	ServiceName      string                 `json:"serviceName"`
	GroupName        string                 `json:"groupName"`
	ClusterMap       map[string]clusterInfo `json:"clusterMap"`
	Metadata         map[string]string      `json:"metadata"`
	ProtectThreshold naming.JavaDouble      `json:"protectThreshold"`
	Selector         *selectorV2            `json:"selector"`
	Ephemeral        *bool                  `json:"ephemeral"`
}

func newServiceDetailInfo(key naming.ServiceKey, d *registry.ServiceDetail) serviceDetailInfo {
	sel := newSelectorV2(d.Service.Selector)
	ns, ephemeral := key.Namespace, d.Service.Ephemeral
	out := serviceDetailInfo{
		NamespaceID: &ns, ServiceName: key.Name, GroupName: key.Group, ClusterMap: map[string]clusterInfo{},
		Metadata: emptyIfNil(d.Service.Metadata), ProtectThreshold: naming.JavaDouble(d.Service.ProtectThreshold),
		Selector: &sel, Ephemeral: &ephemeral,
	}
	for _, c := range d.Clusters {
		name, checker := c.Name, c.HealthChecker.Effective()
		port := c.CheckPort
		if port == 0 {
			port = naming.DefaultCheckPort
		}
		out.ClusterMap[c.Name] = clusterInfo{
			ClusterName: &name, HealthChecker: &checker, HealthyCheckPort: port,
			UseInstancePortForCheck: c.UseInstancePort, Metadata: emptyIfNil(c.Metadata),
		}
	}
	return out
}

// clientSummaryInfo is v3's client detail (ClientSummaryInfo). Nacos fills the
// connection fields for a 2.x connection only: a 1.x ip:port client has them null and
// its port 0.
type clientSummaryInfo struct {
	ClientID        string  `json:"clientId"`
	Ephemeral       bool    `json:"ephemeral"`
	LastUpdatedTime int64   `json:"lastUpdatedTime"`
	ClientType      string  `json:"clientType"`
	ConnectType     *string `json:"connectType"`
	AppName         *string `json:"appName"`
	Version         *string `json:"version"`
	ClientIP        *string `json:"clientIp"`
	ClientPort      int     `json:"clientPort"`
}

func newClientSummaryInfo(c *registry.ClientInfo) clientSummaryInfo {
	out := clientSummaryInfo{ClientID: c.ID, Ephemeral: c.Ephemeral, LastUpdatedTime: c.LastUpdated.UnixMilli(), ClientType: c.Type}
	if c.Type == registry.ClientTypeIPPort {
		return out
	}
	connectType, app, version, ip := c.ConnectType, c.AppName, c.Version, c.ClientIP
	out.ConnectType, out.AppName, out.Version, out.ClientIP = &connectType, &app, &version, &ip
	out.ClientPort, _ = strconv.Atoi(c.ClientPort)
	return out
}

// clientServiceInfo is one service a client registered or subscribes to
// (ClientServiceInfo): one of publisherInfo and subscriberInfo is set, the other null.
type clientServiceInfo struct {
	NamespaceID    string                `json:"namespaceId"`
	GroupName      string                `json:"groupName"`
	ServiceName    string                `json:"serviceName"`
	PublisherInfo  *clientPublisherInfo  `json:"publisherInfo"`
	SubscriberInfo *clientSubscriberInfo `json:"subscriberInfo"`
}

// clientPublisherInfo is an instance a client registered (ClientPublisherInfo);
// clientId is null inside a client's own publish list.
type clientPublisherInfo struct {
	ClientID    *string `json:"clientId"`
	IP          string  `json:"ip"`
	Port        int     `json:"port"`
	ClusterName string  `json:"clusterName"`
}

// clientSubscriberInfo is a subscription (ClientSubscriberInfo); clientId is null
// inside a client's own subscribe list.
type clientSubscriberInfo struct {
	ClientID *string `json:"clientId"`
	AppName  string  `json:"appName"`
	Agent    string  `json:"agent"`
	Address  string  `json:"address"`
}
