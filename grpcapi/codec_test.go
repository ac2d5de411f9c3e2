package grpcapi

import (
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
