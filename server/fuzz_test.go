package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/roster-registry/roster/distro"
	"github.com/roster-registry/roster/grpcapi"
	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/registry"
	"github.com/roster-registry/roster/registry/udppush"
	"github.com/roster-registry/roster/server"
	"github.com/roster-registry/roster/server/servertest"
)

// FuzzWritePaths sends generated requests down every client write path of one node (v1
// register, update, patch, beat, metadata batch, service create and update; gRPC
// InstanceRequest, BatchInstanceRequest and PersistentInstanceRequest) and checks the
// invariant that one bad request must not break: whatever a path accepted can be
// listed (v1 instance/list answers 200 and decodes), pushed (the UDP packet and the
// gRPC NotifySubscriberRequest encode), replicated (the Distro sync batch encodes and a
// receiving member takes it back unchanged) and snapshotted (the snapshot streams and
// verifies); whatever a path refused changed nothing; no path answers a 5xx.
//
// A node serves resetEvery requests before a fresh one takes over, so state builds up
// as clients would build it: a request may meet what earlier ones registered. A failure
// names the request, the path and the answer.
//
// Random text is almost never a valid request, and a fuzzer fed only refusals would
// never test the accepted side. So raw picks which fields go out as generated: one of
// them (the others shaped into valid values from their text), none, or all (shape).
func FuzzWritePaths(f *testing.F) {
	for _, in := range writeSeeds() {
		f.Add(in.op, in.raw, in.namespace, in.group, in.service, in.cluster, in.ip, in.port, in.weight, in.metadata, in.ephemeral)
	}
	n := startFuzzNode(f)
	f.Fuzz(func(t *testing.T, op, raw uint8, namespace, group, service, cluster, ip, port, weight, metadata string, ephemeral bool) {
		if n.runs == resetEvery {
			n.stop()
			n.start(t)
		}
		n.runs++
		in := writeInput{op % opCount, raw, namespace, group, service, cluster, ip, port, weight, metadata, ephemeral}
		n.run(t, in.shape())
	})
}

// writeInput is one generated request; op picks the path (modulo the number of paths),
// raw the fields sent as generated (shape).
type writeInput struct {
	op, raw                                uint8
	namespace, group, service, cluster, ip string
	port, weight, metadata                 string
	ephemeral                              bool
}

// The fields in the order raw numbers them; rawNone and above shape them all, allRaw
// sends them all as generated.
const (
	fieldNamespace = iota
	fieldGroup
	fieldService
	fieldCluster
	fieldIP
	fieldPort
	fieldWeight
	fieldMetadata
	rawNone
	allRaw = 15
)

