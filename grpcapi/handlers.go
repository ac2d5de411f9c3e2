package grpcapi

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/registry"
)

// handlerFunc serves one request type. It reads the body itself and returns the reply;
// errors go through Server.fail with the handler's response type.
type handlerFunc struct {
	respType string
	// access is what the request type needs (auth.go); every handler declares one.
	access access
	fn     func(ctx context.Context, c *conn, env Envelope, requestID string) (any, error)
}

// namingHandlers is the request table (Nacos' RequestHandlerRegistry for naming).
func (s *Server) namingHandlers() map[string]handlerFunc {
	return map[string]handlerFunc{
		"HealthCheckRequest":        {respType: "HealthCheckResponse", access: accessPublic, fn: s.healthCheck},
		"InstanceRequest":           {respType: "InstanceResponse", access: accessWrite, fn: s.instance},
		"BatchInstanceRequest":      {respType: "BatchInstanceResponse", access: accessWrite, fn: s.batchInstance},
		"PersistentInstanceRequest": {respType: "InstanceResponse", access: accessWrite, fn: s.persistentInstance},
		"ServiceQueryRequest":       {respType: "QueryServiceResponse", access: accessRead, fn: s.serviceQuery},
		"SubscribeServiceRequest":   {respType: "SubscribeServiceResponse", access: accessRead, fn: s.subscribeService},
		"ServiceListRequest":        {respType: "ServiceListResponse", access: accessRead, fn: s.serviceList},
	}
}

// namingRequest is what every naming request has (Nacos' AbstractNamingRequest).
type namingRequest struct {
	Namespace   string `json:"namespace"`
	ServiceName string `json:"serviceName"`
	GroupName   string `json:"groupName"`
}

// service resolves the request's service: blank namespace is public, blank group is
// DEFAULT_GROUP; the names pass Nacos' parameter checks.
func (n namingRequest) service() (naming.ServiceKey, error) {
	k := naming.ServiceKey{
		Namespace: strings.TrimSpace(n.Namespace),
		Group:     strings.TrimSpace(n.GroupName),
		Name:      strings.TrimSpace(n.ServiceName),
	}
	if k.Namespace == "" {
		k.Namespace = naming.DefaultNamespace
	}
	if k.Group == "" {
		k.Group = naming.DefaultGroup
	}
	if err := naming.CheckServiceKey(k); err != nil {
		return k, err
	}
	return k, nil
}

// instanceBody is an Instance as clients send it. Derived fields (heart beat timings,
// instanceId, serviceName) are ignored; absent flags take Nacos' defaults.
type instanceBody struct {
	IP          string             `json:"ip"`
	Port        json.Number        `json:"port"`
	Weight      *naming.JavaDouble `json:"weight"`
	Healthy     *bool              `json:"healthy"`
	Enabled     *bool              `json:"enabled"`
	Ephemeral   *bool              `json:"ephemeral"`
	ClusterName string             `json:"clusterName"`
	Metadata    map[string]string  `json:"metadata"`
}

// instance converts and checks the parameters Nacos' parameter checker checks.
func (b *instanceBody) instance() (*naming.Instance, error) {
	if err := naming.CheckIP(b.IP); err != nil {
		return nil, err
	}
	port := 0
	if b.Port != "" {
		p, err := naming.ParsePort(b.Port.String())
		if err != nil {
			return nil, err
		}
		port = p
	}
	if err := naming.CheckCluster(b.ClusterName); err != nil {
		return nil, err
	}
	if b.IP == "" {
		return nil, naming.RequiredParam("ip")
	}
	inst := &naming.Instance{
		IP: b.IP, Port: port, ClusterName: strings.TrimSpace(b.ClusterName),
		Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Metadata: b.Metadata,
	}
	if inst.ClusterName == "" {
		inst.ClusterName = naming.DefaultCluster
	}
	if b.Weight != nil {
		inst.Weight = float64(*b.Weight)
	}
	if b.Healthy != nil {
		inst.Healthy = *b.Healthy
	}
	if b.Enabled != nil {
		inst.Enabled = *b.Enabled
	}
	if b.Ephemeral != nil {
		inst.Ephemeral = *b.Ephemeral
	}
	if inst.Metadata == nil {
		inst.Metadata = map[string]string{}
	}
	return inst, nil
}

// typeResponse is InstanceResponse and BatchInstanceResponse: they echo the type.
type typeResponse struct {
	ResponseHead
	Type string `json:"type"`
	responseTail
}

// serviceInfoResponse is QueryServiceResponse and SubscribeServiceResponse.
type serviceInfoResponse struct {
	ResponseHead
	ServiceInfo naming.ServiceInfoJSON `json:"serviceInfo"`
	responseTail
}

