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
	"strings"
	"time"

	"github.com/roster-registry/roster/client"
	"github.com/roster-registry/roster/migrate"
)

// listFlag is a flag that may be given more than once (and takes commas).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runImport runs "roster import nacos --from URL" and "roster import FILE".
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "nacos" {
		return importNacos(ctx, args[1:], stdout, stderr)
	}
	return importFile(ctx, args, stdout, stderr)
}

// progressMode is --progress: auto (a line that updates in place, on a terminal only),
// lines (one line per service, for logs), off.
func progressFunc(mode string, stderr io.Writer) (func(done, total int, s migrate.ServiceResult), func(), error) {
	switch mode {
	case "off":
		return nil, func() {}, nil
	case "lines":
		return func(done, total int, s migrate.ServiceResult) {
			fmt.Fprintln(stderr, "progress: "+migrate.ServiceLine(done, total, s))
		}, func() {}, nil
	case "auto":
		if !isTerminal(stderr) {
			return nil, func() {}, nil
		}
		return func(done, total int, s migrate.ServiceResult) {
				fmt.Fprintf(stderr, "\r\033[K%s", truncate(migrate.ServiceLine(done, total, s), 120))
			}, func() {
				fmt.Fprint(stderr, "\r\033[K")
			}, nil
	}
	return nil, nil, fmt.Errorf("--progress %q: want auto, lines or off", mode)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

type importFlags struct {
	namespaces listFlag
	dryRun     bool
	pace       time.Duration
	parallel   int
	progress   string
	timeout    time.Duration
}

func addImportFlags(sc *subcommand, f *importFlags) {
	sc.fs.Var(&f.namespaces, "namespace", "import only this namespace `id` (repeatable; default: all)")
	sc.fs.BoolVar(&f.dryRun, "dry-run", false, "read both sides and print what would be written; write nothing")
	sc.fs.DurationVar(&f.pace, "pace", 0, "pause this `duration` between services, to spare a busy source")
	sc.fs.IntVar(&f.parallel, "parallel", 4, "import this `many` services at once")
	sc.fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: `auto` (on a terminal), lines, off")
	sc.fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, "bound of each request")
}

func importNacos(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommandLogin("import nacos",
		"Copy namespaces, services, clusters and persistent instances from a running Nacos (or any server of its protocol) into Roster.",
		"roster-username", "roster-password", stderr)
	from := sc.fs.String("from", "", "source `URL`, e.g. http://nacos:8848")
	user := sc.fs.String("username", os.Getenv("NACOS_USERNAME"), "log in to the source as this `user` (env NACOS_USERNAME)")
	pass := sc.fs.String("password", os.Getenv("NACOS_PASSWORD"), "the source user's `password` (env NACOS_PASSWORD)")
	var groups listFlag
	sc.fs.Var(&groups, "group", "`group` to list on a source with neither a catalog nor /service/names (repeatable; default DEFAULT_GROUP)")
	var f importFlags
	addImportFlags(sc, &f)
	if code, ok := sc.parse(args, stderr); !ok {
		return code
	}
	if code, ok := sc.require(stderr, "from"); !ok {
		return code
	}
	if f.parallel < 1 {
		return sc.usageError(stderr, "--parallel must be at least 1")
	}
	progress, clear, err := progressFunc(f.progress, stderr)
	if err != nil {
		return sc.usageError(stderr, err.Error())
	}
	src, err := migrate.NewSource(*from, f.timeout)
	if err != nil {
		return sc.usageError(stderr, err.Error())
	}
	if len(groups) > 0 {
		src.Groups = groups
	}
	if *user != "" {
		if err := src.Login(ctx, *user, *pass); err != nil {
			return fail(stderr, fmt.Errorf("log in to the source as %s: %w", *user, err))
		}
	}
	return runImportFrom(ctx, sc, src, f, progress, clear, stdout, stderr)
}

func importFile(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("import", "Load an export file (roster export FILE) into Roster; 'roster import nacos -h' imports from a running Nacos.", stderr)
	sc.args = " FILE"
	var f importFlags
	addImportFlags(sc, &f)
	file, rest, code, ok := fileArg(sc, args, stderr)
	if !ok {
		return code
	}
	if code, ok := sc.parse(rest, stderr); !ok {
		return code
	}
	progress, clear, err := progressFunc(f.progress, stderr)
	if err != nil {
		return sc.usageError(stderr, err.Error())
	}
	in, err := os.Open(file)
	if err != nil {
		return fail(stderr, err)
	}
	d, err := migrate.ReadDump(in)
	in.Close()
	if err != nil {
		return fail(stderr, fmt.Errorf("%s: %w", file, err))
	}
	return runImportFrom(ctx, sc, migrate.NewDumpReader(d), f, progress, clear, stdout, stderr)
}

// fileArg takes the FILE operand, which may come before or after the flags.
func fileArg(sc *subcommand, args []string, stderr io.Writer) (file string, rest []string, code int, ok bool) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:], 0, true
	}
	if err := sc.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", nil, exitOK, false
		}
		return "", nil, exitUsage, false
	}
	if sc.fs.NArg() == 0 {
		return "", nil, sc.usageError(stderr, "FILE is required"), false
	}
	rest = append([]string{}, sc.fs.Args()[1:]...)
	return sc.fs.Arg(0), rest, 0, true
}

