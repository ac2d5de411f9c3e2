// Package linearcheck records what concurrent clients did to the presence of persistent
// instances and checks with porcupine that the history is linearizable. The e2e and
// chaos workloads both record into a History: each key (an instance's port) is a
// register holding "registered or not"; writes are register (true) and deregister
// (false), reads are consistent=true lists.
package linearcheck

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is one operation on the presence register of one key.
type Input struct {
	Key   int
	Write bool // true: set present to Value; false: read (the output is present)
	Value bool
}

// Model is a register per key, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(byKey))
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return false },
	Step: func(state, input, output any) (bool, any) {
		in := input.(Input)
		if in.Write {
			return true, in.Value
		}
		return output.(bool) == state.(bool), state
	},
	Equal: func(a, b any) bool { return a.(bool) == b.(bool) },
	DescribeOperation: func(input, output any) string {
		in := input.(Input)
		if in.Write {
			return fmt.Sprintf("set(%d)=%v", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%d)->%v", in.Key, output)
	},
}

// History is a concurrent recorder of operations, timed from its creation.
type History struct {
	start time.Time

	mu  sync.Mutex
	ops []porcupine.Operation
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock: call it just before sending an operation and just after
// its answer.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Acked records a write that was acknowledged: it took effect between call and ret.
func (h *History) Acked(client, key int, present bool, call, ret int64) {
	h.add(porcupine.Operation{ClientId: client, Input: Input{Key: key, Write: true, Value: present}, Call: call, Return: ret})
}

// Unknown records a write whose outcome is unknown (a timeout, a lost connection): it
// may have taken effect at any point from its call on, or never, so it never returns.
// A refused write is not recorded at all.
func (h *History) Unknown(client, key int, present bool, call int64) {
	h.add(porcupine.Operation{ClientId: client, Input: Input{Key: key, Write: true, Value: present}, Call: call, Return: math.MaxInt64})
}

// Read records a successful read of every key of keys: present[k] is what it answered
// for key k (absent: not registered).
func (h *History) Read(client int, keys []int, present map[int]bool, call, ret int64) {
	for _, k := range keys {
		h.add(porcupine.Operation{ClientId: client, Input: Input{Key: k}, Output: present[k], Call: call, Return: ret})
	}
}

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Len is the number of operations recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// ErrNotLinearizable is what Check's error wraps when porcupine finds no linearization;
// any other error means the check did not finish in time.
var ErrNotLinearizable = errors.New("not linearizable")

// Check runs porcupine over what was recorded so far. It answers nil when the history
// is linearizable, an error wrapping ErrNotLinearizable when it is not, and another
// error when the check ran out of time.
func (h *History) Check(timeout time.Duration) error {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	switch porcupine.CheckOperationsTimeout(Model, ops, timeout) {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		return fmt.Errorf("porcupine: the history of %d operations is %w", len(ops), ErrNotLinearizable)
	default:
		return fmt.Errorf("porcupine: the check of %d operations did not finish within %v", len(ops), timeout)
	}
}
