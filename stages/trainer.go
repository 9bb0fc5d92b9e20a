package stages

import (
	"errors"
	"fmt"
	"math"
	"time"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// TrainSpec describes one training stage for the shared loop.
type TrainSpec struct {
	Name string
	// Params are the trainable parameters; Initial holds their starting
	// values (and may hold more: frozen weights the loss reads).
	Params  []train.Param
	Initial Weights
	// Loss builds a micro-batch's loss from the parameters (trainable ones
	// through p) and the micro-batch [MicroBatch, SeqLen+1] (int64 ids).
	Loss train.LossFunc
	// Optimisation.
	Opt      train.AdamW
	LR       float64
	Schedule Schedule
	// Shape of the work.
	Steps        int
	MicroBatches int // per optimizer step
	MicroBatch   int
	SeqLen       int
	// EvalEvery evaluates the loss on ValBatches held-out windows every so
	// many steps (0: only at the end).
	EvalEvery       int
	EvalWindows     int
	CheckpointEvery int
	// StepsPerRun optimizer steps run inside one session run (1: one run
	// per step); more keeps the state on the device between steps.
	StepsPerRun int
	// Precision of the step graph's products: "" or "fp32", or "bf16"
	// (bfloat16 products with float32 parameters and optimizer state;
	// emulated on the CPU provider, which has no bfloat16 kernels).
	Precision string
}

// TrainResult summarises a finished training stage.
type TrainResult struct {
	Steps        int
	Tokens       int64
	FirstLoss    float64
	LastLoss     float64
	ValLoss      float64 // final held-out loss of the stage objective
	FirstValLoss float64 // held-out loss before the first step (fresh start only)
	Seconds      float64
	Weights      Weights // final trainable parameters
	Losses       []float64
}

// Train runs spec to completion, resuming from the newest checkpoint.
func (e *Env) Train(spec TrainSpec) (*TrainResult, error) {
	wrap := func(err error) error { return fmt.Errorf("stage %s: %w", spec.Name, err) }
	if err := spec.Schedule.Validate(); err != nil {
		return nil, wrap(err)
	}
	perRun := max(1, spec.StepsPerRun)
	runners := map[int]*stepRunner{}
	defer func() {
		for _, r := range runners {
			r.sess.Close()
		}
	}()
	runner := func(n int) (*stepRunner, error) {
		if r, ok := runners[n]; ok {
			return r, nil
		}
		r, err := e.newStepRunner(spec, n)
		if err == nil {
			runners[n] = r
		}
		return r, err
	}
	if _, err := runner(min(perRun, spec.Steps)); err != nil {
		return nil, wrap(err)
	}
	ev, err := e.newEvaluator(spec)
	if err != nil {
		return nil, wrap(err)
	}
	defer ev.close()

	// State: parameters and moments, fresh or from the newest checkpoint.
	state := Weights{}
	meta := Meta{LRFactor: 1, Seed: e.Seed}
	start := 0
	res := &TrainResult{}
	if step, t, m, ok, err := e.Ckpt.Latest(); err != nil {
		return nil, wrap(err)
	} else if ok {
		state, meta, start = t, m, step
		e.Log.Printf("stage %s: resuming at step %d/%d", spec.Name, step, spec.Steps)
	} else {
		for _, p := range spec.Params {
			w, ok := spec.Initial[p.Name]
			if !ok {
				return nil, wrap(fmt.Errorf("no initial value for parameter %s", p.Name))
			}
			state[p.Name] = w // never written to: runs return new tensors
			state[train.ExpAvg(p.Name)] = tensors.Zeros(tensors.Float32, w.Shape...)
			state[train.ExpAvgSq(p.Name)] = tensors.Zeros(tensors.Float32, w.Shape...)
		}
		v, err := ev.loss(state)
		if err != nil {
			return nil, wrap(err)
		}
		res.FirstValLoss = v
		e.Log.Metric(map[string]any{"stage": spec.Name, "step": 0, "val_loss": v})
	}
	res.Steps, res.Tokens = spec.Steps, int64(spec.Steps)*spec.tokensPerStep()
	if start >= spec.Steps {
		res.Weights, res.ValLoss = params(state, spec.Params), meta.ValLoss
		return res, nil
	}
	sampler, err := data.NewSampler(e.TrainData, spec.SeqLen, spec.MicroBatch, e.Seed)
	if err != nil {
		return nil, wrap(err)
	}
	tokensPerStep := spec.tokensPerStep()
	bar := e.Log.Progress("stage "+spec.Name, spec.Steps)
	defer bar.Done()
	bar.Set(start, "")
	t0 := time.Now()
	lastCkpt := start
	save := func(step int) error {
		meta.Step, meta.Tokens, meta.DataIndex = step, int64(step)*tokensPerStep, int64(step*spec.MicroBatches)
		lastCkpt = step
		return e.Ckpt.Save(step, state, meta)
	}
	crosses := func(every, from, to int) bool { return every > 0 && to/every > from/every }
	// Between runs the state lives in dev (values resident on the device)
	// or, when dev is empty, in state.
	dev := map[string]*runtime.Resident{}
	defer func() { releaseAll(dev) }()
	toHost := func() error {
		for k, r := range dev {
			t, err := e.Runtime.Fetch(r)
			if err != nil {
				return fmt.Errorf("copy %s from the device: %w", k, err)
			}
			state[k] = t
		}
		releaseAll(dev)
		return nil
	}
	for step := start; step < spec.Steps; {
		if err := e.Ctx.Err(); err != nil {
			if err := toHost(); err != nil {
				return nil, wrap(err)
			}
			if step > lastCkpt {
				if err := save(step); err != nil {
					return nil, wrap(err)
				}
			}
			e.Log.Printf("stage %s: interrupted at step %d; checkpoint saved — run the same command again to resume", spec.Name, step)
			return nil, wrap(ErrInterrupted)
		}
		n := min(perRun, spec.Steps-step)
		r, err := runner(n)
		if err != nil {
			return nil, wrap(err)
		}
		lrs := make([]float32, n)
		for i := range lrs {
			lrs[i] = float32(spec.LR * meta.LRFactor * spec.Schedule.Factor(step+i))
		}
		if FaultHook != nil {
			FaultHook(spec.Name, step, lrs)
		}
		next := step + n
		// The state comes back to the host when a checkpoint, an evaluation
		// or the end follows this run.
		keep := !e.StateOnHost && next < spec.Steps && !crosses(spec.CheckpointEvery, step, next) && !crosses(spec.EvalEvery, step, next)
		ts := time.Now()
		got, kept, err := r.run(state, dev, stack(sampler, int64(step*spec.MicroBatches), n*spec.MicroBatches, n), lrs, step, keep)
		if err != nil {
			return nil, wrap(fmt.Errorf("step %d: %w", step+1, err))
		}
		dt := time.Since(ts).Seconds() / float64(n)
		finite := got[train.FiniteName].Bools()
		good := 0
		for good < n && finite[good] {
			good++
		}
		releaseAll(dev)
		for _, p := range spec.Params { // the state after the last good step
			for _, name := range []string{p.Name, train.ExpAvg(p.Name), train.ExpAvgSq(p.Name)} {
				if keep {
					dev[name] = kept[train.New(name)]
				} else {
					state[name] = got[train.New(name)]
				}
			}
		}
		losses := got[train.LossName].Float32s()
		norms := got[train.GradNormName].Float32s()
		for i := 0; i < good; i++ {
			loss := mean(losses[i*spec.MicroBatches : (i+1)*spec.MicroBatches])
			if step+i == 0 {
				res.FirstLoss = loss
			}
			res.LastLoss = loss
			res.Losses = append(res.Losses, loss)
			m := map[string]any{"stage": spec.Name, "step": step + i + 1, "tokens": int64(step+i+1) * tokensPerStep,
				"loss": loss, "lr": float64(lrs[i]), "grad_norm": float64(norms[i]),
				"tokens_per_s": float64(tokensPerStep) / dt, "rss_bytes": rss()}
			if i == good-1 && (crosses(spec.EvalEvery, step, step+good) || step+good == spec.Steps) {
				v, err := ev.loss(state)
				if err != nil {
					return nil, wrap(err)
				}
				m["val_loss"] = v
				meta.ValLoss = v
				if meta.BestValLoss == 0 || v < meta.BestValLoss {
					meta.BestValLoss = v
				}
			}
			e.Log.Metric(m)
			bar.Set(step+i+1, fmt.Sprintf("loss %.4g  %.0f tok/s  %s", loss, float64(tokensPerStep)/dt, HumanBytes(rss())))
		}
		if good < n {
			bad := step + good
			nf := &NonFiniteError{Stage: spec.Name, Step: bad + 1, Tensor: firstNonFinite(got, good, spec)}
			if e.NonFinite != "rollback" || meta.Rollbacks >= e.MaxRollbacks {
				if e.NonFinite == "rollback" {
					nf.Rollbacks = meta.Rollbacks
				}
				return nil, nf
			}
			lstep, t, m, ok, err := e.Ckpt.Latest()
			if err != nil || !ok {
				return nil, errors.Join(nf, fmt.Errorf("no checkpoint to roll back to"))
			}
			m.Rollbacks = meta.Rollbacks + 1
			m.LRFactor = meta.LRFactor * e.RollbackLRFactor
			e.Log.Printf("%v; rolling back to step %d with learning rate ×%g", nf, lstep, m.LRFactor)
			releaseAll(dev)
			state, meta, step = t, m, lstep
			continue
		}
		if next == spec.Steps || crosses(spec.CheckpointEvery, step, next) {
			if err := save(next); err != nil {
				return nil, wrap(err)
			}
		}
		step = next
	}
	res.Seconds = time.Since(t0).Seconds()
	res.ValLoss = meta.ValLoss
	res.Weights = params(state, spec.Params)
	return res, nil
}

func (s TrainSpec) tokensPerStep() int64 { return int64(s.MicroBatches * s.MicroBatch * s.SeqLen) }

// stepRunner is a step graph for n steps per run and its session.
type stepRunner struct {
	g    *graphs.Graph
	sess *runtime.Session
}

func (e *Env) newStepRunner(spec TrainSpec, n int) (*stepRunner, error) {
	g, err := stepGraph(spec, n, e.matmulPrecision(spec.Precision))
	if err != nil {
		return nil, err
	}
	sess, err := e.session(g)
	if err != nil {
		return nil, err
	}
	return &stepRunner{g: g, sess: sess}, nil
}

// stepGraph is spec's step graph for n steps per run, its products
// computed as p.
func stepGraph(spec TrainSpec, n int, p graphs.MatMulPrecision) (*graphs.Graph, error) {
	name := fmt.Sprintf("%s_step%d", spec.Name, n)
	return buildGraph(name, func() *graphs.Graph {
		return train.Build(train.Spec{
			Name: name, Params: spec.Params, DType: tensors.Float32, StepsPerRun: n,
			MicroBatches: spec.MicroBatches, BatchDType: tensors.Int64,
			BatchShape: graphs.S(spec.MicroBatch, spec.SeqLen+1), Loss: spec.Loss, Opt: spec.Opt,
			Precision: p,
		})
	})
}

// matmulPrecision maps a precision name to the graph setting for the
// runtime's provider: NativePrecision, emulated on the CPU provider, which
// has no bfloat16 kernels.
func (e *Env) matmulPrecision(name string) graphs.MatMulPrecision {
	p := NativePrecision(name)
	if p == graphs.MatMulBFloat16 && e.Runtime.Provider() == runtime.ProviderCPU {
		return graphs.MatMulBFloat16Emulated
	}
	return p
}

// NativePrecision is the graph setting of a precision name on a provider
// with bfloat16 kernels (CUDA).
func NativePrecision(name string) graphs.MatMulPrecision {
	if name == PrecisionBF16 {
		return graphs.MatMulBFloat16
	}
	return graphs.MatMulFloat32
}

// Precision names of TrainSpec.Precision.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
)

