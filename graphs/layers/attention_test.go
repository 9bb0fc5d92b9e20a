package layers_test

import (
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// TestCausalAttentionFused checks that causal attention's output, its
// probabilities and the gradients of both with respect to q, k and v
// agree between the stock ops and the fused softmax of training graphs
// (graphs.CausalSoftmax, with graphs.Graph.UseMatrixKernels), and that the
// fused graph has no Softmax node.
func TestCausalAttentionFused(t *testing.T) {
	const b, h, n, p = 2, 3, 11, 4
	build := func(fused bool) *graphs.Graph {
		g := graphs.New("attention")
		if fused {
			g.UseMatrixKernels()
		}
		q := g.Input("q", tensors.Float32, graphs.S(b, h, n, p))
		k := g.Input("k", tensors.Float32, graphs.S(b, h, n, p))
		v := g.Input("v", tensors.Float32, graphs.S(b, h, n, p))
		out, probs := layers.CausalAttention(q, k, v, 0.5)
		g.Output("out", out)
		g.Output("probs", probs)
		loss := graphs.Add(graphs.ReduceSumAll(graphs.Mul(out, g.Input("r", tensors.Float32, out.Shape))),
			graphs.ReduceSumAll(graphs.Mul(probs, g.Input("r2", tensors.Float32, probs.Shape))))
		for i, d := range graphs.Gradients(loss, q, k, v) {
			g.Output([]string{"dq", "dk", "dv"}[i], d)
		}
		return g
	}
	fused := build(true)
	ops := map[string]int{}
	for _, node := range fused.Nodes() {
		ops[node.Op]++
	}
	if ops["CausalSoftmax"] != 1 || ops["Softmax"] != 0 {
		t.Fatalf("fused graph nodes by op %v: want one CausalSoftmax and no Softmax", ops)
	}
	rng := rand.New(rand.NewPCG(2, 9))
	feeds := map[string]*tensors.Tensor{}
	for _, name := range []string{"q", "k", "v", "r"} {
		feeds[name] = graphtest.Random(rng, -2, 2, b, h, n, p).AsFloat32()
	}
	feeds["r2"] = graphtest.Random(rng, -1, 1, b, h, n, n).AsFloat32()
	got, want := graphtest.Run(t, fused, feeds), graphtest.Run(t, build(false), feeds)
	for name, w := range want {
		shareddata.WantCloseRel(t, name+", fused vs stock", got[name], w, 1e-5)
	}
}
