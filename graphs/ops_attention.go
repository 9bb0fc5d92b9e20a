package graphs

import "mohawk/tensors"

type attentionAttr struct {
	Heads  int64
	Scale  float64
	Causal bool // ONNX Runtime's unidirectional attribute, instead of a bias
}

// Slots of ONNX Runtime's com.microsoft MultiHeadAttention inputs that
// mohawk fills (the others stay empty).
const (
	mhaQuery, mhaKey, mhaValue, mhaBias = 0, 1, 2, 5
)

// MultiHeadAttention is softmax(q·kᵀ·scale + bias)·v per head for q, k, v
// [B, T, H·P] (the H heads side by side along the last axis, as a
// projection writes them) and an additive bias broadcastable to
// [B, H, T, T]. It returns [B, T, H·P].
//
// It is one node, ONNX Runtime's com.microsoft MultiHeadAttention, which on
// CUDA does not materialise the [B, H, T, T] scores. Its gradient
// recomputes the probabilities from q and k, as activation checkpointing
// does.
//
// Under the graph's bfloat16 MatMulPrecision the node computes in float16
// (ORT's CUDA kernel has none for bfloat16; float16 keeps more mantissa
// bits) and the result is cast back; the emulated precision rounds inputs
// and result to float16 the same way around a float32 node.
func MultiHeadAttention(q, k, v, bias *Value, heads int64, scale float64) *Value {
	return attention(q, k, v, bias, &attentionAttr{Heads: heads, Scale: scale})
}

// CausalMultiHeadAttention is MultiHeadAttention where position i attends
// to positions j ≤ i, through the node's unidirectional attribute instead of
// a bias: with no bias, ONNX Runtime's CUDA provider may pick its flash
// kernel (float16), which an additive bias rules out.
func CausalMultiHeadAttention(q, k, v *Value, heads int64, scale float64) *Value {
	return attention(q, k, v, nil, &attentionAttr{Heads: heads, Scale: scale, Causal: true})
}

func attention(q, k, v, bias *Value, a *attentionAttr) *Value {
	attn := func(q, k, v, bias *Value) *Value {
		if bias == nil {
			return op1("MultiHeadAttention", a, q, k, v)
		}
		return op1("MultiHeadAttention", a, q, k, v, nil, nil, bias)
	}
	if q.DType != tensors.Float32 {
		return attn(q, k, v, bias)
	}
	switch graphOf("MultiHeadAttention", q, k, v).root.matmul {
	case MatMulBFloat16:
		h := func(x *Value) *Value { return Cast(x, tensors.Float16) }
		var hb *Value
		if bias != nil {
			// Float32's lowest bias would become −Inf; float16's lowest masks as well.
			hb = h(Max(bias, ScalarLike(bias, Lowest(tensors.Float16))))
		}
		return Cast(attn(h(q), h(k), h(v), hb), tensors.Float32)
	case MatMulBFloat16Emulated:
		r := func(x *Value) *Value { return Cast(Cast(x, tensors.Float16), tensors.Float32) }
		return r(attn(r(q), r(k), r(v), bias))
	}
	return attn(q, k, v, bias)
}

// causalBias is the [1, 1, T, T] additive mask of causal attention for q
// [B, T, ·]: 0 on and below the diagonal, the lowest finite value above.
func causalBias(q *Value) *Value {
	t := q.Shape[1]
	low := Full(q.g, q.DType, S(t, t), Lowest(q.DType), q)
	return Unsqueeze(Trilu(low, true, 1), 0, 1)
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
	q, k, v := n.Inputs[mhaQuery], n.Inputs[mhaKey], n.Inputs[mhaValue]
	var bias *Value
	if a.Causal {
		bias = causalBias(q)
	} else {
		bias = n.Inputs[mhaBias]
	}
	qh, kh, vh, dy := headsFirst(q, a.Heads), headsFirst(k, a.Heads), headsFirst(v, a.Heads), headsFirst(gs[0], a.Heads)
	sc := ScalarLike(q, a.Scale)
	p := Softmax(Add(Mul(MatMul(qh, Transpose(kh, 0, 1, 3, 2)), sc), bias), -1)
	out := make([]*Value, len(n.Inputs))
	if need[mhaValue] {
		out[mhaValue] = headsLast(MatMul(Transpose(p, 0, 1, 3, 2), dy), v)
	}
	needBias := !a.Causal && need[mhaBias]
	if !need[mhaQuery] && !need[mhaKey] && !needBias {
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
	if !a.Causal {
		out[mhaBias] = sumLikeIf(need[mhaBias], ds, bias)
	}
	return out
}

func init() {
	register(&OpDef{Type: "MultiHeadAttention", Domain: "com.microsoft", Since: 1, Infer: func(n *Node) []TypeShape {
		a := n.Attr.(*attentionAttr)
		q, k, v := n.Inputs[mhaQuery], n.Inputs[mhaKey], n.Inputs[mhaValue]
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
		t := q.Shape[1]
		if a.Causal {
			if len(n.Inputs) != 3 {
				panic(errorf("MultiHeadAttention", "causal attention takes no bias"))
			}
			return ts(q.DType, q.Shape)
		}
		bias := n.Inputs[mhaBias]
		sameDType("MultiHeadAttention", q, bias)
		want := S(q.Shape[0], D(a.Heads), t, t)
		if bias.Rank() != 4 || bias.Shape[2] != t || bias.Shape[3] != t ||
			!(bias.Shape[0].IsOne() || bias.Shape[0] == want[0]) || !(bias.Shape[1].IsOne() || bias.Shape[1] == want[1]) {
			panic(errorf("MultiHeadAttention", "bias %v must broadcast to %v", bias, want))
		}
		return ts(q.DType, q.Shape)
	}, Grad: attentionGrad, Attrs: func(n *Node) []Attr {
		a := n.Attr.(*attentionAttr)
		attrs := []Attr{intAttr("num_heads", a.Heads), floatAttr("scale", float32(a.Scale))}
		if a.Causal {
			attrs = append(attrs, intAttr("unidirectional", 1))
		}
		return attrs
	}})
}
