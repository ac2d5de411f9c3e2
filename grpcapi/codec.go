package grpcapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/anypb"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
	"github.com/roster-registry/roster/naming"
)

// The envelope (PROTOCOL.md §6.2): every message is a Payload whose Metadata.type names
// the body's Java class and whose body is JSON in Any.value. Requests carry requestId
// and module; real headers (accessToken, app) travel in Metadata.headers. Responses
// carry resultCode, errorCode, message, requestId and success, in Jackson's order.

// Envelope is a decoded Payload.
type Envelope struct {
	Type     string            // Metadata.type, e.g. "InstanceRequest"
	ClientIP string            // Metadata.clientIp, as the client reports it
	Headers  map[string]string // Metadata.headers
	Body     []byte            // Any.value: the JSON body
}

// Errors of DecodeEnvelope.
var (
	ErrNoMetadata = errors.New("grpcapi: payload has no metadata")
	ErrNoType     = errors.New("grpcapi: payload metadata has no type")
)

// DecodeEnvelope reads a Payload. It checks the envelope only; the body's JSON is read
// by the handler of its type.
func DecodeEnvelope(p *nacospb.Payload) (Envelope, error) {
	md := p.GetMetadata()
	if md == nil {
		return Envelope{}, ErrNoMetadata
	}
	if md.GetType() == "" {
		return Envelope{}, ErrNoType
	}
	return Envelope{Type: md.GetType(), ClientIP: md.GetClientIp(), Headers: md.GetHeaders(), Body: p.GetBody().GetValue()}, nil
}

// EncodePayload wraps a JSON body of the given type.
func EncodePayload(typ string, body []byte) *nacospb.Payload {
	return &nacospb.Payload{
		Metadata: &nacospb.Metadata{Type: typ},
		Body:     &anypb.Any{Value: body},
	}
}

// requestHead is what every request body has. Unknown keys are ignored.
type requestHead struct {
	RequestID string `json:"requestId"`
	Module    string `json:"module"`
}

// decodeBody reads a request body into v. A body that is not a JSON object of the
// expected shape is a malformed request (502, as Nacos' GrpcUtils.parse failures).
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errBadBody("empty request body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errBadBody(err.Error())
	}
	return nil
}

type badBodyError struct{ msg string }

func (e *badBodyError) Error() string { return e.msg }

func errBadBody(msg string) error { return &badBodyError{msg: msg} }

// Response codes (Nacos ResponseCode) and transport error codes (NacosException).
const (
	codeSuccess        = 200
	codeFail           = 500
	codeBadRequest     = 400
	codeServerStarting = 300 // INVALID_SERVER_STATUS
	codeUnregistered   = 301 // UN_REGISTER
	codeNoHandler      = 302 // NO_HANDLER
	codeBadGateway     = 502 // BAD_GATEWAY: the request could not be read
	codeForbidden      = 403 // NO_RIGHT: authentication or authorization failed
)

// ResponseHead is the common part of every response, in Nacos' key order; Message and
// RequestID are left out when empty, as Nacos' mapper leaves out nulls.
type ResponseHead struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

// responseTail is the derived success flag, which Jackson writes last. G2 before
// v2.2.5 reads it instead of resultCode.
type responseTail struct {
	Success bool `json:"success"`
}

// okHead is a success head echoing the request's id.
func okHead(requestID string) ResponseHead {
	return ResponseHead{ResultCode: codeSuccess, RequestID: requestID}
}

// failHead is Nacos' setErrorInfo: resultCode FAIL (500), errorCode the cause's code.
func failHead(requestID string, errorCode int, msg string) ResponseHead {
	return ResponseHead{ResultCode: codeFail, ErrorCode: errorCode, Message: msg, RequestID: requestID}
}

// plainResponse is a response without fields of its own (HealthCheckResponse,
// InstanceResponse's error form, ErrorResponse, …).
type plainResponse struct {
	ResponseHead
	responseTail
}

