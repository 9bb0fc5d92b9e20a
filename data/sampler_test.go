package data

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"mohawk/tensors"
)

// samplerCorpus is a byte-encoded stream of 1001 tokens.
func samplerCorpus(t testing.TB) *Stream {
	return tokenizeText(t, strings.Repeat("the quick brown fox jumps over the lazy dog ", 23)[:1000])
}

func TestSamplerBatches(t *testing.T) {
	t.Parallel()
	s := samplerCorpus(t)
	const seqLen, batch = 16, 4
	sm, err := NewSampler(s, seqLen, batch, 42)
	if err != nil {
		t.Fatal(err)
	}
	// 1001/16 − 1 = 61 windows per epoch: 15 batches, 1 window left over.
	if sm.BatchesPerEpoch() != 15 {
		t.Fatalf("BatchesPerEpoch %d, want 15", sm.BatchesPerEpoch())
	}
	var shifts []int
	for epoch := range int64(8) {
		seen := map[int]bool{}
		shift := -1
		for j := range sm.BatchesPerEpoch() {
			index := epoch*sm.BatchesPerEpoch() + j
			b := sm.Batch(index)
			if !slices.Equal(b.Shape, []int64{batch, seqLen + 1}) || b.DType != tensors.Int64 {
				t.Fatalf("batch %d: %v%v", index, b.DType, b.Shape)
			}
			for r, st := range sm.Starts(index) {
				if shift < 0 {
					shift = st % seqLen
				}
				if st%seqLen != shift || seen[st] || st+seqLen+1 > s.Len() {
					t.Fatalf("epoch %d: window at %d (shift %d, seen %v) is not a fresh window of this epoch's grid", epoch, st, shift, seen[st])
				}
				seen[st] = true
				if !slices.Equal(b.Int64s()[r*(seqLen+1):(r+1)*(seqLen+1)], s.Window(st, seqLen+1)) {
					t.Fatalf("batch %d row %d is not the window at %d", index, r, st)
				}
			}
		}
		if len(seen) != 60 {
			t.Fatalf("epoch %d used %d windows, want 60", epoch, len(seen))
		}
		shifts = append(shifts, shift)
	}
	if slices.Equal(sm.Starts(0), sm.Starts(sm.BatchesPerEpoch())) {
		t.Error("epochs 0 and 1 begin with the same batch")
	}
	slices.Sort(shifts)
	if len(slices.Compact(shifts)) < 3 {
		t.Errorf("8 epochs used only the shifts %v", shifts)
	}
	// Pinned: batches depend only on PCG, IntN and Perm, which must not
	// drift between Go releases without this test noticing.
	if got, want := [][]int{sm.Starts(0), sm.Starts(15), sm.Starts(1000)}, [][]int{{599, 359, 759, 615}, {708, 788, 452, 292}, {492, 92, 140, 956}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("pinned starts %v, want %v", got, want)
	}
}

// TestSamplerResume checks that batches are a pure function of the seed and
// the index: samplers resumed at any index, or asked out of order, give the
// batches of an uninterrupted run.
func TestSamplerResume(t *testing.T) {
	t.Parallel()
	s := samplerCorpus(t)
	run, err := NewSampler(s, 16, 4, 7)
	if err != nil {
		t.Fatal(err)
	}
	total := 4*run.BatchesPerEpoch() + 3
	var want []*tensors.Tensor
	for i := range total {
		want = append(want, run.Batch(i))
	}
	for _, resume := range []int64{0, 1, 14, 15, 16, 31, total - 1} {
		sm, _ := NewSampler(s, 16, 4, 7)
		for i := resume; i < total; i++ {
			if got := sm.Batch(i); !slices.Equal(got.Int64s(), want[i].Int64s()) {
				t.Fatalf("resumed at %d: batch %d differs from the uninterrupted run", resume, i)
			}
		}
	}
	sm, _ := NewSampler(s, 16, 4, 7)
	for _, i := range []int64{50, 3, 49, 0, 17, 3, 62} {
		if got := sm.Batch(i); !slices.Equal(got.Int64s(), want[i].Int64s()) {
			t.Fatalf("out of order: batch %d differs", i)
		}
	}
	other, _ := NewSampler(s, 16, 4, 8)
	if slices.Equal(other.Batch(0).Int64s(), want[0].Int64s()) {
		t.Error("seeds 7 and 8 give the same first batch")
	}
}

func TestSamplerConcurrent(t *testing.T) {
	t.Parallel()
	s := samplerCorpus(t)
	ref, _ := NewSampler(s, 8, 3, 1)
	sm, _ := NewSampler(s, 8, 3, 1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range int64(200) {
				index := (i*37 + int64(g)*101) % 400
				if !slices.Equal(sm.Starts(index), ref.Starts(index)) {
					t.Errorf("goroutine %d: batch %d differs", g, index)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSamplerErrors(t *testing.T) {
	t.Parallel()
	s := samplerCorpus(t)
	tests := []struct {
		seqLen, batch int
		want          string
	}{
		{0, 1, "sequence length 0 and batch size 1 must both be at least 1"},
		{16, 0, "must both be at least 1"},
		{16, 62, "1001 tokens give 61 windows of 16+1 tokens per epoch, fewer than one batch of 62"},
		{600, 1, "give 0 windows"},
		{2000, 1, "give 0 windows"},
	}
	for _, tt := range tests {
		if _, err := NewSampler(s, tt.seqLen, tt.batch, 1); err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), s.Name()) {
			t.Errorf("NewSampler(%d, %d): error %v, want %q", tt.seqLen, tt.batch, err, tt.want)
		}
	}
	sm, err := NewSampler(s, 16, 61, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a negative index did not panic")
		}
	}()
	sm.Batch(-1)
}
