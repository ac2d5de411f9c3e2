package naming

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Health checker types of a cluster. TCP, HTTP and NONE are Nacos' (HealthCheckType);
// GRPC, a grpc.health.v1 Health/Check of one service name, is Roster's own, as Consul
// has it. Nacos' MYSQL is not supported: Roster holds no database credentials.
const (
	CheckerTCP  = "TCP"
	CheckerHTTP = "HTTP"
	CheckerGRPC = "GRPC"
	CheckerNone = "NONE"
)

// CheckerTypes lists the supported types in the order GET /health/checkers answers them:
// the iteration order of the Java HashMap Nacos builds that answer in, for these names.
func CheckerTypes() []string { return []string{CheckerTCP, CheckerHTTP, CheckerNone, CheckerGRPC} }

// Defaults of a cluster's health check (Nacos ClusterMetadata and the HTTP checker).
const (
	// DefaultCheckPort is the port probed when useInstancePort4Check is off and no
	// checkPort was given.
	DefaultCheckPort = 80
	// DefaultExpectedResponseCode is the status an HTTP check expects by default.
	DefaultExpectedResponseCode = 200
	// MaxCheckerText bounds an HTTP checker's path and headers and a GRPC checker's
	// service name.
	MaxCheckerText = 1024
)

// HealthChecker is a cluster's active health check for persistent instances. Path,
// Headers ("k:v|k:v", Nacos' form) and ExpectedResponseCode belong to HTTP, Service to
// GRPC (blank: the server's overall health). Its JSON is Nacos' form of each type:
// {"type":"TCP"}, {"type":"HTTP","path":"","headers":"","expectedResponseCode":200},
// {"type":"GRPC","service":""}, {"type":"NONE"}; it is also how the store keeps it.
//
// A Type of "" is a record written before checkers were configurable: it means TCP
// (Effective).
type HealthChecker struct {
	Type                 string `json:"type"`
	Path                 string `json:"path,omitempty"`
	Headers              string `json:"headers,omitempty"`
	ExpectedResponseCode int    `json:"expectedResponseCode,omitempty"`
	Service              string `json:"service,omitempty"`
}

// DefaultChecker returns the checker of a type with Nacos' defaults.
func DefaultChecker(typ string) HealthChecker {
	h := HealthChecker{Type: typ}
	if typ == CheckerHTTP {
		h.ExpectedResponseCode = DefaultExpectedResponseCode
	}
	return h
}

// Effective is the checker in force: TCP for a record without a type, and an HTTP
// checker's default expected code where none was stored.
func (h HealthChecker) Effective() HealthChecker {
	switch h.Type {
	case "":
		return HealthChecker{Type: CheckerTCP}
	case CheckerHTTP:
		if h.ExpectedResponseCode == 0 {
			h.ExpectedResponseCode = DefaultExpectedResponseCode
		}
	}
	return h
}

// Probed reports whether instances under this checker are probed by the cluster (every
// type but NONE, whose health is set by hand).
func (h HealthChecker) Probed() bool { return h.Effective().Type != CheckerNone }

// MarshalJSON writes Nacos' form of the checker's type: the fields of that type, each
// present even when empty, and no others.
func (h HealthChecker) MarshalJSON() ([]byte, error) {
	switch h.Type {
	case CheckerHTTP:
		return json.Marshal(struct {
			Type                 string `json:"type"`
			Path                 string `json:"path"`
			Headers              string `json:"headers"`
			ExpectedResponseCode int    `json:"expectedResponseCode"`
		}{h.Type, h.Path, h.Headers, h.ExpectedResponseCode})
	case CheckerGRPC:
		return json.Marshal(struct {
			Type    string `json:"type"`
			Service string `json:"service"`
		}{h.Type, h.Service})
	}
	return json.Marshal(struct {
		Type string `json:"type"`
	}{h.Type})
}

func illegalChecker(reason string) *Error {
	return BadRequest("Param 'healthChecker' is illegal, " + reason + ".")
}

func supportedCheckers() string {
	return "(" + CheckerTCP + ", " + CheckerHTTP + ", " + CheckerGRPC + ", " + CheckerNone + ")"
}

// Validate checks a checker as it is stored: a supported type (or "", the legacy TCP),
// only the fields of its type, an expected code between 100 and 599, an HTTP path that
// is blank or starts with '/', and no spaces or control characters anywhere (a path or
// header that could end a request line or add a header is refused here, not left to the
// prober).
func (h HealthChecker) Validate() error {
	switch h.Type {
	case "", CheckerTCP, CheckerNone:
		if h.Path != "" || h.Headers != "" || h.ExpectedResponseCode != 0 || h.Service != "" {
			return illegalChecker("type " + h.typeName() + " takes no path, headers, expectedResponseCode or service")
		}
	case CheckerHTTP:
		if h.Service != "" {
			return illegalChecker("type HTTP takes no service")
		}
		if c := h.ExpectedResponseCode; c != 0 && (c < 100 || c > 599) {
			return illegalChecker("expectedResponseCode should be between 100 and 599")
		}
		if err := checkCheckerText("path", h.Path, false); err != nil {
			return err
		}
		if h.Path != "" && h.Path[0] != '/' {
			return illegalChecker("path should be empty or start with '/'")
		}
		if err := checkCheckerText("headers", h.Headers, true); err != nil {
			return err
		}
	case CheckerGRPC:
		if h.Path != "" || h.Headers != "" || h.ExpectedResponseCode != 0 {
			return illegalChecker("type GRPC takes no path, headers or expectedResponseCode")
		}
		if err := checkCheckerText("service", h.Service, false); err != nil {
			return err
		}
	default:
		return illegalChecker("type " + strconv.Quote(h.Type) + " is not supported " + supportedCheckers())
	}
	return nil
}

