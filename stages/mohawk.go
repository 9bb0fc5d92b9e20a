package stages

import (
	"fmt"
	"sort"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/family"
	"mohawk/graphs/train"
	"mohawk/tensors"
)

// TrainOptions are the settings every training stage takes from the plan.
type TrainOptions struct {
	Tokens          int64
	Steps           int
	MicroBatches    int
	MicroBatch      int
	SeqLen          int
	LR              float64
	Opt             train.AdamW
	Schedule        Schedule
	EvalEvery       int
	EvalWindows     int
	CheckpointEvery int
	StepsPerRun     int
	Precision       string `json:",omitempty"` // "" (float32) or "bf16"
	// LayerGroup trains Stage 1/2 in groups of this many layers (0: all).
	LayerGroup int
	// AllReduce averages each step's gradients over the data-parallel
	// group registered with mohawk/runtime (nil: no AllReduce nodes).
	AllReduce *train.AllReduce `json:",omitempty"`
	// Recompute is training.recompute: "" (none) or "layers", where the
	// backward pass recomputes each student layer's forward from its saved
	// input (graphs.Graph.SetRecompute).
	Recompute string `json:",omitempty"`
	// LossChunk is training.loss_chunk: Stage 3's soft cross-entropy in
	// chunks of this many tokens (0: in one piece).
	LossChunk int `json:",omitempty"`
	// MatrixKernels is training.matrix_kernels: Stage 1's fused [T, T]
	// kernels (graphs.Graph.UseMatrixKernels).
	MatrixKernels bool `json:",omitempty"`
	// BlockKernels is training.block_kernels: the blocks' fused plumbing
	// kernels (graphs.Graph.UseBlockKernels).
	BlockKernels graphs.BlockKernel `json:",omitempty"`
}

// DistillOptions add Stage 3's choices.
type DistillOptions struct {
	Temperature     float64
	HardLabelWeight float64
	MixersOnly      bool // paper Table 5: train only the mixers
	// FreezeAttention keeps a hybrid student's attention layers at their
	// current (the teacher's) weights.
	FreezeAttention bool `json:",omitempty"`
}

// Result is what a stage reports to the run.
type Result struct {
	Train *TrainResult
	// LayerBefore/LayerAfter are per-layer distances (Frobenius for orient,
	// L2 for align) on held-out windows before and after the stage.
	LayerBefore, LayerAfter []float64
}

// graphCache keeps one frozen-weight source per root graph, so a loss built
// twice in a graph (or in a loop body) shares initializers.
type graphCache struct {
	prefix string // initializer name prefix ("teacher." keeps the models apart)
	// low stores the weights in the graph's low precision
	// (graphs.Graph.LowDType), for a model that only uses them there.
	low bool
	// lowW holds the weights converted to that precision, once for every
	// graph (a stage builds a step graph per run length).
	lowW Weights
	m    map[*graphs.Graph]*layers.Frozen
}

func newCache(prefix string) *graphCache {
	return &graphCache{prefix: prefix, m: map[*graphs.Graph]*layers.Frozen{}}
}

func (c *graphCache) get(g *graphs.Graph, w Weights) *layers.Frozen {
	r := g.Root()
	if f, ok := c.m[r]; ok {
		return f
	}
	dt := tensors.Float32
	if c.low && r.LowDType() != dt {
		dt = r.LowDType()
		if c.lowW == nil {
			c.lowW = Weights{}
			for name, t := range w {
				c.lowW[name] = t.Convert(dt)
			}
		}
		w = c.lowW
	}
	f := &layers.Frozen{G: r, Tensors: w, DType: dt, Prefix: c.prefix}
	c.m[r] = f
	return f
}

// inputsAndLabels splits a micro-batch [B, T+1] into ids [B, T] and next
// tokens [B, T].
func inputsAndLabels(batch *graphs.Value) (ids, labels *graphs.Value) {
	return graphs.SliceAxis(batch, 1, 0, -1), graphs.SliceAxis(batch, 1, 1, graphs.End)
}

