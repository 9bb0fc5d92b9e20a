package graphs_test

import (
	"fmt"

	"mohawk/graphs"
	"mohawk/tensors"
)

// Build a linear layer on a batch with a symbolic size: shape rules run as
// the graph is built.
func Example() {
	g := graphs.New("linear")
	x := g.Input("x", tensors.Float32, graphs.S("batch", 3))
	w := g.Input("w", tensors.Float32, graphs.S(3, 2))
	y := graphs.Add(graphs.MatMul(x, w), g.Scalar(tensors.Float32, 1))
	g.Output("y", y)
	fmt.Println(y.Shape, y.DType)
	fmt.Println(graphs.Reshape(y, -1).Shape)
	// Output:
	// [batch,2] float32
	// [2*batch]
}

// Gradients builds the backward pass of a scalar loss with respect to
// chosen values; each gradient has its value's shape.
func ExampleGradients() {
	g := graphs.New("loss")
	x := g.Input("x", tensors.Float32, graphs.S("batch", 3))
	w := g.Input("w", tensors.Float32, graphs.S(3, 2))
	loss := graphs.ReduceMeanAll(graphs.Tanh(graphs.MatMul(x, w)))
	dw := graphs.Gradients(loss, w)[0]
	fmt.Println(dw.Shape, dw.Node().Op)
	// Output:
	// [3,2] MatMul
}

// A shape error panics with *graphs.Error while building; Try turns it
// into an error that names the op, the shapes and where it was built.
func ExampleTry() {
	g := graphs.New("bad")
	a := g.Input("a", tensors.Float32, graphs.S(2, 3))
	b := g.Input("b", tensors.Float32, graphs.S(4, 5))
	err := graphs.Try(func() { graphs.MatMul(a, b) })
	fmt.Println(err != nil)
	// Output:
	// true
}

// CausalConv is one fused node of mohawk's own kernel domain; its gradient
// is another, whose weight and bias parts come as ConvChunks partial sums
// that the gradient rule adds up.
func ExampleCausalConv() {
	g := graphs.New("conv")
	x := g.Input("x", tensors.Float32, graphs.S("batch", "seq", 6))
	w := g.Input("w", tensors.Float32, graphs.S(6, 1, 4))
	b := g.Input("b", tensors.Float32, graphs.S(6))
	y := graphs.CausalConv(x, w, b)
	dw := graphs.Gradients(graphs.ReduceSumAll(y), w)[0]
	fmt.Println(y.Shape, y.Node().Def().Domain, y.Node().Op)
	fmt.Println(dw.Shape, dw.DType)
	// Output:
	// [batch,seq,6] mohawk.fused CausalConv
	// [6,1,4] float32
}

// CausalConvSplit convolves the first channels of x (as many as w has)
// into parts and passes the rest through as parts of their own; the
// gradient for x is one CausalConvGrad node that writes it whole.
func ExampleCausalConvSplit() {
	g := graphs.New("conv")
	x := g.Input("x", tensors.Float32, graphs.S("batch", "seq", 10))
	w := g.Input("w", tensors.Float32, graphs.S(6, 1, 4))
	b := g.Input("b", tensors.Float32, graphs.S(6))
	parts := graphs.CausalConvSplit(x, w, b, 2, 4, 4) // the conv's 6 channels as 2 + 4, then x's last 4
	dx := graphs.Gradients(graphs.ReduceSumAll(graphs.Concat(-1, parts...)), x)[0]
	for _, p := range parts {
		fmt.Println(p.Shape)
	}
	fmt.Println(dx.Node().Op, dx.Shape)
	// Output:
	// [batch,seq,2]
	// [batch,seq,4]
	// [batch,seq,4]
	// CausalConvGrad [batch,seq,10]
}

// SegsumExp turns cumulative log decays (float64, one row per head) into
// the masked decay matrix in the dtype asked for; its gradient returns to
// the cumulative sums as one SegsumExpGrad node.
func ExampleSegsumExp() {
	g := graphs.New("decays")
	a := g.Input("log_a", tensors.Float64, graphs.S("heads", 128))
	cs := graphs.CumSum(a, 1, false, false)
	l := graphs.SegsumExp(cs, tensors.BFloat16)
	da := graphs.Gradients(graphs.ReduceSumAll(graphs.Cast(l, tensors.Float64)), a)[0]
	fmt.Println(l.Shape, l.DType, l.Node().Op)
	fmt.Println(da.Shape, da.DType)
	// Output:
	// [heads,128,128] bfloat16 SegsumExp
	// [heads,128] float64
}
