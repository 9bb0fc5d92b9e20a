package pipeline

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tensors"
)

// benchTeacher loads a teacher directory, or builds a registered preset
// architecture such as "phi-1.5" ("phi-1.5:N" keeps only N layers, for
// quick checks) with weights made by weights (nil: random).
func benchTeacher(model string, weights func(family.Teacher) stages.Weights) (*stages.Teacher, error) {
	if weights == nil {
		weights = randomBenchWeights
	}
	name, layers, hasLayers := strings.Cut(model, ":")
	n := 0
	if hasLayers {
		var err error
		if n, err = strconv.Atoi(layers); err != nil || n < 1 {
			return nil, fmt.Errorf("bench: %q: want %s:<layers>", model, name)
		}
	}
	if c, ok := family.PresetTeacher(name, n); ok {
		return &stages.Teacher{Config: c, Weights: weights(c)}, nil
	}
	return LoadTeacher(model)
}

// randomBenchWeights are a preset's random weights.
func randomBenchWeights(c family.Teacher) stages.Weights { return RandomTeacher(c, 1) }

// ForwardResult is a forward-throughput measurement.
type ForwardResult struct {
	Model       string  `json:"model"`
	Provider    string  `json:"provider"`
	Batch       int     `json:"batch"`
	Seq         int     `json:"seq"`
	Iters       int     `json:"iters"`
	Precision   string  `json:"precision"`
	HostLogits  bool    `json:"host_logits"`
	MsPerIter   float64 `json:"ms_per_iter"`
	TokensPerS  float64 `json:"tokens_per_s"`
	SessionSecs float64 `json:"session_s"`
	// Arena and ArenaErrors are as in StageResult.
	Arena       []ArenaUse `json:"arena"`
	ArenaErrors []string   `json:"arena_errors,omitempty"`
}

// ForwardBenchOptions configure a teacher forward measurement.
type ForwardBenchOptions struct {
	Batch, Seq, Iters int
	// Precision is "fp32" or "bf16" (bfloat16 products, as Stage 3's bf16
	// step computes its teacher).
	Precision string
	// HostLogits copies the [batch, seq, vocab] logits to the host after
	// every run; without it they stay in the device's memory, as
	// transformers leaves them and as evaluation (which reduces them to
	// per-token log-probabilities in the graph) never fetches them.
	HostLogits bool
}

// BenchForward times the teacher's logits forward on random ids.
func BenchForward(ctx context.Context, model string, o ForwardBenchOptions, rc runtime.Config, progress io.Writer) (*ForwardResult, error) {
	batch, seq, iters := o.Batch, o.Seq, o.Iters
	if o.Precision != stages.PrecisionFP32 && o.Precision != stages.PrecisionBF16 {
		return nil, fmt.Errorf("--precision %q: want %s or %s", o.Precision, stages.PrecisionFP32, stages.PrecisionBF16)
	}
	t, err := benchTeacher(model, nil)
	if err != nil {
		return nil, err
	}
	rt, err := runtime.Open(rc, progress)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	g := graphs.New("teacher_forward")
	g.SetMatMulPrecision(stages.ProviderPrecision(o.Precision, rt.Provider()))
	if err := graphs.Try(func() {
		ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
		g.Output("logits", t.Config.Forward(&layers.Frozen{G: g, Tensors: t.Weights, DType: tensors.Float32}, ids, family.TeacherOptions{}).Logits)
	}); err != nil {
		return nil, err
	}
	env := &stages.Env{Ctx: ctx, Runtime: stages.ORT(rt), Dir: benchDir()}
	t0 := time.Now()
	s, err := env.Session(g)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	sessSecs := time.Since(t0).Seconds()
	ids := randomIDs(batch, seq, int(t.Config.Sizes().Vocab), 3)
	var times []float64
	in, keep := []stages.Feed{{Host: ids}}, []bool{!o.HostLogits}
	for i := 0; i < iters+1; i++ {
		ts := time.Now()
		_, dev, err := s.RunResident(in, keep)
		if err != nil {
			return nil, err
		}
		if dev[0] != nil {
			dev[0].Release()
		}
		if i > 0 { // the first run warms up allocators and kernels
			times = append(times, time.Since(ts).Seconds())
		}
	}
	ms := median(times) * 1000
	if err := s.Close(); err != nil { // records its arena statistics
		return nil, err
	}
	r := &ForwardResult{Model: model, Provider: rt.Provider(), Batch: batch, Seq: seq, Iters: iters,
		Precision: o.Precision, HostLogits: o.HostLogits, MsPerIter: ms, TokensPerS: float64(batch*seq) / (ms / 1000), SessionSecs: sessSecs}
	r.Arena, r.ArenaErrors = arenaUse(rt)
	return r, nil
}

