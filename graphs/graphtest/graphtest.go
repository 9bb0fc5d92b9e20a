package graphtest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"mohawk/export"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/internal/shareddata"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/tensors"
)

var (
	envOnce sync.Once
	env     *runtime.Env
	envErr  error
)

// Env returns a process-wide CPU runtime, installing ONNX Runtime into the
// user cache when needed; if that is impossible (no library and no npm) the
// test is skipped with the reason, or failed in strict mode (package strict).
func Env(t testing.TB) *runtime.Env {
	t.Helper()
	envOnce.Do(func() {
		cfg := runtime.Defaults()
		cfg.CPU.IntraOpThreads = 1
		env, envErr = runtime.Open(cfg, os.Stderr)
	})
	if envErr != nil {
		strict.Unavailable(t, "ONNX Runtime unavailable: %v", envErr)
	}
	return env
}

// CUDAEnv returns a process-wide CUDA runtime, without CPU fallback, when
// $MOHAWK_TEST_CUDA is set (on a GPU machine) and skips t otherwise.
func CUDAEnv(t testing.TB) *runtime.Env {
	t.Helper()
	if os.Getenv("MOHAWK_TEST_CUDA") == "" {
		t.Skip("set MOHAWK_TEST_CUDA=1 on a machine with the CUDA provider to run this on the GPU")
	}
	cudaOnce.Do(func() {
		cfg := runtime.Defaults()
		cfg.Provider = runtime.ProviderCUDA
		cfg.DisableCPUFallback = true // a node CUDA cannot take fails the session
		cudaEnv, cudaErr = runtime.Open(cfg, os.Stderr)
	})
	if cudaErr != nil {
		t.Fatalf("CUDA runtime: %v", cudaErr)
	}
	return cudaEnv
}

var (
	cudaOnce sync.Once
	cudaEnv  *runtime.Env
	cudaErr  error
)

// Session exports g and opens a session over all its inputs and outputs.
func Session(t testing.TB, g *graphs.Graph) *runtime.Session {
	t.Helper()
	return SessionOn(t, Env(t), g)
}

