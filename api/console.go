package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// The endpoints Nacos' console (1.4 and 2.x) calls besides the naming API clients use
// (CONSOLE.md): server state, the catalog's service list and instance table, selector
// types, the node list's keyword and node leave. A blank namespaceId is public.
func (a *API) consoleRoutes(r chi.Router) {
	r.Get("/v1/console/server/state", a.wrap(a.serverState))
	r.Get("/v1/console/server/announcement", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "") })
	r.Get("/v1/console/server/guide", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "") })
	r.Post("/v1/core/cluster/server/leave", a.wrap(a.serverLeave))
}

// consoleNamingRoutes are the console's endpoints under /nacos/v1/ns.
func (a *API) consoleNamingRoutes(r chi.Router) {
	r.Get("/catalog/services", a.wrap(a.catalogServices))
	r.Get("/catalog/instances", a.wrap(a.catalogClusterInstances))
	r.Get("/service/selector/types", a.wrap(a.selectorTypes))
}

// serverState is ServerStateController's map of module states, every value a string
// as Nacos' toString makes it. function_mode "naming" makes the console show only its
// naming menus.
func (a *API) serverState(w http.ResponseWriter, r *http.Request) error {
	standalone := "cluster"
	if servers, err := a.reg.RaftServers(); err == nil && len(servers) <= 1 {
		standalone = "standalone"
	}
	authOn := a.authOn()
	adminRequest := authOn && len(a.cfg.Auth.State().Users) == 0
	_, port, _ := strings.Cut(a.cfg.HTTPAddr, ":")
	return writeJSON(w, map[string]any{
		"version":            a.cfg.Version,
		"standalone_mode":    standalone,
		"startup_mode":       standalone,
		"function_mode":      "naming",
		"server_port":        port,
		"auth_enabled":       strconv.FormatBool(authOn),
		"login_page_enabled": strconv.FormatBool(authOn),
		"auth_system_type":   "nacos",
		"auth_admin_request": strconv.FormatBool(adminRequest),
		"console_ui_enabled": strconv.FormatBool(a.cfg.Console != nil),
	})
}

// pageParam reads an optional page parameter: absent or blank is def; not a number is
// Nacos' NumberFormatException text.
func pageParam(p params, name string, def int) (int, error) {
	s := p.get(name)
	if s == "" {
		return def, nil
	}
	return naming.ParseInt(s)
}

// pageRequest reads the console's optional pageNo (default 1) and pageSize (default 10).
func pageRequest(p params) (pageNo, pageSize int, err error) {
	if pageNo, err = pageParam(p, "pageNo", 1); err != nil {
		return 0, 0, err
	}
	if pageSize, err = pageParam(p, "pageSize", 10); err != nil {
		return 0, 0, err
	}
	return pageNo, pageSize, nil
}

// pageBounds is the slice [start, end) of page pageNo (from 1) of size pageSize of n
// items, clamped as Nacos' doPage and subList clamp.
func pageBounds(pageNo, pageSize, n int) (int, int) {
	if pageNo < 1 {
		pageNo = 1
	}
	if pageSize < 0 {
		pageSize = 0
	}
	start := min((pageNo-1)*pageSize, n)
	return start, min(start+pageSize, n)
}

// serviceView is Nacos' ServiceView, one row of the service list.
type serviceView struct {
	Name                 string `json:"name"`
	GroupName            string `json:"groupName"`
	ClusterCount         int    `json:"clusterCount"`
	IPCount              int    `json:"ipCount"`
	HealthyInstanceCount int    `json:"healthyInstanceCount"`
	TriggerFlag          string `json:"triggerFlag"`
}

type serviceViewPage struct {
	Count       int           `json:"count"`
	ServiceList []serviceView `json:"serviceList"`
}

// catalogServices is GET /nacos/v1/ns/catalog/services (CatalogController.listDetail
// with withInstances=false, CatalogServiceV2Impl.pageListService): count is the number
// of services that pass the filters, serviceList one page of them.
func (a *API) catalogServices(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	if naming.ParseBool(p.get("withInstances"), false) {
		return naming.BadRequest("withInstances=true is not supported by Roster; list with withInstances=false and read each service's instances")
	}
	ns := p.namespace()
	if err := naming.CheckNamespace(ns); err != nil {
		return err
	}
	pageNo, pageSize, err := pageRequest(p)
	if err != nil {
		return err
	}
	list, err := a.reg.CatalogServices(registry.CatalogFilter{
		Namespace: ns, Name: p.get("serviceNameParam"), Group: p.get("groupNameParam"),
		SkipEmpty: naming.ParseBool(p.get("hasIpCount"), false),
	})
	if err != nil {
		return err
	}
	kept := list[:0]
	for _, s := range list {
		if a.mayRead(r, ns, s.Key.Group) {
			kept = append(kept, s)
		}
	}
	start, end := pageBounds(pageNo, pageSize, len(kept))
	out := serviceViewPage{Count: len(kept), ServiceList: []serviceView{}}
	for _, s := range kept[start:end] {
		out.ServiceList = append(out.ServiceList, serviceView{
			Name: s.Key.Name, GroupName: s.Key.Group, ClusterCount: s.ClusterCount, IPCount: s.IPCount,
			HealthyInstanceCount: s.HealthyCount, TriggerFlag: strconv.FormatBool(s.Triggered),
		})
	}
	return writeJSON(w, out)
}

