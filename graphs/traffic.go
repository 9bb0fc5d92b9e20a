package graphs

// Traffic is the bytes node n reads and writes when its kernel runs: each
// input and output counted once at its static size, nothing for values of
// symbolic shape, and nothing for the ops that only relabel a buffer
// (Reshape, Squeeze, Unsqueeze, Shape) or hold a constant. It models memory-bound kernels;
// a product reads its operands once here, as a well-tiled GEMM does.
func (n *Node) Traffic() int64 {
	switch n.Op {
	case "Reshape", "Squeeze", "Unsqueeze", "Shape", "Constant":
		return 0
	}
	var b int64
	for _, vs := range [][]*Value{n.Inputs, n.Outputs} {
		for _, v := range vs {
			if v != nil && v.Shape.Static() {
				b += v.Shape.NumElements().K * int64(v.DType.Size())
			}
		}
	}
	return b
}

// AllNodes is g's nodes followed by those of its Loop bodies and If
// branches, recursively: each body once, as one iteration.
func (g *Graph) AllNodes() []*Node {
	var out []*Node
	for _, n := range g.nodes {
		out = append(out, n)
		if n.Body != nil {
			out = append(out, n.Body.AllNodes()...)
		}
		if a, ok := n.Attr.(*ifAttr); ok {
			out = append(out, a.Then.AllNodes()...)
			out = append(out, a.Else.AllNodes()...)
		}
	}
	return out
}
