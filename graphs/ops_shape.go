package graphs

import (
	"fmt"
	"math"
	"slices"

	"mohawk/tensors"
)

type reshapeAttr struct{ Out Shape }

// Reshape reshapes x to spec with ONNX semantics: 0 copies the input dim at
// that position and one −1 is inferred (symbolically when dims are).
func Reshape(x *Value, spec ...int64) *Value {
	out := make(Shape, len(spec))
	known := D(1)
	infer := -1
	for i, s := range spec {
		switch {
		case s == 0:
			if i >= x.Rank() {
				panic(errorf("Reshape", "spec %v copies dim %d of %v", spec, i, x))
			}
			out[i] = x.Shape[i]
		case s == -1:
			if infer >= 0 {
				panic(errorf("Reshape", "spec %v has two -1 entries", spec))
			}
			infer = i
			continue
		case s > 0:
			out[i] = D(s)
		default:
			panic(errorf("Reshape", "bad spec %v", spec))
		}
		known = known.Mul(out[i])
	}
	if infer >= 0 {
		d, ok := x.Shape.NumElements().Div(known)
		if !ok {
			panic(errorf("Reshape", "cannot infer -1 in %v for %v", spec, x))
		}
		out[infer] = d
	}
	return op1("Reshape", &reshapeAttr{out}, x, x.g.root.Int64s(spec...))
}

// ReshapeTo reshapes x to shape s. Symbolic dims of s are taken at run time
// from x or from the values in from, wherever an equal dim occurs.
func ReshapeTo(x *Value, s Shape, from ...*Value) *Value {
	if x.Shape.Equal(s) {
		return x
	}
	g := graphOf("ReshapeTo", append([]*Value{x}, from...)...)
	sym := 0
	for _, d := range s {
		if !d.Static() {
			sym++
		}
	}
	if sym <= 1 { // static sizes with at most one dim to infer
		spec := make([]int64, len(s))
		for i, d := range s {
			if d.Static() {
				spec[i] = d.K
			} else {
				spec[i] = -1
			}
		}
		return op1("Reshape", &reshapeAttr{s.Clone()}, x, g.root.Int64s(spec...))
	}
	parts := make([]*Value, len(s))
	for i, d := range s {
		if d.Static() {
			parts[i] = g.root.Int64s(d.K)
			continue
		}
		parts[i] = dimOf("ReshapeTo", d, append([]*Value{x}, from...))
	}
	return op1("Reshape", &reshapeAttr{s.Clone()}, x, Concat(0, parts...))
}

// dimOf finds d in the shapes of vs and returns it at run time as int64[1].
func dimOf(op string, d Dim, vs []*Value) *Value {
	for _, v := range vs {
		for j, vd := range v.Shape {
			if vd == d {
				return ShapeOf(v, j, j+1)
			}
		}
	}
	panic(errorf(op, "symbolic dim %v occurs in none of %v", d, vs))
}

// ShapeVector returns s as an int64[rank] value computed at run time, taking
// symbolic dims from the shapes of vs.
func ShapeVector(s Shape, vs ...*Value) *Value {
	g := graphOf("ShapeVector", vs...)
	if s.Static() {
		return g.root.Int64s(s.Sizes()...)
	}
	parts := make([]*Value, len(s))
	for i, d := range s {
		if d.Static() {
			parts[i] = g.root.Int64s(d.K)
		} else {
			parts[i] = dimOf("ShapeVector", d, vs)
		}
	}
	return Concat(0, parts...)
}

// reshapeLike reshapes g to x's shape (static or taken from x at run time).
func reshapeLike(g, x *Value) *Value {
	if g.Shape.Equal(x.Shape) {
		return g
	}
	if x.Shape.Static() {
		return op1("Reshape", &reshapeAttr{x.Shape.Clone()}, g, g.g.root.Int64s(x.Shape.Sizes()...))
	}
	return op1("Reshape", &reshapeAttr{x.Shape.Clone()}, g, ShapeOf(x, 0, x.Rank()))
}

type shapeAttr struct{ Start, End int }

// ShapeOf is the int64 vector of x's dims start..end−1.
func ShapeOf(x *Value, start, end int) *Value {
	return op1("Shape", &shapeAttr{start, end}, x)
}

type transposeAttr struct{ Perm []int64 }

// Transpose permutes the axes of x.
func Transpose(x *Value, perm ...int64) *Value { return op1("Transpose", &transposeAttr{perm}, x) }

type axesAttr struct{ Axes []int64 }

// Unsqueeze inserts size-1 axes.
func Unsqueeze(x *Value, axes ...int64) *Value {
	return op1("Unsqueeze", &axesAttr{axes}, x, x.g.root.Int64s(axes...))
}

// Squeeze removes size-1 axes.
func Squeeze(x *Value, axes ...int64) *Value {
	return op1("Squeeze", &axesAttr{axes}, x, x.g.root.Int64s(axes...))
}

type concatAttr struct{ Axis int64 }

