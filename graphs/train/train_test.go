package train_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// A linear least-squares problem whose gradient is easy to write by hand:
// loss = mean over rows of (x·w + b − y)², batch rows are [x0 x1 x2 y].
const nIn = 3

func lossFn(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value {
	w := p.Get("w", graphs.S(nIn, 1))
	b := p.Get("b", graphs.S(1))
	x := graphs.SliceAxis(batch, 1, 0, nIn)
	y := graphs.SliceAxis(batch, 1, nIn, nIn+1)
	var loss *graphs.Value
	// One recomputation segment, which only Spec.Recompute turns on.
	g.Recomputed(func() {
		d := graphs.Sub(graphs.Add(graphs.MatMul(x, w), b), y)
		loss = graphs.ReduceMeanAll(graphs.Mul(d, d))
	})
	return loss
}

// reference is an independent float64 AdamW (PyTorch semantics) with
// global-norm clipping and gradient accumulation over micro-batches.
type reference struct {
	w    []float64 // nIn weights then the bias
	m, v []float64
	opt  train.AdamW
}

func (r *reference) step(micro [][][]float64, lr float64, t int) {
	g := make([]float64, nIn+1)
	for _, rows := range micro {
		for _, row := range rows {
			pred := r.w[nIn]
			for i := 0; i < nIn; i++ {
				pred += row[i] * r.w[i]
			}
			d := 2 * (pred - row[nIn]) / float64(len(rows)) / float64(len(micro))
			for i := 0; i < nIn; i++ {
				g[i] += d * row[i]
			}
			g[nIn] += d
		}
	}
	norm := 0.0
	for _, x := range g {
		norm += x * x
	}
	norm = math.Sqrt(norm)
	if r.opt.ClipNorm > 0 {
		c := math.Min(1, r.opt.ClipNorm/(norm+1e-6))
		for i := range g {
			g[i] *= c
		}
	}
	b1, b2 := r.opt.Beta1, r.opt.Beta2
	for i := range r.w {
		if i < nIn { // the bias is not decayed
			r.w[i] *= 1 - lr*r.opt.WeightDecay
		}
		r.m[i] = b1*r.m[i] + (1-b1)*g[i]
		r.v[i] = b2*r.v[i] + (1-b2)*g[i]*g[i]
		denom := math.Sqrt(r.v[i])/math.Sqrt(1-math.Pow(b2, float64(t))) + r.opt.Eps
		r.w[i] -= lr / (1 - math.Pow(b1, float64(t))) * r.m[i] / denom
	}
}

func TestStepsMatchReference(t *testing.T) {
	const steps, k, rows = 3, 2, 4
	opt := train.AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 0.5}
	for _, run := range []struct {
		perRun             int
		recompute, inPlace bool
	}{{1, false, false}, {3, false, false}, {3, true, false}, {1, false, true}, {3, false, true}, {3, true, true}} {
		perRun := run.perRun
		rng := rand.New(rand.NewPCG(1, 2))
		batches := make([][][][]float64, steps)
		flat := []float64{}
		for s := range batches {
			batches[s] = make([][][]float64, k)
			for j := range batches[s] {
				for r := 0; r < rows; r++ {
					row := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
					batches[s][j] = append(batches[s][j], row)
					flat = append(flat, row...)
				}
			}
		}
		ref := &reference{w: []float64{0.3, -0.2, 0.1, 0.05}, m: make([]float64, 4), v: make([]float64, 4), opt: opt}
		lrs := []float64{1e-2, 2e-2, 5e-3}
		for s := 0; s < steps; s++ {
			ref.step(batches[s], lrs[s], s+1)
		}
		var g *graphs.Graph
		if err := graphs.Try(func() {
			g = train.Build(train.Spec{Name: "lsq", DType: tensors.Float64, StepsPerRun: perRun, MicroBatches: k,
				Params:     []train.Param{{Name: "w", Shape: graphs.S(nIn, 1), Decay: true}, {Name: "b", Shape: graphs.S(1)}},
				BatchDType: tensors.Float64, BatchShape: graphs.S(rows, nIn+1), Loss: lossFn, Opt: opt, Recompute: run.recompute,
				InPlace: run.inPlace})
		}); err != nil {
			t.Fatal(err)
		}
		s := graphtest.Session(t, g)
		run := stepRun{inPlace: run.inPlace, perRun: perRun, recompute: run.recompute}
		state := map[string]*tensors.Tensor{
			"w": tensors.FromFloat64([]int64{nIn, 1}, []float64{0.3, -0.2, 0.1}), "b": tensors.FromFloat64([]int64{1}, []float64{0.05}),
		}
		for _, n := range []string{"w", "b"} {
			state[train.ExpAvg(n)] = tensors.Zeros(tensors.Float64, state[n].Shape...)
			state[train.ExpAvgSq(n)] = tensors.Zeros(tensors.Float64, state[n].Shape...)
		}
		per := k * rows * (nIn + 1)
		for first := 0; first < steps; first += perRun {
			feeds := map[string]*tensors.Tensor{
				train.BatchName: tensors.FromFloat64([]int64{int64(perRun), k, rows, nIn + 1}, flat[first*per:(first+perRun)*per]),
				train.LRName:    tensors.FromFloat64([]int64{int64(perRun)}, lrs[first:first+perRun]),
				train.StepName:  tensors.FromFloat64([]int64{1}, []float64{float64(first + 1)}),
			}
			out := run.step(t, s, g, state, feeds)
			for _, f := range out[train.FiniteName].Bools() {
				if !f {
					t.Fatalf("a finite step was reported non-finite")
				}
			}
		}
		run.finish(t, state)
		got := append(append([]float64{}, state["w"].Float64s()...), state["b"].Float64s()...)
		for i := range got {
			if !(math.Abs(got[i]-ref.w[i]) <= 1e-12) {
				t.Errorf("%v: parameter %d = %.15g, reference %.15g", run, i, got[i], ref.w[i])
			}
		}
	}
}

