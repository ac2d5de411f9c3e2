package api

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// instanceParams reads the parameters of POST and PUT /instance. Nacos' parameter
// checker runs before the controller, so format errors come before "required" ones.
func instanceParams(p params, v *version) (naming.ServiceKey, *naming.Instance, error) {
	svc, err := p.service(v.requiredString(formField))
	if err != nil {
		return svc, nil, err
	}
	if err := naming.CheckClusters(p.get("clusterName", "cluster")); err != nil {
		return svc, nil, err
	}
	ip := p.get("ip")
	if err := naming.CheckIP(ip); err != nil {
		return svc, nil, err
	}
	portStr := p.get("port")
	var port int
	if portStr != "" {
		if port, err = naming.ParsePort(portStr); err != nil {
			return svc, nil, err
		}
	}
	md, err := naming.ParseMetadata(p.get("metadata"))
	if err != nil {
		return svc, nil, err
	}
	if ip == "" {
		return svc, nil, v.required(formField, "ip", "String")
	}
	if portStr == "" {
		return svc, nil, v.required(formField, "port", "Integer")
	}
	weight := 1.0
	if w := p.get("weight"); w != "" {
		if weight, err = naming.ParseFloat(w); err != nil {
			return svc, nil, err
		}
	}
	inst := &naming.Instance{
		IP:          ip,
		Port:        port,
		ClusterName: p.cluster(),
		Weight:      weight,
		Healthy:     p.boolean(true, "healthy", "valid"),
		Enabled:     p.boolean(true, "enabled", "enable"),
		Ephemeral:   p.boolean(true, "ephemeral"),
		Metadata:    md,
	}
	return svc, inst, nil
}

// addrParams reads serviceName, ip, port and cluster for the endpoints that name one
// instance; m says how a missing one is worded.
func addrParams(p params, v *version, m missing) (naming.ServiceKey, string, int, string, error) {
	svc, err := p.service(v.requiredString(m))
	if err != nil {
		return svc, "", 0, "", err
	}
	if err := naming.CheckClusters(p.get("clusterName", "cluster")); err != nil {
		return svc, "", 0, "", err
	}
	ip := p.get("ip")
	if err := naming.CheckIP(ip); err != nil {
		return svc, "", 0, "", err
	}
	portStr := p.get("port")
	var port int
	if portStr != "" {
		if port, err = naming.ParsePort(portStr); err != nil {
			return svc, "", 0, "", err
		}
	}
	if ip == "" {
		return svc, "", 0, "", v.required(m, "ip", "String")
	}
	if portStr == "" {
		return svc, "", 0, "", v.required(m, "port", "Integer")
	}
	return svc, ip, port, p.cluster(), nil
}

func (a *API) registerInstance(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		svc, inst, err := instanceParams(p, v)
		if err != nil {
			return err
		}
		return a.reg.Register(r.Context(), svc, inst)
	})
}

func (a *API) deregisterInstance(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		svc, ip, port, cluster, err := addrParams(p, v, formField)
		if err != nil {
			return err
		}
		return a.reg.Deregister(r.Context(), svc, ip, port, cluster, p.boolean(true, "ephemeral"))
	})
}

func (a *API) updateInstance(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		svc, inst, err := instanceParams(p, v)
		if err != nil {
			return err
		}
		// Nacos 2.x ignores healthy on update: health belongs to beats and checks.
		inst.Healthy = true
		return a.reg.Update(r.Context(), svc, inst)
	})
}

// patchInstance is v1's PATCH /instance and v3's PUT /instance/partial: metadata,
// weight and enabled change only when given. (v2's PATCH takes every field as required
// and answers bare "ok"; no client is known to call it. Nacos 3's partial update fills
// InstanceForm's defaults before it reads the form, so an absent weight or enabled
// there resets them to 1.0 and true; Roster leaves them as they are. The maintainer
// client always sends both, so it sees no difference.)
func (a *API) patchInstance(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.patch(r, v); err != nil {
			return err
		}
		return v.ok(w)
	}
}

func (a *API) patch(r *http.Request, v *version) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	svc, ip, port, cluster, err := addrParams(p, v, formField)
	if err != nil {
		return err
	}
	var patch registry.Patch
	if p.has("metadata") {
		md, err := naming.ParseMetadata(p.get("metadata"))
		if err != nil {
			return err
		}
		patch.Metadata = md
	}
	if w := p.get("weight"); w != "" {
		f, err := naming.ParseFloat(w)
		if err != nil {
			return err
		}
		patch.Weight = &f
	}
	if p.has("enabled", "enable") {
		en := p.boolean(true, "enabled", "enable")
		patch.Enabled = &en
	}
	return a.reg.PatchInstance(r.Context(), svc, ip, port, cluster, patch)
}