// shape makes every field that raw does not name a valid value derived from its text,
// so that most requests are accepted with varied content.
func (in writeInput) shape() writeInput {
	pick := int(in.raw % 16)
	if pick == allRaw {
		return in
	}
	keep := func(field int) bool { return pick == field }
	if !keep(fieldNamespace) {
		in.namespace = onlyRunes(in.namespace, naming.MaxNamespaceLength, func(r rune) bool {
			return r == '_' || r == '-' || r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r))
		})
	}
	if !keep(fieldGroup) {
		in.group = onlyRunes(in.group, naming.MaxGroupLength, func(r rune) bool {
			return strings.ContainsRune("-_:.", r) || r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r))
		})
	}
	if !keep(fieldService) {
		in.service = onlyRunes(in.service, naming.MaxServiceLength/2, func(r rune) bool {
			return r >= 0x20 && r != '@' && !unicode.IsSpace(r) && !(r >= 0x4E00 && r <= 0x9FA5) && r != utf8.RuneError
		})
		if in.service == "" {
			in.service = "svc"
		}
	}
	if !keep(fieldCluster) {
		in.cluster = onlyRunes(in.cluster, naming.MaxClusterLength, func(r rune) bool {
			return r == '-' || r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r))
		})
	}
	if !keep(fieldIP) {
		in.ip = onlyRunes(in.ip, 32, func(r rune) bool {
			return r > 0x20 && !unicode.IsSpace(r) && !(r >= 0x4E00 && r <= 0x9FA5) && r != utf8.RuneError
		})
		if in.ip == "" {
			in.ip = "10.0.0.1"
		}
	}
	if !keep(fieldPort) {
		in.port = strconv.Itoa(int(textHash(in.port) % 65536))
	}
	if !keep(fieldWeight) {
		if w, err := naming.ParseFloat(in.weight); err != nil || naming.CheckWeight(w) != nil {
			in.weight = strconv.FormatFloat(float64(textHash(in.weight)%1000001)/100, 'g', -1, 64)
		}
	}
	if !keep(fieldMetadata) {
		md := map[string]string{}
		for _, pair := range strings.Split(in.metadata, ",") {
			k, v, _ := strings.Cut(pair, "=")
			k = onlyRunes(k, 64, func(r rune) bool { return r >= 0x20 && r != utf8.RuneError })
			md[k] = onlyRunes(v, 200, func(r rune) bool { return r != utf8.RuneError })
		}
		for k := range md {
			if len(md) > 4 {
				delete(md, k)
			}
		}
		b, _ := json.Marshal(md)
		in.metadata = string(b)
	}
	return in
}

