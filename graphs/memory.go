package graphs

import "sort"

// Liveness is a memory model of one run of a graph: its nodes run one at a
// time in creation order, each node's outputs are allocated when it runs,
// and a buffer is freed after the last node that reads it (graph outputs
// stay to the end). Ops that only relabel a buffer (Reshape, Squeeze,
// Unsqueeze, Flatten, Identity) share their input's buffer, which then
// lives as long as its longest-lived label. Graph inputs and initializers
// are resident throughout and counted apart. A Loop or If node holds, while
// it runs, the largest set of its body's own buffers; values a body reads
// from enclosing graphs count as read by that node. Values of symbolic
// shape are not sized (Unsized counts them).
//
// It is the largest set of live tensors, the figure a static memory planner
// (ONNX Runtime's) can reach at best; in-place kernels may lower it and an
// arena's rounding raises what a device reports.
type Liveness struct {
	// PeakBytes is the largest total of node-output buffers live at once.
	PeakBytes int64
	// PeakNode is the node during which it is reached (nil for a graph
	// without nodes); PeakIndex is its position in the graph's nodes.
	PeakNode  *Node
	PeakIndex int
	// Live is the buffers live at the peak, one value per buffer (the
	// first label of a shared buffer), largest first.
	Live []*Value
	// InputBytes and InitBytes are the graph inputs and initializers (of
	// the graph and the bodies it holds), resident throughout.
	InputBytes, InitBytes int64
	// Unsized counts buffers of symbolic shape, taken as zero bytes.
	Unsized int
}

// Total is the peak of node outputs plus the resident inputs and
// initializers.
func (l Liveness) Total() int64 { return l.PeakBytes + l.InputBytes + l.InitBytes }

// aliasOps share their first input's buffer.
var aliasOps = map[string]bool{"Reshape": true, "Squeeze": true, "Unsqueeze": true, "Flatten": true, "Identity": true}

// Bytes is v's size at its static shape, -1 for a symbolic shape.
func (v *Value) Bytes() int64 {
	if !v.Shape.Static() {
		return -1
	}
	return v.Shape.NumElements().K * int64(v.DType.Size())
}

// AnalyzeLiveness runs the memory model of Liveness over g.
func AnalyzeLiveness(g *Graph) Liveness {
	var l Liveness
	for _, v := range g.inputs {
		l.InputBytes += max(0, v.Bytes())
	}
	l.InitBytes = initBytes(g)
	peak, at, live, unsized := g.peak()
	l.PeakBytes, l.PeakIndex, l.Live, l.Unsized = peak, at, live, unsized
	if at >= 0 {
		l.PeakNode = g.nodes[at]
	}
	return l
}

func initBytes(g *Graph) int64 {
	var b int64
	for _, v := range g.inits {
		b += max(0, v.Bytes())
	}
	for _, n := range g.nodes {
		for _, a := range n.def.Attrs(n) {
			if a.Kind == AttrGraph {
				b += initBytes(a.Graph)
			}
		}
	}
	return b
}

// reads is every value node n reads: its inputs and, for a node holding
// subgraphs, the values of enclosing graphs those subgraphs read.
func reads(n *Node) []*Value {
	out := append([]*Value{}, n.Inputs...)
	for _, a := range n.def.Attrs(n) {
		if a.Kind != AttrGraph {
			continue
		}
		for _, m := range a.Graph.AllNodes() {
			for _, in := range m.Inputs {
				if in != nil && in.g != a.Graph && !a.Graph.enclosesStrictly(in.g) {
					out = append(out, in)
				}
			}
		}
		outs, _ := a.Graph.Outputs()
		for _, o := range outs {
			if o.g != a.Graph && !a.Graph.enclosesStrictly(o.g) {
				out = append(out, o)
			}
		}
	}
	return out
}

// enclosesStrictly reports whether h is a subgraph nested in g.
func (g *Graph) enclosesStrictly(h *Graph) bool {
	for x := h.parent; x != nil; x = x.parent {
		if x == g {
			return true
		}
	}
	return false
}

// peak is the largest total of g's own node-output buffers live at once
// (plus, at a node holding subgraphs, their peak), the node index where it
// occurs, the buffers live there and how many buffers were unsized.
func (g *Graph) peak() (int64, int, []*Value, int) {
	// Each buffer is named by its first label; last is the index of the
	// last node reading any of its labels (len(nodes) for an output).
	root := map[*Value]*Value{}
	born := map[*Value]int{}
	last := map[*Value]int{}
	unsized := 0
	for i, n := range g.nodes {
		for _, in := range reads(n) {
			if r, ok := root[in]; ok {
				last[r] = max(last[r], i)
			}
		}
		for j, o := range n.Outputs {
			if j == 0 && aliasOps[n.Op] {
				if r, ok := root[n.Inputs[0]]; ok {
					root[o] = r
				} // else a label of a resident input or initializer
				continue
			}
			root[o] = o
			born[o], last[o] = i, i
			if o.Bytes() < 0 {
				unsized++
			}
		}
	}
	outs, _ := g.Outputs()
	for _, o := range outs {
		if r, ok := root[o]; ok {
			last[r] = len(g.nodes)
		}
	}
	// Sweep: +bytes at birth, −bytes after the last read.
	delta := make([]int64, len(g.nodes)+2)
	for r, b := range born {
		s := max(0, r.Bytes())
		delta[b] += s
		delta[last[r]+1] -= s
	}
	var cur, best int64
	at := -1
	for i, n := range g.nodes {
		cur += delta[i]
		extra := int64(0)
		for _, a := range n.def.Attrs(n) {
			if a.Kind == AttrGraph {
				p, _, _, u := a.Graph.peak()
				extra = max(extra, p)
				unsized += u
			}
		}
		if cur+extra > best || at < 0 {
			best, at = cur+extra, i
		}
	}
	var live []*Value
	for r, b := range born {
		if b <= at && last[r] >= at && r.Bytes() > 0 {
			live = append(live, r)
		}
	}
	sortLargestFirst(live)
	return best, at, live, unsized
}

func sortLargestFirst(vs []*Value) {
	sort.Slice(vs, func(i, j int) bool {
		a, b := vs[i], vs[j]
		if a.Bytes() != b.Bytes() {
			return a.Bytes() > b.Bytes()
		}
		return a.id < b.id
	})
}
