package naming

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The Nacos JSON shapes that more than one front speaks (the HTTP API, UDP push, and the
// gRPC front in package grpcapi). Field order follows Nacos' Jackson output so that
// answers read the same.

// JavaDouble encodes a float64 as Java's Jackson does for a double: 1 as 1.0.
type JavaDouble float64

// MarshalJSON writes integral values with a ".0" suffix.
func (d JavaDouble) MarshalJSON() ([]byte, error) {
	f := float64(d)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// CheckWeight and CheckProtectThreshold keep such values out of the registry.
		return nil, fmt.Errorf("naming: %v is not a JSON number", f)
	}
	b := strconv.AppendFloat(nil, f, 'f', -1, 64)
	if !bytes.ContainsAny(b, ".eEn") {
		b = append(b, '.', '0')
	}
	return b, nil
}

// UnmarshalJSON reads a double as Jackson does: a JSON number, or a string holding one
// (Jackson coerces scalars), in Java's syntax (ParseFloat). A number too large for a
// double is ±Infinity and "NaN" is NaN, as in Java: JSON cannot carry them otherwise,
// and the range rules refuse them with Nacos' text where the value enters the registry,
// instead of a decoder error that names Go types. null leaves the value unchanged.
func (d *JavaDouble) UnmarshalJSON(b []byte) error {
	text := string(b)
	if text == "null" {
		return nil
	}
	if strings.HasPrefix(text, `"`) {
		if err := json.Unmarshal(b, &text); err != nil {
			return err
		}
	}
	f, err := ParseFloat(text)
	if err != nil {
		return err
	}
	*d = JavaDouble(f)
	return nil
}

// InstanceJSON is an instance as Nacos answers it (api/naming/pojo/Instance.java).
type InstanceJSON struct {
	InstanceID                string            `json:"instanceId"`
	IP                        string            `json:"ip"`
	Port                      int               `json:"port"`
	Weight                    JavaDouble        `json:"weight"`
	Healthy                   bool              `json:"healthy"`
	Enabled                   bool              `json:"enabled"`
	Ephemeral                 bool              `json:"ephemeral"`
	ClusterName               string            `json:"clusterName"`
	ServiceName               string            `json:"serviceName"`
	Metadata                  map[string]string `json:"metadata"`
	InstanceHeartBeatInterval int64             `json:"instanceHeartBeatInterval"`
	InstanceHeartBeatTimeOut  int64             `json:"instanceHeartBeatTimeOut"`
	IPDeleteTimeout           int64             `json:"ipDeleteTimeout"`
	InstanceIDGenerator       string            `json:"instanceIdGenerator"`
}

// NewInstanceJSON renders inst of service svc; t gives the server's default timing,
// which the instance's preserved.* metadata overrides. serviceName is the grouped
// name unless plainName is set (gRPC answers use the plain name inside hosts too).
func NewInstanceJSON(svc ServiceKey, inst *Instance, t Timing) InstanceJSON {
	it := t.For(inst)
	md := inst.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return InstanceJSON{
		InstanceID:                inst.ID(svc),
		IP:                        inst.IP,
		Port:                      inst.Port,
		Weight:                    JavaDouble(inst.Weight),
		Healthy:                   inst.Healthy,
		Enabled:                   inst.Enabled,
		Ephemeral:                 inst.Ephemeral,
		ClusterName:               inst.ClusterName,
		ServiceName:               svc.Grouped(),
		Metadata:                  md,
		InstanceHeartBeatInterval: it.HeartBeatInterval.Milliseconds(),
		InstanceHeartBeatTimeOut:  it.HeartBeatTimeout.Milliseconds(),
		IPDeleteTimeout:           it.IPDeleteTimeout.Milliseconds(),
		InstanceIDGenerator:       "simple",
	}
}

// ServiceInfoJSON is Nacos' ServiceInfo (api/naming/pojo/ServiceInfo.java). GroupName is
// omitted when empty, as the UDP push variant has none.
type ServiceInfoJSON struct {
	Name                     string         `json:"name"`
	GroupName                string         `json:"groupName,omitempty"`
	Clusters                 string         `json:"clusters"`
	CacheMillis              int64          `json:"cacheMillis"`
	Hosts                    []InstanceJSON `json:"hosts"`
	LastRefTime              int64          `json:"lastRefTime"`
	Checksum                 string         `json:"checksum"`
	AllIPs                   bool           `json:"allIPs"`
	ReachProtectionThreshold bool           `json:"reachProtectionThreshold"`
	Valid                    bool           `json:"valid"`
}

// Marshal encodes v without HTML escaping (Jackson does not escape <, > or &).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
