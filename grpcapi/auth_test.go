package grpcapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/roster-registry/roster/auth"
	nacospb "github.com/roster-registry/roster/grpcapi/proto"
)

// callAs sends a unary request with Metadata.headers, as Nacos clients carry their
// credentials.
func (c *client) callAs(headers map[string]string, typ string, body any) (string, map[string]any) {
	c.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.req.Request(ctx, &nacospb.Payload{
		Metadata: &nacospb.Metadata{Type: typ, Headers: headers},
		Body:     &anypb.Any{Value: raw},
	})
	if err != nil {
		c.t.Fatalf("%s: %v", typ, err)
	}
	var out map[string]any
	if err := json.Unmarshal(p.GetBody().GetValue(), &out); err != nil {
		c.t.Fatalf("%s answered %s, not JSON: %v", typ, p.GetBody().GetValue(), err)
	}
	return p.GetMetadata().GetType(), out
}

func TestEveryRequestTypeDeclaresAccess(t *testing.T) {
	s := &Server{}
	guarded := 0
	for typ, h := range s.namingHandlers() {
		if h.access == accessUndeclared {
			t.Errorf("%s declares no access", typ)
		}
		if h.access != accessPublic {
			guarded++
		}
	}
	// Without this the loops below would pass with no handler registered at all.
	if guarded < 6 {
		t.Fatalf("only %d naming request types need credentials, want the 6 writes and reads", guarded)
	}
	// With auth on, every non-public type is refused without credentials.
	a := auth.New(auth.Config{Enabled: true})
	st := newStack(t, Config{Auth: a})
	c := st.connect()
	refused := 0
	for typ, h := range st.srv.handlers {
		if h.access == accessPublic {
			continue
		}
		refused++
		respType, out := c.callAs(nil, typ, map[string]any{"namespace": "public", "serviceName": "s", "groupName": "DEFAULT_GROUP",
			"type": "registerInstance", "instance": map[string]any{"ip": "10.0.0.1", "port": 80}})
		if respType != h.respType || out["errorCode"] != float64(403) || out["resultCode"] != float64(500) || out["message"] != "user not found!" {
			t.Errorf("%s without credentials = %s %v, want %s errorCode 403", typ, respType, out, h.respType)
		}
	}
	if refused < guarded {
		t.Fatalf("the server checked %d request types without credentials, fewer than the %d naming ones that need them", refused, guarded)
	}
}

func TestNamespaceGrantsOverGRPC(t *testing.T) {
	a := auth.New(auth.Config{Enabled: true})
	st := newStack(t, Config{Auth: a})
	ctx := context.Background()
	hash, err := auth.HashPassword("alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []auth.Change{
		{Op: auth.OpBootstrap, User: "root", PasswordHash: hash},
		{Op: auth.OpCreateUser, User: "alice", PasswordHash: hash},
		{Op: auth.OpBindRole, Role: "team-a", User: "alice"},
		{Op: auth.OpGrant, Grant: &auth.Grant{Role: "team-a", Resource: "A", Action: auth.ReadWrite}},
	} {
		if err := st.reg.ApplyAuth(ctx, ch); err != nil {
			t.Fatalf("%s: %v", ch.Op, err)
		}
	}
	tok, err := a.Login("127.0.0.1", "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	c := st.connect()
	register := func(headers map[string]string, ns string) map[string]any {
		_, out := c.callAs(headers, "InstanceRequest", map[string]any{"namespace": ns, "serviceName": "svc", "groupName": "DEFAULT_GROUP",
			"type": "registerInstance", "instance": map[string]any{"ip": "10.0.0.1", "port": 80, "healthy": true, "enabled": true, "weight": 1, "ephemeral": true, "clusterName": "DEFAULT"}})
		return out
	}
	withToken := map[string]string{"accessToken": tok.AccessToken}
	if out := register(withToken, "A"); out["resultCode"] != float64(200) {
		t.Fatalf("register in A: %v", out)
	}
	if out := register(map[string]string{"username": "alice", "password": "alice-pw"}, "A"); out["resultCode"] != float64(200) {
		t.Fatalf("register in A with username+password: %v", out)
	}
	if out := register(withToken, "B"); out["errorCode"] != float64(403) || out["message"] != "authorization failed!" {
		t.Fatalf("register in B: %v", out)
	}
	_, out := c.callAs(withToken, "ServiceQueryRequest", map[string]any{"namespace": "B", "serviceName": "svc", "groupName": "DEFAULT_GROUP"})
	if out["errorCode"] != float64(403) {
		t.Fatalf("query in B: %v", out)
	}
	_, out = c.callAs(withToken, "ServiceQueryRequest", map[string]any{"namespace": "A", "serviceName": "svc", "groupName": "DEFAULT_GROUP"})
	if out["resultCode"] != float64(200) {
		t.Fatalf("query in A: %v", out)
	}
	for name, bad := range map[string]map[string]string{
		"malformed": {"accessToken": "garbage"},
		"forged":    {"accessToken": tok.AccessToken[:len(tok.AccessToken)-4] + "AAAA"},
		"no token":  nil,
	} {
		if out := register(bad, "A"); out["errorCode"] != float64(403) {
			t.Errorf("%s token: %v", name, out)
		}
	}
}
