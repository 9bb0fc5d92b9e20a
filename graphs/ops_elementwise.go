package graphs

import (
	"math"

	"mohawk/tensors"
)

// Binary arithmetic with ONNX multidirectional broadcasting.

// Add is a + b.
func Add(a, b *Value) *Value { return op1("Add", nil, a, b) }

// Sum adds tensors in one pass (ONNX Sum, with multidirectional
// broadcasting): for k terms it reads k tensors and writes one, where a
// chain of k−1 Adds writes k−1. One term is returned as it is.
func Sum(terms ...*Value) *Value {
	if len(terms) == 1 {
		return terms[0]
	}
	return op1("Sum", nil, terms...)
}

// Sub is a − b.
func Sub(a, b *Value) *Value { return op1("Sub", nil, a, b) }

// Mul is a · b.
func Mul(a, b *Value) *Value { return op1("Mul", nil, a, b) }

// Div is a / b.
func Div(a, b *Value) *Value { return op1("Div", nil, a, b) }

// Max is the elementwise maximum.
func Max(a, b *Value) *Value { return op1("Max", nil, a, b) }

// Min is the elementwise minimum.
func Min(a, b *Value) *Value { return op1("Min", nil, a, b) }

// Pow is a^b; b must be a constant (its gradient is not provided).
func Pow(a, b *Value) *Value { return op1("Pow", nil, a, b) }

// Where selects x where cond is true, else y.
func Where(cond, x, y *Value) *Value { return op1("Where", nil, cond, x, y) }

// Comparisons and logic (bool results, no gradient).

// Equal is a == b.
func Equal(a, b *Value) *Value { return op1("Equal", nil, a, b) }

// Less is a < b.
func Less(a, b *Value) *Value { return op1("Less", nil, a, b) }

// LessOrEqual is a ≤ b.
func LessOrEqual(a, b *Value) *Value { return op1("LessOrEqual", nil, a, b) }

// Greater is a > b.
func Greater(a, b *Value) *Value { return op1("Greater", nil, a, b) }

// GreaterOrEqual is a ≥ b.
func GreaterOrEqual(a, b *Value) *Value { return op1("GreaterOrEqual", nil, a, b) }

// And is the logical and of bool tensors.
func And(a, b *Value) *Value { return op1("And", nil, a, b) }

// Or is the logical or of bool tensors.
func Or(a, b *Value) *Value { return op1("Or", nil, a, b) }

// Not is the logical negation.
func Not(a *Value) *Value { return op1("Not", nil, a) }

// IsNaN marks NaN elements.
func IsNaN(a *Value) *Value { return op1("IsNaN", nil, a) }

// IsInf marks ±Inf elements.
func IsInf(a *Value) *Value { return op1("IsInf", nil, a) }

// Unary float maps.

// Neg is −x.
func Neg(x *Value) *Value { return op1("Neg", nil, x) }

// Exp is eˣ.
func Exp(x *Value) *Value { return op1("Exp", nil, x) }

// Log is the natural logarithm.
func Log(x *Value) *Value { return op1("Log", nil, x) }

// Sqrt is √x.
func Sqrt(x *Value) *Value { return op1("Sqrt", nil, x) }

// Tanh is the hyperbolic tangent.
func Tanh(x *Value) *Value { return op1("Tanh", nil, x) }

// Sigmoid is 1/(1+e⁻ˣ).
func Sigmoid(x *Value) *Value { return op1("Sigmoid", nil, x) }

// Softplus is log(1+eˣ).
func Softplus(x *Value) *Value { return op1("Softplus", nil, x) }

// Abs is |x|.
func Abs(x *Value) *Value { return op1("Abs", nil, x) }

// Sign is −1, 0 or 1 (no gradient).
func Sign(x *Value) *Value { return op1("Sign", nil, x) }

// Reciprocal is 1/x.
func Reciprocal(x *Value) *Value { return op1("Reciprocal", nil, x) }

// Relu is max(x, 0).
func Relu(x *Value) *Value { return op1("Relu", nil, x) }

// Erf is the error function.
func Erf(x *Value) *Value { return op1("Erf", nil, x) }

// Sin is the sine.
func Sin(x *Value) *Value { return op1("Sin", nil, x) }

// Cos is the cosine.
func Cos(x *Value) *Value { return op1("Cos", nil, x) }

// Identity passes x through.
func Identity(x *Value) *Value { return op1("Identity", nil, x) }

type castAttr struct{ To tensors.DType }

