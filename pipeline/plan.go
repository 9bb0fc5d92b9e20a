package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/models/family"
	"mohawk/graphs/train"
	"mohawk/stages"
)

// StagePlan is one resolved stage: everything it will do, decided before
// any heavy work.
type StagePlan struct {
	Index        int                    `json:"index"`
	Name         string                 `json:"name"`
	Kind         string                 `json:"kind"`
	Train        *stages.TrainOptions   `json:"train,omitempty"`
	Distill      *stages.DistillOptions `json:"distill,omitempty"`
	PretrainWhat string                 `json:"pretrain_model,omitempty"`
	Scratch      bool                   `json:"scratch,omitempty"`
	Architecture *ArchConfig            `json:"architecture,omitempty"`
	SaveDType    string                 `json:"save_dtype,omitempty"`
	Export       *ExportPlan            `json:"export,omitempty"`
	// Attention lists a hybrid student's attention layers: Stages 1 and 2
	// skip them, Stage 3 trains them unless Distill.FreezeAttention.
	Attention []int  `json:"attention_layers,omitempty"`
	Hash      string `json:"hash"`
	Dir       string `json:"dir"`
}

// ExportPlan is an export stage's settings.
type ExportPlan struct {
	Out     string `json:"out"`
	FP16    bool   `json:"fp16"`
	Opset   int    `json:"opset"`
	Teacher bool   `json:"teacher"`
}

// Plan is a whole run, resolved.
type Plan struct {
	Name        string      `json:"name"`
	RunDir      string      `json:"run_dir"`
	Stages      []StagePlan `json:"stages"`
	TotalTokens int64       `json:"total_tokens"`
	Memory      Memory      `json:"memory"`
}

// Memory is the planned peak host/device memory of the largest stage.
type Memory struct {
	TeacherBytes    int64  `json:"teacher_bytes"`
	StudentBytes    int64  `json:"student_bytes"`
	OptimizerBytes  int64  `json:"optimizer_bytes"`
	ActivationBytes int64  `json:"activation_bytes"`
	TotalBytes      int64  `json:"total_bytes"`
	LargestStage    string `json:"largest_stage"`
}

func toSchedule(s ScheduleConfig, steps int) stages.Schedule {
	return stages.Schedule{Kind: s.Kind, Warmup: s.Warmup, Decay: s.Decay, MinRatio: s.MinLRRatio, TotalSteps: steps}
}

// Identity fingerprints the inputs a run's stage outputs depend on.
type Identity struct {
	Teacher string
	Data    string
	Student string
}

// MakePlan resolves stages: token budgets into steps and gradient
// accumulation, per-stage overrides, and the hash chain that keys each
// stage's output (a stage whose hash and outputs exist is not redone).
func MakePlan(cfg *Config, id Identity, tc family.Teacher, sc family.Student) (*Plan, error) {
	p := &Plan{Name: cfg.Name, RunDir: filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name)}
	prev := sha256Hex(id.Teacher, id.Data, id.Student, fmt.Sprint(cfg.Seed))
	for i, s := range cfg.Stages {
		name := s.Name
		if name == "" {
			name = s.Kind
		}
		sp := StagePlan{Index: i, Name: name, Kind: s.Kind}
		if s.Kind == KindOrient || s.Kind == KindAlign || s.Kind == KindDistill {
			sp.Attention = sc.Sizes().AttnLayers
		}
		switch s.Kind {
		case KindPretrain, KindOrient, KindAlign, KindDistill:
			o, err := trainOptions(cfg, s)
			if err != nil {
				return nil, fmt.Errorf("stages[%d] (%s): %w", i, name, err)
			}
			sp.Train = &o
			p.TotalTokens += int64(o.Steps * o.MicroBatches * o.MicroBatch * o.SeqLen)
		}
		switch s.Kind {
		case KindDistill:
			sp.Distill = &stages.DistillOptions{Temperature: s.Temperature, HardLabelWeight: s.HardLabelWeight, MixersOnly: s.Trainable == "mixers",
				FreezeAttention: len(sc.Sizes().AttnLayers) > 0 && !cfg.Student.TrainAttention}
			if sp.Distill.Temperature == 0 {
				sp.Distill.Temperature = 1
			}
		case KindPretrain:
			sp.PretrainWhat, sp.Scratch, sp.Architecture, sp.SaveDType = s.Model, s.Scratch, s.Architecture, s.SaveDType
			if sp.PretrainWhat == "" {
				sp.PretrainWhat = "teacher"
			}
		case KindExport:
			out := s.Out
			if out == "" {
				out = filepath.Join(p.RunDir, "export")
			} else {
				out = cfg.Resolve(out)
			}
			sp.Export = &ExportPlan{Out: out, FP16: s.FP16, Opset: s.Opset, Teacher: s.Teacher}
		}
		body, _ := json.Marshal(struct {
			S  StagePlan
			Ev EvalConfig
		}{sp, cfg.Eval})
		sp.Hash = sha256Hex(prev, string(body))[:16]
		prev = sp.Hash
		sp.Dir = filepath.Join(p.RunDir, "stages", fmt.Sprintf("%02d-%s", i, name))
		p.Stages = append(p.Stages, sp)
	}
	p.Memory = estimateMemory(p, tc, sc)
	return p, nil
}

