package graphs

import "mohawk/tensors"

type attentionAttr struct {
	Heads int64
	Scale float64
}

// Slots of ONNX Runtime's com.microsoft MultiHeadAttention inputs that
// mohawk fills (the others stay empty).
const (
	mhaQuery, mhaKey, mhaValue, mhaBias = 0, 1, 2, 5
)

// MultiHeadAttention is softmax(q·kᵀ·scale + bias)·v per head for q, k, v
// [B, T, H·P] (the H heads side by side along the last axis, as a
// projection writes them) and an additive bias broadcastable to
// [B, H, T, T] ([1, 1, T, T] for a causal mask). It returns [B, T, H·P].
//
// It is one node, ONNX Runtime's com.microsoft MultiHeadAttention, whose
// CUDA memory-efficient kernel (ORT's choice for float32 from sequence
// length 256) does not materialise the [B, H, T, T] scores. Its gradient
// recomputes the probabilities from q and k, as activation checkpointing
// does.
//
// Under the graph's bfloat16 MatMulPrecision the node computes in float16
// (ORT's CUDA kernel has none for bfloat16; float16 keeps more mantissa
// bits) and the result is cast back; the emulated precision rounds inputs
// and result to float16 the same way around a float32 node.
func MultiHeadAttention(q, k, v, bias *Value, heads int64, scale float64) *Value {
	attn := func(q, k, v, bias *Value) *Value {
		return op1("MultiHeadAttention", &attentionAttr{heads, scale}, q, k, v, nil, nil, bias)
	}
	if q.DType != tensors.Float32 {
		return attn(q, k, v, bias)
	}
	switch graphOf("MultiHeadAttention", q, k, v, bias).root.matmul {
	case MatMulBFloat16:
		h := func(x *Value) *Value { return Cast(x, tensors.Float16) }
		// Float32's lowest bias would become −Inf; float16's lowest masks as well.
		hb := h(Max(bias, ScalarLike(bias, Lowest(tensors.Float16))))
		return Cast(attn(h(q), h(k), h(v), hb), tensors.Float32)
	case MatMulBFloat16Emulated:
		r := func(x *Value) *Value { return Cast(Cast(x, tensors.Float16), tensors.Float32) }
		return r(attn(r(q), r(k), r(v), bias))
	}
	return attn(q, k, v, bias)
}

// headsFirst turns x [B, T, H·P] into [B, H, T, P].
func headsFirst(x *Value, heads int64) *Value {
	return Transpose(Reshape(x, 0, 0, heads, -1), 0, 2, 1, 3)
}

// headsLast undoes headsFirst, giving like's shape.
func headsLast(x, like *Value) *Value {
	return ReshapeTo(Transpose(x, 0, 2, 1, 3), like.Shape, like)
}

// attentionGrad recomputes p = softmax(s), s = q·kᵀ·scale + bias, then
// dv = pᵀ·dy, ds = p∘(dp − Σ dp∘p) with dp = dy·vᵀ, dq = ds·k·scale,
// dk = dsᵀ·q·scale, dbias = Σ ds over its broadcast axes.
func attentionGrad(n *Node, gs []*Value, need []bool) []*Value {
	a := n.Attr.(*attentionAttr)
	q, k, v, bias := n.Inputs[mhaQuery], n.Inputs[mhaKey], n.Inputs[mhaValue], n.Inputs[mhaBias]
	qh, kh, vh, dy := headsFirst(q, a.Heads), headsFirst(k, a.Heads), headsFirst(v, a.Heads), headsFirst(gs[0], a.Heads)
	sc := ScalarLike(q, a.Scale)
	p := Softmax(Add(Mul(MatMul(qh, Transpose(kh, 0, 1, 3, 2)), sc), bias), -1)
	out := make([]*Value, len(n.Inputs))
	if need[mhaValue] {
		out[mhaValue] = headsLast(MatMul(Transpose(p, 0, 1, 3, 2), dy), v)
	}
	if !need[mhaQuery] && !need[mhaKey] && !need[mhaBias] {
		return out
	}
	dp := MatMul(dy, Transpose(vh, 0, 1, 3, 2))
	ds := Mul(p, Sub(dp, ReduceSum(Mul(dp, p), []int64{-1}, true)))
	if need[mhaQuery] {
		out[mhaQuery] = headsLast(Mul(MatMul(ds, kh), sc), q)
	}
	if need[mhaKey] {
		out[mhaKey] = headsLast(Mul(MatMul(Transpose(ds, 0, 1, 3, 2), qh), sc), k)
	}
	out[mhaBias] = sumLikeIf(need[mhaBias], ds, bias)
	return out
}

func init() {
	register(&OpDef{Type: "MultiHeadAttention", Domain: "com.microsoft", Since: 1, Infer: func(n *Node) []TypeShape {
		a := n.Attr.(*attentionAttr)
		q, k, v, bias := n.Inputs[mhaQuery], n.Inputs[mhaKey], n.Inputs[mhaValue], n.Inputs[mhaBias]
		if q.DType != tensors.Float32 && q.DType != tensors.Float16 {
			panic(errorf("MultiHeadAttention", "q %v must be float32 or float16", q))
		}
		sameDType("MultiHeadAttention", q, k, v, bias)
		if q.Rank() != 3 || !q.Shape.Equal(k.Shape) || !q.Shape.Equal(v.Shape) {
			panic(errorf("MultiHeadAttention", "q, k, v must share one [B, T, H·P] shape; got %v, %v, %v", q, k, v))
		}
		width := q.Shape[2]
		if a.Heads < 1 || !width.Static() || width.K%a.Heads != 0 || a.Scale <= 0 {
			panic(errorf("MultiHeadAttention", "%d heads and scale %g do not fit width %v", a.Heads, a.Scale, width))
		}
		t := q.Shape[1]
		want := S(q.Shape[0], D(a.Heads), t, t)
		if bias.Rank() != 4 || bias.Shape[2] != t || bias.Shape[3] != t ||
			!(bias.Shape[0].IsOne() || bias.Shape[0] == want[0]) || !(bias.Shape[1].IsOne() || bias.Shape[1] == want[1]) {
			panic(errorf("MultiHeadAttention", "bias %v must broadcast to %v", bias, want))
		}
		return ts(q.DType, q.Shape)
	}, Grad: attentionGrad, Attrs: func(n *Node) []Attr {
		a := n.Attr.(*attentionAttr)
		return []Attr{intAttr("num_heads", a.Heads), floatAttr("scale", float32(a.Scale))}
	}})
}
