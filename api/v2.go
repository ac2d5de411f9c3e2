package api

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/naming"
)

// The Open API v2 (Nacos 2.x naming/controllers/v2, core's NacosClusterControllerV2,
// console's v2 namespace and health controllers). The naming endpoints that v1 has too
// are the shared handlers answered by apiV2; the rest are v2's own.

// namingRoutesV2 are /nacos/v2/ns.
func (a *API) namingRoutesV2(r chi.Router) {
	a.sharedNamingRoutes(r, apiV2)
	// CatalogControllerV2 is not a @NacosApi controller: its failures are the naming
	// handler's plain text (v1's table), its success the v2 envelope.
	r.HandleFunc("/catalog/instances", a.wrap(a.catalogInstances))
	for _, prefix := range []string{"/operator", "/ops"} {
		r.Get(prefix+"/switches", a.serve(apiV2, a.switches))
		r.Put(prefix+"/switches", a.serve(apiV2, a.updateSwitch))
	}
	a.clientRoutes(r, apiV2)
}

// coreAndConsoleRoutesV2 are /nacos/v2/core/cluster and /nacos/v2/console.
func (a *API) coreAndConsoleRoutesV2(r chi.Router) {
	r.Get("/v2/core/cluster/node/list", a.serve(apiV2, a.nodeList))
	r.Get("/v2/core/cluster/node/self", a.serve(apiV2, a.nodeSelf))
	r.Get("/v2/core/cluster/node/self/health", a.serve(apiV2, a.nodeSelfHealth))
	r.Get("/v2/console/health/liveness", func(w http.ResponseWriter, _ *http.Request) { _ = apiV2.data(w, "ok") })
	r.Get("/v2/console/health/readiness", func(w http.ResponseWriter, _ *http.Request) {
		if a.cfg.Ready() {
			_ = apiV2.data(w, "ok")
			return
		}
		// Nacos answers a node that is not ready with a failure Result, status 200.
		writeResult(w, http.StatusOK, result{Code: naming.CodeServerError, Message: "naming not in readiness"})
	})
}

// catalogInstances is GET /v2/ns/catalog/instances: every instance of a service, the
// unhealthy and the disabled included, optionally filtered by healthyOnly and
// enabledOnly, a page at a time. serviceName may be grouped (its group is read from it);
// pageNo and pageSize are required. "instances" is left out when the page is empty.
func (a *API) catalogInstances(w http.ResponseWriter, r *http.Request) error {
	p, svc, err := serviceRequest(r, naming.MissingParameter)
	if err != nil {
		return err
	}
	pageNo, pageSize, err := requiredPage(p)
	if err != nil {
		return err
	}
	all, err := a.reg.AllInstances(r.Context(), svc)
	if err != nil {
		return err
	}
	var kept []naming.InstanceJSON
	for _, inst := range all {
		if p.has("healthyOnly") && inst.Healthy != naming.ParseBool(p.get("healthyOnly"), false) {
			continue
		}
		if p.has("enabledOnly") && inst.Enabled != naming.ParseBool(p.get("enabledOnly"), false) {
			continue
		}
		kept = append(kept, naming.NewInstanceJSON(svc, inst, a.reg.Timing()))
	}
	start := max((pageNo-1)*pageSize, 0)
	end := min(start+max(pageSize, 0), len(kept))
	out := catalogPage{Count: len(kept)}
	if start < end {
		out.Instances = kept[start:end]
	}
	return apiV2.data(w, out)
}

// catalogPage is the catalog's answer.
type catalogPage struct {
	Instances []naming.InstanceJSON `json:"instances,omitempty"`
	Count     int                   `json:"count"`
}

// requiredPage reads the required pageNo and pageSize of a catalog instance list.
func requiredPage(p params) (pageNo, pageSize int, err error) {
	if pageNo, err = requiredInt(p, "pageNo"); err != nil {
		return 0, 0, err
	}
	if pageSize, err = requiredInt(p, "pageSize"); err != nil {
		return 0, 0, err
	}
	return pageNo, pageSize, nil
}

