package fsm

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/roster-registry/roster/auth"
	"github.com/roster-registry/roster/naming"
)

var (
	svcKey = naming.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Name: "orders"}
	f64    = func(v float64) *float64 { return &v }
	boolp  = func(v bool) *bool { return &v }
	intp   = func(v int) *int { return &v }
)

func persistent(ip string, port int) naming.Instance {
	return naming.Instance{IP: ip, Port: port, ClusterName: "DEFAULT", Weight: 1, Healthy: true, Enabled: true}
}

// sampleCommands has one or more valid commands of every type.
func sampleCommands() map[string]Command {
	in := persistent("10.0.0.5", 8080)
	in.Weight = 2.5
	in.Metadata = map[string]string{"zone": "a", "preserved.heart.beat.timeout": "20000"}
	upsert := persistent("10.0.0.6", 80)
	svc := naming.Service{
		Key: svcKey, ProtectThreshold: 0.3, Metadata: map[string]string{"owner": "x"},
		Selector: naming.Selector{Type: "label", Expression: "CONSUMER.label.a = PROVIDER.label.a"},
		Clusters: map[string]*naming.Cluster{"DEFAULT": {Name: "DEFAULT", HealthChecker: naming.HealthChecker{Type: "TCP"}, Metadata: map[string]string{"k": "v"}}},
	}
	return map[string]Command{
		"register":               RegisterInstance{Service: svcKey, Instance: in},
		"deregister":             DeregisterInstance{Service: svcKey, IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT"},
		"update all fields":      UpdateInstance{Service: svcKey, IP: "10.0.0.6", Port: 80, Cluster: "DEFAULT", Weight: f64(3), Enabled: boolp(false), Healthy: boolp(true), Metadata: map[string]string{"a": "b"}, Upsert: &upsert},
		"update clears metadata": UpdateInstance{Service: svcKey, IP: "10.0.0.6", Port: 80, Cluster: "DEFAULT", Metadata: map[string]string{}},
		"update weight only":     UpdateInstance{Service: svcKey, IP: "10.0.0.6", Port: 80, Cluster: "DEFAULT", Weight: f64(0)},
		"put create":             PutService{Service: svc, Mode: PutCreate},
		"put update":             PutService{Service: *naming.NewService(svcKey, false), Mode: PutUpdate},
		"put upsert":             PutService{Service: *naming.NewService(svcKey, true), Mode: PutUpsert},
		"delete service":         DeleteService{Service: svcKey},
		"metadata merge":         UpdateMetadataBatch{Service: svcKey, Instances: []InstanceRef{{IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT"}}, Metadata: map[string]string{"v": "2"}},
		"metadata remove all":    UpdateMetadataBatch{Service: svcKey, Metadata: map[string]string{"v": ""}, Remove: true},
		"flip health": FlipHealth{Service: svcKey, Instance: InstanceRef{IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT"}, Healthy: false, SeenRevision: 41,
			View: ProbeView{Prober: "n2", Members: []string{"n1", "n2"}, Epoch: 3}},
		"put cluster": PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "blue", Metadata: map[string]string{"k": "v"}, CheckPort: 8081,
			HealthChecker: naming.HealthChecker{Type: "HTTP", Path: "/health", Headers: "A:b", ExpectedResponseCode: 204}}},
		"put grpc cluster": PutCluster{Service: svcKey, Cluster: naming.Cluster{Name: "g", Metadata: map[string]string{}, UseInstancePort: true,
			HealthChecker: naming.HealthChecker{Type: "GRPC", Service: "pkg.Svc"}}, Ephemeral: true},
		"auth grant": AuthChange{Change: auth.Change{Op: auth.OpGrant, Grant: &auth.Grant{Role: "team-a", Resource: "dev:pay", Action: auth.ReadWrite}}},
		"auth user":  AuthChange{Change: auth.Change{Op: auth.OpCreateUser, User: "alice", PasswordHash: "$2a$10$lF/7Y4v2hMmKnjLKetGRrufBjLYMUW/pXEKdBbyDyFs9ujOKaKzay"}},
		"put namespace": PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "Dev", Desc: "development",
			MaxServices: intp(3), MaxInstances: intp(0)}, Mode: PutCreate},
		"put namespace no quota": PutNamespace{Namespace: naming.Namespace{ID: "dev", Name: "Dev"}, Mode: PutUpsert},
		"delete namespace":       DeleteNamespace{ID: "dev"},
		"batch": Batch{Commands: []Command{RegisterInstance{Service: svcKey, Instance: in},
			UpdateInstance{Service: svcKey, IP: "10.0.0.6", Port: 80, Cluster: "DEFAULT", Weight: f64(3)},
			DeregisterInstance{Service: svcKey, IP: "10.0.0.5", Port: 8080, Cluster: "DEFAULT"}}},
	}
}

// TestSampleCommandsCoverEveryType keeps the round trip below honest: a command type
// registered without a sample would never be encoded and decoded here.
func TestSampleCommandsCoverEveryType(t *testing.T) {
	sampled := map[CommandType]bool{}
	for _, c := range sampleCommands() {
		sampled[c.Type()] = true
	}
	for typ := range commands {
		if !sampled[typ] {
			t.Errorf("command type %d (%s) has no sample in sampleCommands", typ, typ)
		}
	}
	if len(commands) < int(DeleteNamespaceType) {
		t.Fatalf("%d command types registered, want at least %d", len(commands), DeleteNamespaceType)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for name, c := range sampleCommands() {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			if CommandType(b[0]) != c.Type() || b[1] != CommandVersion {
				t.Errorf("prefix = %x %x, want %x %x", b[0], b[1], c.Type(), CommandVersion)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("Decode(Encode(c)) =\n %#v\nwant\n %#v", got, c)
			}
			// A pointer encodes as the value.
			p := reflect.New(reflect.TypeOf(c))
			p.Elem().Set(reflect.ValueOf(c))
			pb, err := Encode(p.Interface().(Command))
			if err != nil || string(pb) != string(b) {
				t.Errorf("Encode(&c) = %q, %v; want %q", pb, err, b)
			}
		})
	}
}

