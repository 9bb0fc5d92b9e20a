package graphs_test

import (
	"math"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// TestCausalMultiHeadAttention checks the unidirectional node against the
// same node with an explicit causal bias, and that it carries no bias.
func TestCausalMultiHeadAttention(t *testing.T) {
	const b, tt, heads, width = 2, 7, 2, 8
	g := graphs.New("causal_attention")
	x := func(name string) *graphs.Value { return g.Input(name, tensors.Float32, graphs.S(b, "t", width)) }
	q, k, v := x("q"), x("k"), x("v")
	mask := graphs.Unsqueeze(layers.MaskBias(layers.CausalMask(q, k, 1, 1), q), 0, 1)
	g.Output("causal", graphs.CausalMultiHeadAttention(q, k, v, heads, 0.3))
	g.Output("bias", graphs.MultiHeadAttention(q, k, v, mask, heads, 0.3))
	for _, n := range g.Nodes() {
		if n.Op == "MultiHeadAttention" && len(n.Inputs) != 3 && len(n.Inputs) != 6 {
			t.Errorf("attention node with %d inputs", len(n.Inputs))
		}
	}
	feeds := map[string]*tensors.Tensor{}
	for i, name := range []string{"q", "k", "v"} {
		feeds[name] = rnd(uint64(40+i), -2, 2, b, tt, width).Convert(tensors.Float32)
	}
	out := graphtest.Run(t, g, feeds)
	got, want := out["causal"].Float32s(), out["bias"].Float32s()
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-6 {
		t.Errorf("unidirectional attention differs from the biased one by %.3g", worst)
	}
}
