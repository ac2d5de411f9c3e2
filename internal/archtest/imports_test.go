// Package archtest tests the module's shape rather than its behaviour: that every package
// imports only the roster packages that DESIGN.md ("Packages and who may import whom")
// lets it import. It has no code outside its tests; `make lint` runs it.
package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/roster-registry/roster"

// anythingButCmd, as the whole row of allowed, lets a package import every package of
// the module except cmd/....
const anythingButCmd = "<anything but cmd/...>"

// allowed is the allow-list: for each package of the module (path relative to the module),
// the roster packages it may import outside its tests. Standard-library and third-party
// imports are not checked. A package missing from this table fails the test: give it a
// row here and a line in DESIGN.md. Rows for packages that do not exist yet are kept so
// that the package, when it comes, is held to the design from its first commit.
var allowed = map[string][]string{
	"naming":             nil,
	"nodeauth":           nil,
	"nodeauth/testcerts": nil, // throw-away CAs for tests; imported by _test.go files only
	"persistence":        {"naming"},
	"auth":               {"naming"},
	"fsm":                {"persistence", "naming", "auth"},
	"raftnode":           {"nodeauth"}, // never fsm: it takes a raft.FSM
	"distro":             {"naming", "nodeauth"},
	"cluster":            {"raftnode", "fsm", "nodeauth", "naming"},
	"healthcheck":        {"naming"}, // behind its Source, Members and Flipper interfaces; registry adapts the rest
	"registry":           {"cluster", "raftnode", "fsm", "distro", "persistence", "naming", "auth", "nodeauth", "healthcheck", "registry/udppush"},
	"registry/udppush":   {"naming"},
	"api":                {"registry", "naming", "auth"},
	"grpcapi":            {"registry", "naming", "auth", "grpcapi/proto"},
	"grpcapi/proto":      nil,
	"console":            nil, // static files; the pages call the HTTP API from the browser
	"server":             {anythingButCmd},
	"server/servertest":  {"server", "naming", "client"},
	"client":             {"naming"},
	"migrate":            {"client", "naming"},
	// Offline snapshot restore and the ACL commands need the stores; the wiring of a
	// running node is server's.
	"cmd/roster":        {"server", "client", "migrate", "naming", "auth", "persistence", "raftnode", "fsm", "nodeauth"},
	"internal/archtest": nil,
	"packaging":         nil, // tests only: they build and exec cmd/roster
	// Test support shared with the e2e and chaos modules (which cannot import internal/):
	// imported by _test.go files only.
	"testsupport/freeport":    nil,
	"testsupport/linearcheck": nil,
}

// arrow is one forbidden import, from one package of the module to another (both
// relative to the module). An arrow with an empty To is a package missing from allowed.
type arrow struct {
	From, To string
	Why      string
}

func (a arrow) String() string {
	if a.To == "" {
		return fmt.Sprintf("%s: %s", a.From, a.Why)
	}
	return fmt.Sprintf("%s -> %s: %s", a.From, a.To, a.Why)
}

func isCmd(pkg string) bool { return pkg == "cmd" || strings.HasPrefix(pkg, "cmd/") }

// check returns every arrow of graph (package -> the roster packages it imports, all
// relative to the module) that rules does not permit, sorted.
func check(graph, rules map[string][]string) []arrow {
	var bad []arrow
	for from, imports := range graph {
		row, known := rules[from]
		if !known {
			bad = append(bad, arrow{From: from, Why: "package is not in the allow-list: add a row for it to " +
				"internal/archtest/imports_test.go and a line to DESIGN.md, section \"Packages and who may import whom\""})
		}
		for _, to := range imports {
			switch {
			case isCmd(to):
				bad = append(bad, arrow{from, to, "nothing may import cmd/..."})
			case to == "api" && from != "server":
				bad = append(bad, arrow{from, to, "nothing may import api except server"})
			case !known:
				// Reported once above, as a package missing from the table.
			case slices.Equal(row, []string{anythingButCmd}):
			case !slices.Contains(row, to):
				bad = append(bad, arrow{from, to, describe(from, row)})
			}
		}
	}
	sort.Slice(bad, func(i, j int) bool {
		if bad[i].From != bad[j].From {
			return bad[i].From < bad[j].From
		}
		return bad[i].To < bad[j].To
	})
	return bad
}

func describe(from string, row []string) string {
	if len(row) == 0 {
		return from + " may import no roster package"
	}
	return from + " may import only " + strings.Join(row, ", ")
}

// listed is the part of `go list -json` that loadGraph reads.
type listed struct {
	ImportPath string
	Imports    []string // non-test imports, in the default build context
	Error      *struct{ Err string }
}

