package naming

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults and separators of the Nacos naming model.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
	// GroupSeparator joins a group and a service name into a grouped name (G@@S).
	GroupSeparator = "@@"
)

// Defaults of the beat protocol, in milliseconds, as Nacos' clients expect them.
const (
	DefaultHeartBeatIntervalMillis = 5000
	DefaultHeartBeatTimeoutMillis  = 15000
	DefaultIPDeleteTimeoutMillis   = 30000
)

// Reserved metadata keys (Nacos PreservedMetadataKeys) that override per-instance timing.
const (
	MetaHeartBeatInterval = "preserved.heart.beat.interval"
	MetaHeartBeatTimeout  = "preserved.heart.beat.timeout"
	MetaIPDeleteTimeout   = "preserved.ip.delete.timeout"
	MetaInstanceIDGen     = "preserved.instance.id.generator"
	MetaRegisterSource    = "preserved.register.source"
)

// ServiceKey names a service inside a namespace.
type ServiceKey struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Name      string `json:"name"`
}

// Grouped is the Nacos grouped name, G@@S.
func (k ServiceKey) Grouped() string { return k.Group + GroupSeparator + k.Name }

// String is a unique, human-readable form: namespace##G@@S.
func (k ServiceKey) String() string { return k.Namespace + "##" + k.Grouped() }