// SessionOn is Session on the runtime env.
func SessionOn(t testing.TB, env *runtime.Env, g *graphs.Graph) *runtime.Session {
	t.Helper()
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatalf("export %s: %v", g.Name, err)
	}
	var ins, outs []string
	for _, v := range g.Inputs() {
		ins = append(ins, v.Name())
	}
	_, outs = g.Outputs()
	s, err := env.NewSession(g.Name, data, ins, outs)
	if err != nil {
		if dir := os.Getenv("MOHAWK_TEST_DUMP"); dir != "" {
			os.WriteFile(filepath.Join(dir, g.Name+".onnx"), data, 0o644)
		}
		t.Fatalf("session %s: %v", g.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs g once with feeds by input name and returns outputs by name.
func Run(t testing.TB, g *graphs.Graph, feeds map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	return RunSession(t, Session(t, g), g, feeds)
}

// RunSession runs an open session of g.
func RunSession(t testing.TB, s *runtime.Session, g *graphs.Graph, feeds map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	var in []*tensors.Tensor
	for _, v := range g.Inputs() {
		f, ok := feeds[v.Name()]
		if !ok {
			t.Fatalf("no feed for input %s", v)
		}
		in = append(in, f)
	}
	out, err := s.Run(in)
	if err != nil {
		t.Fatalf("run %s: %v", g.Name, err)
	}
	_, names := g.Outputs()
	res := map[string]*tensors.Tensor{}
	for i, n := range names {
		res[n] = out[i]
	}
	return res
}

// Random returns a float64 tensor of shape with entries uniform in
// [lo, hi), from rng.
func Random(rng *rand.Rand, lo, hi float64, shape ...int64) *tensors.Tensor {
	n := tensors.NumElements(shape)
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float64()
	}
	return tensors.FromFloat64(shape, v)
}

// Shapes maps each tensor's name to its shape, to compare a weight set
// with a model's ParamShapes.
func Shapes(w map[string]*tensors.Tensor) map[string][]int64 {
	out := map[string][]int64{}
	for k, v := range w {
		out[k] = v.Shape
	}
	return out
}

// RandomParams draws every parameter of shapes uniformly from
// [−spread, spread] (norm weights, names ending in "norm.weight", from
// [0.8, 1.2]) as float32, in sorted name order so that a seed gives the
// same weights on every run.
func RandomParams(rng *rand.Rand, shapes map[string]graphs.Shape, spread float64) map[string]*tensors.Tensor {
	w := map[string]*tensors.Tensor{}
	for _, name := range slices.Sorted(maps.Keys(shapes)) {
		lo, hi := -spread, spread
		if strings.HasSuffix(name, "norm.weight") {
			lo, hi = 0.8, 1.2
		}
		w[name] = Random(rng, lo, hi, shapes[name].Sizes()...).AsFloat32()
	}
	return w
}

// GradCase describes a gradient check: Build maps inputs (float64 graph
// inputs shaped like Inputs) to one output; the check differentiates
// loss = Σ output ⊙ R for a fixed random R.
type GradCase struct {
	Name   string
	Inputs []*tensors.Tensor // float64
	// Build constructs the output from the inputs.
	Build func(g *graphs.Graph, xs []*graphs.Value) *graphs.Value
	// Float32 computes Build in float32 (ops without float64 kernels in
	// ONNX Runtime): inputs are cast down inside the graph and the output
	// cast back, so the finite differences see float32 rounding.
	Float32 bool
	// Tol overrides the tolerance (default 1e-6 relative / 1e-8 absolute in
	// float64, 2e-2 / 2e-3 in float32).
	RelTol, AbsTol float64
}

// Ops lists the op types in the forward graph of a case (for coverage).
func (c GradCase) Ops() map[string]bool {
	g := graphs.New("ops")
	xs := make([]*graphs.Value, len(c.Inputs))
	for i, in := range c.Inputs {
		xs[i] = g.Input(fmt.Sprintf("x%d", i), tensors.Float64, graphs.StaticShape(in.Shape))
	}
	_ = c.forward(g, xs)
	ops := map[string]bool{}
	for _, n := range g.Nodes() {
		ops[n.Op] = true
	}
	return ops
}

func (c GradCase) forward(g *graphs.Graph, xs []*graphs.Value) *graphs.Value {
	if !c.Float32 {
		return c.Build(g, xs)
	}
	ys := make([]*graphs.Value, len(xs))
	for i, x := range xs {
		ys[i] = graphs.Cast(x, tensors.Float32)
	}
	return graphs.Cast(c.Build(g, ys), tensors.Float64)
}

// CheckGradients compares the autodiff gradients of case c with central
// differences of step h (1e-6 in float64, 1e-3 in float32).
func CheckGradients(t *testing.T, c GradCase) {
	t.Helper()
	build := func(withGrad bool) (*graphs.Graph, []*graphs.Value) {
		g := graphs.New("grad_" + c.Name)
		xs := make([]*graphs.Value, len(c.Inputs))
		for i, in := range c.Inputs {
			xs[i] = g.Input(fmt.Sprintf("x%d", i), tensors.Float64, graphs.StaticShape(in.Shape))
		}
		y := c.forward(g, xs)
		if !y.Shape.Static() {
			t.Fatalf("%s: output %v has a symbolic shape", c.Name, y)
		}
		r := Random(rand.New(rand.NewPCG(3, 5)), -1, 1, y.Shape.Sizes()...)
		loss := graphs.ReduceSumAll(graphs.Mul(y, g.Const(r)))
		g.Output("loss", graphs.Reshape(loss, 1))
		if withGrad {
			for i, gr := range graphs.Gradients(loss, xs...) {
				g.Output(fmt.Sprintf("grad%d", i), gr)
			}
		}
		return g, xs
	}
	var g, lg *graphs.Graph
	if err := graphs.Try(func() { g, _ = build(true); lg, _ = build(false) }); err != nil {
		t.Fatalf("%s: build: %v", c.Name, err)
	}
	feeds := map[string]*tensors.Tensor{}
	for i, in := range c.Inputs {
		feeds[fmt.Sprintf("x%d", i)] = in
	}
	res := Run(t, g, feeds)
	ls := Session(t, lg)
	h, rel, abs := 1e-6, 1e-6, 1e-8
	if c.Float32 {
		h, rel, abs = 1e-3, 2e-2, 2e-3
	}
	if c.RelTol > 0 {
		rel = c.RelTol
	}
	if c.AbsTol > 0 {
		abs = c.AbsTol
	}
	lossAt := func() float64 {
		return RunSession(t, ls, lg, feeds)["loss"].Float64s()[0]
	}
	worst := 0.0 // the largest |autodiff − central difference|
	for i, in := range c.Inputs {
		got := res[fmt.Sprintf("grad%d", i)].Float64s()
		orig := in.Clone()
		x := in.Float64s()
		for j := range x {
			x[j] = orig.Float64s()[j] + h
			up := lossAt()
			x[j] = orig.Float64s()[j] - h
			down := lossAt()
			x[j] = orig.Float64s()[j]
			want := (up - down) / (2 * h)
			worst = max(worst, math.Abs(got[j]-want))
			if !GradClose(got[j], want, abs, rel) {
				t.Errorf("%s: d/dx%d[%d] = %.9g (autodiff), %.9g (central difference)", c.Name, i, j, got[j], want)
			}
		}
	}
	t.Logf("%s: max |autodiff − central difference| = %.3g (tolerance %g absolute or %g relative)", c.Name, worst, abs, rel)
}

// GradClose is CheckGradients' verdict on one derivative: both finite and
// |got−want| within abs, or within rel of the larger magnitude.
func GradClose(got, want, abs, rel float64) bool {
	return shareddata.Close(got, want, abs, rel) || shareddata.Close(want, got, abs, rel)
}

// GradStep builds f's output y for the float32 input x of shape xShape and
// the gradients d0, d1, … of Σ y∘r (r an input shaped like y) with respect
// to x and every parameter f asks for, which become float32 graph inputs
// named as asked; the products follow precision p.
func GradStep(name string, p graphs.MatMulPrecision, xShape graphs.Shape, f func(layers.Params, *graphs.Value) *graphs.Value) *graphs.Graph {
	g := graphs.New(name)
	g.SetMatMulPrecision(p)
	x := g.Input("x", tensors.Float32, xShape)
	var params []*graphs.Value
	get := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
		v := g.Input(name, tensors.Float32, shape)
		params = append(params, v)
		return v
	})
	y := f(get, x)
	loss := graphs.ReduceSumAll(graphs.Mul(y, g.Input("r", tensors.Float32, y.Shape)))
	g.Output("y", y)
	for i, d := range graphs.Gradients(loss, append([]*graphs.Value{x}, params...)...) {
		g.Output(fmt.Sprintf("d%d", i), d)
	}
	return g
}

