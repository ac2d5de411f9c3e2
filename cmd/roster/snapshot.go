package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/persistence"
)

const snapshotSynopsis = `  save FILE      download a snapshot of all persistent state from the leader (--addr)
  inspect FILE   verify a snapshot file and print its header
  restore FILE   replace all persistent state with a snapshot: on a running cluster
                 (--addr), or into the data dir of a node that is not running (--data-dir)
`

// runSnapshot runs "roster snapshot save|inspect|restore".
func runSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return group("snapshot", snapshotSynopsis, args, stdout, stderr, map[string]func([]string) int{
		"save":    func(a []string) int { return snapshotSave(ctx, a, stdout, stderr) },
		"inspect": func(a []string) int { return snapshotInspect(a, stdout, stderr) },
		"restore": func(a []string) int { return snapshotRestore(ctx, a, stdout, stderr) },
	})
}

// newFileCommand is a subcommand taking one FILE argument, with --addr when it talks to
// a server and -o always.
func newFileCommand(name, short string, withAddr bool, stderr io.Writer) *subcommand {
	if withAddr {
		sc := newSubcommand(name, short, stderr)
		sc.args = " FILE"
		return sc
	}
	sc := &subcommand{name: name, short: short, args: " FILE"}
	sc.fs = flag.NewFlagSet("roster "+name, flag.ContinueOnError)
	sc.fs.SetOutput(stderr)
	sc.fs.StringVar(&sc.cf.output, "o", "table", "output `format`: table or json")
	sc.fs.Usage = func() {
		fmt.Fprintf(sc.fs.Output(), "Usage: roster %s [flags]%s\n\n%s\n\nFlags:\n", sc.name, sc.args, sc.short)
		sc.fs.PrintDefaults()
	}
	return sc
}

// parseFile parses flags before and after the one FILE argument.
func (sc *subcommand) parseFile(args []string, stderr io.Writer) (file string, code int, ok bool) {
	if err := sc.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", exitOK, false
		}
		return "", exitUsage, false
	}
	if sc.fs.NArg() == 0 {
		return "", sc.usageError(stderr, "FILE is required"), false
	}
	file = sc.fs.Arg(0)
	if err := sc.fs.Parse(sc.fs.Args()[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", exitOK, false
		}
		return "", exitUsage, false
	}
	if sc.fs.NArg() > 0 {
		return "", sc.usageError(stderr, fmt.Sprintf("unexpected argument %q", sc.fs.Arg(0))), false
	}
	if sc.cf.output != "table" && sc.cf.output != "json" {
		return "", sc.usageError(stderr, fmt.Sprintf("-o %q: want table or json", sc.cf.output)), false
	}
	if file == "" {
		return "", sc.usageError(stderr, "FILE is required"), false
	}
	return file, exitOK, true
}

// snapshotFile is a verified snapshot file as save, inspect and restore print it.
type snapshotFile struct {
	File string `json:"file"`
	persistence.FileInfo
}

func snapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newFileCommand("snapshot save", "Download a consistent snapshot of all persistent services and instances from the\n"+
		"leader into FILE. It is written to a temporary file beside FILE, verified in full\n"+
		"(checksum, records, counts), synced and only then renamed to FILE. Ephemeral\n"+
		"instances are not part of a snapshot.", true, stderr)
	file, code, ok := sc.parseFile(args, stderr)
	if !ok {
		return code
	}
	c, err := sc.client()
	if err != nil {
		return sc.usageError(stderr, "--addr: "+err.Error())
	}
	info, err := saveSnapshot(ctx, c, file, newProgress(stderr, "saving snapshot"))
	if err != nil {
		return fail(stderr, fmt.Errorf("snapshot save: %w", err))
	}
	if code, done := sc.printJSON(stdout, stderr, snapshotFile{File: file, FileInfo: info}); done {
		return code
	}
	fmt.Fprintf(stdout, "saved snapshot at index %d: %d services, %d instances, %d bytes to %s\n",
		info.Index, info.Services, info.Instances, info.Size, file)
	return exitOK
}

