package stages

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"mohawk/data"
	"mohawk/graphs/train"
	"mohawk/tensors"
)

// hub sums float32 buffers over n in-process ranks in rank order, as
// dist.Conn does over TCP.
type hub struct {
	mu      sync.Mutex
	cond    *sync.Cond
	bufs    [][]float32
	arrived int
	round   int
	sum     []float32
}

func newHub(n int) *hub {
	h := &hub{bufs: make([][]float32, n)}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// replica is one rank of a hub.
type replica struct {
	h    *hub
	rank int
}

func (r replica) Rank() int { return r.rank }
func (r replica) Size() int { return len(r.h.bufs) }

func (r replica) AllReduce(_ context.Context, buf []float32) error {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	round := h.round
	h.bufs[r.rank] = buf
	if h.arrived++; h.arrived == len(h.bufs) {
		h.sum = make([]float32, len(buf))
		for _, b := range h.bufs {
			for i, v := range b {
				h.sum[i] += v
			}
		}
		h.arrived, h.round = 0, h.round+1
		h.cond.Broadcast()
	}
	for round == h.round {
		h.cond.Wait()
	}
	copy(buf, h.sum)
	return nil
}

// TestTrainReplicasShareEveryStep runs a stage as two ranks: rank r runs
// micro-batches 2r and 2r+1 of every step's four, the sampler's batches of
// the one-process run, and both record the losses of all four.
func TestTrainReplicasShareEveryStep(t *testing.T) {
	t.Parallel()
	const ranks, K = 2, 4
	h := newHub(ranks)
	fakes := make([]*fakeSetup, ranks)
	results := make([]*TrainResult, ranks)
	errs := make([]error, ranks)
	var wg sync.WaitGroup
	for r := range ranks {
		f := newFake(t, 5, 2, 0, 0)
		f.spec.MicroBatches = K
		f.env.Replicas = replica{h, r}
		fakes[r] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[r], errs[r] = f.env.Train(f.spec)
		}()
	}
	wg.Wait()
	for r, f := range fakes {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		s := f.spec
		sm, err := data.NewSampler(f.env.TrainData, s.SeqLen, s.MicroBatch, f.env.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.rt.seen) != 5 {
			t.Fatalf("rank %d ran %d steps, want 5", r, len(f.rt.seen))
		}
		for i, seen := range f.rt.seen {
			var want []int64
			for j := range K / ranks {
				want = append(want, sm.Batch(int64(i*K+r*K/ranks+j)).Int64s()...)
			}
			if !slices.Equal(seen.batch, want) {
				t.Errorf("rank %d, step %d: ran on other batches than data indices %d..%d", r, seen.step, i*K+r*K/ranks, i*K+(r+1)*K/ranks-1)
			}
		}
		if res := results[r]; res.Tokens != int64(5*K*s.MicroBatch*s.SeqLen) || !slices.Equal(res.Losses, results[0].Losses) {
			t.Errorf("rank %d: %d tokens, losses %v; rank 0's %v", r, res.Tokens, res.Losses, results[0].Losses)
		}
	}
}

// TestTrainReplicasRefuseAnUnevenSplit: three micro-batches per step do
// not divide among two ranks.
func TestTrainReplicasRefuseAnUnevenSplit(t *testing.T) {
	t.Parallel()
	f := newFake(t, 2, 1, 0, 0)
	f.spec.MicroBatches = 3
	f.env.Replicas = replica{newHub(2), 1}
	_, err := f.train(t)
	if err == nil || !strings.Contains(err.Error(), "3 micro-batches per step do not divide among 2 ranks") {
		t.Errorf("got %v, want a refusal of 3 micro-batches among 2 ranks", err)
	}
}

// TestShareStepSpec: with several ranks the step graph takes the rank's
// micro-batches and averages its gradients; alone it is the spec as is.
func TestShareStepSpec(t *testing.T) {
	t.Parallel()
	spec := TrainSpec{MicroBatches: 6}
	if got := (share{ranks: 1, k: 6}).stepSpec(spec); got.MicroBatches != 6 || got.AllReduce != nil {
		t.Errorf("one rank: %d micro-batches, all-reduce %v", got.MicroBatches, got.AllReduce)
	}
	got := (share{rank: 1, ranks: 3, lo: 2, k: 2}).stepSpec(spec)
	if got.MicroBatches != 2 || got.AllReduce == nil || got.AllReduce.BucketBytes != DefaultBucketBytes {
		t.Errorf("three ranks: %d micro-batches, all-reduce %+v", got.MicroBatches, got.AllReduce)
	}
}

// TestFirstNonFiniteNamesTheRank: a non-finite loss among the gathered
// losses names the rank whose micro-batch it was.
func TestFirstNonFiniteNamesTheRank(t *testing.T) {
	t.Parallel()
	nan := float32(math.NaN())
	spec := TrainSpec{MicroBatches: 4, Params: []train.Param{{Name: "w"}}}
	for _, c := range []struct {
		s      share
		losses []float32
		want   string
	}{
		{share{ranks: 1, k: 4}, []float32{1, 2, nan, 4}, "loss"},
		{share{ranks: 2, k: 2}, []float32{1, 2, nan, 4}, "loss of rank 1"},
		{share{ranks: 4, k: 1}, []float32{1, float32(math.Inf(1)), 3, nan}, "loss of rank 1"},
		{share{ranks: 2, k: 2}, []float32{1, 2, 3, 4}, "gradient of w"},
	} {
		got := map[string]*tensors.Tensor{
			train.LossName:      tensors.FromFloat32([]int64{1, 4}, c.losses),
			train.GradSumSqName: tensors.FromFloat32([]int64{1, 1}, []float32{nan}),
		}
		if n := firstNonFinite(got, 0, spec, c.s); n != c.want {
			t.Errorf("%+v, losses %v: %q, want %q", c.s, c.losses, n, c.want)
		}
	}
}
