package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// allResult holds each measurement's report (nil when it could not run) and, by
// name, the failures.
type allResult struct {
	Quick           bool              `json:"quick"`
	Register        report            `json:"register,omitempty"`
	Ready           report            `json:"ready,omitempty"`
	EphemeralMemory report            `json:"ephemeral_memory,omitempty"`
	Kill9           report            `json:"kill9,omitempty"`
	Failures        map[string]string `json:"failures,omitempty"`
}

// runAll runs every measurement in turn, with the defaults or, with quick, with sizes
// small enough for a smoke test (each measured phase about 2s). One failing does not
// stop the others.
func runAll(ctx context.Context, b *bench, quick bool) (report, error) {
	reg, ready, eph, k9 := defaultRegister(), defaultReady(), defaultEphemeral(), defaultKill9()
	if quick {
		reg.duration, reg.rounds = 2*time.Second, 2
		ready.instances, ready.small, ready.runs = 2000, 200, 1
		eph.instances, eph.duration, eph.beatInterval = 2000, 2*time.Second, time.Second
		k9.instances = 200
	}
	res := &allResult{Quick: quick, Failures: map[string]string{}}
	var errs []error
	step := func(name string, dst *report, run func() (report, error)) {
		if ctx.Err() != nil {
			return
		}
		b.logf("all: %s", name)
		rep, err := run()
		if rep != nil {
			*dst = rep
		}
		if err != nil {
			res.Failures[name] = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	step("register", &res.Register, func() (report, error) { return runRegister(ctx, b, reg) })
	step("ready", &res.Ready, func() (report, error) { return runReady(ctx, b, ready) })
	step("ephemeral-memory", &res.EphemeralMemory, func() (report, error) { return runEphemeral(ctx, b, eph) })
	step("kill9", &res.Kill9, func() (report, error) { return runKill9(ctx, b, k9) })
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

func (r *allResult) print(w io.Writer) {
	for _, rep := range []report{r.Register, r.Ready, r.EphemeralMemory, r.Kill9} {
		if rep != nil {
			rep.print(w)
			fmt.Fprintln(w)
		}
	}
	for name, f := range r.Failures {
		fmt.Fprintf(w, "FAILED %s: %s\n", name, f)
	}
}
