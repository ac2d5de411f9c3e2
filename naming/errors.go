package naming

import (
	"fmt"
	"net/http"
)

// Error is a failure that reaches a client: Nacos' status and exact text. It is the one
// error model of the registry: every front translates it in one table of its own (the
// v1 HTTP front answers Status with Message as text, the v2 HTTP front wraps Message in
// Nacos' Result envelope with Code, the gRPC front answers errorCode Status), and it
// crosses between members as it is (JSON), never as free text. Anything that is not an
// *Error is internal and is answered with generic text.
type Error struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	// Code is the Open API v2 ErrorCode Nacos raises this failure with, when it raises
	// it as a NacosApiException with a code of its own (a missing parameter, a service
	// that already exists, an instance that breaks the rules, ...). Zero means Nacos
	// raises it as a plain NacosException or NacosRuntimeException, which its v2 handler
	// answers as CodeServerError. v1 and gRPC answers never show it.
	Code Code `json:"code,omitempty"`
	// ParamCheck marks a refusal of Nacos' parameter checker (common/paramcheck), a
	// servlet filter that answers before any controller: plain text with Status on
	// every HTTP version, v2 included.
	ParamCheck bool `json:"paramCheck,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Code is an Open API v2 ErrorCode (Nacos api/model/v2/ErrorCode.java): the "code" of
// a v2 answer's {code, message, data}, whose "message" is the code's summary.
type Code int

// The ErrorCodes Roster answers with. Numbers and summaries are Nacos'.
const (
	CodeParameterMissing  Code = 10000
	CodeAccessDenied      Code = 10001
	CodeParameterValidate Code = 20002
	CodeResourceNotFound  Code = 20004
	CodeWeightError       Code = 21001
	CodeInstanceMetadata  Code = 21002
	CodeInstanceError     Code = 21004
	CodeSelectorError     Code = 21006
	CodeServiceExists     Code = 21007
	CodeServiceNotExist   Code = 21008
	CodeServiceDelete     Code = 21009
	CodeIllegalNamespace  Code = 22000
	CodeNamespaceNotExist Code = 22001
	CodeIllegalState      Code = 23000
	CodeServerError       Code = 30000
)

var codeSummaries = map[Code]string{
	CodeParameterMissing:  "parameter missing",
	CodeAccessDenied:      "access denied",
	CodeParameterValidate: "parameter validate error",
	CodeResourceNotFound:  "resource not found",
	CodeWeightError:       "weight error",
	CodeInstanceMetadata:  "instance metadata error",
	CodeInstanceError:     "instance error",
	CodeSelectorError:     "selector error",
	CodeServiceExists:     "service already exist",
	CodeServiceNotExist:   "service not exist",
	CodeServiceDelete:     "service delete failure",
	CodeIllegalNamespace:  "illegal namespace",
	CodeNamespaceNotExist: "namespace not exist",
	CodeIllegalState:      "illegal state",
	CodeServerError:       "server error",
}

// Summary is the code's message in a v2 answer, e.g. "parameter missing".
func (c Code) Summary() string {
	if s, ok := codeSummaries[c]; ok {
		return s
	}
	return codeSummaries[CodeServerError]
}

// Errorf builds an Error with a status and a formatted Nacos text.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with the given text.
func BadRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// APIError is a failure Nacos raises as a NacosApiException: a status, a v2 code and
// a text.
func APIError(status int, code Code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// paramCheck is a refusal of Nacos' parameter checker: 400, plain text on every version.
func paramCheck(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Message: msg, ParamCheck: true}
}

// NotFound is a 404 that Nacos raises as RESOURCE_NOT_FOUND.
func NotFound(msg string) *Error { return APIError(http.StatusNotFound, CodeResourceNotFound, msg) }

// RuntimeError formats a message as Nacos' NacosRuntimeException does, trailing space
// included: "errCode: 400, errMsg: <msg> ".
func RuntimeError(status int, msg string) *Error {
	return &Error{Status: status, Message: fmt.Sprintf("errCode: %d, errMsg: %s ", status, msg)}
}

// RequiredParam is Nacos' WebUtils.required text for a missing parameter (v1).
func RequiredParam(name string) *Error {
	return APIError(http.StatusBadRequest, CodeParameterMissing, "Param '"+name+"' is required.")
}

// MissingParameter is the v1 naming handler's text for a missing Spring @RequestParam,
// used by the v1 service endpoints.
func MissingParameter(name string) *Error {
	return APIError(http.StatusBadRequest, CodeParameterMissing, "Parameter '"+name+"' is missing")
}

// MissingField is the text of Nacos' v2 forms (InstanceForm.validate, ServiceForm, ...)
// for a missing field; javaType is the field's Java type (String, Integer, Boolean).
func MissingField(name, javaType string) *Error {
	return APIError(http.StatusBadRequest, CodeParameterMissing,
		"Required parameter '"+name+"' type "+javaType+" is not present")
}

// MissingRequestParam is Spring 5.3's MissingServletRequestParameterException text,
// which Nacos' v2 handler answers for a missing @RequestParam.
func MissingRequestParam(name, javaType string) *Error {
	return APIError(http.StatusBadRequest, CodeParameterMissing,
		"Required request parameter '"+name+"' for method parameter type "+javaType+" is not present")
}

// Internal is a 500 in Nacos' text for a server-side failure ("caused: ...;").
func Internal(msg string) *Error {
	return &Error{Status: http.StatusInternalServerError, Message: "caused: " + msg + ";"}
}

// Unavailable is a 503: the outcome of a write is unknown or no leader could take it.
func Unavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Message: msg}
}

// Texts Nacos answers for service-kind conflicts (PROTOCOL.md §1.4).
func ErrPersistentService(svc ServiceKey) *Error {
	return RuntimeError(http.StatusBadRequest, "Current service "+svc.Grouped()+" is persistent service, can't register ephemeral instance.")
}

// ErrEphemeralService is the text for a persistent write into an ephemeral service.
func ErrEphemeralService(svc ServiceKey) *Error {
	return RuntimeError(http.StatusBadRequest, "Current service "+svc.Grouped()+" is ephemeral service, can't register persistent instance.")
}

// ErrServiceExists answers a create of an existing service.
func ErrServiceExists(svc ServiceKey) *Error {
	return APIError(http.StatusBadRequest, CodeServiceExists, "specified service "+svc.Grouped()+" already exists!")
}

// ErrServiceNotFound answers an update or delete of a missing service.
func ErrServiceNotFound(svc ServiceKey) *Error {
	return APIError(http.StatusBadRequest, CodeServiceNotExist, "service "+svc.Grouped()+" not found!")
}

// ErrNoSuchService answers a read of a missing service (GET /service).
func ErrNoSuchService(svc ServiceKey) *Error {
	return APIError(http.StatusBadRequest, CodeServiceNotExist, "service not found, namespace: "+svc.Namespace+", serviceName: "+svc.Grouped())
}

// ErrServiceNotEmpty answers a delete of a service that still has instances.
func ErrServiceNotEmpty(svc ServiceKey) *Error {
	return APIError(http.StatusBadRequest, CodeServiceDelete, "Service "+svc.Grouped()+" is not empty, can't be delete. Please unregister instance first")
}

// ErrUpdateNoService answers PUT /instance into a service that does not exist
// (InstanceOperatorClientImpl.updateInstance).
func ErrUpdateNoService(svc ServiceKey, ephemeral bool) *Error {
	return APIError(http.StatusBadRequest, CodeInstanceError, fmt.Sprintf(
		"service not found, namespace: %s, service: Service{namespace='%s', group='%s', name='%s', ephemeral=%t, revision=0}",
		svc.Namespace, svc.Namespace, svc.Group, svc.Name, ephemeral))
}

// ErrSelector answers a selector Nacos cannot parse.
var ErrSelector = APIError(http.StatusBadRequest, CodeSelectorError, "not match any type of selector!")