// Concat joins values along axis.
func Concat(axis int64, vs ...*Value) *Value {
	if len(vs) == 1 {
		return vs[0]
	}
	return op1("Concat", &concatAttr{axis}, vs...)
}

type splitAttr struct {
	Axis  int64
	Sizes []int64
}

// Split cuts x along axis into pieces of the given static sizes.
func Split(x *Value, axis int64, sizes ...int64) []*Value {
	// A copy: callers may reuse the slice (the node keeps its own outputs).
	return slices.Clone(graphOf("Split", x).add("Split", &splitAttr{axis, sizes}, x, x.g.root.Int64s(sizes...)))
}

type sliceAttr struct{ Starts, Ends, Axes, Steps []int64 }

// End is an end index meaning "to the end of the axis".
const End = math.MaxInt64

// Slice takes x[start:end:step] along each listed axis (constant bounds).
func Slice(x *Value, starts, ends, axes, steps []int64) *Value {
	if steps == nil {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	r := x.g.root
	return op1("Slice", &sliceAttr{starts, ends, axes, steps}, x, r.Int64s(starts...), r.Int64s(ends...), r.Int64s(axes...), r.Int64s(steps...))
}

// SliceAxis is x[start:end] along one axis.
func SliceAxis(x *Value, axis, start, end int64) *Value {
	return Slice(x, []int64{start}, []int64{end}, []int64{axis}, nil)
}

type gatherAttr struct{ Axis int64 }

// Gather picks slices of data along axis at integer indices.
func Gather(data, indices *Value, axis int64) *Value {
	return op1("Gather", &gatherAttr{axis}, data, indices)
}

// GatherElements picks data elements along axis at indices of data's rank.
func GatherElements(data, indices *Value, axis int64) *Value {
	return op1("GatherElements", &gatherAttr{axis}, data, indices)
}

// GatherND gathers slices addressed by the last axis of indices.
func GatherND(data, indices *Value) *Value { return op1("GatherND", nil, data, indices) }

type scatterAttr struct {
	Axis      int64
	Reduction string
}

// ScatterElementsAdd adds updates into data at indices along axis.
func ScatterElementsAdd(data, indices, updates *Value, axis int64) *Value {
	return op1("ScatterElements", &scatterAttr{axis, "add"}, data, indices, updates)
}

// ScatterNDAdd adds updates into data at the positions indices address.
func ScatterNDAdd(data, indices, updates *Value) *Value {
	return op1("ScatterND", &scatterAttr{0, "add"}, data, indices, updates)
}

// Expand broadcasts x to shape s (symbolic dims taken from the shapes of vs).
func Expand(x *Value, s Shape, vs ...*Value) *Value {
	return op1("Expand", &reshapeAttr{s.Clone()}, x, ShapeVector(s, append([]*Value{x}, vs...)...))
}

type constOfShapeAttr struct {
	Out   Shape
	Value *tensors.Tensor
}

// Full is a tensor of shape s filled with v (dtype dt), built in g;
// symbolic dims are taken at run time from the shapes of vs.
func Full(g *Graph, dt tensors.DType, s Shape, v float64, vs ...*Value) *Value {
	var sv *Value
	if s.Static() {
		sv = g.root.Int64s(s.Sizes()...)
	} else {
		sv = ShapeVector(s, vs...)
	}
	return g.add("ConstantOfShape", &constOfShapeAttr{s.Clone(), scalarTensor(dt, v).Reshape(1)}, sv)[0]
}

// ZerosLike is a zero tensor with x's dtype and shape.
func ZerosLike(x *Value) *Value { return Full(x.g, x.DType, x.Shape, 0, x) }

type padAttr struct {
	Pads  []int64
	Value float64
}

// Pad pads x with a constant: pads = [begin_0.., end_0..] as in ONNX.
func Pad(x *Value, pads []int64, value float64) *Value {
	return op1("Pad", &padAttr{pads, value}, x, x.g.root.Int64s(pads...), x.g.root.Const(scalarTensor(x.DType, value)))
}

// ZeroPad pads x with zeros (pads as in Pad). Padding along one axis is a
// Concat of x with zero blocks, which ONNX Runtime's CUDA provider runs at
// copy speed; its Pad kernel took 75 GB/s on a rank-5 tensor where Concat
// moves 1.7 TB/s (docs/benchmarks.md).
func ZeroPad(x *Value, pads []int64) *Value {
	r := x.Rank()
	if len(pads) != 2*r {
		panic(errorf("Pad", "pads %v for %v", pads, x))
	}
	axis := -1
	for i := 0; i < r; i++ {
		if pads[i] == 0 && pads[i+r] == 0 {
			continue
		}
		if axis >= 0 || pads[i] < 0 || pads[i+r] < 0 {
			return Pad(x, pads, 0)
		}
		axis = i
	}
	if axis < 0 {
		return x
	}
	block := func(n int64) *Value {
		s := x.Shape.Clone()
		s[axis] = D(n)
		return Full(x.g, x.DType, s, 0, x)
	}
	parts := []*Value{x}
	if pads[axis] > 0 {
		parts = append([]*Value{block(pads[axis])}, parts...)
	}
	if pads[axis+r] > 0 {
		parts = append(parts, block(pads[axis+r]))
	}
	return Concat(int64(axis), parts...)
}

type rangeAttr struct{ Out Dim }

// Range is start, start+delta, … below limit (rank-0 inputs); n names its
// length for shape checking.
func Range(start, limit, delta *Value, n Dim) *Value {
	return op1("Range", &rangeAttr{n}, start, limit, delta)
}

type triluAttr struct {
	Upper bool
	K     int64
}

// Trilu keeps the upper (or lower) triangle of the last two axes, offset k.
func Trilu(x *Value, upper bool, k int64) *Value {
	return op1("Trilu", &triluAttr{upper, k}, x, x.g.root.Int64(k))
}

type cumSumAttr struct {
	Axis               int64
	Exclusive, Reverse bool
}

// CumSum is the running sum along axis.
func CumSum(x *Value, axis int64, exclusive, reverse bool) *Value {
	return op1("CumSum", &cumSumAttr{axis, exclusive, reverse}, x, x.g.root.Int64(axis))
}

// Size is the number of elements of x as an int64 scalar.
func Size(x *Value) *Value { return op1("Size", nil, x) }

// reduceSplit is ReduceSum(g, axes, keepdims) in two reductions when the
// axes are trailing ones plus others before a kept axis ([B, T, H, P] over
// B, T and P): first the trailing block, then the rest. ONNX Runtime's CUDA
// provider reduces leading or trailing blocks with fast kernels, but took
// 118 GB/s on the mixed pattern (docs/benchmarks.md).
func reduceSplit(g *Value, axes []int64) *Value {
	reduced := make([]bool, g.Rank())
	for _, a := range axes {
		reduced[a] = true
	}
	// The trailing block runs back from the last axis to the last kept one
	// (size-1 axes count on either side).
	k := g.Rank() - 1
	for k >= 0 && (reduced[k] || g.Shape[k].IsOne()) {
		k--
	}
	var head, tail []int64
	for _, a := range axes {
		if int(a) > k {
			tail = append(tail, a)
		} else {
			head = append(head, a)
		}
	}
	if len(head) == 0 || len(tail) == 0 {
		return ReduceSum(g, axes, true)
	}
	return ReduceSum(ReduceSum(g, tail, true), head, true)
}

// sumLike reduces an adjoint g of a broadcast result to the shape of x.
func sumLike(g, x *Value) *Value {
	if g.Shape.Equal(x.Shape) {
		return g
	}
	r, rx := g.Rank(), x.Rank()
	var axes []int64
	for i := 0; i < r; i++ {
		if i < r-rx || (x.Shape[i-(r-rx)].IsOne() && !g.Shape[i].IsOne()) {
			axes = append(axes, int64(i))
		}
	}
	s := g
	if len(axes) > 0 {
		s = reduceSplit(g, axes)
	}
	if r > rx {
		lead := make([]int64, r-rx)
		for i := range lead {
			lead[i] = int64(i)
		}
		s = Squeeze(s, lead...)
	}
	if !s.Shape.Equal(x.Shape) {
		panic(errorf("sumLike", "reduced %v to %v, want %v", g, s.Shape, x.Shape))
	}
	return s
}

// unstride spreads the adjoint g of a slice with step st > 0 along axis k of
// a static dim d, starting at start, back to consecutive positions: each
// element is followed by st−1 zeros, the whole cropped to the input's end.
// It returns that tensor, the normalised start and its length along k.
func unstride(g *Value, k int, d Dim, start, st int64) (*Value, int64, int64) {
	if st < 1 || !d.Static() {
		panic(errorf("Slice", "gradient of a slice with step %d along dim %v (positive steps over static dims only)", st, d))
	}
	if start < 0 {
		start += d.K
	}
	start = max(0, min(d.K, start))
	r := g.Rank()
	spec := make([]int64, r)
	for j := range spec {
		switch {
		case j == k:
			spec[j] = -1
		case j > k && !g.Shape[j].Static():
			panic(errorf("Slice", "gradient of a strided slice before symbolic dim %v", g.Shape[j]))
		case j > k:
			spec[j] = g.Shape[j].K
		}
	}
	pads := make([]int64, 2*(r+1))
	pads[r+1+k+1] = st - 1
	spread := Reshape(ZeroPad(Unsqueeze(g, int64(k+1)), pads), spec...)
	span := spread.Shape[k].K
	if avail := d.K - start; span > avail {
		spread, span = SliceAxis(spread, int64(k), 0, avail), avail
	}
	return spread, start, span
}

func sumLikeIf(need bool, g, x *Value) *Value {
	if !need {
		return nil
	}
	return sumLike(g, x)
}

func sliceDim(d Dim, start, end, step int64) Dim {
	if d.Static() {
		n := d.K
		clamp := func(i int64, lo, hi int64) int64 {
			if i < 0 {
				i += n
			}
			return max(lo, min(hi, i))
		}
		if step > 0 {
			s, e := clamp(start, 0, n), clamp(end, 0, n)
			return D(max(0, (e-s+step-1)/step))
		}
		s, e := clamp(start, -1, n-1), clamp(end, -1, n-1)
		if end == -End || end == math.MinInt64 {
			e = -1
		}
		return D(max(0, (s-e+(-step)-1)/(-step)))
	}
	if step == 1 && start < 0 && end == End {
		return D(-start) // the last −start entries (the dim is assumed long enough)
	}
	if step == 1 && start >= 0 && (end == End || end < 0) {
		cut := start
		if end < 0 {
			cut -= end
		}
		return d.Plus(-cut)
	}
	panic(errorf("Slice", "cannot slice symbolic dim %v with [%d:%d:%d]", d, start, end, step))
}

func init() {
	register(&OpDef{Type: "Reshape", Since: 13, Infer: inferReshape, Grad: reshapeGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Shape", Since: 15, Infer: inferShape, NoGrad: true, Attrs: shapeAttrs})
	register(&OpDef{Type: "Size", Since: 13, Infer: inferSize, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "Transpose", Since: 13, Infer: inferTranspose, Grad: transposeGrad, Attrs: transposeAttrs})
	register(&OpDef{Type: "Unsqueeze", Since: 13, Infer: inferUnsqueeze, Grad: reshapeGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Squeeze", Since: 13, Infer: inferSqueeze, Grad: reshapeGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Concat", Since: 13, Infer: inferConcat, Grad: concatGrad, Attrs: concatAttrs})
	register(&OpDef{Type: "Split", Since: 13, Infer: inferSplit, Grad: splitGrad, Attrs: splitAttrs})
	register(&OpDef{Type: "Slice", Since: 13, Infer: inferSlice, Grad: sliceGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Pad", Since: 13, Infer: inferPad, Grad: padGrad, Attrs: padAttrs})
	register(&OpDef{Type: "Gather", Since: 13, Infer: inferGather, Grad: gatherGrad, Attrs: gatherAttrs})
	register(&OpDef{Type: "GatherElements", Since: 13, Infer: inferGatherElements, Grad: gatherElementsGrad, Attrs: gatherAttrs})
	register(&OpDef{Type: "GatherND", Since: 13, Infer: inferGatherND, Grad: gatherNDGrad, Attrs: noAttrs})
	register(&OpDef{Type: "ScatterElements", Since: 16, Infer: inferScatterElements, Grad: scatterElementsGrad, Attrs: scatterElementsAttrs})
	register(&OpDef{Type: "ScatterND", Since: 16, Infer: inferScatterND, Grad: scatterNDGrad, Attrs: scatterNDAttrs})
	register(&OpDef{Type: "Expand", Since: 13, Infer: inferExpand, Grad: expandGrad, Attrs: noAttrs})
	register(&OpDef{Type: "ConstantOfShape", Since: 9, Infer: inferConstantOfShape, NoGrad: true, Attrs: constantOfShapeAttrs})
	register(&OpDef{Type: "Range", Since: 11, Infer: inferRange, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "Trilu", Since: 14, Infer: inferTrilu, Grad: triluGrad, Attrs: triluAttrs})
	register(&OpDef{Type: "CumSum", Since: 14, Infer: inferCumSum, Grad: cumSumGrad, Attrs: cumSumAttrs})
}

func wantInt(op string, v *Value) {
	if v.DType != tensors.Int64 && v.DType != tensors.Int32 {
		panic(errorf(op, "indices %v must be int64 or int32", v))
	}
}

// addDims adds two dims; a sum of two symbolic dims gets an opaque name.
func addDims(a, b Dim) Dim {
	switch {
	case b.Static():
		return a.Plus(b.K)
	case a.Static():
		return b.Plus(a.K)
	}
	return Sym(fmt.Sprintf("(%v+%v)", a, b))
}

type dynAttr struct {
	Out  Shape
	Axes []int64
}

// PadEnd appends zeros (value v) to the end of axis, runtime amount n (int64
// [1]); out names the padded dim for shape checking.
func PadEnd(x *Value, axis int, n *Value, out Dim, v float64) *Value {
	g := x.g.root
	r := x.Rank()
	parts := make([]*Value, 2*r)
	for i := range parts {
		parts[i] = g.Int64s(0)
	}
	parts[r+axis] = n
	s := x.Shape.Clone()
	s[axis] = out
	return op1("Pad", &dynAttr{Out: s}, x, Concat(0, parts...), g.Const(scalarTensor(x.DType, v)))
}

// SliceDynamic is x[start:end] along the given axes with runtime int64
// vectors start and end; out is the result's shape for shape checking.
func SliceDynamic(x, start, end *Value, axes []int64, out Shape) *Value {
	return op1("Slice", &dynAttr{Out: out.Clone(), Axes: axes}, x, start, end, x.g.root.Int64s(axes...))
}

// sliceDynamicGrad pads the adjoint of a runtime slice back to the input:
// begin pads are the starts, end pads what remains after the ends.
func sliceDynamicGrad(n *Node, d *dynAttr, g *Value) *Value {
	x, start, end := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	r := x.Rank()
	g0 := x.g.root
	parts := make([]*Value, 2*r)
	for i := range parts {
		parts[i] = g0.Int64s(0)
	}
	for i, ax := range d.Axes {
		k := normAxis("Slice", int(ax), r)
		dim := ShapeOf(x, k, k+1)
		s := SliceAxis(start, 0, int64(i), int64(i+1))
		e := Min(SliceAxis(end, 0, int64(i), int64(i+1)), dim)
		parts[k] = s
		parts[r+k] = Sub(dim, e)
	}
	return op1("Pad", &dynAttr{Out: x.Shape.Clone()}, g, Concat(0, parts...), g.g.root.Const(scalarTensor(g.DType, 0)))
}

// inferReshape is the shape rule of Reshape.
func inferReshape(n *Node) []TypeShape {
	x, a := n.Inputs[0], n.Attr.(*reshapeAttr)
	wantDType("Reshape", tensors.Int64, n.Inputs[1])
	if xe, oe := x.Shape.NumElements(), a.Out.NumElements(); xe != oe && xe.Static() && oe.Static() {
		panic(errorf("Reshape", "%v has %v elements, target %v has %v", x, xe, a.Out, oe))
	}
	return ts(x.DType, a.Out)
}

// reshapeGrad is the VJP of Reshape, Unsqueeze and Squeeze: the adjoint
// reshaped back to the input.
func reshapeGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{reshapeLike(g[0], n.Inputs[0]), nil}
}

// inferShape is the shape rule of Shape.
func inferShape(n *Node) []TypeShape {
	a := n.Attr.(*shapeAttr)
	if a.Start < 0 || a.End > n.Inputs[0].Rank() || a.Start > a.End {
		panic(errorf("Shape", "bad range [%d,%d) for %v", a.Start, a.End, n.Inputs[0]))
	}
	return ts(tensors.Int64, S(a.End-a.Start))
}

// shapeAttrs is the ONNX emitter of Shape.
func shapeAttrs(n *Node) []Attr {
	a := n.Attr.(*shapeAttr)
	return []Attr{intAttr("start", int64(a.Start)), intAttr("end", int64(a.End))}
}

// inferSize is the shape rule of Size.
func inferSize(n *Node) []TypeShape {
	return ts(tensors.Int64, nil)
}

// inferTranspose is the shape rule of Transpose.
func inferTranspose(n *Node) []TypeShape {
	x, p := n.Inputs[0], n.Attr.(*transposeAttr).Perm
	if len(p) != x.Rank() {
		panic(errorf("Transpose", "perm %v for %v", p, x))
	}
	out := make(Shape, len(p))
	seen := make([]bool, len(p))
	for i, a := range p {
		if a < 0 || int(a) >= len(p) || seen[a] {
			panic(errorf("Transpose", "bad perm %v", p))
		}
		seen[a] = true
		out[i] = x.Shape[a]
	}
	return ts(x.DType, out)
}

// transposeGrad is the VJP of Transpose.
func transposeGrad(n *Node, g []*Value, need []bool) []*Value {
	p := n.Attr.(*transposeAttr).Perm
	inv := make([]int64, len(p))
	for i, a := range p {
		inv[a] = int64(i)
	}
	return []*Value{Transpose(g[0], inv...)}
}

// transposeAttrs is the ONNX emitter of Transpose.
func transposeAttrs(n *Node) []Attr { return []Attr{intsAttr("perm", n.Attr.(*transposeAttr).Perm)} }

// inferUnsqueeze is the shape rule of Unsqueeze.
func inferUnsqueeze(n *Node) []TypeShape {
	x, axes := n.Inputs[0], n.Attr.(*axesAttr).Axes
	r := x.Rank() + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		ins[normAxis("Unsqueeze", int(a), r)] = true
	}
	out := make(Shape, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, x.Shape[j])
			j++
		}
	}
	return ts(x.DType, out)
}

// inferSqueeze is the shape rule of Squeeze.
func inferSqueeze(n *Node) []TypeShape {
	x, axes := n.Inputs[0], n.Attr.(*axesAttr).Axes
	drop := make([]bool, x.Rank())
	for _, a := range axes {
		i := normAxis("Squeeze", int(a), x.Rank())
		if !x.Shape[i].IsOne() {
			panic(errorf("Squeeze", "axis %d of %v is not 1", a, x))
		}
		drop[i] = true
	}
	var out Shape
	for i, d := range x.Shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	return ts(x.DType, out)
}

// inferConcat is the shape rule of Concat.
func inferConcat(n *Node) []TypeShape {
	ax := normAxis("Concat", int(n.Attr.(*concatAttr).Axis), n.Inputs[0].Rank())
	sameDType("Concat", n.Inputs...)
	out := n.Inputs[0].Shape.Clone()
	for _, v := range n.Inputs[1:] {
		if v.Rank() != len(out) {
			panic(errorf("Concat", "rank mismatch %v vs %v", n.Inputs[0], v))
		}
		for i := range out {
			if i == ax {
				out[i] = addDims(out[i], v.Shape[i])
			} else if out[i] != v.Shape[i] {
				panic(errorf("Concat", "dim %d differs: %v vs %v", i, n.Inputs[0], v))
			}
		}
	}
	return ts(n.Inputs[0].DType, out)
}

// concatGrad is the VJP of Concat.
func concatGrad(n *Node, g []*Value, need []bool) []*Value {
	ax := normAxis("Concat", int(n.Attr.(*concatAttr).Axis), n.Inputs[0].Rank())
	sizes := make([]int64, len(n.Inputs))
	static := true
	for i, v := range n.Inputs {
		static = static && v.Shape[ax].Static()
		sizes[i] = v.Shape[ax].K
	}
	if !static { // cut the adjoint at run-time offsets
		parts := make([]*Value, len(n.Inputs))
		start := g[0].g.root.Int64s(0)
		for i, v := range n.Inputs {
			end := Add(start, ShapeOf(v, ax, ax+1))
			if need[i] {
				parts[i] = SliceDynamic(g[0], start, end, []int64{int64(ax)}, v.Shape)
			}
			start = end
		}
		return parts
	}
	parts := Split(g[0], int64(ax), sizes...)
	for i := range parts {
		if !need[i] {
			parts[i] = nil
		}
	}
	return parts
}

// concatAttrs is the ONNX emitter of Concat.
func concatAttrs(n *Node) []Attr { return []Attr{intAttr("axis", n.Attr.(*concatAttr).Axis)} }

// inferSplit is the shape rule of Split.
func inferSplit(n *Node) []TypeShape {
	x, a := n.Inputs[0], n.Attr.(*splitAttr)
	ax := normAxis("Split", int(a.Axis), x.Rank())
	total := int64(0)
	out := make([]TypeShape, len(a.Sizes))
	for i, s := range a.Sizes {
		sh := x.Shape.Clone()
		sh[ax] = D(s)
		out[i] = TypeShape{x.DType, sh}
		total += s
	}
	if x.Shape[ax] != D(total) {
		panic(errorf("Split", "sizes %v do not add up to dim %d of %v", a.Sizes, ax, x))
	}
	return out
}

// splitGrad is the VJP of Split.
func splitGrad(n *Node, g []*Value, need []bool) []*Value {
	parts := make([]*Value, len(g))
	for i, gi := range g {
		if gi == nil {
			gi = ZerosLike(n.Outputs[i])
		}
		parts[i] = gi
	}
	return []*Value{Concat(n.Attr.(*splitAttr).Axis, parts...), nil}
}

// splitAttrs is the ONNX emitter of Split.
func splitAttrs(n *Node) []Attr { return []Attr{intAttr("axis", n.Attr.(*splitAttr).Axis)} }

// inferSlice is the shape rule of Slice.
func inferSlice(n *Node) []TypeShape {
	if d, ok := n.Attr.(*dynAttr); ok {
		if d.Out.Rank() != n.Inputs[0].Rank() {
			panic(errorf("Slice", "result shape %v for %v", d.Out, n.Inputs[0]))
		}
		return ts(n.Inputs[0].DType, d.Out)
	}
	x, a := n.Inputs[0], n.Attr.(*sliceAttr)
	if len(a.Ends) != len(a.Starts) || len(a.Axes) != len(a.Starts) || len(a.Steps) != len(a.Starts) {
		panic(errorf("Slice", "starts/ends/axes/steps lengths differ"))
	}
	out := x.Shape.Clone()
	for i, ax := range a.Axes {
		k := normAxis("Slice", int(ax), x.Rank())
		if a.Steps[i] == 0 {
			panic(errorf("Slice", "zero step"))
		}
		out[k] = sliceDim(x.Shape[k], a.Starts[i], a.Ends[i], a.Steps[i])
	}
	return ts(x.DType, out)
}

// sliceGrad is the VJP of Slice.
func sliceGrad(n *Node, g []*Value, need []bool) []*Value {
	if d, ok := n.Attr.(*dynAttr); ok {
		return []*Value{sliceDynamicGrad(n, d, g[0]), nil, nil, nil}
	}
	x, a := n.Inputs[0], n.Attr.(*sliceAttr)
	pads := make([]int64, 2*x.Rank())
	gx := g[0]
	for i, ax := range a.Axes {
		k := normAxis("Slice", int(ax), x.Rank())
		d, s, e := x.Shape[k], a.Starts[i], a.Ends[i]
		if a.Steps[i] != 1 {
			var span int64
			gx, s, span = unstride(gx, k, d, s, a.Steps[i])
			pads[k], pads[k+x.Rank()] = s, d.K-s-span
			continue
		}
		if d.Static() {
			size := d.K
			if s < 0 {
				s += size
			}
			if e < 0 {
				e += size
			}
			s, e = max(0, min(size, s)), max(0, min(size, e))
			pads[k], pads[k+x.Rank()] = s, size-e
			continue
		}
		if s < 0 || (e != End && e >= 0) {
			panic(errorf("Slice", "gradient of slice [%d:%d] of symbolic dim %v", s, e, d))
		}
		pads[k] = s
		if e < 0 {
			pads[k+x.Rank()] = -e
		}
	}
	return []*Value{ZeroPad(gx, pads), nil, nil, nil, nil}
}

// inferPad is the shape rule of Pad.
func inferPad(n *Node) []TypeShape {
	if d, ok := n.Attr.(*dynAttr); ok {
		return ts(n.Inputs[0].DType, d.Out)
	}
	x, p := n.Inputs[0], n.Attr.(*padAttr).Pads
	if len(p) != 2*x.Rank() {
		panic(errorf("Pad", "pads %v for %v", p, x))
	}
	out := x.Shape.Clone()
	for i := range out {
		out[i] = addDims(out[i], D(p[i]+p[i+x.Rank()]))
	}
	return ts(x.DType, out)
}

// padGrad is the VJP of Pad.
func padGrad(n *Node, g []*Value, need []bool) []*Value {
	x := n.Inputs[0]
	if _, ok := n.Attr.(*dynAttr); ok {
		// Runtime padding: cut the adjoint back to x's extent, where x
		// starts at the pads' begin entries.
		r := int64(x.Rank())
		begin := SliceAxis(n.Inputs[1], 0, 0, r)
		end := Add(begin, ShapeOf(x, 0, x.Rank()))
		return []*Value{SliceDynamic(g[0], begin, end, allAxes(x), x.Shape), nil, nil}
	}
	p := n.Attr.(*padAttr).Pads
	r := x.Rank()
	var starts, ends, axes []int64
	for i := 0; i < r; i++ {
		if p[i] < 0 || p[i+r] < 0 {
			panic(errorf("Pad", "gradient of negative padding"))
		}
		if p[i] == 0 && p[i+r] == 0 {
			continue
		}
		e := int64(End)
		if p[i+r] > 0 {
			e = -p[i+r]
		}
		starts, ends, axes = append(starts, p[i]), append(ends, e), append(axes, int64(i))
	}
	return []*Value{Slice(g[0], starts, ends, axes, nil), nil, nil}
}

// padAttrs is the ONNX emitter of Pad.
func padAttrs(n *Node) []Attr { return []Attr{stringAttr("mode", "constant")} }

// inferGather is the shape rule of Gather.
func inferGather(n *Node) []TypeShape {
	d, idx := n.Inputs[0], n.Inputs[1]
	wantInt("Gather", idx)
	ax := normAxis("Gather", int(n.Attr.(*gatherAttr).Axis), d.Rank())
	out := append(append(d.Shape[:ax:ax], idx.Shape...), d.Shape[ax+1:]...)
	return ts(d.DType, out)
}

// gatherGrad is the VJP of Gather.
func gatherGrad(n *Node, g []*Value, need []bool) []*Value {
	d, idx := n.Inputs[0], n.Inputs[1]
	if normAxis("Gather", int(n.Attr.(*gatherAttr).Axis), d.Rank()) != 0 {
		panic(errorf("Gather", "gradient only along axis 0"))
	}
	// Scatter-add the rows back: the embedding gradient.
	return []*Value{ScatterNDAdd(ZerosLike(d), Unsqueeze(Cast(idx, tensors.Int64), -1), g[0]), nil}
}

// gatherAttrs is the ONNX emitter of Gather and GatherElements.
func gatherAttrs(n *Node) []Attr { return []Attr{intAttr("axis", n.Attr.(*gatherAttr).Axis)} }

// inferGatherElements is the shape rule of GatherElements.
func inferGatherElements(n *Node) []TypeShape {
	d, idx := n.Inputs[0], n.Inputs[1]
	wantInt("GatherElements", idx)
	normAxis("GatherElements", int(n.Attr.(*gatherAttr).Axis), d.Rank())
	if idx.Rank() != d.Rank() {
		panic(errorf("GatherElements", "indices %v must have the rank of %v", idx, d))
	}
	return ts(d.DType, idx.Shape)
}

// gatherElementsGrad is the VJP of GatherElements.
func gatherElementsGrad(n *Node, g []*Value, need []bool) []*Value {
	d, idx := n.Inputs[0], n.Inputs[1]
	return []*Value{ScatterElementsAdd(ZerosLike(d), idx, g[0], n.Attr.(*gatherAttr).Axis), nil}
}

// inferGatherND is the shape rule of GatherND.
func inferGatherND(n *Node) []TypeShape {
	d, idx := n.Inputs[0], n.Inputs[1]
	wantDType("GatherND", tensors.Int64, idx)
	k := idx.Shape[idx.Rank()-1]
	if !k.Static() || int(k.K) > d.Rank() {
		panic(errorf("GatherND", "last dim of %v must be static and ≤ rank of %v", idx, d))
	}
	out := append(idx.Shape[:idx.Rank()-1:idx.Rank()-1], d.Shape[k.K:]...)
	return ts(d.DType, out)
}

// gatherNDGrad is the VJP of GatherND.
func gatherNDGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{ScatterNDAdd(ZerosLike(n.Inputs[0]), n.Inputs[1], g[0]), nil}
}

