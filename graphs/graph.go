package graphs

import (
	"fmt"
	"math"
	"slices"

	"mohawk/tensors"
)

// Graph is a typed dataflow graph in creation order. Because a node can only
// consume values that already exist, creation order is a topological order;
// autodiff walks it backwards and export writes it as is (less the nodes
// no output depends on: Live).
//
// A graph may be the body of a control-flow node (Loop); such a subgraph can
// read values of its enclosing graphs directly (ONNX outer-scope capture).
type Graph struct {
	Name    string
	parent  *Graph
	root    *Graph
	nodes   []*Node
	inputs  []*Value
	inits   []*Value
	outputs []*Value
	outName []string
	nextID  int    // used on the root only: ids are unique across subgraphs
	active  *Graph // on the root: the loop body under construction, if any
	consts  map[string]*Value
	casts   map[castKey]*Value // Cast nodes of this graph, shared (see Cast)
	matmul  MatMulPrecision    // on the root: how MatMul and Gemm compute
	fused   bool               // on the root: forward ops may use FusedDomain kernels
	matrix  bool               // on the root: Stage 1 may use its fused [T, T] kernels
	block   BlockKernel        // on the root: the blocks' fused plumbing kernels they may use
	cpu     bool               // on the root: the graph targets ONNX Runtime's CPU provider
	// gradFrom is 1 + the index of the first node Gradients built in this
	// graph (0: none yet).
	gradFrom int
	// On the root: recompute makes Recomputed mark segments; seg is the
	// segment under construction (0: none) and segGraph its graph.
	recompute bool
	seg, segs int
	segGraph  *Graph
}

// New returns an empty graph.
func New(name string) *Graph {
	g := &Graph{Name: name, consts: map[string]*Value{}}
	g.root = g
	return g
}

// Subgraph returns an empty graph nested in g (a Loop body).
func (g *Graph) Subgraph(name string) *Graph {
	return &Graph{Name: name, parent: g, root: g.root, consts: map[string]*Value{}}
}

// Root is the outermost enclosing graph (g itself for a root graph).
func (g *Graph) Root() *Graph { return g.root }

// Parent is the enclosing graph of a subgraph, nil for a root graph.
func (g *Graph) Parent() *Graph { return g.parent }

func (g *Graph) newID() int { g.root.nextID++; return g.root.nextID }

// encloses reports whether values of h are visible in g (h is g or an ancestor).
func (g *Graph) encloses(h *Graph) bool {
	for x := g; x != nil; x = x.parent {
		if x == h {
			return true
		}
	}
	return false
}

type valueKind uint8

const (
	kindNode valueKind = iota
	kindInput
	kindInit
)

// Value is one tensor of a graph: a graph input, an initializer (a tensor
// stored with the graph: weights, constants) or the output of a node.
type Value struct {
	g     *Graph
	id    int
	name  string
	DType tensors.DType
	Shape Shape
	kind  valueKind
	node  *Node
	index int
	data  *tensors.Tensor
}

// Graph is the graph v belongs to.
func (v *Value) Graph() *Graph { return v.g }

// ID is unique within the root graph and increases with creation order.
func (v *Value) ID() int { return v.id }

// Name is the value's ONNX name.
func (v *Value) Name() string {
	if v.name != "" {
		return v.name
	}
	return fmt.Sprintf("t%d", v.id)
}

// Named reports whether v has a name of its own (SetName, or an input's).
func (v *Value) Named() bool { return v.name != "" }

// SetName renames a node output (for readable exported graphs). Names must
// be unique in the root graph; export checks it.
func (v *Value) SetName(name string) *Value { v.name = name; return v }

// Rank of the value.
func (v *Value) Rank() int { return len(v.Shape) }

// Node is the producing node, nil for inputs and initializers.
func (v *Value) Node() *Node { return v.node }

// IsInput reports whether v is a graph input.
func (v *Value) IsInput() bool { return v.kind == kindInput }

// IsInitializer reports whether v is stored with the graph.
func (v *Value) IsInitializer() bool { return v.kind == kindInit }

// Data is an initializer's tensor (nil otherwise).
func (v *Value) Data() *tensors.Tensor { return v.data }

func (v *Value) String() string {
	return fmt.Sprintf("%s:%v%v", v.Name(), v.DType, v.Shape)
}