// TestEncodingIsStable pins the bytes of one entry: these bytes live in Raft logs and
// snapshots, so a change to them needs a new CommandVersion.
func TestEncodingIsStable(t *testing.T) {
	in := persistent("10.0.0.5", 8080)
	in.Metadata = map[string]string{"b": "2", "a": "1"}
	b, err := Encode(RegisterInstance{Service: svcKey, Instance: in})
	if err != nil {
		t.Fatal(err)
	}
	want := "\x01\x01" + `{"service":{"namespace":"public","group":"DEFAULT_GROUP","name":"orders"},` +
		`"instance":{"ip":"10.0.0.5","port":8080,"clusterName":"DEFAULT","weight":1,"healthy":true,"enabled":true,"ephemeral":false,"metadata":{"a":"1","b":"2"}}}`
	if string(b) != want {
		t.Errorf("Encode =\n %q\nwant\n %q", b, want)
	}
	b, err = Encode(PutService{Service: *naming.NewService(svcKey, false), Mode: PutUpsert})
	if err != nil {
		t.Fatal(err)
	}
	want = "\x04\x01" + `{"service":{"key":{"namespace":"public","group":"DEFAULT_GROUP","name":"orders"},"ephemeral":false,"protectThreshold":0,"selector":{"type":"none"}},"mode":"upsert"}`
	if string(b) != want {
		t.Errorf("Encode =\n %q\nwant\n %q", b, want)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	reg := func(mod func(k *naming.ServiceKey, in *naming.Instance)) Command {
		k, in := svcKey, persistent("10.0.0.5", 8080)
		mod(&k, &in)
		return RegisterInstance{Service: k, Instance: in}
	}
	bigMeta := map[string]string{"k": strings.Repeat("v", naming.DefaultMaxMetadata)}
	mismatch := persistent("10.0.0.7", 1)
	tests := []struct {
		name string
		c    Command
		text string // the *naming.Error message must contain it
	}{
		{"bad cluster name", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.ClusterName = "bad_cluster" }),
			"Instance 'clusterName' should be characters with only 0-9a-zA-Z-. (current: bad_cluster)"},
		{"illegal cluster chars", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.ClusterName = "a b" }), "Param 'cluster' is illegal"},
		{"weight 20000", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Weight = 20000 }), "The weights range from 0.0 to 10000.0"},
		{"negative weight", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Weight = -1 }), "The weights range"},
		{"NaN weight", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Weight = math.NaN() }), "The weights range"},
		{"metadata over the limit", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Metadata = bigMeta }), "the param length should not exceed 1024"},
		{"bad beat timeouts", reg(func(_ *naming.ServiceKey, in *naming.Instance) {
			in.Metadata = map[string]string{naming.MetaHeartBeatInterval: "20000"}
		}), "heart beat interval"},
		{"bad service name", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Name = "a b" }), "Param 'serviceName' is illegal"},
		{"service name with leading @", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Name = "@x" }), "Param 'serviceName' is illegal"},
		{"empty service name", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Name = "" }), "Param 'serviceName' is required."},
		{"bad group", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Group = "g/h" }), "Param 'group' is illegal"},
		{"unresolved namespace", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Namespace = "" }), "namespaceId"},
		{"unresolved group", reg(func(k *naming.ServiceKey, _ *naming.Instance) { k.Group = "" }), "groupName"},
		{"no ip", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.IP = "" }), "Param 'ip' is required."},
		{"port out of range", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Port = 70000 }), "between 0 and 65535"},
		{"no cluster", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.ClusterName = "" }), "clusterName"},
		{"ephemeral instance", reg(func(_ *naming.ServiceKey, in *naming.Instance) { in.Ephemeral = true }), "ephemeral"},
		{"deregister bad cluster", DeregisterInstance{Service: svcKey, IP: "1.1.1.1", Port: 1, Cluster: "a b"}, "Param 'cluster' is illegal"},
		{"update weight 20000", UpdateInstance{Service: svcKey, IP: "1.1.1.1", Port: 1, Cluster: "DEFAULT", Weight: f64(20000)}, "The weights range"},
		{"update metadata over the limit", UpdateInstance{Service: svcKey, IP: "1.1.1.1", Port: 1, Cluster: "DEFAULT", Metadata: bigMeta}, "should not exceed 1024"},
		{"upsert of another instance", UpdateInstance{Service: svcKey, IP: "1.1.1.1", Port: 1, Cluster: "DEFAULT", Upsert: &mismatch}, "is not 1.1.1.1#1#DEFAULT"},
		{"put without mode", PutService{Service: *naming.NewService(svcKey, false)}, "unknown put mode"},
		{"put bad selector", PutService{Service: naming.Service{Key: svcKey, Selector: naming.Selector{Type: "regex"}}, Mode: PutUpsert}, "not match any type of selector!"},
		{"put bad service name", PutService{Service: *naming.NewService(naming.ServiceKey{Namespace: "public", Group: "G", Name: "x y"}, false), Mode: PutCreate}, "Param 'serviceName' is illegal"},
		{"put service metadata over the limit", PutService{Service: naming.Service{Key: svcKey, Metadata: bigMeta}, Mode: PutUpsert}, "should not exceed 1024"},
		{"put misnamed cluster", PutService{Service: naming.Service{Key: svcKey, Clusters: map[string]*naming.Cluster{"A": {Name: "B"}}}, Mode: PutUpsert}, "cluster A is named B"},
		{"delete bad namespace", DeleteService{Service: naming.ServiceKey{Namespace: "a b", Group: "G", Name: "s"}}, "namespaceId/tenant"},
		{"metadata batch ref without ip", UpdateMetadataBatch{Service: svcKey, Instances: []InstanceRef{{Port: 1, Cluster: "DEFAULT"}}}, "Param 'ip' is required."},
		{"metadata batch over the limit", UpdateMetadataBatch{Service: svcKey, Metadata: bigMeta}, "should not exceed 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.c)
			if err == nil {
				t.Fatalf("Encode succeeded: %q", b)
			}
			var ne *naming.Error
			if !errors.As(err, &ne) {
				t.Fatalf("Encode = %v, not a *naming.Error", err)
			}
			if ne.Status != 400 || !strings.Contains(ne.Message, tt.text) {
				t.Errorf("Encode = %d %q, want 400 containing %q", ne.Status, ne.Message, tt.text)
			}
			if !strings.HasPrefix(err.Error(), "fsm: invalid ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestEncodeWithLimits(t *testing.T) {
	in := persistent("10.0.0.5", 8080)
	in.Metadata = map[string]string{"dubbo": strings.Repeat("x", 3000)}
	c := RegisterInstance{Service: svcKey, Instance: in}
	if _, err := Encode(c); err == nil {
		t.Fatal("Encode with default limits accepted 3000 chars of metadata")
	}
	if _, err := EncodeWith(c, Limits{MaxMetadata: 4096}); err != nil {
		t.Errorf("EncodeWith(4096) = %v", err)
	}
	if err := Validate(c, Limits{MaxMetadata: 2000}); err == nil {
		t.Error("Validate(2000) accepted 3000 chars")
	}
	// The timing rule uses the server's defaults: a 3 s timeout is fine only with a 1 s interval.
	in = persistent("10.0.0.5", 8080)
	in.Metadata = map[string]string{naming.MetaHeartBeatTimeout: "3000", naming.MetaIPDeleteTimeout: "3000"}
	c = RegisterInstance{Service: svcKey, Instance: in}
	if _, err := Encode(c); err == nil {
		t.Error("Encode accepted a timeout below the default 5 s interval")
	}
	if _, err := EncodeWith(c, Limits{Timing: naming.Timing{HeartBeatInterval: 1e9, HeartBeatTimeout: 3e9, IPDeleteTimeout: 6e9}}); err != nil {
		t.Errorf("EncodeWith(1 s interval) = %v", err)
	}
}

func TestEncodeRefusesNonCommands(t *testing.T) {
	var nilReg *RegisterInstance
	for _, c := range []Command{nil, nilReg, foreign{}} {
		if b, err := Encode(c); err == nil {
			t.Errorf("Encode(%#v) = %q", c, b)
		}
	}
}

// foreign claims a registered type number but is not that command.
type foreign struct{ X int }

func (foreign) Type() CommandType { return RegisterInstanceType }

func TestDecodeRefusesBadInput(t *testing.T) {
	good, err := Encode(DeleteService{Service: svcKey})
	if err != nil {
		t.Fatal(err)
	}
	body := string(good[2:])
	tests := []struct {
		name string
		b    []byte
		is   error
	}{
		{"nil", nil, nil},
		{"one byte", []byte{5}, nil},
		{"unknown type", []byte("\x63\x01{}"), ErrUnknownCommand},
		{"unknown ignorable type", []byte("\x81\x01{}"), ErrUnknownCommand},
		{"type zero", []byte("\x00\x01{}"), ErrUnknownCommand},
		{"version 2", []byte("\x05\x02" + body), nil},
		{"version 0", []byte("\x05\x00" + body), nil},
		{"not JSON", []byte("\x05\x01{nope"), nil},
		{"empty body", []byte("\x05\x01"), nil},
		{"unknown field", []byte("\x05\x01" + strings.Replace(body, `{"service"`, `{"extra":1,"service"`, 1)), nil},
		{"trailing data", []byte("\x05\x01" + body + "{}"), nil},
		{"wrong field type", []byte("\x02\x01" + `{"port":"80"}`), nil},
		{"unknown put mode", []byte("\x04\x01" + `{"mode":"replace"}`), nil},
	}
	for _, tt := range tests {
		c, err := Decode(tt.b)
		if err == nil {
			t.Errorf("%s: Decode = %#v", tt.name, c)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%s: Decode = %v, want %v", tt.name, err, tt.is)
		}
		if !strings.HasPrefix(err.Error(), "fsm: ") {
			t.Errorf("%s: error %q lacks the package prefix", tt.name, err)
		}
	}
}

func TestCommandTypeNames(t *testing.T) {
	if s := UpdateMetadataBatchType.String(); s != "UpdateMetadataBatch" {
		t.Errorf("String = %q", s)
	}
	if s := CommandType(200).String(); s != "CommandType(200)" {
		t.Errorf("String = %q", s)
	}
	if !CommandType(0x85).Ignorable() || RegisterInstanceType.Ignorable() {
		t.Error("Ignorable is wrong")
	}
	for t0 := range commands {
		if t0.Ignorable() {
			t.Errorf("registered type %s is ignorable", t0)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x81, 0x01})
	f.Add([]byte("\x03\x01{\"metadata\":null,\"upsert\":{\"metadata\":{}}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if c != nil {
				t.Errorf("Decode returned %#v with error %v", c, err)
			}
			return
		}
		if c.Type() != CommandType(b[0]) {
			t.Errorf("Decode of type %d returned %s", b[0], c.Type())
		}
	})
}

