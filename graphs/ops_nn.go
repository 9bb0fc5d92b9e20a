package graphs

import (
	"math"

	"mohawk/tensors"
)

type axisAttr struct{ Axis int64 }

// Softmax normalises exp(x) along axis.
func Softmax(x *Value, axis int64) *Value { return op1("Softmax", &axisAttr{axis}, x) }

// LogSoftmax is log(Softmax(x)) computed stably.
func LogSoftmax(x *Value, axis int64) *Value { return op1("LogSoftmax", &axisAttr{axis}, x) }

type layerNormAttr struct{ Eps float32 }

// LayerNormalization normalises x over its last axis, then scales and
// shifts (ONNX LayerNormalization, axis −1; bias may be nil).
func LayerNormalization(x, scale, bias *Value, eps float32) *Value {
	ins := []*Value{x, scale}
	if bias != nil {
		ins = append(ins, bias)
	}
	return op1("LayerNormalization", &layerNormAttr{eps}, ins...)
}

type geluAttr struct{ Tanh bool }

// Gelu is x·Φ(x), or its tanh approximation ("gelu_new") when tanh is set.
func Gelu(x *Value, tanh bool) *Value { return op1("Gelu", &geluAttr{tanh}, x) }

type convAttr struct {
	Group int64
	Pads  [2]int64
}

// DepthwiseConv1D is a grouped 1-D convolution with one filter per channel:
// x [N, C, L], w [C, 1, K], b [C] (may be nil), zero padding pads=[left,
// right]; out[n,c,t] = b[c] + Σ_k w[c,0,k]·xpad[n,c,t+k]. A causal conv uses
// pads = [K−1, 0].
func DepthwiseConv1D(x, w, b *Value, pads [2]int64) *Value {
	ins := []*Value{x, w}
	if b != nil {
		ins = append(ins, b)
	}
	return op1("Conv", &convAttr{Group: x.Shape[1].K, Pads: pads}, ins...)
}

func axisOf(n *Node) int { return normAxis(n.Op, int(n.Attr.(*axisAttr).Axis), n.Inputs[0].Rank()) }

func init() {
	axisAttrs := func(n *Node) []Attr { return []Attr{intAttr("axis", n.Attr.(*axisAttr).Axis)} }
	register(&OpDef{Type: "Softmax", Since: 13, Attrs: axisAttrs, Infer: func(n *Node) []TypeShape {
		axisOf(n)
		return inferUnaryFloat(n)
	}, Grad: func(n *Node, g []*Value, need []bool) []*Value {
		// dx = y·(g − Σ g·y)
		y, ax := n.Outputs[0], int64(axisOf(n))
		return []*Value{Mul(y, Sub(g[0], ReduceSum(Mul(g[0], y), []int64{ax}, true)))}
	}})
	register(&OpDef{Type: "LogSoftmax", Since: 13, Attrs: axisAttrs, Infer: func(n *Node) []TypeShape {
		axisOf(n)
		return inferUnaryFloat(n)
	}, Grad: func(n *Node, g []*Value, need []bool) []*Value {
		// dx = g − exp(y)·Σ g
		y, ax := n.Outputs[0], int64(axisOf(n))
		return []*Value{Sub(g[0], Mul(Exp(y), ReduceSum(g[0], []int64{ax}, true)))}
	}})
	register(&OpDef{Type: "LayerNormalization", Since: 17, Infer: func(n *Node) []TypeShape {
		x, s := n.Inputs[0], n.Inputs[1]
		wantFloat("LayerNormalization", x)
		sameDType("LayerNormalization", n.Inputs...)
		last := S(x.Shape[x.Rank()-1])
		for _, p := range n.Inputs[1:] {
			if !p.Shape.Equal(last) {
				panic(errorf("LayerNormalization", "scale/bias %v must have shape %v for %v", p, last, x))
			}
		}
		_ = s
		return ts(x.DType, x.Shape)
	}, Grad: layerNormGrad, Attrs: func(n *Node) []Attr {
		return []Attr{intAttr("axis", -1), floatAttr("epsilon", n.Attr.(*layerNormAttr).Eps)}
	}})
	register(&OpDef{Type: "Gelu", Since: 20, Infer: inferUnaryFloat, Grad: func(n *Node, g []*Value, need []bool) []*Value {
		x := n.Inputs[0]
		c := func(v float64) *Value { return ScalarLike(x, v) }
		if n.Attr.(*geluAttr).Tanh {
			// y = ½x(1+t), t = tanh(u), u = √(2/π)(x + 0.044715x³)
			// dy/dx = ½(1+t) + ½x(1−t²)·√(2/π)(1 + 3·0.044715x²)
			k := math.Sqrt(2 / math.Pi)
			x2 := Mul(x, x)
			t := Tanh(Mul(c(k), Add(x, Mul(c(0.044715), Mul(x2, x)))))
			du := Mul(c(k), Add(c(1), Mul(c(3*0.044715), x2)))
			d := Add(Mul(c(0.5), Add(c(1), t)), Mul(Mul(c(0.5), x), Mul(Sub(c(1), Mul(t, t)), du)))
			return []*Value{Mul(g[0], d)}
		}
		// dy/dx = Φ(x) + x·φ(x)
		phi := Mul(c(0.5), Add(c(1), Erf(Mul(x, c(1/math.Sqrt2)))))
		pdf := Mul(c(1/math.Sqrt(2*math.Pi)), Exp(Mul(c(-0.5), Mul(x, x))))
		return []*Value{Mul(g[0], Add(phi, Mul(x, pdf)))}
	}, Attrs: func(n *Node) []Attr {
		if n.Attr.(*geluAttr).Tanh {
			return []Attr{stringAttr("approximate", "tanh")}
		}
		return nil
	}})
	register(&OpDef{Type: "Conv", Since: 11, Infer: func(n *Node) []TypeShape {
		x, w, a := n.Inputs[0], n.Inputs[1], n.Attr.(*convAttr)
		wantFloat("Conv", x, w)
		sameDType("Conv", n.Inputs...)
		if x.Rank() != 3 || w.Rank() != 3 || !x.Shape[1].Static() {
			panic(errorf("Conv", "depthwise 1-D conv needs x [N,C,L] with static C and w [C,1,K]; got %v, %v", x, w))
		}
		c := x.Shape[1]
		if w.Shape[0] != c || !w.Shape[1].IsOne() || !w.Shape[2].Static() || a.Group != c.K {
			panic(errorf("Conv", "weight %v does not fit depthwise conv of %v (group %d)", w, x, a.Group))
		}
		if len(n.Inputs) > 2 && !n.Inputs[2].Shape.Equal(S(c)) {
			panic(errorf("Conv", "bias %v must be [%v]", n.Inputs[2], c))
		}
		k := w.Shape[2].K
		if a.Pads[0] < 0 || a.Pads[1] < 0 || a.Pads[0] > k-1 || a.Pads[1] > k-1 {
			panic(errorf("Conv", "pads %v must lie in [0, %d]", a.Pads, k-1))
		}
		l := addDims(x.Shape[2], D(a.Pads[0]+a.Pads[1]-k+1))
		return ts(x.DType, S(x.Shape[0], c, l))
	}, Grad: convGrad, Attrs: func(n *Node) []Attr {
		a := n.Attr.(*convAttr)
		k := n.Inputs[1].Shape[2].K
		return []Attr{intAttr("group", a.Group), intsAttr("kernel_shape", []int64{k}),
			intsAttr("pads", a.Pads[:]), intsAttr("strides", []int64{1}), intsAttr("dilations", []int64{1})}
	}})
}