// KnownPrecision reports whether name is one of the precision names.
func KnownPrecision(name string) bool { return name == PrecisionFP32 || name == PrecisionBF16 }

// run performs the runner's steps from step (0-based) on batches. The
// state is read from dev where it is resident there, else from state. With
// keep, the new parameters and moments stay resident and come back in kept;
// every other output comes back to the host.
func (r *stepRunner) run(state Weights, dev map[string]*runtime.Resident, batches *tensors.Tensor, lrs []float32, step int,
	keep bool) (host map[string]*tensors.Tensor, kept map[string]*runtime.Resident, err error) {
	byName := Weights{train.BatchName: batches,
		train.LRName:   tensors.FromFloat32([]int64{int64(len(lrs))}, lrs),
		train.StepName: tensors.FromFloat32([]int64{1}, []float32{float32(step + 1)})}
	for k, v := range state {
		byName[k] = v
	}
	in := make([]runtime.Feed, len(r.g.Inputs()))
	for i, v := range r.g.Inputs() {
		if d, ok := dev[v.Name()]; ok {
			in[i].Resident = d
		} else if t, ok := byName[v.Name()]; ok {
			in[i].Host = t
		} else {
			return nil, nil, fmt.Errorf("graph %s: no value for input %s", r.g.Name, v.Name())
		}
	}
	_, names := r.g.Outputs()
	keepOut := make([]bool, len(names))
	for j, n := range names {
		keepOut[j] = keep && train.IsState(n)
	}
	out, res, err := r.sess.RunResident(in, keepOut)
	if err != nil {
		return nil, nil, err
	}
	host, kept = map[string]*tensors.Tensor{}, map[string]*runtime.Resident{}
	for j, n := range names {
		if keepOut[j] {
			kept[n] = res[j]
		} else {
			host[n] = out[j]
		}
	}
	return host, kept, nil
}