// Node is one op application.
type Node struct {
	id      int
	Op      string
	Inputs  []*Value // a nil entry is an omitted optional input
	Outputs []*Value
	Attr    any    // the op's typed attributes (a pointer to a struct), or nil
	Body    *Graph // Loop body
	Name    string
	def     *OpDef
	seg     int // recomputation segment (Recomputed), 0 for none
}

// ID increases with creation order.
func (n *Node) ID() int { return n.id }

// Def is the op-table entry of the node's op.
func (n *Node) Def() *OpDef { return n.def }

// Input declares a graph input.
func (g *Graph) Input(name string, dt tensors.DType, shape Shape) *Value {
	if name == "" {
		panic(errorf("Input", "empty input name"))
	}
	v := &Value{g: g, id: g.newID(), name: name, DType: dt, Shape: shape.Clone(), kind: kindInput}
	g.inputs = append(g.inputs, v)
	return v
}

// Initializer stores t with the graph under name (weights, frozen teacher
// parameters). The graph keeps a reference to t; it is not copied.
func (g *Graph) Initializer(name string, t *tensors.Tensor) *Value {
	if err := t.Check(); err != nil {
		panic(errorf("Initializer", "%s: %v", name, err))
	}
	v := &Value{g: g, id: g.newID(), name: name, DType: t.DType, Shape: StaticShape(t.Shape), kind: kindInit, data: t}
	g.inits = append(g.inits, v)
	return v
}

// Const stores a constant tensor in the root graph (visible everywhere);
// identical small constants are shared.
func (g *Graph) Const(t *tensors.Tensor) *Value {
	g = g.root
	key := fmt.Sprintf("%d%v%x", t.DType, t.Shape, t.Data)
	if len(t.Data) > 256 {
		key = "" // large constants are not deduplicated
	}
	if v, ok := g.consts[key]; ok && key != "" {
		return v
	}
	v := g.Initializer("", t)
	if key != "" {
		g.consts[key] = v
	}
	return v
}

// Scalar is a rank-0 constant of dtype dt.
func (g *Graph) Scalar(dt tensors.DType, x float64) *Value {
	return g.Const(scalarTensor(dt, x))
}

// ScalarLike is a rank-0 constant with v's dtype.
func ScalarLike(v *Value, x float64) *Value { return v.g.Scalar(v.DType, x) }

// Int64s is a rank-1 int64 constant.
func (g *Graph) Int64s(xs ...int64) *Value {
	return g.Const(tensors.FromInt64([]int64{int64(len(xs))}, xs))
}

// Int64 is a rank-0 int64 constant.
func (g *Graph) Int64(x int64) *Value { return g.Const(tensors.FromInt64(nil, []int64{x})) }

func scalarTensor(dt tensors.DType, x float64) *tensors.Tensor {
	switch dt {
	case tensors.Float32:
		return tensors.Scalar32(float32(x))
	case tensors.Float64:
		return tensors.FromFloat64(nil, []float64{x})
	case tensors.Int64:
		return tensors.FromInt64(nil, []int64{int64(x)})
	case tensors.Int32:
		return tensors.FromInt32(nil, []int32{int32(x)})
	case tensors.Bool:
		return tensors.FromBool(nil, []bool{x != 0})
	case tensors.Float16, tensors.BFloat16:
		return tensors.Scalar32(float32(x)).Convert(dt)
	}
	panic(errorf("Scalar", "no scalar constant of dtype %v", dt))
}

// Lowest is the most negative finite value of a float dtype (used for masks).
func Lowest(dt tensors.DType) float64 {
	switch dt {
	case tensors.Float64:
		return -math.MaxFloat64
	case tensors.Float16:
		return -65504
	case tensors.BFloat16:
		return -3.38e38
	}
	return -math.MaxFloat32
}

// Output marks v as a graph output named name.
func (g *Graph) Output(name string, v *Value) {
	if !g.encloses(v.g) {
		panic(errorf("Output", "value %v is not visible in graph %q", v, g.Name))
	}
	for _, n := range g.outName {
		if n == name {
			panic(errorf("Output", "duplicate output name %q", name))
		}
	}
	g.outputs = append(g.outputs, v)
	g.outName = append(g.outName, name)
}

// BackwardStart is the index in Nodes of the first node Gradients built
// in g, or len(Nodes()) if it built none: the nodes before it are the
// forward computation.
func (g *Graph) BackwardStart() int {
	if g.gradFrom == 0 {
		return len(g.nodes)
	}
	return g.gradFrom - 1
}