// layerNormGrad recomputes the normalisation statistics from x:
// x̂ = (x−μ)·r, r = 1/√(σ²+ε), g = dy·γ,
// dx = r·(g − mean(g) − x̂·mean(g·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
func layerNormGrad(n *Node, gs []*Value, need []bool) []*Value {
	x, gamma, eps := n.Inputs[0], n.Inputs[1], n.Attr.(*layerNormAttr).Eps
	last := []int64{-1}
	mu := ReduceMean(x, last, true)
	xc := Sub(x, mu)
	r := Reciprocal(Sqrt(Add(ReduceMean(Mul(xc, xc), last, true), ScalarLike(x, float64(eps)))))
	xhat := Mul(xc, r)
	dy := gs[0]
	out := make([]*Value, len(n.Inputs))
	if need[0] {
		g := Mul(dy, gamma)
		inner := Sub(Sub(g, ReduceMean(g, last, true)), Mul(xhat, ReduceMean(Mul(g, xhat), last, true)))
		out[0] = Mul(r, inner)
	}
	if need[1] {
		out[1] = sumLike(Mul(dy, xhat), gamma)
	}
	if len(n.Inputs) > 2 && need[2] {
		out[2] = sumLike(dy, n.Inputs[2])
	}
	return out
}

// convGrad differentiates the depthwise 1-D conv. With xpad the padded input:
// dxpad[s] = Σ_k w[k]·g[s−k], i.e. a conv of g with the flipped kernel and
// pads [K−1−left, K−1−right]; dw[c,k] = Σ_{n,t} g[n,c,t]·xpad[n,c,t+k].
func convGrad(n *Node, gs []*Value, need []bool) []*Value {
	x, w, a := n.Inputs[0], n.Inputs[1], n.Attr.(*convAttr)
	g := gs[0]
	k := w.Shape[2].K
	out := make([]*Value, len(n.Inputs))
	if need[0] {
		flipped := Slice(w, []int64{-1}, []int64{-End}, []int64{2}, []int64{-1})
		out[0] = DepthwiseConv1D(g, flipped, nil, [2]int64{k - 1 - a.Pads[0], k - 1 - a.Pads[1]})
	}
	if need[1] {
		xpad := x
		if a.Pads != [2]int64{} {
			xpad = Pad(x, []int64{0, 0, a.Pads[0], 0, 0, a.Pads[1]}, 0)
		}
		taps := make([]*Value, k)
		for j := int64(0); j < k; j++ {
			end := int64(End)
			if j < k-1 {
				end = j - (k - 1)
			}
			win := SliceAxis(xpad, 2, j, end)
			taps[j] = ReduceSum(Mul(g, win), []int64{0, 2}, true) // [1, C, 1]
		}
		out[1] = Reshape(Concat(2, taps...), w.Shape.Sizes()...)
	}
	if len(n.Inputs) > 2 && need[2] {
		out[2] = ReduceSum(g, []int64{0, 2}, false)
	}
	return out
}

// Float64 graphs (used for gradient checks) reject ops without float64
// kernels on ORT's CPU provider; this lists them for tests and docs.
var noFloat64Kernel = map[string]bool{"Softplus": true, "Conv": true, "Erf": true, "Sin": true, "Cos": true, "MultiHeadAttention": true}

// HasFloat64Kernel reports whether ORT 1.29's CPU provider runs op in float64
// (../shared/docs/ort-facts.md).
func HasFloat64Kernel(op string) bool { return !noFloat64Kernel[op] }

var _ = tensors.Float64
