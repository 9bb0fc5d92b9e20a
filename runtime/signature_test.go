package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

func TestReadSignature(t *testing.T) {
	t.Parallel()
	big := &pb.TensorProto{Name: "w", Dims: []int64{512, 512}, DataType: int32(tensors.Float32), RawData: make([]byte, 512*512*4)}
	model := modelBytes(t,
		[]*pb.NodeProto{node("MatMul", []string{"x", "w"}, []string{"y"}), node("ReduceSum", []string{"y"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("x", tensors.Float32, "batch", 512), vi("flag", tensors.Bool, nil)},
		[]*pb.ValueInfoProto{vi("y", tensors.Float32, "batch", 512), vi("s", tensors.Float32), noShape("free", tensors.Float16)},
		big)
	want := signature{
		inputs: []tensorInfo{
			{name: "x", kind: "tensor", elem: tensors.Float32, rankKnown: true, dims: []dim{{-1, "batch"}, {512, ""}}},
			{name: "flag", kind: "tensor", elem: tensors.Bool, rankKnown: true, dims: []dim{{-1, ""}}},
		},
		outputs: []tensorInfo{
			{name: "y", kind: "tensor", elem: tensors.Float32, rankKnown: true, dims: []dim{{-1, "batch"}, {512, ""}}},
			{name: "s", kind: "tensor", elem: tensors.Float32, rankKnown: true, dims: []dim{}},
			{name: "free", kind: "tensor", elem: tensors.Float16},
		},
	}
	file := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(file, model, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, r := range map[string]interface {
		Read([]byte) (int, error)
		Seek(int64, int) (int64, error)
	}{"bytes": bytes.NewReader(model), "file (seeks past the 1 MiB initializer)": f} {
		t.Run(name, func(t *testing.T) {
			got, err := readSignature(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("readSignature =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
	if got := want.inputs[0].describe(); got != "float32[batch,512]" {
		t.Errorf("describe = %q", got)
	}
	if got := want.outputs[2].describe(); got != "float16[unknown rank]" {
		t.Errorf("describe = %q", got)
	}
}

func TestReadSignatureErrors(t *testing.T) {
	t.Parallel()
	model := addModel(t)
	cases := map[string][]byte{
		"empty":        nil,
		"truncated":    model[:len(model)-3],
		"garbage":      []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"no graph":     {0x08, 0x0a}, // ir_version only
		"group fields": {0x0b},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := readSignature(bytes.NewReader(b)); err == nil {
				t.Error("readSignature succeeded, want an error")
			}
		})
	}
}

func TestProbeModel(t *testing.T) {
	sig, err := readSignature(bytes.NewReader(probeModel()))
	if err != nil {
		t.Fatal(err)
	}
	want := tensorInfo{name: "x", kind: "tensor", elem: tensors.Float32, rankKnown: true, dims: []dim{{1, ""}}}
	if len(sig.inputs) != 1 || !reflect.DeepEqual(sig.inputs[0], want) || len(sig.outputs) != 1 || sig.outputs[0].name != "y" {
		t.Errorf("probe model signature %+v", sig)
	}
	env := needORT(t)
	s, err := env.NewSession("probe", probeModel(), []string{"x"}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Run([]*tensors.Tensor{tensors.FromFloat32([]int64{1}, []float32{42})})
	if err != nil || got[0].Float32s()[0] != 42 {
		t.Errorf("probe model run = %v, %v", got, err)
	}
}
