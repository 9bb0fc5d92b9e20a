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
	// AllReduce averages each step's gradients over the data-parallel
	// group registered with mohawk/runtime (nil: none; train.AllReduce).
	AllReduce *train.AllReduce
	// Recompute recomputes each layer's forward in the backward pass
	// (train.Spec.Recompute).
	Recompute bool
	// MatrixKernels lets Stage 1 use its fused [T, T] kernels
	// (train.Spec.MatrixKernels).
	MatrixKernels bool
	// BlockKernels are the blocks' fused plumbing kernels the step may use
	// (train.Spec.BlockKernels).
	BlockKernels graphs.BlockKernel
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
// Errors name the stage; a *NonFiniteError already does and comes back as
// it is.
func (e *Env) Train(spec TrainSpec) (*TrainResult, error) {
	res, err := e.train(spec)
	var nf *NonFiniteError
	if err != nil && !errors.As(err, &nf) {
		return nil, fmt.Errorf("stage %s: %w", spec.Name, err)
	}
	return res, err
}

// trainer is one run of Train: its sessions, and the state between runs.
type trainer struct {
	e       *Env
	spec    TrainSpec
	share   share               // this rank's micro-batches of every step
	perRun  int                 // optimizer steps per session run
	runners map[int]*stepRunner // by steps per run
	ev      *evaluator
	sampler *data.Sampler
	bar     Progress
	res     *TrainResult
	// state holds the parameters and optimizer moments between runs,
	// except those resident in dev (the runtime's device memory).
	state    Weights
	dev      map[string]Resident
	meta     Meta
	lastCkpt int // step of the last checkpoint this run saved or resumed from
}

// train is Train without the stage name on its errors: it opens the
// sessions, resumes, runs the remaining steps and collects the result.
func (e *Env) train(spec TrainSpec) (*TrainResult, error) {
	if err := spec.Schedule.Validate(); err != nil {
		return nil, err
	}
	sh, err := e.shareOf(spec)
	if err != nil {
		return nil, err
	}
	t := &trainer{e: e, spec: spec, share: sh, perRun: max(1, spec.StepsPerRun), runners: map[int]*stepRunner{},
		dev: map[string]Resident{}, res: &TrainResult{}}
	if sh.ranks > 1 {
		e.Log.Printf("stage %s: data parallel, rank %d of %d runs micro-batches %d-%d of every step's %d", spec.Name, sh.rank, sh.ranks, sh.lo, sh.lo+sh.k-1, spec.MicroBatches)
	}
	defer t.close()
	if err := t.open(); err != nil {
		return nil, err
	}
	start, err := t.resume()
	if err != nil {
		return nil, err
	}
	t.res.Steps, t.res.Tokens = spec.Steps, int64(spec.Steps)*spec.tokensPerStep()
	if start < spec.Steps {
		if err := t.loop(start); err != nil {
			return nil, err
		}
	}
	t.res.ValLoss = t.meta.ValLoss
	t.res.Weights = params(t.state, spec.Params)
	return t.res, nil
}

// open builds the step graph of the first run and the evaluator, so a
// graph that cannot be built fails before any state is touched.
func (t *trainer) open() error {
	if _, err := t.runner(min(t.perRun, t.spec.Steps)); err != nil {
		return err
	}
	ev, err := t.e.newEvaluator(t.spec)
	t.ev = ev
	return err
}

// close releases what the run holds on the runtime.
func (t *trainer) close() {
	releaseAll(t.dev)
	if t.bar != nil {
		t.bar.Done()
	}
	if t.ev != nil {
		t.ev.close()
	}
	for _, r := range t.runners {
		r.sess.Close()
	}
}

// runner is the step graph for n steps per run, built on first use.
func (t *trainer) runner(n int) (*stepRunner, error) {
	if r, ok := t.runners[n]; ok {
		return r, nil
	}
	r, err := t.e.newStepRunner(t.share.stepSpec(t.spec), n)
	if err == nil {
		t.runners[n] = r
	}
	return r, err
}

