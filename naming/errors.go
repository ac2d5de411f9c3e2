package naming

import (
	"fmt"
	"net/http"
)

// Error is a failure that reaches a client: Nacos' status and exact text. It is the one
// error model of the registry: every front translates it in one table of its own (the
// HTTP front answers Status with Message as text, the gRPC front answers errorCode
// Status), and it crosses between members as it is (JSON), never as free text.
// Anything that is not an *Error is internal and is answered with generic text.
type Error struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an Error with a status and a formatted Nacos text.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with the given text.
func BadRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// RuntimeError formats a message as Nacos' NacosRuntimeException does, trailing space
// included: "errCode: 400, errMsg: <msg> ".
func RuntimeError(status int, msg string) *Error {
	return &Error{Status: status, Message: fmt.Sprintf("errCode: %d, errMsg: %s ", status, msg)}
}

// RequiredParam is Nacos' WebUtils.required text for a missing parameter.
func RequiredParam(name string) *Error {
	return BadRequest("Param '" + name + "' is required.")
}

// MissingParameter is Spring's @RequestParam text, used by the service endpoints.
func MissingParameter(name string) *Error {
	return BadRequest("Parameter '" + name + "' is missing")
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
	return BadRequest("specified service " + svc.Grouped() + " already exists!")
}

// ErrServiceNotFound answers an update or delete of a missing service.
func ErrServiceNotFound(svc ServiceKey) *Error {
	return BadRequest("service " + svc.Grouped() + " not found!")
}

// ErrServiceNotEmpty answers a delete of a service that still has instances.
func ErrServiceNotEmpty(svc ServiceKey) *Error {
	return BadRequest("Service " + svc.Grouped() + " is not empty, can't be delete. Please unregister instance first")
}
