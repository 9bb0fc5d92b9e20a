package graphs_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/tensors"
)

// TestZeroPad checks ZeroPad against ONNX Pad on a symbolic batch, for
// padding along one axis (a Concat with zero blocks) and along two (Pad).
func TestZeroPad(t *testing.T) {
	for _, tc := range []struct {
		name string
		pads []int64
		ops  []string // op types that must appear
	}{
		{"begin", []int64{0, 3, 0, 0, 0, 0}, []string{"Concat"}},
		{"end", []int64{0, 0, 0, 0, 0, 2}, []string{"Concat"}},
		{"both-sides-batch-axis", []int64{1, 0, 0, 2, 0, 0}, []string{"Concat"}},
		{"two-axes", []int64{0, 1, 0, 0, 0, 2}, []string{"Pad"}},
		{"none", []int64{0, 0, 0, 0, 0, 0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := graphs.New("zeropad")
			x := g.Input("x", tensors.Float64, graphs.S("b", 4, 3))
			g.Output("got", graphs.ZeroPad(x, tc.pads))
			g.Output("want", graphs.Pad(x, tc.pads, 0))
			var types []string
			for _, n := range g.Nodes() {
				types = append(types, n.Op)
			}
			for _, op := range tc.ops {
				if !slices.Contains(types, op) {
					t.Errorf("no %s node among %v", op, types)
				}
			}
			in := graphtest.Random(rand.New(rand.NewPCG(1, 2)), -1, 1, 2, 4, 3)
			out := graphtest.Run(t, g, map[string]*tensors.Tensor{"x": in})
			got, want := out["got"], out["want"]
			if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Float64s(), want.Float64s()) {
				t.Errorf("ZeroPad %v %v, Pad %v %v", got.Shape, got.Float32s(), want.Shape, want.Float32s())
			}
		})
	}
}

// TestBroadcastGradientReduction checks the adjoint of a broadcast operand
// reduced over leading and trailing axes ([B, T, H, P] against [H, 1]): it
// is two ReduceSums (the trailing block first) and sums what one would.
func TestBroadcastGradientReduction(t *testing.T) {
	g := graphs.New("sumlike")
	x := g.Input("x", tensors.Float64, graphs.S("b", 5, 3, 4))
	d := g.Input("d", tensors.Float64, graphs.S(3, 1))
	loss := graphs.ReduceSumAll(graphs.Mul(x, d))
	g.Output("grad", graphs.Gradients(loss, d)[0])
	var reductions [][]int64
	for _, n := range g.Nodes() {
		if n.Op == "ReduceSum" && n.Inputs[0].Rank() == 4 {
			reductions = append(reductions, n.Inputs[1].Data().Int64s())
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	in := graphtest.Random(rng, -1, 1, 2, 5, 3, 4)
	out := graphtest.Run(t, g, map[string]*tensors.Tensor{"x": in, "d": graphtest.Random(rng, -1, 1, 3, 1)})
	want := make([]float64, 3)
	for i, v := range in.Float64s() {
		want[(i/4)%3] += v
	}
	got := out["grad"].Float64s()
	for h := range want {
		if !(math.Abs(got[h]-want[h]) <= 1e-12) {
			t.Errorf("grad[%d] = %v, want %v", h, got[h], want[h])
		}
	}
	// The loss's own ReduceSumAll, then the gradient's two.
	if len(reductions) != 3 || !slices.Equal(reductions[1], []int64{3}) || !slices.Equal(reductions[2], []int64{0, 1}) {
		t.Errorf("reductions over %v, want [[0 1 2 3] [3] [0 1]]", reductions)
	}
}
