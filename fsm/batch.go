package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
)

// BatchType is an entry that carries many commands: the leader folds the writes that
// arrive while its previous proposal is in flight into one log entry (cluster's
// proposer), so a burst of clients costs one entry, one log record and one decode of
// the entry instead of one each. It is mandatory (no IgnorableFlag): a server that does
// not know it stops at the first one rather than skip the writes inside.
const BatchType CommandType = 13

// MaxBatchCommands bounds the commands of one Batch entry; a decoded entry with more
// is refused.
const MaxBatchCommands = 4096

// Batch is many commands in one log entry. Apply applies them in order, each as if it
// were an entry of its own at the batch's index: each meets the state its predecessors
// left (so quota checks count them), a rejection (a *naming.Error) writes nothing and
// does not affect the others, and each has its own answer in the BatchResult. Only a
// storage failure aborts it, as it aborts any batch of entries. A batch never holds a
// batch.
//
// Every command of a batch stamps the instances it writes with the batch's index. A
// revision still names one version that anyone can observe: the whole entry is applied
// inside one transaction, so no read, and no prober, sees the state between two of its
// commands (FlipHealth).
type Batch struct {
	// Commands are the batch's commands. A nil element is a command of an ignorable
	// type this build does not know: it is skipped and answers nil.
	Commands []Command
}

// Type implements Command.
func (Batch) Type() CommandType { return BatchType }

// BatchResult is ApplyBatch's response to a Batch entry: one response per command, in
// order, each what the command would have answered as an entry of its own.
type BatchResult []any

// errNestedBatch refuses a batch inside a batch.
var errNestedBatch = errors.New("a batch cannot hold a batch")

func init() {
	commands[BatchType] = entry{
		name:   "Batch",
		typ:    reflect.TypeOf(Batch{}),
		decode: decodeBatch,
		validate: func(c Command, l Limits) error {
			b := c.(Batch)
			if len(b.Commands) == 0 || len(b.Commands) > MaxBatchCommands {
				return fmt.Errorf("a batch holds 1 to %d commands, not %d", MaxBatchCommands, len(b.Commands))
			}
			for i, sub := range b.Commands {
				if sub == nil {
					return fmt.Errorf("command %d is nil", i)
				}
				if sub.Type() == BatchType {
					return errNestedBatch
				}
				if err := Validate(sub, l); err != nil {
					return fmt.Errorf("command %d: %w", i, err)
				}
			}
			return nil
		},
		apply: func(a *applier, c Command) (any, error) {
			b := c.(Batch)
			out := make(BatchResult, len(b.Commands))
			for i, sub := range b.Commands {
				if sub == nil {
					continue
				}
				r, err := a.apply(sub)
				if err != nil {
					return nil, fmt.Errorf("command %d of the batch (%s): %w", i, sub.Type(), err)
				}
				out[i] = r
			}
			return out, nil
		},
	}
}

// AppendBatch frames encoded commands (each as Marshal returns it, already validated)
// into one Batch entry, without decoding them: [BatchType][CommandVersion], then per
// command its length as a uvarint and its bytes. The caller must not pass a batch.
func AppendBatch(dst []byte, encoded [][]byte) []byte {
	dst = append(dst, byte(BatchType), CommandVersion)
	for _, e := range encoded {
		dst = binary.AppendUvarint(dst, uint64(len(e)))
		dst = append(dst, e...)
	}
	return dst
}

// marshalBatch encodes a Batch value (for Marshal).
func marshalBatch(b Batch) ([]byte, error) {
	encoded := make([][]byte, 0, len(b.Commands))
	for _, sub := range b.Commands {
		if sub == nil {
			return nil, errors.New("fsm: encode Batch: nil command")
		}
		if sub.Type() == BatchType {
			return nil, fmt.Errorf("fsm: encode Batch: %w", errNestedBatch)
		}
		e, err := Marshal(sub)
		if err != nil {
			return nil, err
		}
		encoded = append(encoded, e)
	}
	return AppendBatch(nil, encoded), nil
}

// decodeBatch is the inverse of AppendBatch over the body. Each command is decoded as
// Decode does; an unknown ignorable type is kept as a nil command.
func decodeBatch(body []byte) (Command, error) {
	var b Batch
	for len(body) > 0 {
		n, k := binary.Uvarint(body)
		if k <= 0 || n < 2 || uint64(len(body)-k) < n {
			return nil, fmt.Errorf("malformed frame after %d commands", len(b.Commands))
		}
		sub := body[k : k+int(n)]
		body = body[k+int(n):]
		if len(b.Commands) == MaxBatchCommands {
			return nil, fmt.Errorf("more than %d commands", MaxBatchCommands)
		}
		t := CommandType(sub[0])
		if t == BatchType {
			return nil, errNestedBatch
		}
		if _, known := commands[t]; !known && t.Ignorable() {
			b.Commands = append(b.Commands, nil)
			continue
		}
		c, err := Decode(sub)
		if err != nil {
			return nil, fmt.Errorf("command %d: %w", len(b.Commands), err)
		}
		b.Commands = append(b.Commands, c)
	}
	if len(b.Commands) == 0 {
		return nil, errors.New("empty batch")
	}
	return b, nil
}