// serviceListResponse answers ServiceListRequest.
type serviceListResponse struct {
	ResponseHead
	Count        int      `json:"count"`
	ServiceNames []string `json:"serviceNames"`
	responseTail
}

var success = responseTail{Success: true}

func (s *Server) healthCheck(_ context.Context, _ *conn, _ Envelope, id string) (any, error) {
	return newPlain(okHead(id)), nil
}

// Instance request types.
const (
	typeRegister      = "registerInstance"
	typeDeregister    = "deregisterInstance"
	typeBatchRegister = "batchRegisterInstance"
)

type instanceRequest struct {
	namingRequest
	Type     string       `json:"type"`
	Instance instanceBody `json:"instance"`
}

// instance serves InstanceRequest: an ephemeral instance owned by the connection. A
// register replaces the connection's instance of the service; a deregister removes it
// whatever ip and port say.
func (s *Server) instance(ctx context.Context, c *conn, env Envelope, id string) (any, error) {
	var req instanceRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	svc, err := req.service()
	if err != nil {
		return nil, err
	}
	inst, err := req.Instance.instance()
	if err != nil {
		return nil, err
	}
	if err := naming.CheckMetadata(inst.Metadata, s.maxMetadata()); err != nil {
		return nil, err
	}
	switch req.Type {
	case typeRegister:
		err = s.withConn(c, func() error { return s.reg.RegisterForConn(ctx, svc, inst, c.id) })
	case typeDeregister:
		err = s.withConn(c, func() error { return s.reg.DeregisterForConn(ctx, svc, c.id) })
	default:
		return nil, naming.BadRequest("Unsupported request type " + req.Type)
	}
	if err != nil {
		return nil, err
	}
	return typeResponse{ResponseHead: okHead(id), Type: req.Type, responseTail: success}, nil
}

type batchInstanceRequest struct {
	namingRequest
	Type      string         `json:"type"`
	Instances []instanceBody `json:"instances"`
}

// batchInstance serves BatchInstanceRequest: the list replaces what the connection
// holds in the service.
func (s *Server) batchInstance(ctx context.Context, c *conn, env Envelope, id string) (any, error) {
	var req batchInstanceRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	svc, err := req.service()
	if err != nil {
		return nil, err
	}
	if req.Type != typeBatchRegister {
		return nil, naming.BadRequest("Unsupported request type " + req.Type)
	}
	list := make([]*naming.Instance, 0, len(req.Instances))
	for i := range req.Instances {
		inst, err := req.Instances[i].instance()
		if err != nil {
			return nil, err
		}
		if err := naming.CheckMetadata(inst.Metadata, s.maxMetadata()); err != nil {
			return nil, err
		}
		list = append(list, inst)
	}
	if err := s.withConn(c, func() error { return s.reg.BatchRegisterForConn(ctx, svc, list, c.id) }); err != nil {
		return nil, err
	}
	return typeResponse{ResponseHead: okHead(id), Type: req.Type, responseTail: success}, nil
}

// persistentInstance serves PersistentInstanceRequest: through Raft, exactly as the
// HTTP API's persistent writes.
func (s *Server) persistentInstance(ctx context.Context, c *conn, env Envelope, id string) (any, error) {
	var req instanceRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	svc, err := req.service()
	if err != nil {
		return nil, err
	}
	inst, err := req.Instance.instance()
	if err != nil {
		return nil, err
	}
	inst.Ephemeral = false
	switch req.Type {
	case typeRegister:
		err = s.reg.Register(ctx, svc, inst)
	case typeDeregister:
		err = s.reg.Deregister(ctx, svc, inst.IP, inst.Port, inst.ClusterName, false)
	default:
		return nil, naming.BadRequest("Unsupported request type " + req.Type)
	}
	if err != nil {
		return nil, err
	}
	return typeResponse{ResponseHead: okHead(id), Type: req.Type, responseTail: success}, nil
}

type serviceQueryRequest struct {
	namingRequest
	Cluster     string `json:"cluster"`
	HealthyOnly bool   `json:"healthyOnly"`
	UDPPort     int    `json:"udpPort"`
}

// serviceQuery serves ServiceQueryRequest: a one-shot read.
func (s *Server) serviceQuery(ctx context.Context, _ *conn, env Envelope, id string) (any, error) {
	var req serviceQueryRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	svc, err := req.service()
	if err != nil {
		return nil, err
	}
	info, err := s.serviceInfo(ctx, svc, req.Cluster, req.HealthyOnly)
	if err != nil {
		return nil, err
	}
	return serviceInfoResponse{ResponseHead: okHead(id), ServiceInfo: info, responseTail: success}, nil
}

