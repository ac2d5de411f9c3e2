package naming

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Nacos' ParamCheckRules (common/paramcheck) with their default limits.
const (
	MaxNamespaceLength = 64
	MaxServiceLength   = 512
	MaxGroupLength     = 128
	MaxClusterLength   = 64
	MaxIPLength        = 128
	// DefaultMaxMetadata is the default limit on the summed length of metadata keys and
	// values. It is configurable because Dubbo's metadata exceeds it.
	DefaultMaxMetadata = 1024
	MaxWeight          = 10000.0
)

var (
	namespacePattern       = regexp.MustCompile(`^[\w-]+$`)
	groupPattern           = regexp.MustCompile(`^[a-zA-Z0-9\-_:.]*$`)
	clusterParamPattern    = regexp.MustCompile(`^[0-9a-zA-Z\-_]+$`)
	instanceClusterPattern = regexp.MustCompile(`^[0-9a-zA-Z-]+$`)
)

func illegalChars(param string) *Error {
	return paramCheck("Param '" + param + "' is illegal, illegal characters should not appear in the param.")
}

func tooLong(param string, limit int) *Error {
	return paramCheck(fmt.Sprintf("Param '%s' is illegal, the param length should not exceed %d.", param, limit))
}

// javaLen counts UTF-16 code units, as Java's String.length does.
func javaLen(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// CheckNamespace applies the namespace rule; blank passes (it becomes public).
func CheckNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	if javaLen(ns) > MaxNamespaceLength {
		return tooLong("namespaceId/tenant", MaxNamespaceLength)
	}
	if !namespacePattern.MatchString(ns) {
		return illegalChars("namespaceId/tenant")
	}
	return nil
}

// CheckServiceName applies the rule for a plain (ungrouped) service name: no leading
// '@', no "@@", no whitespace and no CJK ideographs.
func CheckServiceName(name string) error {
	if name == "" {
		return nil
	}
	if javaLen(name) > MaxServiceLength {
		return tooLong("serviceName", MaxServiceLength)
	}
	if strings.HasPrefix(name, "@") || strings.Contains(name, GroupSeparator) {
		return illegalChars("serviceName")
	}
	// Nacos' pattern ^(?!@).((?!@@)[^\u4E00-\u9FA5\s])* lets any first character but '@'
	// and a line break through; the rest may hold no whitespace and no ideograph.
	for i, r := range name {
		if i == 0 {
			if r == '\n' || r == '\r' {
				return illegalChars("serviceName")
			}
			continue
		}
		if unicode.IsSpace(r) || isCJK(r) {
			return illegalChars("serviceName")
		}
	}
	return nil
}

func isCJK(r rune) bool { return r >= 0x4E00 && r <= 0x9FA5 }

// CheckGroup applies the group rule.
func CheckGroup(group string) error {
	if group == "" {
		return nil
	}
	if javaLen(group) > MaxGroupLength {
		return tooLong("group", MaxGroupLength)
	}
	if !groupPattern.MatchString(group) {
		return illegalChars("group")
	}
	return nil
}

// CheckClusters applies the cluster rule to a comma-separated list.
func CheckClusters(list string) error {
	for _, c := range strings.Split(list, ",") {
		if err := CheckCluster(c); err != nil {
			return err
		}
	}
	return nil
}

// CheckCluster applies the cluster parameter rule to one name.
func CheckCluster(c string) error {
	if strings.TrimSpace(c) == "" {
		return nil
	}
	if javaLen(c) > MaxClusterLength {
		return tooLong("cluster", MaxClusterLength)
	}
	if !clusterParamPattern.MatchString(c) {
		return illegalChars("cluster")
	}
	return nil
}

// CheckIP applies the ip rule: bounded length, no whitespace or CJK.
func CheckIP(ip string) error {
	if ip == "" {
		return nil
	}
	if javaLen(ip) > MaxIPLength {
		return tooLong("ip", MaxIPLength)
	}
	for _, r := range ip {
		if unicode.IsSpace(r) || isCJK(r) {
			return illegalChars("ip")
		}
	}
	return nil
}

// ErrPortRange is the text for a port outside 0–65535 or not a number.
var ErrPortRange = paramCheck("Param 'port' is illegal, the value should be between 0 and 65535.")

// ParsePort parses a port the way Nacos' checker does.
func ParsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 65535 {
		return 0, ErrPortRange
	}
	return n, nil
}

