package stages

import (
	"context"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	sessions  int      // open sessions
	trained   []string // the parameters of the last step-session run
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

// Fetch and Upload copy, as the real ones do: an in-place step changes the
// resident tensor and must not change what was fetched or uploaded.
func (f *fakeRuntime) Fetch(r Resident) (*tensors.Tensor, error) {
	fr := r.(*fakeResident)
	if !f.live[fr] {
		return nil, fmt.Errorf("fake runtime: fetch of a released value")
	}
	return fr.t.Clone(), nil
}

func (f *fakeRuntime) Upload(t *tensors.Tensor) (Resident, error) {
	if t == nil {
		return nil, fmt.Errorf("fake runtime: upload of no tensor")
	}
	r := &fakeResident{rt: f, t: t.Clone()}
	f.live[r] = true
	return r, nil
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
	inPlace := slices.Contains(s.outputs, train.UpdatedName)
	for i, f := range in {
		t := f.Host
		if inPlace && f.Host != nil && strings.HasSuffix(s.inputs[i], ".exp_avg") {
			return nil, nil, fmt.Errorf("session %s: in-place state %s fed from the host (the update would be lost on a GPU)", s.name, s.inputs[i])
		}
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
	switch {
	case slices.Contains(s.outputs, train.FiniteName):
		out = s.rt.steps(byName, s.outputs)
	case slices.Contains(s.outputs, "layers"):
		out = fakeLayers(byName)
	case slices.Contains(s.outputs, "logp"):
		out = fakeScore(byName[s.inputs[0]])
	default:
		s.rt.evalRuns++
		out = fakeEval(byName)
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

// fakeEval is an evaluation graph's loss: the sum of every parameter plus
// the batch's mean id over 1000.
func fakeEval(in map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	l := float32(meanID(in[train.BatchName].Int64s()) / 1000)
	for _, n := range sortedKeys(in) {
		if n != train.BatchName {
			l += sum32(in[n].Float32s())
		}
	}
	return map[string]*tensors.Tensor{train.LossName: tensors.FromFloat32([]int64{1}, []float32{l})}
}

// layerIndex finds the layer of a parameter name ("….layers.<i>.…").
var layerIndex = regexp.MustCompile(`\.layers\.(\d+)\.`)

// fakeLayers is a per-layer distance graph's output: for each layer whose
// parameters are inputs, the sum of those parameters.
func fakeLayers(in map[string]*tensors.Tensor) map[string]*tensors.Tensor {
	sums := map[int]float32{}
	for n, t := range in {
		if m := layerIndex.FindStringSubmatch(n); m != nil {
			i, _ := strconv.Atoi(m[1])
			sums[i] += sum32(t.Float32s())
		}
	}
	out := make([]float32, 0, len(sums))
	for _, i := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, sums[i])
	}
	return map[string]*tensors.Tensor{"layers": tensors.FromFloat32([]int64{int64(len(out))}, out)}
}

// fakeLogProb is the fake scorer's log-probability of a next token, and
// fakeGreedy whether it is the greedy choice.
func fakeLogProb(id int64) float32 { return -1 - float32(id%4)/2 }
func fakeGreedy(id int64) bool     { return id%2 == 0 }

// fakeScore is a scoring graph's output for ids [B, S]: logp and greedy
// [B, S−1] of each next token.
func fakeScore(ids *tensors.Tensor) map[string]*tensors.Tensor {
	b, s := ids.Shape[0], ids.Shape[1]
	x := ids.Int64s()
	logp, greedy := make([]float32, 0, b*(s-1)), make([]bool, 0, b*(s-1))
	for r := range b {
		for _, id := range x[r*s+1 : (r+1)*s] {
			logp, greedy = append(logp, fakeLogProb(id)), append(greedy, fakeGreedy(id))
		}
	}
	return map[string]*tensors.Tensor{"logp": tensors.FromFloat32([]int64{b, s - 1}, logp),
		"greedy": tensors.FromBool([]int64{b, s - 1}, greedy)}
}

// steps performs a step session's run: batch [n, K, B, T+1], one learning
// rate per step, the 1-based first step. Every parameter p becomes
// 0.9·p + lr·(batch sum mod 97)/97, its moments count the steps and sum
// their numbers. Like the real graph, the state after the last finite step
// comes out (in place: is written over the fed tensors) and finite is false
// from the first bad step on.
func (f *fakeRuntime) steps(in map[string]*tensors.Tensor, outputs []string) map[string]*tensors.Tensor {
	var params []string
	inPlace := slices.Contains(outputs, train.UpdatedName)
	for _, o := range outputs {
		if p, ok := strings.CutSuffix(o, ".new"); ok && !strings.HasSuffix(p, ".exp_avg") && !strings.HasSuffix(p, ".exp_avg_sq") {
			params = append(params, p)
		}
	}
	if inPlace {
		for name := range in {
			if p, ok := strings.CutSuffix(name, ".exp_avg"); ok {
				params = append(params, p)
			}
		}
	}
	sort.Strings(params)
	f.trained = params
	batch, lrs := in[train.BatchName], in[train.LRName].Float32s()
	n, k := len(lrs), int(batch.Shape[1])
	first := int(in[train.StepName].Float32s()[0])
	if f.beforeRun != nil {
		f.beforeRun(first)
	}
	state := map[string][]float32{}
	for _, p := range params {
		for _, name := range []string{p, train.ExpAvg(p), train.ExpAvgSq(p)} {
			state[name] = slices.Clone(in[name].Float32s())
		}
	}
	ids := batch.Int64s()
	per := len(ids) / n
	losses, norms := make([]float32, n*k), make([]float32, n)
	finite, sumsq := make([]bool, n), make([]float32, n*len(params))
	ok := true
	for i := range n {
		step, b := first+i, ids[i*per:(i+1)*per]
		f.seen = append(f.seen, seenStep{step: step, batch: slices.Clone(b), w: slices.Clone(state[params[0]]), lr: lrs[i]})
		ok = ok && (f.poison == nil || !f.poison(step, lrs[i]))
		finite[i], norms[i] = ok, lrs[i]
		total := float32(0)
		for j, p := range params {
			total += sum32(state[p])
			sumsq[i*len(params)+j] = 1
		}
		for j := range k {
			losses[i*k+j] = total + float32(meanID(b[j*per/k:(j+1)*per/k])/1000)
			if !ok {
				losses[i*k+j] = float32(math.NaN())
			}
		}
		if !ok {
			continue
		}
		for _, p := range params {
			for x := range state[p] {
				state[p][x] = 0.9*state[p][x] + lrs[i]*float32(sumID(b)%97)/97
				state[train.ExpAvg(p)][x]++
				state[train.ExpAvgSq(p)][x] += float32(step)
			}
		}
	}
	out := map[string]*tensors.Tensor{
		train.LossName:      tensors.FromFloat32([]int64{int64(n), int64(k)}, losses),
		train.GradNormName:  tensors.FromFloat32([]int64{int64(n)}, norms),
		train.FiniteName:    tensors.FromBool([]int64{int64(n)}, finite),
		train.GradSumSqName: tensors.FromFloat32([]int64{int64(n), int64(len(params))}, sumsq),
	}
	for name, v := range state {
		if inPlace {
			copy(in[name].Float32s(), v)
			continue
		}
		out[train.New(name)] = tensors.FromFloat32(in[name].Shape, v)
	}
	if inPlace {
		out[train.UpdatedName] = tensors.Zeros(tensors.Float32, 0)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

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
	subs     map[string]*fakeCkpt
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

// Sub makes (and remembers) an independent series.
func (c *fakeCkpt) Sub(name string) Checkpointer {
	if c.subs == nil {
		c.subs = map[string]*fakeCkpt{}
	}
	s := &fakeCkpt{keepLast: c.keepLast}
	c.subs[name] = s
	return s
}

// fakeLog records metrics and status lines.
type fakeLog struct {
	metrics []map[string]any
	lines   []string
	done    int // progress bars finished
}

func (l *fakeLog) Metric(m map[string]any) { l.metrics = append(l.metrics, maps.Clone(m)) }
func (l *fakeLog) Printf(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}
func (l *fakeLog) Progress(string, int) Progress { return fakeBar{l} }

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
