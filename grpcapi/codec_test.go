package grpcapi

import (
	"encoding/json"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

func TestEnvelopeCodec(t *testing.T) {
	// The wire form is Nacos': Metadata at field 2 (type 3, clientIp 8, headers 7) and
	// the body in Any.value at field 3, type_url empty.
	p := EncodePayload("HealthCheckRequest", []byte(`{"module":"internal"}`))
	p.Metadata.ClientIp = "10.0.0.5"
	p.Metadata.Headers = map[string]string{"accessToken": "t"}
	raw, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back nacospb.Payload
	if err := proto.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(&back)
	if err != nil {
		t.Fatal(err)
	}
	if env.Type != "HealthCheckRequest" || env.ClientIP != "10.0.0.5" || env.Headers["accessToken"] != "t" || string(env.Body) != `{"module":"internal"}` {
		t.Fatalf("decoded %+v", env)
	}
	if back.GetBody().GetTypeUrl() != "" {
		t.Fatalf("type_url %q, want empty", back.GetBody().GetTypeUrl())
	}
	// Field numbers: a hand-built Payload with metadata.type (2→3) and body.value (3→2).
	hand := []byte{0x12, 0x03, 0x1a, 0x01, 'X', 0x1a, 0x04, 0x12, 0x02, '{', '}'}
	var hp nacospb.Payload
	if err := proto.Unmarshal(hand, &hp); err != nil {
		t.Fatal(err)
	}
	if env, err := DecodeEnvelope(&hp); err != nil || env.Type != "X" || string(env.Body) != "{}" {
		t.Fatalf("hand-built payload decoded as %+v, %v", env, err)
	}

	if _, err := DecodeEnvelope(&nacospb.Payload{}); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("no metadata: %v", err)
	}
	if _, err := DecodeEnvelope(&nacospb.Payload{Metadata: &nacospb.Metadata{}}); !errors.Is(err, ErrNoType) {
		t.Fatalf("no type: %v", err)
	}
	if env, err := DecodeEnvelope(&nacospb.Payload{Metadata: &nacospb.Metadata{Type: "T"}}); err != nil || env.Body != nil {
		t.Fatalf("no body: %+v %v", env, err)
	}

	// Server requests put headers and requestId first, then the rendered rest.
	if got := string(serverRequestBody("42", []byte(`{"module":"naming"}`))); got != `{"headers":{},"requestId":"42","module":"naming"}` {
		t.Fatalf("server request body %s", got)
	}
	if got := string(serverRequestBody("1", []byte(`{}`))); got != `{"headers":{},"requestId":"1"}` {
		t.Fatalf("server request body %s", got)
	}
	// Responses: resultCode and success always, errors as setErrorInfo makes them.
	if r := errorReply("7", codeNoHandler, "RequestHandler Not Found"); r.typ != "ErrorResponse" ||
		string(r.body) != `{"resultCode":500,"errorCode":302,"message":"RequestHandler Not Found","requestId":"7","success":false}` {
		t.Fatalf("error reply %s %s", r.typ, r.body)
	}
	if err := decodeBody([]byte(" \n"), &requestHead{}); err == nil {
		t.Fatal("blank body accepted")
	}
}

var scanResponseHeadCases = []struct {
	body     string
	fastPath bool
}{
	{`{"resultCode":200,"errorCode":0,"success":true,"requestId":"42"}`, true},                      // Go
	{` {"resultCode" : 500 , "errorCode":0,"message":null,"requestId":"7","success":false} `, true}, // Java with nulls
	{`{"requestId":"1"}`, true},
	{`{}`, true},
	{`{"requestId":null,"resultCode":null}`, true},
	{`{"resultCode":-3,"requestId":"x","n":1.5e3}`, true},
	{`{"requestId":"a\"b","resultCode":200}`, false}, // escapes: the slow path
	{`{"headers":{},"requestId":"1","resultCode":200}`, false},
	{`{"resultCode":200.5,"requestId":"1"}`, false},
	{`{"resultCode":true,"requestId":"1"}`, false},
	{`{"requestId":1,"resultCode":200}`, false},
	{`{"requestId":"1","resultCode":200`, false},
	{`{"requestId":"1",}`, false},
	{`{"requestId":"1"} x`, false},
	{`[1]`, false},
	{``, false},
	{`not json`, false},
}

func checkScanResponseHead(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	id, code, ok := scanResponseHead(body)
	if !ok {
		return false
	}
	var head struct {
		RequestID  string `json:"requestId"`
		ResultCode int    `json:"resultCode"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatalf("scanResponseHead accepted %q, which encoding/json refuses: %v", body, err)
	}
	if head.RequestID != id || head.ResultCode != code {
		t.Fatalf("scanResponseHead(%q) = %q, %d; encoding/json reads %q, %d", body, id, code, head.RequestID, head.ResultCode)
	}
	return true
}

// TestScanResponseHead: clients' answers take the fast path and agree with
// encoding/json; anything it does not handle is left to encoding/json.
func TestScanResponseHead(t *testing.T) {
	for _, tc := range scanResponseHeadCases {
		if fast := checkScanResponseHead(t, []byte(tc.body)); fast != tc.fastPath {
			t.Errorf("%q: fast path %v, want %v", tc.body, fast, tc.fastPath)
		}
	}
}