// onlyRunes keeps the runes of s that ok takes, at most max of them.
func onlyRunes(s string, max int, ok func(rune) bool) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n < max && ok(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

func textHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// The write paths, in the order op selects them.
const (
	opRegister = iota
	opUpdate
	opPatch
	opBeat
	opMetadataUpdate
	opMetadataDelete
	opGRPCInstance
	opGRPCBatch
	opGRPCPersistent
	opServiceCreate
	opServiceUpdate
	opCount
)

var opNames = [opCount]string{"v1 register", "v1 update", "v1 patch", "v1 beat", "v1 metadata batch",
	"v1 metadata batch delete", "gRPC InstanceRequest", "gRPC BatchInstanceRequest",
	"gRPC PersistentInstanceRequest", "v1 service create", "v1 service update"}

func writeSeeds() []writeInput {
	reg := func(op uint8, service, weight string) writeInput {
		return writeInput{op: op, raw: allRaw, service: service, ip: "10.0.0.1", port: "80", weight: weight, ephemeral: true}
	}
	var seeds []writeInput
	// Valid requests on every path, as generated and shaped.
	for op := uint8(0); op < opCount; op++ {
		for _, raw := range []uint8{allRaw, rawNone} {
			seeds = append(seeds, writeInput{op: op, raw: raw, namespace: "dev", group: "G:1.a", service: "orders.v1", cluster: "c-1",
				ip: "10.0.0.5", port: "8080", weight: "2.5", metadata: `{"zone":"a","v":"1"}`, ephemeral: op%2 == 0})
		}
	}
	// The poison and its relatives, on every path that carries a weight (the
	// service paths carry it as protectThreshold).
	for _, w := range []string{"NaN", "-NaN", "Infinity", "-Infinity", "inf", "1e400", "-1e400", "1e-400",
		"10000.0000001", "-0", "1d", "0x1p4", "1_0", "", " 2 "} {
		for op := uint8(0); op < opCount; op++ {
			seeds = append(seeds, reg(op, "w", w))
		}
		p := reg(opRegister, "wp", w)
		p.ephemeral = false
		seeds = append(seeds, p)
	}
	// Control characters and text that is not UTF-8 in every name, on both fronts.
	for _, bad := range []string{"\x00", "\x01", "\x1f", "\x7f", "\xff", "\t", "\u2028"} {
		for _, op := range []uint8{opRegister, opGRPCInstance, opGRPCPersistent, opServiceCreate} {
			seeds = append(seeds,
				writeInput{op: op, raw: allRaw, service: "s" + bad + "v", ip: "10.0.0.2", port: "80", weight: "1", ephemeral: true},
				writeInput{op: op, raw: allRaw, service: bad + "lead", ip: "10.0.0.2", port: "80", weight: "1", ephemeral: false},
				writeInput{op: op, raw: allRaw, namespace: "n" + bad, service: "ns", ip: "10.0.0.2", port: "80", weight: "1", ephemeral: true},
				writeInput{op: op, raw: allRaw, group: "g" + bad, service: "gs", ip: "10.0.0.2", port: "80", weight: "1", ephemeral: true},
				writeInput{op: op, raw: allRaw, service: "cs", cluster: "c" + bad, ip: "10.0.0.2", port: "80", weight: "1", ephemeral: true},
				writeInput{op: op, raw: allRaw, service: "is", ip: "10.0.0.2" + bad, port: "80", weight: "1", ephemeral: true},
				writeInput{op: op, raw: allRaw, service: "ms", ip: "10.0.0.2", port: "80", weight: "1", metadata: `{"k` + bad + `":"v"}`, ephemeral: true},
				writeInput{op: op, raw: allRaw, service: "ms", ip: "10.0.0.2", port: "80", weight: "1", metadata: "k" + bad + "=v", ephemeral: false},
				writeInput{op: op, raw: allRaw, service: "vs", ip: "10.0.0.2", port: "80", weight: "1", metadata: `{"k":"v` + bad + `"}`, ephemeral: true},
			)
		}
	}
	// Huge and malformed numbers, empty strings.
	for _, p := range []string{"1e400", "99999999999999999999", "-1", "65536", "8.5", "", "0x50"} {
		seeds = append(seeds,
			writeInput{op: opRegister, raw: allRaw, service: "p", ip: "10.0.0.3", port: p, weight: "1", ephemeral: true},
			writeInput{op: opBeat, raw: fieldPort, service: "p", ip: "10.0.0.3", port: p, weight: "1", ephemeral: true},
			writeInput{op: opGRPCBatch, raw: fieldPort, service: "p", ip: "10.0.0.3", port: p, weight: "1", ephemeral: true})
	}
	seeds = append(seeds, writeInput{raw: allRaw}, writeInput{op: opGRPCInstance, raw: allRaw}, writeInput{op: opBeat, raw: allRaw, ephemeral: true},
		writeInput{op: opMetadataUpdate, raw: allRaw, service: "w", metadata: `{"k":1e400}`, ephemeral: true})
	// A metadata batch that the second instance of its service cannot take: nothing of
	// it may be applied to the first.
	big := strings.Repeat("x", naming.DefaultMaxMetadata-10)
	seeds = append(seeds,
		writeInput{op: opRegister, raw: allRaw, service: "batch", ip: "10.0.0.9", port: "1", weight: "1", metadata: `{"k":"` + big + `"}`, ephemeral: true},
		writeInput{op: opRegister, raw: allRaw, service: "batch", ip: "10.0.0.1", port: "1", weight: "1", ephemeral: true},
		writeInput{op: opMetadataUpdate, raw: allRaw, service: "batch", metadata: `{"more":"0123456789abcdef"}`, ephemeral: true})
	return seeds
}

// fuzzNode is the node under test, the clients that reach it, and the services its
// registry reported changed since the last request.
type fuzzNode struct {
	cfg  server.Config // every node's configuration but its data dir
	srv  *server.Server
	dir  string
	reg  *registry.Registry
	g    *grpcClient
	http *http.Client
	runs int // requests the current node has served

	mu      sync.Mutex
	changed map[naming.ServiceKey]bool
}

// resetEvery bounds the state a node builds up: after this many requests the run goes
// on with a fresh node. Every check reads a whole service and every snapshot the whole
// persistent state, so an unbounded state made each request slower than the last; and
// a failure replays better against a node that holds little.
const resetEvery = 500

func startFuzzNode(f *testing.F) *fuzzNode {
	cfg := servertest.Config(f)
	// Nothing may expire or be dropped during a run: an instance that left by itself
	// while a refused request ran would look like the request's doing.
	cfg.HeartbeatTimeout = time.Hour
	cfg.IPDeleteTimeout = time.Hour
	cfg.GRPC.DetectIdle = time.Hour
	// No health probes: a flip of a fuzzed persistent instance in the middle of a check
	// would read as a change made by a refused request.
	cfg.HealthCheck.CIDRs = ""
	n := &fuzzNode{cfg: cfg, http: &http.Client{Timeout: 30 * time.Second}, changed: map[naming.ServiceKey]bool{}}
	n.start(f)
	f.Cleanup(n.stop)
	return n
}

// start runs a fresh node with its data in memory where the system has a tmpfs (every
// persistent write is fsynced twice, to the Raft log and to the state, and a run makes
// thousands) and connects the gRPC client to it.
func (n *fuzzNode) start(tb testing.TB) {
	tb.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "roster-fuzz-")
	if err != nil {
		if dir, err = os.MkdirTemp("", "roster-fuzz-"); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := n.cfg
	cfg.DataDir = dir
	srv, err := server.New(cfg)
	if err != nil {
		_ = os.RemoveAll(dir)
		tb.Fatal(err)
	}
	n.srv, n.dir, n.reg, n.runs = srv, dir, srv.Registry(), 0
	srv.Start()
	servertest.WaitReady(tb, srv)
	n.reg.Watch(func(svc naming.ServiceKey) {
		n.mu.Lock()
		n.changed[svc] = true
		n.mu.Unlock()
	})
	n.g = connectGRPC(tb, srv)
}

func (n *fuzzNode) stop() {
	if n.g != nil {
		n.g.close()
	}
	if n.srv != nil {
		_ = n.srv.Close()
	}
	_ = os.RemoveAll(n.dir)
	n.srv, n.g = nil, nil
}

func (n *fuzzNode) takeChanged() map[naming.ServiceKey]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.changed
	n.changed = map[naming.ServiceKey]bool{}
	return c
}

