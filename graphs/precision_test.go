package graphs_test

import (
	"fmt"
	"math"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/runtime"
	"mohawk/tensors"
)

// bf round x to the nearest bfloat16 value.
func bf(x float64) float64 {
	return float64(tensors.BFloat16ToFloat32(tensors.Float32ToBFloat16(float32(x))))
}

// hostMat is a row-major float64 matrix for the reference products.
type hostMat struct {
	r, c int
	v    []float64
}

func (m hostMat) at(i, j int) float64 { return m.v[i*m.c+j] }

func (m hostMat) t() hostMat {
	o := hostMat{m.c, m.r, make([]float64, len(m.v))}
	for i := 0; i < m.r; i++ {
		for j := 0; j < m.c; j++ {
			o.v[j*m.r+i] = m.at(i, j)
		}
	}
	return o
}

func (m hostMat) round() hostMat {
	o := hostMat{m.r, m.c, make([]float64, len(m.v))}
	for i, x := range m.v {
		o.v[i] = bf(x)
	}
	return o
}

// mul is the float64 product, rounded to bfloat16.
func (m hostMat) mul(n hostMat) hostMat {
	o := hostMat{m.r, n.c, make([]float64, m.r*n.c)}
	for i := 0; i < m.r; i++ {
		for j := 0; j < n.c; j++ {
			s := 0.0
			for k := 0; k < m.c; k++ {
				s += m.at(i, k) * n.at(k, j)
			}
			o.v[i*n.c+j] = bf(s)
		}
	}
	return o
}

func mat(t *tensors.Tensor, rows int) hostMat {
	v := t.Convert(tensors.Float64).Float64s()
	return hostMat{rows, len(v) / rows, v}
}