// ArenaUse is one session's ONNX Runtime memory arena in the provider's
// memory (GPU memory under cuda): the peak its tensors held against what
// the arena reserved from the device (runtime.ArenaStats).
type ArenaUse struct {
	Session string `json:"session"`
	// Open marks a session still open when read (Upload and Fetch's copy
	// sessions, whose arena holds the uploaded state), read at the end.
	Open       bool  `json:"open,omitempty"`
	MaxInUse   int64 `json:"max_in_use_bytes"`
	Reserved   int64 `json:"reserved_bytes"` // TotalAllocated
	InUse      int64 `json:"in_use_bytes"`   // when read
	MaxAlloc   int64 `json:"max_alloc_bytes"`
	Allocs     int64 `json:"allocs"`
	Extensions int64 `json:"extensions"`
}

// arenaUse lists the arenas of rt's sessions (runtime.Env.ArenaStats) and,
// apart, why a session has none.
func arenaUse(rt *runtime.Env) ([]ArenaUse, []string) {
	var use []ArenaUse
	var errs []string
	for _, a := range rt.ArenaStats() {
		if a.Err != nil {
			errs = append(errs, a.Err.Error())
			continue
		}
		st := a.Stats
		use = append(use, ArenaUse{Session: a.Session, Open: a.Open, MaxInUse: st.MaxInUse, Reserved: st.TotalAllocated, InUse: st.InUse,
			MaxAlloc: st.MaxAllocSize, Allocs: st.NumAllocs, Extensions: st.NumArenaExtensions})
	}
	return use, errs
}

func randomIDs(batch, seq, vocab int, seed uint64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 9))
	v := make([]int64, batch*seq)
	for i := range v {
		v[i] = rng.Int64N(int64(vocab))
	}
	return tensors.FromInt64([]int64{int64(batch), int64(seq)}, v)
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// StageBenchOptions configure a training-stage throughput measurement.
type StageBenchOptions struct {
	Teacher      string `json:"teacher"` // teacher directory or "phi-1.5"
	Stage        string `json:"stage"`   // orient | align | distill | pretrain (student LM) | pretrain-teacher
	MicroBatch   int    `json:"micro_batch"`
	Seq          int    `json:"seq"`
	MicroBatches int    `json:"micro_batches"` // per optimizer step
	StepsPerRun  int    `json:"steps_per_run"`
	// Runs is the number of timed runs. They come after one warm-up run
	// and before one last run, neither of them timed: the first allocates
	// and searches algorithms, the last copies the state to the host (with
	// resident state, the only run that does).
	Runs int `json:"runs"`
	// StateOnHost copies parameters and moments to the host after every run
	// (the behaviour before resident state), for before/after comparisons.
	StateOnHost bool   `json:"state_on_host"`
	Precision   string `json:"precision"` // fp32 or bf16 (training.precision)
	// AllReduce adds AllReduce nodes over a group of one rank to the step
	// graph: AllReduceNone, AllReduceHost or AllReduceNCCL; AllReduceDType
	// (fp32 or bf16) and BucketMB shape them (train.AllReduce).
	AllReduce      string  `json:"all_reduce,omitempty"`
	AllReduceDType string  `json:"all_reduce_dtype,omitempty"`
	BucketMB       float64 `json:"bucket_mb,omitempty"`
	// Recompute and LossChunk are training.recompute and training.loss_chunk.
	Recompute string `json:"recompute,omitempty"`
	LossChunk int    `json:"loss_chunk,omitempty"`
	// MatrixKernels is training.matrix_kernels.
	MatrixKernels bool `json:"matrix_kernels,omitempty"`
	// BlockKernels is training.block_kernels, or the subset bench-stage's
	// --block-kernels names.
	BlockKernels graphs.BlockKernel `json:"block_kernels,omitempty"`
	Runtime      runtime.Config     `json:"-"`
}

