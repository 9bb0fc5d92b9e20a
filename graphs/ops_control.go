package graphs

import "mohawk/tensors"

// LoopBody is the body graph of a Loop under construction. Its inputs are
// the iteration number (int64 scalar), the incoming condition (bool scalar)
// and one value per loop-carried variable. The body may read any value of
// its enclosing graphs (outer-scope capture), e.g. parameters.
type LoopBody struct {
	G          *Graph
	Iter       *Value
	Cond       *Value
	Carried    []*Value
	outs       []*Value
	nScan      int
	prevActive *Graph
}

// NewLoopBody starts a body in g whose carried variables have the types of
// init.
func NewLoopBody(g *Graph, name string, init []*Value) *LoopBody {
	sg := g.Subgraph(name)
	b := &LoopBody{G: sg, prevActive: g.root.active}
	g.root.active = sg
	b.Iter = sg.Input(name+"_iter", tensors.Int64, nil)
	b.Cond = sg.Input(name+"_cond_in", tensors.Bool, nil)
	for i, v := range init {
		b.Carried = append(b.Carried, sg.Input(nameIndexed(name+"_carried", i), v.DType, v.Shape))
	}
	return b
}

// Finish sets the body's outputs: the continue condition, the new carried
// values and per-iteration scan outputs (stacked by the Loop).
func (b *LoopBody) Finish(cond *Value, carried, scans []*Value) {
	if len(carried) != len(b.Carried) {
		panic(errorf("Loop", "body returns %d carried values, has %d", len(carried), len(b.Carried)))
	}
	if cond == nil {
		cond = b.Cond
	}
	// Outputs that pass a value through (a body input, an outer value, a
	// value output twice) get their Identity from the exporter; a value the
	// body computes is written as the output itself, without a copy.
	b.G.Output(b.G.Name+"_cond_out", cond)
	for i, v := range carried {
		if v.DType != b.Carried[i].DType {
			panic(errorf("Loop", "carried value %d changes dtype: %v → %v", i, b.Carried[i], v))
		}
		b.G.Output(nameIndexed(b.G.Name+"_carried_out", i), v)
	}
	for i, v := range scans {
		b.G.Output(nameIndexed(b.G.Name+"_scan", i), v)
	}
	b.nScan = len(scans)
	b.outs = append(b.outs, carried...)
	b.G.root.active = b.prevActive
}

func nameIndexed(prefix string, i int) string { return prefix + "_" + itoa(i) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

type loopAttr struct{ Iters Dim }

// Loop runs body trip times (trip: int64 scalar; cond may be nil) starting
// from init, and returns the final carried values followed by the scan
// outputs stacked along a new leading axis of size iters.
func Loop(trip *Value, init []*Value, body *LoopBody, iters Dim) []*Value {
	if body.outs == nil && len(body.Carried) > 0 {
		panic(errorf("Loop", "body %q was not finished", body.G.Name))
	}
	g := graphOf("Loop", append([]*Value{trip}, init...)...)
	if body.G.parent != g && !body.G.parent.encloses(g) {
		panic(errorf("Loop", "body %q was made for another graph", body.G.Name))
	}
	ins := append([]*Value{trip, nil}, init...)
	n := &Node{id: g.newID(), Op: "Loop", Inputs: ins, Attr: &loopAttr{iters}, Body: body.G, def: opTable["Loop"]}
	outs := n.def.Infer(n)
	for i, o := range outs {
		n.Outputs = append(n.Outputs, &Value{g: g, id: g.newID(), DType: o.DType, Shape: o.Shape, node: n, index: i})
	}
	g.nodes = append(g.nodes, n)
	return n.Outputs
}

func init() {
	register(&OpDef{Type: "Loop", Since: 13, Infer: inferLoop, NoGrad: true, Attrs: loopAttrs})
}

// inferLoop is the shape rule of Loop.
func inferLoop(n *Node) []TypeShape {
	body, iters := n.Body, n.Attr.(*loopAttr).Iters
	wantDType("Loop", tensors.Int64, n.Inputs[0])
	init := n.Inputs[2:]
	bo, _ := body.Outputs()
	if len(bo) < 1+len(init) {
		panic(errorf("Loop", "body %q has %d outputs for %d carried values", body.Name, len(bo), len(init)))
	}
	var out []TypeShape
	for i, v := range init {
		if bo[1+i].DType != v.DType {
			panic(errorf("Loop", "carried %d: init %v, body returns %v", i, v, bo[1+i]))
		}
		out = append(out, TypeShape{v.DType, v.Shape})
	}
	for _, s := range bo[1+len(init):] {
		out = append(out, TypeShape{s.DType, append(Shape{iters}, s.Shape...)})
	}
	return out
}

// loopAttrs is the ONNX emitter of Loop.
func loopAttrs(n *Node) []Attr { return []Attr{{Name: "body", Kind: AttrGraph, Graph: n.Body}} }
