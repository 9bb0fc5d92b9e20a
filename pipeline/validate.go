package pipeline

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"mohawk/hfconfig"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tokenizer"
)

// ValidationError lists every problem found in a config at once.
type ValidationError struct {
	Source   string
	Problems []string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem(s):", e.Source, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - " + p)
	}
	return b.String()
}

// Validate checks every value of cfg before any heavy work, including the
// files it names (teacher checkpoint, tokenizer, data) and their
// compatibility (teacher/student/tokenizer vocabularies), and reports all
// problems together.
func Validate(cfg *Config, source string) error {
	v := &validator{}
	v.check(cfg.Name != "" && !strings.ContainsAny(cfg.Name, `/\`), "name %q must be a non-empty plain name (it names the run directory)", cfg.Name)
	v.check(cfg.OutputDir != "", "output_dir is empty; set it to a directory for runs")
	teacherFromScratch := false
	for _, s := range cfg.Stages {
		if s.Kind == KindPretrain && s.Model != "student" && s.Scratch {
			teacherFromScratch = true
		}
	}
	// Teacher.
	var hc *hfconfig.Phi
	if cfg.Teacher.Path == "" {
		v.check(teacherFromScratch, "teacher.path is empty; point it at a Hugging Face Phi checkpoint directory (config.json + *.safetensors)")
	} else if !teacherFromScratch {
		dir := cfg.Resolve(cfg.Teacher.Path)
		h, err := hfconfig.Load(dir)
		if err != nil {
			v.add("teacher.path: %v", err)
		} else {
			hc = h
			if set, err := safetensors.OpenDir(dir); err != nil {
				v.add("teacher.path: %v", err)
			} else {
				if err := checkTeacherSet(dir, set, h); err != nil {
					v.add("teacher.path: %v", err)
				}
				set.Close()
			}
		}
	}
	// Tokenizer and vocabularies.
	tokPath := cfg.TokenizerPath()
	if tokPath == "" {
		v.add("data.tokenizer is empty and there is no teacher directory to take tokenizer.json from")
	} else if tok, err := tokenizer.Load(tokPath); err != nil {
		v.add("data.tokenizer: %v", err)
	} else {
		if _, ok := tok.SpecialID(EOSToken); !ok {
			v.add("data.tokenizer: %s has no %s token (needed as the document separator)", tokPath, EOSToken)
		}
		if hc != nil && tok.VocabSize() > hc.VocabSize {
			v.add("vocabulary mismatch: tokenizer %s has %d tokens but the teacher's embedding has %d rows", tokPath, tok.VocabSize(), hc.VocabSize)
		}
	}
	if cfg.Student.Path != "" {
		dir := cfg.Resolve(cfg.Student.Path)
		if s, err := LoadStudent(dir, 1e-5); err != nil {
			v.add("student.path: %v", err)
		} else if hc != nil && s.Config.Vocab != int64(hc.VocabSize) {
			v.add("vocabulary mismatch: student %s has %d embedding rows, the teacher %d", dir, s.Config.Vocab, hc.VocabSize)
		}
	}
	switch cfg.Student.Init {
	case InitMohawk, InitAttention:
	default:
		v.add("student.init %q: want %q or %q", cfg.Student.Init, InitMohawk, InitAttention)
	}
	for _, f := range []struct {
		name string
		val  int64
	}{{"d_state", cfg.Student.DState}, {"heads", cfg.Student.Heads}, {"d_conv", cfg.Student.DConv}, {"chunk_size", cfg.Student.ChunkSize}, {"expand", cfg.Student.Expand}} {
		v.check(f.val >= 0, "student.%s %d must not be negative", f.name, f.val)
	}
	// Data.
	v.check(len(cfg.Data.Train) > 0, "data.train lists no files; add at least one {path: ...}")
	for i, s := range cfg.Data.Train {
		v.source(fmt.Sprintf("data.train[%d]", i), s, cfg)
	}
	for i, s := range cfg.Data.Val {
		v.source(fmt.Sprintf("data.val[%d]", i), s, cfg)
	}
	if len(cfg.Data.Val) == 0 {
		v.check(cfg.Data.ValFraction > 0 && cfg.Data.ValFraction < 1, "data.val is empty and data.val_fraction %g is not in (0, 1); give held-out files or a fraction", cfg.Data.ValFraction)
	} else {
		v.check(cfg.Data.ValFraction == 0, "data.val_fraction is set although data.val lists files; use one or the other")
	}
	// Training defaults.
	t := cfg.Training
	v.check(t.SeqLen > 0, "training.seq_len %d must be positive", t.SeqLen)
	v.check(t.MicroBatch > 0, "training.micro_batch %d must be positive", t.MicroBatch)
	v.optimizer("training.optimizer", t.Optimizer)
	v.schedule("training.schedule", t.Schedule)
	v.check(t.EvalWindows >= 0 && t.EvalEvery >= 0 && t.CheckpointEvery >= 0, "training.eval_every, eval_windows and checkpoint_every must not be negative")
	v.check(t.StepsPerRun >= 1, "training.steps_per_run %d must be at least 1", t.StepsPerRun)
	v.check(stages.KnownPrecision(t.Precision), "training.precision %q must be fp32 or bf16", t.Precision)
	// Stages.
	v.check(len(cfg.Stages) > 0, "stages is empty; list at least one stage (e.g. {kind: eval})")
	names := map[string]bool{}
	fractions := 0.0
	for i, s := range cfg.Stages {
		where := fmt.Sprintf("stages[%d]", i)
		name := s.Name
		if name == "" {
			name = s.Kind
		}
		v.check(!names[name], "%s: stage name %q is used twice; give stages distinct names", where, name)
		names[name] = true
		v.stage(where, s, cfg)
		fractions += s.Fraction
	}
	v.check(fractions <= 1+1e-9, "stage fractions add up to %g > 1", fractions)
	// Eval, runtime, checkpoints.
	e := cfg.Eval
	v.check(e.Windows > 0 && e.SeqLen > 0, "eval.windows %d and eval.seq_len %d must be positive", e.Windows, e.SeqLen)
	v.check(e.LastWord >= 0, "eval.last_word %d must not be negative", e.LastWord)
	for i, task := range e.Tasks {
		where := fmt.Sprintf("eval.tasks[%d]", i)
		v.check(task.Name != "", "%s: name is empty", where)
		v.file(where+".path", cfg.Resolve(task.Path))
		switch task.Kind {
		case "hellaswag", "piqa", "arc", "winogrande", "generic":
		default:
			v.add("%s: kind %q: want hellaswag, piqa, arc, winogrande or generic", where, task.Kind)
		}
	}
	for _, m := range e.Models {
		v.check(m == "teacher" || m == "student", "eval.models: %q is neither teacher nor student", m)
	}
	if err := cfg.Runtime.Validate(); err != nil {
		v.add("runtime: %v", err)
	}
	ck := cfg.Checkpoints
	v.check(ck.KeepLast >= 1, "checkpoints.keep_last %d must be at least 1", ck.KeepLast)
	v.check(ck.OnNonFinite == "stop" || ck.OnNonFinite == "rollback", "checkpoints.on_nonfinite %q: want stop or rollback", ck.OnNonFinite)
	v.check(ck.RollbackLRFactor > 0 && ck.RollbackLRFactor <= 1, "checkpoints.rollback_lr_factor %g must be in (0, 1]", ck.RollbackLRFactor)
	if len(v.problems) > 0 {
		return &ValidationError{Source: source, Problems: v.problems}
	}
	return nil
}

type validator struct{ problems []string }

func (v *validator) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *validator) check(ok bool, format string, args ...any) {
	if !ok {
		v.add(format, args...)
	}
}

func (v *validator) file(key, path string) {
	if path == "" {
		v.add("%s is empty", key)
		return
	}
	if fi, err := os.Stat(path); err != nil {
		v.add("%s: %s does not exist", key, path)
	} else if fi.IsDir() {
		v.add("%s: %s is a directory, not a file", key, path)
	}
}

func (v *validator) source(key string, s Source, cfg *Config) {
	v.file(key+".path", cfg.Resolve(s.Path))
	switch s.Format {
	case "", "text":
		v.check(s.Field == "", "%s.field applies to jsonl sources only", key)
	case "jsonl":
		v.check(s.Separator == "", "%s.separator applies to text sources only", key)
	default:
		v.add("%s.format %q: want text or jsonl", key, s.Format)
	}
}

func (v *validator) optimizer(key string, o OptimizerConfig) {
	v.check(o.LR > 0 && o.LR <= math.MaxFloat32, "%s.lr %g must be positive and finite as a float32", key, o.LR)
	v.check(o.Beta1 >= 0 && o.Beta1 < 1 && o.Beta2 >= 0 && o.Beta2 < 1, "%s betas (%g, %g) must lie in [0, 1)", key, o.Beta1, o.Beta2)
	v.check(o.Eps > 0, "%s.eps %g must be positive", key, o.Eps)
	v.check(o.WeightDecay >= 0, "%s.weight_decay %g must not be negative", key, o.WeightDecay)
	v.check(o.ClipNorm >= 0, "%s.clip_norm %g must not be negative (0 disables clipping)", key, o.ClipNorm)
}

func (v *validator) schedule(key string, s ScheduleConfig) {
	if err := toSchedule(s, 1).Validate(); err != nil {
		v.add("%s: %v", key, err)
	}
}

// stage checks one stage entry, including fields that do not apply to its
// kind.
func (v *validator) stage(where string, s StageConfig, cfg *Config) {
	training := s.Kind == KindPretrain || s.Kind == KindOrient || s.Kind == KindAlign || s.Kind == KindDistill
	switch s.Kind {
	case KindPretrain, KindOrient, KindAlign, KindDistill, KindEval, KindExport:
	default:
		v.add("%s: kind %q: want pretrain, orient, align, distill, eval or export", where, s.Kind)
		return
	}
	notFor := func(field string, set bool) {
		v.check(!set, "%s: %s does not apply to %s stages", where, field, s.Kind)
	}
	if training {
		switch {
		case s.Tokens > 0 && s.Fraction > 0:
			v.add("%s: give tokens or fraction, not both", where)
		case s.Fraction > 0:
			v.check(cfg.Budget > 0, "%s: fraction %g needs a run-wide budget (set budget: <tokens>)", where, s.Fraction)
		default:
			v.check(s.Tokens > 0, "%s: tokens must be positive (the stage's training budget)", where)
		}
		v.check(s.LR >= 0 && s.LR <= math.MaxFloat32, "%s: lr %g must not be negative and must be finite as a float32", where, s.LR)
		if s.Schedule != nil {
			v.schedule(where+".schedule", *s.Schedule)
		}
		v.check(s.SeqLen >= 0 && s.MicroBatch >= 0 && s.TokensPerUpdate >= 0, "%s: seq_len, micro_batch and tokens_per_update must not be negative", where)
	} else {
		notFor("tokens", s.Tokens != 0)
		notFor("fraction", s.Fraction != 0)
		notFor("lr", s.LR != 0)
		notFor("schedule", s.Schedule != nil)
		notFor("seq_len", s.SeqLen != 0)
		notFor("micro_batch", s.MicroBatch != 0)
		notFor("tokens_per_update", s.TokensPerUpdate != 0)
	}
	if s.Kind != KindDistill {
		notFor("temperature", s.Temperature != 0)
		notFor("hard_label_weight", s.HardLabelWeight != 0)
		notFor("trainable", s.Trainable != "")
	} else {
		v.check(s.Temperature >= 0, "%s: temperature %g must not be negative", where, s.Temperature)
		v.check(s.HardLabelWeight >= 0 && s.HardLabelWeight <= 1, "%s: hard_label_weight %g must lie in [0, 1]", where, s.HardLabelWeight)
		v.check(s.Trainable == "" || s.Trainable == "all" || s.Trainable == "mixers", "%s: trainable %q: want all or mixers", where, s.Trainable)
	}
	if s.Kind != KindPretrain {
		notFor("model", s.Model != "")
		notFor("scratch", s.Scratch)
		notFor("architecture", s.Architecture != nil)
		notFor("save_dtype", s.SaveDType != "")
	} else {
		v.check(s.SaveDType == "" || s.SaveDType == "float32" || s.SaveDType == "float16", "%s: save_dtype %q: want float32 or float16", where, s.SaveDType)
		v.check(s.Model == "" || s.Model == "teacher" || s.Model == "student", "%s: model %q: want teacher or student", where, s.Model)
		if s.Architecture != nil {
			v.check(s.Scratch && s.Model != "student", "%s: architecture applies to a teacher pretrained from scratch (model: teacher, scratch: true)", where)
			a := s.Architecture
			v.check(a.Vocab > 0 && a.Hidden > 0 && a.Layers > 0 && a.Heads > 0 && a.Intermediate > 0, "%s.architecture: sizes must be positive", where)
			v.check(a.Heads > 0 && a.Hidden%max(a.Heads, 1) == 0, "%s.architecture: hidden %d not divisible by heads %d", where, a.Hidden, a.Heads)
		}
	}
	if s.Kind != KindOrient && s.Kind != KindAlign {
		notFor("layer_group", s.LayerGroup != 0)
	} else {
		v.check(s.LayerGroup >= 0, "%s: layer_group %d must not be negative (0 trains all layers at once)", where, s.LayerGroup)
	}
	if s.Kind != KindExport {
		notFor("out", s.Out != "")
		notFor("fp16", s.FP16)
		notFor("opset", s.Opset != 0)
		notFor("teacher", s.Teacher)
	} else {
		v.check(s.Opset == 0 || (s.Opset >= 21 && s.Opset <= 26), "%s: opset %d: ONNX Runtime 1.29 runs opsets 21 to 26 for these graphs", where, s.Opset)
	}
}

// EOSToken is the document separator every tokenizer must have.
const EOSToken = "<|endoftext|>"

// TokenizerPath is data.tokenizer or the teacher's tokenizer.json.
func (c *Config) TokenizerPath() string {
	if c.Data.Tokenizer != "" {
		return c.Resolve(c.Data.Tokenizer)
	}
	if c.Teacher.Path != "" {
		return filepath.Join(c.Resolve(c.Teacher.Path), "tokenizer.json")
	}
	return ""
}
