package grpcapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

// FuzzDecodeEnvelope feeds arbitrary bytes to the envelope decoder as a client's
// protobuf Payload, then to every request body decoder: nothing may panic, and a
// decoded envelope must survive a re-encode.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, typ := range []string{"InstanceRequest", "BatchInstanceRequest", "ServiceQueryRequest", "SubscribeServiceRequest", "ConnectionSetupRequest"} {
		seed, _ := proto.Marshal(EncodePayload(typ, []byte(`{"requestId":"1","serviceName":"s","instance":{"ip":"1.1.1.1","port":1}}`)))
		f.Add(seed)
	}
	// The golden answers are valid bodies too.
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "grpc", "*.golden"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		typ, body, _ := strings.Cut(string(b), "\n")
		seed, _ := proto.Marshal(EncodePayload(typ, []byte(body)))
		f.Add(seed)
	}
	f.Add([]byte{})
	f.Add([]byte{0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var p nacospb.Payload
		if err := proto.Unmarshal(data, &p); err != nil {
			return
		}
		env, err := DecodeEnvelope(&p)
		if err != nil {
			return
		}
		for _, v := range []any{&requestHead{}, &instanceRequest{}, &batchInstanceRequest{}, &serviceQueryRequest{},
			&subscribeServiceRequest{}, &serviceListRequest{}, &connectionSetup{}} {
			_ = decodeBody(env.Body, v)
		}
		var req instanceRequest
		if decodeBody(env.Body, &req) == nil {
			_, _ = req.service()
			_, _ = req.Instance.instance()
		}
		again, err := proto.Marshal(EncodePayload(env.Type, env.Body))
		if err != nil {
			t.Fatal(err)
		}
		var back nacospb.Payload
		if err := proto.Unmarshal(again, &back); err != nil {
			t.Fatal(err)
		}
		if e2, err := DecodeEnvelope(&back); err != nil || e2.Type != env.Type || string(e2.Body) != string(env.Body) {
			t.Fatalf("re-encode changed the envelope: %+v %v", e2, err)
		}
	})
}

// FuzzScanResponseHead: whenever the fast ack reader accepts a body, encoding/json
// reads the same requestId and resultCode from it.
func FuzzScanResponseHead(f *testing.F) {
	for _, seed := range scanResponseHeadCases {
		f.Add([]byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScanResponseHead(t, body)
	})
}