// trainOptions resolves a training stage's budget and shape.
func trainOptions(cfg *Config, s StageConfig) (stages.TrainOptions, error) {
	t := cfg.Training
	seq, mb, tpu := pick(s.SeqLen, t.SeqLen), pick(s.MicroBatch, t.MicroBatch), pick(s.TokensPerUpdate, t.TokensPerUpdate)
	perMicro := seq * mb
	if tpu < perMicro {
		tpu = perMicro
	}
	if tpu%perMicro != 0 {
		return stages.TrainOptions{}, fmt.Errorf("tokens_per_update %d is not a multiple of micro_batch × seq_len = %d", tpu, perMicro)
	}
	tokens := s.Tokens
	if s.Fraction > 0 {
		tokens = int64(s.Fraction * float64(cfg.Budget))
	}
	steps := int(tokens / int64(tpu))
	if steps < 1 {
		return stages.TrainOptions{}, fmt.Errorf("budget of %d tokens is less than one update of %d tokens", tokens, tpu)
	}
	lr := t.Optimizer.LR
	if s.LR > 0 {
		lr = s.LR
	}
	sch := t.Schedule
	if s.Schedule != nil {
		sch = *s.Schedule
	}
	o := t.Optimizer
	return stages.TrainOptions{
		Tokens: tokens, Steps: steps, MicroBatches: tpu / perMicro, MicroBatch: mb, SeqLen: seq, LR: lr,
		Opt:      train.AdamW{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay, ClipNorm: o.ClipNorm},
		Schedule: toSchedule(sch, steps), EvalEvery: t.EvalEvery, EvalWindows: t.EvalWindows, CheckpointEvery: t.CheckpointEvery,
		StepsPerRun: t.StepsPerRun, LayerGroup: s.LayerGroup, Precision: precisionOption(t.Precision),
		Recompute: recomputeOption(t.Recompute), LossChunk: t.LossChunk, MatrixKernels: t.MatrixKernels, BlockKernels: blockKernels(t.BlockKernels),
	}, nil
}

// precisionOption leaves float32 unnamed, so plans (and their hashes) of
// float32 runs are the same as before the setting existed.
func precisionOption(p string) string {
	if p == stages.PrecisionFP32 {
		return ""
	}
	return p
}

// recomputeOption leaves "none" unnamed, as precisionOption does float32.
func recomputeOption(r string) string {
	if r == "none" {
		return ""
	}
	return r
}

// blockKernels is training.block_kernels' set: all of them or none.
func blockKernels(on bool) graphs.BlockKernel {
	if on {
		return graphs.AllBlockKernels
	}
	return 0
}

