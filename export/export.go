package export

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"mohawk/atomicfile"
	"mohawk/export/onnxpb"
	"mohawk/graphs"
	"mohawk/tensors"
)

const (
	// IRVersion is the ONNX IR version mohawk writes.
	IRVersion = 10
	// MinOpset is the lowest default-domain opset mohawk writes. By default a
	// model imports the lowest opset its ops need (RequiredOpset), because an
	// ONNX Runtime build's CUDA kernels match exact op versions and newer
	// versions of shape ops (Reshape-21, Transpose-21, ...) were registered
	// for CUDA late: a lower opset keeps every node on the GPU.
	MinOpset = 13
	// MaxOpset is the highest opset ONNX Runtime 1.29 loads.
	MaxOpset = 26
	// Producer is written into ModelProto.producer_name.
	Producer = "mohawk"
	// maxProto is protobuf's hard limit on one message.
	maxProto = 1<<31 - 1
)

// Options control how a model is written.
type Options struct {
	// Opset is the default-domain opset (0: RequiredOpset of the graph).
	Opset int
	// Metadata is written into metadata_props.
	Metadata map[string]string
	// DocString describes the model.
	DocString string
}

// ErrTooLarge is returned when embedded initializers would exceed
// protobuf's 2 GB message limit; save with external data instead.
var ErrTooLarge = errors.New("model exceeds the 2 GB protobuf limit; write it with external data (export.Save)")

// Marshal encodes g with all initializers embedded (for in-memory sessions).
func Marshal(g *graphs.Graph, opts Options) ([]byte, error) {
	m, err := Model(g, opts, nil)
	if err != nil {
		return nil, err
	}
	if size := proto.Size(m); size > maxProto {
		return nil, fmt.Errorf("graph %q: %d bytes: %w", g.Name, size, ErrTooLarge)
	}
	return proto.Marshal(m)
}

// externalSink receives initializer bytes that go to the external data file
// and returns their offset.
type externalSink interface {
	add(data []byte) (offset int64, err error)
	location() string
}

// Model builds the ModelProto of g. When ext is non-nil, initializers of at
// least externalThreshold bytes are written there instead of embedded.
func Model(g *graphs.Graph, opts Options, ext externalSink) (m *onnxpb.ModelProto, err error) {
	opset := opts.Opset
	if opset == 0 {
		opset = RequiredOpset(g)
	}
	if opset > MaxOpset {
		return nil, fmt.Errorf("opset %d: ONNX Runtime 1.29 loads at most opset %d", opset, MaxOpset)
	}
	if need := RequiredOpset(g); opset < need {
		return nil, fmt.Errorf("graph %q uses ops that need opset %d; opset %d was asked for", g.Name, need, opset)
	}
	w := &writer{ext: ext, names: map[string]int{}, outName: map[*graphs.Value]string{}, live: g.Live()}
	gp, err := w.graph(g)
	if err != nil {
		return nil, err
	}
	m = &onnxpb.ModelProto{
		IrVersion:    IRVersion,
		ProducerName: Producer,
		Graph:        gp,
		DocString:    opts.DocString,
		OpsetImport:  opsetImports(g, opset),
	}
	for _, k := range sortedKeys(opts.Metadata) {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: k, Value: opts.Metadata[k]})
	}
	return m, nil
}

// RequiredOpset is the lowest opset providing every default-domain op g
// (and its loop bodies and branches) uses, and at least MinOpset.
func RequiredOpset(g *graphs.Graph) int {
	need := MinOpset
	for _, n := range g.AllNodes() {
		if n.Def().Domain == "" {
			need = max(need, n.Def().Since)
		}
	}
	return need
}

// opsetImports lists the default domain at opset and every other domain g
// uses (ONNX Runtime's com.microsoft contrib ops are at version 1).
func opsetImports(g *graphs.Graph, opset int) []*onnxpb.OperatorSetIdProto {
	out := []*onnxpb.OperatorSetIdProto{{Domain: "", Version: int64(opset)}}
	seen := map[string]bool{"": true}
	for _, n := range g.AllNodes() {
		if d := n.Def(); !seen[d.Domain] {
			seen[d.Domain] = true
			out = append(out, &onnxpb.OperatorSetIdProto{Domain: d.Domain, Version: int64(d.Since)})
		}
	}
	return out
}

