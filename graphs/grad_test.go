package graphs_test

import (
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/tensors"
)

func rnd(seed uint64, lo, hi float64, shape ...int64) *tensors.Tensor {
	return graphtest.Random(rand.New(rand.NewPCG(seed, 1)), lo, hi, shape...)
}

type xs = []*graphs.Value
type gph = *graphs.Graph

// gradCases covers every differentiable op of the op table, with
// broadcasting and fan-out cases; TestGradCoverage enforces the coverage.
func gradCases() []graphtest.GradCase {
	in := func(shapes ...[]int64) []*tensors.Tensor {
		out := make([]*tensors.Tensor, len(shapes))
		for i, s := range shapes {
			out[i] = rnd(uint64(i+1), -1, 1, s...)
		}
		return out
	}
	pos := func(shape ...int64) *tensors.Tensor { return rnd(9, 0.5, 2, shape...) }
	s := func(d ...int64) []int64 { return d }
	unary := func(name string, f func(*graphs.Value) *graphs.Value, x *tensors.Tensor) graphtest.GradCase {
		return graphtest.GradCase{Name: name, Inputs: []*tensors.Tensor{x}, Build: func(_ gph, v xs) *graphs.Value { return f(v[0]) }}
	}
	return []graphtest.GradCase{
		{Name: "Add/broadcast", Inputs: in(s(2, 3, 4), s(3, 1)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Add(v[0], v[1]) }},
		{Name: "Sub/broadcast", Inputs: in(s(4), s(2, 3, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Sub(v[0], v[1]) }},
		{Name: "Mul/broadcast", Inputs: in(s(2, 1, 4), s(3, 1)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Mul(v[0], v[1]) }},
		{Name: "Mul/fanout", Inputs: in(s(3, 2)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Mul(v[0], graphs.Add(v[0], graphs.Exp(v[0]))) }},
		{Name: "Sum", Inputs: in(s(2, 3), s(2, 3), s(2, 3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Sum(v[0], graphs.Mul(v[1], v[0]), v[2], v[0])
		}},
		{Name: "Sum/broadcast", Inputs: in(s(2, 1, 3), s(4, 1), s(3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Sum(v[0], v[1], v[2])
		}},
		{Name: "Div/broadcast", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 2, 3), pos(3)}, Build: func(_ gph, v xs) *graphs.Value { return graphs.Div(v[0], v[1]) }},
		{Name: "Pow", Inputs: []*tensors.Tensor{pos(2, 3)}, Build: func(g gph, v xs) *graphs.Value { return graphs.Pow(v[0], g.Scalar(tensors.Float64, 2.5)) }},
		{Name: "Max", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 2, 3), rnd(2, -1, 1, 3)}, Build: func(_ gph, v xs) *graphs.Value { return graphs.Max(v[0], v[1]) }},
		{Name: "Min", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 2, 3), rnd(2, -1, 1, 2, 3)}, Build: func(_ gph, v xs) *graphs.Value { return graphs.Min(v[0], v[1]) }},
		{Name: "Where/broadcast", Inputs: in(s(2, 3), s(3)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.Where(graphs.Greater(v[0], g.Scalar(tensors.Float64, 0)), v[0], v[1])
		}},
		// B·T = 150 rows over 64 chunks: most chunks hold 3 rows, the last none.
		{Name: "CausalConv", Inputs: in(s(2, 75, 3), s(3, 1, 4), s(3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.CausalConv(v[0], v[1], v[2])
		}},
		// The conv in parts (two conv parts, two copied) with the second
		// part unused: its gradient enters CausalConvGrad as zeros.
		{Name: "CausalConvSplit", Inputs: in(s(2, 9, 7), s(3, 1, 4), s(3)), Build: func(_ gph, v xs) *graphs.Value {
			p := graphs.CausalConvSplit(v[0], v[1], v[2], 1, 2, 3, 1)
			return graphs.Concat(-1, p[0], p[2], p[3])
		}},
		// The rotary embedding of 4 of 6 channels with constant tables.
		{Name: "Rotary", Inputs: in(s(2, 3, 2, 6)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.Rotary(v[0], g.Const(rnd(5, -1, 1, 3, 1, 4)), g.Const(rnd(6, -1, 1, 3, 1, 4)))
		}},
		// The residual update (p₀ + p₁) + h: every input gets dy.
		{Name: "Residual", Inputs: in(s(2, 3), s(2, 3), s(2, 3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Mul(graphs.Residual(v[0], v[1], v[2]), v[1])
		}},
		// exp of segment sums from a cumulative sum (float64), and its rows
		// and columns: SegsumExp's gradient, through the CumSum.
		{Name: "SegsumExp", Inputs: in(s(2, 3, 5)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.SegsumExp(graphs.CumSum(v[0], 2, false, false), tensors.Float64)
		}},
		// The decay-weighted product g∘L, with respect to the log decays
		// and g (the gradient for g is the op itself, applied to dy).
		{Name: "SegsumExpMul", Inputs: in(s(2, 3, 5), s(2, 3, 5, 5)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.SegsumExpMul(graphs.CumSum(v[0], 2, false, false), v[1])
		}},
		// Stage 1's fused distance to a constant target, with respect to s
		// and the log decays (through their cumulative sum).
		{Name: "MaskedDiffSq", Inputs: in(s(2, 4, 4), s(2, 4)), Build: func(g gph, v xs) *graphs.Value {
			a := g.Const(rnd(7, 0, 0.5, 2, 4, 4))
			return graphs.MaskedDiffSq(v[0], graphs.CumSum(v[1], 1, false, false), a)
		}},
		// 3 queries over 5 keys (the last 3 positions).
		{Name: "CausalSoftmax", Inputs: in(s(2, 3, 5)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.CausalSoftmax(v[0], 0.7)
		}},
		{Name: "SiluMul", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 2, 5), rnd(2, -4, 4, 2, 5)}, Build: func(_ gph, v xs) *graphs.Value {
			return graphs.SiluMul(v[0], v[1])
		}},
		// y, z, x [2, 3, 6], a skip weight for each of 3 heads of 2
		// channels, a bias per channel.
		{Name: "GateSkip", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 2, 3, 6), rnd(2, -4, 4, 2, 3, 6), rnd(3, -1, 1, 2, 3, 6),
			rnd(4, -1, 1, 3), rnd(5, -1, 1, 6)}, Build: func(_ gph, v xs) *graphs.Value {
			return graphs.GateSkip(v[0], v[1], v[2], v[3], v[4])
		}},
		// Student logits against constant teacher logits, at scale 0.7.
		{Name: "SoftCrossEntropy", Inputs: in(s(2, 3, 6)), Build: func(g gph, v xs) *graphs.Value {
			ce, _ := graphs.SoftCrossEntropy(v[0], g.Const(rnd(8, -2, 2, 2, 3, 6)), 0.7)
			return ce
		}},
		// One rank (ops_fused_test.go's init): the mean over ranks is x.
		{Name: "AllReduce/one-rank", Inputs: in(s(2, 3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.AllReduce(graphs.Mul(v[0], v[0]))
		}},
		unary("Neg", graphs.Neg, rnd(1, -1, 1, 5)),
		unary("Exp", graphs.Exp, rnd(1, -1, 1, 5)),
		unary("Log", graphs.Log, pos(5)),
		unary("Sqrt", graphs.Sqrt, pos(5)),
		unary("Tanh", graphs.Tanh, rnd(1, -2, 2, 5)),
		unary("Sigmoid", graphs.Sigmoid, rnd(1, -2, 2, 5)),
		{Name: "Softplus", Inputs: []*tensors.Tensor{rnd(1, -2, 2, 5)}, Float32: true, Build: func(_ gph, v xs) *graphs.Value { return graphs.Softplus(v[0]) }},
		unary("Abs", graphs.Abs, rnd(1, 0.1, 1, 5)),
		unary("Reciprocal", graphs.Reciprocal, pos(5)),
		unary("Relu", graphs.Relu, rnd(1, 0.1, 1, 5)),
		{Name: "Erf", Inputs: []*tensors.Tensor{rnd(1, -1, 1, 5)}, Float32: true, Build: func(_ gph, v xs) *graphs.Value { return graphs.Erf(v[0]) }},
		{Name: "Sin", Inputs: []*tensors.Tensor{rnd(1, -2, 2, 5)}, Float32: true, Build: func(_ gph, v xs) *graphs.Value { return graphs.Sin(v[0]) }},
		{Name: "Cos", Inputs: []*tensors.Tensor{rnd(1, -2, 2, 5)}, Float32: true, Build: func(_ gph, v xs) *graphs.Value { return graphs.Cos(v[0]) }},
		unary("Identity", graphs.Identity, rnd(1, -1, 1, 3)),
		{Name: "Cast", Inputs: in(s(2, 3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Cast(graphs.Mul(graphs.Cast(v[0], tensors.Float32), graphs.Cast(v[0], tensors.Float32)), tensors.Float64)
		}, Float32: true},
		{Name: "MatMul/batched-broadcast", Inputs: in(s(2, 3, 4), s(4, 5)), Build: func(_ gph, v xs) *graphs.Value { return graphs.MatMul(v[0], v[1]) }},
		{Name: "MatMul/batch-both", Inputs: in(s(2, 1, 3, 4), s(3, 4, 2)), Build: func(_ gph, v xs) *graphs.Value { return graphs.MatMul(v[0], v[1]) }},
		{Name: "Gemm/nn", Inputs: in(s(3, 4), s(4, 2), s(2)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Gemm(v[0], v[1], v[2], false, false) }},
		{Name: "Gemm/tt", Inputs: in(s(4, 3), s(2, 4), s(3, 1)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Gemm(v[0], v[1], v[2], true, true) }},
		{Name: "Gemm/nt", Inputs: in(s(3, 4), s(2, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Gemm(v[0], v[1], nil, false, true) }},
		{Name: "Gemm/tn", Inputs: in(s(4, 3), s(4, 2)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Gemm(v[0], v[1], nil, true, false) }},
		{Name: "ReduceSum", Inputs: in(s(2, 3, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.ReduceSum(v[0], []int64{0, 2}, false) }},
		{Name: "ReduceSumSquare", Inputs: in(s(2, 3, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.ReduceSumSquare(v[0], []int64{1}, true) }},
		{Name: "ReduceMean/keep", Inputs: in(s(2, 3, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.ReduceMean(v[0], []int64{1}, true) }},
		{Name: "ReduceMax", Inputs: in(s(2, 5)), Build: func(_ gph, v xs) *graphs.Value { return graphs.ReduceMax(v[0], []int64{1}, false) }},
		{Name: "Softmax", Inputs: in(s(2, 5)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Softmax(v[0], -1) }},
		{Name: "LogSoftmax", Inputs: in(s(2, 3, 5)), Build: func(_ gph, v xs) *graphs.Value { return graphs.LogSoftmax(v[0], 1) }},
		{Name: "LayerNormalization", Inputs: in(s(2, 3, 6), s(6), s(6)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.LayerNormalization(v[0], v[1], v[2], 1e-5)
		}},
		{Name: "LayerNormalization/saved-statistics", Inputs: in(s(2, 3, 6), s(6), s(6)), Float32: true, Build: func(_ gph, v xs) *graphs.Value {
			return graphs.LayerNormalization(v[0], v[1], v[2], 1e-5)
		}},
		unary("Gelu/tanh", func(x *graphs.Value) *graphs.Value { return graphs.Gelu(x, true) }, rnd(1, -3, 3, 7)),
		{Name: "Gelu/erf", Inputs: []*tensors.Tensor{rnd(1, -3, 3, 7)}, Float32: true, Build: func(_ gph, v xs) *graphs.Value { return graphs.Gelu(v[0], false) }},
		{Name: "CausalMultiHeadAttention", Inputs: in(s(2, 5, 6), s(2, 5, 6), s(2, 5, 6)), Float32: true, Build: func(g gph, v xs) *graphs.Value {
			return graphs.CausalMultiHeadAttention(v[0], v[1], v[2], 2, 0.7)
		}},
		{Name: "Reshape", Inputs: in(s(2, 6)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Mul(graphs.Reshape(v[0], 3, -1), graphs.Reshape(v[0], 3, 4))
		}},
		{Name: "Transpose", Inputs: in(s(2, 3, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Transpose(v[0], 2, 0, 1) }},
		{Name: "Unsqueeze+Squeeze", Inputs: in(s(2, 3)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Squeeze(graphs.Mul(graphs.Unsqueeze(v[0], 0, 2), graphs.Unsqueeze(v[0], 0, 2)), 0)
		}},
		{Name: "Concat", Inputs: in(s(2, 3), s(2, 2)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Concat(1, v[0], v[1], v[0]) }},
		// A part without a gradient: Concat's VJP splits the adjoint and drops
		// that piece (once it dropped it from the Split node's own outputs).
		{Name: "Concat/constant-part", Inputs: in(s(2, 3)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.Concat(1, g.Const(rnd(5, -1, 1, 2, 2)), v[0])
		}},
		{Name: "Split/unused-output", Inputs: in(s(2, 5)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Split(v[0], 1, 2, 3)[1] }},
		{Name: "Slice", Inputs: in(s(3, 5)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Slice(v[0], []int64{1, -4}, []int64{graphs.End, -1}, []int64{0, 1}, nil)
		}},
		{Name: "Slice/strided", Inputs: in(s(5, 10, 2)), Build: func(_ gph, v xs) *graphs.Value {
			return graphs.Slice(v[0], []int64{1, 0, -2}, []int64{graphs.End, 4, graphs.End}, []int64{1, 0, 2}, []int64{3, 2, 1})
		}},
		{Name: "SliceDynamic+PadEnd", Inputs: in(s(2, 5)), Build: func(g gph, v xs) *graphs.Value {
			n := graphs.ShapeOf(v[0], 1, 2)
			p := graphs.PadEnd(v[0], 1, graphs.Sub(n, g.Int64s(2)), graphs.D(8), 0)
			return graphs.SliceDynamic(p, g.Int64s(1), g.Int64s(7), []int64{1}, graphs.S(2, 6))
		}},
		{Name: "Pad", Inputs: in(s(2, 3)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Pad(v[0], []int64{1, 0, 0, 2}, 0) }},
		{Name: "ZeroPad/one-axis", Inputs: in(s(2, 3)), Build: func(_ gph, v xs) *graphs.Value { return graphs.ZeroPad(v[0], []int64{0, 1, 0, 2}) }},
		{Name: "Gather/embedding-repeated-ids", Inputs: in(s(4, 3)), Build: func(g gph, v xs) *graphs.Value {
			ids := g.Const(tensors.FromInt64([]int64{2, 3}, []int64{0, 2, 2, 3, 0, 0}))
			return graphs.Gather(v[0], ids, 0)
		}},
		{Name: "GatherElements", Inputs: in(s(2, 4)), Build: func(g gph, v xs) *graphs.Value {
			idx := g.Const(tensors.FromInt64([]int64{2, 1}, []int64{3, 1}))
			return graphs.GatherElements(v[0], idx, 1)
		}},
		{Name: "GatherND", Inputs: in(s(3, 2)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.GatherND(v[0], g.Const(tensors.FromInt64([]int64{2, 1}, []int64{2, 0})))
		}},
		{Name: "ScatterElements", Inputs: in(s(2, 3), s(2, 1)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.ScatterElementsAdd(v[0], g.Const(tensors.FromInt64([]int64{2, 1}, []int64{2, 0})), v[1], 1)
		}},
		{Name: "ScatterND", Inputs: in(s(3, 2), s(2, 2)), Build: func(g gph, v xs) *graphs.Value {
			return graphs.ScatterNDAdd(v[0], g.Const(tensors.FromInt64([]int64{2, 1}, []int64{1, 1})), v[1])
		}},
		{Name: "Expand", Inputs: in(s(3, 1)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Expand(v[0], graphs.S(2, 3, 4)) }},
		{Name: "Trilu", Inputs: in(s(2, 3, 3)), Build: func(_ gph, v xs) *graphs.Value { return graphs.Trilu(v[0], false, 0) }},
		{Name: "CumSum", Inputs: in(s(2, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.CumSum(v[0], 1, false, false) }},
		{Name: "CumSum/exclusive-reverse", Inputs: in(s(2, 4)), Build: func(_ gph, v xs) *graphs.Value { return graphs.CumSum(v[0], 1, true, true) }},
	}
}

func TestGradients(t *testing.T) {
	for _, c := range gradCases() {
		t.Run(c.Name, func(t *testing.T) { graphtest.CheckGradients(t, c) })
	}
}

// TestGradCoverage fails when a differentiable op in the op table has no
// gradient check above.
func TestGradCoverage(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range gradCases() {
		for op := range c.Ops() {
			covered[op] = true
		}
	}
	for _, d := range graphs.Ops() {
		if d.NoGrad {
			continue
		}
		if !covered[d.Type] {
			t.Errorf("op %s has a gradient rule but no numeric gradient check", d.Type)
		}
	}
}