// inferScatterElements is the shape rule of ScatterElements.
func inferScatterElements(n *Node) []TypeShape {
	d, idx, u := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	wantInt("ScatterElements", idx)
	sameDType("ScatterElements", d, u)
	if !idx.Shape.Equal(u.Shape) {
		panic(errorf("ScatterElements", "indices %v and updates %v differ in shape", idx, u))
	}
	return ts(d.DType, d.Shape)
}

// scatterElementsGrad is the VJP of ScatterElements.
func scatterElementsGrad(n *Node, g []*Value, need []bool) []*Value {
	idx := n.Inputs[1]
	return []*Value{g[0], nil, GatherElements(g[0], idx, n.Attr.(*scatterAttr).Axis)}
}

// scatterElementsAttrs is the ONNX emitter of ScatterElements.
func scatterElementsAttrs(n *Node) []Attr {
	a := n.Attr.(*scatterAttr)
	return []Attr{intAttr("axis", a.Axis), stringAttr("reduction", a.Reduction)}
}

// inferScatterND is the shape rule of ScatterND.
func inferScatterND(n *Node) []TypeShape {
	d, idx, u := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	wantDType("ScatterND", tensors.Int64, idx)
	sameDType("ScatterND", d, u)
	return ts(d.DType, d.Shape)
}

