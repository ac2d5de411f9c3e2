package server

import (
	"log/slog"
	"math"
	"runtime/debug"
)

// applyMemoryLimit sets the Go runtime's soft memory limit when limit is positive, and
// logs the limit in force either way. The limit is process-wide: with 0 the runtime
// keeps what it started with, GOMEMLIMIT from the environment or none, so an operator's
// GOMEMLIMIT and GOGC are honoured unless --memory-limit is given.
//
// Why it matters: with GOGC=100 the heap may grow to twice its live size between
// collections, and that headroom is most of a large registry's RSS (BENCHMARKS.md). A
// limit makes the collector run earlier once the heap nears it, trading CPU for memory;
// it is soft, so a live heap above it is still served (the collector then runs often,
// which is why the limit should sit well above the live size).
func applyMemoryLimit(limit int64, log *slog.Logger) {
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if current := debug.SetMemoryLimit(-1); current != math.MaxInt64 {
		log.Info("Go memory limit in force", "bytes", current, "set_by", memoryLimitSource(limit))
	}
}

func memoryLimitSource(limit int64) string {
	if limit > 0 {
		return "--memory-limit"
	}
	return "GOMEMLIMIT"
}