func (o TrainOptions) spec(name string, ps []train.Param, initial Weights, loss train.LossFunc) TrainSpec {
	return TrainSpec{Name: name, Params: ps, Initial: initial, Loss: loss, Opt: o.Opt, LR: o.LR, Schedule: o.Schedule,
		Steps: o.Steps, MicroBatches: o.MicroBatches, MicroBatch: o.MicroBatch, SeqLen: o.SeqLen,
		EvalEvery: o.EvalEvery, EvalWindows: o.EvalWindows, CheckpointEvery: o.CheckpointEvery, StepsPerRun: o.StepsPerRun,
		Precision: o.Precision, AllReduce: o.AllReduce, Recompute: o.Recompute == RecomputeLayers, MatrixKernels: o.MatrixKernels, BlockKernels: o.BlockKernels}
}

// trainParams turns names into train.Params with shapes from w.
func trainParams(names []string, w Weights, noDecay func(string) bool) []train.Param {
	sort.Strings(names)
	ps := make([]train.Param, len(names))
	for i, n := range names {
		ps[i] = train.Param{Name: n, Shape: graphs.StaticShape(w[n].Shape), Decay: !noDecay(n)}
	}
	return ps
}

// studentParams serves trainable student parameters from p and the rest as
// initializers of the current student weights.
func studentParams(p layers.Params, trainable map[string]bool, frozen *layers.Frozen) layers.Params {
	return layers.Split{UseA: func(n string) bool { return trainable[n] }, A: p, B: frozen}
}