// outcome is a front's answer: accepted or refused, with what it said; serverError
// marks an answer no request may get (HTTP 5xx; gRPC errorCode 500).
type outcome struct {
	accepted    bool
	serverError bool
	status      int // HTTP status, or gRPC errorCode (0 on success)
	text        string
}

func (n *fuzzNode) run(t *testing.T, in writeInput) {
	// Instances that expire by their own preserved.* timeouts would change the state
	// under a refused request; the beat interval alone cannot make anything expire.
	for _, k := range []string{naming.MetaHeartBeatTimeout, naming.MetaIPDeleteTimeout} {
		in.metadata = strings.ReplaceAll(in.metadata, k, "x."+k)
	}
	targets := in.services()
	n.takeChanged()
	before := n.state(targets)
	out := n.send(t, in)
	changed := n.takeChanged()
	after := n.state(targets)
	describe := func() string {
		return fmt.Sprintf("%s %+q\nanswer: %+v", opNames[in.op], []string{in.namespace, in.group, in.service, in.cluster,
			in.ip, in.port, in.weight, in.metadata, fmt.Sprint(in.ephemeral)}, out)
	}
	if out.serverError {
		t.Fatalf("a server error:\n%s", describe())
	}
	if !out.accepted {
		if len(changed) > 0 || before.digest != after.digest {
			t.Fatalf("a refused request changed the registry (services reported changed: %v)\nbefore: %s\nafter:  %s\n%s",
				slices.Collect(maps.Keys(changed)), before.digest, after.digest, describe())
		}
		return
	}
	for _, svc := range targets {
		changed[svc] = true
	}
	for svc := range changed {
		if err := n.checkService(svc); err != nil {
			t.Fatalf("service %s after an accepted request: %v\n%s", svc, err, describe())
		}
	}
	if after.applied != before.applied {
		if err := n.checkSnapshot(); err != nil {
			t.Fatalf("snapshot after an accepted request: %v\n%s", err, describe())
		}
	}
}