// Cast converts x to dtype to.
//
// Casts are shared: casting the same value to the same dtype in the same
// graph twice gives the first result (so two products reading one
// activation in bfloat16 cast it once, and their gradients meet before
// one cast back), and casting a value widened exactly (bfloat16 or
// float16 to float32 or float64, float32 to float64) back to its own
// dtype gives the value itself.
func Cast(x *Value, to tensors.DType) *Value {
	if x.DType == to {
		return x
	}
	if n := x.Node(); n != nil && n.Op == "Cast" && n.Inputs[0].DType == to && exactWidening(to, x.DType) {
		return n.Inputs[0]
	}
	g := graphOf("Cast", x)
	key := castKey{x, to}
	if y, ok := g.casts[key]; ok {
		return y
	}
	y := op1("Cast", &castAttr{to}, x)
	if g.casts == nil {
		g.casts = map[castKey]*Value{}
	}
	g.casts[key] = y
	return y
}

type castKey struct {
	x  *Value
	to tensors.DType
}

// exactWidening reports whether every value of dtype from is exactly a
// value of dtype to.
func exactWidening(from, to tensors.DType) bool {
	switch from {
	case tensors.BFloat16, tensors.Float16:
		return to == tensors.Float32 || to == tensors.Float64
	case tensors.Float32:
		return to == tensors.Float64
	}
	return false
}

func inferBinary(n *Node) []TypeShape {
	a, b := n.Inputs[0], n.Inputs[1]
	sameDType(n.Op, a, b)
	if a.DType == tensors.Bool {
		panic(errorf(n.Op, "arithmetic on bool tensors"))
	}
	return ts(a.DType, broadcastShapes(n.Op, a.Shape, b.Shape))
}

func inferCompare(n *Node) []TypeShape {
	a, b := n.Inputs[0], n.Inputs[1]
	sameDType(n.Op, a, b)
	return ts(tensors.Bool, broadcastShapes(n.Op, a.Shape, b.Shape))
}

func inferLogic(n *Node) []TypeShape {
	wantDType(n.Op, tensors.Bool, n.Inputs...)
	shapes := make([]Shape, len(n.Inputs))
	for i, v := range n.Inputs {
		shapes[i] = v.Shape
	}
	return ts(tensors.Bool, broadcastShapes(n.Op, shapes...))
}

func inferUnaryFloat(n *Node) []TypeShape {
	wantFloat(n.Op, n.Inputs[0])
	return ts(n.Inputs[0].DType, n.Inputs[0].Shape)
}

func inferSame(n *Node) []TypeShape { return ts(n.Inputs[0].DType, n.Inputs[0].Shape) }

func inferFloatMask(n *Node) []TypeShape {
	wantFloat(n.Op, n.Inputs[0])
	return ts(tensors.Bool, n.Inputs[0].Shape)
}

// zeros is a scalar zero of v's dtype (broadcasts in Where).
func zeroOf(v *Value) *Value { return ScalarLike(v, 0) }

// sumGrad is the gradient of Add and Sum: the adjoint, reduced to each
// term's shape.
func sumGrad(n *Node, g []*Value, need []bool) []*Value {
	out := make([]*Value, len(n.Inputs))
	for i, x := range n.Inputs {
		out[i] = sumLikeIf(need[i], g[0], x)
	}
	return out
}

func init() {
	register(&OpDef{Type: "Sum", Since: 13, Infer: inferSum, Grad: sumGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Add", Since: 14, Infer: inferBinary, Grad: sumGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Sub", Since: 14, Infer: inferBinary, Grad: subGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Mul", Since: 14, Infer: inferBinary, Grad: mulGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Div", Since: 14, Infer: inferBinary, Grad: divGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Pow", Since: 15, Infer: inferBinary, Grad: powGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Max", Since: 13, Infer: inferBinary, Grad: maxGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Min", Since: 13, Infer: inferBinary, Grad: minGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Where", Since: 16, Infer: inferWhere, Grad: whereGrad, Attrs: noAttrs})
	for _, op := range []string{"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"} {
		register(&OpDef{Type: op, Since: 16, Infer: inferCompare, NoGrad: true, Attrs: noAttrs})
	}
	register(&OpDef{Type: "And", Since: 7, Infer: inferLogic, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "Or", Since: 7, Infer: inferLogic, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "Not", Since: 1, Infer: inferLogic, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "IsNaN", Since: 13, Infer: inferFloatMask, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "IsInf", Since: 10, Infer: inferFloatMask, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "Sign", Since: 13, Infer: inferSame, NoGrad: true, Attrs: noAttrs})

	register(&OpDef{Type: "Neg", Since: 13, Infer: inferUnaryFloat, Grad: negGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Exp", Since: 13, Infer: inferUnaryFloat, Grad: expGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Log", Since: 13, Infer: inferUnaryFloat, Grad: logGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Sqrt", Since: 13, Infer: inferUnaryFloat, Grad: sqrtGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Tanh", Since: 13, Infer: inferUnaryFloat, Grad: tanhGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Sigmoid", Since: 13, Infer: inferUnaryFloat, Grad: sigmoidGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Softplus", Since: 1, Infer: inferUnaryFloat, Grad: softplusGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Abs", Since: 13, Infer: inferUnaryFloat, Grad: absGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Reciprocal", Since: 13, Infer: inferUnaryFloat, Grad: reciprocalGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Relu", Since: 14, Infer: inferUnaryFloat, Grad: reluGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Sin", Since: 7, Infer: inferUnaryFloat, Grad: sinGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Cos", Since: 7, Infer: inferUnaryFloat, Grad: cosGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Erf", Since: 13, Infer: inferUnaryFloat, Grad: erfGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Identity", Since: 13, Infer: inferSame, Grad: identityGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Cast", Since: 13, Infer: inferCast, Grad: castGrad, Attrs: castAttrs})
}

