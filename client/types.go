package client

import "github.com/roster-registry/roster/naming"

// ServiceRef names a service. A blank Namespace is Nacos' "public" and a blank Group is
// "DEFAULT_GROUP"; a Name that already holds "G@@S" keeps its own group, as in Nacos.
type ServiceRef struct {
	Namespace string
	Group     string
	Name      string
}

func (s ServiceRef) namespace() string {
	if s.Namespace == "" {
		return naming.DefaultNamespace
	}
	return s.Namespace
}

func (s ServiceRef) group() string {
	if s.Group == "" {
		return naming.DefaultGroup
	}
	return s.Group
}

// Instance is an instance as the v1 API writes it (PROTOCOL.md §3.1). On input,
// RegisterInstance and UpdateInstance send Weight, Healthy, Enabled and Ephemeral as they
// are, so start from NewInstance to get Nacos' defaults.
type Instance struct {
	InstanceID  string            `json:"instanceId,omitempty"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName,omitempty"`
	ServiceName string            `json:"serviceName,omitempty"` // grouped: G@@S
	Metadata    map[string]string `json:"metadata,omitempty"`

	// Derived beat timing in milliseconds, ignored on input.
	HeartBeatInterval   int64  `json:"instanceHeartBeatInterval,omitempty"`
	HeartBeatTimeout    int64  `json:"instanceHeartBeatTimeOut,omitempty"`
	IPDeleteTimeout     int64  `json:"ipDeleteTimeout,omitempty"`
	InstanceIDGenerator string `json:"instanceIdGenerator,omitempty"`

	// Service is the grouped service name; only GET /instance answers it.
	Service string `json:"service,omitempty"`
}

// NewInstance returns an instance with Nacos' registration defaults: weight 1, healthy,
// enabled, ephemeral, cluster DEFAULT.
func NewInstance(ip string, port int) Instance {
	return Instance{
		IP:          ip,
		Port:        port,
		Weight:      1,
		Healthy:     true,
		Enabled:     true,
		Ephemeral:   true,
		ClusterName: naming.DefaultCluster,
	}
}

// ServiceInfo is the answer of GET /instance/list (PROTOCOL.md §3.2).
type ServiceInfo struct {
	Name                     string     `json:"name"` // grouped: G@@S
	GroupName                string     `json:"groupName"`
	Clusters                 string     `json:"clusters"`
	CacheMillis              int64      `json:"cacheMillis"`
	Hosts                    []Instance `json:"hosts"`
	LastRefTime              int64      `json:"lastRefTime"`
	Checksum                 string     `json:"checksum"`
	AllIPs                   bool       `json:"allIPs"`
	ReachProtectionThreshold bool       `json:"reachProtectionThreshold"`
	Valid                    bool       `json:"valid"`
}

// Selector is a service's instance selector: {"type":"none"} or a label expression.
type Selector struct {
	Type       string `json:"type"`
	Expression string `json:"expression,omitempty"`
}

// HealthChecker is a cluster's active health check of its persistent instances: Type
// TCP (the default), HTTP (Path, Headers as "k:v|k:v", ExpectedResponseCode), GRPC
// (Service, checked with grpc.health.v1; blank is the server's overall health) or NONE
// (health is set by hand, SetHealth).
type HealthChecker struct {
	Type                 string `json:"type"`
	Path                 string `json:"path,omitempty"`
	Headers              string `json:"headers,omitempty"`
	ExpectedResponseCode int    `json:"expectedResponseCode,omitempty"`
	Service              string `json:"service,omitempty"`
}

// ClusterConfig is what UpdateCluster sets on one cluster of a service.
type ClusterConfig struct {
	Name          string
	HealthChecker HealthChecker
	// CheckPort is probed instead of each instance's port when UseInstancePort is off.
	CheckPort       int
	UseInstancePort bool
	Metadata        map[string]string
}

// Cluster is one cluster of a ServiceDetail.
type Cluster struct {
	Name          string            `json:"name"`
	HealthChecker HealthChecker     `json:"healthChecker"`
	Metadata      map[string]string `json:"metadata"`
}

// ServiceDetail is the answer of GET /service (PROTOCOL.md §3.4).
type ServiceDetail struct {
	NamespaceID      string            `json:"namespaceId"`
	GroupName        string            `json:"groupName"`
	Name             string            `json:"name"`
	ProtectThreshold float64           `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata"`
	Selector         Selector          `json:"selector"`
	Clusters         []Cluster         `json:"clusters"`
}

// ServiceOptions are the optional fields of CreateService.
type ServiceOptions struct {
	ProtectThreshold float64
	Metadata         map[string]string
	Selector         *Selector // nil: the server's default ("none")
}

// ListOptions narrow ListInstances.
type ListOptions struct {
	Clusters    []string // blank: all clusters
	HealthyOnly bool
	// UDPPort and ClientIP subscribe the caller to UDP pushes, as Nacos 1.x clients do.
	UDPPort  int
	ClientIP string
}

// ServiceQuery pages through GET /service/list. Zero PageNo is 1; zero PageSize is 100.
type ServiceQuery struct {
	Namespace string
	Group     string
	PageNo    int
	PageSize  int
}

// ServiceList is one page of service names (without their group) and the number of
// services in the whole group.
type ServiceList struct {
	Count int      `json:"count"`
	Names []string `json:"doms"`
}

// BeatResult is the answer of PUT /instance/beat (PROTOCOL.md §4).
type BeatResult struct {
	ClientBeatInterval int64 `json:"clientBeatInterval"`
	Code               int   `json:"code"`
	LightBeatEnabled   bool  `json:"lightBeatEnabled"`
}

// Beat answer codes.
const (
	BeatOK       = 10200 // the beat was recorded (or re-registered the instance)
	BeatNotFound = 20404 // a light beat for an instance the server does not hold
)

// Metrics is the answer of GET /operator/metrics?onlyStatus=false.
type Metrics struct {
	Status         string  `json:"status"`
	ServiceCount   int     `json:"serviceCount"`
	InstanceCount  int     `json:"instanceCount"`
	SubscribeCount int     `json:"subscribeCount"`
	CPU            float64 `json:"cpu"`
	Load           float64 `json:"load"`
	Mem            float64 `json:"mem"`
}

// beatBody is the "beat" JSON of a full beat (PROTOCOL.md §3.3), as nacos-sdk-go sends it.
type beatBody struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	Weight      float64           `json:"weight"`
	ServiceName string            `json:"serviceName"`
	Cluster     string            `json:"cluster"`
	Metadata    map[string]string `json:"metadata"`
	Ephemeral   bool              `json:"ephemeral"`
}
