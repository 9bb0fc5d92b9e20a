package graphs

import "mohawk/tensors"

type attentionAttr struct {
	Heads int64
	Scale float64
}

// CausalMultiHeadAttention is softmax(q·kᵀ·scale + causal mask)·v per head
// for q, k, v [B, T, H·P] (the H heads side by side along the last axis, as
// a projection writes them): position i attends to positions j ≤ i. It
// returns [B, T, H·P].
//
// It is one node, ONNX Runtime's com.microsoft MultiHeadAttention, causal
// through its unidirectional attribute rather than an additive mask: with
// no bias input ORT's CUDA provider can pick its fused kernels (flash for
// float16), which do not materialise the [B, H, T, T] scores; a bias rules
// them out (docs/benchmarks.md). Its gradient recomputes the probabilities
// from q and k, as activation checkpointing does.
//
// Under the graph's bfloat16 MatMulPrecision, and for bfloat16 inputs, the
// node computes in float16 (ORT's CUDA kernel has none for bfloat16;
// float16 keeps more mantissa bits) and the result is cast back; the
// emulated precision rounds inputs and result to float16 the same way
// around a float32 node.
func CausalMultiHeadAttention(q, k, v *Value, heads int64, scale float64) *Value {
	attn := func(q, k, v *Value) *Value { return op1("MultiHeadAttention", &attentionAttr{heads, scale}, q, k, v) }
	p := graphOf("MultiHeadAttention", q, k, v).root.matmul
	switch {
	case q.DType == tensors.BFloat16 || q.DType == tensors.Float32 && p == MatMulBFloat16:
		h := func(x *Value) *Value { return Cast(x, tensors.Float16) }
		return Cast(attn(h(q), h(k), h(v)), q.DType)
	case q.DType == tensors.Float32 && p == MatMulBFloat16Emulated:
		r := func(x *Value) *Value { return Cast(Cast(x, tensors.Float16), tensors.Float32) }
		return r(attn(r(q), r(k), r(v)))
	}
	return attn(q, k, v)
}

// headsFirst turns x [B, T, H·P] into [B, H, T, P].
func headsFirst(x *Value, heads int64) *Value {
	return Transpose(Reshape(x, 0, 0, heads, -1), 0, 2, 1, 3)
}

// headsLast undoes headsFirst, giving like's shape.
func headsLast(x, like *Value) *Value {
	return ReshapeTo(Transpose(x, 0, 2, 1, 3), like.Shape, like)
}

// attentionGrad recomputes p = softmax(s), s = q·kᵀ·scale + mask (0 on and
// below the diagonal, the lowest finite value above), then dv = pᵀ·dy,
// ds = p∘(dp − Σ dp∘p) with dp = dy·vᵀ, dq = ds·k·scale, dk = dsᵀ·q·scale.
func attentionGrad(n *Node, gs []*Value, need []bool) []*Value {
	a := n.Attr.(*attentionAttr)
	q, k, v := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	t := q.Shape[1]
	mask := Trilu(Full(q.g, q.DType, S(t, t), Lowest(q.DType), q), true, 1) // [T, T]
	qh, kh, vh, dy := headsFirst(q, a.Heads), headsFirst(k, a.Heads), headsFirst(v, a.Heads), headsFirst(gs[0], a.Heads)
	sc := ScalarLike(q, a.Scale)
	p := Softmax(Add(Mul(MatMul(qh, Transpose(kh, 0, 1, 3, 2)), sc), mask), -1)
	out := make([]*Value, 3)
	if need[2] {
		out[2] = headsLast(MatMul(Transpose(p, 0, 1, 3, 2), dy), v)
	}
	if !need[0] && !need[1] {
		return out
	}
	dp := MatMul(dy, Transpose(vh, 0, 1, 3, 2))
	ds := Mul(p, Sub(dp, ReduceSum(Mul(dp, p), []int64{-1}, true)))
	if need[0] {
		out[0] = headsLast(Mul(MatMul(ds, kh), sc), q)
	}
	if need[1] {
		out[1] = headsLast(Mul(MatMul(Transpose(ds, 0, 1, 3, 2), qh), sc), k)
	}
	return out
}

func init() {
	register(&OpDef{Type: "MultiHeadAttention", Domain: "com.microsoft", Since: 1, Infer: inferMultiHeadAttention, Grad: attentionGrad, Attrs: multiHeadAttentionAttrs})
}

// inferMultiHeadAttention is the shape rule of MultiHeadAttention.
func inferMultiHeadAttention(n *Node) []TypeShape {
	a := n.Attr.(*attentionAttr)
	if len(n.Inputs) != 3 {
		panic(errorf("MultiHeadAttention", "want q, k, v (causal, no bias); got %d inputs", len(n.Inputs)))
	}
	q, k, v := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	if q.DType != tensors.Float32 && q.DType != tensors.Float16 {
		panic(errorf("MultiHeadAttention", "q %v must be float32 or float16", q))
	}
	sameDType("MultiHeadAttention", q, k, v)
	if q.Rank() != 3 || !q.Shape.Equal(k.Shape) || !q.Shape.Equal(v.Shape) {
		panic(errorf("MultiHeadAttention", "q, k, v must share one [B, T, H·P] shape; got %v, %v, %v", q, k, v))
	}
	width := q.Shape[2]
	if a.Heads < 1 || !width.Static() || width.K%a.Heads != 0 || a.Scale <= 0 {
		panic(errorf("MultiHeadAttention", "%d heads and scale %g do not fit width %v", a.Heads, a.Scale, width))
	}
	return ts(q.DType, q.Shape)
}

// multiHeadAttentionAttrs is the ONNX emitter of MultiHeadAttention.
func multiHeadAttentionAttrs(n *Node) []Attr {
	a := n.Attr.(*attentionAttr)
	return []Attr{intAttr("num_heads", a.Heads), floatAttr("scale", float32(a.Scale)), intAttr("unidirectional", 1)}
}