// maxGrad is the VJP of Max: the adjoint goes to the selected input (ties
// to a).
func maxGrad(n *Node, g []*Value, need []bool) []*Value {
	return selectGrad(n, g, need, GreaterOrEqual)
}

// minGrad is the VJP of Min: the adjoint goes to the selected input (ties
// to a).
func minGrad(n *Node, g []*Value, need []bool) []*Value { return selectGrad(n, g, need, LessOrEqual) }

// selectGrad routes the adjoint of a two-input selection to a where
// pick(a, b) holds, else to b.
func selectGrad(n *Node, g []*Value, need []bool, pick func(a, b *Value) *Value) []*Value {
	a, b := n.Inputs[0], n.Inputs[1]
	da, db := routeAdjoint(pick(a, b), g[0], a, b, need[0], need[1])
	return []*Value{da, db}
}

// routeAdjoint splits the adjoint g of Where(c, x, y) between x (where c
// holds) and y (elsewhere), each reduced to its input's shape and built
// only when wanted.
func routeAdjoint(c, g, x, y *Value, needX, needY bool) (dx, dy *Value) {
	if needX {
		dx = sumLike(Where(c, g, zeroOf(g)), x)
	}
	if needY {
		dy = sumLike(Where(c, zeroOf(g), g), y)
	}
	return dx, dy
}

// The VJPs of the unary float maps: x is the input, y the output.

// negGrad is the VJP of Neg.
func negGrad(n *Node, g []*Value, _ []bool) []*Value { return []*Value{Neg(g[0])} }

// expGrad is the VJP of Exp: g·y.
func expGrad(n *Node, g []*Value, _ []bool) []*Value { return []*Value{Mul(g[0], n.Outputs[0])} }

// logGrad is the VJP of Log: g/x.
func logGrad(n *Node, g []*Value, _ []bool) []*Value { return []*Value{Div(g[0], n.Inputs[0])} }

// sqrtGrad is the VJP of Sqrt: g/(2y).
func sqrtGrad(n *Node, g []*Value, _ []bool) []*Value {
	return []*Value{Div(Mul(g[0], ScalarLike(g[0], 0.5)), n.Outputs[0])}
}

// tanhGrad is the VJP of Tanh: g·(1−y²).
func tanhGrad(n *Node, g []*Value, _ []bool) []*Value {
	y := n.Outputs[0]
	return []*Value{Mul(g[0], Sub(ScalarLike(y, 1), Mul(y, y)))}
}

// sigmoidGrad is the VJP of Sigmoid: g·y·(1−y).
func sigmoidGrad(n *Node, g []*Value, _ []bool) []*Value {
	y := n.Outputs[0]
	return []*Value{Mul(g[0], Mul(y, Sub(ScalarLike(y, 1), y)))}
}

// softplusGrad is the VJP of Softplus: g·σ(x).
func softplusGrad(n *Node, g []*Value, _ []bool) []*Value {
	return []*Value{Mul(g[0], Sigmoid(n.Inputs[0]))}
}

// absGrad is the VJP of Abs: g·sign(x).
func absGrad(n *Node, g []*Value, _ []bool) []*Value { return []*Value{Mul(g[0], Sign(n.Inputs[0]))} }

// reciprocalGrad is the VJP of Reciprocal: −g·y².
func reciprocalGrad(n *Node, g []*Value, _ []bool) []*Value {
	y := n.Outputs[0]
	return []*Value{Neg(Mul(g[0], Mul(y, y)))}
}

