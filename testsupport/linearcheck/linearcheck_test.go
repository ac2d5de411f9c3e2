package linearcheck

import (
	"errors"
	"testing"
	"time"
)

// TestCheckTellsLinearizableFromNot: hand-written histories of one and two keys, each
// with the verdict porcupine must reach on it.
func TestCheckTellsLinearizableFromNot(t *testing.T) {
	keys := []int{1, 2}
	for _, tc := range []struct {
		name   string
		record func(h *History)
		ok     bool
	}{
		{"read sees the acked write", func(h *History) {
			h.Acked(0, 1, true, 0, 10)
			h.Read(1, keys, map[int]bool{1: true}, 20, 30)
		}, true},
		{"read misses an acked write", func(h *History) {
			h.Acked(0, 1, true, 0, 10)
			h.Read(1, keys, map[int]bool{}, 20, 30)
		}, false},
		{"read overlapping the write may see either", func(h *History) {
			h.Acked(0, 1, true, 0, 30)
			h.Read(1, keys, map[int]bool{}, 10, 20)
			h.Read(2, keys, map[int]bool{1: true}, 10, 20)
		}, true},
		{"an unknown write may take effect late", func(h *History) {
			h.Unknown(0, 2, true, 0)
			h.Read(1, keys, map[int]bool{}, 20, 30)
			h.Read(1, keys, map[int]bool{2: true}, 40, 50)
		}, true},
		{"an unknown write takes effect once", func(h *History) {
			h.Unknown(0, 2, true, 0)
			h.Read(1, keys, map[int]bool{2: true}, 20, 30)
			h.Read(1, keys, map[int]bool{}, 40, 50)
		}, false},
		{"deregistration seen, then the key again without a write", func(h *History) {
			h.Acked(0, 1, true, 0, 10)
			h.Acked(0, 1, false, 20, 30)
			h.Read(1, keys, map[int]bool{1: true}, 40, 50)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory()
			tc.record(h)
			err := h.Check(10 * time.Second)
			if tc.ok && err != nil {
				t.Fatalf("Check = %v, want linearizable", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotLinearizable) {
				t.Fatalf("Check = %v, want not linearizable", err)
			}
		})
	}
}

func TestReadRecordsEveryKey(t *testing.T) {
	h := NewHistory()
	h.Read(0, []int{1, 2, 3}, map[int]bool{2: true}, h.Now(), h.Now())
	if h.Len() != 3 {
		t.Fatalf("Len = %d after a read of 3 keys, want 3", h.Len())
	}
}