// TestMatMulPrecision checks bfloat16 products and their gradients against
// a float64 reference that rounds operands, results and incoming gradients
// to bfloat16 where PyTorch's bf16 autocast does. ORT's CPU provider has no
// bfloat16 MatMul, so it runs the emulated form; the native form's graph is
// checked for bfloat16 only where CUDA has kernels (and run on the GPU by
// bench-stage --precision bf16).
func TestMatMulPrecision(t *testing.T) {
	type tc struct {
		name  string
		a, b  []int64
		trans [2]bool // Gemm's transA, transB; nil-Gemm cases use MatMul
		gemm  bool
	}
	cases := []tc{
		{name: "MatMul/batch-fold", a: []int64{2, 2, 8}, b: []int64{8, 5}},
		{name: "Gemm/tn-bias", a: []int64{8, 4}, b: []int64{5, 8}, trans: [2]bool{true, true}, gemm: true},
		{name: "Gemm/nn", a: []int64{4, 8}, b: []int64{8, 5}, gemm: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := rnd(1, -1, 1, c.a...).Convert(tensors.Float32), rnd(2, -1, 1, c.b...).Convert(tensors.Float32)
			bias := rnd(3, -1, 1, 5).Convert(tensors.Float32)
			build := func(p graphs.MatMulPrecision) *graphs.Graph {
				g := graphs.New("precision")
				g.SetMatMulPrecision(p)
				av, bv := g.Input("a", tensors.Float32, graphs.StaticShape(c.a)), g.Input("b", tensors.Float32, graphs.StaticShape(c.b))
				var y *graphs.Value
				if c.gemm {
					y = graphs.Gemm(av, bv, g.Const(bias), c.trans[0], c.trans[1])
				} else {
					y = graphs.MatMul(av, bv)
				}
				w := g.Const(rnd(4, -1, 1, 4*5).Convert(tensors.Float32))
				loss := graphs.ReduceSum(graphs.Mul(graphs.Reshape(y, -1), graphs.Reshape(w, -1)), []int64{0}, false)
				grads := graphs.Gradients(loss, av, bv)
				g.Output("y", y)
				g.Output("da", grads[0])
				g.Output("db", grads[1])
				return g
			}
			feeds := map[string]*tensors.Tensor{"a": a, "b": b}
			got := graphtest.Run(t, build(graphs.MatMulBFloat16Emulated), feeds)
			plain := graphtest.Run(t, build(graphs.MatMulFloat32), feeds)

			// Reference: op(a) and op(b) as float64 matrices.
			am, bm := mat(a, len(a.Data)/4/int(c.a[len(c.a)-1])), mat(b, int(c.b[0]))
			if c.trans[0] {
				am = am.t()
			}
			if c.trans[1] {
				bm = bm.t()
			}
			ar, br := am.round(), bm.round()
			y := ar.mul(br)
			if c.gemm {
				for i := range y.v {
					y.v[i] += float64(bias.Float32s()[i%5])
				}
			}
			dy := mat(rnd(4, -1, 1, 4*5).Convert(tensors.Float32), 4).round()
			da, db := dy.mul(br.t()), ar.t().mul(dy) // d op(a), d op(b)
			if c.trans[0] {
				da = da.t()
			}
			if c.trans[1] {
				db = db.t()
			}
			for _, o := range []struct {
				name string
				want hostMat
			}{{"y", y}, {"da", da}, {"db", db}} {
				g := got[o.name].Convert(tensors.Float64).Float64s()
				p := plain[o.name].Convert(tensors.Float64).Float64s()
				worst, differs := 0.0, false
				for i, w := range o.want.v {
					worst = math.Max(worst, math.Abs(g[i]-w)/(math.Abs(w)+1e-3))
					differs = differs || math.Abs(p[i]-w) > 1e-4*(math.Abs(w)+1e-3)
				}
				for i, x := range g {
					if bf(x) != x && (o.name != "y" || !c.gemm) { // a bias is added in float32
						t.Errorf("%s[%d] = %v is not a bfloat16 value", o.name, i, x)
						break
					}
				}
				if !(worst <= 1.0/256) {
					t.Errorf("%s: relative error %.3g against the bfloat16 reference (1 ulp is %.3g)", o.name, worst, 1.0/256)
				}
				if !differs {
					t.Errorf("%s: float32 result equals the bfloat16 reference; the test cannot tell them apart", o.name)
				}
			}

			// The native form runs only MatMul, Gemm and data movement in
			// bfloat16, so every other node stays on float32 kernels.
			native := build(graphs.MatMulBFloat16)
			allowed := map[string]bool{"MatMul": true, "Gemm": true, "Cast": true, "Reshape": true, "Transpose": true}
			bfNodes := 0
			for _, n := range native.Nodes() {
				for _, in := range n.Inputs {
					if in.DType == tensors.BFloat16 {
						if !allowed[n.Def().Type] {
							t.Errorf("native form: %s node takes a bfloat16 input", n.Def().Type)
						}
						if n.Def().Type == "MatMul" || n.Def().Type == "Gemm" {
							bfNodes++
						}
						break
					}
				}
			}
			if bfNodes != 3 {
				t.Errorf("native form has %d bfloat16 products, want 3 (forward, two gradients)", bfNodes)
			}
		})
	}
}

func ExampleGraph_SetMatMulPrecision() {
	g := graphs.New("bf16")
	g.SetMatMulPrecision(graphs.MatMulBFloat16)
	x := g.Input("x", tensors.Float32, graphs.S(4, 8))
	w := g.Input("w", tensors.Float32, graphs.S(8, 2))
	y := graphs.MatMul(x, w)
	for _, n := range g.Nodes() {
		fmt.Println(n.Def().Type, n.Outputs[0].DType)
	}
	fmt.Println("y:", y.DType)
	// Output:
	// Cast bfloat16
	// Cast bfloat16
	// MatMul bfloat16
	// Cast float32
	// y: float32
}

