package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// fuzzSeeds are ONNX models with typed inputs and outputs, an embedded
// initializer, an If with subgraphs and external-data references.
func fuzzSeeds(f *testing.F) [][]byte {
	big := &pb.TensorProto{Name: "w", Dims: []int64{8, 8}, DataType: int32(tensors.Float32), RawData: make([]byte, 256)}
	plain := modelBytes(f,
		[]*pb.NodeProto{node("MatMul", []string{"x", "w"}, []string{"y"}), node("ReduceSum", []string{"y"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("x", tensors.Float32, "batch", 8), vi("flag", tensors.Bool)},
		[]*pb.ValueInfoProto{vi("y", tensors.Float32, "batch", 8), vi("s", tensors.Float32), noShape("free", tensors.Float16)},
		big)
	branch := &pb.GraphProto{Name: "b", Node: []*pb.NodeProto{node("Add", []string{"x", "w"}, []string{"y1"})},
		Output: []*pb.ValueInfoProto{vi("y1", tensors.Float32, 4)}, Initializer: []*pb.TensorProto{extTensor("w", "w.data")}}
	nested := modelBytes(f,
		[]*pb.NodeProto{node("If", []string{"c"}, []string{"y"},
			&pb.AttributeProto{Name: "then_branch", Type: pb.AttributeProto_GRAPH, G: branch},
			&pb.AttributeProto{Name: "else_branch", Type: pb.AttributeProto_GRAPH, G: branch})},
		[]*pb.ValueInfoProto{vi("c", tensors.Bool)}, []*pb.ValueInfoProto{vi("y", tensors.Float32, 4)},
		extTensor("v", "../escape.data"), extTensor("u", "/etc/passwd"))
	return [][]byte{plain, nested, {}, {0x3a, 0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}}
}

// FuzzReadSignature: the signature reader (run on every model before a
// session is made) never panics on arbitrary bytes.
func FuzzReadSignature(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := readSignature(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, i := range append(sig.inputs, sig.outputs...) {
			_ = i.describe()
		}
	})
}

// FuzzExternalData: the external-data check never panics, and never
// accepts a location outside the model's folder.
func FuzzExternalData(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	root := f.TempDir()
	dir := filepath.Join(root, "model")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "w.data"), make([]byte, 16), 0o644)
	os.WriteFile(filepath.Join(root, "escape.data"), make([]byte, 16), 0o644)
	os.Symlink(filepath.Join(root, "escape.data"), filepath.Join(dir, "link.data"))
	model := filepath.Join(dir, "model.onnx")
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkExternalData(bytes.NewReader(b), model)
		if err != nil {
			return
		}
		// Accepted: every location in the model must name w.data (the only
		// regular file inside the folder); re-check with the real decoder.
		var m pb.ModelProto
		if decodeErr := proto.Unmarshal(b, &m); decodeErr != nil {
			return
		}
		for _, loc := range allLocations(&m) {
			if !filepath.IsLocal(loc) {
				t.Fatalf("accepted external data location %q", loc)
			}
			fi, err := os.Lstat(filepath.Join(dir, loc))
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("accepted external data location %q (%v)", loc, err)
			}
		}
	})
}

// allLocations lists the external-data locations of every tensor of m
// that ONNX Runtime would read (graph, subgraphs, functions).
func allLocations(m *pb.ModelProto) []string {
	var out []string
	var graph func(g *pb.GraphProto, depth int)
	tensor := func(t *pb.TensorProto) {
		for _, e := range t.GetExternalData() {
			if e.GetKey() == "location" {
				out = append(out, e.GetValue())
			}
		}
	}
	nodes := func(ns []*pb.NodeProto, depth int) {
		for _, n := range ns {
			for _, a := range n.GetAttribute() {
				if a.GetT() != nil {
					tensor(a.GetT())
				}
				for _, t := range a.GetTensors() {
					tensor(t)
				}
				if a.GetG() != nil {
					graph(a.GetG(), depth+1)
				}
				for _, g := range a.GetGraphs() {
					graph(g, depth+1)
				}
			}
		}
	}
	graph = func(g *pb.GraphProto, depth int) {
		if depth > maxNesting {
			return
		}
		for _, t := range g.GetInitializer() {
			tensor(t)
		}
		nodes(g.GetNode(), depth)
	}
	if m.GetGraph() != nil {
		graph(m.GetGraph(), 0)
	}
	return out
}
