// Command driver runs the compatibility matrix: every Nacos client program of
// compat/ against its own fresh `roster server`, as described in compat/README.md, and
// writes compat/RESULTS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var (
		rosterBin  = flag.String("roster", "", "roster binary (default: <repo>/bin/roster)")
		out        = flag.String("out", "", "RESULTS.md to write (default: <repo>/compat/RESULTS.md; with --only, none unless given)")
		only       = flag.String("only", "", "comma-separated client names to run (default: all)")
		parallel   = flag.Int("parallel", 3, "clients run at once")
		timeout    = flag.Duration("timeout", 150*time.Second, "longest run of one client")
		logDir     = flag.String("log-dir", "", "directory for client and server logs (default: a new temp dir)")
		authMode   = flag.String("auth", "both", "which matrices to run: off (servers without --auth), on (--auth, a user per client, the refused cell) or both")
		refusalCon = flag.Bool("refusal-concurrent", false, "auth matrix: run the program without credentials beside the scenario (it ends before the restart) instead of after the stop step")
		refusalWin = flag.Duration("refusal-window", defaultRefusalWindow, "auth matrix: how long the run without credentials may take to report its first step")
		list       = flag.Bool("list", false, "list the clients and exit")
		serverArgs stringList
	)
	flag.Var(&serverArgs, "server-arg", "one more `roster server` argument (repeatable)")
	flag.Parse()
	outGiven := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "out" {
			outGiven = true
		}
	})

	if *list {
		for _, c := range clients {
			fmt.Printf("%-22s %-10s %-45s %s/%s  %s\n", c.Name, c.Language, c.Version, c.Namespace, c.Group, strings.Join(c.Argv, " "))
		}
		return 0
	}
	modes, err := authModes(*authMode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 2
	}
	if *parallel < 1 {
		fmt.Fprintln(os.Stderr, "driver: --parallel must be at least 1")
		return 2
	}

	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 2
	}
	selected, err := selectClients(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 2
	}
	if *rosterBin == "" {
		*rosterBin = filepath.Join(root, "bin", "roster")
	}
	bin, err := filepath.Abs(*rosterBin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 2
	}
	if _, err := os.Stat(bin); err != nil {
		fmt.Fprintf(os.Stderr, "driver: roster binary %s: %v (run make build)\n", bin, err)
		return 2
	}
	outPath := ""
	switch {
	case outGiven:
		if outPath, err = filepath.Abs(*out); err != nil {
			fmt.Fprintln(os.Stderr, "driver:", err)
			return 2
		}
	case *only == "":
		outPath = filepath.Join(root, "compat", "RESULTS.md")
	}
	if *logDir == "" {
		if *logDir, err = os.MkdirTemp("", "roster-compat-logs-"); err != nil {
			fmt.Fprintln(os.Stderr, "driver:", err)
			return 2
		}
	} else if err := os.MkdirAll(*logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 2
	}
	version := rosterVersion(bin)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	runID := strconv.FormatInt(time.Now().UnixMilli()%100000000, 36)
	pp := newPorts()
	var runners []*runner
	for _, auth := range modes {
		runners = append(runners, &runner{
			root: root, roster: bin, logDir: *logDir, timeout: *timeout, ports: pp, extra: serverArgs, runID: runID,
			auth: auth, refusalWindow: *refusalWin, refusalConcurrent: *refusalCon,
		})
	}
	jobs := schedule(runners, selected)
	fmt.Printf("compat: %d client(s) × %d matrix(es), %d at once, roster %s, logs in %s\n",
		len(selected), len(runners), *parallel, version, *logDir)
	start := time.Now()
	results := make([][]*Result, len(runners))
	for i := range results {
		results[i] = make([]*Result, len(selected))
	}
	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	var wg sync.WaitGroup
	var printMu sync.Mutex
	for range min(*parallel, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				d, c := runners[j.matrix], selected[j.client]
				label := c.Name + " [" + matrixLabel(d.auth) + "]"
				printMu.Lock()
				fmt.Printf("compat: %s: start at %v\n", label, time.Since(start).Round(100*time.Millisecond))
				printMu.Unlock()
				r := d.run(ctx, c)
				results[j.matrix][j.client] = r
				status := "PASS"
				if !r.Passed() {
					status = "FAIL"
				}
				printMu.Lock()
				fmt.Printf("compat: %s: %s in %v\n", label, status, r.Wall.Round(100*time.Millisecond))
				for _, name := range r.Names {
					fmt.Printf("    %-20s %s\n", name, cellText(r.Cells[name], true))
				}
				printMu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)

	rep := Report{
		Date:      time.Now().UTC(),
		Roster:    version,
		Machine:   fmt.Sprintf("%s/%s, %d cores", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
		Wall:      wall,
		Parallel:  *parallel,
		Subset:    *only != "",
		AllCount:  len(clients),
		TimeoutPC: *timeout,
	}
	failed, total := 0, 0
	for i, d := range runners {
		rep.Matrices = append(rep.Matrices, Matrix{Auth: d.auth, Results: results[i]})
		for _, r := range results[i] {
			total++
			if !r.Passed() {
				failed++
			}
		}
	}
	if outPath != "" {
		if err := os.WriteFile(outPath, []byte(rep.Markdown()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "driver:", err)
			return 1
		}
		fmt.Printf("compat: wrote %s\n", outPath)
	} else {
		fmt.Println("compat: RESULTS.md not rewritten (--only without --out)")
	}
	fmt.Printf("compat: %d of %d run(s) passed every cell in %v; logs in %s\n",
		total-failed, total, wall.Round(100*time.Millisecond), *logDir)
	if failed > 0 {
		return 1
	}
	return 0
}

// authModes parses --auth: the matrices to run, auth off first.
func authModes(v string) ([]bool, error) {
	switch strings.TrimSpace(v) {
	case "off":
		return []bool{false}, nil
	case "on":
		return []bool{true}, nil
	case "both", "":
		return []bool{false, true}, nil
	}
	return nil, fmt.Errorf("--auth %q: want off, on or both", v)
}

// job is one client of one matrix.
type job struct{ matrix, client int }

// schedule orders the runs: client by client in table order, each client's auth run
// (the longer one) before its plain run, so that the slow clients at the end of the
// table do not start last in both matrices.
func schedule(runners []*runner, selected []Client) []job {
	var jobs []job
	for ci := range selected {
		for mi := len(runners) - 1; mi >= 0; mi-- {
			jobs = append(jobs, job{matrix: mi, client: ci})
		}
	}
	return jobs
}

// repoRoot finds the repository root from the working directory: the directory with
// go.mod and compat/README.md.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, "compat", "README.md")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the driver inside the roster repository (no directory with go.mod and compat/README.md above the working directory)")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// selectClients returns the clients named in only (all when empty), in table order.
func selectClients(only string) ([]Client, error) {
	if strings.TrimSpace(only) == "" {
		return clients, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var sel []Client
	for _, c := range clients {
		if want[c.Name] {
			sel = append(sel, c)
			delete(want, c.Name)
		}
	}
	if len(want) > 0 {
		var unknown, names []string
		for n := range want {
			unknown = append(unknown, n)
		}
		for _, c := range clients {
			names = append(names, c.Name)
		}
		return nil, fmt.Errorf("--only: unknown client(s) %s; known: %s", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return sel, nil
}

// rosterVersion is the first line of `roster version`.
func rosterVersion(bin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	v := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	return strings.TrimPrefix(v, "roster ")
}