// scatterNDGrad is the VJP of ScatterND.
func scatterNDGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{g[0], nil, GatherND(g[0], n.Inputs[1])}
}

// scatterNDAttrs is the ONNX emitter of ScatterND.
func scatterNDAttrs(n *Node) []Attr {
	return []Attr{stringAttr("reduction", n.Attr.(*scatterAttr).Reduction)}
}

// inferExpand is the shape rule of Expand.
func inferExpand(n *Node) []TypeShape {
	x, a := n.Inputs[0], n.Attr.(*reshapeAttr)
	return ts(x.DType, broadcastShapes("Expand", x.Shape, a.Out))
}

// expandGrad is the VJP of Expand.
func expandGrad(n *Node, g []*Value, need []bool) []*Value {
	return []*Value{sumLike(g[0], n.Inputs[0]), nil}
}

// inferConstantOfShape is the shape rule of ConstantOfShape.
func inferConstantOfShape(n *Node) []TypeShape {
	a := n.Attr.(*constOfShapeAttr)
	wantDType("ConstantOfShape", tensors.Int64, n.Inputs[0])
	return ts(a.Value.DType, a.Out)
}

// constantOfShapeAttrs is the ONNX emitter of ConstantOfShape.
func constantOfShapeAttrs(n *Node) []Attr {
	return []Attr{tensorAttr("value", n.Attr.(*constOfShapeAttr).Value)}
}

