package data

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"mohawk/tensors"
)

// Sampler cuts a training stream into batches of windows. A window is
// seqLen+1 consecutive tokens (the model's inputs are the first seqLen, its
// labels the last seqLen); windows may cross document boundaries, which the
// end-of-text ids mark.
//
// Epoch e draws from a PCG seeded with (seed⊕e, a constant of this package)
// a shift in [0, seqLen) and then a permutation of the epoch's
// W = Len()/seqLen − 1 windows, which start at shift + k·seqLen for k in
// [0, W) (so windows of an epoch share at most one token, and each epoch
// cuts the stream differently). Batch j of the epoch holds the windows at
// permutation positions [j·batch, (j+1)·batch); the W mod batch windows left
// over are skipped that epoch.
//
// Batch i of a run is batch i mod BatchesPerEpoch() of epoch
// i / BatchesPerEpoch(): a pure function of the seed and i, so a run resumed
// at batch i gets exactly the batches an uninterrupted run would, with no
// state saved beyond i. A Sampler is safe for concurrent use.
type Sampler struct {
	s        *Stream
	seqLen   int
	batch    int
	seed     uint64
	windows  int   // windows per epoch
	perEpoch int64 // batches per epoch

	mu    sync.Mutex // guards the memo of the last epoch's layout
	epoch int64      // epoch that shift and order describe, -1 for none
	shift int
	order []int
}

// NewSampler returns a sampler of batches of batch windows of seqLen+1 tokens
// of s.
func NewSampler(s *Stream, seqLen, batch int, seed uint64) (*Sampler, error) {
	if seqLen < 1 || batch < 1 {
		return nil, fmt.Errorf("sampler for %s: sequence length %d and batch size %d must both be at least 1", s.name, seqLen, batch)
	}
	w := s.Len()/seqLen - 1
	if w < batch {
		return nil, fmt.Errorf("sampler for %s: %d tokens give %d windows of %d+1 tokens per epoch, fewer than one batch of %d; lower the sequence length or the batch size, or add data",
			s.name, s.Len(), max(w, 0), seqLen, batch)
	}
	return &Sampler{s: s, seqLen: seqLen, batch: batch, seed: seed, windows: w, perEpoch: int64(w / batch), epoch: -1}, nil
}

// BatchesPerEpoch is the number of batches of one pass over the stream.
func (sm *Sampler) BatchesPerEpoch() int64 { return sm.perEpoch }

// Starts returns the stream offsets of the windows of batch index, one per
// row. It panics when index is negative.
func (sm *Sampler) Starts(index int64) []int {
	if index < 0 {
		panic(fmt.Sprintf("data: negative batch index %d", index))
	}
	epoch, j := index/sm.perEpoch, int(index%sm.perEpoch)
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if epoch != sm.epoch {
		r := rand.New(rand.NewPCG(sm.seed^uint64(epoch), samplerStream))
		sm.epoch, sm.shift, sm.order = epoch, r.IntN(sm.seqLen), r.Perm(sm.windows)
	}
	starts := make([]int, sm.batch)
	for r := range starts {
		starts[r] = sm.shift + sm.order[j*sm.batch+r]*sm.seqLen
	}
	return starts
}

// Batch returns batch index as an int64 tensor of shape [batch, seqLen+1]
// whose row r is the window starting at Starts(index)[r]. It panics when
// index is negative.
func (sm *Sampler) Batch(index int64) *tensors.Tensor {
	return windows(sm.s, sm.Starts(index), sm.seqLen+1)
}

// windows gathers the n-token windows at starts into an int64 tensor of
// shape [len(starts), n].
func windows(s *Stream, starts []int, n int) *tensors.Tensor {
	t := tensors.Zeros(tensors.Int64, int64(len(starts)), int64(n))
	v := t.Int64s()
	for r, st := range starts {
		s.read(v[r*n:(r+1)*n], st)
	}
	return t
}