// CheckMetadata applies the summed key+value length limit.
func CheckMetadata(md map[string]string, limit int) error {
	total := 0
	for k, v := range md {
		if strings.TrimSpace(k) != "" {
			total += javaLen(k)
		}
		if strings.TrimSpace(v) != "" {
			total += javaLen(v)
		}
	}
	if total > limit {
		return tooLong("Metadata", limit)
	}
	return nil
}

// CheckInstance applies Nacos' instance rules (NamingUtils.checkInstanceIsLegal): the
// cluster name, the weight range and the ordering of the beat timeouts.
// Timeouts are checked against the server's defaults t with the instance's overrides.
func CheckInstance(inst *Instance, maxMetadata int, t Timing) error {
	if err := CheckIP(inst.IP); err != nil {
		return err
	}
	if inst.Port < 0 || inst.Port > 65535 {
		return ErrPortRange
	}
	if err := CheckCluster(inst.ClusterName); err != nil {
		return err
	}
	if err := CheckMetadata(inst.Metadata, maxMetadata); err != nil {
		return err
	}
	if it := t.For(inst); it.HeartBeatTimeout < it.HeartBeatInterval || it.IPDeleteTimeout < it.HeartBeatInterval {
		return APIError(http.StatusBadRequest, CodeInstanceError, "Instance 'heart beat interval' must less than 'heart beat timeout' and 'ip delete timeout'.")
	}
	if inst.ClusterName != "" && !instanceClusterPattern.MatchString(inst.ClusterName) {
		return APIError(http.StatusBadRequest, CodeInstanceError, fmt.Sprintf("Instance 'clusterName' should be characters with only 0-9a-zA-Z-. (current: %s)", inst.ClusterName))
	}
	// NaN compares false with everything, so it is refused by name: accepted once, it
	// made every list and every replication batch of its service fail to encode.
	if math.IsNaN(inst.Weight) || inst.Weight < 0 || inst.Weight > MaxWeight {
		return APIError(http.StatusBadRequest, CodeWeightError, "instance format invalid: The weights range from 0.0 to 10000.0")
	}
	return nil
}

// CheckServiceKey validates a resolved service key.
func CheckServiceKey(k ServiceKey) error {
	if err := CheckNamespace(k.Namespace); err != nil {
		return err
	}
	if err := CheckServiceName(k.Name); err != nil {
		return err
	}
	if k.Name == "" {
		return RequiredParam("serviceName")
	}
	return CheckGroup(k.Group)
}

// ParseMetadata reads metadata as Nacos does: a JSON object of strings, else
// "k=v,k=v". Blank and the JSON literal null are empty. Scalar JSON values are kept
// as their text, as Jackson coerces them.
func ParseMetadata(raw string) (map[string]string, error) {
	raw = strings.TrimSpace(raw)
	md := map[string]string{}
	if raw == "" || raw == "null" {
		return md, nil
	}
	if strings.HasPrefix(raw, "{") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &obj); err == nil {
			ok := true
			for k, v := range obj {
				s, good := jsonScalarText(v)
				if !good {
					ok = false
					break
				}
				md[k] = s
			}
			if ok {
				return md, nil
			}
			md = map[string]string{}
		}
	}
	for _, pair := range strings.Split(raw, ",") {
		kv := strings.Split(pair, "=")
		if len(kv) != 2 {
			return nil, APIError(http.StatusBadRequest, CodeInstanceMetadata, "metadata format incorrect:"+raw)
		}
		md[kv[0]] = kv[1]
	}
	return md, nil
}

func jsonScalarText(v json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, true
	}
	t := strings.TrimSpace(string(v))
	if t == "null" {
		return "", true
	}
	if t == "true" || t == "false" {
		return t, true
	}
	var f json.Number
	if err := json.Unmarshal(v, &f); err == nil {
		return f.String(), true
	}
	return "", false
}

// ParseBool reads a boolean as Nacos' ConvertUtils does: true, t, y, yes, on (any case)
// are true; blank gives the default; anything else is false.
func ParseBool(s string, def bool) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return def
	}
	switch strings.ToLower(s) {
	case "true", "t", "y", "yes", "on":
		return true
	}
	return false
}

// NumberFormatError is Java's NumberFormatException text, which Nacos answers with 400
// (v2: PARAMETER_VALIDATE_ERROR).
func NumberFormatError(s string) *Error {
	return APIError(http.StatusBadRequest, CodeParameterValidate, fmt.Sprintf("For input string: \"%s\"", s))
}

// ParseFloat parses a double or answers Java's text.
func ParseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, NumberFormatError(s)
	}
	return f, nil
}

// ParseInt parses an int or answers Java's text.
func ParseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, NumberFormatError(s)
	}
	return n, nil
}