// resume loads the newest checkpoint, or the initial state when there is
// none, and returns the step to continue from.
func (t *trainer) resume() (int, error) {
	t.meta = Meta{LRFactor: 1, Seed: t.e.Seed}
	step, state, meta, ok, err := t.e.Ckpt.Latest()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, t.fresh()
	}
	t.state, t.meta, t.lastCkpt = state, meta, step
	t.e.Log.Printf("stage %s: resuming at step %d/%d", t.spec.Name, step, t.spec.Steps)
	return step, nil
}

// fresh starts from the initial parameters with zero moments and records
// the held-out loss before the first step.
func (t *trainer) fresh() error {
	t.state = Weights{}
	for _, p := range t.spec.Params {
		w, ok := t.spec.Initial[p.Name]
		if !ok {
			return fmt.Errorf("no initial value for parameter %s", p.Name)
		}
		t.state[p.Name] = w // never written to: runs update an uploaded copy or return new tensors
		t.state[train.ExpAvg(p.Name)] = tensors.Zeros(tensors.Float32, w.Shape...)
		t.state[train.ExpAvgSq(p.Name)] = tensors.Zeros(tensors.Float32, w.Shape...)
	}
	v, err := t.ev.loss(t.state)
	if err != nil {
		return err
	}
	t.res.FirstValLoss = v
	t.e.Log.Metric(map[string]any{"stage": t.spec.Name, "step": 0, "val_loss": v})
	return nil
}

// loop runs the steps from start to the end, or until the context is
// cancelled.
func (t *trainer) loop(start int) error {
	sampler, err := data.NewSampler(t.e.TrainData, t.spec.SeqLen, t.spec.MicroBatch, t.e.Seed)
	if err != nil {
		return err
	}
	t.sampler = sampler
	t.bar = t.e.Log.Progress("stage "+t.spec.Name, t.spec.Steps)
	t.bar.Set(start, "")
	t0 := time.Now()
	for step := start; step < t.spec.Steps; {
		if t.e.Ctx.Err() != nil {
			return t.interrupt(step)
		}
		if step, err = t.advance(step); err != nil {
			return err
		}
	}
	t.res.Seconds = time.Since(t0).Seconds()
	return nil
}

// interrupt brings the state home, checkpoints it unless the last
// checkpoint is of this step, and reports ErrInterrupted.
func (t *trainer) interrupt(step int) error {
	if err := t.toHost(); err != nil {
		return err
	}
	if step > t.lastCkpt {
		if err := t.save(step); err != nil {
			return err
		}
	}
	t.e.Log.Printf("stage %s: interrupted at step %d; checkpoint saved — run the same command again to resume", t.spec.Name, step)
	return ErrInterrupted
}

