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
		t.Skip(err)
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
	graphs.Neg(x).SetName("same")
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