// loadGraph lists every package of the root module with `go list` and returns, for each,
// the roster packages it imports outside its tests.
func loadGraph() (map[string][]string, error) {
	gomod, err := goCmd("", "env", "GOMOD")
	if err != nil {
		return nil, err
	}
	gomod = strings.TrimSpace(gomod)
	if gomod == "" || gomod == os.DevNull {
		return nil, errors.New("go env GOMOD: not inside a module")
	}
	out, err := goCmd(filepath.Dir(gomod), "list", "-e", "-json=ImportPath,Imports,Error", "./...")
	if err != nil {
		return nil, err
	}
	graph := map[string][]string{}
	var errs []error
	for dec := json.NewDecoder(strings.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: decoding its output: %v", err)
		}
		from, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("go list: %s: %s", from, p.Error.Err))
		}
		imports := []string{}
		for _, imp := range p.Imports {
			if to, ok := relative(imp); ok {
				imports = append(imports, to)
			}
		}
		graph[from] = imports
	}
	if len(graph) == 0 {
		errs = append(errs, errors.New("go list ./... found no package of "+module))
	}
	return graph, errors.Join(errs...)
}

// relative returns path relative to the module, and whether path is in the module.
func relative(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	return rest, ok
}

func goCmd(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	// A go.work above the module would bring e2e/, compat/ and bench/ into ./....
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}

// TestImports fails on every import between packages of the module that the design does
// not permit, naming the arrow, and on every package that the allow-list does not know.
func TestImports(t *testing.T) {
	graph, err := loadGraph()
	if err != nil {
		t.Fatal(err)
	}
	bad := check(graph, allowed)
	for _, a := range bad {
		t.Error(a)
	}
	if len(bad) > 0 {
		t.Logf("%d forbidden import(s) among %d packages; the rules are DESIGN.md's, \"Packages and who may import whom\"", len(bad), len(graph))
	}
}

// TestAllowListNamesKnownPackages catches a misspelt row entry, which would otherwise
// allow nothing and fail with a confusing message.
func TestAllowListNamesKnownPackages(t *testing.T) {
	for from, row := range allowed {
		for _, to := range row {
			if _, ok := allowed[to]; !ok && to != anythingButCmd {
				t.Errorf("allowed[%q] names %q, which has no row of its own", from, to)
			}
		}
	}
}

// TestCheck shows that check catches what it should: a fake graph of the design as it
// stands, plus the one forbidden arrow each case adds, yields exactly that arrow.
func TestCheck(t *testing.T) {
	clean := map[string][]string{
		"naming":           nil,
		"nodeauth":         nil,
		"persistence":      {"naming"},
		"auth":             {"naming"},
		"fsm":              {"persistence", "naming", "auth"},
		"raftnode":         {"nodeauth"},
		"distro":           {"naming", "nodeauth"},
		"cluster":          {"raftnode", "fsm", "nodeauth", "naming"},
		"registry":         {"cluster", "raftnode", "fsm", "distro", "persistence", "naming", "auth", "registry/udppush"},
		"registry/udppush": {"naming"},
		"api":              {"registry", "naming", "auth"},
		"grpcapi":          {"registry", "naming", "auth", "grpcapi/proto"},
		"grpcapi/proto":    nil,
		"server":           {"api", "grpcapi", "registry", "cluster", "raftnode", "fsm", "distro", "persistence", "nodeauth"},
		"client":           {"naming"},
		"cmd/roster":       {"server", "client", "naming", "auth", "persistence", "raftnode", "fsm", "nodeauth"},
	}
	if bad := check(clean, allowed); len(bad) != 0 {
		t.Fatalf("check(clean graph) = %v, want nothing", bad)
	}

	for _, tc := range []struct {
		name     string
		from, to string // the arrow added to the clean graph
		want     arrow
	}{
		{"row", "raftnode", "fsm", arrow{"raftnode", "fsm", "raftnode may import only nodeauth"}},
		{"empty row", "naming", "persistence", arrow{"naming", "persistence", "naming may import no roster package"}},
		{"api from elsewhere", "grpcapi", "api", arrow{"grpcapi", "api", "nothing may import api except server"}},
		{"cmd from server", "server", "cmd/roster", arrow{"server", "cmd/roster", "nothing may import cmd/..."}},
		{"unknown package", "newpkg", "naming", arrow{From: "newpkg", Why: "package is not in the allow-list: add a row for it to " +
			"internal/archtest/imports_test.go and a line to DESIGN.md, section \"Packages and who may import whom\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			graph := map[string][]string{}
			for k, v := range clean {
				graph[k] = slices.Clone(v)
			}
			graph[tc.from] = append(graph[tc.from], tc.to)
			got := check(graph, allowed)
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("check(clean graph + %s -> %s) = %v, want exactly [%v]", tc.from, tc.to, got, tc.want)
			}
		})
	}
}
