package stages

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// This file is a Runtime, a Checkpointer and a Logger that live in memory,
// so that the training loop can be tested without ONNX Runtime. The fake
// step session does not run the graph: it applies a made-up update that
// depends on the parameters, the learning rate, the global step and the
// batch, so a run that resumes wrongly or sees other batches ends with
// other weights.

// fakeRuntime serves sessions by the name of the graph they were opened
// for: "<stage>_step<n>" and "<stage>_eval".
type fakeRuntime struct {
	// poison reports whether the step (1-based) at learning rate lr goes
	// non-finite; nil: never.
	poison func(step int, lr float32) bool
	// beforeRun is called before every step-session run with its first
	// step (1-based); nil: nothing.
	beforeRun func(step int)
	seen      []seenStep // every step the step sessions performed, in order
	evalRuns  int        // runs of evaluation sessions
	live      map[*fakeResident]bool
	sessions  int // open sessions
}

// seenStep is one step a fake step session performed.
type seenStep struct {
	step  int // 1-based
	batch []int64
	w     []float32 // the parameter w it started from
	lr    float32
}

func newFakeRuntime() *fakeRuntime { return &fakeRuntime{live: map[*fakeResident]bool{}} }

func (f *fakeRuntime) NewSession(name string, model []byte, inputs, outputs []string) (Session, error) {
	if len(model) == 0 {
		return nil, fmt.Errorf("fake runtime: %s: empty model", name)
	}
	f.sessions++
	return &fakeSession{rt: f, name: name, inputs: inputs, outputs: outputs}, nil
}

func (f *fakeRuntime) NewSessionFromFile(name, path string, inputs, outputs []string) (Session, error) {
	return nil, fmt.Errorf("fake runtime: %s: no models from files (%s)", name, path)
}

func (f *fakeRuntime) Fetch(r Resident) (*tensors.Tensor, error) {
	fr := r.(*fakeResident)
	if !f.live[fr] {
		return nil, fmt.Errorf("fake runtime: fetch of a released value")
	}
	return fr.t, nil
}

func (f *fakeRuntime) Provider() string { return runtime.ProviderCPU }

type fakeResident struct {
	rt *fakeRuntime
	t  *tensors.Tensor
}

func (r *fakeResident) Release() { delete(r.rt.live, r) }

type fakeSession struct {
	rt              *fakeRuntime
	name            string
	inputs, outputs []string
	closed          bool
}

func (s *fakeSession) Close() error {
	if !s.closed {
		s.closed = true
		s.rt.sessions--
	}
	return nil
}

func (s *fakeSession) Run(in []*tensors.Tensor) ([]*tensors.Tensor, error) {
	feeds := make([]Feed, len(in))
	for i, t := range in {
		feeds[i].Host = t
	}
	host, _, err := s.RunResident(feeds, make([]bool, len(s.outputs)))
	return host, err
}

func (s *fakeSession) RunResident(in []Feed, keep []bool) ([]*tensors.Tensor, []Resident, error) {
	if s.closed {
		return nil, nil, fmt.Errorf("session %s is closed", s.name)
	}
	byName := map[string]*tensors.Tensor{}
	for i, f := range in {
		t := f.Host
		if f.Resident != nil {
			r := f.Resident.(*fakeResident)
			if !s.rt.live[r] {
				return nil, nil, fmt.Errorf("session %s: input %s is a released value", s.name, s.inputs[i])
			}
			t = r.t
		}
		if t == nil {
			return nil, nil, fmt.Errorf("session %s: no value for input %s", s.name, s.inputs[i])
		}
		byName[s.inputs[i]] = t
	}
	var out map[string]*tensors.Tensor
	if strings.HasSuffix(s.name, "_eval") {
		s.rt.evalRuns++
		out = fakeEval(byName)
	} else {
		out = s.rt.steps(byName)
	}
	host, dev := make([]*tensors.Tensor, len(s.outputs)), make([]Resident, len(s.outputs))
	for j, n := range s.outputs {
		t, ok := out[n]
		if !ok {
			return nil, nil, fmt.Errorf("session %s: the fake computes no output %s", s.name, n)
		}
		if keep[j] {
			r := &fakeResident{rt: s.rt, t: t}
			s.rt.live[r] = true
			dev[j] = r
		} else {
			host[j] = t
		}
	}
	return host, dev, nil
}

