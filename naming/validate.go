package naming

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
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

// The character rules of Nacos' patterns, as byte sets: every name on every request is
// checked, and a table lookup per byte costs a fraction of a regexp match. The Java
// patterns they stand for are in the comments.
var (
	namespacePattern       = newCharset(alnum+"_-", false)  // ^[\w-]+$
	groupPattern           = newCharset(alnum+"-_:.", true) // ^[a-zA-Z0-9\-_:.]*$
	clusterParamPattern    = newCharset(alnum+"-_", false)  // ^[0-9a-zA-Z\-_]+$
	instanceClusterPattern = newCharset(alnum+"-", false)   // ^[0-9a-zA-Z-]+$
)

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// charset matches strings made only of its bytes (ASCII), empty ones only if allowEmpty.
type charset struct {
	ok         [256]bool
	allowEmpty bool
}

func newCharset(chars string, allowEmpty bool) *charset {
	c := &charset{allowEmpty: allowEmpty}
	for i := 0; i < len(chars); i++ {
		c.ok[chars[i]] = true
	}
	return c
}

// MatchString reports whether s matches, as the regexp it replaces would.
func (c *charset) MatchString(s string) bool {
	if s == "" {
		return c.allowEmpty
	}
	for i := 0; i < len(s); i++ {
		if !c.ok[s[i]] {
			return false
		}
	}
	return true
}

func illegalChars(param string) *Error {
	return paramCheck("Param '" + param + "' is illegal, illegal characters should not appear in the param.")
}

func tooLong(param string, limit int) *Error {
	return paramCheck(fmt.Sprintf("Param '%s' is illegal, the param length should not exceed %d.", param, limit))
}

func controlChars(param string) *Error {
	return BadRequest("Param '" + param + "' is illegal, control characters should not appear in the param.")
}

func notUTF8(param string) *Error {
	return BadRequest("Param '" + param + "' is illegal, the param should be valid UTF-8.")
}

// hasControl reports whether s holds a C0 control character (U+0000–U+001F).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// checkText applies Roster's own text rules to one parameter, after Nacos' rules where
// Nacos' patterns let a character through. Nacos' service and ip patterns only exclude
// whitespace and CJK, so NUL and the other C0 controls pass them; stored, such a name is
// unreadable in logs and in the console, and two names that differ only there look the
// same. DEL (0x7f) is left as Nacos leaves it. Text that is not UTF-8 cannot occur in
// Nacos (Java decodes every parameter, with U+FFFD for bad bytes) and does not survive
// JSON: it would be stored under one name and listed, replicated and snapshotted under
// another.
func checkText(param, s string) error {
	if !utf8.ValidString(s) {
		return notUTF8(param)
	}
	if hasControl(s) {
		return controlChars(param)
	}
	return nil
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
	return checkText("serviceName", name)
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
	return checkText("ip", ip)
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

// CheckMetadata applies the summed key+value length limit, then Roster's text rules:
// keys and values are UTF-8, and keys hold no control characters (values may: JSON
// carries them escaped, and Nacos' clients send multi-line values).
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
	for k, v := range md {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return notUTF8("Metadata")
		}
		if hasControl(k) {
			return BadRequest("Param 'Metadata' is illegal, control characters should not appear in its keys.")
		}
	}
	return nil
}

// ErrWeightRange is Nacos' text for a weight outside 0–10000.
var ErrWeightRange = APIError(http.StatusBadRequest, CodeWeightError, "instance format invalid: The weights range from 0.0 to 10000.0")

// CheckWeight applies the weight range. NaN compares false with everything, so it is
// refused by name: accepted once, it made every list and every replication batch of
// its service fail to encode. ±Inf is outside the range.
func CheckWeight(w float64) error {
	if math.IsNaN(w) || w < 0 || w > MaxWeight {
		return ErrWeightRange
	}
	return nil
}