func runImportFrom(ctx context.Context, sc *subcommand, r migrate.Reader, f importFlags,
	progress func(int, int, migrate.ServiceResult), clear func(), stdout, stderr io.Writer) int {
	c, err := sc.client()
	if err != nil {
		return fail(stderr, err)
	}
	t, err := migrate.NewTarget(c, c.Token(), f.timeout)
	if err != nil {
		return sc.usageError(stderr, "--addr: "+err.Error())
	}
	rep, err := migrate.Import(ctx, r, t, migrate.Options{Namespaces: f.namespaces, DryRun: f.dryRun, Pace: f.pace,
		Parallel: f.parallel, Progress: progress})
	clear()
	if err != nil && rep == nil {
		return fail(stderr, err)
	}
	if err != nil {
		fmt.Fprintln(stderr, "roster: interrupted: "+err.Error()+"; run the same command again to complete the import")
	}
	if sc.json() {
		if werr := writeJSON(stdout, rep); werr != nil {
			return fail(stderr, werr)
		}
	} else if werr := printReport(stdout, rep); werr != nil {
		return fail(stderr, werr)
	}
	if err != nil || rep.Failed() {
		for _, s := range rep.Services {
			if s.Error != "" {
				fmt.Fprintf(stderr, "roster: %s: %s\n", s.Service, s.Error)
			}
		}
		for _, n := range rep.Namespaces {
			if n.Error != "" {
				fmt.Fprintf(stderr, "roster: namespace %s: %s\n", n.ID, n.Error)
			}
		}
		return exitError
	}
	return exitOK
}

// printReport prints the summary: namespaces, services (with the plan in a dry run),
// totals and notes.
func printReport(w io.Writer, rep *migrate.Report) error {
	if rep.DryRun {
		fmt.Fprintln(w, "Dry run: nothing was written.")
	}
	rows := [][]string{{"NAMESPACE", "NAME", "ACTION"}}
	for _, n := range rep.Namespaces {
		rows = append(rows, []string{n.ID, n.Name, n.Action})
	}
	if err := table(w, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = [][]string{{"SERVICE", "KIND", "ACTION", "WRITES", "CLUSTERS", "PERSISTENT", "EPHEMERAL (NOT COPIED)"}}
	for _, s := range rep.Services {
		rows = append(rows, []string{s.Service, dash(s.Kind), s.Action, strconv.Itoa(s.Writes), strconv.Itoa(s.Clusters),
			strconv.Itoa(s.Instances), strconv.Itoa(s.EphemeralInstances)})
	}
	if err := table(w, rows); err != nil {
		return err
	}
	if rep.DryRun {
		for _, s := range rep.Services {
			for _, p := range s.Plan {
				fmt.Fprintf(w, "plan: %s: %s\n", s.Service, p)
			}
		}
	}
	t := rep.Totals
	fmt.Fprintf(w, "\nservices: %d (%d created, %d updated, %d unchanged, %d failed); writes: %d; persistent instances: %d; ephemeral instances not copied: %d\n",
		t.Services, t.Created, t.Updated, t.Unchanged, t.Failed, t.Writes, t.PersistentCopied, t.EphemeralNotCopied)
	for _, n := range rep.Notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

// runExport runs "roster export FILE": Roster's namespaces, services, clusters and
// persistent instances as versioned JSON ("-" is stdout).
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sc := newSubcommand("export", "Write Roster's namespaces, services, clusters and persistent instances to FILE as JSON ('-': stdout).", stderr)
	sc.args = " FILE"
	var namespaces listFlag
	sc.fs.Var(&namespaces, "namespace", "export only this namespace `id` (repeatable; default: all)")
	timeout := sc.fs.Duration("timeout", client.DefaultTimeout, "bound of each request")
	file, rest, code, ok := fileArg(sc, args, stderr)
	if !ok {
		return code
	}
	if code, ok := sc.parse(rest, stderr); !ok {
		return code
	}
	c, err := sc.client()
	if err != nil {
		return fail(stderr, err)
	}
	src, err := migrate.NewSource(c.Addr(), *timeout)
	if err != nil {
		return sc.usageError(stderr, "--addr: "+err.Error())
	}
	src.SetToken(c.Token())
	d, err := migrate.Export(ctx, src, namespaces, nil)
	if err != nil {
		return fail(stderr, err)
	}
	if file == "-" {
		if err := migrate.WriteDump(stdout, d); err != nil {
			return fail(stderr, err)
		}
		return exitOK
	}
	// Written beside the target and renamed, so a failed export leaves no half file.
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return fail(stderr, err)
	}
	if err := migrate.WriteDump(tmp, d); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fail(stderr, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fail(stderr, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		os.Remove(tmp.Name())
		return fail(stderr, err)
	}
	n := 0
	for _, s := range d.Services {
		n += len(s.Instances)
	}
	fmt.Fprintf(stderr, "exported %d namespaces, %d services, %d persistent instances to %s\n", len(d.Namespaces), len(d.Services), n, file)
	return exitOK
}