// AllBlockKernels is training.block_kernels: true, every block kernel
// (graphs.AllBlockKernels).
const AllBlockKernels = graphs.AllBlockKernels

// BlockKernelsFlag is bench-stage's --block-kernels, a flag.Value for K:
// alone (a boolean flag) every block kernel, or =LIST the ones
// graphs.ParseBlockKernels reads.
type BlockKernelsFlag struct{ K *graphs.BlockKernel }

func (f *BlockKernelsFlag) String() string {
	if f == nil || f.K == nil {
		return ""
	}
	return f.K.String()
}

// Set reads s (graphs.ParseBlockKernels).
func (f *BlockKernelsFlag) Set(s string) error {
	k, err := graphs.ParseBlockKernels(s)
	*f.K = k
	return err
}

// IsBoolFlag lets --block-kernels stand alone.
func (f *BlockKernelsFlag) IsBoolFlag() bool { return true }

// StageResult is a training-stage throughput measurement.
type StageResult struct {
	StageBenchOptions
	Provider   string  `json:"provider"`
	TokensPerS float64 `json:"tokens_per_s"` // median of RunTokensPerS
	// RunTokensPerS is each timed run's throughput, in order; a run that
	// grew the device's memory arena shows up here as a slow one.
	RunTokensPerS []float64 `json:"run_tokens_per_s"`
	StepSeconds   float64   `json:"step_s"`
	FLOPsPerToken float64   `json:"flops_per_token"`
	TFLOPs        float64   `json:"tflops"`
	MFU790        float64   `json:"mfu_vs_790"`
	StudentParams int64     `json:"student_params"`
	TeacherParams int64     `json:"teacher_params"`
	PeakRSSBytes  int64     `json:"peak_rss_bytes"`
	TotalSecs     float64   `json:"total_s"` // graph build, session and every run
	// HostBytesPerSt is the host↔device traffic of one optimizer step,
	// counted from what each run feeds and fetches.
	HostBytesPerSt int64     `json:"host_bytes_per_step"`
	Losses         []float64 `json:"losses"` // every step's training loss
	// Arena is the memory arena of every session the stage ran, read as
	// each closed, then of those still open; ArenaErrors says why a session
	// has no statistics (e.g. its allocator keeps none).
	Arena       []ArenaUse `json:"arena"`
	ArenaErrors []string   `json:"arena_errors,omitempty"`
}

// checkPrecision refuses a precision name other than fp32, bf16 or none.
func (o StageBenchOptions) checkPrecision() error {
	if o.Precision != "" && !stages.KnownPrecision(o.Precision) {
		return fmt.Errorf("bench: precision %q: want fp32 or bf16", o.Precision)
	}
	return nil
}

