package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenSnapshot is the version-1 file the persistence tests keep (index 7, term 3,
// 3 namespaces, 3 services, 7 instances).
var goldenSnapshot = filepath.Join("..", "..", "testdata", "snapshot", "v1.snap")

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func corruptCopy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(goldenSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0x01
	p := filepath.Join(t.TempDir(), "bad.snap")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSnapshotInspect(t *testing.T) {
	code, out, errs := runCLI(t, "snapshot", "inspect", goldenSnapshot)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errs)
	}
	for _, want := range []string{"FORMAT VERSION:  1", "INDEX:           7", "TERM:            3", "NODE ID:         golden",
		"NAMESPACES:      3", "SERVICES:        3", "INSTANCES:       7", "SHA256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, "snapshot", "inspect", "-o", "json", goldenSnapshot)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("inspect -o json: exit %d, %v: %s", code, err, out)
	}
	for _, k := range []string{"formatVersion", "index", "term", "created", "services", "instances", "sha256", "namespaces", "nodeId", "size"} {
		if _, ok := got[k]; !ok {
			t.Errorf("inspect -o json lacks %q: %s", k, out)
		}
	}
	if sha, _ := got["sha256"].(string); len(sha) != 64 {
		t.Errorf("sha256 = %q", sha)
	}
	// Flags may follow the file too.
	if code, out2, _ := runCLI(t, "snapshot", "inspect", goldenSnapshot, "-o", "json"); code != 0 || out2 != out {
		t.Errorf("inspect FILE -o json: exit %d\n%s", code, out2)
	}

	bad := corruptCopy(t)
	code, out, errs = runCLI(t, "snapshot", "inspect", bad)
	if code != 1 || out != "" || !strings.Contains(errs, bad) || !strings.Contains(errs, "checksum mismatch") || strings.Count(errs, "\n") != 1 {
		t.Errorf("inspect of a corrupt file: exit %d, stdout %q, stderr %q; want 1 and one line naming the file and the problem", code, out, errs)
	}
}

func TestSnapshotUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "save"}, "FILE is required"},
		{[]string{"snapshot", "inspect", "a.snap", "b.snap"}, `unexpected argument "b.snap"`},
		{[]string{"snapshot", "inspect", "-o", "yaml", "a.snap"}, "want table or json"},
		{[]string{"snapshot", "restore", "a.snap", "--node-id", "n1"}, "--node-id applies only to an offline restore"},
		{[]string{"snapshot", "restore", "a.snap", "--data-dir", "d", "--addr", "http://127.0.0.1:1"}, "not both"},
		{[]string{"snapshot", "frobnicate"}, `unknown command "frobnicate"`},
	} {
		code, _, errs := runCLI(t, tt.args...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
	}
}

// TestSnapshotSaveVerifiesBeforeRenaming serves a good and a corrupt stream from a fake
// server: the good one lands at FILE, the corrupt one is refused, FILE is left as it
// was, and no temporary file stays behind either way.
func TestSnapshotSaveVerifiesBeforeRenaming(t *testing.T) {
	good, err := os.ReadFile(goldenSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	serve := good
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/roster/v1/snapshot" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Roster-Snapshot-Index", "7")
		_, _ = w.Write(serve)
	}))
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")
	code, out, errs := runCLI(t, "snapshot", "save", file, "--addr", srv.URL)
	if code != 0 || errs != "" {
		t.Fatalf("save: exit %d, stderr %q", code, errs)
	}
	if want := "saved snapshot at index 7: 3 services, 7 instances, "; !strings.HasPrefix(out, want) || !strings.HasSuffix(out, file+"\n") {
		t.Errorf("save printed %q", out)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("saved file differs from what was served (%v)", err)
	}

	serve = good[:len(good)-5]
	code, _, errs = runCLI(t, "snapshot", "save", file, "--addr", srv.URL)
	if code != 1 || !strings.Contains(errs, "did not verify") || !strings.Contains(errs, "truncated") {
		t.Errorf("save of a truncated stream: exit %d, stderr %q", code, errs)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, good) {
		t.Error("a failed save changed the existing file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left in %s: %v", dir, entries)
	}
}

func TestSnapshotOfflineRestoreRefusals(t *testing.T) {
	// A corrupt file creates nothing.
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errs := runCLI(t, "snapshot", "restore", corruptCopy(t), "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "checksum mismatch") || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("offline restore of a corrupt file: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir created for a corrupt file: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}

	// A good one builds the dir; a second run refuses the now non-empty dir.
	code, out, errs := runCLI(t, "snapshot", "restore", goldenSnapshot, "--data-dir", dir, "--node-id", "n7", "--raft-addr", "127.0.0.1:7999")
	if code != 0 {
		t.Fatalf("offline restore: exit %d, %s", code, errs)
	}
	if !strings.Contains(out, "--node-id n7 --raft-addr 127.0.0.1:7999") {
		t.Errorf("offline restore printed %q", out)
	}
	for _, p := range []string{"fsm.db", "node-id", filepath.Join("raft", "raft.db"), filepath.Join("raft", "snapshots")} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("offline restore did not write %s: %v", p, err)
		}
	}
	if id, _ := os.ReadFile(filepath.Join(dir, "node-id")); strings.TrimSpace(string(id)) != "n7" {
		t.Errorf("node-id = %q", id)
	}
	code, _, errs = runCLI(t, "snapshot", "restore", goldenSnapshot, "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "already holds data") {
		t.Errorf("offline restore into a used dir: exit %d, %q", code, errs)
	}

	// An existing empty dir is filled in place.
	empty := t.TempDir()
	if code, _, errs := runCLI(t, "snapshot", "restore", goldenSnapshot, "--data-dir", empty, "-o", "json"); code != 0 {
		t.Fatalf("offline restore into an empty dir: exit %d, %s", code, errs)
	}
	entries, _ := os.ReadDir(empty)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "fsm.db,node-id,raft" {
		t.Errorf("empty dir now holds %v", names)
	}
}

func TestProgressIsQuietOffATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "saving")
	_, _ = p.Write(make([]byte, 1<<20))
	p.finish()
	if buf.Len() != 0 || isTerminal(&buf) {
		t.Errorf("progress wrote %q to a buffer", buf.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file was taken for a terminal")
	}
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
