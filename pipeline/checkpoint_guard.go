package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"mohawk/stages"
	"mohawk/tensors"
)

// Hardening of the checkpoint directory (used by checkpoint.go):
//
//   - a checkpoint is never written with a NaN or ±Inf in it: the in-graph
//     guard of the training step skips steps whose loss or gradients are not
//     finite, but an update that overflows (an absurd learning rate) gives
//     finite gradients and non-finite parameters, which the next step only
//     sees as a non-finite loss; Save refuses such a state, so the previous
//     checkpoint stays the newest;
//   - a checkpoint records the key (the stage's plan hash) it was written
//     under, and one of another key (the stage's settings, an earlier
//     stage's output, the data or the teacher changed since) is never
//     resumed from;
//   - directories are retired by an atomic rename to a temporary name
//     before they are removed, so an interrupted removal never leaves a
//     half-deleted step-NNNNNNNN directory behind.

// ckptKey is the file holding a checkpoint's key (covered by the manifest).
const ckptKey = "KEY"

// tmpPrefix starts the names of everything Save and prune stage or retire;
// such names are ignored by Latest and removed by prune.
const tmpPrefix = ".tmp-"

// NonFiniteStateError reports a state that holds NaN or ±Inf.
type NonFiniteStateError struct {
	Step   int
	Tensor string
	Index  int64
}

func (e *NonFiniteStateError) Error() string {
	return fmt.Sprintf("checkpoint step %d: tensor %s holds a non-finite value (element %d) after the update of step %d (an overflow or a NaN learning rate); "+
		"the checkpoint was not written and the previous one is kept; lower the learning rate", e.Step, e.Tensor, e.Index, e.Step)
}

// checkFinite returns a *NonFiniteStateError naming the first tensor (in
// name order) with a NaN or ±Inf element.
func checkFinite(step int, w stages.Weights) error {
	for _, n := range sortedNames(w) {
		if i := firstNonFiniteElement(w[n]); i >= 0 {
			return &NonFiniteStateError{Step: step, Tensor: n, Index: i}
		}
	}
	return nil
}

// firstNonFiniteElement is the index of the first NaN or ±Inf element of a
// floating-point tensor (its exponent bits all set), or -1.
func firstNonFiniteElement(t *tensors.Tensor) int64 {
	if t == nil {
		return -1
	}
	d := t.Data
	switch t.DType {
	case tensors.Float32:
		for i := 0; i+4 <= len(d); i += 4 {
			if binary.LittleEndian.Uint32(d[i:])&0x7f800000 == 0x7f800000 {
				return int64(i / 4)
			}
		}
	case tensors.Float64:
		for i := 0; i+8 <= len(d); i += 8 {
			if binary.LittleEndian.Uint64(d[i:])&0x7ff0000000000000 == 0x7ff0000000000000 {
				return int64(i / 8)
			}
		}
	case tensors.Float16:
		for i := 0; i+2 <= len(d); i += 2 {
			if binary.LittleEndian.Uint16(d[i:])&0x7c00 == 0x7c00 {
				return int64(i / 2)
			}
		}
	case tensors.BFloat16:
		for i := 0; i+2 <= len(d); i += 2 {
			if binary.LittleEndian.Uint16(d[i:])&0x7f80 == 0x7f80 {
				return int64(i / 2)
			}
		}
	}
	return -1
}

// readKey returns a checkpoint's key, "" for one written before keys were
// recorded.
func readKey(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ckptKey))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// foreign reports whether the checkpoint in dir was written under another
// key than c's (checkpoints without a key are accepted).
func (c *Checkpoints) foreign(dir string) (string, bool) {
	k := readKey(dir)
	return k, c.Key != "" && k != "" && k != c.Key
}

// retire removes dir by first renaming it to a temporary name in the same
// directory (atomic), so a crash during the removal leaves only a
// temporary directory, which Latest ignores and the next prune removes.
func retire(dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), tmpPrefix+"retired-"+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	gone := filepath.Join(tmp, "x")
	if err := os.Rename(dir, gone); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.RemoveAll(tmp)
}

// Save writes the checkpoint of step (see save). When the disk is full the
// error says so and what to do; the previous checkpoint is untouched, since
// nothing is renamed over it before the new one is complete.
func (c *Checkpoints) Save(step int, t stages.Weights, meta stages.Meta) error {
	err := c.save(step, t, meta)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w; the disk holding %s is full: the previous checkpoint is kept; free space there (or lower checkpoints.keep_last) and run the same command again to resume", err, c.Dir)
	}
	return err
}