// instanceDetail is GET /instance's answer in v1 (InstanceController.detail).
type instanceDetail struct {
	Service     string            `json:"service"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      naming.JavaDouble `json:"weight"`
	Healthy     bool              `json:"healthy"`
	InstanceID  string            `json:"instanceId"`
	Metadata    map[string]string `json:"metadata"`
}

// instanceDetailV2 is the same in v2 (InstanceDetailInfoVo): the grouped name is
// "serviceName".
type instanceDetailV2 struct {
	ServiceName string            `json:"serviceName"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      naming.JavaDouble `json:"weight"`
	Healthy     bool              `json:"healthy"`
	InstanceID  string            `json:"instanceId"`
	Metadata    map[string]string `json:"metadata"`
}

// instanceDetail is the version's shape of one instance's detail; v3 answers the whole
// Instance (InstanceControllerV3.detail returns Result<Instance>).
func (v *version) instanceDetail(svc naming.ServiceKey, inst *naming.Instance, t naming.Timing) any {
	if v.v3 {
		return naming.NewInstanceJSON(svc, inst, t)
	}
	d := instanceDetail{
		Service: svc.Grouped(), IP: inst.IP, Port: inst.Port, ClusterName: inst.ClusterName,
		Weight: naming.JavaDouble(inst.Weight), Healthy: inst.Healthy, InstanceID: inst.ID(svc), Metadata: emptyIfNil(inst.Metadata),
	}
	if v.v2 {
		return instanceDetailV2{
			ServiceName: d.Service, IP: d.IP, Port: d.Port, ClusterName: d.ClusterName,
			Weight: d.Weight, Healthy: d.Healthy, InstanceID: d.InstanceID, Metadata: d.Metadata,
		}
	}
	return d
}

func (a *API) getInstance(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		svc, ip, port, cluster, err := addrParams(p, v, queryParam)
		if err != nil {
			return err
		}
		inst, err := a.reg.Instance(r.Context(), svc, ip, port, cluster)
		if err != nil {
			return err
		}
		return v.data(w, v.instanceDetail(svc, inst, a.reg.Timing()))
	}
}

// beatInfo is the client's `beat` JSON (Nacos RsInfo). Unknown keys (scheduled, period,
// stopped, …) are ignored; ephemeral is true when absent.
type beatInfo struct {
	IP          string             `json:"ip"`
	Port        json.Number        `json:"port"`
	ServiceName string             `json:"serviceName"`
	Cluster     string             `json:"cluster"`
	Weight      *naming.JavaDouble `json:"weight"`
	Metadata    map[string]string  `json:"metadata"`
	Ephemeral   *bool              `json:"ephemeral"`
}

// beatAnswer is the beat's JSON answer, in Nacos' key order.
type beatAnswer struct {
	ClientBeatInterval int64 `json:"clientBeatInterval"`
	Code               int   `json:"code"`
	LightBeatEnabled   bool  `json:"lightBeatEnabled"`
}

// beat serves PUT /instance/beat. Both versions answer the beat JSON bare: Nacos' v2
// controller returns it without the envelope too.
func (a *API) beat(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, svc, err := serviceRequest(r, v.requiredString(queryParam))
		if err != nil {
			return err
		}
		req := registry.BeatRequest{Service: svc}
		if raw := p.get("beat"); raw != "" {
			var b beatInfo
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&b); err != nil {
				return naming.BadRequest("beat format incorrect:" + raw)
			}
			port, err := naming.ParsePort(b.Port.String())
			if err != nil {
				return err
			}
			if err := naming.CheckIP(b.IP); err != nil {
				return err
			}
			if b.IP == "" {
				return v.required(queryParam, "ip", "String")
			}
			cluster := b.Cluster
			if cluster == "" {
				cluster = p.cluster()
			}
			if err := naming.CheckCluster(cluster); err != nil {
				return err
			}
			inst := &naming.Instance{IP: b.IP, Port: port, ClusterName: cluster, Weight: 1, Ephemeral: true, Metadata: b.Metadata}
			if b.Weight != nil {
				inst.Weight = float64(*b.Weight)
			}
			if b.Ephemeral != nil {
				inst.Ephemeral = *b.Ephemeral
			}
			req.IP, req.Port, req.Cluster, req.Full = inst.IP, inst.Port, inst.ClusterName, inst
		} else {
			_, ip, port, cluster, err := addrParams(p, v, queryParam)
			if err != nil {
				return err
			}
			req.IP, req.Port, req.Cluster = ip, port, cluster
		}
		res, err := a.reg.Beat(r.Context(), req)
		if err != nil {
			return err
		}
		return writeJSON(w, beatAnswer{ClientBeatInterval: res.Interval.Milliseconds(), Code: res.Code, LightBeatEnabled: true})
	}
}