// services are the keys the request names, resolved as the fronts resolve them (v1:
// the grouped-name rule; gRPC: names as sent, defaults for blanks), on text decoded as
// the fronts decode it. The checks use them besides the services the registry reported.
func (in writeInput) services() []naming.ServiceKey {
	decoded := func(s string) string { return strings.TrimSpace(string([]rune(s))) }
	ns := decoded(in.namespace)
	if ns == "" {
		ns = naming.DefaultNamespace
	}
	name, group := decoded(in.service), decoded(in.group)
	if name == "" {
		return nil
	}
	switch in.op {
	case opGRPCInstance, opGRPCBatch, opGRPCPersistent:
		if group == "" {
			group = naming.DefaultGroup
		}
	default:
		g, s, err := naming.SplitGroupedName(name, group)
		if err != nil {
			return nil
		}
		group, name = g, s
	}
	return []naming.ServiceKey{{Namespace: ns, Group: group, Name: name}}
}

// registryState is what a refused request must leave as it was (digest): the sizes of
// both stores, and every instance and the record of each service it names. The Raft
// position is not part of it: a CP command that the FSM refuses (a create of a service
// that exists) is committed and applied as a no-op.
type registryState struct {
	applied uint64
	digest  string
}

func (n *fuzzNode) state(targets []naming.ServiceKey) registryState {
	var b strings.Builder
	st := n.reg.RaftStats()
	counts, err := n.reg.Counts()
	fmt.Fprintf(&b, "counts %+v %v", counts, err)
	for _, svc := range targets {
		fmt.Fprintf(&b, "; %s:", svc)
		eph := server.EphemeralStore(n.srv).Instances(svc)
		slices.SortFunc(eph, func(x, y *naming.Instance) int { return strings.Compare(x.Key(), y.Key()) })
		for _, inst := range eph {
			fmt.Fprintf(&b, " %v", *inst)
		}
		if info, err := n.reg.List(context.Background(), registry.Query{Service: svc}); err != nil {
			fmt.Fprintf(&b, " list %v", err)
		} else {
			for _, inst := range info.Hosts {
				fmt.Fprintf(&b, " listed %v", *inst)
			}
		}
		if d, err := n.reg.GetService(context.Background(), svc); err == nil {
			fmt.Fprintf(&b, " record %+v", *d.Service)
			for _, c := range d.Clusters {
				fmt.Fprintf(&b, " cluster %+v", *c)
			}
		}
	}
	return registryState{applied: st.AppliedIndex, digest: b.String()}
}

