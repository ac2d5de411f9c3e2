package main

import (
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cpuUse is where the machine's CPU time went during one phase. On a small machine
// the load generator competes with the server, and anything else running skews the
// figures; this makes both visible beside them.
type cpuUse struct {
	WallSeconds   float64  `json:"wall_seconds"`
	CPUs          int      `json:"cpus"`
	ServerSeconds float64  `json:"server_cpu_seconds"`
	BenchSeconds  float64  `json:"bench_cpu_seconds"`
	OtherSeconds  float64  `json:"other_cpu_seconds"`   // every other process and the kernel's own work
	StealSeconds  float64  `json:"steal_seconds"`       // taken by the hypervisor
	OtherTop      []string `json:"other_top,omitempty"` // the other processes that used the most
}

func (u cpuUse) String() string {
	s := fmt.Sprintf("server %.1fs, bench %.1fs, everything else %.1fs, steal %.1fs of %.1fs (%d CPUs x %.1fs)",
		u.ServerSeconds, u.BenchSeconds, u.OtherSeconds, u.StealSeconds, u.WallSeconds*float64(u.CPUs), u.CPUs, u.WallSeconds)
	if len(u.OtherTop) > 0 {
		s += "; others: " + strings.Join(u.OtherTop, ", ")
	}
	return s
}

// combineCPU adds up the cpuUse of several slices of one measurement; the other
// processes named are those of the slice where others used the most.
func combineCPU(parts ...cpuUse) cpuUse {
	var out cpuUse
	worst := -1.0
	for _, p := range parts {
		out.WallSeconds += p.WallSeconds
		out.CPUs = p.CPUs
		out.ServerSeconds += p.ServerSeconds
		out.BenchSeconds += p.BenchSeconds
		out.OtherSeconds += p.OtherSeconds
		out.StealSeconds += p.StealSeconds
		if p.OtherSeconds > worst {
			worst, out.OtherTop = p.OtherSeconds, p.OtherTop
		}
	}
	return out
}

// cpuMeter measures a cpuUse from start to stop.
type cpuMeter struct {
	s                        *server
	t0                       time.Time
	server, bench, busy, stl float64
	procs                    map[int]procCPU
}

func startCPU(s *server) cpuMeter {
	busy, stl := machineCPU()
	return cpuMeter{s: s, t0: time.Now(), server: serverCPU(s), bench: selfCPUSeconds(), busy: busy, stl: stl, procs: procTimes()}
}

func (m cpuMeter) stop() cpuUse {
	busy, stl := machineCPU()
	u := cpuUse{
		WallSeconds:   time.Since(m.t0).Seconds(),
		CPUs:          runtime.NumCPU(),
		ServerSeconds: serverCPU(m.s) - m.server,
		BenchSeconds:  selfCPUSeconds() - m.bench,
		StealSeconds:  stl - m.stl,
	}
	u.OtherSeconds = max(0, busy-m.busy-u.ServerSeconds-u.BenchSeconds)
	u.OtherTop = topOthers(m.procs, procTimes(), m.s, 3)
	return u
}

// procCPU is one process's name and CPU time so far.
type procCPU struct {
	comm    string
	seconds float64
}

// procTimes reads every process's CPU time from /proc/<pid>/stat.
func procTimes() map[int]procCPU {
	out := map[int]procCPU{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		open, closing := strings.IndexByte(string(data), '('), strings.LastIndexByte(string(data), ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(string(data[closing+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[pid] = procCPU{comm: string(data[open+1 : closing]), seconds: (ut + st) / clockTicks}
	}
	return out
}

// topOthers names the n processes other than the server and the bench that used the
// most CPU between two readings (at least 0.1s each). Processes that started and
// exited in between are not seen.
func topOthers(before, after map[int]procCPU, s *server, n int) []string {
	skip := map[int]bool{os.Getpid(): true}
	if s != nil && s.cmd != nil && s.cmd.Process != nil {
		skip[s.cmd.Process.Pid] = true
	}
	type use struct {
		name string
		secs float64
	}
	var uses []use
	for pid, a := range after {
		if skip[pid] {
			continue
		}
		d := a.seconds
		// Kernel workers rename themselves after their current work item, so
		// processes are matched by pid alone.
		if b, ok := before[pid]; ok {
			d -= b.seconds
		}
		if d >= 0.1 {
			uses = append(uses, use{fmt.Sprintf("%s[%d] %.1fs", a.comm, pid, d), d})
		}
	}
	slices.SortFunc(uses, func(x, y use) int { return cmp.Compare(y.secs, x.secs) })
	var out []string
	for _, u := range uses[:min(n, len(uses))] {
		out = append(out, u.name)
	}
	return out
}

// serverCPU is the server's CPU time so far, 0 if it cannot be read.
func serverCPU(s *server) float64 {
	v, _ := s.cpuSeconds()
	return v
}

// machineCPU reads the busy (user, nice, system, irq, softirq) and steal seconds of
// all CPUs from /proc/stat; zeros when unreadable.
func machineCPU() (busy, steal float64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	v := func(i int) float64 {
		n, _ := strconv.ParseFloat(f[i], 64)
		return n / clockTicks
	}
	return v(1) + v(2) + v(3) + v(6) + v(7), v(8)
}