// Instance is one endpoint of a service. Weight, Healthy and Enabled are stored as sent.
type Instance struct {
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// Key identifies an instance inside its service: ip#port#cluster. Roster keys instances
// per cluster as Nacos 1.x did.
func (i *Instance) Key() string {
	return InstanceKey(i.IP, i.Port, i.ClusterName)
}

// InstanceKey builds the in-service key of an instance.
func InstanceKey(ip string, port int, cluster string) string {
	return ip + "#" + strconv.Itoa(port) + "#" + cluster
}

// Addr is ip:port, the identity of a 1.x client.
func (i *Instance) Addr() string { return i.IP + ":" + strconv.Itoa(i.Port) }

// ID is Nacos' default instance id: ip#port#cluster#G@@S.
func (i *Instance) ID(svc ServiceKey) string {
	return i.Key() + "#" + svc.Grouped()
}

// Clone returns a deep copy, so that stored instances are never shared with callers.
func (i *Instance) Clone() *Instance {
	c := *i
	if i.Metadata != nil {
		c.Metadata = make(map[string]string, len(i.Metadata))
		for k, v := range i.Metadata {
			c.Metadata[k] = v
		}
	}
	return &c
}

// Timing is the beat interval and the two expiry timeouts that apply to an instance.
type Timing struct {
	HeartBeatInterval time.Duration
	HeartBeatTimeout  time.Duration
	IPDeleteTimeout   time.Duration
}

// DefaultTiming is Nacos' 5 s beat, 15 s unhealthy and 30 s delete timeouts.
func DefaultTiming() Timing {
	return Timing{
		HeartBeatInterval: DefaultHeartBeatIntervalMillis * time.Millisecond,
		HeartBeatTimeout:  DefaultHeartBeatTimeoutMillis * time.Millisecond,
		IPDeleteTimeout:   DefaultIPDeleteTimeoutMillis * time.Millisecond,
	}
}

// For applies the instance's preserved.* metadata overrides (milliseconds, digits only)
// to the server's defaults t.
func (t Timing) For(inst *Instance) Timing {
	return Timing{
		HeartBeatInterval: time.Duration(metaMillis(inst.Metadata, MetaHeartBeatInterval, t.HeartBeatInterval.Milliseconds())) * time.Millisecond,
		HeartBeatTimeout:  time.Duration(metaMillis(inst.Metadata, MetaHeartBeatTimeout, t.HeartBeatTimeout.Milliseconds())) * time.Millisecond,
		IPDeleteTimeout:   time.Duration(metaMillis(inst.Metadata, MetaIPDeleteTimeout, t.IPDeleteTimeout.Milliseconds())) * time.Millisecond,
	}
}

func metaMillis(md map[string]string, key string, def int64) int64 {
	v, ok := md[key]
	if !ok || !isDigits(v) {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def
	}
	return n
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Selector is a service's instance selector: "none" or "label" with an expression.
type Selector struct {
	Type       string `json:"type"`
	Expression string `json:"expression,omitempty"`
}

// Cluster is the configuration of one cluster of a service: the health check of its
// persistent instances (Nacos ClusterMetadata) and its metadata. A cluster that has
// instances but no stored record has NewCluster's configuration, as in Nacos.
type Cluster struct {
	Name          string            `json:"name"`
	HealthChecker HealthChecker     `json:"healthChecker"`
	Metadata      map[string]string `json:"metadata"`
	// CheckPort is the port probed when UseInstancePort is off. Zero (a record written
	// before checks were configurable) means the instance's own port.
	CheckPort       int  `json:"checkPort,omitempty"`
	UseInstancePort bool `json:"useInstancePort4Check"`
}

// NewCluster is Nacos' default cluster configuration: a TCP check of each instance's own
// port (check port 80 should useInstancePort4Check be turned off), no metadata.
func NewCluster(name string) *Cluster {
	return &Cluster{
		Name: name, HealthChecker: HealthChecker{Type: CheckerTCP}, Metadata: map[string]string{},
		CheckPort: DefaultCheckPort, UseInstancePort: true,
	}
}

// ProbePort is the port a probe of an instance listening on instancePort dials.
func (c *Cluster) ProbePort(instancePort int) int {
	if c.UseInstancePort || c.CheckPort <= 0 {
		return instancePort
	}
	return c.CheckPort
}

// ClusterOf returns the configuration of the named cluster: a copy of the stored record
// with its checker made effective (HealthChecker.Effective), else NewCluster.
func (s *Service) ClusterOf(name string) *Cluster {
	c, ok := s.Clusters[name]
	if !ok || c == nil {
		return NewCluster(name)
	}
	cc := *c
	cc.Metadata = cloneMap(c.Metadata)
	if cc.Metadata == nil {
		cc.Metadata = map[string]string{}
	}
	cc.HealthChecker = c.HealthChecker.Effective()
	return &cc
}

// Service is the stored metadata of a service. A service is ephemeral or persistent,
// never both.
type Service struct {
	Key              ServiceKey          `json:"key"`
	Ephemeral        bool                `json:"ephemeral"`
	ProtectThreshold float64             `json:"protectThreshold"`
	Metadata         map[string]string   `json:"metadata,omitempty"`
	Selector         Selector            `json:"selector"`
	Clusters         map[string]*Cluster `json:"clusters,omitempty"`
}

// Clone returns a deep copy.
func (s *Service) Clone() *Service {
	c := *s
	c.Metadata = cloneMap(s.Metadata)
	if s.Clusters != nil {
		c.Clusters = make(map[string]*Cluster, len(s.Clusters))
		for k, v := range s.Clusters {
			cc := *v
			cc.Metadata = cloneMap(v.Metadata)
			c.Clusters[k] = &cc
		}
	}
	return &c
}

// NewService returns a service with Nacos' defaults: threshold 0, selector none.
func NewService(key ServiceKey, ephemeral bool) *Service {
	return &Service{Key: key, Ephemeral: ephemeral, Selector: Selector{Type: "none"}}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// SplitGroupedName splits G@@S. Names without the separator get the given group.
// It applies Nacos' v1 rule: parts beyond the second are dropped.
func SplitGroupedName(grouped, group string) (string, string, error) {
	grouped = strings.TrimSpace(grouped)
	if !strings.Contains(grouped, GroupSeparator) {
		if group == "" {
			group = DefaultGroup
		}
		return group, grouped, nil
	}
	// Java's String.split drops trailing empty parts: "G@@" has one part.
	parts := strings.Split(grouped, GroupSeparator)
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	if len(parts) < 2 {
		return "", "", APIError(http.StatusBadRequest, CodeParameterValidate, "Param 'serviceName' is illegal, it should be format as 'groupName@@serviceName'")
	}
	if parts[0] == "" {
		return "", "", APIError(http.StatusBadRequest, CodeParameterValidate, "Param 'serviceName' is illegal, groupName can't be empty")
	}
	return parts[0], parts[1], nil
}