// BenchStage measures one training stage's optimizer-step throughput on
// random tokens with the stage's real step graph.
func BenchStage(ctx context.Context, o StageBenchOptions, progress io.Writer) (*StageResult, error) {
	if err := o.checkPrecision(); err != nil {
		return nil, err
	}
	if o.Runs < 1 || o.StepsPerRun < 1 {
		return nil, fmt.Errorf("bench: --runs %d and --steps-per-run %d: want at least 1 timed run of at least 1 step", o.Runs, o.StepsPerRun)
	}
	env, err := benchEnv(o.Teacher, nil)
	if err != nil {
		return nil, err
	}
	t, sc := env.Teacher, env.Student.Config
	rt, err := runtime.Open(o.Runtime, progress)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	allReduce, release, err := oneRankAllReduce(o.AllReduce, o.AllReduceDType, o.BucketMB, o.Runtime.CUDA.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer release()
	n := (o.Runs + 2) * o.StepsPerRun
	vocab := int(t.Config.Sizes().Vocab)
	ids := randomIDs(1, (o.Seq+1)*o.MicroBatch*o.MicroBatches*(n+2), vocab, 5).Int64s()
	stream, err := data.FromTokens("random", ids, 0, vocab)
	if err != nil {
		return nil, err
	}
	// Throughput of the runs between the first and the last (steps of a
	// run share its throughput).
	var perRun, losses []float64
	log := &benchLog{metric: func(m map[string]any) {
		step, _ := m["step"].(int)
		run := (step - 1) / o.StepsPerRun
		if tp, ok := m["tokens_per_s"].(float64); ok && run >= 1 && run <= o.Runs && (step-1)%o.StepsPerRun == 0 {
			perRun = append(perRun, tp)
		}
		if l, ok := m["loss"].(float64); ok {
			losses = append(losses, l)
		}
	}}
	env = &stages.Env{Ctx: ctx, Runtime: stages.ORT(rt), Teacher: t, Student: env.Student, TrainData: stream, Seed: 1, Dir: benchDir(),
		Ckpt: noCheckpoints{}, Log: log, NonFinite: "stop", StateOnHost: o.StateOnHost}
	opt := stages.TrainOptions{Steps: n, MicroBatches: o.MicroBatches, MicroBatch: o.MicroBatch, SeqLen: o.Seq, LR: 1e-4,
		Opt: train.DefaultAdamW(), Schedule: stages.Schedule{Kind: "constant", TotalSteps: n}, StepsPerRun: o.StepsPerRun,
		Precision: o.Precision, AllReduce: allReduce, Recompute: o.Recompute, LossChunk: o.LossChunk, MatrixKernels: o.MatrixKernels, BlockKernels: o.BlockKernels}
	t0 := time.Now()
	switch o.Stage {
	case KindOrient, KindAlign:
		_, err = env.Orient(o.Stage, opt)
	case KindDistill:
		_, err = env.Distill(opt, stages.DistillOptions{Temperature: 1})
	case "pretrain":
		_, err = env.Pretrain(stages.PretrainStudent, opt)
	case "pretrain-teacher":
		_, err = env.Pretrain(stages.PretrainTeacher, opt)
	default:
		return nil, fmt.Errorf("bench: unknown stage %q (orient, align, distill, pretrain, pretrain-teacher)", o.Stage)
	}
	if err != nil {
		return nil, err
	}
	r := &StageResult{StageBenchOptions: o, Provider: rt.Provider(), StudentParams: sc.NumParams(), TeacherParams: t.Config.NumParams(),
		PeakRSSBytes: peakRSS(), TotalSecs: time.Since(t0).Seconds(), Losses: losses, RunTokensPerS: perRun, TokensPerS: median(perRun)}
	tokensPerStep := float64(o.MicroBatch * o.Seq * o.MicroBatches)
	if r.TokensPerS > 0 {
		r.StepSeconds = tokensPerStep / r.TokensPerS
	}
	r.FLOPsPerToken = stageFLOPs(o.Stage, t.Config, sc, o.Seq)
	r.TFLOPs = r.TokensPerS * r.FLOPsPerToken / 1e12
	r.MFU790 = r.TFLOPs / 790
	r.HostBytesPerSt = hostBytesPerStep(o, trainableShapes(o.Stage, t.Config, sc))
	r.Arena, r.ArenaErrors = arenaUse(rt) // the stage closed its sessions when it returned
	return r, nil
}

// trainableShapes lists the shapes of the tensors a stage trains.
func trainableShapes(stage string, t family.Teacher, sc family.Student) [][]int64 {
	var out [][]int64
	switch stage {
	case KindOrient, KindAlign:
		for i := 0; i < sc.Sizes().Layers; i++ {
			for _, name := range sc.MixerParams(i, stage == KindOrient) {
				out = append(out, sc.ParamShapes()[name])
			}
		}
	case "pretrain-teacher":
		for _, s := range t.ParamShapes() {
			out = append(out, s.Sizes())
		}
	default:
		for _, s := range sc.ParamShapes() {
			out = append(out, s)
		}
	}
	return out
}

// hostBytesPerStep is the host↔device traffic per optimizer step of the
// trainer's runs: each run feeds the batch block [S, K, B, T+1] (int64), S
// learning rates and the step, and fetches S·K losses, S gradient norms,
// S finite flags and S·P per-tensor gradient sums; with the state on the
// host, the parameters and both moments (float32) also go in and come back
// once per run. The end-of-stage copy is left out.
func hostBytesPerStep(o StageBenchOptions, trainable [][]int64) int64 {
	var elems int64
	for _, s := range trainable {
		elems += tensors.NumElements(s)
	}
	s, k, p := int64(o.StepsPerRun), int64(o.MicroBatches), int64(len(trainable))
	perRun := 8*s*k*int64(o.MicroBatch*(o.Seq+1)) + 4*(s+1) + 4*s*k + 4*s + s + 4*s*p
	if o.StateOnHost {
		perRun += 2 * 3 * 4 * elems
	}
	return perRun / s
}

// stageFLOPs estimates training FLOPs per token: 6·N for a model trained
// (forward + backward), 2·N for a forward only, plus attention/mixing terms.
func stageFLOPs(stage string, t family.Teacher, s family.Student, seq int) float64 {
	tn, sn := float64(t.NumParams()), float64(s.NumParams())
	ts := t.Sizes()
	attn := float64(4 * int64(ts.Layers) * int64(seq) * ts.Hidden) // QKᵀ and AV, forward
	emb := float64(2 * ts.Vocab * ts.Hidden)                       // lm_head
	switch stage {
	case KindDistill:
		return 6*sn + 2*tn + attn
	case "pretrain":
		return 6 * sn
	case "pretrain-teacher":
		return 6*tn + 3*attn
	case KindOrient, KindAlign:
		// teacher body forward, student mixers (in_proj, conv, SSD or M) fwd+bwd
		ss := s.Sizes()
		mix := float64(int64(ss.Layers) * (ss.InProj*ss.DModel + ss.DModel*ss.DInner))
		return 2*(tn-emb) + attn + 6*mix + 3*attn
	}
	return 0
}

// noCheckpoints discards checkpoints (benchmarks).
type noCheckpoints struct{}

func (noCheckpoints) Save(int, stages.Weights, stages.Meta) error { return nil }
func (noCheckpoints) Latest() (int, stages.Weights, stages.Meta, bool, error) {
	return 0, nil, stages.Meta{}, false, nil
}
func (n noCheckpoints) Sub(string) stages.Checkpointer { return n }

// benchLog hands metrics to a function and drops everything else.
type benchLog struct{ metric func(map[string]any) }

func (l *benchLog) Metric(m map[string]any)              { l.metric(m) }
func (l *benchLog) Printf(string, ...any)                {}
func (l *benchLog) Progress(string, int) stages.Progress { return nopProgress{} }

type nopProgress struct{}

func (nopProgress) Set(int, string) {}
func (nopProgress) Done()           {}

// peakRSS is the process's peak resident memory (VmHWM), 0 where unknown.
func peakRSS() int64 { return procStatus("VmHWM:") }

// benchDir is where benchmark sessions keep large exported graphs.
func benchDir() string { return filepath.Join(os.TempDir(), "mohawk-bench") }

// MixerResult is one mixer-form throughput measurement.
type MixerResult struct {
	Form       string  `json:"form"`
	Seq        int     `json:"seq"`
	Provider   string  `json:"provider"`
	MsPerCall  float64 `json:"ms_per_call"`
	TokensPerS float64 `json:"tokens_per_s"`
	UsPerToken float64 `json:"us_per_token"`
}

// BenchMixer times layer 0's mixer of the student derived from teacher
// (random weights) on one sequence of each length: the chunked SSD form,
// the materialised quadratic form (the naive baseline), and the recurrent
// step fed one token per session run with states carried by the caller.
func BenchMixer(ctx context.Context, teacher string, forms []string, seqs []int, iters int, rc runtime.Config, progress io.Writer) ([]MixerResult, error) {
	t, err := benchTeacher(teacher, nil)
	if err != nil {
		return nil, err
	}
	c, err := StudentConfigFor(t.Config, StudentConfig{})
	if err != nil {
		return nil, err
	}
	w := stages.Weights{}
	for name, shape := range c.ParamShapes() {
		if c.IsMixer(name) && strings.HasPrefix(name, c.LayerPrefix(0)+".") {
			w[name] = initTensor(name, shape, InitMohawk, 1)
		}
	}
	rt, err := runtime.Open(rc, progress)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	env := &stages.Env{Ctx: ctx, Runtime: stages.ORT(rt), Dir: benchDir()}
	var out []MixerResult
	for _, form := range forms {
		for _, seq := range seqs {
			r, err := benchMixerForm(env, c, w, form, seq, iters)
			if err != nil {
				return out, fmt.Errorf("mixer %s at T=%d: %w", form, seq, err)
			}
			r.Provider = rt.Provider()
			out = append(out, *r)
			if progress != nil {
				fmt.Fprintf(progress, "mixer %s T=%d: %.1f µs/token\n", form, seq, r.UsPerToken)
			}
		}
	}
	return out, nil
}

func benchMixerForm(env *stages.Env, c family.Student, w stages.Weights, form string, seq, iters int) (*MixerResult, error) {
	sz := c.Sizes()
	g := graphs.New("mixer_" + form)
	p := &layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}
	tokens := seq
	var feeds []*tensors.Tensor
	if err := graphs.Try(func() {
		switch form {
		case "ssd", "matrix":
			u := g.Input("u", tensors.Float32, graphs.S("batch", "seq", sz.DModel))
			f := family.FormSSD
			if form == "matrix" {
				f = family.FormMatrix
			}
			g.Output("out", c.Mixer(p, 0, u, f, nil).Out)
			feeds = []*tensors.Tensor{randomFloats(1, int64(seq), sz.DModel)}
		case "step":
			u := g.Input("u", tensors.Float32, graphs.S("batch", 1, sz.DModel))
			conv := g.Input("conv", tensors.Float32, graphs.S("batch", sz.ConvChannels, sz.DConv-1))
			ssm := g.Input("ssm", tensors.Float32, graphs.S("batch", sz.VHeads, sz.DState, sz.HeadDim))
			m := c.Mixer(p, 0, u, family.FormStep, &family.State{Conv: conv, SSM: ssm})
			g.Output("out", m.Out)
			g.Output("conv_next", m.State.Conv)
			g.Output("ssm_next", m.State.SSM)
			feeds = []*tensors.Tensor{randomFloats(1, 1, sz.DModel), tensors.Zeros(tensors.Float32, 1, sz.ConvChannels, sz.DConv-1),
				tensors.Zeros(tensors.Float32, 1, sz.VHeads, sz.DState, sz.HeadDim)}
		default:
			panic(&graphs.Error{Op: "bench-mixer", Msg: "unknown form " + form + " (ssd, matrix, step)"})
		}
	}); err != nil {
		return nil, err
	}
	s, err := env.Session(g)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	call := func() error {
		if form != "step" {
			_, err := s.Run(feeds)
			return err
		}
		for i := 0; i < seq; i++ { // one token per run, states carried
			o, err := s.Run(feeds)
			if err != nil {
				return err
			}
			feeds[1], feeds[2] = o[1], o[2]
		}
		return nil
	}
	var times []float64
	for i := 0; i < iters+1; i++ {
		t0 := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		if i > 0 {
			times = append(times, time.Since(t0).Seconds())
		}
	}
	sec := median(times)
	return &MixerResult{Form: form, Seq: seq, MsPerCall: sec * 1000, TokensPerS: float64(tokens) / sec, UsPerToken: sec / float64(tokens) * 1e6}, nil
}

func randomFloats(shape ...int64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(11, 13))
	v := make([]float32, tensors.NumElements(shape))
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFloat32(shape, v)
}
