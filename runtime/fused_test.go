package runtime

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// fusedModel is a one-node model of op in FusedDomain whose inputs are
// declared with free dimensions (so that only the kernel checks their
// sizes) and whose outputs are float32, or float64 where a name ends in
// "64".
func fusedModel(t *testing.T, op string, ins []*pb.ValueInfoProto, outs []string) []byte {
	t.Helper()
	names := make([]string, len(ins))
	for i, v := range ins {
		names[i] = v.GetName()
	}
	var outInfo []*pb.ValueInfoProto
	for _, o := range outs {
		dt := tensors.Float32
		if strings.HasSuffix(o, "64") {
			dt = tensors.Float64
		}
		outInfo = append(outInfo, noShape(o, dt))
	}
	n := node(op, names, outs)
	n.Domain = FusedDomain
	m := &pb.ModelProto{
		IrVersion:    10,
		ProducerName: "mohawk-runtime-test",
		OpsetImport:  []*pb.OperatorSetIdProto{{Version: 21}, {Domain: FusedDomain, Version: 1}},
		Graph:        &pb.GraphProto{Name: "fused", Node: []*pb.NodeProto{n}, Input: ins, Output: outInfo},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFusedBadInput feeds the fused kernels inputs their graphs' shape
// rules would refuse and checks that the run fails with an error naming
// the op and what is wrong, not a crash or a wrong result.
func TestFusedBadInput(t *testing.T) {
	env := needORT(t)
	f32 := func(dims ...int64) *tensors.Tensor { return tensors.Zeros(tensors.Float32, dims...) }
	freeOf := func(dt tensors.DType) func(string, int) *pb.ValueInfoProto {
		return func(name string, rank int) *pb.ValueInfoProto {
			dims := make([]any, rank)
			for i := range dims {
				dims[i] = name + string(rune('a'+i))
			}
			return vi(name, dt, dims...)
		}
	}
	free, f64free, i64free := freeOf(tensors.Float32), freeOf(tensors.Float64), freeOf(tensors.Int64)
	f64 := func(dims ...int64) *tensors.Tensor { return tensors.Zeros(tensors.Float64, dims...) }
	i64 := func(dims ...int64) *tensors.Tensor { return tensors.Zeros(tensors.Int64, dims...) }
	for _, c := range []struct {
		name  string
		op    string
		ins   []*pb.ValueInfoProto
		outs  []string
		feeds []*tensors.Tensor
		want  string
	}{
		{"AdamW coef of 7", "AdamW", []*pb.ValueInfoProto{free("p", 1), free("g", 1), free("m", 1), free("v", 1), free("c", 1)},
			[]string{"p2", "m2", "v2"}, []*tensors.Tensor{f32(4), f32(4), f32(4), f32(4), f32(7)},
			"AdamW: coef has element type 1 and 7 elements; want type 1 and 8"},
		{"AdamW moment size", "AdamW", []*pb.ValueInfoProto{free("p", 1), free("g", 1), free("m", 1), free("v", 1), free("c", 1)},
			[]string{"p2", "m2", "v2"}, []*tensors.Tensor{f32(4), f32(4), f32(3), f32(4), f32(8)},
			"AdamW: input 2 has element type 1 and 3 elements; want input 0's type 1 and 4"},
		{"GeluGrad sizes", "GeluGrad", []*pb.ValueInfoProto{free("x", 2), free("dy", 2)},
			[]string{"dx"}, []*tensors.Tensor{f32(2, 3), f32(3, 3)},
			"GeluGrad: input 1 has element type 1 and 9 elements"},
		{"CausalConv weight", "CausalConv", []*pb.ValueInfoProto{free("x", 3), free("w", 3), free("b", 1), i64free("parts", 2)},
			[]string{"y"}, []*tensors.Tensor{f32(1, 5, 3), f32(3, 2, 4), f32(3), i64(0, 3)},
			"CausalConv: want x [B, T, Cx], w [C ≤ Cx, 1, K ≤ 8] and b [C]"},
		{"CausalConv widths", "CausalConv", []*pb.ValueInfoProto{free("x", 3), free("w", 3), free("b", 1), i64free("parts", 2)},
			[]string{"y"}, []*tensors.Tensor{f32(1, 5, 3), f32(3, 1, 4), f32(3), i64(0, 2)},
			"CausalConv: want the parts' carrier int64 [0, widths…] whose widths sum to x's 3 channels"},
		{"CausalConv outputs", "CausalConv", []*pb.ValueInfoProto{free("x", 3), free("w", 3), free("b", 1), i64free("parts", 3)},
			[]string{"y"}, []*tensors.Tensor{f32(1, 5, 3), f32(2, 1, 4), f32(2), i64(0, 2, 1)},
			"CausalConv: the node has 4 inputs and 1 outputs where its inputs list 2 parts"},
		{"CausalConvGrad dy", "CausalConvGrad", []*pb.ValueInfoProto{free("x", 3), free("w", 3), i64free("parts", 2), free("dy", 3)},
			[]string{"dx", "dwp", "dbp"}, []*tensors.Tensor{f32(1, 5, 3), f32(3, 1, 4), i64(0, 3), f32(1, 4, 3)},
			"CausalConvGrad: part 0's dy must be [B, T, 3] of x's element type"},
		{"CausalConvGrad weight rank", "CausalConvGrad", []*pb.ValueInfoProto{free("x", 3), free("w", 2), i64free("parts", 2), free("dy", 3)},
			[]string{"dx", "dwp", "dbp"}, []*tensors.Tensor{f32(1, 5, 3), f32(3, 4), i64(0, 3), f32(1, 5, 3)},
			"CausalConvGrad: want x [B, T, Cx], w [C ≤ Cx, 1, K ≤ 8] of one element type"},
		{"CausalConvGrad parts", "CausalConvGrad", []*pb.ValueInfoProto{free("x", 3), free("w", 3), i64free("parts", 3), free("dy", 3)},
			[]string{"dx", "dwp", "dbp"}, []*tensors.Tensor{f32(1, 5, 3), f32(3, 1, 4), i64(0, 2, 1), f32(1, 5, 2)},
			"CausalConvGrad: the node has 4 inputs and 3 outputs where its inputs list 2 parts"},
		{"Rotary odd table", "Rotary", []*pb.ValueInfoProto{free("x", 4), free("cos", 3), free("sin", 3)},
			[]string{"y"}, []*tensors.Tensor{f32(1, 3, 2, 8), f32(3, 1, 5), f32(3, 1, 5)},
			"Rotary: want x [B, T, H, P] and tables cos, sin [T, 1, R] of its element type, R even and at most P"},
		{"Residual part size", "Residual", []*pb.ValueInfoProto{free("h", 2), free("p", 2)},
			[]string{"out"}, []*tensors.Tensor{f32(2, 3), f32(3, 2)},
			"Residual: want h and one or two parts of h's shape, each of h's element type or bfloat16"},
		{"SegsumExp float cs", "SegsumExp", []*pb.ValueInfoProto{free("cs", 2), free("carrier", 1)},
			[]string{"l"}, []*tensors.Tensor{f32(2, 4), f32(0)},
			"SegsumExp: want cs [..., Q] of doubles"},
		{"SegsumExp multiplicand shape", "SegsumExp", []*pb.ValueInfoProto{f64free("cs", 2), free("m", 3)},
			[]string{"l"}, []*tensors.Tensor{f64(2, 4), f32(2, 4, 3)},
			"SegsumExp: want cs [..., Q] of doubles (rank 1 to 7) and an empty carrier or a multiplicand"},
		{"MaskedDiffSq target shape", "MaskedDiffSq", []*pb.ValueInfoProto{free("s", 3), f64free("cs", 2), free("a", 3)},
			[]string{"rows"}, []*tensors.Tensor{f32(1, 4, 4), f64(1, 4), f32(1, 4, 3)},
			"MaskedDiffSq: want s [..., T, T], cs [..., T] of doubles, a like s"},
		{"MaskedDiffSqGrad dy", "MaskedDiffSqGrad", []*pb.ValueInfoProto{free("s", 3), f64free("cs", 2), free("a", 3), free("dy", 2)},
			[]string{"ds", "dcs64"}, []*tensors.Tensor{f32(1, 4, 4), f64(1, 4), f32(1, 4, 4), f32(1, 3)},
			"MaskedDiffSqGrad: want s [..., T, T], cs [..., T] of doubles, a like s and dy [..., T]"},
		{"CausalSoftmax more queries than keys", "CausalSoftmax", []*pb.ValueInfoProto{free("x", 3), free("scale", 1)},
			[]string{"p"}, []*tensors.Tensor{f32(2, 5, 3), f32(1)},
			"CausalSoftmax: want x [..., Tq, Tk] with 1 ≤ Tq ≤ Tk"},
		{"SiluMulGrad sizes", "SiluMulGrad", []*pb.ValueInfoProto{free("y", 1), free("z", 1), free("d", 1)},
			[]string{"dy", "dz"}, []*tensors.Tensor{f32(5), f32(5), f32(4)},
			"SiluMulGrad: input 2 has element type 1 and 4 elements"},
		{"GateSkip heads", "GateSkip", []*pb.ValueInfoProto{free("y", 2), free("z", 2), free("x", 2), free("d", 1), free("zb", 1)},
			[]string{"out"}, []*tensors.Tensor{f32(3, 8), f32(3, 8), f32(3, 8), f32(3), f32(8)},
			"GateSkip: want y, z, x [..., C], d [H] with H dividing C and zb [C], of one element type"},
		{"GateSkipGrad g", "GateSkipGrad", []*pb.ValueInfoProto{free("y", 2), free("z", 2), free("x", 2), free("d", 1), free("zb", 1), free("g", 2)},
			[]string{"da", "db"}, []*tensors.Tensor{f32(3, 8), f32(3, 8), f32(3, 8), f32(4), f32(8), f32(8, 3)},
			"GateSkipGrad: want y, z, x and g [..., C], d [H] with H dividing C and zb [C], of one element type"},
		{"LayerNormGrad statistics", "LayerNormGrad",
			[]*pb.ValueInfoProto{free("x", 2), free("gamma", 1), free("mean", 2), free("invstd", 2), free("dy", 2)},
			[]string{"dx", "dgp", "dbp"}, []*tensors.Tensor{f32(3, 7), f32(7), f32(3, 1), f32(3, 2), f32(3, 7)},
			"LayerNormGrad: want x and dy [..., D], gamma [D] of x's type, and mean and invstd [..., 1]"},
		{"SoftCrossEntropy vocabulary", "SoftCrossEntropy", []*pb.ValueInfoProto{free("s", 2), free("t", 2), free("scale", 1)},
			[]string{"ce", "stats"}, []*tensors.Tensor{f32(3, 7), f32(3, 6), f32(1)},
			"SoftCrossEntropy: want s and t [..., V]"},
		{"SoftCrossEntropy double teacher", "SoftCrossEntropy", []*pb.ValueInfoProto{free("s", 2), f64free("t", 2), free("scale", 1)},
			[]string{"ce", "stats"}, []*tensors.Tensor{f32(3, 7), f64(3, 7), f32(1)},
			"SoftCrossEntropy: want s and t [..., V] (t float or bfloat16"},
		{"SoftCrossEntropyGrad stats", "SoftCrossEntropyGrad",
			[]*pb.ValueInfoProto{free("s", 2), free("t", 2), free("scale", 1), free("stats", 2), free("dce", 1)},
			[]string{"ds"}, []*tensors.Tensor{f32(3, 7), f32(3, 7), f32(1), f32(3, 3), f32(3)},
			"SoftCrossEntropyGrad: want s and t [..., V] (t float or bfloat16; double for double s) and scale [1] (float; double for double s), stats [..., 2]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var names []string
			for _, v := range c.ins {
				names = append(names, v.GetName())
			}
			s, err := env.NewSession(c.name, fusedModel(t, c.op, c.ins, c.outs), names, c.outs)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Run(c.feeds)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run: %v\nwant an error containing %q", err, c.want)
			}
		})
	}
}

