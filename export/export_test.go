package export_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"mohawk/export"
	"mohawk/export/onnxpb"
	"mohawk/graphs"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/tensors"
)

func weightGraph() *graphs.Graph {
	g := graphs.New("ext")
	x := g.Input("x", tensors.Float32, graphs.S("batch", 64))
	v := make([]float32, 64*64)
	for i := range v {
		v[i] = float32(i%7) - 3
	}
	w := g.Initializer("w", tensors.FromFloat32([]int64{64, 64}, v))
	b := g.Initializer("b", tensors.FromFloat32([]int64{64}, v[:64]))
	g.Output("y", graphs.Add(graphs.MatMul(x, w), b))
	return g
}

// TestSaveExternalData writes large initializers to model.onnx.data at
// 4 KiB-aligned offsets inside the folder, and the file-backed model computes
// what the in-memory one does.
func TestSaveExternalData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	g := weightGraph()
	if err := export.Save(g, dir, export.SaveOptions{External: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, export.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	external := 0
	for _, init := range m.Graph.Initializer {
		if init.DataLocation != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		external++
		kv := map[string]string{}
		for _, e := range init.ExternalData {
			kv[e.Key] = e.Value
		}
		off, _ := strconv.Atoi(kv["offset"])
		if kv["location"] != export.DataFile || off%4096 != 0 || strings.Contains(kv["location"], "/") {
			t.Errorf("initializer %s: external data %v", init.Name, kv)
		}
	}
	if external != 1 { // w (16 KiB) goes out, b (256 B) stays embedded
		t.Errorf("%d external initializers, want 1", external)
	}
	rt, err := runtime.Open(runtime.Defaults(), nil)
	if err != nil {
		strict.Unavailable(t, "needs ONNX Runtime: %v", err)
	}
	defer rt.Close()
	x := tensors.Zeros(tensors.Float32, 2, 64)
	for i, v := range x.Float32s() {
		x.Float32s()[i] = v + float32(i%5)
	}
	fromFile, err := rt.NewSessionFromFile("file", filepath.Join(dir, export.ModelFile), []string{"x"}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	bytes, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inMem, err := rt.NewSession("mem", bytes, []string{"x"}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	defer inMem.Close()
	a, err := fromFile.Run([]*tensors.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inMem.Run([]*tensors.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a[0].Float32s() {
		if v != b[0].Float32s()[i] {
			t.Fatalf("output %d: %v from the file, %v in memory", i, v, b[0].Float32s()[i])
		}
	}
}

func TestExportErrors(t *testing.T) {
	t.Parallel()
	g := graphs.New("dup")
	x := g.Input("x", tensors.Float32, graphs.S(2))
	g.Output("z", graphs.Neg(x).SetName("same"))
	g.Output("y", graphs.Exp(x).SetName("same"))
	if _, err := export.Marshal(g, export.Options{}); err == nil || !strings.Contains(err.Error(), `"same"`) {
		t.Errorf("duplicate names: %v", err)
	}
	if _, err := export.Marshal(weightGraph(), export.Options{Opset: 99}); err == nil || !strings.Contains(err.Error(), "at most opset 26") {
		t.Errorf("opset 99: %v", err)
	}
	if _, err := export.Marshal(weightGraph(), export.Options{Opset: 12}); err == nil || !strings.Contains(err.Error(), "need opset 14") {
		t.Errorf("opset 12: %v", err)
	}
}

// TestPortable checks that a portable save refuses a graph with a node
// outside the default ONNX domain, naming it, and writes one without.
func TestPortable(t *testing.T) {
	t.Parallel()
	g := graphs.New("fused")
	x := g.Input("x", tensors.Float32, graphs.S(2, 3, 4))
	w := g.Input("w", tensors.Float32, graphs.S(4, 1, 2))
	b := g.Input("b", tensors.Float32, graphs.S(4))
	g.Output("y", graphs.CausalConv(x, w, b))
	dir := t.TempDir()
	err := export.Save(g, dir, export.SaveOptions{Portable: true})
	if err == nil || !strings.Contains(err.Error(), "mohawk.fused.CausalConv") {
		t.Errorf("portable save of a fused graph: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, export.ModelFile)); !os.IsNotExist(statErr) {
		t.Errorf("a refused portable save left %s (%v)", export.ModelFile, statErr)
	}
	if err := export.Save(g, dir, export.SaveOptions{}); err != nil {
		t.Errorf("plain save of a fused graph: %v", err)
	}
	if err := export.Save(weightGraph(), t.TempDir(), export.SaveOptions{Portable: true}); err != nil {
		t.Errorf("portable save of a stock graph: %v", err)
	}
}

// TestOutputsWithoutCopies checks when export inserts an Identity for a
// graph output: never for a value the graph's own unnamed node computes
// (the node writes the output), but for a passed-through input, for a value
// output a second time, and for a loop body's pass-through; and that such a
// model computes what it should.
func TestOutputsWithoutCopies(t *testing.T) {
	g := graphs.New("outs")
	x := g.Input("x", tensors.Float32, graphs.S(2))
	y := graphs.Add(x, x)
	g.Output("y", y)
	g.Output("y_again", y)
	g.Output("x_through", x)
	body := graphs.NewLoopBody(g, "body", []*graphs.Value{x, y})
	body.Finish(nil, []*graphs.Value{body.Carried[0], graphs.Mul(body.Carried[1], body.Carried[0])}, nil)
	outs := graphs.Loop(g.Int64(3), []*graphs.Value{x, y}, body, graphs.D(3))
	g.Output("loop_x", outs[0])
	g.Output("loop_y", outs[1])
	m, err := export.Model(g, export.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	identities := func(gp *onnxpb.GraphProto) []string {
		var outs []string
		for _, n := range gp.Node {
			if n.OpType == "Identity" {
				outs = append(outs, n.Output[0])
			}
		}
		return outs
	}
	if got := strings.Join(identities(m.Graph), ","); got != "y_again,x_through" {
		t.Errorf("top-level Identity outputs %q, want y_again,x_through", got)
	}
	for _, n := range m.Graph.Node {
		if n.OpType == "Loop" {
			// The condition and carried value 0 pass through; value 1 is computed.
			if got := len(identities(n.Attribute[0].G)); got != 2 {
				t.Errorf("loop body has %d Identity nodes, want 2 (cond and the passed-through value)", got)
			}
		}
	}
	env, err := runtime.Open(runtime.Defaults(), nil)
	if err != nil {
		strict.Unavailable(t, "needs ONNX Runtime: %v", err)
	}
	defer env.Close()
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"y", "y_again", "x_through", "loop_x", "loop_y"}
	s, err := env.NewSession("outs", data, []string{"x"}, names)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run([]*tensors.Tensor{tensors.FromFloat32([]int64{2}, []float32{1, 2})})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float32{{2, 4}, {2, 4}, {1, 2}, {1, 2}, {2, 32}} // loop: y·x³
	for i, w := range want {
		if got := res[i].Float32s(); got[0] != w[0] || got[1] != w[1] {
			t.Errorf("%s = %v, want %v", names[i], got, w)
		}
	}
}