// TestAnswerCrossesTyped: every kind of ApplyBatch response comes back from its Answer as
// the same Go value, so a member that forwarded a write sees what the leader saw.
func TestAnswerCrossesTyped(t *testing.T) {
	tests := []struct {
		name string
		typ  CommandType
		res  any
		want any
		err  *naming.Error
	}{
		{"no value", RegisterInstanceType, nil, nil, nil},
		{"rejection", PutServiceType, naming.ErrServiceExists(svcKey), nil, naming.ErrServiceExists(svcKey)},
		{"updated list", UpdateMetadataBatchType, []string{"1.1.1.1:1:unknown:DEFAULT:persistent"}, []string{"1.1.1.1:1:unknown:DEFAULT:persistent"}, nil},
		{"empty updated list", UpdateMetadataBatchType, []string{}, []string{}, nil},
		{"untyped error", DeleteServiceType, errors.New("disk"), nil, naming.Internal("disk")},
		{"flip applied", FlipHealthType, FlipResult{FlipApplied, 7}, FlipResult{FlipApplied, 7}, nil},
		{"flip refused", FlipHealthType, FlipResult{FlipStaleRevision, 9}, FlipResult{FlipStaleRevision, 9}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAnswer(tt.res)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			var back Answer
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, err := back.Result(tt.typ)
			if tt.err != nil {
				var ne *naming.Error
				if !errors.As(err, &ne) || *ne != *tt.err {
					t.Fatalf("Result error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Result = %#v, want %#v", got, tt.want)
			}
		})
	}
}
