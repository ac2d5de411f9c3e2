package grpcapi

import (
	"testing"
	"time"
)

// TestConnTimesAreOffsetsFromItsOpening: idle and blocked-send times are kept as
// offsets from a reading taken when the connection opened, so they are differences of
// two time.Time readings (monotonic when both carry one) and never a wall-clock stamp
// compared with a later wall clock; a connection's LastActive is still shown as a
// wall-clock time.
func TestConnTimesAreOffsetsFromItsOpening(t *testing.T) {
	opened := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	c := newConn(nil, opened)
	if got := c.idle(opened.Add(2 * time.Second)); got != 2*time.Second {
		t.Fatalf("idle 2s after opening = %v", got)
	}
	c.touch(opened.Add(5 * time.Second))
	if got := c.idle(opened.Add(7 * time.Second)); got != 2*time.Second {
		t.Fatalf("idle 2s after the last message = %v", got)
	}
	if got := c.lastActiveAt(); !got.Equal(opened.Add(5 * time.Second)) {
		t.Fatalf("lastActiveAt = %v, want %v", got, opened.Add(5*time.Second))
	}
	if got := c.sendBlockedFor(time.Now()); got != 0 {
		t.Fatalf("blocked with no Send under way = %v", got)
	}
	c.sendStarted()
	start := time.Now()
	later := start.Add(3 * time.Second) // keeps start's monotonic reading
	if got := c.sendBlockedFor(later); got < 3*time.Second || got > 4*time.Second {
		t.Fatalf("blocked 3s into a Send = %v", got)
	}
	c.sendEnded()
	if got := c.sendBlockedFor(later); got != 0 {
		t.Fatalf("blocked after the Send returned = %v", got)
	}
}