// requiredInt reads a required int @RequestParam of a v1-table endpoint.
func requiredInt(p params, name string) (int, error) {
	s := p.get(name)
	if s == "" {
		return 0, naming.MissingParameter(name)
	}
	return naming.ParseInt(s)
}

// healthParams are a SwitchDomain health-check parameter set.
type healthParams struct {
	Max    int               `json:"max"`
	Min    int               `json:"min"`
	Factor naming.JavaDouble `json:"factor"`
}

// switchDomain is GET /operator/switches' data: Nacos' SwitchDomain with Roster's
// values where Roster has the setting (beat interval, cache millis, auth) and Nacos'
// defaults elsewhere. Roster's switches cannot be changed at run time.
type switchDomain struct {
	Name                                     string            `json:"name"`
	Masters                                  []string          `json:"masters"`
	AdWeightMap                              map[string]int    `json:"adWeightMap"`
	DefaultPushCacheMillis                   int64             `json:"defaultPushCacheMillis"`
	ClientBeatInterval                       int64             `json:"clientBeatInterval"`
	DefaultCacheMillis                       int64             `json:"defaultCacheMillis"`
	DistroThreshold                          naming.JavaDouble `json:"distroThreshold"`
	HealthCheckEnabled                       bool              `json:"healthCheckEnabled"`
	AutoChangeHealthCheckEnabled             bool              `json:"autoChangeHealthCheckEnabled"`
	DistroEnabled                            bool              `json:"distroEnabled"`
	EnableStandalone                         bool              `json:"enableStandalone"`
	PushEnabled                              bool              `json:"pushEnabled"`
	CheckTimes                               int               `json:"checkTimes"`
	HTTPHealthParams                         healthParams      `json:"httpHealthParams"`
	TCPHealthParams                          healthParams      `json:"tcpHealthParams"`
	MySQLHealthParams                        healthParams      `json:"mysqlHealthParams"`
	IncrementalList                          []string          `json:"incrementalList"`
	ServerStatusSynchronizationPeriodMillis  int64             `json:"serverStatusSynchronizationPeriodMillis"`
	ServiceStatusSynchronizationPeriodMillis int64             `json:"serviceStatusSynchronizationPeriodMillis"`
	DisableAddIP                             bool              `json:"disableAddIP"`
	SendBeatOnly                             bool              `json:"sendBeatOnly"`
	LightBeatEnabled                         bool              `json:"lightBeatEnabled"`
	LimitedURLMap                            map[string]int    `json:"limitedUrlMap"`
	DistroServerExpiredMillis                int64             `json:"distroServerExpiredMillis"`
	PushGoVersion                            string            `json:"pushGoVersion"`
	PushJavaVersion                          string            `json:"pushJavaVersion"`
	PushPythonVersion                        string            `json:"pushPythonVersion"`
	PushCVersion                             string            `json:"pushCVersion"`
	PushCSharpVersion                        string            `json:"pushCSharpVersion"`
	EnableAuthentication                     bool              `json:"enableAuthentication"`
	OverriddenServerStatus                   *string           `json:"overriddenServerStatus"`
	DefaultInstanceEphemeral                 bool              `json:"defaultInstanceEphemeral"`
	HealthCheckWhiteList                     []string          `json:"healthCheckWhiteList"`
	Checksum                                 *string           `json:"checksum"`
}

// switchEntries are SwitchDomain's entry names that Nacos' PUT /operator/switches knows.
var switchEntries = map[string]bool{
	"batch": true, "distroThreshold": true, "clientBeatInterval": true, "pushVersion": true,
	"pushCacheMillis": true, "defaultCacheMillis": true, "masters": true, "distro": true,
	"check": true, "pushEnabled": true, "serviceStatusSynchronizationPeriodMillis": true,
	"serverStatusSynchronizationPeriodMillis": true, "healthCheckTimes": true, "disableAddIP": true,
	"sendBeatOnly": true, "limitedUrlMap": true, "enableStandalone": true, "overriddenServerStatus": true,
	"defaultInstanceEphemeral": true, "distroServerExpiredMillis": true, "lightBeatEnabled": true,
	"autoChangeHealthCheckEnabled": true,
}