// TestAttentionPrecision checks CausalMultiHeadAttention under the bfloat16
// precisions: the native form computes in float16 (ORT's CUDA kernel has no
// bfloat16), the emulated form rounds inputs and output
// to float16 and stays within float16 rounding of the float32 result.
func TestAttentionPrecision(t *testing.T) {
	const b, tt, heads, width = 2, 16, 2, 8
	build := func(p graphs.MatMulPrecision) *graphs.Graph {
		g := graphs.New("attention_precision")
		g.SetMatMulPrecision(p)
		x := func(name string) *graphs.Value { return g.Input(name, tensors.Float32, graphs.S(b, tt, width)) }
		q, k, v := x("q"), x("k"), x("v")
		g.Output("y", graphs.CausalMultiHeadAttention(q, k, v, heads, 0.3))
		return g
	}
	native := build(graphs.MatMulBFloat16)
	for _, n := range native.Nodes() {
		if n.Op == "MultiHeadAttention" {
			for _, in := range n.Inputs {
				if in != nil && in.DType != tensors.Float16 {
					t.Errorf("native bf16 attention input %v is not float16", in)
				}
			}
		}
	}
	feeds := map[string]*tensors.Tensor{}
	for i, name := range []string{"q", "k", "v"} {
		feeds[name] = rnd(uint64(20+i), -2, 2, b, tt, width).Convert(tensors.Float32)
	}
	got := graphtest.Run(t, build(graphs.MatMulBFloat16Emulated), feeds)["y"].Float32s()
	want := graphtest.Run(t, build(graphs.MatMulFloat32), feeds)["y"].Float32s()
	worst := 0.0
	for i, y := range got {
		if h := tensors.HalfToFloat32(tensors.Float32ToHalf(y)); h != y {
			t.Fatalf("emulated output %d = %v is not a float16 value", i, y)
		}
		worst = max(worst, math.Abs(float64(y-want[i])))
	}
	t.Logf("emulated float16 attention: max |Δ| vs float32 = %.3g", worst)
	if !(worst <= 1e-2) || worst == 0 {
		t.Errorf("emulated float16 attention differs from float32 by %.3g; want rounding-sized, above 0", worst)
	}
}

// TestMLPPrecision checks layers.PhiMLP under the bfloat16 precisions: the
// native graph keeps the activation between the two products, and its
// gradient, in bfloat16 (a valid ONNX graph: the CPU provider, which
// has no bfloat16 kernels, refuses it for a missing kernel, not a type
// error); the emulated graph's output and gradients stay within bfloat16
// rounding of float32 without equalling them.
func TestMLPPrecision(t *testing.T) {
	const rows, width, inner = 6, 8, 16
	build := func(p graphs.MatMulPrecision) *graphs.Graph {
		return graphtest.GradStep("mlp_step", p, graphs.S(rows, width), func(get layers.Params, x *graphs.Value) *graphs.Value {
			return graphs.FromLowPrecision(layers.PhiMLP(get, "mlp", x, inner))
		})
	}
	native := build(graphs.MatMulBFloat16)
	lowOps := map[string]int{}
	for _, n := range native.Nodes() {
		out := n.Outputs[0]
		if out.Rank() == 2 && out.Shape[1].K == inner && n.Op != "Cast" {
			lowOps[n.Op]++
			if out.DType != tensors.BFloat16 {
				t.Errorf("native %s node on the [%d, %d] activation is %v, want bfloat16", n.Op, rows, inner, out.DType)
			}
		}
	}
	if lowOps["Gelu"] != 1 || lowOps["GeluGrad"] != 1 || lowOps["Gemm"] < 2 {
		t.Errorf("nodes on the activation by op %v: want the Gelu, its gradient (GeluGrad) and the products", lowOps)
	}
	graphtest.WantMissingKernel(t, native)
	feeds := map[string]*tensors.Tensor{
		"x": rnd(31, -2, 2, rows, width), "r": rnd(32, -1, 1, rows, width),
		"mlp.fc1.weight": rnd(33, -0.5, 0.5, inner, width), "mlp.fc1.bias": rnd(34, -0.5, 0.5, inner),
		"mlp.fc2.weight": rnd(35, -0.5, 0.5, width, inner), "mlp.fc2.bias": rnd(36, -0.5, 0.5, width),
	}
	for k, v := range feeds {
		feeds[k] = v.Convert(tensors.Float32)
	}
	graphtest.WantBF16Close(t, "", graphtest.Run(t, build(graphs.MatMulBFloat16Emulated), feeds), graphtest.Run(t, build(graphs.MatMulFloat32), feeds))
}

// movedBytes is the bytes the nodes of g read and write (Node.Traffic).
func movedBytes(g *graphs.Graph) int64 {
	var n int64
	for _, node := range g.AllNodes() {
		n += node.Traffic()
	}
	return n
}

