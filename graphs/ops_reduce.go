package graphs

import "mohawk/tensors"

type reduceAttr struct {
	Axes     []int64
	KeepDims bool
}

// ReduceSum sums x over axes.
func ReduceSum(x *Value, axes []int64, keepDims bool) *Value {
	return reduce("ReduceSum", x, axes, keepDims)
}

// ReduceSumSquare is Σ x² over axes, in one pass over x.
func ReduceSumSquare(x *Value, axes []int64, keepDims bool) *Value {
	return reduce("ReduceSumSquare", x, axes, keepDims)
}

// ReduceMean averages x over axes.
func ReduceMean(x *Value, axes []int64, keepDims bool) *Value {
	return reduce("ReduceMean", x, axes, keepDims)
}

// ReduceMax is the maximum of x over axes.
func ReduceMax(x *Value, axes []int64, keepDims bool) *Value {
	return reduce("ReduceMax", x, axes, keepDims)
}

type argMaxAttr struct {
	Axis     int64
	KeepDims bool
}

// ArgMax is the int64 index of the largest element of x along axis, the
// first one on ties (ONNX select_last_index = 0).
func ArgMax(x *Value, axis int64, keepDims bool) *Value {
	return op1("ArgMax", &argMaxAttr{axis, keepDims}, x)
}

func inferArgMax(n *Node) []TypeShape {
	x, a := n.Inputs[0], n.Attr.(*argMaxAttr)
	if !x.DType.IsFloat() {
		panic(errorf(n.Op, "wants a float input, got %v", x))
	}
	axis := normAxis(n.Op, int(a.Axis), x.Rank())
	var out Shape
	for i, d := range x.Shape {
		switch {
		case i != axis:
			out = append(out, d)
		case a.KeepDims:
			out = append(out, D(1))
		}
	}
	return ts(tensors.Int64, out)
}

func argMaxAttrs(n *Node) []Attr {
	a := n.Attr.(*argMaxAttr)
	return []Attr{intAttr("axis", a.Axis), intAttr("keepdims", boolInt(a.KeepDims)), intAttr("select_last_index", 0)}
}

// ReduceSumAll sums every element into a scalar.
func ReduceSumAll(x *Value) *Value { return ReduceSum(x, allAxes(x), false) }

// ReduceSumSquareAll is Σ x² over every element, as a scalar.
func ReduceSumSquareAll(x *Value) *Value { return ReduceSumSquare(x, allAxes(x), false) }

// ReduceMeanAll averages every element into a scalar.
func ReduceMeanAll(x *Value) *Value { return ReduceMean(x, allAxes(x), false) }

func allAxes(x *Value) []int64 {
	axes := make([]int64, x.Rank())
	for i := range axes {
		axes[i] = int64(i)
	}
	return axes
}

func reduce(op string, x *Value, axes []int64, keepDims bool) *Value {
	if len(axes) == 0 {
		panic(errorf(op, "no axes given (ONNX would reduce everything)"))
	}
	return op1(op, &reduceAttr{axes, keepDims}, x, x.g.root.Int64s(axes...))
}

func inferReduce(n *Node) []TypeShape {
	x, a := n.Inputs[0], n.Attr.(*reduceAttr)
	if x.DType == tensors.Bool {
		panic(errorf(n.Op, "cannot reduce bool %v", x))
	}
	red := reducedAxes(n)
	var out Shape
	for i, d := range x.Shape {
		switch {
		case !red[i]:
			out = append(out, d)
		case a.KeepDims:
			out = append(out, D(1))
		}
	}
	return ts(x.DType, out)
}

func reducedAxes(n *Node) []bool {
	x := n.Inputs[0]
	red := make([]bool, x.Rank())
	for _, ax := range n.Attr.(*reduceAttr).Axes {
		red[normAxis(n.Op, int(ax), x.Rank())] = true
	}
	return red
}

// expandBack broadcasts the adjoint of a reduction back to the input shape.
func expandBack(n *Node, g *Value) *Value {
	x, a := n.Inputs[0], n.Attr.(*reduceAttr)
	if !a.KeepDims {
		g = Unsqueeze(g, a.Axes...)
	}
	return Expand(g, x.Shape, x)
}

func keepDimsAttr(n *Node) []Attr {
	return []Attr{intAttr("keepdims", boolInt(n.Attr.(*reduceAttr).KeepDims))}
}

// reducedCount is the number of elements each output of a reduction covers,
// as a scalar of x's dtype (a constant when the reduced dims are static).
func reducedCount(n *Node) *Value {
	x, y := n.Inputs[0], n.Outputs[0]
	red := reducedAxes(n)
	c := D(1)
	for i, d := range x.Shape {
		if red[i] {
			c = c.Mul(d)
		}
	}
	if c.Static() {
		return ScalarLike(x, float64(c.K))
	}
	return Cast(Div(Size(x), Size(y)), x.DType)
}

func init() {
	register(&OpDef{Type: "ReduceSum", Since: 13, Infer: inferReduce, Grad: reduceSumGrad, Attrs: keepDimsAttr})
	register(&OpDef{Type: "ReduceSumSquare", Since: 18, Infer: inferReduce, Grad: reduceSumSquareGrad, Attrs: keepDimsAttr})
	register(&OpDef{Type: "ReduceMean", Since: 18, Infer: inferReduce, Grad: reduceMeanGrad, Attrs: keepDimsAttr})
	register(&OpDef{Type: "ReduceMax", Since: 18, Infer: inferReduce, Grad: reduceMaxGrad, Attrs: keepDimsAttr})
	register(&OpDef{Type: "ArgMax", Since: 13, Infer: inferArgMax, NoGrad: true, Attrs: argMaxAttrs})
}

// reduceSumGrad is the VJP of ReduceSum.
func reduceSumGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{expandBack(n, g[0]), nil}
}

// reduceSumSquareGrad is the VJP of ReduceSumSquare.
func reduceSumSquareGrad(n *Node, g []*Value, need []bool) []*Value {
	x := n.Inputs[0]
	return []*Value{Mul(expandBack(n, g[0]), Mul(x, ScalarLike(x, 2))), nil}
}

// reduceMeanGrad is the VJP of ReduceMean.
func reduceMeanGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{Div(expandBack(n, g[0]), reducedCount(n)), nil}
}

// reduceMaxGrad is the VJP of ReduceMax.
func reduceMaxGrad(n *Node, g []*Value, need []bool) []*Value {
	// The adjoint goes to every element equal to the maximum.
	x := n.Inputs[0]
	y := expandBack(n, n.Outputs[0])
	return []*Value{Where(Equal(x, y), expandBack(n, g[0]), zeroOf(x)), nil}
}
