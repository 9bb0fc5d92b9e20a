package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// halfTensor makes a float16 or bfloat16 tensor from float32 values.
func halfTensor(dt tensors.DType, shape []int64, v ...float32) *tensors.Tensor {
	return tensors.FromFloat32(shape, v).Convert(dt)
}

func rawTensor(dt tensors.DType, shape []int64, data []byte) *tensors.Tensor {
	t := tensors.Zeros(dt, shape...)
	copy(t.Data, data)
	return t
}

func TestRun(t *testing.T) {
	env := needORT(t)
	type tc struct {
		name    string
		model   []byte
		inputs  []string
		outputs []string
		in      []*tensors.Tensor
		want    []*tensors.Tensor
	}
	f32 := tensors.FromFloat32
	cases := []tc{
		{
			name: "add float32 [2,3]", model: addModel(t), inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{f32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}), f32([]int64{2, 3}, []float32{10, 20, 30, 40, 50, 60})},
			want: []*tensors.Tensor{f32([]int64{2, 3}, []float32{11, 22, 33, 44, 55, 66})},
		},
		{
			name:   "matmul float32 with dim_params",
			model:  binaryModel(t, "MatMul", tensors.Float32, []any{"m", "k"}, []any{"k", "n"}, []any{"m", "n"}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in: []*tensors.Tensor{f32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
				f32([]int64{3, 4}, []float32{1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1})},
			want: []*tensors.Tensor{f32([]int64{2, 4}, []float32{1, 2, 3, 6, 4, 5, 6, 15})},
		},
		{
			name:   "mul float64 with an unknown dimension",
			model:  binaryModel(t, "Mul", tensors.Float64, []any{nil}, []any{nil}, []any{nil}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.FromFloat64([]int64{3}, []float64{0.5, 2, -3}), tensors.FromFloat64([]int64{3}, []float64{4, 0.25, 1e-300})},
			want: []*tensors.Tensor{tensors.FromFloat64([]int64{3}, []float64{2, 0.5, -3e-300})},
		},
		{
			name:   "add int64",
			model:  binaryModel(t, "Add", tensors.Int64, []any{4}, []any{4}, []any{4}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.FromInt64([]int64{4}, []int64{1 << 40, -5, 7, 0}), tensors.FromInt64([]int64{4}, []int64{1, 5, -8, 9})},
			want: []*tensors.Tensor{tensors.FromInt64([]int64{4}, []int64{1<<40 + 1, 0, -1, 9})},
		},
		{
			name:   "add int32",
			model:  binaryModel(t, "Add", tensors.Int32, []any{2}, []any{2}, []any{2}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.FromInt32([]int64{2}, []int32{1, 2}), tensors.FromInt32([]int64{2}, []int32{3, -4})},
			want: []*tensors.Tensor{tensors.FromInt32([]int64{2}, []int32{4, -2})},
		},
		{
			name:   "and bool",
			model:  binaryModel(t, "And", tensors.Bool, []any{4}, []any{4}, []any{4}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.FromBool([]int64{4}, []bool{true, true, false, false}), tensors.FromBool([]int64{4}, []bool{true, false, true, false})},
			want: []*tensors.Tensor{tensors.FromBool([]int64{4}, []bool{true, false, false, false})},
		},
		{
			name:   "add uint8",
			model:  binaryModel(t, "Add", tensors.Uint8, []any{2}, []any{2}, []any{2}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{rawTensor(tensors.Uint8, []int64{2}, []byte{1, 200}), rawTensor(tensors.Uint8, []int64{2}, []byte{2, 50})},
			want: []*tensors.Tensor{rawTensor(tensors.Uint8, []int64{2}, []byte{3, 250})},
		},
		{
			name:   "add int8",
			model:  binaryModel(t, "Add", tensors.Int8, []any{2}, []any{2}, []any{2}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{rawTensor(tensors.Int8, []int64{2}, []byte{1, 0xfe}), rawTensor(tensors.Int8, []int64{2}, []byte{2, 0xff})},
			want: []*tensors.Tensor{rawTensor(tensors.Int8, []int64{2}, []byte{3, 0xfd})},
		},
		{
			name:   "reduce sum to a 0-d float32 output",
			model:  reduceSumModel(t, tensors.Float32, nil),
			inputs: []string{"x"}, outputs: []string{"s"},
			in:   []*tensors.Tensor{f32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})},
			want: []*tensors.Tensor{tensors.Scalar32(21)},
		},
		{
			name:   "reduce sum to a 0-d float64 output",
			model:  reduceSumModel(t, tensors.Float64, nil),
			inputs: []string{"x"}, outputs: []string{"s"},
			in:   []*tensors.Tensor{tensors.FromFloat64([]int64{1, 3}, []float64{0.25, 0.5, 1})},
			want: []*tensors.Tensor{tensors.FromFloat64(nil, []float64{1.75})},
		},
		{
			name:   "reduce sum to a 0-d int64 output",
			model:  reduceSumModel(t, tensors.Int64, nil),
			inputs: []string{"x"}, outputs: []string{"s"},
			in:   []*tensors.Tensor{tensors.FromInt64([]int64{2, 3}, []int64{1, 2, 3, 4, 5, 6})},
			want: []*tensors.Tensor{tensors.FromInt64(nil, []int64{21})},
		},
		{
			name:   "0-d input broadcast",
			model:  binaryModel(t, "Add", tensors.Float32, []any{}, []any{3}, []any{3}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.Scalar32(0.5), f32([]int64{3}, []float32{1, 2, 3})},
			want: []*tensors.Tensor{f32([]int64{3}, []float32{1.5, 2.5, 3.5})},
		},
		{
			name:   "zero-element tensors",
			model:  binaryModel(t, "Add", tensors.Float32, []any{"n", 3}, []any{"n", 3}, []any{"n", 3}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{tensors.Zeros(tensors.Float32, 0, 3), tensors.Zeros(tensors.Float32, 0, 3)},
			want: []*tensors.Tensor{tensors.Zeros(tensors.Float32, 0, 3)},
		},
		{
			name:   "add float16, output shape from an input dim_param",
			model:  binaryModel(t, "Add", tensors.Float16, []any{"batch", 2}, []any{"batch", 2}, []any{"batch", 2}),
			inputs: []string{"a", "b"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{halfTensor(tensors.Float16, []int64{3, 2}, 1, 2, 3, 4, 5, 6), halfTensor(tensors.Float16, []int64{3, 2}, 0.5, 0.5, 0.5, 0.5, 0.5, -6)},
			want: []*tensors.Tensor{halfTensor(tensors.Float16, []int64{3, 2}, 1.5, 2.5, 3.5, 4.5, 5.5, 0)},
		},
		{
			name: "identity bfloat16, static shape",
			model: modelBytes(t, []*pb.NodeProto{node("Identity", []string{"a"}, []string{"c"})},
				[]*pb.ValueInfoProto{vi("a", tensors.BFloat16, 2)}, []*pb.ValueInfoProto{vi("c", tensors.BFloat16, 2)}),
			inputs: []string{"a"}, outputs: []string{"c"},
			in:   []*tensors.Tensor{halfTensor(tensors.BFloat16, []int64{2}, 1.5, -256)},
			want: []*tensors.Tensor{halfTensor(tensors.BFloat16, []int64{2}, 1.5, -256)},
		},
		{
			name: "two outputs in the requested order, inputs in a different order than declared",
			model: modelBytes(t, []*pb.NodeProto{node("Sub", []string{"a", "b"}, []string{"d"}), node("Add", []string{"a", "b"}, []string{"s"})},
				[]*pb.ValueInfoProto{vi("a", tensors.Float32, 2), vi("b", tensors.Float32, 2)},
				[]*pb.ValueInfoProto{vi("s", tensors.Float32, 2), vi("d", tensors.Float32, 2)}),
			inputs: []string{"b", "a"}, outputs: []string{"d", "s"},
			in:   []*tensors.Tensor{f32([]int64{2}, []float32{1, 2}), f32([]int64{2}, []float32{10, 20})},
			want: []*tensors.Tensor{f32([]int64{2}, []float32{9, 18}), f32([]int64{2}, []float32{11, 22})},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := env.NewSession(c.name, c.model, c.inputs, c.outputs)
			if err != nil {
				t.Fatalf("NewSession: %v", err)
			}
			defer s.Close()
			if got := s.InputNames(); !slices.Equal(got, c.inputs) {
				t.Errorf("InputNames = %q, want %q", got, c.inputs)
			}
			if got := s.OutputNames(); !slices.Equal(got, c.outputs) {
				t.Errorf("OutputNames = %q, want %q", got, c.outputs)
			}
			inCopy := make([][]byte, len(c.in))
			for i, x := range c.in {
				inCopy[i] = bytes.Clone(x.Data)
			}
			for run := 0; run < 2; run++ { // a second run must not see the first's buffers
				got, err := s.Run(c.in)
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if len(got) != len(c.want) {
					t.Fatalf("Run returned %d outputs, want %d", len(got), len(c.want))
				}
				for j, w := range c.want {
					g := got[j]
					if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
						t.Errorf("output %d = %v%v %x, want %v%v %x", j, g.DType, g.Shape, g.Data, w.DType, w.Shape, w.Data)
					}
					if err := g.Check(); err != nil {
						t.Errorf("output %d: %v", j, err)
					}
					g.Data = append(g.Data[:0:0], 0xAA) // clobbering an output must not affect the next run
				}
			}
			for i, x := range c.in {
				if !bytes.Equal(x.Data, inCopy[i]) {
					t.Errorf("input %d was modified", i)
				}
			}
		})
	}
}