type subscribeServiceRequest struct {
	namingRequest
	Subscribe bool   `json:"subscribe"`
	Clusters  string `json:"clusters"`
}

// subscribeService serves SubscribeServiceRequest: subscribe (or unsubscribe) the
// connection and answer the service's current data either way, as Nacos does.
func (s *Server) subscribeService(ctx context.Context, c *conn, env Envelope, id string) (any, error) {
	var req subscribeServiceRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	svc, err := req.service()
	if err != nil {
		return nil, err
	}
	if err := naming.CheckClusters(req.Clusters); err != nil {
		return nil, err
	}
	key := subKey{svc: svc, clusters: req.Clusters}
	// Subscribe before reading, so that a change between the two is pushed.
	err = s.withConn(c, func() error {
		if req.Subscribe {
			app := env.Headers["app"]
			if app == "" {
				app = "unknown" // Nacos' default for the header
			}
			s.hub.subscribe(c, key, app)
		} else {
			s.hub.unsubscribe(c, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	info, err := s.serviceInfo(ctx, svc, req.Clusters, false)
	if err != nil {
		return nil, err
	}
	head := okHead(id)
	head.Message = "success"
	return serviceInfoResponse{ResponseHead: head, ServiceInfo: info, responseTail: success}, nil
}

type serviceListRequest struct {
	namingRequest
	PageNo   int    `json:"pageNo"`
	PageSize int    `json:"pageSize"`
	Selector string `json:"selector"`
}

// serviceList serves ServiceListRequest as GET /service/list: the group's names, a page
// at a time, and the group's count.
func (s *Server) serviceList(_ context.Context, _ *conn, env Envelope, id string) (any, error) {
	var req serviceListRequest
	if err := decodeBody(env.Body, &req); err != nil {
		return nil, err
	}
	ns := strings.TrimSpace(req.Namespace)
	if ns == "" {
		ns = naming.DefaultNamespace
	}
	group := strings.TrimSpace(req.GroupName)
	if group == "" {
		group = naming.DefaultGroup
	}
	if err := naming.CheckNamespace(ns); err != nil {
		return nil, err
	}
	if err := naming.CheckGroup(group); err != nil {
		return nil, err
	}
	count, names, err := s.reg.ServicePage(ns, group, req.PageNo, req.PageSize)
	if err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	return serviceListResponse{ResponseHead: okHead(id), Count: count, ServiceNames: names, responseTail: success}, nil
}

// withConn runs a write on behalf of c while c is registered; a drop waits for it, so
// nothing it writes outlives the connection.
func (s *Server) withConn(c *conn, fn func() error) error {
	c.opMu.RLock()
	defer c.opMu.RUnlock()
	if !c.isRegistered() {
		return errUnregistered
	}
	return fn()
}

// errUnregistered is answered 301 (the connection was dropped meanwhile).
var errUnregistered = &naming.Error{Status: codeUnregistered, Message: "Connection is unregistered."}

// serviceInfo renders a service in the gRPC variant (PROTOCOL.md §3.2): plain name
// with groupName, clusters as asked, hosts with the grouped serviceName.
func (s *Server) serviceInfo(ctx context.Context, svc naming.ServiceKey, clusters string, healthyOnly bool) (naming.ServiceInfoJSON, error) {
	info, err := s.reg.List(ctx, registry.Query{Service: svc, Clusters: clusters, HealthyOnly: healthyOnly})
	if err != nil {
		return naming.ServiceInfoJSON{}, err
	}
	return grpcServiceInfo(info, s.reg.Timing()), nil
}

// grpcServiceInfo is the gRPC ServiceInfo of a list answer.
func grpcServiceInfo(info *registry.ServiceInfo, t naming.Timing) naming.ServiceInfoJSON {
	hosts := make([]naming.InstanceJSON, 0, len(info.Hosts))
	for _, inst := range info.Hosts {
		hosts = append(hosts, naming.NewInstanceJSON(info.Service, inst, t))
	}
	return naming.ServiceInfoJSON{
		Name:                     info.Service.Name,
		GroupName:                info.Service.Group,
		Clusters:                 info.Clusters,
		CacheMillis:              info.CacheMillis,
		Hosts:                    hosts,
		LastRefTime:              info.LastRefTime,
		Checksum:                 "",
		ReachProtectionThreshold: info.ReachProtectionThreshold,
		Valid:                    true,
	}
}

func (s *Server) maxMetadata() int {
	if s.cfg.MaxMetadata > 0 {
		return s.cfg.MaxMetadata
	}
	return naming.DefaultMaxMetadata
}