// stepRun runs a step graph's runs one after another: out of place, each
// run's New outputs become the state; in place, the state is uploaded once,
// fed as resident values to every run and fetched by finish.
type stepRun struct {
	inPlace, recompute bool
	perRun             int
	env                *runtime.Env // nil: graphtest.Env
	dev                map[string]*runtime.Resident
}

func (r *stepRun) envOf(t *testing.T) *runtime.Env {
	if r.env == nil {
		r.env = graphtest.Env(t)
	}
	return r.env
}

func (r stepRun) String() string {
	return fmt.Sprintf("steps per run %d, recompute %v, in place %v", r.perRun, r.recompute, r.inPlace)
}

func (r *stepRun) step(t *testing.T, s *runtime.Session, g *graphs.Graph, state, feeds map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	if !r.inPlace {
		for n, v := range state {
			feeds[n] = v
		}
		out := graphtest.RunSession(t, s, g, feeds)
		for n := range state {
			state[n] = out[train.New(n)]
		}
		return out
	}
	env := r.envOf(t)
	if r.dev == nil {
		r.dev = map[string]*runtime.Resident{}
		for n, v := range state {
			d, err := env.Upload(v)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Release)
			r.dev[n] = d
		}
	}
	var in []runtime.Feed
	for _, v := range g.Inputs() {
		if d, ok := r.dev[v.Name()]; ok {
			in = append(in, runtime.Feed{Resident: d})
		} else {
			in = append(in, runtime.Feed{Host: feeds[v.Name()]})
		}
	}
	_, names := g.Outputs()
	host, _, err := s.RunResident(in, make([]bool, len(names)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tensors.Tensor{}
	for j, n := range names {
		if train.IsState(n) {
			t.Fatalf("an in-place step graph has the state output %s", n)
		}
		out[n] = host[j]
	}
	return out
}

// finish fetches the resident state of an in-place run into state.
func (r *stepRun) finish(t *testing.T, state map[string]*tensors.Tensor) {
	t.Helper()
	for n, d := range r.dev {
		v, err := r.envOf(t).Fetch(d)
		if err != nil {
			t.Fatal(err)
		}
		state[n] = v
	}
}

// TestNonFiniteStepIsNotApplied poisons the second of three steps: the
// graph reports it and every later step of the run as not applied, and
// returns the state after the first step.
func TestNonFiniteStepIsNotApplied(t *testing.T) {
	const rows = 2
	for _, inPlace := range []bool{false, true} {
		var g *graphs.Graph
		if err := graphs.Try(func() {
			g = train.Build(train.Spec{Name: "nan", DType: tensors.Float64, StepsPerRun: 3, MicroBatches: 1,
				Params:     []train.Param{{Name: "w", Shape: graphs.S(nIn, 1), Decay: true}, {Name: "b", Shape: graphs.S(1)}},
				BatchDType: tensors.Float64, BatchShape: graphs.S(rows, nIn+1), Loss: lossFn, Opt: train.DefaultAdamW(),
				InPlace: inPlace})
		}); err != nil {
			t.Fatal(err)
		}
		batch := make([]float64, 3*rows*(nIn+1))
		for i := range batch {
			batch[i] = 0.5
		}
		batch[rows*(nIn+1)] = math.NaN() // step 2
		feeds := map[string]*tensors.Tensor{
			train.BatchName: tensors.FromFloat64([]int64{3, 1, rows, nIn + 1}, batch),
			train.LRName:    tensors.FromFloat64([]int64{3}, []float64{0.1, 0.1, 0.1}),
			train.StepName:  tensors.FromFloat64([]int64{1}, []float64{1}),
		}
		state := map[string]*tensors.Tensor{"w": tensors.FromFloat64([]int64{nIn, 1}, []float64{1, 2, 3}), "b": tensors.FromFloat64([]int64{1}, []float64{0})}
		for _, n := range []string{"w", "b"} {
			state[train.ExpAvg(n)] = tensors.Zeros(tensors.Float64, state[n].Shape...)
			state[train.ExpAvgSq(n)] = tensors.Zeros(tensors.Float64, state[n].Shape...)
		}
		run := stepRun{inPlace: inPlace, perRun: 3}
		out := run.step(t, graphtest.Session(t, g), g, state, feeds)
		run.finish(t, state)
		if got := out[train.FiniteName].Bools(); !got[0] || got[1] || got[2] {
			t.Fatalf("%v: finite = %v, want [true false false]", run, got)
		}
		// After one good step every weight moved by about lr (Adam's first step).
		for i, w := range state["w"].Float64s() {
			if d := float64(i+1) - w; !(d >= 0.05 && d <= 0.15) {
				t.Errorf("%v: w[%d] = %g after one step from %d", run, i, w, i+1)
			}
		}
	}
}

// TestInPlaceMatchesOutOfPlace runs two runs of three float32 steps of two
// micro-batches each, in place and out of place, on the CPU and (with
// MOHAWK_TEST_CUDA set) on the GPU, where the state is resident in GPU
// memory and the Loop's body updates it from outside: the parameters and
// moments must agree bit for bit. An update that landed in a copy ONNX
// Runtime made of an input would leave the in-place state unchanged.
func TestInPlaceMatchesOutOfPlace(t *testing.T) {
	const rows, perRun, k = 8, 3, 2
	for _, c := range []struct {
		name string
		env  func(testing.TB) *runtime.Env
	}{{"cpu", graphtest.Env}, {"cuda", graphtest.CUDAEnv}} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			rng := rand.New(rand.NewPCG(5, 6))
			flat := make([]float32, 2*perRun*k*rows*(nIn+1))
			for i := range flat {
				flat[i] = float32(rng.NormFloat64())
			}
			final := map[bool]map[string]*tensors.Tensor{}
			for _, inPlace := range []bool{false, true} {
				var g *graphs.Graph
				if err := graphs.Try(func() {
					g = train.Build(train.Spec{Name: "lsq32", DType: tensors.Float32, StepsPerRun: perRun, MicroBatches: k,
						Params:     []train.Param{{Name: "w", Shape: graphs.S(nIn, 1), Decay: true}, {Name: "b", Shape: graphs.S(1)}},
						BatchDType: tensors.Float32, BatchShape: graphs.S(rows, nIn+1), Loss: lossFn, Opt: train.DefaultAdamW(),
						InPlace: inPlace})
				}); err != nil {
					t.Fatal(err)
				}
				s := graphtest.SessionOn(t, env, g)
				state := map[string]*tensors.Tensor{
					"w": tensors.FromFloat32([]int64{nIn, 1}, []float32{0.3, -0.2, 0.1}), "b": tensors.FromFloat32([]int64{1}, []float32{0.05}),
				}
				for _, n := range []string{"w", "b"} {
					state[train.ExpAvg(n)] = tensors.Zeros(tensors.Float32, state[n].Shape...)
					state[train.ExpAvgSq(n)] = tensors.Zeros(tensors.Float32, state[n].Shape...)
				}
				run := stepRun{inPlace: inPlace, perRun: perRun, env: env}
				per := perRun * k * rows * (nIn + 1)
				for i := 0; i < 2; i++ {
					feeds := map[string]*tensors.Tensor{
						train.BatchName: tensors.FromFloat32([]int64{perRun, k, rows, nIn + 1}, flat[i*per:(i+1)*per]),
						train.LRName:    tensors.FromFloat32([]int64{perRun}, []float32{1e-2, 2e-2, 5e-3}),
						train.StepName:  tensors.FromFloat32([]int64{1}, []float32{float32(i*perRun + 1)}),
					}
					run.step(t, s, g, state, feeds)
				}
				run.finish(t, state)
				final[inPlace] = state
			}
			for n, want := range final[false] {
				got := final[true][n]
				if string(got.Data) != string(want.Data) {
					t.Errorf("%s in place %v, out of place %v", n, got.Float32s(), want.Float32s())
				}
			}
			if w := final[true]["w"].Float32s(); w[0] == 0.3 {
				t.Error("w[0] did not move")
			}
		})
	}
}