// listParams are what an instance list reads: v1 names the clusters "clusters" and
// the push port "udpPort"; v2 names them "clusterName" and "port" (and reads
// healthyOnly as a Spring Boolean, v1 with Boolean.parseBoolean: only "true").
func listParams(p params, v *version) (clusters, udpPort string, healthyOnly bool) {
	if v.v2 {
		h := strings.ToLower(p.get("healthyOnly"))
		return p.get("clusterName"), p.get("port"), h == "true" || h == "on" || h == "yes" || h == "1"
	}
	return p.get("clusters"), p.get("udpPort"), strings.EqualFold(p.get("healthyOnly"), "true")
}

func (a *API) listInstances(v *version) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, svc, err := serviceRequest(r, v.requiredString(queryParam))
		if err != nil {
			return err
		}
		clusters, udpPort, healthyOnly := listParams(p, v)
		body, err := a.reg.ListJSON(r.Context(), registry.Query{Service: svc, Clusters: clusters, HealthyOnly: healthyOnly})
		if err != nil {
			return err
		}
		a.maybeSubscribe(r, p, svc, clusters, udpPort)
		return v.encoded(w, body)
	}
}

// maybeSubscribe registers a UDP push subscriber when the list call names a push port
// and comes from a Nacos client that understands pushes. Pushes go to the TCP peer's
// address, never to an address the request names, so Roster cannot be made to reflect
// packets at a third party.
func (a *API) maybeSubscribe(r *http.Request, p params, svc naming.ServiceKey, clusters, port string) {
	udpPort, err := naming.ParsePort(port)
	if err != nil || udpPort == 0 {
		return
	}
	agent := r.Header.Get("User-Agent")
	if agent == "" {
		agent = r.Header.Get("Client-Version")
	}
	if !registry.PushAgent(agent) {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return
	}
	a.reg.Subscribe(svc, clusters, &net.UDPAddr{IP: ip, Port: udpPort}, agent, p.get("app"))
}

func (a *API) instanceStatuses(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(r)
	if err != nil {
		return err
	}
	key, err := p.required("key")
	if err != nil {
		return err
	}
	ns := naming.DefaultNamespace
	if before, after, ok := strings.Cut(key, "##"); ok {
		ns, key = before, after
	}
	group, name, err := naming.SplitGroupedName(key, "")
	if err != nil {
		return err
	}
	svc := naming.ServiceKey{Namespace: ns, Group: group, Name: name}
	info, err := a.reg.List(r.Context(), registry.Query{Service: svc})
	if err != nil {
		return err
	}
	ips := make([]string, 0, len(info.Hosts))
	for _, h := range info.Hosts {
		ips = append(ips, h.Addr()+"_"+boolText(h.Healthy))
	}
	return writeJSON(w, map[string]any{"ips": ips})
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// batchRef is one entry of metadata/batch's `instances` JSON.
type batchRef struct {
	IP          string      `json:"ip"`
	Port        json.Number `json:"port"`
	ClusterName string      `json:"clusterName"`
}

func (a *API) metadataBatch(v *version, remove bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, svc, err := serviceRequest(r, v.requiredString(formField))
		if err != nil {
			return err
		}
		rawMD := p.get("metadata")
		if rawMD == "" {
			return v.required(formField, "metadata", "String")
		}
		md, err := naming.ParseMetadata(rawMD)
		if err != nil {
			return err
		}
		var refs []registry.InstanceRef
		if raw := p.get("instances"); raw != "" {
			var list []batchRef
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&list); err != nil {
				return naming.BadRequest("instances format incorrect:" + raw)
			}
			for _, b := range list {
				port, err := naming.ParsePort(b.Port.String())
				if err != nil {
					return err
				}
				c := b.ClusterName
				if c == "" {
					c = naming.DefaultCluster
				}
				refs = append(refs, registry.InstanceRef{IP: b.IP, Port: port, Cluster: c})
			}
		}
		persistent := p.get("consistencyType") == "persist"
		updated, err := a.reg.UpdateMetadataBatch(r.Context(), svc, persistent, refs, md, remove)
		if err != nil {
			return err
		}
		return v.data(w, map[string]any{"updated": updated})
	}
}

func (a *API) setHealth(v *version) handlerFunc {
	return a.okWrite(v, func(r *http.Request, p params) error {
		svc, ip, port, cluster, err := addrParams(p, v, formField)
		// UpdateHealthForm (v2 and v3) asks for healthy before the rest; Nacos' parameter
		// checker still runs before it.
		var ne *naming.Error
		if v.v2 && !p.has("healthy") && (err == nil || errors.As(err, &ne) && !ne.ParamCheck) {
			return v.required(formField, "healthy", "Boolean")
		}
		if err != nil {
			return err
		}
		if !p.has("healthy", "valid") {
			return v.required(formField, "healthy", "Boolean")
		}
		return a.reg.SetHealth(r.Context(), svc, ip, port, cluster, p.boolean(false, "healthy", "valid"))
	})
}
