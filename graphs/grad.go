package graphs

import "mohawk/tensors"

// Gradients builds the reverse-mode derivative of the scalar loss with
// respect to each value in wrt, in loss's graph, and returns one gradient per
// wrt value (same dtype and shape). Only nodes on a path from some wrt value
// to the loss are differentiated, and only adjoints that are needed are
// built, so frozen weights and data cost nothing. A wrt value the loss does
// not depend on gets zeros. Adjoints of values used several times are
// summed, with one Sum node when there are more than two.
//
// The forward computation between wrt and loss must lie in loss's graph: a
// loop body differentiates what it computes itself, reading parameters of
// the enclosing graph directly (a value derived from a parameter outside the
// body is refused).
func Gradients(loss *Value, wrt ...*Value) []*Value {
	g := loss.g
	if !loss.DType.IsFloat() || loss.Shape.NumElements() != D(1) {
		panic(errorf("Gradients", "loss %v must be a float tensor with one element", loss))
	}
	if g.gradFrom == 0 {
		g.gradFrom = len(g.nodes) + 1
	}
	useful := map[*Value]bool{}
	for _, w := range wrt {
		if !g.encloses(w.g) {
			panic(errorf("Gradients", "%v is not visible from graph %q", w, g.Name))
		}
		useful[w] = true
	}
	// Forward sweep (ancestors first, so outer derived values are marked).
	var chain []*Graph
	for x := g; x != nil; x = x.parent {
		chain = append([]*Graph{x}, chain...)
	}
	for _, h := range chain {
		for _, n := range h.nodes {
			if n.def.NoGrad {
				continue
			}
			for _, in := range n.Inputs {
				if in != nil && useful[in] {
					for _, o := range n.Outputs {
						useful[o] = o.DType.IsFloat()
					}
					break
				}
			}
		}
	}
	// parts holds each value's adjoint contributions, one per use; they are
	// summed when the value's producer is reached (every use comes later in
	// the node order) or, for wrt values, at the end.
	parts := map[*Value][]*Value{loss: {g.Const(onesTensor(loss.DType, loss.Shape.Sizes()))}}
	adjoint := func(v *Value) *Value {
		ps := parts[v]
		switch len(ps) {
		case 0:
			return nil
		case 1:
			return ps[0]
		case 2:
			ps = []*Value{Add(ps[0], ps[1])}
		default:
			ps = []*Value{Sum(ps...)}
		}
		parts[v] = ps
		return ps[0]
	}
	nodes := g.nodes
	recomputed := map[int]map[*Node]*Node{} // segment → its nodes' copies
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.def.NoGrad {
			continue
		}
		gouts := make([]*Value, len(n.Outputs))
		any := false
		for j, o := range n.Outputs {
			gouts[j] = adjoint(o)
			any = any || gouts[j] != nil
		}
		need := make([]bool, len(n.Inputs))
		anyNeed := false
		for j, in := range n.Inputs {
			need[j] = in != nil && useful[in] && in.DType.IsFloat()
			anyNeed = anyNeed || need[j]
		}
		if !any || !anyNeed {
			continue
		}
		if n.def.Grad == nil {
			panic(errorf("Gradients", "op %s has no gradient rule", n.Op))
		}
		gins := n.def.Grad(vjpNode(g, nodes, n, gouts, recomputed), gouts, need)
		if len(gins) != len(n.Inputs) {
			panic(errorf("Gradients", "bug in VJP for %s: %d adjoints for %d inputs", n.Op, len(gins), len(n.Inputs)))
		}
		for j, gi := range gins {
			if !need[j] || gi == nil {
				continue
			}
			in := n.Inputs[j]
			if gi.DType != in.DType || !gi.Shape.Equal(in.Shape) {
				panic(errorf("Gradients", "bug in VJP for %s: adjoint %v for input %v", n.Op, gi, in))
			}
			if n.seg != 0 && (in.kind != kindNode || in.g != g) && len(parts[in]) > 0 {
				// A parameter's gradient from a segment is summed as it
				// comes, so that many segments' contributions are not all
				// kept until the end.
				parts[in] = []*Value{Add(adjoint(in), gi)}
			} else {
				parts[in] = append(parts[in], gi)
			}
		}
	}
	isWrt := map[*Value]bool{}
	for _, w := range wrt {
		isWrt[w] = true
	}
	for v := range parts {
		if v.g != g && v.kind == kindNode && useful[v] && !isWrt[v] {
			panic(errorf("Gradients", "gradient reaches %v, computed outside graph %q from a differentiated value; compute it inside", v, g.Name))
		}
	}
	out := make([]*Value, len(wrt))
	for i, w := range wrt {
		if a := adjoint(w); a != nil {
			out[i] = a
		} else {
			out[i] = ZerosLike(w)
		}
	}
	return out
}

// vjpNode is the node whose VJP stands for n's: n itself, or its copy when
// n's recomputation segment copied it (recomputed keeps each segment's
// copies, made when the segment's first gradient is needed).
func vjpNode(g *Graph, nodes []*Node, n *Node, gouts []*Value, recomputed map[int]map[*Node]*Node) *Node {
	if n.seg == 0 {
		return n
	}
	cs, ok := recomputed[n.seg]
	if !ok {
		cs = recomputeSegment(g, nodes, n.seg, firstNonNil(gouts))
		recomputed[n.seg] = cs
	}
	if c := cs[n]; c != nil {
		return c
	}
	return n
}

func firstNonNil(vs []*Value) *Value {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func onesTensor(dt tensors.DType, shape []int64) *tensors.Tensor {
	n := tensors.NumElements(shape)
	f := make([]float64, n)
	for i := range f {
		f[i] = 1
	}
	return tensors.FromFloat64(shape, f).Convert(dt)
}
