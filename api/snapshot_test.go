package api

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/naming"
	"github.com/roster-registry/roster/persistence"
	"github.com/roster-registry/roster/registry"
)

// register adds a persistent instance (POST /instance, ephemeral=false) in namespace ns.
func (s *stack) registerPersistent(ns, svc, ip string, port int, extra ...string) {
	s.t.Helper()
	v := vals(append([]string{"namespaceId", ns, "serviceName", svc, "ip", ip, "port", strconv.Itoa(port), "ephemeral", "false"}, extra...)...)
	s.must("POST", "/nacos/v1/ns/instance", v)
}

// listing renders everything the node serves, persistent and ephemeral, as sorted
// lines: every service's detail and every instance with all its fields. Fields that
// change on every read (lastRefTime) are left out.
func (s *stack) listing() string {
	s.t.Helper()
	keys, err := s.reg.Services("")
	if err != nil {
		s.t.Fatal(err)
	}
	var lines []string
	for _, k := range keys {
		q := vals("namespaceId", k.Namespace, "serviceName", k.Grouped(), "healthyOnly", "false")
		a := s.do("GET", "/nacos/v1/ns/instance/list", q)
		if a.status != 200 {
			s.t.Fatalf("list %s: %d %s", k, a.status, a.body)
		}
		var info naming.ServiceInfoJSON
		if err := json.Unmarshal([]byte(a.body), &info); err != nil {
			s.t.Fatal(err)
		}
		for _, h := range info.Hosts {
			b, _ := json.Marshal(h)
			lines = append(lines, k.String()+" instance "+string(b))
		}
		d := s.do("GET", "/nacos/v1/ns/service", vals("namespaceId", k.Namespace, "serviceName", k.Grouped()))
		detail, err := s.reg.GetService(s.t.Context(), k)
		if err != nil {
			s.t.Fatal(err)
		}
		kind := `"ephemeral":false`
		if detail.Service.Ephemeral {
			kind = `"ephemeral":true`
		}
		lines = append(lines, k.String()+" service "+kind+" "+strconv.Itoa(d.status)+" "+strings.TrimSpace(d.body))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// persistentListing is listing without the ephemeral instances and services.
func (s *stack) persistentListing() string {
	var keep []string
	for _, l := range strings.Split(s.listing(), "\n") {
		if !strings.Contains(l, `"ephemeral":true`) && l != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// save downloads a snapshot.
func (s *stack) save() ([]byte, http.Header) {
	s.t.Helper()
	resp, err := http.Get(s.srv.URL + SnapshotPath)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		s.t.Fatalf("GET %s = %d %s", SnapshotPath, resp.StatusCode, b)
	}
	return b, resp.Header
}

// restore uploads body; size < 0 sends it chunked, without a length.
func (s *stack) restore(body []byte, size int) answer {
	s.t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if size < 0 {
		r = io.MultiReader(r) // hides the length: the request goes chunked
	}
	req, err := http.NewRequest(http.MethodPut, s.srv.URL+SnapshotPath, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if size >= 0 {
		req.ContentLength = int64(size)
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	return s.send(req)
}

func (s *stack) spoolLeft() []string {
	s.t.Helper()
	left, err := filepath.Glob(filepath.Join(s.dir, "snapshot-upload-*"))
	if err != nil {
		s.t.Fatal(err)
	}
	return left
}

// TestSnapshotSaveRestoreRoundTrip saves a node's persistent state and restores it into
// another node that had state of its own: the second node then serves exactly the
// first one's persistent services and instances, field for field, keeps its own
// ephemeral instances, drops the views it had cached, pushes the change to its UDP
// subscribers and takes new writes.
func TestSnapshotSaveRestoreRoundTrip(t *testing.T) {
	src := newStack(t, stackOptions{})
	src.must("POST", "/nacos/v1/ns/service", vals("serviceName", "billing", "protectThreshold", "0.3", "metadata", `{"owner":"team-b"}`))
	src.registerPersistent("public", "billing", "10.0.0.6", 9090, "weight", "2.5", "clusterName", "c1", "metadata", `{"zone":"a","rack":"r1"}`)
	src.registerPersistent("public", "billing", "10.0.0.7", 9090, "enabled", "false", "healthy", "false")
	src.registerPersistent("public", "orders", "10.0.1.1", 8080)
	src.registerPersistent("dev", "DEFAULT_GROUP@@orders", "10.0.2.1", 8080, "metadata", `{"env":"dev"}`)
	src.registerPersistent("dev", "G2@@inventory", "10.0.3.1", 7000)
	src.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "sessions", "ip", "10.9.9.9", "port", "1")) // ephemeral: not in snapshots
	want := src.persistentListing()

	b, hdr := src.save()
	info, err := persistence.VerifyStream(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("downloaded snapshot does not verify: %v", err)
	}
	if info.Services != 4 || info.Instances != 5 || info.Namespaces != 2 || info.NodeID != "" {
		t.Errorf("snapshot header %+v", info.Header)
	}
	if hdr.Get("X-Roster-Snapshot-Index") != strconv.FormatUint(info.Index, 10) || hdr.Get("X-Roster-Snapshot-Instances") != "5" ||
		hdr.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("answer headers %v, header %+v", hdr, info.Header)
	}

	dst := newStack(t, stackOptions{})
	dst.registerPersistent("public", "orders", "10.8.8.8", 1111) // replaced by the restore
	dst.registerPersistent("public", "stale", "10.8.8.9", 1111)  // gone after it
	dst.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "cache", "ip", "10.7.7.7", "port", "2"))
	ephemeralBefore := ephemeralLines(dst.listing())

	// A cached view and a UDP subscriber of a service the restore changes.
	sub := udpSubscriber(t)
	req, _ := http.NewRequest("GET", dst.srv.URL+"/nacos/v1/ns/instance/list?serviceName=orders&udpPort="+strconv.Itoa(sub.port())+"&clientIP=127.0.0.1", nil)
	req.Header.Set("User-Agent", "Nacos-Go-Client:v1.1.4")
	if a := dst.send(req); !strings.Contains(a.body, "10.8.8.8") {
		t.Fatalf("list before restore: %s", a.body)
	}

	a := dst.restore(b, len(b))
	if a.status != 200 {
		t.Fatalf("restore = %d %s", a.status, a.body)
	}
	var res RestoreResult
	if err := json.Unmarshal([]byte(a.body), &res); err != nil {
		t.Fatal(err)
	}
	if res.Index != info.Index || res.SHA256 != info.SHA256 || res.Size != int64(len(b)) || res.RaftIndex <= info.Index {
		t.Errorf("restore answer %+v, want the snapshot's index %d and checksum, installed past it", res, info.Index)
	}
	if got := dst.persistentListing(); got != want {
		t.Errorf("restored persistent state differs:\n got:\n%s\nwant:\n%s", got, want)
	}
	if got := ephemeralLines(dst.listing()); got != ephemeralBefore || !strings.Contains(got, "10.7.7.7") {
		t.Errorf("ephemeral instances changed by the restore:\n got %s\nwant %s", got, ephemeralBefore)
	}
	if strings.Contains(dst.listing(), "10.9.9.9") {
		t.Error("the source's ephemeral instance came along")
	}
	sub.await(t, "the restored orders instance 10.0.1.1", "10.0.1.1")
	if left := dst.spoolLeft(); len(left) > 0 {
		t.Errorf("spooled upload left behind: %v", left)
	}

	// Writes go on from the restored state.
	dst.registerPersistent("public", "orders", "10.0.1.2", 8080)
	if l := dst.listing(); !strings.Contains(l, "10.0.1.1") || !strings.Contains(l, "10.0.1.2") {
		t.Errorf("after a write on the restored state:\n%s", l)
	}
}