func (a *API) switches(w http.ResponseWriter, r *http.Request) error {
	return apiV2.data(w, switchDomain{
		Name:                                     "00-00---000-NACOS_SWITCH_DOMAIN-000---00-00",
		AdWeightMap:                              map[string]int{},
		DefaultPushCacheMillis:                   a.reg.CacheMillis(),
		ClientBeatInterval:                       a.reg.Timing().HeartBeatInterval.Milliseconds(),
		DefaultCacheMillis:                       3000,
		DistroThreshold:                          0.7,
		HealthCheckEnabled:                       true,
		AutoChangeHealthCheckEnabled:             true,
		DistroEnabled:                            true,
		EnableStandalone:                         true,
		PushEnabled:                              true,
		CheckTimes:                               3,
		HTTPHealthParams:                         healthParams{Max: 5000, Min: 500, Factor: 0.85},
		TCPHealthParams:                          healthParams{Max: 5000, Min: 1000, Factor: 0.75},
		MySQLHealthParams:                        healthParams{Max: 3000, Min: 2000, Factor: 0.65},
		IncrementalList:                          []string{},
		ServerStatusSynchronizationPeriodMillis:  2000,
		ServiceStatusSynchronizationPeriodMillis: 5000,
		LightBeatEnabled:                         true,
		LimitedURLMap:                            map[string]int{},
		DistroServerExpiredMillis:                10000,
		PushGoVersion:                            "0.1.0",
		PushJavaVersion:                          "0.1.0",
		PushPythonVersion:                        "0.4.3",
		PushCVersion:                             "1.0.12",
		PushCSharpVersion:                        "0.9.0",
		EnableAuthentication:                     a.authOn(),
		DefaultInstanceEphemeral:                 true,
		HealthCheckWhiteList:                     []string{},
	})
}

// updateSwitch is PUT /operator/switches: entry and value are required (UpdateSwitchForm);
// Roster's switches are its configuration, so every change is refused as Nacos refuses
// a value its SwitchManager cannot take (500, SERVER_ERROR).
func (a *API) updateSwitch(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	entry := p.get("entry")
	if entry == "" {
		return naming.MissingField("entry", "String")
	}
	if !p.has("value") {
		return naming.MissingField("value", "String")
	}
	if !switchEntries[entry] {
		return naming.APIError(http.StatusInternalServerError, naming.CodeServerError, "update entry not found: "+entry)
	}
	return naming.APIError(http.StatusInternalServerError, naming.CodeServerError,
		"switch "+entry+" cannot be changed at run time on Roster; set it in the server's configuration")
}

// nodeStates are Nacos' NodeState names.
var nodeStates = map[string]bool{"STARTING": true, "UP": true, "SUSPICIOUS": true, "DOWN": true, "ISOLATION": true}

// nodeList is GET /v2/core/cluster/node/list: the members whose address starts with
// address and whose state is state (both optional).
func (a *API) nodeList(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	state := ""
	if s := p.get("state"); s != "" {
		state = strings.ToUpper(s)
		if !nodeStates[state] {
			return naming.APIError(http.StatusBadRequest, naming.CodeIllegalState, "Illegal state: "+s)
		}
	}
	ms, err := a.members()
	if err != nil {
		return err
	}
	out := []member{}
	address := p.get("address")
	for _, m := range ms {
		if address != "" && !strings.HasPrefix(m.Address, address) || state != "" && m.State != state {
			continue
		}
		out = append(out, m)
	}
	return apiV2.data(w, out)
}

func (a *API) nodeSelf(w http.ResponseWriter, r *http.Request) error {
	ms, err := a.members()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.ExtendInfo["nodeId"] == a.cfg.NodeID {
			return apiV2.data(w, m)
		}
	}
	return apiV2.data(w, nil)
}

func (a *API) nodeSelfHealth(w http.ResponseWriter, r *http.Request) error {
	if !a.cfg.Ready() {
		return apiV2.data(w, "STARTING")
	}
	return apiV2.data(w, "UP")
}