func (h HealthChecker) typeName() string {
	if h.Type == "" {
		return `""`
	}
	return h.Type
}

// checkCheckerText bounds a checker's text field and refuses control characters, and
// spaces unless spaces is set (header values may hold them).
func checkCheckerText(field, s string, spaces bool) error {
	if len(s) > MaxCheckerText {
		return illegalChecker(fmt.Sprintf("%s should not exceed %d bytes", field, MaxCheckerText))
	}
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			return illegalChecker(field + " should hold no control characters")
		case r == ' ' && !spaces:
			return illegalChecker(field + " should hold no spaces")
		}
	}
	return nil
}

// checkerDecodeError is Nacos' text for a healthChecker that is not JSON
// (HealthCheckerFactory.deserialize). Nacos answers it with its error code 101 as the HTTP
// status, which no HTTP client can take for an error; Roster answers 400.
func checkerDecodeError(cause string) *Error {
	return BadRequest("errCode: 101, errMsg: Nacos deserialize for class " +
		"[com.alibaba.nacos.api.naming.pojo.healthcheck.AbstractHealthChecker] failed, cause error[" + cause + "]. ")
}

// ParseHealthChecker reads the healthChecker parameter of PUT /cluster as Nacos'
// HealthCheckerFactory does: a JSON object whose "type" names the checker; properties
// the type does not have are ignored; an HTTP checker's missing path and headers are
// blank and its missing expectedResponseCode is 200; a number may come as a string.
// Unlike Nacos, which takes a missing or unknown type for NONE (so that a typo turns the
// checks off), Roster refuses it. The result is validated (Validate).
func ParseHealthChecker(raw string) (HealthChecker, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&obj); err != nil {
		return HealthChecker{}, checkerDecodeError(err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return HealthChecker{}, checkerDecodeError("data after the JSON object")
	}
	if obj == nil {
		return HealthChecker{}, checkerDecodeError("not a JSON object")
	}
	typeRaw, ok := obj["type"]
	if !ok || isJSONNull(typeRaw) {
		return HealthChecker{}, illegalChecker("type is required " + supportedCheckers())
	}
	var typ string
	if err := json.Unmarshal(typeRaw, &typ); err != nil {
		return HealthChecker{}, checkerDecodeError("type is not a string")
	}
	h := DefaultChecker(typ)
	var err error
	switch typ {
	case CheckerHTTP:
		if h.Path, err = checkerString(obj, "path"); err != nil {
			return HealthChecker{}, err
		}
		if h.Headers, err = checkerString(obj, "headers"); err != nil {
			return HealthChecker{}, err
		}
		if v, ok := obj["expectedResponseCode"]; ok && !isJSONNull(v) {
			if h.ExpectedResponseCode, err = checkerInt(v); err != nil {
				return HealthChecker{}, err
			}
			// Zero is how a stored legacy record says "the default"; from a client it
			// is a code no server answers.
			if h.ExpectedResponseCode == 0 {
				return HealthChecker{}, illegalChecker("expectedResponseCode should be between 100 and 599")
			}
		}
	case CheckerGRPC:
		if h.Service, err = checkerString(obj, "service"); err != nil {
			return HealthChecker{}, err
		}
	}
	if err := h.Validate(); err != nil {
		return HealthChecker{}, err
	}
	return h, nil
}

func isJSONNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// checkerString reads an optional string property; null is blank.
func checkerString(obj map[string]json.RawMessage, name string) (string, error) {
	v, ok := obj[name]
	if !ok {
		return "", nil
	}
	var s *string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", checkerDecodeError(name + " is not a string")
	}
	if s == nil {
		return "", nil
	}
	return *s, nil
}

// checkerInt reads an integer property, given as a JSON integer or a string of one (as
// Jackson coerces it).
func checkerInt(v json.RawMessage) (int, error) {
	t := strings.TrimSpace(string(v))
	if unq, err := strconv.Unquote(t); err == nil && strings.HasPrefix(t, `"`) {
		t = strings.TrimSpace(unq)
	}
	n, err := strconv.Atoi(t)
	if err != nil {
		return 0, checkerDecodeError("expectedResponseCode is not an integer: " + string(v))
	}
	return n, nil
}