func pick(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

func sha256Hex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// estimateMemory is a planning figure for the largest training stage: the
// frozen teacher's weights (bfloat16 under precision bf16, as the step
// graph holds them), the student's float32 parameters and AdamW's two
// moments (plus the accumulated gradient with several micro-batches; the
// update is in place, so no second copy of the state), and the larger of
// the gradients and the activations one micro-batch keeps for the backward
// pass (which frees the latter as it makes the former):
//   - per layer a multiple of the hidden and MLP widths per token (larger
//     in float32, where the products' saved operands are not bfloat16; a
//     single layer's worth plus every layer's input with recompute: layers),
//   - materialised attention matrices where a graph has them: Stage 1's
//     targets and its student's mixing matrices, and the attention layers a
//     step trains (the teacher's in pretraining, a hybrid's kept ones in
//     Stage 3); the frozen teacher's fused attention keeps none,
//   - Stage 3's and pretraining's [B, T, V] logits and their adjoints
//     (lossBytes).
//
// TestEstimateMemoryMatchesLiveness holds it within 10% of the liveness
// analysis of the step graph; at Phi-1.5 shape (Stage 3, micro-batch
// 4 × 2048, bf16) it gives 57.5 GB, the analysis 53.3 GB, and an H100
// showed 56.2 GB (docs/benchmarks.md). With recompute: layers ONNX Runtime
// needs far more than either (its order runs the recomputed layers early).
func estimateMemory(p *Plan, tc family.Teacher, sc family.Student) Memory {
	ts := tc.Sizes()
	m := Memory{TeacherBytes: 4 * tc.NumParams(), StudentBytes: 4 * sc.NumParams()}
	for _, s := range p.Stages {
		o := s.Train
		if o == nil {
			continue
		}
		b, t := int64(o.MicroBatch), int64(o.SeqLen)
		l, d, f := int64(ts.Layers), ts.Hidden, ts.Intermediate
		if g := int64(o.LayerGroup); g > 0 && g < l && (s.Kind == KindOrient || s.Kind == KindAlign) {
			l = g // one layer group's activations at a time
		}
		perLayer := 4 * b * t * (12*d + 2*f) // hidden states, projections, MLP
		if o.Precision != stages.PrecisionBF16 {
			perLayer = 4 * b * t * (19*d + 3*f) // float32 operands saved where bf16 saves their casts
		}
		act := l * perLayer
		if o.Recompute == stages.RecomputeLayers {
			act = perLayer + l*4*b*t*d // one layer rebuilt at a time, every layer's input kept
		}
		attn := 4 * b * ts.Heads * t * t * 2 // one attention layer's scores and probabilities
		switch s.Kind {
		case KindOrient:
			act += l * (attn + 4*b*sc.Sizes().VHeads*t*t*6) // targets; M, L, segsum and their adjoints
		case KindPretrain:
			if s.PretrainWhat == "teacher" {
				act += l * attn
			}
		case KindDistill:
			if s.Distill == nil || !s.Distill.FreezeAttention {
				act += int64(len(s.Attention)) * attn
			}
		}
		if s.Kind == KindDistill || s.Kind == KindPretrain {
			act += lossBytes(s, o, 4*ts.Vocab)
		}
		if act > m.ActivationBytes {
			m.ActivationBytes, m.LargestStage = act, s.Name
			state := int64(2) // two moments
			if o.MicroBatches > 1 {
				state++ // the accumulated gradient
			}
			m.OptimizerBytes = state * m.StudentBytes
			m.TeacherBytes = 4 * tc.NumParams()
			if o.Precision == stages.PrecisionBF16 {
				m.TeacherBytes = 2 * tc.NumParams()
			}
		}
	}
	m.ActivationBytes = max(m.ActivationBytes, m.StudentBytes) // the gradients at the update
	m.TotalBytes = m.TeacherBytes + m.StudentBytes + m.OptimizerBytes + m.ActivationBytes
	return m
}

// lossBytes is what a Stage 3 or pretraining step's loss keeps of [B, T,
// V] tensors (perToken: a float32 logit row's bytes), in halves of one
// float32 [B, T, V]: the fused soft cross-entropy (graphs.SoftCrossEntropy)
// keeps the student's float32 logits and their adjoint (4) and the
// teacher's logits as they are (1 in bfloat16, 2 in float32), plus a
// log-softmax and its adjoint for a hard-label term (4); pretraining's
// token cross-entropy keeps the logits, the log-softmax and their adjoints
// (8). With loss_chunk a chunk's worth of these is live at a time, beside
// the teacher's whole logits.
func lossBytes(s StagePlan, o *stages.TrainOptions, perToken int64) int64 {
	b, t := int64(o.MicroBatch), int64(o.SeqLen)
	halves := int64(8)
	if s.Kind == KindDistill {
		halves = 4 + 2
		if o.Precision == stages.PrecisionBF16 {
			halves = 4 + 1
		}
		if s.Distill != nil && s.Distill.HardLabelWeight > 0 {
			halves += 4
		}
	}
	if c := int64(o.LossChunk); c > 0 && c < t {
		return b*c*perToken*halves/2 + b*t*perToken
	}
	return b * t * perToken * halves / 2
}

// Print writes the plan as a human-readable table.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "plan %q → %s\n", p.Name, p.RunDir)
	for _, s := range p.Stages {
		line := fmt.Sprintf("  %d. %-10s %-9s", s.Index+1, s.Name, s.Kind)
		if o := s.Train; o != nil {
			line += fmt.Sprintf(" %s tokens = %d steps × %d micro-batches × %d × %d, lr %g (%s)",
				humanCount(int64(o.Steps*o.MicroBatches*o.MicroBatch*o.SeqLen)), o.Steps, o.MicroBatches, o.MicroBatch, o.SeqLen, o.LR, o.Schedule.Kind)
		}
		if s.Export != nil {
			line += " → " + s.Export.Out
		}
		if len(s.Attention) > 0 {
			switch {
			case s.Kind != KindDistill:
				line += fmt.Sprintf("; skips attention layers %v", s.Attention)
			case s.Distill.FreezeAttention:
				line += fmt.Sprintf("; attention layers %v frozen", s.Attention)
			default:
				line += fmt.Sprintf("; trains attention layers %v too", s.Attention)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	m := p.Memory
	fmt.Fprintf(w, "  tokens %s; memory ≈ %s (teacher %s, student %s, optimizer %s, activations %s in %s)\n",
		humanCount(p.TotalTokens), stages.HumanBytes(m.TotalBytes), stages.HumanBytes(m.TeacherBytes), stages.HumanBytes(m.StudentBytes),
		stages.HumanBytes(m.OptimizerBytes), stages.HumanBytes(m.ActivationBytes), m.LargestStage)
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// Fingerprint identifies a file or directory's content cheaply: sizes, and
// the SHA-256 of files up to 64 MiB (of the first and last MiB beyond). A
// path that does not exist but is a glob (data.path: data/train-*.parquet)
// stands for its matches, by name and content, in lexical order.
func Fingerprint(paths ...string) (string, error) {
	h := sha256.New()
	var roots []string
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil || !strings.ContainsAny(p, "*?[") {
			roots = append(roots, p)
			continue
		}
		matches, err := filepath.Glob(p)
		if err != nil || len(matches) == 0 {
			return "", fmt.Errorf("fingerprint %s: the pattern matches no file", p)
		}
		for _, m := range matches {
			fmt.Fprintf(h, "%s:", filepath.Base(m))
		}
		roots = append(roots, matches...)
	}
	for _, p := range roots {
		if p == "" {
			continue
		}
		err := filepath.Walk(p, func(path string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode()&os.ModeSymlink != 0 {
				fi, err = os.Stat(path) // a hub-cache snapshot's link: size the blob
			}
			if err != nil || fi.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(p, path)
			if !fi.Mode().IsRegular() {
				// A FIFO or device cannot be read twice (or ever ends):
				// identified by its name and type.
				fmt.Fprintf(h, "%s:%v;", rel, fi.Mode().Type())
				return nil
			}
			fmt.Fprintf(h, "%s:%d;", rel, fi.Size())
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if fi.Size() <= 64<<20 {
				_, err = io.Copy(h, f)
				return err
			}
			if _, err := io.CopyN(h, f, 1<<20); err != nil {
				return err
			}
			if _, err := f.Seek(-1<<20, io.SeekEnd); err != nil {
				return err
			}
			_, err = io.Copy(h, f)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