func ephemeralLines(listing string) string {
	var keep []string
	for _, l := range strings.Split(listing, "\n") {
		if strings.Contains(l, `"ephemeral":true`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// udpSub is a 1.x client's UDP socket.
type udpSub struct{ conn *net.UDPConn }

func udpSubscriber(t *testing.T) *udpSub {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpSub{conn: c}
}

func (u *udpSub) port() int { return u.conn.LocalAddr().(*net.UDPAddr).Port }

// await reads pushes until one holds want.
func (u *udpSub) await(t *testing.T, what, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		_ = u.conn.SetReadDeadline(deadline)
		n, err := u.conn.Read(buf)
		if err != nil {
			break
		}
		pkt := buf[:n]
		if bytes.HasPrefix(pkt, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(pkt))
			if err != nil {
				t.Fatal(err)
			}
			if pkt, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if bytes.Contains(pkt, []byte(want)) {
			return
		}
	}
	t.Fatalf("no UDP push with %s within 5s", what)
}

// TestSnapshotBadUploadsChangeNothing sends every kind of bad upload: each is refused
// with a status and a text naming the problem, and the node's state is unchanged.
func TestSnapshotBadUploadsChangeNothing(t *testing.T) {
	src := newStack(t, stackOptions{})
	src.registerPersistent("public", "orders", "10.0.1.1", 8080)
	good, _ := src.save()

	limit := int64(len(good) + 64)
	s := newStack(t, stackOptions{maxSnapshot: limit})
	s.registerPersistent("public", "billing", "10.0.0.6", 9090, "metadata", `{"zone":"a"}`)
	s.must("POST", "/nacos/v1/ns/instance", vals("serviceName", "cache", "ip", "10.7.7.7", "port", "2"))
	before := s.listing()

	flip := func(at int) []byte {
		b := append([]byte(nil), good...)
		b[at] ^= 0x04
		return b
	}
	// A well-framed snapshot whose instance weighs 20000: written past the FSM straight
	// into a store, as no write path would take it.
	outOfRange := func() []byte {
		st, err := persistence.Open(filepath.Join(t.TempDir(), "bad.db"), persistence.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		in := &naming.Instance{IP: "10.0.9.9", Port: 9, ClusterName: naming.DefaultCluster, Weight: 20000, Healthy: true, Enabled: true}
		key := naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: "poison"}
		if err := st.Update(3, 1, func(tx *persistence.Tx) error { return tx.PutInstance(key, in) }); err != nil {
			t.Fatal(err)
		}
		sn, err := st.OpenSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer sn.Release()
		var buf bytes.Buffer
		if _, err := sn.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}()
	version := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(version[8:12], 7)
	oversize := append(append([]byte(nil), good...), bytes.Repeat([]byte{0}, 128)...)
	tests := []struct {
		name   string
		body   []byte
		size   int // -1: chunked
		status int
		text   string
	}{
		{"truncated", good[:len(good)-10], len(good) - 10, 400, "snapshot truncated"},
		{"truncated in the header", good[:20], 20, 400, "snapshot truncated"},
		{"flipped byte", flip(len(good) - 32 - 4), len(good), 400, "checksum mismatch"},
		{"wrong magic", append([]byte("NOTROSTR"), good[8:]...), len(good), 400, "bad magic"},
		{"unknown format version", version, len(good), 400, "unsupported format version 7"},
		{"not a snapshot at all", []byte("hello, world"), 12, 400, "bad magic"},
		{"a record out of range", outOfRange, len(outOfRange), 400,
			"snapshot corrupt: instance record 1 (10.0.9.9#9#DEFAULT of public##DEFAULT_GROUP@@poison): instance format invalid: The weights range from 0.0 to 10000.0"},
		{"data after the checksum", append(append([]byte(nil), good...), 'x'), len(good) + 1, 400, "data after the checksum"},
		{"empty", nil, 0, 400, "the upload is empty"},
		{"empty chunked", nil, -1, 400, "the upload is empty"},
		{"over the limit", oversize, len(oversize), 413, fmt.Sprintf("limit of %d bytes", limit)},
		{"over the limit chunked", oversize, -1, 413, fmt.Sprintf("limit of %d bytes", limit)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := s.restore(tt.body, tt.size)
			if a.status != tt.status || !strings.Contains(a.body, tt.text) {
				t.Errorf("restore = %d %q, want %d with %q", a.status, a.body, tt.status, tt.text)
			}
			if tt.status == 400 && !strings.Contains(a.body, "nothing was changed") {
				t.Errorf("answer %q does not say that nothing changed", a.body)
			}
			if after := s.listing(); after != before {
				t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if left := s.spoolLeft(); len(left) > 0 {
				t.Errorf("spooled upload left behind: %v", left)
			}
		})
	}
	// The node still takes a good snapshot.
	if a := s.restore(good, len(good)); a.status != 200 {
		t.Fatalf("good restore after the bad ones = %d %s", a.status, a.body)
	}
}

// writeOp is one registration a test writer sent.
type writeOp struct {
	writer, seq int
	ip          string
	start, end  time.Time
	status      int
	body        string
	before      uint64 // Raft applied index read before sending
	after       uint64 // ... and after the answer
}

// writer registers persistent instances 10.<w>.<seq/250>.<seq%250>:<port> in service
// svc, one at a time, until stop is closed, recording each attempt.
func (s *stack) writer(w int, svc string, stop <-chan struct{}, out chan<- writeOp, wg *sync.WaitGroup) {
	defer wg.Done()
	hc := &http.Client{Timeout: 30 * time.Second}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		op := writeOp{writer: w, seq: seq, ip: fmt.Sprintf("10.%d.%d.%d", w, seq/250, seq%250+1)}
		v := vals("serviceName", svc, "ip", op.ip, "port", "8080", "ephemeral", "false")
		op.before = s.node.Stats().AppliedIndex
		op.start = time.Now()
		resp, err := hc.PostForm(s.srv.URL+"/nacos/v1/ns/instance", v)
		op.end = time.Now()
		if err != nil {
			op.status, op.body = -1, err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			op.status, op.body = resp.StatusCode, string(b)
		}
		op.after = s.node.Stats().AppliedIndex
		out <- op
	}
}

// instanceIPs lists the IPs of a service's instances straight from a snapshot stream.
func instanceIPs(t *testing.T, snap []byte, svc string) map[string]bool {
	t.Helper()
	st, err := persistence.Open(filepath.Join(t.TempDir(), "check.db"), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	ips := map[string]bool{}
	err = st.View(func(tx *persistence.Tx) error {
		list, err := tx.Instances(naming.ServiceKey{Namespace: naming.DefaultNamespace, Group: naming.DefaultGroup, Name: svc})
		for _, in := range list {
			ips[in.IP] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

// TestSnapshotSaveUnderLoadIsAPointInTime saves while writers register instances. Each
// write's Raft index lies between the applied index read before it was sent and the one
// read after it was answered, so against the header's index H every write falls in one
// of three groups: answered with applied <= H (must be in the file), sent with applied
// >= H (must not be), or in between (either). The file must honour the first two.
func TestSnapshotSaveUnderLoadIsAPointInTime(t *testing.T) {
	s := newStack(t, stackOptions{})
	stop := make(chan struct{})
	ops := make(chan writeOp, 1<<16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go s.writer(w+1, "steady", stop, ops, &wg)
	}
	// Writes must pile up before, between and after the saves: wait for the applied
	// index to move on by a margin rather than for a fixed time, which a loaded
	// machine can spend without a single write.
	const margin = 20
	pileUp := func() {
		t.Helper()
		from := s.node.Stats().AppliedIndex
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for s.node.Stats().AppliedIndex < from+margin {
			if time.Now().After(deadline) {
				t.Fatalf("the writers applied %d entries in 30s, want %d", s.node.Stats().AppliedIndex-from, margin)
			}
			<-tick.C
		}
	}
	var snaps [][]byte
	for range 3 {
		pileUp()
		b, _ := s.save()
		snaps = append(snaps, b)
	}
	pileUp()
	close(stop)
	wg.Wait()
	close(ops)
	var all []writeOp
	for op := range ops {
		if op.status != 200 {
			t.Fatalf("write %s = %d %s", op.ip, op.status, op.body)
		}
		all = append(all, op)
	}
	for i, b := range snaps {
		info, err := persistence.VerifyStream(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		ips := instanceIPs(t, b, "steady")
		if len(ips) != info.Instances {
			t.Errorf("snapshot %d: header counts %d instances, file holds %d", i, info.Instances, len(ips))
		}
		in, out := 0, 0
		for _, op := range all {
			switch {
			case op.after <= info.Index:
				in++
				if !ips[op.ip] {
					t.Errorf("snapshot %d at index %d lacks %s, applied by index %d", i, info.Index, op.ip, op.after)
				}
			case op.before >= info.Index:
				out++
				if ips[op.ip] {
					t.Errorf("snapshot %d at index %d holds %s, sent when index %d was applied", i, info.Index, op.ip, op.before)
				}
			}
		}
		t.Logf("snapshot %d: index %d, %d instances; %d writes surely before it, %d surely after, %d overlapping",
			i, info.Index, len(ips), in, out, len(all)-in-out)
		if in == 0 || out == 0 {
			t.Errorf("snapshot %d was not taken under load (%d writes before, %d after)", i, in, out)
		}
	}
}

// TestSnapshotRestoreUnderWriteLoad restores while writers register instances (R14).
// Raft orders every write before or after the restore: a write before it is replaced
// by the snapshot's state, whether or not its answer had reached the writer; a write
// after it applies on top of the restored state; a write caught in flight (appended,
// not yet committed) is answered 503. So for each writer, whose writes are sequential,
// the acknowledged writes missing afterwards must all precede the acknowledged writes
// present, every missing one must have been sent before the restore was answered, and
// every write sent after that must be present. Nothing answered 200 after the restore's
// commit is lost.
func TestSnapshotRestoreUnderWriteLoad(t *testing.T) {
	s := newStack(t, stackOptions{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				s.registerPersistent("public", "base", fmt.Sprintf("10.200.%d.%d", w, i+1), 80)
			}
		}()
	}
	wg.Wait()
	snap, _ := s.save()
	wantBase := s.persistentListing()

	stop := make(chan struct{})
	ops := make(chan writeOp, 1<<16)
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go s.writer(w+1, "load", stop, ops, &wg)
	}
	// Restore in the middle of the load.
	time.Sleep(300 * time.Millisecond)
	r0 := time.Now()
	a := s.restore(snap, len(snap))
	r1 := time.Now()
	if a.status != 200 {
		t.Fatalf("restore = %d %s", a.status, a.body)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(ops)

	keys, err := s.reg.Services("")
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, k := range keys {
		if k.Name != "load" {
			continue
		}
		info, err := s.reg.List(t.Context(), registry.Query{Service: k})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range info.Hosts {
			present[h.IP] = true
		}
	}
	byWriter := map[int][]writeOp{}
	for op := range ops {
		byWriter[op.writer] = append(byWriter[op.writer], op)
	}
	var acked, ackedPresent, ackedMissing, failed int
	for w, list := range byWriter {
		sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
		lastMissing, firstPresent := -1, -1
		for _, op := range list {
			if op.status != 200 {
				failed++
				if op.status != http.StatusServiceUnavailable || !strings.Contains(op.body, "outcome unknown") {
					t.Errorf("writer %d: %s answered %d %q; want 200, or 503 with an unknown outcome", w, op.ip, op.status, op.body)
				}
				if op.end.Before(r0) || op.start.After(r1) {
					t.Errorf("writer %d: %s failed outside the restore (%v..%v vs restore %v..%v): %d %s", w, op.ip, op.start, op.end, r0, r1, op.status, op.body)
				}
				continue
			}
			acked++
			if present[op.ip] {
				ackedPresent++
				if firstPresent < 0 {
					firstPresent = op.seq
				}
				continue
			}
			ackedMissing++
			lastMissing = op.seq
			if op.start.After(r1) {
				t.Errorf("writer %d: %s was sent after the restore was answered, acknowledged, and is missing", w, op.ip)
			}
		}
		if firstPresent >= 0 && lastMissing > firstPresent {
			t.Errorf("writer %d: acknowledged write #%d is missing although its earlier write #%d is present", w, lastMissing, firstPresent)
		}
	}
	t.Logf("restore took %v; %d writes acknowledged (%d present, %d replaced by the restore), %d answered with an error",
		r1.Sub(r0).Round(time.Millisecond), acked, ackedPresent, ackedMissing, failed)
	if ackedPresent == 0 || ackedMissing == 0 {
		t.Errorf("the restore did not fall inside the load (%d acknowledged writes present, %d replaced)", ackedPresent, ackedMissing)
	}
	// The snapshot's own services are exactly as saved.
	var baseLines []string
	for _, l := range strings.Split(s.persistentListing(), "\n") {
		if strings.Contains(l, "@@base") {
			baseLines = append(baseLines, l)
		}
	}
	if got := strings.Join(baseLines, "\n"); got != wantBase {
		t.Errorf("service base after the restore:\n%s\nwant:\n%s", got, wantBase)
	}
	if left := s.spoolLeft(); len(left) > 0 {
		t.Errorf("spooled upload left behind: %v", left)
	}
}
