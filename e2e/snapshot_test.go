package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/persistence"
)

// snapNamespaces and snapGroups are where the snapshot tests put services; listing
// reads them all back.
var (
	snapNamespaces = []string{"public", "dev"}
	snapGroups     = []string{"DEFAULT_GROUP", "G2"}
)

// fillForSnapshot registers a mix of persistent services and instances, and one
// ephemeral instance (which snapshots leave out).
func fillForSnapshot(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := ctxT(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CreateService(ctx, client.ServiceRef{Name: "billing"}, client.ServiceOptions{
		ProtectThreshold: 0.3, Metadata: map[string]string{"owner": "team-b"},
		Selector: &client.Selector{Type: "label", Expression: "CONSUMER.label.zone = PROVIDER.label.zone"},
	}))
	in := persistentInstance("127.0.0.71", 9090)
	in.Weight, in.ClusterName, in.Metadata = 2.5, "c1", map[string]string{"zone": "a", "rack": "r1"}
	must(c.RegisterInstance(ctx, client.ServiceRef{Name: "billing"}, in))
	in = persistentInstance("127.0.0.72", 9090)
	in.Enabled = false
	must(c.RegisterInstance(ctx, client.ServiceRef{Name: "billing"}, in))
	must(c.RegisterInstance(ctx, client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.73", 8080)))
	in = persistentInstance("127.0.0.74", 8080)
	in.Metadata = map[string]string{"env": "dev"}
	must(c.RegisterInstance(ctx, client.ServiceRef{Namespace: "dev", Name: "orders"}, in))
	must(c.RegisterInstance(ctx, client.ServiceRef{Namespace: "dev", Group: "G2", Name: "inventory"}, persistentInstance("127.0.0.75", 7000)))
	eph := client.NewInstance("127.0.0.79", 1)
	must(c.RegisterInstance(ctx, client.ServiceRef{Name: "sessions"}, eph))
}

// persistentInstance is client.NewInstance (which is ephemeral) made persistent.
func persistentInstance(ip string, port int) client.Instance {
	in := client.NewInstance(ip, port)
	in.Ephemeral = false
	return in
}

// listing renders every persistent service and instance a server answers in
// snapNamespaces × snapGroups, every field, sorted. Ephemeral instances are left out.
func listing(t *testing.T, c *client.Client) string {
	t.Helper()
	ctx := ctxT(t)
	var lines []string
	for _, ns := range snapNamespaces {
		for _, g := range snapGroups {
			list, err := c.ListServices(ctx, client.ServiceQuery{Namespace: ns, Group: g, PageSize: 1000})
			if err != nil {
				t.Fatalf("list services %s/%s: %v", ns, g, err)
			}
			for _, name := range list.Names {
				ref := client.ServiceRef{Namespace: ns, Group: g, Name: name}
				info, err := c.ListInstances(ctx, ref, client.ListOptions{})
				if err != nil {
					t.Fatalf("list %s/%s@@%s: %v", ns, g, name, err)
				}
				persistent := false
				for _, h := range info.Hosts {
					if h.Ephemeral {
						continue
					}
					persistent = true
					b, _ := json.Marshal(h)
					lines = append(lines, fmt.Sprintf("%s/%s@@%s instance %s", ns, g, name, b))
				}
				d, err := c.GetService(ctx, ref)
				if err != nil {
					t.Fatalf("get %s/%s@@%s: %v", ns, g, name, err)
				}
				if persistent || len(info.Hosts) == 0 {
					b, _ := json.Marshal(d)
					lines = append(lines, fmt.Sprintf("%s/%s@@%s service %s", ns, g, name, b))
				}
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var savedLine = regexp.MustCompile(`^saved snapshot at index (\d+): (\d+) services, (\d+) instances, (\d+) bytes to (.+)\n$`)

// save runs `roster snapshot save` and returns the header index it printed.
func save(t *testing.T, s *Server, file string) uint64 {
	t.Helper()
	code, out, errs := roster(t, "snapshot", "save", file, "--addr", s.URL)
	if code != 0 {
		t.Fatalf("snapshot save: exit %d: %s", code, errs)
	}
	if errs != "" {
		t.Errorf("snapshot save wrote to stderr off a terminal: %q", errs)
	}
	m := savedLine.FindStringSubmatch(out)
	if m == nil || m[5] != file {
		t.Fatalf("snapshot save printed %q", out)
	}
	idx, _ := strconv.ParseUint(m[1], 10, 64)
	return idx
}

type inspected struct {
	File          string    `json:"file"`
	FormatVersion uint32    `json:"formatVersion"`
	Index         uint64    `json:"index"`
	Term          uint64    `json:"term"`
	Created       time.Time `json:"created"`
	NodeID        string    `json:"nodeId"`
	Namespaces    int       `json:"namespaces"`
	Services      int       `json:"services"`
	Instances     int       `json:"instances"`
	Size          int64     `json:"size"`
	SHA256        string    `json:"sha256"`
}

func inspect(t *testing.T, file string) inspected {
	t.Helper()
	code, out, errs := roster(t, "snapshot", "inspect", file, "-o", "json")
	if code != 0 {
		t.Fatalf("snapshot inspect: exit %d: %s", code, errs)
	}
	var in inspected
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect -o json: %v: %s", err, out)
	}
	return in
}

// TestSnapshotSaveInspectRestore backs up one node with the CLI and restores it into
// another that had state of its own: the second then serves the first one's
// persistent services and instances field for field, across a restart, and takes new
// writes that survive the next restart.
func TestSnapshotSaveInspectRestore(t *testing.T) {
	s1 := StartServer(t)
	c1 := rosterClient(t, s1)
	fillForSnapshot(t, c1)
	want := listing(t, c1)

	file := filepath.Join(t.TempDir(), "backup.snap")
	index := save(t, s1, file)
	in := inspect(t, file)
	fi, _ := os.Stat(file)
	if in.FormatVersion != persistence.SnapshotVersion || in.Index != index || in.Term == 0 || in.NodeID != "n1" || in.Namespaces != 2 ||
		in.Services != 4 || in.Instances != 5 || in.Size != fi.Size() || len(in.SHA256) != 64 || time.Since(in.Created) > time.Minute {
		t.Errorf("inspect = %+v", in)
	}
	code, table, _ := roster(t, "snapshot", "inspect", file)
	if code != 0 || !strings.Contains(table, "INSTANCES:       5") || !strings.Contains(table, in.SHA256) {
		t.Errorf("inspect table:\n%s", table)
	}

	s2 := StartServer(t)
	c2 := rosterClient(t, s2)
	if err := c2.RegisterInstance(ctxT(t), client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.90", 1)); err != nil {
		t.Fatal(err)
	}
	if err := c2.RegisterInstance(ctxT(t), client.ServiceRef{Name: "stale"}, persistentInstance("127.0.0.91", 1)); err != nil {
		t.Fatal(err)
	}
	code, out, errs := roster(t, "snapshot", "restore", file, "--addr", s2.URL)
	if code != 0 {
		t.Fatalf("snapshot restore: exit %d: %s", code, errs)
	}
	if wantOut := fmt.Sprintf("restored snapshot at index %d: 4 services, 5 instances (Raft index ", index); !strings.HasPrefix(out, wantOut) || errs != "" {
		t.Errorf("snapshot restore printed %q, stderr %q", out, errs)
	}
	if got := listing(t, c2); got != want {
		t.Fatalf("restored node serves:\n%s\nwant:\n%s", got, want)
	}

	s2.Restart()
	if got := listing(t, c2); got != want {
		t.Fatalf("after a restart the restored node serves:\n%s\nwant:\n%s", got, want)
	}
	if err := c2.RegisterInstance(ctxT(t), client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.76", 8080)); err != nil {
		t.Fatal(err)
	}
	after := listing(t, c2)
	s2.Restart()
	if got := listing(t, c2); got != after || !strings.Contains(got, "127.0.0.76") {
		t.Fatalf("a write after the restore did not survive a restart:\n%s", got)
	}
}

// corruptions are the bad snapshot files: each name, how to make it from a good file,
// and what the refusal says.
var corruptions = []struct {
	name string
	make func(good []byte) []byte
	says string
}{
	{"truncated", func(g []byte) []byte { return g[:len(g)*2/3] }, "snapshot truncated"},
	{"flipped byte", func(g []byte) []byte {
		b := bytes.Clone(g)
		b[len(b)-32-5] ^= 0x08 // inside the last record
		return b
	}, "checksum mismatch"},
	{"wrong magic", func(g []byte) []byte { return append([]byte("ETCDSNAP"), g[8:]...) }, "bad magic"},
	{"unknown format version", func(g []byte) []byte {
		b := bytes.Clone(g)
		binary.BigEndian.PutUint32(b[8:12], persistence.SnapshotVersion+1)
		return b
	}, fmt.Sprintf("unsupported format version %d", persistence.SnapshotVersion+1)},
	{"empty", func([]byte) []byte { return nil }, "truncated"},
}

// TestSnapshotBadInputRefused feeds every kind of bad snapshot to the CLI and straight
// to the HTTP endpoint, and one over the server's size limit: each is refused with a
// message naming the problem and a non-zero exit (or a 4xx), and the node's state is
// exactly what it was.
func TestSnapshotBadInputRefused(t *testing.T) {
	s := NewServer(t, "n1")
	s.Extra = []string{"--max-snapshot-size", "8KiB"}
	s.Start()
	c := rosterClient(t, s)
	fillForSnapshot(t, c)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.snap")
	save(t, s, good)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// A valid snapshot over the limit: the same node after more writes.
	ctx := ctxT(t)
	for i := range 60 {
		in := persistentInstance(fmt.Sprintf("127.0.1.%d", i+1), 80)
		in.Metadata = map[string]string{"pad": strings.Repeat("p", 100)}
		if err := c.RegisterInstance(ctx, client.ServiceRef{Name: "padding"}, in); err != nil {
			t.Fatal(err)
		}
	}
	big := filepath.Join(dir, "big.snap")
	save(t, s, big)
	before := listing(t, c)

	put := func(body []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPut, s.URL+"/roster/v1/snapshot", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if len(body) == 0 {
			req.Body = http.NoBody
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, cc := range corruptions {
		t.Run(cc.name, func(t *testing.T) {
			bad := filepath.Join(dir, strings.ReplaceAll(cc.name, " ", "-")+".snap")
			data := cc.make(goodBytes)
			if err := os.WriteFile(bad, data, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errs := roster(t, "snapshot", "inspect", bad)
			if code != 1 || out != "" || !strings.Contains(errs, bad) || !strings.Contains(errs, cc.says) {
				t.Errorf("inspect: exit %d, stdout %q, stderr %q; want 1 naming the file and %q", code, out, errs, cc.says)
			}
			code, _, errs = roster(t, "snapshot", "restore", bad, "--addr", s.URL)
			if code != 1 || !strings.Contains(errs, cc.says) || !strings.Contains(errs, "nothing was changed") || strings.Count(errs, "\n") != 1 {
				t.Errorf("restore: exit %d, stderr %q; want 1 and one line with %q", code, errs, cc.says)
			}
			// The server refuses it too, whoever sends it.
			status, body := put(data)
			wantText := cc.says
			if len(data) == 0 {
				wantText = "the upload is empty"
			}
			if status != http.StatusBadRequest || !strings.Contains(body, wantText) || !strings.Contains(body, "nothing was changed") {
				t.Errorf("PUT /roster/v1/snapshot = %d %q; want 400 with %q", status, body, wantText)
			}
			if after := listing(t, c); after != before {
				t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	t.Run("over the size limit", func(t *testing.T) {
		code, _, errs := roster(t, "snapshot", "restore", big, "--addr", s.URL)
		if code != 1 || !strings.Contains(errs, "413") || !strings.Contains(errs, "limit of 8192 bytes") {
			t.Errorf("restore over the limit: exit %d, stderr %q", code, errs)
		}
		if after := listing(t, c); after != before {
			t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	// And a good one still goes in.
	if code, _, errs := roster(t, "snapshot", "restore", good, "--addr", s.URL); code != 0 {
		t.Fatalf("good restore after the refusals: exit %d: %s", code, errs)
	}
}

// TestSnapshotOfflineRestore builds the data dir of a node that never ran from a
// snapshot file and starts the node on it: it serves the snapshot's state, takes new
// writes (whose Raft indexes continue past the snapshot's) and keeps them across a
// restart.
func TestSnapshotOfflineRestore(t *testing.T) {
	s1 := StartServer(t)
	c1 := rosterClient(t, s1)
	fillForSnapshot(t, c1)
	want := listing(t, c1)
	file := filepath.Join(t.TempDir(), "backup.snap")
	index := save(t, s1, file)
	s1.Stop()

	s2 := NewServer(t, "n2")
	code, out, errs := roster(t, "snapshot", "restore", file, "--data-dir", s2.DataDir, "--node-id", "n2", "--raft-addr", s2.RaftAddr)
	if code != 0 {
		t.Fatalf("offline restore: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, fmt.Sprintf("restored snapshot at index %d (4 services, 5 instances)", index)) {
		t.Errorf("offline restore printed %q", out)
	}
	s2.Start()
	c2 := rosterClient(t, s2)
	if got := listing(t, c2); got != want {
		t.Fatalf("node started on the restored dir serves:\n%s\nwant:\n%s", got, want)
	}
	if log := tail(s2.logPath, 400); !strings.Contains(log, "FSM is at or past the newest snapshot; skipping snapshot restore") {
		t.Errorf("the node did not start from fsm.db at the snapshot's index:\n%s", log)
	}
	st, err := c2.RaftState(ctxT(t))
	if err != nil || st.AppliedIndex <= index || len(st.Servers) != 1 || st.Servers[0].ID != "n2" {
		t.Errorf("raft state %+v, %v: want one voter n2, applied past %d", st, err, index)
	}
	if err := c2.RegisterInstance(ctxT(t), client.ServiceRef{Name: "orders"}, persistentInstance("127.0.0.77", 8080)); err != nil {
		t.Fatal(err)
	}
	after := listing(t, c2)
	if !strings.Contains(after, "127.0.0.77") {
		t.Fatalf("new write not served:\n%s", after)
	}
	s2.Restart()
	if got := listing(t, c2); got != after {
		t.Fatalf("after a restart:\n%s\nwant:\n%s", got, after)
	}

	// The running node's dir is refused.
	code, _, errs = roster(t, "snapshot", "restore", file, "--data-dir", s2.DataDir)
	if code != 1 || !strings.Contains(errs, "already holds data") {
		t.Errorf("offline restore into a running node's dir: exit %d, %q", code, errs)
	}
}

// copyDir copies a data dir (files and directories only).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func overwriteAt(t *testing.T, path string, at int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptDataFilesRefuseStart damages each file of a stopped node's data dir (the
// FSM's fsm.db, Raft's raft.db, the newest Raft snapshot) by truncation or a flipped
// byte: the server must exit non-zero within 5 s with a message naming the file, and
// never serve what is left (R9). The intact dir starts and serves everything.
func TestCorruptDataFilesRefuseStart(t *testing.T) {
	s := NewServer(t, "n1")
	s.Extra = []string{"--snapshot-threshold", "32", "--snapshot-interval", "100ms", "--trailing-logs", "16"}
	s.Start()
	c := rosterClient(t, s)
	ctx := ctxT(t)
	for i := range 80 {
		if err := c.RegisterInstance(ctx, client.ServiceRef{Name: "orders"}, persistentInstance(fmt.Sprintf("127.0.2.%d", i+1), 80)); err != nil {
			t.Fatal(err)
		}
	}
	var snapDir string
	eventually(t, 20*time.Second, func() error {
		entries, _ := os.ReadDir(filepath.Join(s.DataDir, "raft", "snapshots"))
		for _, e := range entries {
			if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
				snapDir = filepath.Join("raft", "snapshots", e.Name())
				return nil
			}
		}
		return fmt.Errorf("no automatic Raft snapshot yet in %s", filepath.Join(s.DataDir, "raft", "snapshots"))
	})
	want := listing(t, c)
	s.Stop()
	// raft's snapshot directories are named term-index-time: the newest sorts last.
	entries, _ := os.ReadDir(filepath.Join(s.DataDir, "raft", "snapshots"))
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	newest := entries[len(entries)-1].Name()
	snapDir = filepath.Join("raft", "snapshots", newest)

	page := int64(os.Getpagesize())
	cases := []struct {
		name   string
		file   string
		damage func(t *testing.T, path string)
	}{
		{"fsm.db truncated", "fsm.db", func(t *testing.T, p string) {
			if err := os.Truncate(p, 3*page); err != nil {
				t.Fatal(err)
			}
		}},
		{"fsm.db byte flipped in a record", "fsm.db", func(t *testing.T, p string) {
			// The record may also sit in pages bbolt freed (copy on write): flip the
			// same byte of every copy, the live one among them.
			b, _ := os.ReadFile(p)
			rec := []byte(`"ip":"127.0.2.80"`)
			n := 0
			for off := 0; ; {
				i := bytes.Index(b[off:], rec)
				if i < 0 {
					break
				}
				overwriteAt(t, p, int64(off+i), []byte{b[off+i] ^ 0x01})
				n++
				off += i + 1
			}
			if n == 0 {
				t.Fatal("no instance record found in fsm.db")
			}
		}},
		{"raft.db truncated", filepath.Join("raft", "raft.db"), func(t *testing.T, p string) {
			if err := os.Truncate(p, 3*page); err != nil {
				t.Fatal(err)
			}
		}},
		{"raft.db byte flipped in both meta pages", filepath.Join("raft", "raft.db"), func(t *testing.T, p string) {
			// One damaged meta page, bbolt replaces by the other (the transaction before);
			// raftnode refuses that only when it lost entries the FSM has applied (see
			// raftnode's tests). With both damaged nothing is left to fall back on.
			for _, at := range []int64{0, page} {
				b := make([]byte, 1)
				f, _ := os.Open(p)
				_, _ = f.ReadAt(b, at+40)
				f.Close()
				overwriteAt(t, p, at+40, []byte{b[0] ^ 0x01})
			}
		}},
		{"newest raft snapshot byte flipped", filepath.Join(snapDir, "state.bin"), func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			overwriteAt(t, p, int64(len(b)/2), []byte{b[len(b)/2] ^ 0x01})
		}},
		{"newest raft snapshot truncated", filepath.Join(snapDir, "state.bin"), func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	}
	bin, _ := binaries(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, s.DataDir, dir)
			path := filepath.Join(dir, tc.file)
			tc.damage(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "server", "--health-check-cidrs", "127.0.0.0/8",
				"--http-addr", "127.0.0.1:"+strconv.Itoa(freeHTTPPort(t)), "--raft-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
				"--data-dir", dir, "--node-id", "n1", "--log-level", "warn")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if ctx.Err() != nil {
				t.Fatalf("the server was still running after 30 s on a damaged %s:\n%s", tc.file, stderr.String())
			}
			if err == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("exit %v on a damaged %s, want non-zero:\n%s", err, tc.file, stderr.String())
			}
			if !strings.Contains(stderr.String(), path) {
				t.Errorf("stderr does not name %s:\n%s", path, stderr.String())
			}
			if took > 5*time.Second {
				t.Errorf("took %v to refuse, want within 5 s", took)
			}
			t.Logf("refused in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(lastLine(stderr.String())))
		})
	}
	// The intact dir serves everything.
	s.Start()
	if got := listing(t, c); got != want {
		t.Fatalf("intact dir serves:\n%s\nwant:\n%s", got, want)
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// TestSnapshotSaveUnderWriteLoad saves twice while writers register instances one at a
// time: each file must hold a prefix of every writer's sequence (a point in time of
// the registry), every write acknowledged before the save began and none sent after it
// ended, and its header must count what it holds. Each file is then restored into a
// second node, which serves exactly that.
func TestSnapshotSaveUnderWriteLoad(t *testing.T) {
	s := StartServer(t)
	c := rosterClient(t, s)
	type ack struct {
		seq        int
		start, end time.Time
	}
	const writers = 4
	acks := make([][]ack, writers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := c.RegisterInstance(context.Background(), client.ServiceRef{Name: "steady"},
					persistentInstance(fmt.Sprintf("127.1.%d.%d", w, seq+1), 80))
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				acks[w] = append(acks[w], ack{seq, start, time.Now()})
			}
		}()
	}
	type saved struct {
		file       string
		start, end time.Time
	}
	var files []saved
	for i := range 2 {
		time.Sleep(300 * time.Millisecond)
		f := saved{file: filepath.Join(t.TempDir(), fmt.Sprintf("load-%d.snap", i)), start: time.Now()}
		save(t, s, f.file)
		f.end = time.Now()
		files = append(files, f)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	s2 := StartServer(t)
	c2 := rosterClient(t, s2)
	for i, f := range files {
		hdr := inspect(t, f.file)
		if code, _, errs := roster(t, "snapshot", "restore", f.file, "--addr", s2.URL); code != 0 {
			t.Fatalf("restore %s: %s", f.file, errs)
		}
		info, err := c2.ListInstances(ctxT(t), client.ServiceRef{Name: "steady"}, client.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		present := map[string]bool{}
		for _, h := range info.Hosts {
			present[h.IP] = true
		}
		if len(present) != hdr.Instances {
			t.Errorf("file %d: header counts %d instances, restored node serves %d", i, hdr.Instances, len(present))
		}
		total := 0
		for w := range writers {
			k := 0 // length of the prefix of writer w in the file
			for k < len(acks[w]) && present[fmt.Sprintf("127.1.%d.%d", w, k+1)] {
				k++
			}
			total += k
			for _, a := range acks[w] {
				ip := fmt.Sprintf("127.1.%d.%d", w, a.seq+1)
				if a.seq >= k && present[ip] {
					t.Errorf("file %d: writer %d's write %d is in the file but its write %d is not: not a point in time", i, w, a.seq, k)
				}
				if a.end.Before(f.start) && !present[ip] {
					t.Errorf("file %d: writer %d's write %d, acknowledged before the save began, is missing", i, w, a.seq)
				}
				if a.start.After(f.end) && present[ip] {
					t.Errorf("file %d: writer %d's write %d, sent after the save ended, is in the file", i, w, a.seq)
				}
			}
		}
		if total != len(present) {
			t.Errorf("file %d: %d instances are not prefixes of the writers' sequences", i, len(present)-total)
		}
		t.Logf("file %d at index %d holds %d writes", i, hdr.Index, total)
	}
}
