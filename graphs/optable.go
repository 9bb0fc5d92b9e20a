package graphs

import (
	"sort"

	"mohawk/tensors"
)

// GradFunc is an op's vector-Jacobian product: given the node and the
// adjoints of its outputs (nil where an output has none), it returns one
// adjoint per input, building them with ordinary ops in the node's graph.
// need[i] says whether input i's adjoint is wanted; an entry may be nil
// where it is not.
type GradFunc func(n *Node, gout []*Value, need []bool) []*Value

// OpDef is the op table's row for one op: everything mohawk knows about it.
type OpDef struct {
	Type   string // ONNX op_type
	Domain string // "" for the default ONNX domain
	// Since is the opset version of its domain this form of the op needs.
	Since int
	// Infer is the shape rule: it checks the node's inputs and attributes
	// and returns the output types, panicking with *Error on misuse.
	Infer func(n *Node) []TypeShape
	// Grad is the VJP; nil exactly when NoGrad is set.
	Grad GradFunc
	// NoGrad marks ops whose outputs carry no gradient (integer, boolean,
	// shape and mask producers). Autodiff refuses to differentiate through
	// them into a float input.
	NoGrad bool
	// Attrs is the ONNX emitter: the node's attributes in ONNX form
	// (noAttrs for ops without any). Infer, Grad and Attrs are named
	// functions, so a stack trace or grep finds e.g. the VJP of Transpose
	// (transposeGrad); TestOpTableComplete holds every row to this.
	Attrs func(n *Node) []Attr
}

var opTable = map[string]*OpDef{}

func register(d *OpDef) {
	if _, dup := opTable[d.Type]; dup {
		panic("graphs: op " + d.Type + " registered twice")
	}
	opTable[d.Type] = d
}

// noAttrs is the ONNX emitter of ops without attributes; a row names it
// explicitly (register fills nothing in).
func noAttrs(*Node) []Attr { return nil }

// Ops lists the op table sorted by op type.
func Ops() []*OpDef {
	out := make([]*OpDef, 0, len(opTable))
	for _, d := range opTable {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Lookup returns the op-table row of an op type.
func Lookup(op string) (*OpDef, bool) { d, ok := opTable[op]; return d, ok }

// AttrKind says which field of an Attr is set.
type AttrKind uint8

// Attribute kinds, as in ONNX AttributeProto.
const (
	AttrInt AttrKind = iota + 1
	AttrFloat
	AttrString
	AttrInts
	AttrFloats
	AttrTensor
	AttrGraph
)

// Attr is one ONNX attribute, produced by an op's emitter for export.
type Attr struct {
	Name   string
	Kind   AttrKind
	Int    int64
	Float  float32
	String string
	Ints   []int64
	Floats []float32
	Tensor *tensors.Tensor
	Graph  *Graph
}

func intAttr(name string, v int64) Attr     { return Attr{Name: name, Kind: AttrInt, Int: v} }
func floatAttr(name string, v float32) Attr { return Attr{Name: name, Kind: AttrFloat, Float: v} }
func stringAttr(name string, v string) Attr { return Attr{Name: name, Kind: AttrString, String: v} }
func intsAttr(name string, v []int64) Attr  { return Attr{Name: name, Kind: AttrInts, Ints: v} }
func tensorAttr(name string, t *tensors.Tensor) Attr {
	return Attr{Name: name, Kind: AttrTensor, Tensor: t}
}
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// graphOf picks the innermost graph among the inputs' graphs; all must lie
// on one chain of enclosing graphs.
func graphOf(op string, vals ...*Value) *Graph {
	var g *Graph
	for _, v := range vals {
		if v == nil {
			continue
		}
		switch {
		case g == nil || v.g.encloses(g):
			g = v.g
		case g.encloses(v.g):
		default:
			panic(errorf(op, "inputs come from unrelated graphs %q and %q", g.Name, v.g.Name))
		}
	}
	if g == nil {
		panic(errorf(op, "no inputs"))
	}
	// While a loop body is being built, new nodes go into it even when all
	// their inputs come from enclosing graphs, so the body computes (and
	// autodiff sees) everything derived inside one iteration.
	if a := g.root.active; a != nil && a.encloses(g) {
		return a
	}
	return g
}

func op1(op string, attr any, ins ...*Value) *Value {
	return graphOf(op, ins...).add(op, attr, ins...)[0]
}

func wantFloat(op string, vs ...*Value) {
	for _, v := range vs {
		if !v.DType.IsFloat() {
			panic(errorf(op, "input %v must be a float tensor", v))
		}
	}
}

func wantDType(op string, dt tensors.DType, vs ...*Value) {
	for _, v := range vs {
		if v.DType != dt {
			panic(errorf(op, "input %v must be %v", v, dt))
		}
	}
}

func sameDType(op string, vs ...*Value) {
	for _, v := range vs[1:] {
		if v.DType != vs[0].DType {
			panic(errorf(op, "inputs %v and %v have different dtypes", vs[0], v))
		}
	}
}
