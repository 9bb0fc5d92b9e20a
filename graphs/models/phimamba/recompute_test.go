package phimamba_test

import (
	"math/rand/v2"
	"sort"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/phimamba"
	"mohawk/tensors"
)

// TestRecomputedLayers checks that the student's parameter gradients with
// its layers recomputed in the backward pass (graphs.Graph.SetRecompute)
// and the soft cross-entropy in chunks of positions (losses.TimeChunked)
// equal the plain graph's to 1e-6 relative, and that recomputation did
// copy the layers (the graph grew).
func TestRecomputedLayers(t *testing.T) {
	c := phimamba.Config{Vocab: 64, VocabRaw: 64, PadMult: 8, DModel: 32, Layers: 3, DState: 8, VHeads: 4, QKHeads: 4,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 8, Activation: "silu", Inner: 64, Eps: 1e-5}
	const b, tlen = 2, 16
	w := randomWeights(c, 11)
	var names []string
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	rng := rand.New(rand.NewPCG(3, 3))
	ids := make([]int64, b*tlen)
	for i := range ids {
		ids[i] = rng.Int64N(c.Vocab)
	}
	feeds := map[string]*tensors.Tensor{"ids": tensors.FromInt64([]int64{b, tlen}, ids),
		"teacher": graphtest.Random(rng, -3, 3, b, tlen, c.Vocab).AsFloat32()}
	for n, x := range w {
		feeds[n] = x
	}
	build := func(recompute bool, chunk int64) *graphs.Graph {
		g := graphs.New("student_grads")
		g.SetRecompute(recompute)
		idv := g.Input("ids", tensors.Int64, graphs.S(b, tlen))
		te := graphs.Tanh(g.Input("teacher", tensors.Float32, graphs.S(b, tlen, c.Vocab)))
		ps := map[string]*graphs.Value{}
		for _, n := range names {
			ps[n] = g.Input(n, tensors.Float32, graphs.StaticShape(w[n].Shape))
		}
		p := layers.ParamFunc(func(name string, _ graphs.Shape) *graphs.Value { return ps[name] })
		var loss *graphs.Value
		if chunk == 0 {
			loss = losses.SoftCrossEntropy(phimamba.Forward(p, c, idv, phimamba.Options{Form: phimamba.FormSSD}).Logits, te, 1)
		} else {
			out := phimamba.Forward(p, c, idv, phimamba.Options{Form: phimamba.FormSSD, NoLogits: true})
			h := out.Hidden[len(out.Hidden)-1]
			loss = losses.TimeChunked(g, tlen, chunk, func(at func(*graphs.Value) *graphs.Value) *graphs.Value {
				return losses.SoftCrossEntropy(phimamba.Head(p, c, at(h)), at(te), 1)
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
		if tc.recompute && !(len(g.Nodes()) > len(plain.Nodes())+c.Layers*10) {
			t.Errorf("recompute: %d nodes against %d without: the layers were not copied", len(g.Nodes()), len(plain.Nodes()))
		}
		got := graphtest.Run(t, g, feeds)
		for name, x := range want {
			compare(t, name, got[name], x, 1e-6)
		}
	}
}
