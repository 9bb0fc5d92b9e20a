package graphs

// SetRecompute turns activation recomputation on or off for the segments
// Recomputed marks from now on, in g's root graph and its subgraphs.
func (g *Graph) SetRecompute(on bool) { g.root.recompute = on }

// Recomputed builds fn's nodes in g. With recomputation on (SetRecompute),
// they form one segment, typically one layer: Gradients does not keep the
// segment's inner values for the backward pass but builds a copy of the
// segment's forward nodes there, just before the first of their gradients
// is needed, and differentiates the copy. The backward pass then holds the
// inner values of one segment at a time instead of all of them, for one more
// forward pass of the segment. Segments do not nest (an inner call belongs
// to the outer segment), and only nodes of g itself belong to it.
func (g *Graph) Recomputed(fn func()) { g.segment(g.root.recompute, fn) }

// AlwaysRecomputed is Recomputed whatever the graph's recompute setting:
// for work split into chunks only so that one chunk's values are live at a
// time (a loss over a large vocabulary, losses.TimeChunked).
func (g *Graph) AlwaysRecomputed(fn func()) { g.segment(true, fn) }

func (g *Graph) segment(on bool, fn func()) {
	r := g.root
	if !on || r.seg != 0 {
		fn()
		return
	}
	r.segs++
	r.seg, r.segGraph = r.segs, g
	defer func() { r.seg, r.segGraph = 0, nil }()
	fn()
}

// recomputeSegment copies the nodes of segment seg among nodes (g's, in
// creation order) and returns each copied node's copy. A node whose inputs
// all come from outside the segment and are not computed (graph inputs
// such as parameters, initializers, integer data) is not copied: the
// original serves and is kept for the backward pass. Nor is a Slice or
// Gather that reads only values from outside the segment (a chunk's part
// of a large input): its original output is kept, and counts as an input
// from outside. Float values computed outside the segment (the segment's
// input) enter the copy as
// v + 0·e, e one element of grad, an adjoint the backward pass has already
// computed: the copy cannot run before the backward pass reaches the
// segment, and no pass that merges identical nodes (ONNX Runtime's common
// subexpression elimination) can fold it into the original.
func recomputeSegment(g *Graph, nodes []*Node, seg int, grad *Value) map[*Node]*Node {
	copies := map[*Value]*Value{}
	var zero *Value // 0·e, rank 0
	tie := func(v *Value) *Value {
		if c, ok := copies[v]; ok {
			return c
		}
		if zero == nil {
			e := Gather(Reshape(grad, -1), g.Int64(0), 0)
			zero = Mul(e, ScalarLike(e, 0))
		}
		z := zero
		if z.DType != v.DType {
			z = Cast(z, v.DType)
		}
		c := Add(v, z)
		copies[v] = c
		return c
	}
	out := map[*Node]*Node{}
	entry := map[*Value]bool{} // outputs of uncopied entry slices
	for _, n := range nodes {
		if n.seg != seg {
			continue
		}
		if holdsGraph(n) {
			panic(errorf("Gradients", "recomputation segment holds %s node with a subgraph; build it outside Recomputed", n.Op))
		}
		if x := n.Inputs[0]; (n.Op == "Slice" || n.Op == "Gather") && (x.kind != kindNode || x.node.seg != seg || entry[x]) {
			for _, o := range n.Outputs {
				entry[o] = true
			}
			continue
		}
		ins := make([]*Value, len(n.Inputs))
		copied := false
		for j, in := range n.Inputs {
			ins[j] = in
			if in == nil {
				continue
			}
			if c, ok := copies[in]; ok {
				ins[j], copied = c, true
			} else if in.kind == kindNode && in.g == g && (in.node.seg != seg || entry[in]) && in.DType.IsFloat() {
				ins[j], copied = tie(in), true
			}
		}
		if !copied {
			continue
		}
		c := g.add(n.Op, n.Attr, ins...)[0].node
		for j, o := range n.Outputs {
			copies[o] = c.Outputs[j]
		}
		out[n] = c
	}
	return out
}

func holdsGraph(n *Node) bool {
	for _, a := range n.def.Attrs(n) {
		if a.Kind == AttrGraph {
			return true
		}
	}
	return false
}