// send makes the request on its front and reads the answer.
func (n *fuzzNode) send(t *testing.T, in writeInput) outcome {
	switch in.op {
	case opGRPCInstance, opGRPCBatch, opGRPCPersistent:
		return n.sendGRPC(t, in)
	}
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("namespaceId", in.namespace)
	set("groupName", in.group)
	set("serviceName", in.service)
	method, path := http.MethodPost, "/nacos/v1/ns/instance"
	switch in.op {
	case opRegister, opUpdate, opPatch:
		set("clusterName", in.cluster)
		set("ip", in.ip)
		set("port", in.port)
		set("weight", in.weight)
		set("metadata", in.metadata)
		if in.op != opPatch {
			v.Set("ephemeral", fmt.Sprint(in.ephemeral))
		}
		method = map[int]string{opRegister: http.MethodPost, opUpdate: http.MethodPut, opPatch: http.MethodPatch}[int(in.op)]
	case opBeat:
		beat := fmt.Sprintf(`{"ip":%s,"port":%s,"serviceName":%s,"cluster":%s,"weight":%s,"metadata":%s,"ephemeral":%t}`,
			jsonString(in.ip), jsonScalar(in.port), jsonString(in.service), jsonString(in.cluster),
			jsonScalar(in.weight), metadataJSON(in.metadata), in.ephemeral)
		v.Set("beat", beat)
		method, path = http.MethodPut, "/nacos/v1/ns/instance/beat"
	case opMetadataUpdate, opMetadataDelete:
		set("metadata", in.metadata)
		if in.ip != "" {
			v.Set("instances", fmt.Sprintf(`[{"ip":%s,"port":%s,"clusterName":%s}]`, jsonString(in.ip), jsonScalar(in.port), jsonString(in.cluster)))
		}
		if !in.ephemeral {
			v.Set("consistencyType", "persist")
		}
		method, path = http.MethodPut, "/nacos/v1/ns/instance/metadata/batch"
		if in.op == opMetadataDelete {
			method = http.MethodDelete
		}
	case opServiceCreate, opServiceUpdate:
		set("protectThreshold", in.weight)
		set("metadata", in.metadata)
		method, path = http.MethodPost, "/nacos/v1/ns/service"
		if in.op == opServiceUpdate {
			method = http.MethodPut
		}
	}
	req, err := http.NewRequest(method, "http://"+n.srv.HTTPAddr()+path, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := n.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", opNames[in.op], err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read the answer: %v", opNames[in.op], err)
	}
	return outcome{accepted: resp.StatusCode == http.StatusOK, serverError: resp.StatusCode >= 500, status: resp.StatusCode, text: string(body)}
}

func (n *fuzzNode) sendGRPC(t *testing.T, in writeInput) outcome {
	inst := fmt.Sprintf(`{"ip":%s,"port":%s,"weight":%s,"healthy":true,"enabled":true,"ephemeral":%t,"clusterName":%s,"metadata":%s}`,
		jsonString(in.ip), jsonScalar(in.port), jsonScalar(in.weight), in.ephemeral, jsonString(in.cluster), metadataJSON(in.metadata))
	head := fmt.Sprintf(`"requestId":"fuzz","namespace":%s,"serviceName":%s,"groupName":%s,"module":"naming"`,
		jsonString(in.namespace), jsonString(in.service), jsonString(in.group))
	typ, body := "InstanceRequest", `{`+head+`,"type":"registerInstance","instance":`+inst+`}`
	switch in.op {
	case opGRPCBatch:
		// The generated instance beside a good one: the list is taken or refused whole.
		good := `{"ip":"10.1.1.1","port":1,"weight":1,"healthy":true,"enabled":true,"ephemeral":true,"clusterName":"DEFAULT","metadata":{}}`
		typ, body = "BatchInstanceRequest", `{`+head+`,"type":"batchRegisterInstance","instances":[`+good+`,`+inst+`]}`
	case opGRPCPersistent:
		typ = "PersistentInstanceRequest"
	}
	respType, answer := n.g.call(t, typ, body)
	var h struct {
		ResultCode int    `json:"resultCode"`
		ErrorCode  int    `json:"errorCode"`
		Message    string `json:"message"`
	}
	if err := json.Unmarshal([]byte(answer), &h); err != nil {
		t.Fatalf("%s answered %s %q: %v", typ, respType, answer, err)
	}
	// errorCode 502 is a body that does not decode (a generated number that is no
	// double, say): a refusal, not a server error.
	return outcome{accepted: h.ResultCode == 200, serverError: h.ErrorCode == 500, status: h.ErrorCode, text: respType + " " + h.Message}
}

