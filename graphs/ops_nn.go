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

func axisOf(n *Node) int { return normAxis(n.Op, int(n.Attr.(*axisAttr).Axis), n.Inputs[0].Rank()) }

func init() {
	register(&OpDef{Type: "Softmax", Since: 13, Infer: inferSoftmax, Grad: softmaxGrad, Attrs: axisAttrs})
	register(&OpDef{Type: "LogSoftmax", Since: 13, Infer: inferLogSoftmax, Grad: logSoftmaxGrad, Attrs: axisAttrs})
	register(&OpDef{Type: "LayerNormalization", Since: 17, Infer: inferLayerNormalization, Grad: layerNormGrad, Attrs: layerNormalizationAttrs})
	register(&OpDef{Type: "Gelu", Since: 20, Infer: inferUnaryFloat, Grad: geluGrad, Attrs: geluAttrs})
}

// layerNormGrad takes the normalisation statistics μ and r = 1/√(σ²+ε)
// from the node's Mean and InvStdDev outputs (float32; for float64 x,
// which has none, it recomputes them): x̂ = (x−μ)·r, g = dy·γ,
// dx = r·(g − mean(g) − x̂·mean(g·x̂)), dγ = Σ dy·x̂, dβ = Σ dy. With the
// statistics (float32 and bfloat16 x) it is one fused LayerNormGrad node
// and the sums of its partial γ and β gradients.
func layerNormGrad(n *Node, gs []*Value, need []bool) []*Value {
	x, gamma, eps := n.Inputs[0], n.Inputs[1], n.Attr.(*layerNormAttr).Eps
	if len(n.Outputs) == 3 && (x.DType == tensors.Float32 || x.DType == tensors.BFloat16) {
		dx, dgp, dbp := LayerNormGrad(x, gamma, n.Outputs[1], n.Outputs[2], gs[0])
		out := []*Value{dx, Cast(ReduceSum(dgp, []int64{0}, false), gamma.DType), nil}
		if len(n.Inputs) > 2 {
			out[2] = Cast(ReduceSum(dbp, []int64{0}, false), gamma.DType)
		}
		return out
	}
	last := []int64{-1}
	var xhat, r *Value
	if len(n.Outputs) == 3 {
		r = Cast(n.Outputs[2], x.DType)
		xhat = Mul(Sub(x, Cast(n.Outputs[1], x.DType)), r)
	} else {
		xc := Sub(x, ReduceMean(x, last, true))
		r = Reciprocal(Sqrt(Add(ReduceMean(Mul(xc, xc), last, true), ScalarLike(x, float64(eps)))))
		xhat = Mul(xc, r)
	}
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

// Float64 graphs (used for gradient checks) reject ops without float64
// kernels on ORT's CPU provider; this lists them for tests and docs.
var noFloat64Kernel = map[string]bool{"Softplus": true, "Erf": true, "Sin": true, "Cos": true, "MultiHeadAttention": true}

// HasFloat64Kernel reports whether ORT 1.29's CPU provider runs op in float64
// (../shared/docs/ort-facts.md).
func HasFloat64Kernel(op string) bool { return !noFloat64Kernel[op] }

var _ = tensors.Float64

// inferSoftmax is the shape rule of Softmax.
func inferSoftmax(n *Node) []TypeShape {
	axisOf(n)
	return inferUnaryFloat(n)
}

// softmaxGrad is the VJP of Softmax.
func softmaxGrad(n *Node, g []*Value, need []bool) []*Value {
	// dx = y·(g − Σ g·y)
	y, ax := n.Outputs[0], int64(axisOf(n))
	return []*Value{Mul(y, Sub(g[0], ReduceSum(Mul(g[0], y), []int64{ax}, true)))}
}

// inferLogSoftmax is the shape rule of LogSoftmax.
func inferLogSoftmax(n *Node) []TypeShape {
	axisOf(n)
	return inferUnaryFloat(n)
}

// logSoftmaxGrad is the VJP of LogSoftmax.
func logSoftmaxGrad(n *Node, g []*Value, need []bool) []*Value {
	// dx = g − exp(y)·Σ g
	y, ax := n.Outputs[0], int64(axisOf(n))
	return []*Value{Sub(g[0], Mul(Exp(y), ReduceSum(g[0], []int64{ax}, true)))}
}

// inferLayerNormalization is the shape rule of LayerNormalization.
func inferLayerNormalization(n *Node) []TypeShape {
	x := n.Inputs[0]
	wantFloat("LayerNormalization", x)
	sameDType("LayerNormalization", n.Inputs...)
	last := S(x.Shape[x.Rank()-1])
	for _, p := range n.Inputs[1:] {
		if !p.Shape.Equal(last) {
			panic(errorf("LayerNormalization", "scale/bias %v must have shape %v for %v", p, last, x))
		}
	}
	if x.DType == tensors.Float64 { // ONNX keeps the statistics in float32 at most
		return ts(x.DType, x.Shape)
	}
	stat := append(x.Shape[:x.Rank()-1:x.Rank()-1], D(1))
	return []TypeShape{{x.DType, x.Shape}, {tensors.Float32, stat}, {tensors.Float32, stat}}
}

// layerNormalizationAttrs is the ONNX emitter of LayerNormalization.
func layerNormalizationAttrs(n *Node) []Attr {
	return []Attr{intAttr("axis", -1), floatAttr("epsilon", n.Attr.(*layerNormAttr).Eps)}
}

// geluGrad is the VJP of Gelu.
func geluGrad(n *Node, g []*Value, need []bool) []*Value {
	x := n.Inputs[0]
	c := func(v float64) *Value { return ScalarLike(x, v) }
	if n.Attr.(*geluAttr).Tanh {
		// One fused pass (GeluGrad), in float32 for float16, which
		// it does not take.
		if x.DType == tensors.Float16 {
			return []*Value{Cast(GeluGrad(Cast(x, tensors.Float32), Cast(g[0], tensors.Float32)), tensors.Float16)}
		}
		return []*Value{GeluGrad(x, g[0])}
	}
	// dy/dx = Φ(x) + x·φ(x)
	phi := Mul(c(0.5), Add(c(1), Erf(Mul(x, c(1/math.Sqrt2)))))
	pdf := Mul(c(1/math.Sqrt(2*math.Pi)), Exp(Mul(c(-0.5), Mul(x, x))))
	return []*Value{Mul(g[0], Add(phi, Mul(x, pdf)))}
}

// geluAttrs is the ONNX emitter of Gelu.
func geluAttrs(n *Node) []Attr {
	if n.Attr.(*geluAttr).Tanh {
		return []Attr{stringAttr("approximate", "tanh")}
	}
	return nil
}

// axisAttrs is the ONNX emitter of Softmax and LogSoftmax.
func axisAttrs(n *Node) []Attr { return []Attr{intAttr("axis", n.Attr.(*axisAttr).Axis)} }
