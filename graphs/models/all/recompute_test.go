package all_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/llamba"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// students are small three-layer students of every family.
func students() map[string]family.Student {
	pm := phimamba.Config{Vocab: 64, VocabRaw: 64, PadMult: 8, DModel: 32, Layers: 3, DState: 8, VHeads: 4, QKHeads: 4,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 8, Activation: "silu", Inner: 64, Eps: 1e-5}
	lb := phimamba.Config{Vocab: 48, VocabRaw: 48, PadMult: 8, DModel: 24, Layers: 3, DState: 6, VHeads: 4, QKHeads: 2,
		DConv: 4, ConvBias: true, Expand: 2, ChunkSize: 8, Activation: "identity", Inner: 40, Eps: 1e-5}
	return map[string]family.Student{
		"phimamba":    pm,
		"llamba":      llamba.Config{Config: lb, MLPBias: true, HeadBias: true},
		"llamba-tied": llamba.Config{Config: lb, Tied: true},
	}
}

// randomWeights are s's parameters drawn by graphtest.RandomParams.
func randomWeights(s family.Student, seed uint64) map[string]*tensors.Tensor {
	shapes := map[string]graphs.Shape{}
	for name, dims := range s.ParamShapes() {
		shapes[name] = graphs.StaticShape(dims)
	}
	return graphtest.RandomParams(rand.New(rand.NewPCG(seed, 7)), shapes, 0.2)
}

// TestRecomputedLayers checks, for every family's student, that the
// parameter gradients with its layers recomputed in the backward pass
// (graphs.Graph.SetRecompute) and the soft cross-entropy in chunks of
// positions through the student's Head (losses.TimeChunked) equal the
// plain graph's to 1e-6 relative, and that recomputation did copy the
// layers (the graph grew).
func TestRecomputedLayers(t *testing.T) {
	for name, s := range students() {
		t.Run(name, func(t *testing.T) {
			sz := s.Sizes()
			const b, tlen = 2, 16
			w := randomWeights(s, 11)
			names := slices.Sorted(maps.Keys(w))
			rng := rand.New(rand.NewPCG(3, 3))
			ids := make([]int64, b*tlen)
			for i := range ids {
				ids[i] = rng.Int64N(sz.Vocab)
			}
			feeds := map[string]*tensors.Tensor{"ids": tensors.FromInt64([]int64{b, tlen}, ids),
				"teacher": graphtest.Random(rng, -3, 3, b, tlen, sz.Vocab).AsFloat32()}
			maps.Copy(feeds, w)
			build := func(recompute bool, chunk int64) *graphs.Graph {
				g := graphs.New("student_grads")
				g.SetRecompute(recompute)
				idv := g.Input("ids", tensors.Int64, graphs.S(b, tlen))
				te := graphs.Tanh(g.Input("teacher", tensors.Float32, graphs.S(b, tlen, sz.Vocab)))
				ps := map[string]*graphs.Value{}
				for _, n := range names {
					ps[n] = g.Input(n, tensors.Float32, graphs.StaticShape(w[n].Shape))
				}
				p := layers.ParamFunc(func(name string, _ graphs.Shape) *graphs.Value { return ps[name] })
				var loss *graphs.Value
				if chunk == 0 {
					loss = losses.SoftCrossEntropy(s.Forward(p, idv, family.StudentOptions{Form: family.FormSSD}).Logits, te, 1)
				} else {
					out := s.Forward(p, idv, family.StudentOptions{Form: family.FormSSD, NoLogits: true})
					h := out.Hidden[len(out.Hidden)-1]
					loss = losses.TimeChunked(g, tlen, chunk, func(at func(*graphs.Value) *graphs.Value) *graphs.Value {
						return losses.SoftCrossEntropy(s.Head(p, at(h)), at(te), 1)
					})
				}
				wrt := make([]*graphs.Value, len(names))
				for i, n := range names {
					wrt[i] = ps[n]
				}
				for i, d := range graphs.Gradients(loss, wrt...) {
					g.Output("d_"+names[i], d)
				}
				g.Output("loss", loss)
				return g
			}
			plain := build(false, 0)
			want := graphtest.Run(t, plain, feeds)
			for _, tc := range []struct {
				recompute bool
				chunk     int64
			}{{true, 0}, {true, 5}, {false, 6}} {
				g := build(tc.recompute, tc.chunk)
				if tc.recompute && !(len(g.Nodes()) > len(plain.Nodes())+sz.Layers*10) {
					t.Errorf("recompute: %d nodes against %d without: the layers were not copied", len(g.Nodes()), len(plain.Nodes()))
				}
				got := graphtest.Run(t, g, feeds)
				for n, x := range want {
					shareddata.WantCloseRel(t, n, got[n], x, 1e-6)
				}
			}
		})
	}
}