// saveSnapshot downloads into a temporary file beside path, syncs and verifies it, and
// renames it into place (then syncs the directory). A failure leaves path untouched and
// no temporary file behind.
func saveSnapshot(ctx context.Context, c *client.Client, path string, p *progress) (info persistence.FileInfo, err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return info, err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	_, err = c.SaveSnapshot(ctx, io.MultiWriter(tmp, p), func(h client.SnapshotHeader) {
		p.describe(fmt.Sprintf("index %d, %d services, %d instances", h.Index, h.Services, h.Instances))
	})
	p.finish()
	if err != nil {
		return info, err
	}
	if err := tmp.Sync(); err != nil {
		return info, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return info, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	// Verify what is on disk, not what went by: the file must pass before it gets the
	// name an operator will restore from.
	info, err = persistence.VerifyFile(tmp.Name())
	if err != nil {
		return info, fmt.Errorf("the server's snapshot did not verify (%v); %s was not written", err, path)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return info, err
	}
	done = true
	if err := syncDir(dir); err != nil {
		return info, fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return info, nil
}

func snapshotInspect(args []string, stdout, stderr io.Writer) int {
	sc := newFileCommand("snapshot inspect", "Verify a snapshot file in full (magic, format version, every record, counts and\n"+
		"the SHA-256 that ends it) and print its header.", false, stderr)
	file, code, ok := sc.parseFile(args, stderr)
	if !ok {
		return code
	}
	info, err := persistence.VerifyFile(file)
	if err != nil {
		return fail(stderr, fmt.Errorf("snapshot inspect: %w", err))
	}
	if code, done := sc.printJSON(stdout, stderr, snapshotFile{File: file, FileInfo: info}); done {
		return code
	}
	if err := table(stdout, describeRows(file, info)); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func describeRows(file string, info persistence.FileInfo) [][]string {
	return [][]string{
		{"FILE:", file},
		{"FORMAT VERSION:", strconv.FormatUint(uint64(info.FormatVersion), 10)},
		{"INDEX:", strconv.FormatUint(info.Index, 10)},
		{"TERM:", strconv.FormatUint(info.Term, 10)},
		{"CREATED:", info.Created.UTC().Format(time.RFC3339Nano)},
		{"NODE ID:", dash(info.NodeID)},
		{"NAMESPACES:", strconv.Itoa(info.Namespaces)},
		{"SERVICES:", strconv.Itoa(info.Services)},
		{"INSTANCES:", strconv.Itoa(info.Instances)},
		{"SIZE:", fmt.Sprintf("%d bytes (%s)", info.Size, humanBytes(info.Size))},
		{"SHA256:", info.SHA256},
	}
}

func snapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newFileCommand("snapshot restore", "Replace all persistent services and instances with the snapshot in FILE.\n\n"+
		"With --addr (the default), the running cluster's leader verifies the whole upload\n"+
		"before changing anything and installs it through Raft on every member; the command\n"+
		"returns once the restore is durable. Ephemeral instances are not touched.\n\n"+
		"With --data-dir, it builds the data dir of a node that is not running (offline\n"+
		"restore for disaster recovery): the dir must be missing or empty. Then start the node\n"+
		"with the same --data-dir, --node-id and --raft-addr.", true, stderr)
	dataDir := sc.fs.String("data-dir", "", "offline: build this (missing or empty) data `dir` instead of contacting a server")
	nodeIDFlag := sc.fs.String("node-id", "", "offline: the `id` of the node that will run on --data-dir (default: generated, kept in DIR/node-id)")
	raftAddr := sc.fs.String("raft-addr", "127.0.0.1:7848", "offline: the Raft `address` that node will use (its --raft-addr)")
	file, code, ok := sc.parseFile(args, stderr)
	if !ok {
		return code
	}
	set := map[string]bool{}
	sc.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *dataDir == "" {
		for _, name := range []string{"node-id", "raft-addr"} {
			if set[name] {
				return sc.usageError(stderr, "--"+name+" applies only to an offline restore (--data-dir)")
			}
		}
	} else if set["addr"] {
		return sc.usageError(stderr, "give --addr (a running cluster) or --data-dir (a node that is not running), not both")
	}

	// Refuse a bad file here, before anything is sent or written.
	info, err := persistence.VerifyFile(file)
	if err != nil {
		return fail(stderr, fmt.Errorf("snapshot restore: %w; nothing was changed", err))
	}

	if *dataDir != "" {
		res, err := offlineRestore(file, info, *dataDir, *nodeIDFlag, *raftAddr)
		if err != nil {
			return fail(stderr, fmt.Errorf("snapshot restore: %w", err))
		}
		if code, done := sc.printJSON(stdout, stderr, res); done {
			return code
		}
		fmt.Fprintf(stdout, "restored snapshot at index %d (%d services, %d instances) into %s for node %s; start it with:\n"+
			"  roster server --data-dir %s --node-id %s --raft-addr %s\n",
			info.Index, info.Services, info.Instances, res.DataDir, res.NodeID, res.DataDir, res.NodeID, res.RaftAddr)
		return exitOK
	}

	c, err := sc.client()
	if err != nil {
		return sc.usageError(stderr, "--addr: "+err.Error())
	}
	f, err := os.Open(file)
	if err != nil {
		return fail(stderr, fmt.Errorf("snapshot restore: %w", err))
	}
	defer f.Close()
	p := newProgress(stderr, "uploading snapshot")
	p.total = info.Size
	res, err := c.RestoreSnapshot(ctx, io.TeeReader(f, p), info.Size)
	p.finish()
	if err != nil {
		return fail(stderr, fmt.Errorf("snapshot restore: %w", err))
	}
	if code, done := sc.printJSON(stdout, stderr, res); done {
		return code
	}
	fmt.Fprintf(stdout, "restored snapshot at index %d: %d services, %d instances (Raft index %d) from %s\n",
		res.Index, res.Services, res.Instances, res.RaftIndex, file)
	return exitOK
}

// progress reports a transfer on a terminal, at most a few times a second, on one line
// it rewrites; it prints nothing when its writer is not a terminal.
type progress struct {
	w     io.Writer // nil: quiet
	verb  string
	about string
	total int64 // 0: unknown
	n     int64
	last  time.Time
	shown bool
}

func newProgress(stderr io.Writer, verb string) *progress {
	p := &progress{verb: verb}
	if isTerminal(stderr) {
		p.w = stderr
	}
	return p
}

// isTerminal reports whether w is a character device such as a terminal (checked
// through the file's mode, without a terminal library).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) describe(s string) { p.about = s }

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.w != nil && time.Since(p.last) >= 200*time.Millisecond {
		p.last = time.Now()
		p.print()
	}
	return len(b), nil
}

func (p *progress) print() {
	line := fmt.Sprintf("%s: %s", p.verb, humanBytes(p.n))
	if p.total > 0 {
		line += fmt.Sprintf(" of %s (%d%%)", humanBytes(p.total), p.n*100/p.total)
	}
	if p.about != "" {
		line += " (" + p.about + ")"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

// finish clears the progress line.
func (p *progress) finish() {
	if p.w != nil && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