// CheckProtectThreshold refuses a threshold JSON cannot carry. Nacos has no rule (a
// Java float takes NaN and Infinity); the text is Roster's own.
func CheckProtectThreshold(t float64) error {
	if math.IsNaN(t) || math.IsInf(t, 0) {
		return BadRequest("protectThreshold must be a finite number")
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
	return CheckWeight(inst.Weight)
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

// CheckResolvedKey is CheckServiceKey for a key whose defaults the front has filled
// in: namespace and group must be present. Every stored (persistent) record has one.
func CheckResolvedKey(k ServiceKey) error {
	if err := CheckServiceKey(k); err != nil {
		return err
	}
	if k.Namespace == "" {
		return RequiredParam("namespaceId")
	}
	if k.Group == "" {
		return RequiredParam("groupName")
	}
	return nil
}

// CheckInstanceRef checks a complete instance key: ip and cluster present and legal,
// port in range.
func CheckInstanceRef(ip string, port int, cluster string) error {
	if ip == "" {
		return RequiredParam("ip")
	}
	if err := CheckIP(ip); err != nil {
		return err
	}
	if port < 0 || port > 65535 {
		return ErrPortRange
	}
	if cluster == "" {
		return RequiredParam("clusterName")
	}
	return CheckCluster(cluster)
}

// CheckService applies the rules of a service record as it is written: a resolved key,
// a finite protect threshold, legal metadata, a known selector type, and clusters named
// as their keys with legal names, metadata and check ports.
func CheckService(s *Service, maxMetadata int) error {
	if err := CheckResolvedKey(s.Key); err != nil {
		return err
	}
	if err := CheckProtectThreshold(s.ProtectThreshold); err != nil {
		return err
	}
	if err := CheckMetadata(s.Metadata, maxMetadata); err != nil {
		return err
	}
	switch s.Selector.Type {
	case "", "none", "label":
	default:
		return ErrSelector
	}
	for name, cl := range s.Clusters {
		if cl == nil {
			return BadRequest("cluster " + name + " is empty")
		}
		if err := CheckCluster(name); err != nil {
			return err
		}
		if cl.Name != name {
			return BadRequest("cluster " + name + " is named " + cl.Name)
		}
		if err := CheckMetadata(cl.Metadata, maxMetadata); err != nil {
			return err
		}
		if cl.CheckPort < 0 || cl.CheckPort > 65535 {
			return ErrPortRange
		}
		if err := cl.HealthChecker.Validate(); err != nil {
			return err
		}
	}
	return nil
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

// ParseFloat parses a double as Java's Double.parseDouble does, or answers Java's text.
// Java takes "NaN", "Infinity" (signed), decimal and hexadecimal (0x…p…) numbers with
// an optional f/F/d/D suffix, and turns a number too large for a double into
// ±Infinity (and one too small into 0) instead of failing; Go's own spellings ("inf",
// "nan", "infinity", digits with underscores) are Java's NumberFormatException. The
// range rules (CheckWeight, CheckProtectThreshold) then refuse what is not finite, so
// "1e400" as a weight gets Nacos' weight text, as in Nacos.
func ParseFloat(s string) (float64, error) {
	t := strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	body := strings.TrimLeft(t, "+-")
	if len(t)-len(body) > 1 {
		return 0, NumberFormatError(s)
	}
	switch body {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		if strings.HasPrefix(t, "-") {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	}
	if n := len(t); n > 0 && strings.ContainsRune("fFdD", rune(t[n-1])) && !hexWithoutExponent(body) {
		t = t[:n-1]
		body = body[:len(body)-1]
	}
	if body == "" || strings.ContainsRune(body, '_') || !(body[0] >= '0' && body[0] <= '9' || body[0] == '.') {
		return 0, NumberFormatError(s)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, NumberFormatError(s)
	}
	return f, nil
}

// hexWithoutExponent reports whether an unsigned number is hexadecimal with no p
// exponent yet: there d and f are digits, not a type suffix (Java's suffix follows the
// exponent, and a hexadecimal double without one is refused anyway).
func hexWithoutExponent(body string) bool {
	if !(strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X")) {
		return false
	}
	return !strings.ContainsAny(body, "pP")
}

// ParseInt parses an int or answers Java's text.
func ParseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, NumberFormatError(s)
	}
	return n, nil
}
