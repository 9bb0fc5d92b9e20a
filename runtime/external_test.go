package runtime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// extTensor is a float32 [4] initializer whose bytes are at location.
func extTensor(name, location string) *pb.TensorProto {
	return &pb.TensorProto{Name: name, Dims: []int64{4}, DataType: int32(tensors.Float32),
		DataLocation: pb.TensorProto_EXTERNAL,
		ExternalData: []*pb.StringStringEntryProto{{Key: "location", Value: location}, {Key: "offset", Value: "0"}, {Key: "length", Value: "16"}}}
}

// extModel writes model.onnx into dir: y = x + w with w external at
// location, or, with nested, w as the external initializer of an If
// branch's subgraph.
func extModel(t *testing.T, dir, location string, nested bool) string {
	t.Helper()
	in := []*pb.ValueInfoProto{vi("x", tensors.Float32, 4)}
	out := []*pb.ValueInfoProto{vi("y", tensors.Float32, 4)}
	var b []byte
	if !nested {
		b = modelBytes(t, []*pb.NodeProto{node("Add", []string{"x", "w"}, []string{"y"})}, in, out, extTensor("w", location))
	} else {
		branch := &pb.GraphProto{Name: "then", Node: []*pb.NodeProto{node("Add", []string{"x", "w"}, []string{"y1"})},
			Output: []*pb.ValueInfoProto{vi("y1", tensors.Float32, 4)}, Initializer: []*pb.TensorProto{extTensor("w", location)}}
		attr := func(name string) *pb.AttributeProto {
			return &pb.AttributeProto{Name: name, Type: pb.AttributeProto_GRAPH, G: branch}
		}
		cond := &pb.TensorProto{Name: "c", DataType: int32(tensors.Bool), RawData: []byte{1}}
		b = modelBytes(t, []*pb.NodeProto{node("If", []string{"c"}, []string{"y"}, attr("then_branch"), attr("else_branch"))}, in, out, cond)
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExternalDataLocations: locations that leave the folder, are absolute,
// go through a symlink, or name no regular file are refused, in the main
// graph and in subgraphs; a plain file beside the model is accepted.
func TestExternalDataLocations(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	data := make([]byte, 16)
	for _, f := range []string{filepath.Join(dir, "w.data"), filepath.Join(dir, "sub", "w.data"), filepath.Join(root, "secret.data")} {
		os.WriteFile(f, data, 0o644)
	}
	os.Symlink(filepath.Join(root, "secret.data"), filepath.Join(dir, "link.data"))
	os.Symlink(root, filepath.Join(dir, "dirlink"))
	os.Mkdir(filepath.Join(dir, "adir"), 0o755)
	cases := []struct {
		loc, reason string
	}{
		{"w.data", ""},
		{"sub/w.data", ""},
		{"./w.data", ""},
		{"../secret.data", "leaves the model's folder"},
		{"sub/../../secret.data", "leaves the model's folder"},
		{filepath.Join(root, "secret.data"), "is an absolute path"},
		{"/etc/passwd", "is an absolute path"},
		{"link.data", "symbolic link"},
		{"dirlink/secret.data", "symbolic link (dirlink)"},
		{"missing.data", "does not exist"},
		{"adir", "is not a regular file"},
		{"", "is empty"},
		{"w.data\x00x", "NUL"},
	}
	for _, nested := range []bool{false, true} {
		for _, c := range cases {
			path := extModel(t, dir, c.loc, nested)
			err := CheckExternalData(path)
			if c.reason == "" {
				if err != nil {
					t.Errorf("nested=%v %q: %v", nested, c.loc, err)
				}
				continue
			}
			var ed *ExternalDataError
			if !errors.As(err, &ed) || !strings.Contains(err.Error(), c.reason) || ed.Tensor != "w" {
				t.Errorf("nested=%v %q: got %v, want an ExternalDataError saying %q", nested, c.loc, err, c.reason)
			}
		}
	}
}

// TestSessionRefusesEscapingExternalData: NewSessionFromFile checks the
// locations before ONNX Runtime opens anything; a good model still runs.
func TestSessionRefusesEscapingExternalData(t *testing.T) {
	t.Parallel()
	env := needORT(t)
	root := t.TempDir()
	dir := filepath.Join(root, "m")
	os.Mkdir(dir, 0o755)
	w := tensors.FromFloat32([]int64{4}, []float32{1, 2, 3, 4})
	os.WriteFile(filepath.Join(dir, "w.data"), w.Data, 0o644)
	os.WriteFile(filepath.Join(root, "outside.data"), w.Data, 0o644)

	good := extModel(t, dir, "w.data", false)
	s, err := env.NewSessionFromFile("good", good, []string{"x"}, []string{"y"})
	if err != nil {
		t.Fatalf("a model with its data beside it: %v", err)
	}
	out, err := s.Run([]*tensors.Tensor{tensors.FromFloat32([]int64{4}, []float32{1, 1, 1, 1})})
	s.Close()
	if err != nil || out[0].Float32s()[3] != 5 {
		t.Fatalf("run: %v %v", out, err)
	}
	bad := extModel(t, dir, "../outside.data", false)
	_, err = env.NewSessionFromFile("bad", bad, []string{"x"}, []string{"y"})
	if err == nil || !strings.Contains(err.Error(), `session "bad"`) || !strings.Contains(err.Error(), "leaves the model's folder") {
		t.Fatalf("escaping model: got %v, want an ExternalDataError from session creation", err)
	}
	t.Logf("%v", err)
}

// TestCheckExternalDataMalformed: truncated or garbled models give an
// error, never a panic or a hang.
func TestCheckExternalDataMalformed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.data"), make([]byte, 16), 0o644)
	b, _ := os.ReadFile(extModel(t, dir, "w.data", true))
	for n := 0; n < len(b); n++ {
		checkExternalData(bytes.NewReader(b[:n]), filepath.Join(dir, "model.onnx"))
	}
	// Deep nesting (graphs in attributes of nodes of graphs …) is bounded.
	var graph []byte
	for i := 0; i < 200; i++ {
		attr := protowire.AppendBytes(protowire.AppendTag(nil, fieldAttrG, protowire.BytesType), graph)
		nd := protowire.AppendBytes(protowire.AppendTag(nil, fieldNodeAttribute, protowire.BytesType), attr)
		graph = protowire.AppendBytes(protowire.AppendTag(nil, fieldGraphNode, protowire.BytesType), nd)
	}
	model := protowire.AppendBytes(protowire.AppendTag(nil, fieldModelGraph, protowire.BytesType), graph)
	if err := checkExternalData(bytes.NewReader(model), filepath.Join(dir, "model.onnx")); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("200 nested graphs: %v", err)
	}
}
