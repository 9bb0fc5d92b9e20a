package graphs_test

import (
	"math"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// TestCausalMultiHeadAttention checks the fused node, causal through its
// unidirectional attribute, against the explicit form (MatMul, mask,
// Softmax, MatMul) on a symbolic sequence length.
func TestCausalMultiHeadAttention(t *testing.T) {
	const b, tt, heads, width = 2, 7, 2, 8
	g := graphs.New("causal_attention")
	x := func(name string) *graphs.Value { return g.Input(name, tensors.Float32, graphs.S(b, "t", width)) }
	q, k, v := x("q"), x("k"), x("v")
	g.Output("fused", graphs.CausalMultiHeadAttention(q, k, v, heads, 0.3))
	split := func(x *graphs.Value) *graphs.Value {
		return graphs.Transpose(graphs.Reshape(x, 0, 0, heads, -1), 0, 2, 1, 3)
	}
	o, _ := layers.CausalAttention(split(q), split(k), split(v), 0.3)
	g.Output("explicit", graphs.ReshapeTo(graphs.Transpose(o, 0, 2, 1, 3), q.Shape, q))
	feeds := map[string]*tensors.Tensor{}
	for i, name := range []string{"q", "k", "v"} {
		feeds[name] = rnd(uint64(40+i), -2, 2, b, tt, width).Convert(tensors.Float32)
	}
	out := graphtest.Run(t, g, feeds)
	got, want := out["fused"].Float32s(), out["explicit"].Float32s()
	worst := 0.0
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	t.Logf("fused causal attention vs the explicit form: max |Δ| = %.3g", worst)
	if !(worst <= 1e-5) {
		t.Errorf("fused causal attention differs from the explicit form by %.3g", worst)
	}
}