// fakeEval is the evaluation graph's loss: the sum of w plus the batch's
// mean id over 1000.
func fakeEval(in map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	l := sum32(in["w"].Float32s()) + float32(meanID(in[train.BatchName].Int64s())/1000)
	return map[string]*tensors.Tensor{train.LossName: tensors.FromFloat32([]int64{1}, []float32{l})}
}

// steps performs a step session's run: batch [n, K, B, T+1], one learning
// rate per step, the 1-based first step. Like the real graph, the state
// after the last finite step comes out and finite is false from the first
// bad step on.
func (f *fakeRuntime) steps(in map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	batch, lrs := in[train.BatchName], in[train.LRName].Float32s()
	n, k := len(lrs), int(batch.Shape[1])
	first := int(in[train.StepName].Float32s()[0])
	if f.beforeRun != nil {
		f.beforeRun(first)
	}
	w := slices.Clone(in["w"].Float32s())
	m, v := in[train.ExpAvg("w")].Float32s()[0], in[train.ExpAvgSq("w")].Float32s()[0]
	ids := batch.Int64s()
	per := len(ids) / n
	losses, norms := make([]float32, n*k), make([]float32, n)
	finite, sumsq := make([]bool, n), make([]float32, n)
	ok := true
	for i := range n {
		step, b := first+i, ids[i*per:(i+1)*per]
		f.seen = append(f.seen, seenStep{step: step, batch: slices.Clone(b), w: slices.Clone(w), lr: lrs[i]})
		ok = ok && (f.poison == nil || !f.poison(step, lrs[i]))
		finite[i], norms[i], sumsq[i] = ok, lrs[i], 1
		for j := range k {
			losses[i*k+j] = sum32(w) + float32(meanID(b[j*per/k:(j+1)*per/k])/1000)
			if !ok {
				losses[i*k+j] = float32(math.NaN())
			}
		}
		if ok {
			for x := range w {
				w[x] = 0.9*w[x] + lrs[i]*float32(sumID(b)%97)/97
			}
			m, v = m+1, v+float32(step)
		}
	}
	vec := func(x ...float32) *tensors.Tensor { return tensors.FromFloat32([]int64{int64(len(x))}, x) }
	return map[string]*tensors.Tensor{
		train.New("w"): vec(w...), train.New(train.ExpAvg("w")): vec(m), train.New(train.ExpAvgSq("w")): vec(v),
		train.LossName:      tensors.FromFloat32([]int64{int64(n), int64(k)}, losses),
		train.GradNormName:  vec(norms...),
		train.FiniteName:    tensors.FromBool([]int64{int64(n)}, finite),
		train.GradSumSqName: tensors.FromFloat32([]int64{int64(n), 1}, sumsq),
	}
}

func sum32(x []float32) float32 {
	s := float32(0)
	for _, v := range x {
		s += v
	}
	return s
}

func sumID(x []int64) int64 {
	s := int64(0)
	for _, v := range x {
		s += v
	}
	return s
}

func meanID(x []int64) float64 { return float64(sumID(x)) / float64(len(x)) }

// fakeCkpt keeps checkpoints in memory, the newest keepLast of them (0:
// all), as pipeline's checkpointer prunes its directory.
type fakeCkpt struct {
	keepLast int
	saved    []int // every Save's step, in order
	kept     []fakeSaved
}

type fakeSaved struct {
	step  int
	state Weights
	meta  Meta
}

// Save copies the map: the trainer goes on writing new tensors into it.
func (c *fakeCkpt) Save(step int, t Weights, meta Meta) error {
	c.saved = append(c.saved, step)
	c.kept = append(c.kept, fakeSaved{step, maps.Clone(t), meta})
	if c.keepLast > 0 && len(c.kept) > c.keepLast {
		c.kept = c.kept[len(c.kept)-c.keepLast:]
	}
	return nil
}