func set(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// layerLosses builds the per-layer Stage 1 or Stage 2 distances for one
// micro-batch: the teacher runs on the ids, each student mixer sees the
// teacher's normed layer input.
func (e *Env) layerLosses(kind string, lr layerRange, g *graphs.Graph, p layers.Params, batch *graphs.Value, tc, sc *graphCache, trainable map[string]bool) []*graphs.Value {
	ids, _ := inputsAndLabels(batch)
	t := e.Teacher
	// The teacher runs only as far as the last layer of the range.
	tout := t.Config.Forward(tc.get(g, t.Weights), ids, family.TeacherOptions{NoLogits: true, Layers: lr.hi, ExplicitAttention: kind == "orient"})
	sp := studentParams(p, trainable, sc.get(g, e.Student.Weights))
	c := e.Student.Config
	out := make([]*graphs.Value, 0, lr.hi-lr.lo)
	for _, i := range lr.ssm(c) {
		if kind == "orient" {
			out = append(out, losses.FrobeniusWithDiagonal(c.MatrixParts(sp, i, tout.Normed[i]), tout.Attn[i]))
		} else {
			m := c.Mixer(sp, i, tout.Normed[i], family.FormSSD, nil)
			out = append(out, losses.L2(m.Out, tout.AttnOut[i]))
		}
	}
	return out
}

// layerRange is the layers [lo, hi) a Stage 1/2 graph trains.
type layerRange struct{ lo, hi int }

// ssm lists the range's mixer layers: a hybrid's attention layers are the
// teacher's own, and Stages 1 and 2 skip them.
func (lr layerRange) ssm(c family.Student) []int {
	var out []int
	for i := lr.lo; i < lr.hi; i++ {
		if !c.IsAttention(i) {
			out = append(out, i)
		}
	}
	return out
}

// groups cuts n layers into consecutive groups of size (all at once for 0).
func groups(n, size int) []layerRange {
	if size <= 0 || size >= n {
		return []layerRange{{0, n}}
	}
	var out []layerRange
	for lo := 0; lo < n; lo += size {
		out = append(out, layerRange{lo, min(n, lo+size)})
	}
	return out
}

func meanOf(vs []*graphs.Value) *graphs.Value {
	s := vs[0]
	for _, v := range vs[1:] {
		s = graphs.Add(s, v)
	}
	return graphs.Mul(s, graphs.ScalarLike(s, 1/float64(len(vs))))
}

// Orient is MOHAWK Stage 1 (kind "orient") or Stage 2 (kind "align"): every
// student mixer is fitted, layer by layer on the teacher's own layer inputs,
// to the teacher attention matrix (Frobenius) or attention output (L2).
// The layers are independent problems: by default all train at once (their
// mean loss is the objective); with o.LayerGroup > 0 consecutive groups of
// that many layers train one after another, each on the stage's full token
// budget (the same data every layer sees when trained at once), which bounds
// the activation memory by one group's. Each group checkpoints separately.
// A hybrid student's attention layers are skipped: their distance is
// reported as 0 (they are the teacher's), and a group of attention layers
// only is not trained. With e.Shard set, this process trains only its
// share of the groups and the processes merge their results.
func (e *Env) Orient(kind string, o TrainOptions) (*Result, error) {
	c := e.Student.Config
	res := &Result{}
	if len(c.SSMLayers()) == 0 {
		return nil, fmt.Errorf("stage %s: every layer of the student is attention; there is no mixer to train (drop the stage)", kind)
	}
	gs := groups(c.Sizes().Layers, o.LayerGroup)
	// distances evaluates every layer's objective, group by group.
	distances := func() ([]float64, error) {
		var out []float64
		for _, lr := range gs {
			names := e.orientNames(kind, lr)
			d, err := e.layerDistances(kind, o, lr, trainParams(names, e.Student.Weights, c.NoDecay), e.Student.Weights, set(names))
			if err != nil {
				return nil, err
			}
			out = append(out, d...)
		}
		return out, nil
	}
	before, err := distances()
	if err != nil {
		return nil, err
	}
	lo, hi := 0, len(gs)
	if e.Shard != nil {
		lo, hi = e.Shard.Range(len(gs))
	}
	for _, lr := range gs[lo:hi] {
		names := e.orientNames(kind, lr)
		if len(names) == 0 {
			continue
		}
		name, sub := kind, e
		if len(gs) > 1 {
			name = fmt.Sprintf("%s-layers-%d-%d", kind, lr.lo, lr.hi-1)
			cp := *e
			cp.Ckpt = e.Ckpt.Sub(name)
			sub = &cp
		}
		tr, err := sub.Train(e.orientSpec(kind, name, o, lr, names))
		if err != nil {
			return nil, err
		}
		e.Student.Weights = merge(e.Student.Weights, tr.Weights)
		res.Train = combine(res.Train, tr)
	}
	if e.Shard != nil {
		if res.Train, err = e.shardResult(e.orientNames(kind, layerRange{0, c.Sizes().Layers}), res.Train); err != nil {
			return nil, err
		}
	}
	after, err := distances()
	if err != nil {
		return nil, err
	}
	res.LayerBefore, res.LayerAfter = before, after
	return res, nil
}

// orientNames lists the mixer parameters Stage 1 or 2 (kind) trains in the
// layers lr (Stage 1's: those the mixing matrix depends on).
func (e *Env) orientNames(kind string, lr layerRange) []string {
	c := e.Student.Config
	var names []string
	for _, i := range lr.ssm(c) {
		names = append(names, c.MixerParams(i, kind == "orient")...)
	}
	return names
}

// orientSpec is the training spec of Stage 1 or 2 (kind) for the layers
// lr, whose mixer parameters names train.
func (e *Env) orientSpec(kind, name string, o TrainOptions, lr layerRange, names []string) TrainSpec {
	trainable := set(names)
	tc, sc := newCache("teacher."), newCache("")
	loss := func(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value {
		return meanOf(e.layerLosses(kind, lr, g, p, batch, tc, sc, trainable))
	}
	return o.spec(name, trainParams(names, e.Student.Weights, e.Student.Config.NoDecay), e.Student.Weights, loss)
}

// OrientStepGraph is the step graph Orient(kind, o) would run for all
// layers at once (o.LayerGroup is ignored), with its products computed as
// p, built without a runtime as for a GPU (for graph analysis: bench-stage
// --traffic).
func (e *Env) OrientStepGraph(kind string, o TrainOptions, p graphs.MatMulPrecision) (*graphs.Graph, error) {
	lr := layerRange{0, e.Student.Config.Sizes().Layers}
	names := e.orientNames(kind, lr)
	if len(names) == 0 {
		return nil, fmt.Errorf("stage %s: the student has no mixer to train", kind)
	}
	spec := e.orientSpec(kind, kind, o, lr, names)
	return stepGraph(spec, max(1, spec.StepsPerRun), p, e.inPlace(), false)
}

// combine sums the work of layer groups into one stage result: tokens,
// time and steps add up; losses are those of the first and last group.
func combine(a, b *TrainResult) *TrainResult {
	if a == nil {
		return b
	}
	out := *b
	out.Steps += a.Steps
	out.Tokens += a.Tokens
	out.Seconds += a.Seconds
	out.FirstLoss, out.FirstValLoss = a.FirstLoss, a.FirstValLoss
	out.Losses = append(append([]float64{}, a.Losses...), b.Losses...)
	out.Weights = merge(a.Weights, b.Weights)
	return &out
}

// layerDistances evaluates the per-layer objective on held-out windows.
func (e *Env) layerDistances(kind string, o TrainOptions, lr layerRange, ps []train.Param, w Weights, trainable map[string]bool) ([]float64, error) {
	if e.ValData == nil || o.EvalWindows <= 0 {
		return nil, nil
	}
	sum := make([]float64, lr.hi-lr.lo)
	ssm := lr.ssm(e.Student.Config)
	if len(ssm) == 0 {
		return sum, nil
	}
	tc, sc := newCache("teacher."), newCache("")
	mb := min(o.MicroBatch, o.EvalWindows)
	var in *layers.Inputs
	g, err := build(kind+"_layers", func(g *graphs.Graph) {
		in = &layers.Inputs{G: g, DType: tensors.Float32}
		for _, p := range ps {
			in.Get(p.Name, p.Shape)
		}
		batch := g.Input(train.BatchName, tensors.Int64, graphs.S("batch", o.SeqLen+1))
		ls := e.layerLosses(kind, lr, g, in, batch, tc, sc, trainable)
		for i := range ls {
			ls[i] = graphs.Reshape(ls[i], 1)
		}
		g.Output("layers", graphs.Concat(0, ls...))
	})
	if err != nil {
		return nil, err
	}
	sess, err := e.session(g)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	windows, err := evalBatches(e.ValData, o.SeqLen, o.EvalWindows, mb)
	if err != nil {
		return nil, err
	}
	for _, b := range windows {
		byName := Weights{train.BatchName: b}
		for _, n := range in.Names() {
			byName[n] = w[n]
		}
		x, err := feeds(g, byName)
		if err != nil {
			return nil, err
		}
		out, err := sess.Run(x)
		if err != nil {
			return nil, err
		}
		for j, v := range out[0].Float32s() {
			sum[ssm[j]-lr.lo] += float64(v) / float64(len(windows))
		}
	}
	return sum, nil
}

// Distill is MOHAWK Stage 3: the whole student (or only its mixers) is
// trained on the teacher's next-token distributions with soft
// cross-entropy (optionally tempered, optionally mixed with the hard-label
// loss).
func (e *Env) Distill(o TrainOptions, d DistillOptions) (*Result, error) {
	tr, err := e.Train(e.distillSpec(o, d))
	if err != nil {
		return nil, err
	}
	e.Student.Weights = merge(e.Student.Weights, tr.Weights)
	return &Result{Train: tr}, nil
}

// DistillStepGraph is the step graph Distill would run for o.StepsPerRun
// steps, with its products computed as p, built without a runtime as for a
// GPU (for graph analysis: bench-stage --traffic).
func (e *Env) DistillStepGraph(o TrainOptions, d DistillOptions, p graphs.MatMulPrecision) (*graphs.Graph, error) {
	spec := e.distillSpec(o, d)
	return stepGraph(spec, max(1, spec.StepsPerRun), p, e.inPlace(), false)
}

// distillSpec is Stage 3's training spec: its loss, and the student
// parameters it trains.
func (e *Env) distillSpec(o TrainOptions, d DistillOptions) TrainSpec {
	c := e.Student.Config
	var names []string
	for n := range e.Student.Weights {
		if c.IsAttentionParam(n) {
			if !d.FreezeAttention {
				names = append(names, n)
			}
		} else if !d.MixersOnly || c.IsMixer(n) {
			names = append(names, n)
		}
	}
	trainable := set(names)
	tc, sc := newCache("teacher."), newCache("")
	tc.low = true // the frozen teacher runs in bfloat16 under bf16 (family.TeacherOptions.LowPrecision)
	temp := d.Temperature
	if temp == 0 {
		temp = 1
	}
	objective := func(sl, tl, labels *graphs.Value) *graphs.Value {
		l := losses.SoftCrossEntropy(sl, tl, temp)
		if d.HardLabelWeight > 0 {
			l = graphs.Add(graphs.Mul(l, graphs.ScalarLike(l, 1-d.HardLabelWeight)),
				graphs.Mul(losses.TokenCrossEntropy(sl, labels), graphs.ScalarLike(l, d.HardLabelWeight)))
		}
		return l
	}
	loss := func(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value {
		ids, labels := inputsAndLabels(batch)
		t := e.Teacher
		// The teacher's logits stay bfloat16 under bf16 (read as they are by
		// the fused soft cross-entropy, widened by the stock one, a chunk
		// at a time with o.LossChunk).
		tl := t.Config.Forward(tc.get(g, t.Weights), ids, family.TeacherOptions{LowPrecision: true, LowLogits: true}).Logits
		sp := studentParams(p, trainable, sc.get(g, e.Student.Weights))
		if o.LossChunk <= 0 {
			return objective(c.Forward(sp, ids, family.StudentOptions{Form: family.FormSSD}).Logits, tl, labels)
		}
		so := c.Forward(sp, ids, family.StudentOptions{Form: family.FormSSD, NoLogits: true})
		h := so.Hidden[len(so.Hidden)-1]
		return losses.TimeChunked(g, int64(o.SeqLen), int64(o.LossChunk), func(at func(*graphs.Value) *graphs.Value) *graphs.Value {
			return objective(c.Head(sp, at(h)), at(tl), at(labels))
		})
	}
	return o.spec("distill", trainParams(names, e.Student.Weights, c.NoDecay), e.Student.Weights, loss)
}

// PretrainModel selects the architecture a pretrain stage trains.
type PretrainModel int

// Pretrain targets.
const (
	PretrainTeacher PretrainModel = iota // the teacher architecture (e.g. to make a teacher)
	PretrainStudent                      // the student (the from-scratch baseline)
)

// Pretrain trains the teacher architecture or the student with the plain
// next-token cross-entropy, from the current weights.
func (e *Env) Pretrain(which PretrainModel, o TrainOptions) (*Result, error) {
	var w Weights
	var fwd func(p layers.Params, ids *graphs.Value) *graphs.Value
	var noDecay func(string) bool
	switch which {
	case PretrainTeacher:
		w, noDecay = e.Teacher.Weights, e.Teacher.Config.NoDecay
		fwd = func(p layers.Params, ids *graphs.Value) *graphs.Value {
			return e.Teacher.Config.Forward(p, ids, family.TeacherOptions{}).Logits
		}
	case PretrainStudent:
		w, noDecay = e.Student.Weights, e.Student.Config.NoDecay
		fwd = func(p layers.Params, ids *graphs.Value) *graphs.Value {
			return e.Student.Config.Forward(p, ids, family.StudentOptions{Form: family.FormSSD}).Logits
		}
	default:
		return nil, fmt.Errorf("pretrain: unknown model %d", which)
	}
	var names []string
	for n := range w {
		names = append(names, n)
	}
	loss := func(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value {
		ids, labels := inputsAndLabels(batch)
		return losses.TokenCrossEntropy(fwd(p, ids), labels)
	}
	tr, err := e.Train(o.spec("pretrain", trainParams(names, w, noDecay), w, loss))
	if err != nil {
		return nil, err
	}
	if which == PretrainTeacher {
		e.Teacher.Weights = merge(e.Teacher.Weights, tr.Weights)
	} else {
		e.Student.Weights = merge(e.Student.Weights, tr.Weights)
	}
	return &Result{Train: tr}, nil
}

func merge(base, upd Weights) Weights {
	out := Weights{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range upd {
		out[k] = v
	}
	return out
}