// TestEnvReload closes the last Env and opens a new one several times in a
// process of its own: onnxruntime_go unloads the library when the last Env
// closes, so the OrtApi table and the fused kernels' domain must be taken
// afresh from the library loaded again. Before forgetAPI, a reload at a
// new address made the next session's registration jump through the old,
// unmapped table (a SIGSEGV seen in export's parallel tests).
func TestEnvReload(t *testing.T) {
	needORT(t)
	runChild(t, "TestChildEnvReload", "1")
}

func TestChildEnvReload(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as the child process of TestEnvReload")
	}
	for i := range 4 {
		env, err := Open(Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := env.NewSession("add", addModel(t), []string{"a", "b"}, []string{"c"})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		a := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
		got, err := s.Run([]*tensors.Tensor{a, a})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if v := got[0].Float32s(); v[0] != 2 || v[5] != 12 {
			t.Fatalf("cycle %d: got %v, want [2 4 6 8 10 12]", i, v)
		}
		if err := env.Close(); err != nil {
			t.Fatal(err)
		}
		if apiTable() != nil {
			t.Fatalf("cycle %d: the OrtApi table of the unloaded library is still held", i)
		}
	}
}

// TestConcurrentFirstSessions creates the first sessions of a freshly
// loaded library from several goroutines at once, in a child process,
// eight times over (each cycle unloads the library): ONNX Runtime registers
// the fused kernels' domain while it creates the first session, and two
// such creations at once failed ("the domain is already exist") until
// runtime serialised them.
func TestConcurrentFirstSessions(t *testing.T) {
	needORT(t)
	runChild(t, "TestChildConcurrentSessions", "1")
}

func TestChildConcurrentSessions(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as the child process of TestConcurrentFirstSessions")
	}
	model := addModel(t)
	for i := range 8 {
		env, err := Open(Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 6)
		for range cap(errs) {
			go func() {
				_, err := env.NewSession("add", model, []string{"a", "b"}, []string{"c"})
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Errorf("cycle %d: %v", i, err)
			}
		}
		if err := env.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
