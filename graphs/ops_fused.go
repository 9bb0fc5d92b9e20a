package graphs

import "mohawk/tensors"

// FusedDomain is the ONNX domain of the fused kernels that mohawk/runtime
// registers in every session (runtime.FusedDomain; a test checks that the
// two agree). Graphs that use them run only on mohawk's runtime.
const FusedDomain = "mohawk.fused"

// AdamWCoefficients is the length of AdamW's coef input.
const AdamWCoefficients = 8

// AdamW is one fused AdamW update of a parameter p with gradient g and
// moments m, v (one shape and float dtype). coef [8] holds b1, a1, b2, a2,
// decay, step, eps and finite; the results are
//
//	m′ = b1·m + a1·g,  v′ = b2·v + a2·(g·g),  p′ = p·decay − step·(m′ / (√v′ + eps))
//
// with every operation rounded once in that order (the stock-op form gives
// the same bits), or p, m, v unchanged where finite is 0. It is one node
// reading p, g, m, v and writing p′, m′, v′, where the stock ops make about
// fifteen whole-tensor passes. It has no gradient.
func AdamW(p, g, m, v, coef *Value) (p2, m2, v2 *Value) {
	out := graphOf("AdamW", p, g, m, v, coef).add("AdamW", nil, p, g, m, v, coef)
	return out[0], out[1], out[2]
}

// GeluGrad is dy·gelu′(x) for the tanh form of Gelu, one fused node (x and
// dy of one shape and dtype: float32, float64, or bfloat16, whose result
// is computed in float32 and rounded once) where the stock ops take
// thirteen passes. It is Gelu's gradient; it has none itself.
func GeluGrad(x, dy *Value) *Value { return op1("GeluGrad", nil, x, dy) }

func init() {
	register(&OpDef{Type: "GeluGrad", Domain: FusedDomain, Since: 1, NoGrad: true, Infer: func(n *Node) []TypeShape {
		x, dy := n.Inputs[0], n.Inputs[1]
		switch x.DType {
		case tensors.Float32, tensors.Float64, tensors.BFloat16:
		default:
			panic(errorf("GeluGrad", "x %v must be float32, float64 or bfloat16", x))
		}
		sameDType("GeluGrad", x, dy)
		if !x.Shape.Equal(dy.Shape) {
			panic(errorf("GeluGrad", "dy %v must have x's shape %v", dy, x.Shape))
		}
		return ts(x.DType, x.Shape)
	}})
	register(&OpDef{Type: "AdamW", Domain: FusedDomain, Since: 1, NoGrad: true, Infer: func(n *Node) []TypeShape {
		if len(n.Inputs) != 5 {
			panic(errorf("AdamW", "want p, g, m, v, coef; got %d inputs", len(n.Inputs)))
		}
		p, coef := n.Inputs[0], n.Inputs[4]
		if p.DType != tensors.Float32 && p.DType != tensors.Float64 {
			panic(errorf("AdamW", "p %v must be float32 or float64", p))
		}
		sameDType("AdamW", n.Inputs...)
		for _, x := range n.Inputs[1:4] {
			if !x.Shape.Equal(p.Shape) {
				panic(errorf("AdamW", "g, m and v must have p's shape %v; got %v", p.Shape, x))
			}
		}
		if !coef.Shape.Equal(S(AdamWCoefficients)) {
			panic(errorf("AdamW", "coef %v must be [%d]", coef, AdamWCoefficients))
		}
		t := TypeShape{p.DType, p.Shape}
		return []TypeShape{t, t, t}
	}})
}