type writer struct {
	ext   externalSink
	names map[string]int // value name → id, to catch duplicates
	// outName gives a node output that is also a graph output the output's
	// name, so the node writes the output itself (no Identity copy).
	outName map[*graphs.Value]string
	live    map[*graphs.Node]bool // the nodes written (graphs.Graph.Live)
}

// name is v's name in the written model.
func (w *writer) name(v *graphs.Value) string {
	if n, ok := w.outName[v]; ok {
		return n
	}
	return v.Name()
}

func (w *writer) claim(v *graphs.Value) error {
	name := w.name(v)
	if id, ok := w.names[name]; ok && id != v.ID() {
		return fmt.Errorf("two values are named %q; names must be unique", name)
	}
	w.names[name] = v.ID()
	return nil
}

func (w *writer) graph(g *graphs.Graph) (*onnxpb.GraphProto, error) {
	gp := &onnxpb.GraphProto{Name: g.Name}
	// A graph output that an unnamed node of this graph computes takes the
	// output's name; the others (inputs, initializers, values of enclosing
	// graphs, named values, a value output twice) go through an Identity.
	outs, names := g.Outputs()
	for i, v := range outs {
		if _, taken := w.outName[v]; !taken && v.Graph() == g && v.Node() != nil && !v.Named() {
			w.outName[v] = names[i]
		}
	}
	for _, v := range g.Inputs() {
		if err := w.claim(v); err != nil {
			return nil, fmt.Errorf("graph %q: input: %w", g.Name, err)
		}
		gp.Input = append(gp.Input, valueInfo(v.Name(), v))
	}
	for _, v := range g.Initializers() {
		if err := w.claim(v); err != nil {
			return nil, fmt.Errorf("graph %q: initializer: %w", g.Name, err)
		}
		tp, err := w.tensor(v.Name(), v.Data())
		if err != nil {
			return nil, fmt.Errorf("graph %q: initializer %q: %w", g.Name, v.Name(), err)
		}
		gp.Initializer = append(gp.Initializer, tp)
	}
	for _, n := range g.Nodes() {
		if !w.live[n] {
			continue // nothing reads it (graphs.Graph.Live)
		}
		np, err := w.node(n)
		if err != nil {
			return nil, fmt.Errorf("graph %q: node %s (%s): %w", g.Name, nodeName(n), n.Op, err)
		}
		gp.Node = append(gp.Node, np)
	}
	for i, v := range outs {
		name := names[i]
		if w.name(v) != name {
			gp.Node = append(gp.Node, &onnxpb.NodeProto{OpType: "Identity", Name: "output_" + name,
				Input: []string{w.name(v)}, Output: []string{name}})
		}
		gp.Output = append(gp.Output, valueInfo(name, v))
	}
	return gp, nil
}

func nodeName(n *graphs.Node) string {
	if n.Name != "" {
		return n.Name
	}
	return "n" + strconv.Itoa(n.ID())
}

func (w *writer) node(n *graphs.Node) (*onnxpb.NodeProto, error) {
	d := n.Def()
	np := &onnxpb.NodeProto{OpType: d.Type, Domain: d.Domain, Name: nodeName(n)}
	for _, in := range n.Inputs {
		if in == nil {
			np.Input = append(np.Input, "")
		} else {
			np.Input = append(np.Input, w.name(in))
		}
	}
	for _, o := range n.Outputs {
		if err := w.claim(o); err != nil {
			return nil, err
		}
		np.Output = append(np.Output, w.name(o))
	}
	for _, a := range d.Attrs(n) {
		ap, err := w.attr(a)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		np.Attribute = append(np.Attribute, ap)
	}
	return np, nil
}

func (w *writer) attr(a graphs.Attr) (*onnxpb.AttributeProto, error) {
	ap := &onnxpb.AttributeProto{Name: a.Name}
	switch a.Kind {
	case graphs.AttrInt:
		ap.Type, ap.I = onnxpb.AttributeProto_INT, a.Int
	case graphs.AttrFloat:
		ap.Type, ap.F = onnxpb.AttributeProto_FLOAT, a.Float
	case graphs.AttrString:
		ap.Type, ap.S = onnxpb.AttributeProto_STRING, []byte(a.String)
	case graphs.AttrInts:
		ap.Type, ap.Ints = onnxpb.AttributeProto_INTS, a.Ints
	case graphs.AttrFloats:
		ap.Type, ap.Floats = onnxpb.AttributeProto_FLOATS, a.Floats
	case graphs.AttrTensor:
		t, err := embedded("", a.Tensor)
		if err != nil {
			return nil, err
		}
		ap.Type, ap.T = onnxpb.AttributeProto_TENSOR, t
	case graphs.AttrGraph:
		g, err := w.graph(a.Graph)
		if err != nil {
			return nil, err
		}
		ap.Type, ap.G = onnxpb.AttributeProto_GRAPH, g
	default:
		return nil, fmt.Errorf("unknown attribute kind %d", a.Kind)
	}
	return ap, nil
}