func releaseAll(dev map[string]*runtime.Resident) {
	for k, r := range dev {
		r.Release()
		delete(dev, k)
	}
}

func params(state Weights, ps []train.Param) Weights {
	out := Weights{}
	for _, p := range ps {
		out[p.Name] = state[p.Name]
	}
	return out
}

func outputsByName(g *graphs.Graph, out []*tensors.Tensor) map[string]*tensors.Tensor {
	_, names := g.Outputs()
	m := make(map[string]*tensors.Tensor, len(names))
	for i, n := range names {
		m[n] = out[i]
	}
	return m
}

// firstNonFinite names what went wrong in step i of a run's outputs.
func firstNonFinite(got map[string]*tensors.Tensor, i int, spec TrainSpec) string {
	k := spec.MicroBatches
	for _, l := range got[train.LossName].Float32s()[i*k : (i+1)*k] {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			return "loss"
		}
	}
	p := len(spec.Params)
	for j, s := range got[train.GradSumSqName].Float32s()[i*p : (i+1)*p] {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return "gradient of " + spec.Params[j].Name
		}
	}
	return "gradient norm"
}

// stack gathers k consecutive sampler batches into [runs, k/runs, B, T+1].
func stack(s *data.Sampler, first int64, k, runs int) *tensors.Tensor {
	var parts []*tensors.Tensor
	for i := 0; i < k; i++ {
		parts = append(parts, s.Batch(first+int64(i)))
	}
	return tensors.Join(append([]int64{int64(runs), int64(k / runs)}, parts[0].Shape...), parts...)
}