// inferRange is the shape rule of Range.
func inferRange(n *Node) []TypeShape {
	sameDType("Range", n.Inputs...)
	for _, v := range n.Inputs {
		if v.Rank() != 0 {
			panic(errorf("Range", "input %v must be a scalar", v))
		}
	}
	return ts(n.Inputs[0].DType, Shape{n.Attr.(*rangeAttr).Out})
}

// inferTrilu is the shape rule of Trilu.
func inferTrilu(n *Node) []TypeShape {
	if n.Inputs[0].Rank() < 2 {
		panic(errorf("Trilu", "input %v needs rank ≥ 2", n.Inputs[0]))
	}
	return inferSame(n)
}

// triluGrad is the VJP of Trilu.
func triluGrad(n *Node, g []*Value, need []bool) []*Value {
	a := n.Attr.(*triluAttr)
	return []*Value{Trilu(g[0], a.Upper, a.K), nil}
}

// triluAttrs is the ONNX emitter of Trilu.
func triluAttrs(n *Node) []Attr { return []Attr{intAttr("upper", boolInt(n.Attr.(*triluAttr).Upper))} }

// inferCumSum is the shape rule of CumSum.
func inferCumSum(n *Node) []TypeShape {
	normAxis("CumSum", int(n.Attr.(*cumSumAttr).Axis), n.Inputs[0].Rank())
	return inferSame(n)
}

// cumSumGrad is the VJP of CumSum.
func cumSumGrad(n *Node, g []*Value, need []bool) []*Value {
	a := n.Attr.(*cumSumAttr)
	return []*Value{CumSum(g[0], a.Axis, a.Exclusive, !a.Reverse), nil}
}

// cumSumAttrs is the ONNX emitter of CumSum.
func cumSumAttrs(n *Node) []Attr {
	a := n.Attr.(*cumSumAttr)
	return []Attr{intAttr("exclusive", boolInt(a.Exclusive)), intAttr("reverse", boolInt(a.Reverse))}
}