type instancePage struct {
	List  []naming.InstanceJSON `json:"list"`
	Count int                   `json:"count"`
}

// catalogClusterInstances is GET /nacos/v1/ns/catalog/instances (CatalogController.
// instanceList): one page of a cluster's instances, disabled ones included, as
// {"list","count"}. serviceName may be grouped or come with groupName.
func (a *API) catalogClusterInstances(w http.ResponseWriter, r *http.Request) error {
	p, svc, err := serviceRequest(r, naming.MissingParameter)
	if err != nil {
		return err
	}
	cluster := p.get("clusterName")
	if cluster == "" {
		return naming.MissingParameter("clusterName")
	}
	pageNo, pageSize, err := requiredPage(p)
	if err != nil {
		return err
	}
	all, err := a.reg.ClusterInstances(svc, cluster)
	if err != nil {
		return err
	}
	start, end := pageBounds(pageNo, pageSize, len(all))
	out := instancePage{List: []naming.InstanceJSON{}, Count: len(all)}
	for _, in := range all[start:end] {
		out.List = append(out.List, naming.NewInstanceJSON(svc, in, a.reg.Timing()))
	}
	return writeJSON(w, out)
}

// selectorTypes is GET /nacos/v1/ns/service/selector/types, the types a service's
// selector may have, as a RestResult.
func (a *API) selectorTypes(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, restResult(http.StatusOK, nil, []string{"none", "label"}))
}

// restResultJSON is Nacos' RestResult, its fields in Nacos' order.
type restResultJSON struct {
	Code    int     `json:"code"`
	Message *string `json:"message"`
	Data    any     `json:"data"`
}

func restResult(code int, message *string, data any) restResultJSON {
	return restResultJSON{Code: code, Message: message, Data: data}
}

// writeRestError answers a failure as a RestResult whose code is the HTTP status.
func writeRestError(w http.ResponseWriter, status int, message string) error {
	b, err := naming.Marshal(restResult(status, &message, nil))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return nil
}

// filterMembers keeps the members whose address contains keyword (NacosClusterController
// listNodes' keyword).
func filterMembers(ms []member, keyword string) []member {
	if keyword == "" {
		return ms
	}
	out := []member{}
	for _, m := range ms {
		if strings.Contains(m.Address, keyword) {
			out = append(out, m)
		}
	}
	return out
}

// serverLeave is POST /nacos/v1/core/cluster/server/leave with a JSON array of the
// members' "ip:port" HTTP addresses: each is removed from the Raft configuration, on
// the leader (a follower sends the request on). It answers RestResult "ok", or the
// first failure.
func (a *API) serverLeave(w http.ResponseWriter, r *http.Request) error {
	_, body, err := readParamsBody(r)
	if err != nil {
		return err
	}
	var addrs []string
	if err := json.Unmarshal(body, &addrs); err != nil || len(addrs) == 0 {
		return writeRestError(w, http.StatusBadRequest, `the body must be a JSON array of member addresses, e.g. ["10.0.0.1:8848"]`)
	}
	here, err := a.reg.OnLeaderWithBody(w, r, body)
	switch {
	case err != nil:
		return writeRestError(w, http.StatusServiceUnavailable, "not the leader; retry against the leader")
	case !here:
		return nil
	}
	ms, err := a.members()
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		id := ""
		for _, m := range ms {
			if m.Address == addr {
				id, _ = m.ExtendInfo["nodeId"].(string)
			}
		}
		if id == "" {
			return writeRestError(w, http.StatusNotFound, "no member has the address "+addr)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := a.reg.RemovePeer(id); err != nil {
			status, text := http.StatusInternalServerError, err.Error()
			if ne, ok := err.(*naming.Error); ok {
				status = ne.Status
			}
			return writeRestError(w, status, text)
		}
	}
	return writeJSON(w, restResult(http.StatusOK, nil, "ok"))
}
