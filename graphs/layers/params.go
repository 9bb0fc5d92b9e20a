package layers

import (
	"sort"

	"mohawk/graphs"
	"mohawk/tensors"
)

// Params supplies a model's parameters by name. A model builder calls Get
// once per parameter with the shape it expects; the source decides whether
// the parameter is a frozen initializer, a trainable graph input, or a value
// computed earlier (e.g. inside a loop body).
type Params interface {
	Get(name string, shape graphs.Shape) *graphs.Value
}

// ParamFunc adapts a function to Params.
type ParamFunc func(name string, shape graphs.Shape) *graphs.Value

// Get calls f.
func (f ParamFunc) Get(name string, shape graphs.Shape) *graphs.Value { return f(name, shape) }

// Frozen serves parameters from host tensors as initializers of G, converted
// to DType (e.g. float16 checkpoints computed in float32). Each parameter
// becomes one initializer, however often it is asked for.
type Frozen struct {
	G       *graphs.Graph
	Tensors map[string]*tensors.Tensor
	DType   tensors.DType
	// Prefix is prepended to initializer names, so two models with the same
	// parameter names (teacher and student lm_head) can share a graph.
	Prefix string
	made   map[string]*graphs.Value
}

// Get returns the initializer for name, checking its shape.
func (f *Frozen) Get(name string, shape graphs.Shape) *graphs.Value {
	if v, ok := f.made[name]; ok {
		return v
	}
	t, ok := f.Tensors[name]
	if !ok {
		panic(&graphs.Error{Op: "Params", Msg: "missing weight " + name})
	}
	if !graphs.StaticShape(t.Shape).Equal(shape) {
		panic(&graphs.Error{Op: "Params", Msg: "weight " + name + " has shape " + graphs.StaticShape(t.Shape).String() + ", the model needs " + shape.String()})
	}
	if f.DType != tensors.Invalid && t.DType != f.DType {
		t = t.Convert(f.DType)
	}
	v := f.G.Initializer(f.Prefix+name, t)
	if f.made == nil {
		f.made = map[string]*graphs.Value{}
	}
	f.made[name] = v
	return v
}

// Inputs serves parameters as graph inputs of G (trainable parameters fed
// on every run), recording them in creation order.
type Inputs struct {
	G     *graphs.Graph
	DType tensors.DType
	made  map[string]*graphs.Value
	order []string
}

// Get returns (creating once) the graph input named name.
func (p *Inputs) Get(name string, shape graphs.Shape) *graphs.Value {
	if v, ok := p.made[name]; ok {
		if !v.Shape.Equal(shape) {
			panic(&graphs.Error{Op: "Params", Msg: "parameter " + name + " requested with shapes " + v.Shape.String() + " and " + shape.String()})
		}
		return v
	}
	v := p.G.Input(name, p.DType, shape)
	if p.made == nil {
		p.made = map[string]*graphs.Value{}
	}
	p.made[name] = v
	p.order = append(p.order, name)
	return v
}

// Names lists the parameters created so far, in creation order.
func (p *Inputs) Names() []string { return p.order }

// Value returns a created parameter.
func (p *Inputs) Value(name string) *graphs.Value { return p.made[name] }

// Recorder wraps a Params and records every name and shape requested; used
// to list a model's parameters without building twice.
type Recorder struct {
	Params
	Shapes map[string]graphs.Shape
}

// Get records and forwards.
func (r *Recorder) Get(name string, shape graphs.Shape) *graphs.Value {
	if r.Shapes == nil {
		r.Shapes = map[string]graphs.Shape{}
	}
	r.Shapes[name] = shape
	return r.Params.Get(name, shape)
}

// Names lists the recorded names sorted.
func (r *Recorder) Names() []string {
	out := make([]string, 0, len(r.Shapes))
	for k := range r.Shapes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Split routes each name to one of two sources.
type Split struct {
	UseA func(name string) bool
	A, B Params
}

// Get forwards to A or B.
func (s Split) Get(name string, shape graphs.Shape) *graphs.Value {
	if s.UseA(name) {
		return s.A.Get(name, shape)
	}
	return s.B.Get(name, shape)
}
