package graphs

import "mohawk/tensors"

// IfBranch is one branch of an If under construction: a subgraph without
// inputs that reads values of its enclosing graphs (ONNX outer-scope
// capture). Ops whose inputs all come from enclosing graphs are placed
// there, so branch code starts from Capture: ops built on captured values
// run only when the branch is taken.
type IfBranch struct {
	G    *Graph
	outs []*Value
}

// NewIfBranch starts a branch in g named name.
func NewIfBranch(g *Graph, name string) *IfBranch {
	return &IfBranch{G: g.Subgraph(name)}
}

// Capture returns v, a value of an enclosing graph, as a value of the
// branch (an Identity node inside it).
func (b *IfBranch) Capture(v *Value) *Value {
	if v.g == b.G {
		return v
	}
	return b.G.add("Identity", nil, v)[0]
}

// Finish sets the branch's outputs. A branch may also return values of
// enclosing graphs: export passes those through an Identity inside it.
func (b *IfBranch) Finish(outs ...*Value) {
	if b.outs != nil {
		panic(errorf("If", "branch %q is already finished", b.G.Name))
	}
	if len(outs) == 0 {
		panic(errorf("If", "branch %q has no outputs", b.G.Name))
	}
	for i, v := range outs {
		b.G.Output(nameIndexed(b.G.Name+"_out", i), v) // export adds an Identity where v is not the branch's own
	}
	b.outs = outs
}

type ifAttr struct{ Then, Else *Graph }

// If runs then when cond (a bool tensor with one element) is true at run
// time and els otherwise, and returns the taken branch's outputs. Both
// branches must return the same number of values with equal dtypes and
// shapes (symbolic dims included); reshape a branch's results to the common
// shape (ReshapeTo) where only the run time makes them equal.
func If(cond *Value, then, els *IfBranch) []*Value {
	for _, b := range []*IfBranch{then, els} {
		if b.outs == nil {
			panic(errorf("If", "branch %q was not finished", b.G.Name))
		}
	}
	g := graphOf("If", cond)
	for _, b := range []*IfBranch{then, els} {
		if b.G.parent != g && !b.G.parent.encloses(g) {
			panic(errorf("If", "branch %q was made for another graph", b.G.Name))
		}
	}
	return g.add("If", &ifAttr{then.G, els.G}, cond)
}

func init() {
	register(&OpDef{Type: "If", Since: 11, Infer: inferIf, NoGrad: true, Attrs: ifAttrs})
}

// inferIf is the shape rule of If.
func inferIf(n *Node) []TypeShape {
	a := n.Attr.(*ifAttr)
	cond := n.Inputs[0]
	wantDType("If", tensors.Bool, cond)
	if cond.Shape.NumElements() != D(1) {
		panic(errorf("If", "condition %v must have exactly one element", cond))
	}
	to, _ := a.Then.Outputs()
	eo, _ := a.Else.Outputs()
	if len(to) != len(eo) {
		panic(errorf("If", "branch %q returns %d values, branch %q %d", a.Then.Name, len(to), a.Else.Name, len(eo)))
	}
	out := make([]TypeShape, len(to))
	for i := range to {
		if to[i].DType != eo[i].DType || !to[i].Shape.Equal(eo[i].Shape) {
			panic(errorf("If", "output %d differs between the branches: %v in %q, %v in %q", i, to[i], a.Then.Name, eo[i], a.Else.Name))
		}
		out[i] = TypeShape{to[i].DType, to[i].Shape.Clone()}
	}
	return out
}

// ifAttrs is the ONNX emitter of If.
func ifAttrs(n *Node) []Attr {
	a := n.Attr.(*ifAttr)
	return []Attr{{Name: "then_branch", Kind: AttrGraph, Graph: a.Then}, {Name: "else_branch", Kind: AttrGraph, Graph: a.Else}}
}