// Nodes in creation (topological) order.
func (g *Graph) Nodes() []*Node { return g.nodes }

// AllNodes is g's nodes, each followed by the nodes of the subgraphs it
// holds as graph attributes (Loop bodies, If branches), recursively: each
// subgraph once, as one iteration.
func (g *Graph) AllNodes() []*Node {
	var out []*Node
	for _, n := range g.nodes {
		out = append(out, n)
		for _, a := range n.def.Attrs(n) {
			if a.Kind == AttrGraph {
				out = append(out, a.Graph.AllNodes()...)
			}
		}
	}
	return out
}

// Live reports, for the nodes of g's root graph and of the subgraphs they
// hold, which ones a root output depends on: through their outputs, and
// through a live If or Loop node's bodies (whose outputs it reads, and
// whose nodes read values of enclosing graphs). ONNX Runtime runs every
// node of a model whether or not anything reads its outputs, and a
// training step's forward pass builds values (each layer's widened mixer
// output, say) that only some stages read; export writes the live nodes
// only.
func (g *Graph) Live() map[*Node]bool {
	used := map[*Value]bool{}
	outs, _ := g.root.Outputs()
	for _, v := range outs {
		used[v] = true
	}
	live := map[*Node]bool{}
	g.root.markLive(used, live)
	return live
}

// markLive walks g's nodes backwards (creation order is topological, and
// a body's values of enclosing graphs precede the node holding it),
// marking the nodes whose outputs are used and using their inputs.
func (g *Graph) markLive(used map[*Value]bool, live map[*Node]bool) {
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		if !slices.ContainsFunc(n.Outputs, func(v *Value) bool { return used[v] }) {
			continue
		}
		live[n] = true
		for _, in := range n.Inputs {
			if in != nil {
				used[in] = true
			}
		}
		for _, a := range n.def.Attrs(n) {
			if a.Kind == AttrGraph {
				outs, _ := a.Graph.Outputs()
				for _, v := range outs {
					used[v] = true
				}
				a.Graph.markLive(used, live)
			}
		}
	}
}

// LiveNodes is AllNodes less the nodes no root output depends on (Live):
// the nodes an exported model holds.
func (g *Graph) LiveNodes() []*Node {
	live := g.Live()
	return slices.DeleteFunc(g.AllNodes(), func(n *Node) bool { return !live[n] })
}

// Inputs in declaration order.
func (g *Graph) Inputs() []*Value { return g.inputs }

// Initializers in creation order.
func (g *Graph) Initializers() []*Value { return g.inits }

// Outputs and their names, in declaration order.
func (g *Graph) Outputs() ([]*Value, []string) { return g.outputs, g.outName }

// InputNamed finds a graph input by name.
func (g *Graph) InputNamed(name string) *Value {
	for _, v := range g.inputs {
		if v.name == name {
			return v
		}
	}
	return nil
}

// add appends a node for op with the given inputs and typed attributes, runs
// the op's shape rule and returns its outputs.
func (g *Graph) add(op string, attr any, inputs ...*Value) []*Value {
	def, ok := opTable[op]
	if !ok {
		panic(errorf(op, "op is not in the op table"))
	}
	for i, in := range inputs {
		if in == nil {
			continue
		}
		if !g.encloses(in.g) {
			panic(errorf(op, "input %d (%v) belongs to graph %q, not visible from %q", i, in, in.g.Name, g.Name))
		}
	}
	n := &Node{id: g.newID(), Op: op, Inputs: inputs, Attr: attr, def: def}
	if r := g.root; r.seg != 0 && r.segGraph == g {
		n.seg = r.seg
	}
	outs := def.Infer(n)
	n.Outputs = make([]*Value, len(outs))
	for i, o := range outs {
		n.Outputs[i] = &Value{g: g, id: g.newID(), DType: o.DType, Shape: o.Shape, kind: kindNode, node: n, index: i}
	}
	g.nodes = append(g.nodes, n)
	return n.Outputs
}

// TypeShape is a dtype and shape: what a shape rule returns per output.
type TypeShape struct {
	DType tensors.DType
	Shape Shape
}

func ts(dt tensors.DType, s Shape) []TypeShape { return []TypeShape{{dt, s}} }