// reluGrad is the VJP of Relu: g where x > 0.
func reluGrad(n *Node, g []*Value, _ []bool) []*Value {
	x := n.Inputs[0]
	return []*Value{Where(Greater(x, zeroOf(x)), g[0], zeroOf(g[0]))}
}

// sinGrad is the VJP of Sin: g·cos x.
func sinGrad(n *Node, g []*Value, _ []bool) []*Value { return []*Value{Mul(g[0], Cos(n.Inputs[0]))} }

// cosGrad is the VJP of Cos: −g·sin x.
func cosGrad(n *Node, g []*Value, _ []bool) []*Value {
	return []*Value{Neg(Mul(g[0], Sin(n.Inputs[0])))}
}

// erfGrad is the VJP of Erf: g·2/√π·e^(−x²).
func erfGrad(n *Node, g []*Value, _ []bool) []*Value {
	x := n.Inputs[0]
	return []*Value{Mul(g[0], Mul(ScalarLike(x, 2/math.Sqrt(math.Pi)), Exp(Neg(Mul(x, x)))))}
}

// inferSum is the shape rule of Sum.
func inferSum(n *Node) []TypeShape {
	wantFloat("Sum", n.Inputs[0])
	sameDType("Sum", n.Inputs...)
	shapes := make([]Shape, len(n.Inputs))
	for i, v := range n.Inputs {
		shapes[i] = v.Shape
	}
	return ts(n.Inputs[0].DType, broadcastShapes("Sum", shapes...))
}

// subGrad is the VJP of Sub.
func subGrad(n *Node, g []*Value, need []bool) []*Value {
	var db *Value
	if need[1] { // reduce first: Neg then touches only b's elements
		db = Neg(sumLike(g[0], n.Inputs[1]))
	}
	return []*Value{sumLikeIf(need[0], g[0], n.Inputs[0]), db}
}

// mulGrad is the VJP of Mul.
func mulGrad(n *Node, g []*Value, need []bool) []*Value {
	a, b := n.Inputs[0], n.Inputs[1]
	out := make([]*Value, 2)
	if need[0] {
		out[0] = sumLike(Mul(g[0], b), a)
	}
	if need[1] {
		out[1] = sumLike(Mul(g[0], a), b)
	}
	return out
}

// divGrad is the VJP of Div.
func divGrad(n *Node, g []*Value, need []bool) []*Value {
	a, b, y := n.Inputs[0], n.Inputs[1], n.Outputs[0]
	out := make([]*Value, 2)
	if need[0] {
		out[0] = sumLike(Div(g[0], b), a)
	}
	if need[1] { // d(a/b)/db = −y/b
		out[1] = sumLike(Neg(Div(Mul(g[0], y), b)), b)
	}
	return out
}

// powGrad is the VJP of Pow.
func powGrad(n *Node, g []*Value, need []bool) []*Value {
	a, p := n.Inputs[0], n.Inputs[1]
	if need[1] {
		panic(errorf("Pow", "gradient with respect to the exponent is not supported"))
	}
	// d(a^p)/da = p·a^(p−1)
	return []*Value{sumLike(Mul(g[0], Mul(p, Pow(a, Sub(p, ScalarLike(p, 1))))), a), nil}
}

// inferWhere is the shape rule of Where.
func inferWhere(n *Node) []TypeShape {
	c, x, y := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	wantDType("Where", tensors.Bool, c)
	sameDType("Where", x, y)
	return ts(x.DType, broadcastShapes("Where", c.Shape, x.Shape, y.Shape))
}

// whereGrad is the VJP of Where.
func whereGrad(n *Node, g []*Value, need []bool) []*Value {
	dx, dy := routeAdjoint(n.Inputs[0], g[0], n.Inputs[1], n.Inputs[2], need[1], need[2])
	return []*Value{nil, dx, dy}
}

// identityGrad is the VJP of Identity.
func identityGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{g[0]}
}

// inferCast is the shape rule of Cast.
func inferCast(n *Node) []TypeShape {
	a := n.Attr.(*castAttr)
	if !a.To.Valid() {
		panic(errorf("Cast", "invalid target dtype %v", a.To))
	}
	return ts(a.To, n.Inputs[0].Shape)
}

// castGrad is the VJP of Cast.
func castGrad(n *Node, g []*Value, need []bool) []*Value {
	if !n.Inputs[0].DType.IsFloat() {
		panic(errorf("Cast", "gradient into non-float input %v", n.Inputs[0]))
	}
	return []*Value{Cast(g[0], n.Inputs[0].DType)}
}

// castAttrs is the ONNX emitter of Cast.
func castAttrs(n *Node) []Attr { return []Attr{intAttr("to", int64(n.Attr.(*castAttr).To))} }
