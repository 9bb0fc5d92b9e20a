package llama_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/llama"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// TestCacheDecode: the logits of a prefill of T−2 tokens followed by two
// one-token steps on the KV cache equal the full pass's last three
// positions, for full attention and for a sliding window shorter than T,
// with grouped key/value heads; the cache keeps KVHeads heads.
func TestCacheDecode(t *testing.T) {
	const tlen = 12
	for _, window := range []int64{0, 5} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			c := llama.Config{Vocab: 40, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 6,
				Eps: 1e-5, QKVBias: true, Window: window, MaxPositions: 64,
				Rope: hfconfig.Rope{Type: "llama3", Theta: 10000, Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8}}
			w := graphtest.RandomParams(rand.New(rand.NewPCG(3, 5)), c.ParamShapes(), 0.2)
			ids := make([]int64, tlen)
			for i := range ids {
				ids[i] = int64((i*7 + 3) % 40)
			}
			full := logitsOf(t, c, w, ids)
			past := make([]*tensors.Tensor, 2*c.Layers)
			for i := range past {
				past[i] = tensors.Zeros(tensors.Float32, 1, c.KVHeads, 0, c.HeadDim)
			}
			for _, step := range [][2]int{{0, tlen - 2}, {tlen - 2, tlen - 1}, {tlen - 1, tlen}} {
				var logits *tensors.Tensor
				logits, past = stepOf(t, c, w, ids[step[0]:step[1]], past)
				n := int64(step[1] - step[0])
				if got := past[0].Shape; got[1] != c.KVHeads || got[2] != int64(step[1]) {
					t.Fatalf("present key shape %v, want [1 %d %d %d]", got, c.KVHeads, step[1], c.HeadDim)
				}
				// The full pass's logits at the same positions.
				want := tensors.FromFloat32([]int64{1, n, c.Vocab}, full.Float32s()[int64(step[0])*c.Vocab:int64(step[1])*c.Vocab])
				d := shareddata.MaxAbsDiff(logits, want)
				t.Logf("positions %d..%d: max |Δ| = %.3g", step[0], step[1]-1, d)
				if !(d <= 1e-5) {
					t.Errorf("positions %d..%d: cached logits differ from the full pass by %.3g", step[0], step[1]-1, d)
				}
			}
		})
	}
}

func logitsOf(t *testing.T, c llama.Config, w map[string]*tensors.Tensor, ids []int64) *tensors.Tensor {
	t.Helper()
	g := graphs.New("full")
	in := g.Input("ids", tensors.Int64, graphs.S(1, "t"))
	if err := graphs.Try(func() {
		g.Output("logits", llama.Forward(&layers.Frozen{G: g, Tensors: w}, c, in, llama.Options{ExplicitAttention: true}).Logits)
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{"ids": tensors.FromInt64([]int64{1, int64(len(ids))}, ids)})["logits"]
}

// stepOf runs ids after the cache past (keys then values per layer) and
// returns the logits and the presents.
func stepOf(t *testing.T, c llama.Config, w map[string]*tensors.Tensor, ids []int64, past []*tensors.Tensor) (*tensors.Tensor, []*tensors.Tensor) {
	t.Helper()
	g := graphs.New("step")
	in := g.Input("ids", tensors.Int64, graphs.S(1, "t"))
	feeds := map[string]*tensors.Tensor{"ids": tensors.FromInt64([]int64{1, int64(len(ids))}, ids)}
	cache := &llama.Cache{}
	for i := 0; i < c.Layers; i++ {
		for j, dst := range []*[]*graphs.Value{&cache.PastKey, &cache.PastValue} {
			name := fmt.Sprintf("past.%d.%d", i, j)
			*dst = append(*dst, g.Input(name, tensors.Float32, graphs.S(1, c.KVHeads, "past", c.HeadDim)))
			feeds[name] = past[2*i+j]
		}
	}
	if err := graphs.Try(func() {
		g.Output("logits", llama.Forward(&layers.Frozen{G: g, Tensors: w}, c, in, llama.Options{Cache: cache}).Logits)
		for i := 0; i < c.Layers; i++ {
			g.Output(fmt.Sprintf("present.%d.0", i), cache.PresentKey[i])
			g.Output(fmt.Sprintf("present.%d.1", i), cache.PresentValue[i])
		}
	}); err != nil {
		t.Fatal(err)
	}
	got := graphtest.Run(t, g, feeds)
	next := make([]*tensors.Tensor, 2*c.Layers)
	for i := range next {
		next[i] = got[fmt.Sprintf("present.%d.%d", i/2, i%2)]
	}
	return got["logits"], next
}