// externalThreshold is the size from which initializers go to the external
// data file when one is used.
const externalThreshold = 1024

func (w *writer) tensor(name string, t *tensors.Tensor) (*onnxpb.TensorProto, error) {
	if w.ext == nil || len(t.Data) < externalThreshold {
		return embedded(name, t)
	}
	off, err := w.ext.add(t.Data)
	if err != nil {
		return nil, err
	}
	return &onnxpb.TensorProto{
		Name: name, Dims: t.Shape, DataType: int32(t.DType),
		DataLocation: onnxpb.TensorProto_EXTERNAL,
		ExternalData: []*onnxpb.StringStringEntryProto{
			{Key: "location", Value: w.ext.location()},
			{Key: "offset", Value: strconv.FormatInt(off, 10)},
			{Key: "length", Value: strconv.Itoa(len(t.Data))},
		},
	}, nil
}

func embedded(name string, t *tensors.Tensor) (*onnxpb.TensorProto, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &onnxpb.TensorProto{Name: name, Dims: t.Shape, DataType: int32(t.DType), RawData: t.Data}, nil
}

func valueInfo(name string, v *graphs.Value) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range v.Shape {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d.Static() {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.K}
		} else if s, ok := d.Single(); ok {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: s}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(v.DType), Shape: shape}}}}
}

// DataFile is the external data file name next to model.onnx.
const DataFile = "model.onnx.data"

// ModelFile is the model file name Save writes.
const ModelFile = "model.onnx"

// SaveOptions add file-writing choices to Options.
type SaveOptions struct {
	Options
	// External forces external data; it is used anyway when the embedded
	// model would pass protobuf's 2 GB limit.
	External bool
	// Portable refuses graphs with nodes outside the default ONNX domain
	// (ONNX Runtime's com.microsoft ops, mohawk's fused kernels), so that
	// the file loads in any ONNX runtime: deployment exports set it.
	Portable bool
}

// Save writes dir/model.onnx, and dir/model.onnx.data when initializers go
// to external data. Both files are written atomically, data first.
func Save(g *graphs.Graph, dir string, opts SaveOptions) error {
	if opts.Portable {
		for _, n := range g.AllNodes() {
			if d := n.Def().Domain; d != "" {
				return fmt.Errorf("export %q: node %s is %s.%s, which only some runtimes have; a portable export takes default-domain ONNX ops only", g.Name, n.Name, d, n.Op)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export %q: %w", g.Name, err)
	}
	path := filepath.Join(dir, ModelFile)
	if !opts.External {
		data, err := Marshal(g, opts.Options)
		if err == nil {
			if err := atomicfile.WriteBytes(path, data); err != nil {
				return err
			}
			// A stale data file from an earlier external save would mislead.
			os.Remove(filepath.Join(dir, DataFile))
			return nil
		}
		if !errors.Is(err, ErrTooLarge) {
			return err
		}
	}
	var m *onnxpb.ModelProto
	dataPath := filepath.Join(dir, DataFile)
	err := atomicfile.Write(dataPath, func(f io.Writer) error {
		var err error
		m, err = Model(g, opts.Options, &fileSink{w: f})
		return err
	})
	if err != nil {
		return fmt.Errorf("export %q: %w", g.Name, err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("export %q: %w", g.Name, err)
	}
	return atomicfile.WriteBytes(path, data)
}

// fileSink appends tensors to the external data file, 4 KiB-aligned so the
// file can be memory-mapped.
type fileSink struct {
	w   io.Writer
	off int64
}

const extAlign = 4096

func (s *fileSink) add(data []byte) (int64, error) {
	if pad := (extAlign - s.off%extAlign) % extAlign; pad > 0 {
		if _, err := s.w.Write(make([]byte, pad)); err != nil {
			return 0, err
		}
		s.off += pad
	}
	off := s.off
	n, err := s.w.Write(data)
	s.off += int64(n)
	return off, err
}

func (s *fileSink) location() string { return DataFile }
