package stages

import (
	"encoding/json"
	"fmt"
)

// Shard splits Stage 1/2's layer groups among cooperating processes (Env.Shard):
// the groups are independent given the frozen teacher's inputs, so each
// process trains its own and the results merge into the one-process result.
type Shard interface {
	// Range is the groups [lo, hi) of n this process trains; the processes'
	// ranges are consecutive and in process order.
	Range(n int) (lo, hi int)
	// Merge returns w with every tensor of names taken from the process
	// that trained it (own reports whether this one did). Every process
	// calls it with the same names, and gets the same result.
	Merge(w Weights, names []string, own func(name string) bool) (Weights, error)
	// Gather gives every process every process's b, in process order.
	Gather(b []byte) ([][]byte, error)
}

// shardResult merges the processes' layer groups after Orient trained this
// process's share: the trained mixer parameters of every group (names) into
// e.Student.Weights, and the training results, folded in group order as one
// process would have.
func (e *Env) shardResult(names []string, mine *TrainResult) (*TrainResult, error) {
	own := map[string]bool{}
	if mine != nil {
		for n := range mine.Weights {
			own[n] = true
		}
	}
	w, err := e.Shard.Merge(e.Student.Weights, names, func(n string) bool { return own[n] })
	if err != nil {
		return nil, fmt.Errorf("merge the layer groups of the ranks: %w", err)
	}
	e.Student.Weights = w
	var b []byte
	if mine != nil {
		r := *mine
		r.Weights = nil
		b, _ = json.Marshal(r)
	}
	all, err := e.Shard.Gather(b)
	if err != nil {
		return nil, fmt.Errorf("gather the layer groups' results: %w", err)
	}
	var out *TrainResult
	for p, b := range all {
		if len(b) == 0 { // a process without groups
			continue
		}
		r := &TrainResult{}
		if err := json.Unmarshal(b, r); err != nil {
			return nil, fmt.Errorf("result of rank %d: %w", p, err)
		}
		out = combine(out, r)
	}
	if out != nil {
		out.Weights = Weights{}
		for _, n := range names {
			out.Weights[n] = w[n]
		}
	}
	return out, nil
}