// advance performs the next session run from step (0-based) and returns
// the step to continue from: the run's end, or a checkpoint's after a
// rollback.
func (t *trainer) advance(step int) (int, error) {
	n := min(t.perRun, t.spec.Steps-step)
	out, err := t.run(step, n)
	if err != nil {
		return 0, err
	}
	if err := t.record(out); err != nil {
		return 0, err
	}
	if out.good < n {
		return t.nonFinite(out)
	}
	next := step + n
	if next == t.spec.Steps || crosses(t.spec.CheckpointEvery, step, next) {
		if err := t.save(next); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// runOut is what one session run produced.
type runOut struct {
	step, n int // the run's first step (0-based) and its number of steps
	lrs     []float32
	got     map[string]*tensors.Tensor // the outputs that came back to the host
	good    int                        // leading steps whose values are finite
	secs    float64                    // per step
}

// run performs n steps from step in one session run and adopts the state
// after the last good one.
func (t *trainer) run(step, n int) (runOut, error) {
	r, err := t.runner(n)
	if err != nil {
		return runOut{}, err
	}
	lrs := t.rates(step, n)
	keep := t.keepResident(step, step+n)
	if t.e.inPlace() {
		if err := t.upload(); err != nil {
			return runOut{}, fmt.Errorf("step %d: %w", step+1, err)
		}
	}
	ts := time.Now()
	got, kept, err := r.run(t.state, t.dev, t.batches(step, n), lrs, step, keep)
	if err != nil {
		return runOut{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	if err := t.gatherLosses(got, n); err != nil {
		return runOut{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	out := runOut{step: step, n: n, lrs: lrs, got: got, secs: time.Since(ts).Seconds() / float64(n)}
	for finite := got[train.FiniteName].Bools(); out.good < n && finite[out.good]; {
		out.good++
	}
	if err := t.adopt(got, kept, keep); err != nil {
		return runOut{}, fmt.Errorf("step %d: %w", step+1, err)
	}
	return out, nil
}

// rates are the learning rates of steps [step, step+n).
func (t *trainer) rates(step, n int) []float32 {
	lrs := make([]float32, n)
	for i := range lrs {
		lrs[i] = float32(t.spec.LR * t.meta.LRFactor * t.spec.Schedule.Factor(step+i))
	}
	if FaultHook != nil {
		FaultHook(t.spec.Name, step, lrs)
	}
	return lrs
}

// keepResident reports whether the state may stay on the device after the
// run of steps [step, next): not when a checkpoint, an evaluation or the
// end follows it.
func (t *trainer) keepResident(step, next int) bool {
	return !t.e.StateOnHost && next < t.spec.Steps &&
		!crosses(t.spec.CheckpointEvery, step, next) && !crosses(t.spec.EvalEvery, step, next)
}

// inPlace reports whether step graphs update the state where it is fed
// (train.Spec.InPlace): always, except when the state goes back to the
// host after every run (StateOnHost, a benchmark's setting).
func (e *Env) inPlace() bool { return !e.StateOnHost }

// upload makes every parameter and moment that is not resident yet (at the
// start, after a resume or a rollback) a resident value, for an in-place
// step graph to update, and drops the host copies: until adopt copies the
// state back, the resident values are the state (on the CPU provider both
// would be host memory).
func (t *trainer) upload() error {
	for _, p := range t.spec.Params {
		for _, name := range []string{p.Name, train.ExpAvg(p.Name), train.ExpAvgSq(p.Name)} {
			if _, ok := t.dev[name]; !ok {
				r, err := t.e.Runtime.Upload(t.state[name])
				if err != nil {
					return fmt.Errorf("copy %s to the device: %w", name, err)
				}
				t.dev[name] = r
			}
			delete(t.state, name)
		}
	}
	return nil
}

// adopt makes a run's new parameters and moments the state: resident ones
// (kept) or host ones (got). In place, the resident state is already the
// new one; unless keep, it is copied to the host too (and stays resident).
func (t *trainer) adopt(got map[string]*tensors.Tensor, kept map[string]Resident, keep bool) error {
	if t.e.inPlace() {
		if keep {
			return nil
		}
		return t.fetchAll()
	}
	releaseAll(t.dev)
	for _, p := range t.spec.Params {
		for _, name := range []string{p.Name, train.ExpAvg(p.Name), train.ExpAvgSq(p.Name)} {
			if keep {
				t.dev[name] = kept[train.New(name)]
			} else {
				t.state[name] = got[train.New(name)]
			}
		}
	}
	return nil
}

// toHost copies the resident state into host memory and releases it.
func (t *trainer) toHost() error {
	if err := t.fetchAll(); err != nil {
		return err
	}
	releaseAll(t.dev)
	return nil
}

// fetchAll copies every resident value into host memory (state), keeping
// it resident.
func (t *trainer) fetchAll() error {
	for k, r := range t.dev {
		v, err := t.e.Runtime.Fetch(r)
		if err != nil {
			return fmt.Errorf("copy %s from the device: %w", k, err)
		}
		t.state[k] = v
	}
	return nil
}

// record logs the run's good steps, evaluating after the last of them when
// an evaluation falls due.
func (t *trainer) record(o runOut) error {
	losses := o.got[train.LossName].Float32s()
	norms := o.got[train.GradNormName].Float32s()
	k, tokens := t.spec.MicroBatches, t.spec.tokensPerStep()
	rate := float64(tokens) / o.secs
	for i := 0; i < o.good; i++ {
		done := o.step + i + 1 // steps done after this one
		loss := mean(losses[i*k : (i+1)*k])
		if done == 1 {
			t.res.FirstLoss = loss
		}
		t.res.LastLoss = loss
		t.res.Losses = append(t.res.Losses, loss)
		m := map[string]any{"stage": t.spec.Name, "step": done, "tokens": int64(done) * tokens,
			"loss": loss, "lr": float64(o.lrs[i]), "grad_norm": float64(norms[i]),
			"tokens_per_s": rate, "rss_bytes": rss()}
		if i == o.good-1 && (crosses(t.spec.EvalEvery, o.step, done) || done == t.spec.Steps) {
			v, err := t.evaluate()
			if err != nil {
				return err
			}
			m["val_loss"] = v
		}
		t.e.Log.Metric(m)
		t.bar.Set(done, fmt.Sprintf("loss %.4g  %.0f tok/s  %s", loss, rate, HumanBytes(rss())))
	}
	return nil
}

// evaluate computes the held-out loss of the current state and keeps it
// (and the best so far) in the checkpoint metadata.
func (t *trainer) evaluate() (float64, error) {
	v, err := t.ev.loss(t.state)
	if err != nil {
		return 0, err
	}
	t.meta.ValLoss = v
	if t.meta.BestValLoss == 0 || v < t.meta.BestValLoss {
		t.meta.BestValLoss = v
	}
	return v, nil
}

// nonFinite applies the policy to a run whose step o.step+o.good went
// non-finite: stop with a *NonFiniteError, or roll back to the newest
// checkpoint with a lowered learning rate while rollbacks are left.
func (t *trainer) nonFinite(o runOut) (int, error) {
	nf := &NonFiniteError{Stage: t.spec.Name, Step: o.step + o.good + 1, Tensor: firstNonFinite(o.got, o.good, t.spec, t.share)}
	if t.e.NonFinite != "rollback" {
		return 0, nf
	}
	if t.meta.Rollbacks >= t.e.MaxRollbacks {
		nf.Rollbacks = t.meta.Rollbacks
		return 0, nf
	}
	step, state, meta, ok, err := t.e.Ckpt.Latest()
	if err != nil {
		return 0, errors.Join(nf, fmt.Errorf("cannot read the checkpoint to roll back to: %w", err))
	}
	if !ok {
		return 0, errors.Join(nf, errors.New("no checkpoint to roll back to"))
	}
	meta.Rollbacks = t.meta.Rollbacks + 1
	meta.LRFactor = t.meta.LRFactor * t.e.RollbackLRFactor
	t.e.Log.Printf("%v; rolling back to step %d with learning rate ×%g", nf, step, meta.LRFactor)
	releaseAll(t.dev)
	t.state, t.meta = state, meta
	return step, nil
}

// save checkpoints the state as of step (which must be on the host).
func (t *trainer) save(step int) error {
	t.meta.Step, t.meta.Tokens = step, int64(step)*t.spec.tokensPerStep()
	t.meta.DataIndex = int64(step * t.spec.MicroBatches)
	t.lastCkpt = step
	return t.e.Ckpt.Save(step, t.state, t.meta)
}

// crosses reports whether a multiple of every lies in (from, to].
func crosses(every, from, to int) bool { return every > 0 && to/every > from/every }

func (s TrainSpec) tokensPerStep() int64 { return int64(s.MicroBatches * s.MicroBatch * s.SeqLen) }

// stepRunner is a step graph for n steps per run and its session.
type stepRunner struct {
	g    *graphs.Graph
	sess Session
}

func (e *Env) newStepRunner(spec TrainSpec, n int) (*stepRunner, error) {
	g, err := stepGraph(spec, n, e.matmulPrecision(spec.Precision), e.inPlace(), e.Runtime.Provider() == runtime.ProviderCPU)
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
// computed as p, updating in place where inPlace, built for the CPU
// provider where cpu (train.Spec.CPU).
func stepGraph(spec TrainSpec, n int, p graphs.MatMulPrecision, inPlace, cpu bool) (*graphs.Graph, error) {
	name := fmt.Sprintf("%s_step%d", spec.Name, n)
	return buildGraph(name, func() *graphs.Graph {
		return train.Build(train.Spec{
			Name: name, Params: spec.Params, DType: tensors.Float32, StepsPerRun: n,
			MicroBatches: spec.MicroBatches, BatchDType: tensors.Int64,
			BatchShape: graphs.S(spec.MicroBatch, spec.SeqLen+1), Loss: spec.Loss, Opt: spec.Opt,
			Precision: p, AllReduce: spec.AllReduce, Recompute: spec.Recompute, InPlace: inPlace, MatrixKernels: spec.MatrixKernels, BlockKernels: spec.BlockKernels, CPU: cpu,
		})
	})
}

// matmulPrecision maps a precision name to the graph setting for the
// runtime's provider: NativePrecision, emulated on the CPU provider, which
// has no bfloat16 kernels.
func (e *Env) matmulPrecision(name string) graphs.MatMulPrecision {
	return ProviderPrecision(name, e.Runtime.Provider())
}

// ProviderPrecision is the graph setting of a precision name on provider:
// NativePrecision, with bfloat16 emulated on the CPU provider.
func ProviderPrecision(name, provider string) graphs.MatMulPrecision {
	p := NativePrecision(name)
	if p == graphs.MatMulBFloat16 && provider == runtime.ProviderCPU {
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
	// RecomputeLayers is TrainOptions.Recompute's one setting.
	RecomputeLayers = "layers"
)

// KnownPrecision reports whether name is one of the precision names.
func KnownPrecision(name string) bool { return name == PrecisionFP32 || name == PrecisionBF16 }

// run performs the runner's steps from step (0-based) on batches. The
// state is read from dev where it is resident there, else from state. With
// keep, the new parameters and moments stay resident and come back in kept;
// every other output comes back to the host.
func (r *stepRunner) run(state Weights, dev map[string]Resident, batches *tensors.Tensor, lrs []float32, step int,
	keep bool) (host map[string]*tensors.Tensor, kept map[string]Resident, err error) {
	byName := Weights{train.BatchName: batches,
		train.LRName:   tensors.FromFloat32([]int64{int64(len(lrs))}, lrs),
		train.StepName: tensors.FromFloat32([]int64{1}, []float32{float32(step + 1)})}
	for k, v := range state {
		byName[k] = v
	}
	in := make([]Feed, len(r.g.Inputs()))
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
	host, kept = map[string]*tensors.Tensor{}, map[string]Resident{}
	for j, n := range names {
		if keepOut[j] {
			kept[n] = res[j]
		} else {
			host[n] = out[j]
		}
	}
	return host, kept, nil
}

func releaseAll(dev map[string]Resident) {
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

// firstNonFinite names what went wrong in step i of a run's outputs: the
// loss (of the rank whose micro-batch it was, with several), else the
// first gradient, whose values are the ranks' average.
func firstNonFinite(got map[string]*tensors.Tensor, i int, spec TrainSpec, s share) string {
	k := spec.MicroBatches
	for j, l := range got[train.LossName].Float32s()[i*k : (i+1)*k] {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			return "loss" + s.lossRank(j)
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

// batches are this rank's micro-batches of steps [step, step+n), [n, k,
// B, T+1]: of every step's MicroBatches consecutive sampler batches, its
// share's k from lo on. The sampler draws the global batch alike on every
// rank, whatever their number.
func (t *trainer) batches(step, n int) *tensors.Tensor {
	K, s := t.spec.MicroBatches, t.share
	var parts []*tensors.Tensor
	for i := range n {
		for j := range s.k {
			parts = append(parts, t.sampler.Batch(int64((step+i)*K+s.lo+j)))
		}
	}
	return tensors.Join(append([]int64{int64(n), int64(s.k)}, parts[0].Shape...), parts...)
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
	sess    Session
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