// WantMissingKernel checks that g exports to ONNX that ONNX Runtime's CPU
// provider loads and type-checks, refusing it only for want of a kernel
// (as it refuses bfloat16 arithmetic, which only CUDA runs).
func WantMissingKernel(t testing.TB, g *graphs.Graph) {
	t.Helper()
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		t.Fatalf("export %s: %v", g.Name, err)
	}
	var ins []string
	for _, v := range g.Inputs() {
		ins = append(ins, v.Name())
	}
	_, outs := g.Outputs()
	s, err := Env(t).NewSession(g.Name, data, ins, outs)
	if err == nil {
		s.Close()
		t.Fatalf("%s: the CPU provider accepted it; want a missing-kernel refusal", g.Name)
	}
	if !strings.Contains(err.Error(), "Could not find an implementation") {
		t.Fatalf("%s on the CPU provider: %v; want only a missing-kernel refusal", g.Name, err)
	}
}

// WantBF16Close checks each float32 output of got (an emulated bfloat16
// graph's) against want (the float32 graph's) with BF16Close, logging the
// measured error.
func WantBF16Close(t testing.TB, label string, got, want map[string]*tensors.Tensor) {
	t.Helper()
	for name, w := range want {
		worst, scale, err := BF16Close(got[name], w)
		if err != nil {
			t.Errorf("%s%s: %v", label, name, err)
			continue
		}
		t.Logf("%s%s: max |Δ| %.3g of max |value| %.3g", label, name, worst, scale)
	}
}

// BF16Close measures got (an emulated bfloat16 result) against want (the
// float32 one): max |Δ| and max |want|. It fails unless both are finite, of
// one size, off by at most 3% of want's largest magnitude (bfloat16
// rounding carried through a few ops) and not equal, which would mean no
// rounding took place.
func BF16Close(got, want *tensors.Tensor) (worst, scale float64, err error) {
	worst, scale, err = shareddata.Diff(got, want)
	switch {
	case err != nil:
	case !(worst <= 0.03*scale) || worst == 0:
		err = fmt.Errorf("emulated bfloat16 differs from float32 by %.3g (max |value| %.3g); want bfloat16-sized, above 0", worst, scale)
	}
	return worst, scale, err
}