func mean(x []float32) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v)
	}
	return s / float64(len(x))
}

// evaluator computes the stage objective on fixed held-out windows.
type evaluator struct {
	e       *Env
	g       *graphs.Graph
	sess    *runtime.Session
	windows []*tensors.Tensor // [MicroBatch, SeqLen+1] each
	names   []string
}

func (e *Env) newEvaluator(spec TrainSpec) (*evaluator, error) {
	if spec.EvalWindows <= 0 || e.ValData == nil {
		return &evaluator{e: e}, nil
	}
	n := spec.EvalWindows
	all, err := data.EvalWindows(e.ValData, spec.SeqLen, n)
	if err != nil {
		return nil, err
	}
	mb := spec.MicroBatch
	ev := &evaluator{e: e}
	for i := 0; i+mb <= n; i += mb {
		ev.windows = append(ev.windows, sliceRows(all, i, i+mb))
	}
	if len(ev.windows) == 0 {
		ev.windows = append(ev.windows, all)
		mb = n
	}
	var params *layers.Inputs
	g, err := build(spec.Name+"_eval", func(g *graphs.Graph) {
		params = &layers.Inputs{G: g, DType: tensors.Float32}
		batch := g.Input(train.BatchName, tensors.Int64, graphs.S(mb, spec.SeqLen+1))
		for _, p := range spec.Params {
			params.Get(p.Name, p.Shape)
		}
		loss := spec.Loss(g, params, batch)
		g.Output(train.LossName, graphs.Reshape(loss, 1))
	})
	if err != nil {
		return nil, err
	}
	ev.g, ev.names = g, params.Names()
	if ev.sess, err = e.session(g); err != nil {
		return nil, err
	}
	return ev, nil
}

// loss is the mean objective over the held-out windows (0 when disabled).
func (ev *evaluator) loss(state Weights) (float64, error) {
	if ev.sess == nil {
		return 0, nil
	}
	tot := 0.0
	for _, w := range ev.windows {
		byName := Weights{train.BatchName: w}
		for _, n := range ev.names {
			byName[n] = state[n]
		}
		in, err := feeds(ev.g, byName)
		if err != nil {
			return 0, err
		}
		out, err := ev.sess.Run(in)
		if err != nil {
			return 0, err
		}
		tot += float64(out[0].Float32s()[0])
	}
	return tot / float64(len(ev.windows)), nil
}

func (ev *evaluator) close() {
	if ev.sess != nil {
		ev.sess.Close()
	}
}

// sliceRows copies rows [a, b) of a 2-D int64 tensor.
func sliceRows(t *tensors.Tensor, a, b int) *tensors.Tensor {
	w := int(t.Shape[1])
	return tensors.FromInt64([]int64{int64(b - a), int64(w)}, t.Int64s()[a*w:b*w])
}