func newPlain(h ResponseHead) plainResponse {
	return plainResponse{ResponseHead: h, responseTail: responseTail{Success: h.ResultCode == codeSuccess}}
}

// reply is a response ready to send: its type and JSON body.
type reply struct {
	typ  string
	body []byte
}

// errorReply is an ErrorResponse (PROTOCOL.md §6.2): Java and G2 turn it into an
// exception on the client.
func errorReply(requestID string, errorCode int, msg string) reply {
	return mustReply("ErrorResponse", newPlain(failHead(requestID, errorCode, msg)))
}

// mustReply marshals v; the types marshalled here cannot fail.
func mustReply(typ string, v any) reply {
	b, err := naming.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("grpcapi: marshal %s: %v", typ, err))
	}
	return reply{typ: typ, body: b}
}

// serverRequestBody builds a server-to-client request body with its requestId first,
// then the pre-rendered rest of the object (rest is a JSON object; its keys follow).
func serverRequestBody(requestID string, rest []byte) []byte {
	b := make([]byte, 0, len(rest)+32)
	b = append(b, `{"headers":{},"requestId":`...)
	b = strconv.AppendQuote(b, requestID)
	if len(rest) > 2 { // more than "{}"
		b = append(b, ',')
		b = append(b, rest[1:]...)
		return b
	}
	return append(b, '}')
}

// scanResponseHead reads requestId and resultCode from a client's answer on the stream
// without encoding/json's reflection: every push costs one such answer per subscriber.
// It understands only a flat object of strings without escapes, numbers, booleans and
// nulls (what clients send); ok is false for anything else, and the caller then decodes
// the body in full.
func scanResponseHead(b []byte) (requestID string, resultCode int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", 0, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", 0, skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, good := scanPlainString(b, i)
		if !good || inexactHeadKey(key) {
			return "", 0, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return "", 0, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return "", 0, false
		}
		switch c := b[i]; {
		case c == '"':
			val, j, good := scanPlainString(b, i)
			if !good {
				return "", 0, false
			}
			switch string(key) {
			case "requestId":
				requestID = string(val)
			case "resultCode":
				return "", 0, false
			}
			i = j
		case c == '-' || (c >= '0' && c <= '9'):
			j, good := scanNumber(b, i)
			if !good {
				return "", 0, false
			}
			switch string(key) {
			case "requestId":
				return "", 0, false
			case "resultCode":
				n, err := strconv.Atoi(string(b[i:j]))
				if err != nil {
					return "", 0, false
				}
				resultCode = n
			}
			i = j
		default:
			var word string
			switch {
			case bytes.HasPrefix(b[i:], []byte("true")):
				word = "true"
			case bytes.HasPrefix(b[i:], []byte("false")):
				word = "false"
			case bytes.HasPrefix(b[i:], []byte("null")):
				word = "null"
			default:
				return "", 0, false // an object, an array or garbage
			}
			if k := string(key); k == "requestId" || k == "resultCode" {
				if word != "null" {
					return "", 0, false
				}
			}
			i += len(word)
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return "", 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return requestID, resultCode, skipSpace(b, i+1) == len(b)
		default:
			return "", 0, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString reads the JSON string at b[i] when it has no escapes, no control
// characters and is valid UTF-8; it returns the contents and the index after the closing quote.
func scanPlainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			// encoding/json replaces invalid UTF-8; leave that to it.
			return b[i+1 : j], j + 1, utf8.Valid(b[i+1 : j])
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanNumber reads the JSON number at b[i] (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
// and returns the index after it.
func scanNumber(b []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

// inexactHeadKey reports a key that encoding/json would match to requestId or
// resultCode (it ignores case, Unicode folding included) but is not spelled exactly so.
func inexactHeadKey(key []byte) bool {
	k := string(key)
	if k == "requestId" || k == "resultCode" {
		return false
	}
	return strings.EqualFold(k, "requestId") || strings.EqualFold(k, "resultCode")
}
