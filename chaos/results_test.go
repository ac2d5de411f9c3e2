package chaos

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Figures are the measured values one run of a scenario reports, by the name of what its
// criterion names ("leader elected after, s").
type Figures struct {
	mu   sync.Mutex
	vals map[string]float64
	keys []string
}

func (f *Figures) Set(name string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.vals == nil {
		f.vals = map[string]float64{}
	}
	if _, ok := f.vals[name]; !ok {
		f.keys = append(f.keys, name)
	}
	f.vals[name] = v
}

// Max keeps the largest value seen under name.
func (f *Figures) Max(name string, v float64) {
	f.mu.Lock()
	old, ok := f.vals[name]
	f.mu.Unlock()
	if !ok || v > old {
		f.Set(name, v)
	}
}

func (f *Figures) Secs(name string, d time.Duration) { f.Set(name, d.Seconds()) }

type scenarioResult struct {
	name, title  string
	runs, passed int
	keys         []string
	vals         map[string][]float64
	elapsed      time.Duration
}

var (
	resultsMu sync.Mutex
	results   []*scenarioResult
)

// scenario runs fn -runs times as subtests run1…runN and records each run's outcome and
// figures for the results table.
func scenario(t *testing.T, name, title string, fn func(t *testing.T, f *Figures)) {
	res := &scenarioResult{name: name, title: title, vals: map[string][]float64{}}
	resultsMu.Lock()
	results = append(results, res)
	resultsMu.Unlock()
	for i := range *flagRuns {
		t.Run(fmt.Sprintf("run%d", i+1), func(t *testing.T) {
			f := &Figures{}
			start := time.Now()
			defer func() {
				resultsMu.Lock()
				defer resultsMu.Unlock()
				res.runs++
				res.elapsed += time.Since(start)
				if !t.Failed() {
					res.passed++
				}
				for _, k := range f.keys {
					if _, ok := res.vals[k]; !ok {
						res.keys = append(res.keys, k)
					}
					res.vals[k] = append(res.vals[k], f.vals[k])
				}
			}()
			fn(t, f)
		})
	}
}

func span(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if s[0] == s[len(s)-1] {
		return trim(s[0])
	}
	return trim(s[0]) + " … " + trim(s[len(s)-1])
}

func trim(x float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", x), "0"), ".")
}

// writeResults prints the table and, with -results, writes it to that file.
func writeResults() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	var b strings.Builder
	mode := "short"
	if *flagFull {
		mode = "full"
	}
	fmt.Fprintf(&b, "# Chaos results\n\nWritten by chaos/results_test.go on %s: %s sizes, -runs %d, seed %d.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), mode, *flagRuns, seed)
	b.WriteString("Figures are min … max over the runs.\n\n| Scenario | Runs | Passed | Time | Figures |\n|---|---|---|---|---|\n")
	sort.Slice(results, func(i, j int) bool { return results[i].name < results[j].name })
	for _, r := range results {
		var figs []string
		for _, k := range r.keys {
			figs = append(figs, k+": "+span(r.vals[k]))
		}
		fmt.Fprintf(&b, "| %s %s | %d | %d | %v | %s |\n", r.name, r.title, r.runs, r.passed, r.elapsed.Round(time.Second), strings.Join(figs, "; "))
	}
	fmt.Print(b.String())
	if *flagResults != "" {
		if err := os.WriteFile(*flagResults, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: write results:", err)
		}
	}
}
