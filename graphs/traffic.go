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