// TestMLPPrecisionBytes counts the bytes the native bfloat16 MLP step
// (forward and gradients) moves with its activation kept in bfloat16 and
// with the activation cast back to float32 after fc1 (the form before),
// per element of the [rows, inner] activation: the difference is what the
// change saves per element on the GPU: about 44 bytes now that the GELU
// gradient is one fused pass in either form (about 100 with the stock
// thirteen-op gradient).
func TestMLPPrecisionBytes(t *testing.T) {
	const rows, width, inner = 64, 32, 4096
	build := func(low bool) *graphs.Graph {
		return graphtest.GradStep("mlp_step", graphs.MatMulBFloat16, graphs.S(rows, width), func(get layers.Params, x *graphs.Value) *graphs.Value {
			if low {
				return graphs.FromLowPrecision(layers.PhiMLP(get, "mlp", x, inner))
			}
			h := graphs.Gelu(layers.Linear(get, "mlp.fc1", x, inner, true), true)
			return layers.Linear(get, "mlp.fc2", h, width, true)
		})
	}
	before, after := movedBytes(build(false)), movedBytes(build(true))
	perElem := float64(before-after) / (rows * inner)
	t.Logf("bytes moved: %d with the activation in float32, %d in bfloat16: %.1f fewer per activation element", before, after, perElem)
	if perElem < 40 {
		t.Errorf("the bfloat16 activation saves %.1f bytes per element; want about 44", perElem)
	}
}

// TestGeluGrad runs the tanh-GELU gradient (the fused GeluGrad, through
// float32 for float16) in each low precision and float32, on the CPU and,
// with MOHAWK_TEST_CUDA set, on the GPU, and compares it with the formula
// in float64 on the same rounded inputs: the result is rounded once, so it
// errs by half a unit in its last place plus float32's own error.
func TestGeluGrad(t *testing.T) {
	const n = 2001
	for _, c := range []struct {
		name string
		dt   tensors.DType
		env  func(testing.TB) *runtime.Env
		tol  float64 // absolute: half a unit in the last place for |dx| ≤ 2.3, plus float32's error
	}{
		{"cpu/float16", tensors.Float16, graphtest.Env, math.Pow(2, -10) + 1e-5},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, math.Pow(2, -7) + 1e-5},
		{"cpu/float32", tensors.Float32, graphtest.Env, 1e-6},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, math.Pow(2, -7) + 1e-5},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 1e-6},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("gelu_grad")
			x := g.Input("x", c.dt, graphs.S(n))
			gy := g.Input("g", c.dt, graphs.S(n))
			if c.dt == tensors.BFloat16 { // the CPU provider has no bfloat16 Mul: the op alone
				g.Output("dx", graphs.GeluGrad(x, gy))
			} else {
				y := graphs.Gelu(x, true)
				g.Output("dx", graphs.Gradients(graphs.ReduceSumAll(graphs.Mul(y, gy)), x)[0])
			}
			xs, dys := make([]float64, n), make([]float64, n)
			for i := range xs {
				xs[i] = -6 + 12*float64(i)/(n-1)
				dys[i] = []float64{1, -0.5, 2}[i%3]
			}
			in := tensors.FromFloat64([]int64{n}, xs).Convert(c.dt)
			dy := tensors.FromFloat64([]int64{n}, dys).Convert(c.dt)
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, map[string]*tensors.Tensor{"x": in, "g": dy})
			got := out["dx"].Convert(tensors.Float64).Float64s()
			a := 2 * math.Sqrt(2/math.Pi)
			worst := 0.0
			for i, x := range in.Convert(tensors.Float64).Float64s() {
				s := 1 / (1 + math.Exp(-x*(a+a*0.044715*x*x)))
				want := dys[i] * s * (1 + x*(1-s)*(a+3*a*0.044715*x*x))
				worst = max(worst, math.Abs(got[i]-want))
			}
			t.Logf("GELU gradient: max |error| %.3g on [-6, 6]", worst)
			if !(worst <= c.tol) {
				t.Errorf("GELU gradient errs by %.3g; want at most %.3g", worst, c.tol)
			}
		})
	}
}