func (c *fakeCkpt) Latest() (int, Weights, Meta, bool, error) {
	if len(c.kept) == 0 {
		return 0, nil, Meta{}, false, nil
	}
	s := c.kept[len(c.kept)-1]
	return s.step, maps.Clone(s.state), s.meta, true, nil
}

func (c *fakeCkpt) Sub(name string) Checkpointer { return &fakeCkpt{keepLast: c.keepLast} }

// fakeLog records metrics and status lines.
type fakeLog struct {
	metrics []map[string]any
	lines   []string
	done    int // progress bars finished
}

func (l *fakeLog) Metric(m map[string]any)           { l.metrics = append(l.metrics, maps.Clone(m)) }
func (l *fakeLog) Printf(format string, args ...any) { l.lines = append(l.lines, fmt.Sprintf(format, args...)) }
func (l *fakeLog) Progress(string, int) Progress     { return fakeBar{l} }

type fakeBar struct{ l *fakeLog }

func (fakeBar) Set(int, string) {}
func (b fakeBar) Done()         { b.l.done++ }

// evalSteps are the steps whose metrics carry a held-out loss.
func (l *fakeLog) evalSteps() []int {
	var out []int
	for _, m := range l.metrics {
		if _, ok := m["val_loss"]; ok {
			out = append(out, m["step"].(int))
		}
	}
	return out
}

// fakeSetup is one training stage on the fakes.
type fakeSetup struct {
	env  *Env
	rt   *fakeRuntime
	ckpt *fakeCkpt
	log  *fakeLog
	spec TrainSpec
}

// newFake sets up a stage of steps steps of one parameter w [3] on a
// synthetic corpus, checkpointing every ckptEvery steps and evaluating
// every evalEvery on two held-out windows.
func newFake(t *testing.T, steps, perRun, ckptEvery, evalEvery int) *fakeSetup {
	t.Helper()
	ids := make([]int64, 4000)
	for i := range ids {
		ids[i] = int64((i*7 + i/13) % 50)
	}
	trainData, err := data.FromTokens("train.txt", ids[:3000], 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	val, err := data.FromTokens("val.txt", ids[3000:], 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	shape := graphs.S(3)
	loss := func(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value {
		w := p.Get("w", shape)
		return graphs.Mul(graphs.ReduceSumSquareAll(w), graphs.ReduceMeanAll(graphs.Cast(batch, tensors.Float32)))
	}
	f := &fakeSetup{rt: newFakeRuntime(), ckpt: &fakeCkpt{}, log: &fakeLog{}}
	f.env = &Env{Ctx: context.Background(), Runtime: f.rt, TrainData: trainData, ValData: val, Seed: 3,
		Dir: t.TempDir(), Ckpt: f.ckpt, Log: f.log, NonFinite: "stop", RollbackLRFactor: 0.5, MaxRollbacks: 3}
	f.spec = TrainSpec{Name: "fake", Params: []train.Param{{Name: "w", Shape: shape, Decay: true}},
		Initial: Weights{"w": tensors.FromFloat32([]int64{3}, []float32{1, -2, 0.5})},
		Loss:    loss, Opt: train.DefaultAdamW(), LR: 0.1, Schedule: Schedule{Kind: "constant", TotalSteps: steps},
		Steps: steps, MicroBatches: 2, MicroBatch: 2, SeqLen: 4, EvalEvery: evalEvery, EvalWindows: 4,
		CheckpointEvery: ckptEvery, StepsPerRun: perRun}
	return f
}

// train runs the stage and checks that it leaves no session open and no
// value resident.
func (f *fakeSetup) train(t *testing.T) (*TrainResult, error) {
	t.Helper()
	res, err := f.env.Train(f.spec)
	if f.rt.sessions != 0 || len(f.rt.live) != 0 {
		t.Errorf("after Train: %d sessions open, %d values resident", f.rt.sessions, len(f.rt.live))
	}
	return res, err
}

// batchesByStep is the batch each step last ran on.
func batchesByStep(seen []seenStep) map[int][]int64 {
	m := map[int][]int64{}
	for _, s := range seen {
		m[s.step] = s.batch
	}
	return m
}
