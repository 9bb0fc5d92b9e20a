package stages

import (
	"context"
	"fmt"
	"math"

	"mohawk/graphs/train"
	"mohawk/tensors"
)

// Replicas makes a training stage one of several data-parallel ranks
// (Env.Replicas): every rank holds the parameters and optimizer state,
// runs its share of every step's micro-batches, and the step graph's
// AllReduce nodes average the gradients before the identical update. The
// AllReduce op reduces over what the process registered with mohawk/runtime
// (a runtime.HostReducer on the CPU, an NCCL communicator on CUDA); this is
// the job's own group, which the trainer uses to gather the ranks' losses.
// dist.Conn implements it.
type Replicas interface {
	Rank() int
	Size() int
	// AllReduce replaces buf, on every rank, by the element-wise sum over
	// the ranks, the same bits on every rank.
	AllReduce(ctx context.Context, buf []float32) error
}

// DefaultBucketBytes is the gradient bucket of a data-parallel step graph
// whose TrainSpec.AllReduce is unset: consecutive gradients of at least
// 25 MiB travel in one AllReduce (PyTorch DDP's default bucket size).
const DefaultBucketBytes = 25 << 20

// share is this process's part of every step's micro-batches: [lo, lo+k)
// of the spec's MicroBatches, which must divide among the ranks.
type share struct {
	rank, ranks int
	lo, k       int
}

// shareOf returns e's share of spec's micro-batches: all of them without
// replicas (or with one), else rank r's consecutive MicroBatches/N.
func (e *Env) shareOf(spec TrainSpec) (share, error) {
	if e.Replicas == nil || e.Replicas.Size() < 2 {
		return share{ranks: 1, k: spec.MicroBatches}, nil
	}
	n, r := e.Replicas.Size(), e.Replicas.Rank()
	if spec.MicroBatches%n != 0 {
		return share{}, fmt.Errorf("%d micro-batches per step do not divide among %d ranks: "+
			"make the micro-batches per update (tokens_per_update / (micro_batch × seq_len)) a multiple of %d, "+
			"or run with a number of ranks that divides %d", spec.MicroBatches, n, n, spec.MicroBatches)
	}
	k := spec.MicroBatches / n
	return share{rank: r, ranks: n, lo: r * k, k: k}, nil
}

// stepSpec is the spec of this share's step graphs: its k micro-batches,
// and AllReduce nodes when several ranks share the step.
func (s share) stepSpec(spec TrainSpec) TrainSpec {
	if s.ranks < 2 {
		return spec
	}
	spec.MicroBatches = s.k
	if spec.AllReduce == nil {
		spec.AllReduce = &train.AllReduce{BucketBytes: DefaultBucketBytes}
	}
	return spec
}

// gatherLosses replaces a run's per-rank losses [n, k] by every rank's,
// [n, K] in global micro-batch order, so that every rank records the loss
// of the whole step: each rank fills its columns and -0 elsewhere, and
// x + (-0) is x bit for bit.
func (t *trainer) gatherLosses(got map[string]*tensors.Tensor, n int) error {
	s := t.share
	if s.ranks < 2 {
		return nil
	}
	K := t.spec.MicroBatches
	mine := got[train.LossName].Float32s()
	buf := make([]float32, n*K)
	negZero := float32(math.Copysign(0, -1))
	for i := range buf {
		buf[i] = negZero
	}
	for i := range n {
		copy(buf[i*K+s.lo:i*K+s.lo+s.k], mine[i*s.k:(i+1)*s.k])
	}
	if err := t.e.Replicas.AllReduce(t.e.Ctx, buf); err != nil {
		return fmt.Errorf("gather the ranks' losses: %w", err)
	}
	got[train.LossName] = tensors.FromFloat32([]int64{int64(n), int64(K)}, buf)
	return nil
}

// lossRank names the rank whose micro-batch j of a step it was ("" in a
// run of one process).
func (s share) lossRank(j int) string {
	if s.ranks < 2 {
		return ""
	}
	return fmt.Sprintf(" of rank %d", j/s.k)
}