func TestRunMisalignedInput(t *testing.T) {
	env := needORT(t)
	s, err := env.NewSession("add", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	buf := make([]byte, len(a.Data)+1)
	copy(buf[1:], a.Data)
	mis := &tensors.Tensor{DType: tensors.Float32, Shape: []int64{2, 3}, Data: buf[1:]}
	got, err := s.Run([]*tensors.Tensor{mis, a})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 4, 6, 8, 10, 12}; !slices.Equal(got[0].Float32s(), want) {
		t.Errorf("got %v, want %v", got[0].Float32s(), want)
	}
}

func TestRunInputErrors(t *testing.T) {
	env := needORT(t)
	s, err := env.NewSession("teacher-forward", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok := tensors.Zeros(tensors.Float32, 2, 3)
	cases := []struct {
		name string
		in   []*tensors.Tensor
		want []string
	}{
		{"too few inputs", []*tensors.Tensor{ok}, []string{"got 1 inputs, want 2", `"a", "b"`}},
		{"too many inputs", []*tensors.Tensor{ok, ok, ok}, []string{"got 3 inputs, want 2"}},
		{"nil input", []*tensors.Tensor{ok, nil}, []string{`input "b": is nil`}},
		{"wrong dtype", []*tensors.Tensor{tensors.Zeros(tensors.Float64, 2, 3), ok}, []string{`input "a"`, "dtype float64", "float32[2,3]"}},
		{"wrong rank", []*tensors.Tensor{ok, tensors.Zeros(tensors.Float32, 6)}, []string{`input "b"`, "rank 1", "rank 2"}},
		{"wrong static dimension", []*tensors.Tensor{tensors.Zeros(tensors.Float32, 2, 4), ok}, []string{`input "a"`, "dimension 1 must be 3"}},
		{"data length does not match the shape", []*tensors.Tensor{{DType: tensors.Float32, Shape: []int64{2, 3}, Data: make([]byte, 8)}, ok},
			[]string{`input "a"`, "needs 24 bytes, has 8"}},
		{"invalid dtype", []*tensors.Tensor{{DType: 99, Shape: []int64{2, 3}}, ok}, []string{`input "a"`, "invalid dtype"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Run(c.in)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range append([]string{`session "teacher-forward": run: `}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewSessionErrors(t *testing.T) {
	env := needORT(t)
	t.Setenv(EnvSaveOnFailure, "")
	half0d := modelBytes(t, []*pb.NodeProto{node("ReduceSum", []string{"x"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("x", tensors.Float16, 2)}, []*pb.ValueInfoProto{vi("s", tensors.Float16)})
	halfFree := modelBytes(t, []*pb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*pb.ValueInfoProto{vi("x", tensors.Float16, "n")}, []*pb.ValueInfoProto{vi("y", tensors.Float16, "m")})
	halfNoShape := modelBytes(t, []*pb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*pb.ValueInfoProto{vi("x", tensors.Float16, "n")}, []*pb.ValueInfoProto{noShape("y", tensors.Float16)})
	uint16Model := modelBytes(t, []*pb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*pb.ValueInfoProto{vi("x", 4, 2)}, []*pb.ValueInfoProto{vi("y", 4, 2)})
	cases := []struct {
		name            string
		model           []byte
		inputs, outputs []string
		want            []string
	}{
		{"garbage bytes", []byte("this is not an onnx model"), []string{"a"}, []string{"c"}, []string{"protobuf parsing failed"}},
		{"empty model", nil, []string{"a"}, []string{"c"}, []string{"the model is empty"}},
		{"opset newer than ORT knows", func() []byte {
			var m pb.ModelProto
			mustUnmarshal(t, addModel(t), &m)
			m.OpsetImport[0].Version = 99
			return mustMarshal(t, &m)
		}(), []string{"a", "b"}, []string{"c"}, []string{"opset"}},
		{"unknown input", addModel(t), []string{"a", "x"}, []string{"c"}, []string{`the model has no input "x"`, `inputs are "a", "b"`}},
		{"unknown output", addModel(t), []string{"a", "b"}, []string{"z"}, []string{`no output "z"`, `"c"`}},
		{"duplicate input", addModel(t), []string{"a", "a"}, []string{"c"}, []string{`input "a" is listed twice`}},
		{"no inputs", addModel(t), nil, []string{"c"}, []string{"at least one input"}},
		{"0-d float16 output", half0d, []string{"x"}, []string{"s"}, []string{`output "s"`, "give the output shape [1]"}},
		{"float16 output with a free dimension", halfFree, []string{"x"}, []string{"y"}, []string{`output "y"`, "dimension m", "Cast it to float32"}},
		{"float16 output without a shape", halfNoShape, []string{"x"}, []string{"y"}, []string{`output "y"`, "rank"}},
		{"unsupported element type", uint16Model, []string{"x"}, []string{"y"}, []string{`input "x" has element type dtype(4)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := env.NewSession("student-step", c.model, c.inputs, c.outputs)
			if err == nil {
				s.Close()
				t.Fatal("NewSession succeeded, want an error")
			}
			for _, w := range append([]string{`session "student-step": create: `}, c.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSaveOnFailure(t *testing.T) {
	env := needORT(t)
	dir := filepath.Join(t.TempDir(), "failed")
	t.Setenv(EnvSaveOnFailure, dir)
	bad := []byte("\x08\x0a\x3a\x05broken")
	_, err := env.NewSession("align/layer 3", bad, []string{"a"}, []string{"c"})
	if err == nil {
		t.Fatal("NewSession succeeded on a broken model")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if len(files) != 1 {
		t.Fatalf("files in %s: %v, want one .onnx", dir, files)
	}
	if !strings.Contains(err.Error(), "model saved to "+files[0]) {
		t.Errorf("error %q does not name the saved file %s", err, files[0])
	}
	if !strings.HasPrefix(filepath.Base(files[0]), "align_layer_3-") {
		t.Errorf("saved file %s is not named after the session", files[0])
	}
	if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, bad) {
		t.Errorf("saved bytes %q, want %q", got, bad)
	}
	// A model ORT accepts is not saved, even if the names are wrong.
	if _, err := env.NewSession("names", addModel(t), []string{"nope"}, []string{"c"}); err == nil {
		t.Fatal("want an error for an unknown input")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.onnx")); len(files) != 1 {
		t.Errorf("files after an accepted model: %v", files)
	}
}

func TestNewSessionFromFile(t *testing.T) {
	env := needORT(t)
	path := filepath.Join(t.TempDir(), "add.onnx")
	if err := os.WriteFile(path, addModel(t), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromFile("add-file", path, []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	one := tensors.FromFloat32([]int64{2, 3}, []float32{1, 1, 1, 1, 1, 1})
	got, err := s.Run([]*tensors.Tensor{one, one})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 2, 2, 2, 2, 2}; !slices.Equal(got[0].Float32s(), want) {
		t.Errorf("got %v, want %v", got[0].Float32s(), want)
	}

	_, err = env.NewSessionFromFile("missing", filepath.Join(t.TempDir(), "nope.onnx"), []string{"a"}, []string{"c"})
	if err == nil || !strings.Contains(err.Error(), `session "missing": create: `) || !strings.Contains(err.Error(), "nope.onnx") {
		t.Errorf("missing file: error %v, want one naming the session and the file", err)
	}
}

func TestRunUndeclaredScalarOutput(t *testing.T) {
	env := needORT(t)
	s, err := env.NewSession("loss", reduceSumModel(t, tensors.Float32, noShape("s", tensors.Float32)), []string{"x"}, []string{"s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run([]*tensors.Tensor{tensors.Zeros(tensors.Float32, 1, 3)})
	if err == nil || !strings.Contains(err.Error(), `session "loss": run: `) || !strings.Contains(err.Error(), "declare its shape as a scalar") {
		t.Errorf("error %v, want the 0-d hint", err)
	}
}

func TestSessionAndEnvClose(t *testing.T) {
	needORT(t)
	env, err := Open(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := env.NewSession("one", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := env.NewSession("two", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	x := tensors.Zeros(tensors.Float32, 2, 3)
	if _, err := s1.Run([]*tensors.Tensor{x, x}); err == nil || !strings.Contains(err.Error(), `session "one": run: the session is closed`) {
		t.Errorf("Run after Close: %v", err)
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Run([]*tensors.Tensor{x, x}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Env.Close: %v, want closed", err)
	}
	if _, err := env.NewSession("three", addModel(t), []string{"a", "b"}, []string{"c"}); err == nil {
		t.Error("NewSession on a closed Env succeeded")
	}
	if err := env.Close(); err != nil {
		t.Errorf("second Env.Close: %v", err)
	}
	// The shared test Env still works.
	s, err := testEnv.NewSession("after", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Run([]*tensors.Tensor{x, x}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenOptions(t *testing.T) {
	needORT(t)
	for _, level := range optimizationLevels {
		t.Run(level, func(t *testing.T) {
			env, err := Open(Config{OptimizationLevel: level, CPU: CPUConfig{IntraOpThreads: 1, InterOpThreads: 1}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer env.Close()
			if env.Provider() != ProviderCPU {
				t.Errorf("Provider = %q", env.Provider())
			}
			s, err := env.NewSession("add", addModel(t), []string{"a", "b"}, []string{"c"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			x := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
			got, err := s.Run([]*tensors.Tensor{x, x})
			if err != nil {
				t.Fatal(err)
			}
			if want := []float32{2, 4, 6, 8, 10, 12}; !slices.Equal(got[0].Float32s(), want) {
				t.Errorf("got %v", got[0].Float32s())
			}
		})
	}
}

func TestOpenSecondLibrary(t *testing.T) {
	env := needORT(t)
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(other, []byte("not a library"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Library: other}, nil)
	if err == nil || !strings.Contains(err.Error(), "already uses the ONNX Runtime library "+env.Library()) {
		t.Errorf("error %v, want one naming the library in use", err)
	}
	// The same file under another name (a symlink) is the same library.
	link := filepath.Join(t.TempDir(), "link.so")
	if err := os.Symlink(env.Library(), link); err != nil {
		t.Fatal(err)
	}
	e2, err := Open(Config{Library: link}, nil)
	if err != nil {
		t.Fatalf("Open with a symlink to the loaded library: %v", err)
	}
	e2.Close()
}

func mustUnmarshal(t *testing.T, b []byte, m *pb.ModelProto) {
	t.Helper()
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, m *pb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeclared(t *testing.T) {
	env := needORT(t)
	s, err := env.NewSession("matmul", binaryModel(t, "MatMul", tensors.Float32, []any{"m", 3}, []any{3, nil}, []any{"m", nil}), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name  string
		shape []int64
		ok    bool
	}{
		{"a", []int64{-1, 3}, true},
		{"b", []int64{3, -1}, true},
		{"c", []int64{-1, -1}, true},
		{"d", nil, false},
	} {
		dt, shape, ok := s.Declared(c.name)
		if ok != c.ok || !slices.Equal(shape, c.shape) || (ok && dt != tensors.Float32) {
			t.Errorf("Declared(%q) = %v, %v, %v; want float32, %v, %v", c.name, dt, shape, ok, c.shape, c.ok)
		}
	}
}
