package server

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// TestApplyMemoryLimit checks that a positive limit reaches the runtime and that 0
// leaves the runtime's limit (GOMEMLIMIT's, or none) as it was.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)

	debug.SetMemoryLimit(math.MaxInt64)
	applyMemoryLimit(0, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit 0 changed the runtime's limit to %d", got)
	}
	applyMemoryLimit(150<<20, log)
	if got := debug.SetMemoryLimit(-1); got != 150<<20 {
		t.Fatalf("runtime limit %d, want %d", got, 150<<20)
	}
	applyMemoryLimit(0, log)
	if got := debug.SetMemoryLimit(-1); got != 150<<20 {
		t.Fatalf("limit 0 reset the runtime's limit %d", got)
	}
}