// checkService lists, pushes and replicates one service as a client, a subscriber and
// another member would receive it.
func (n *fuzzNode) checkService(svc naming.ServiceKey) error {
	q := url.Values{"namespaceId": {svc.Namespace}, "groupName": {svc.Group}, "serviceName": {svc.Name}}
	resp, err := n.http.Get("http://" + n.srv.HTTPAddr() + "/nacos/v1/ns/instance/list?" + q.Encode())
	if err != nil {
		return fmt.Errorf("v1 list: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("v1 list: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("v1 list answered %d %q", resp.StatusCode, body)
	}
	var listed naming.ServiceInfoJSON
	if err := json.Unmarshal(body, &listed); err != nil {
		return fmt.Errorf("v1 list answer does not decode: %v: %q", err, body)
	}

	data, err := n.reg.PushData(svc, "")
	if err != nil {
		return fmt.Errorf("UDP push data: %w", err)
	}
	if _, err := udppush.EncodePacket(data, 1, math.MaxInt); err != nil {
		return fmt.Errorf("UDP push packet: %w", err)
	}

	info, err := n.reg.List(context.Background(), registry.Query{Service: svc})
	if err != nil {
		return fmt.Errorf("list for the gRPC push: %w", err)
	}
	notify, err := grpcapi.NotifyBody(info, n.reg.Timing())
	if err != nil {
		return fmt.Errorf("gRPC NotifySubscriberRequest: %w", err)
	}
	if !json.Valid(notify) {
		return fmt.Errorf("gRPC NotifySubscriberRequest is not JSON: %q", notify)
	}

	batch := server.Replicator(n.srv).SyncBatch([]naming.ServiceKey{svc})
	wire, err := batch.Encode()
	if err != nil {
		return fmt.Errorf("Distro sync batch: %w", err)
	}
	got, err := distro.DecodeSyncBatch(bytes.NewReader(wire))
	if err != nil {
		return fmt.Errorf("a member refuses the Distro sync batch: %w", err)
	}
	if err := sameBatch(batch, got); err != nil {
		return fmt.Errorf("the Distro sync batch does not survive the wire: %w", err)
	}
	return nil
}

// sameBatch compares a batch with what a receiving member decodes of it (an empty
// metadata map and none are the same on the wire).
func sameBatch(sent, got distro.SyncBatch) error {
	if sent.From != got.From || len(sent.Services) != len(got.Services) {
		return fmt.Errorf("sent %+v, received %+v", sent, got)
	}
	for i, s := range sent.Services {
		g := got.Services[i]
		if s.Source != g.Source || s.Service != g.Service || len(s.Entries) != len(g.Entries) {
			return fmt.Errorf("sent %+v, received %+v", s, g)
		}
		for j, e := range s.Entries {
			r := g.Entries[j]
			a, b := e.Instance, r.Instance
			if e.Owner != r.Owner || e.Epoch != r.Epoch || !maps.Equal(a.Metadata, b.Metadata) {
				return fmt.Errorf("sent %+v, received %+v", e, r)
			}
			a.Metadata, b.Metadata = nil, nil
			if !reflect.DeepEqual(a, b) {
				return fmt.Errorf("sent %+v, received %+v", e.Instance, r.Instance)
			}
		}
	}
	return nil
}

// checkSnapshot streams a snapshot of the persistent state and verifies it as a restore
// would.
func (n *fuzzNode) checkSnapshot() error {
	sn, err := n.reg.OpenSnapshot()
	if err != nil {
		return err
	}
	defer sn.Release()
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		return err
	}
	_, err = persistence.VerifyStream(&buf)
	return err
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsonScalar puts s into JSON as a number when it is one (so that 1e400 arrives as a
// number) and as a string otherwise (clients' Jackson coerces strings to numbers).
func jsonScalar(s string) string {
	t := strings.TrimSpace(s)
	if t != "" && (t[0] == '-' || t[0] >= '0' && t[0] <= '9') && json.Valid([]byte(t)) {
		return t
	}
	return jsonString(s)
}

// metadataJSON is metadata as a JSON object: the text itself when it is one, else the
// map v1 would parse from it, else one key holding it.
func metadataJSON(s string) string {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
		return t
	}
	md, err := naming.ParseMetadata(s)
	if err != nil {
		md = map[string]string{"m": s}
	}
	b, _ := json.Marshal(md)
	return string(b)
}
