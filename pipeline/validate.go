package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"mohawk/data"
	"mohawk/graphs/models/family"
	"mohawk/hfconfig"
	"mohawk/runtime"
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
// compatibility (teacher/student/tokenizer vocabularies, sequence lengths
// against the teacher's positions and the machine's memory), and reports
// all problems together. Run calls it too, so a config that validates is
// one run accepts.
func Validate(cfg *Config, source string) error {
	v := &validator{}
	v.check(cfg.Name != "" && !strings.ContainsAny(cfg.Name, `/\`), "name %q must be a non-empty plain name (it names the run directory)", cfg.Name)
	v.check(cfg.OutputDir != "", "output_dir is empty; set it to a directory for runs")
	if v.directory("output_dir", cfg.Resolve(cfg.OutputDir)) && cfg.OutputDir != "" && cfg.Name != "" {
		v.directory("the run directory output_dir/name", filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name))
	}
	if cfg.Data.CacheDir != "" {
		v.directory("data.cache_dir", cfg.Resolve(cfg.Data.CacheDir))
	}
	m := v.teacher(cfg)
	v.tokenizer(cfg, m)
	v.student(cfg, m)
	v.data(cfg)
	v.training(cfg, m)
	v.stages(cfg)
	v.eval(cfg, m)
	if err := cfg.Runtime.Validate(); err != nil {
		v.add("runtime: %v", err)
	}
	ck := cfg.Checkpoints
	v.check(ck.KeepLast >= 1, "checkpoints.keep_last %d must be at least 1", ck.KeepLast)
	v.check(ck.OnNonFinite == "stop" || ck.OnNonFinite == "rollback", "checkpoints.on_nonfinite %q: want stop or rollback", ck.OnNonFinite)
	v.number("checkpoints.rollback_lr_factor", ck.RollbackLRFactor, interval{0, 1, true, false})
	v.check(ck.MaxRollbacks >= 0, "checkpoints.max_rollbacks %d must not be negative", ck.MaxRollbacks)
	if len(v.problems) > 0 {
		return &ValidationError{Source: source, Problems: v.problems}
	}
	return nil
}

// teacherFacts are what the other checks need of the teacher: its
// embedding rows, positions and attention heads, and where they come from.
// Rows is 0 when the teacher could not be read.
type teacherFacts struct {
	// Config is the teacher's architecture, nil when it could not be read.
	Config    family.Teacher
	Rows      int64
	Positions int
	Heads     int64
	Layers    int
	From      string
}

// teacher checks the teacher checkpoint (every tensor the config implies,
// no other) or, for a teacher pretrained from scratch, takes its
// architecture.
func (v *validator) teacher(cfg *Config) teacherFacts {
	var scratch *ArchConfig
	fromScratch := false
	for _, s := range cfg.Stages {
		if s.Kind == KindPretrain && s.Model != "student" && s.Scratch {
			fromScratch, scratch = true, s.Architecture
		}
	}
	switch {
	case fromScratch && scratch != nil && scratch.Config != "":
		c, err := LoadTeacherConfig(cfg.Resolve(scratch.Config))
		if err != nil {
			v.add("architecture.config: %v", err)
			return teacherFacts{}
		}
		return factsOf(c, "the pretrain stage's architecture.config "+scratch.Config)
	case fromScratch && scratch != nil:
		if _, err := family.ByName(cmp.Or(scratch.Family, DefaultArchFamily)); err != nil {
			v.add("architecture.family: %v", err)
		}
		return teacherFacts{Rows: int64(scratch.Vocab), Positions: hfconfig.DefaultMaxPositionEmbeddings, Heads: int64(scratch.Heads), Layers: scratch.Layers, From: "the pretrain stage's architecture"}
	case fromScratch:
		return teacherFacts{}
	case cfg.Teacher.Path == "":
		v.add("teacher.path is empty; point it at a Hugging Face checkpoint directory (config.json + *.safetensors) of a supported architecture: %s", family.Supported())
		return teacherFacts{}
	}
	dir := cfg.Resolve(cfg.Teacher.Path)
	c, err := LoadTeacherConfig(dir)
	if err != nil {
		v.add("teacher.path: %v", err)
		return teacherFacts{}
	}
	if set, err := safetensors.OpenDir(dir); err != nil {
		v.add("teacher.path: %v", err)
	} else {
		if err := checkTeacherSet(dir, set, c); err != nil {
			v.add("teacher.path: %v", err)
		}
		set.Close()
	}
	return factsOf(c, filepath.Join(dir, hfconfig.FileName))
}

// factsOf are the facts of teacher c, read from source.
func factsOf(c family.Teacher, source string) teacherFacts {
	s := c.Sizes()
	return teacherFacts{Config: c, Rows: s.Vocab, Positions: s.MaxPositions, Heads: s.Heads, Layers: s.Layers, From: source}
}

// tokenizer checks the tokenizer file, its end-of-text token, and that
// every id it can produce has a row in the teacher's embedding.
func (v *validator) tokenizer(cfg *Config, m teacherFacts) {
	tokPath := cfg.TokenizerPath()
	if tokPath == "" {
		v.add("data.tokenizer is empty and there is no teacher directory to take tokenizer.json from")
		return
	}
	if !v.file("data.tokenizer", tokPath) {
		return
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		v.add("data.tokenizer: %v", err)
		return
	}
	if _, _, err := tokenizer.EndOfText(tokPath, tok); err != nil {
		v.add("data.tokenizer: %v (it ends every document)", err)
	}
	if m.Rows > 0 {
		if err := tok.CheckFits(m.Rows, "the teacher ("+m.From+")"); err != nil {
			v.add("%v", err)
		}
	}
}

// allAttention refuses Stages 1 and 2 for a student whose every layer is
// attention: they fit SSM mixers, and such a student has none.
func (v *validator) allAttention(cfg *Config) {
	for i, st := range cfg.Stages {
		if st.Kind == KindOrient || st.Kind == KindAlign {
			v.add("stages[%d] (%s): student.attention_layers %s keeps every layer as attention, so the student has no SSM mixer for Stage %s to fit; drop the stage or keep fewer attention layers",
				i, st.Kind, cfg.Student.AttentionLayers, map[string]string{KindOrient: "1", KindAlign: "2"}[st.Kind])
		}
	}
}

// student checks a student checkpoint to start from and the student
// overrides.
func (v *validator) student(cfg *Config, m teacherFacts) {
	if cfg.Student.Path != "" {
		dir := cfg.Resolve(cfg.Student.Path)
		if s, err := LoadStudent(dir, 1e-5); err != nil {
			v.add("student.path: %v", err)
		} else {
			if rows := s.Config.Sizes().Vocab; m.Rows > 0 && rows != m.Rows {
				v.add("vocabulary mismatch: student %s has %d embedding rows, the teacher %d", dir, rows, m.Rows)
			}
			if err := checkStudentHybrid(s.Config, cfg.Student, dir); err != nil {
				v.add("%v", err)
			}
		}
	} else if m.Layers > 0 {
		if ls, err := cfg.Student.AttentionLayers.Resolve(m.Layers); err != nil {
			v.add("%v", err)
		} else {
			if len(ls) == m.Layers {
				v.allAttention(cfg)
			}
			if m.Config != nil {
				v.derivedStudent(cfg, m.Config)
			}
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
}

// derivedStudent checks that the teacher's family can derive the student
// pipeline.yaml asks for (a family may refuse hybrids, say) and that the
// result is a valid student.
func (v *validator) derivedStudent(cfg *Config, t family.Teacher) {
	o := cfg.Student
	for _, n := range []int64{o.DState, o.Heads, o.DConv, o.ChunkSize, o.Expand} {
		if n < 0 {
			return // reported by student
		}
	}
	s, err := StudentConfigFor(t, o)
	if err == nil {
		err = s.Validate()
	}
	if err == nil && o.Init == InitAttention {
		err = t.CheckAttentionInit(s)
	}
	if err != nil {
		v.add("student (derived from the %s teacher): %v", t.Family(), err)
	}
}

// data checks the training and held-out sources.
func (v *validator) data(cfg *Config) {
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
}

// training checks the defaults every training stage inherits, and each
// training stage's sequence length against the teacher's positions and the
// machine's memory.
func (v *validator) training(cfg *Config, m teacherFacts) {
	t := cfg.Training
	v.check(t.MicroBatch > 0, "training.micro_batch %d must be positive", t.MicroBatch)
	if v.check(t.SeqLen > 0, "training.seq_len %d must be positive", t.SeqLen) && t.MicroBatch > 0 {
		v.seqLen("training.seq_len", t.SeqLen, t.MicroBatch, m, cfg)
	}
	v.check(t.TokensPerUpdate >= 0, "training.tokens_per_update %d must not be negative", t.TokensPerUpdate)
	v.optimizer("training.optimizer", t.Optimizer)
	v.schedule("training.schedule", t.Schedule)
	v.check(t.EvalWindows >= 0 && t.EvalEvery >= 0 && t.CheckpointEvery >= 0, "training.eval_every, eval_windows and checkpoint_every must not be negative")
	v.check(t.StepsPerRun >= 1, "training.steps_per_run %d must be at least 1", t.StepsPerRun)
	v.check(stages.KnownPrecision(t.Precision), "training.precision %q must be fp32 or bf16", t.Precision)
	v.check(t.Recompute == "none" || t.Recompute == stages.RecomputeLayers, "training.recompute %q must be none or layers", t.Recompute)
	v.check(t.LossChunk >= 0, "training.loss_chunk %d must not be negative (0 computes the loss whole)", t.LossChunk)
	for i, s := range cfg.Stages {
		if mb := cmp.Or(s.MicroBatch, t.MicroBatch); s.SeqLen > 0 && mb > 0 && isTraining(s.Kind) {
			v.seqLen(fmt.Sprintf("stages[%d].seq_len", i), s.SeqLen, mb, m, cfg)
		}
	}
}

// stages checks each stage entry, the names and the budget fractions.
func (v *validator) stages(cfg *Config) {
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
}

// eval checks the evaluation settings and task files.
func (v *validator) eval(cfg *Config, m teacherFacts) {
	e := cfg.Eval
	v.check(e.Windows > 0, "eval.windows %d must be positive", e.Windows)
	if v.check(e.SeqLen > 0, "eval.seq_len %d must be positive", e.SeqLen) && m.Positions > 0 {
		v.check(e.SeqLen <= m.Positions, "eval.seq_len %d is beyond the teacher's max_position_embeddings %d (%s); lower eval.seq_len", e.SeqLen, m.Positions, m.From)
	}
	v.check(e.LastWord >= 0, "eval.last_word %d must not be negative", e.LastWord)
	labels := map[string]bool{}
	for i, task := range e.Tasks {
		where := fmt.Sprintf("eval.tasks[%d]", i)
		v.check(!labels[task.Label()], "%s: task name %q is used twice; give the tasks distinct names", where, task.Label())
		labels[task.Label()] = true
		v.check(task.Limit >= 0, "%s: limit %d must not be negative", where, task.Limit)
		b, err := data.LookupBenchmark(task.Kind)
		if err != nil {
			v.add("%s.kind: %v", where, err)
		} else if files, err := b.Locate(cfg.Resolve(task.Path)); err != nil {
			v.add("%s.path: %v", where, err)
		} else {
			for _, f := range files {
				v.file(where+".path", f)
			}
		}
	}
	for _, m := range e.Models {
		v.check(m == "teacher" || m == "student", "eval.models: %q is neither teacher nor student", m)
	}
}

type validator struct{ problems []string }

func (v *validator) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// check adds the problem unless ok, and returns ok.
func (v *validator) check(ok bool, format string, args ...any) bool {
	if !ok {
		v.add(format, args...)
	}
	return ok
}

// file checks that path names a regular file (symbolic links followed):
// not a directory, and not a FIFO or device, which would block a reader or
// never end (/dev/zero). It reports whether the file is usable.
func (v *validator) file(key, path string) bool {
	if path == "" {
		v.add("%s is empty", key)
		return false
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.add("%s: %s does not exist", key, path)
	case err != nil:
		v.add("%s: %v", key, err)
	case fi.IsDir():
		v.add("%s: %s is a directory, not a file", key, path)
	case !fi.Mode().IsRegular():
		v.add("%s: %s is %s, not a regular file; copy the data into a file", key, path, fileKind(fi.Mode()))
	default:
		return true
	}
	return false
}

// fileKind names a non-regular file mode for errors.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file (" + m.Type().String() + ")"
}

// directory checks that path, or its nearest existing ancestor, is a
// directory (a run creates what is missing under it), and reports whether
// it is.
func (v *validator) directory(key, path string) bool {
	if path == "" {
		return false
	}
	at := existingParent(path)
	fi, err := os.Stat(at)
	switch {
	case err != nil || fi.IsDir():
		return true
	case at == filepath.Clean(path):
		v.add("%s: %s exists and is not a directory; remove it or choose another path", key, path)
	default:
		v.add("%s: %s cannot be created: %s is not a directory", key, path, at)
	}
	return false
}

func (v *validator) source(key string, s Source, cfg *Config) {
	if path := cfg.Resolve(s.Path); s.Path != "" && strings.ContainsAny(path, "*?[") {
		matches, err := filepath.Glob(path)
		v.check(err == nil && len(matches) > 0, "%s.path: %s matches no file", key, path)
	} else {
		v.file(key+".path", path)
	}
	v.check(s.Field == "" || s.Column == "", "%s: set field (JSONL) or column (Parquet), not both", key)
	switch s.Format {
	case "":
	case "text":
		v.check(s.Field == "" && s.Column == "", "%s.field and .column apply to jsonl and parquet sources only", key)
	case "jsonl":
		v.check(s.Separator == "", "%s.separator applies to text sources only", key)
		v.check(s.Column == "", "%s.column applies to parquet sources only; JSONL uses field", key)
	case "parquet":
		v.check(s.Separator == "", "%s.separator applies to text sources only", key)
		v.check(s.Field == "", "%s.field applies to jsonl sources only; Parquet uses column", key)
	default:
		v.add("%s.format %q: want text, jsonl or parquet, or leave it empty to detect it", key, s.Format)
	}
}

// interval is a range of allowed values: [Lo, Hi] with each end open when
// its flag says; Hi = +Inf means any finite float32.
type interval struct {
	Lo, Hi         float64
	LoOpen, HiOpen bool
}

// Common ranges.
var (
	positive    = interval{0, math.Inf(1), true, false}
	nonNegative = interval{0, math.Inf(1), false, false}
	unitClosed  = interval{0, 1, false, false}
)

func (r interval) holds(x float64) bool {
	if !(x >= -math.MaxFloat32 && x <= math.MaxFloat32) { // NaN, ±Inf, beyond float32
		return false
	}
	lo := x > r.Lo || (!r.LoOpen && x == r.Lo)
	hi := x < r.Hi || (!r.HiOpen && x == r.Hi)
	return lo && hi
}

func (r interval) String() string {
	if math.IsInf(r.Hi, 1) {
		if r.LoOpen {
			return fmt.Sprintf("> %g", r.Lo)
		}
		return fmt.Sprintf("≥ %g", r.Lo)
	}
	open, shut := "[", "]"
	if r.LoOpen {
		open = "("
	}
	if r.HiOpen {
		shut = ")"
	}
	return fmt.Sprintf("in %s%g, %g%s", open, r.Lo, r.Hi, shut)
}

// number checks a float key: finite, within r, and still within r once
// rounded to float32, the precision the graphs compute in (beta1
// 0.9999999999 becomes 1, eps 1e-50 becomes 0).
func (v *validator) number(key string, x float64, r interval) {
	switch {
	case !r.holds(x):
		v.add("%s %g must be a finite number %s", key, x, r)
	case !r.holds(float64(float32(x))):
		v.add("%s %g is %g as a float32, the precision training computes in; it must be a number %s there", key, x, float32(x), r)
	}
}

func (v *validator) optimizer(key string, o OptimizerConfig) {
	v.number(key+".lr", o.LR, positive)
	v.number(key+".beta1", o.Beta1, interval{0, 1, false, true})
	v.number(key+".beta2", o.Beta2, interval{0, 1, false, true})
	v.number(key+".eps", o.Eps, positive)
	v.number(key+".weight_decay", o.WeightDecay, nonNegative)
	v.number(key+".clip_norm", o.ClipNorm, nonNegative) // 0 disables clipping
}

// seqLen checks a training sequence length against the teacher's
// positions and, as a lower bound of what a step holds, one layer's
// attention probabilities for one micro-batch against the memory there is.
func (v *validator) seqLen(key string, seq, microBatch int, m teacherFacts, cfg *Config) {
	if m.Positions > 0 && seq > m.Positions {
		v.add("%s %d is beyond the teacher's max_position_embeddings %d (%s); lower it", key, seq, m.Positions, m.From)
		return
	}
	if m.Heads <= 0 || os.Getenv("MOHAWK_PREFLIGHT") == "off" || os.Getenv("MOHAWK_PREFLIGHT") == "warn" {
		return
	}
	need := 4 * float64(microBatch) * float64(m.Heads) * float64(seq) * float64(seq)
	avail, what := int64(-1), ""
	switch cfg.Runtime.Provider {
	case "", runtime.ProviderCPU:
		if a, src, err := realProbe.memAvailable(); err == nil {
			avail, what = a, "host memory available ("+src+")"
		}
	default:
		if lim := cfg.Runtime.CUDA.MemLimitBytes; lim > 0 {
			avail, what = lim, "runtime.cuda.mem_limit_bytes"
		}
	}
	if avail >= 0 && need > float64(avail) {
		v.add("%s %d: one layer's attention probabilities for one micro-batch of %d alone take 4 B × %d × %d heads × %d² = %s, more than the %s of %s; lower it or the micro_batch (MOHAWK_PREFLIGHT=warn skips this check)",
			key, seq, microBatch, microBatch, m.Heads, seq, humanFloatBytes(need), what, stages.HumanBytes(avail))
	}
}

// humanFloatBytes is stages.HumanBytes up to a TiB, and bytes in
// scientific notation beyond (sizes that may not fit an int64).
func humanFloatBytes(b float64) string {
	if b < 1<<40 {
		return stages.HumanBytes(int64(b))
	}
	return fmt.Sprintf("%.3g bytes", b)
}

func isTraining(kind string) bool {
	return kind == KindPretrain || kind == KindOrient || kind == KindAlign || kind == KindDistill
}

func (v *validator) schedule(key string, s ScheduleConfig) {
	v.number(key+".warmup", s.Warmup, unitClosed)
	v.number(key+".decay", s.Decay, unitClosed)
	v.number(key+".min_lr_ratio", s.MinLRRatio, unitClosed)
	if err := toSchedule(s, 1).Validate(); err != nil {
		v.add("%s: %v", key, err)
	}
}

// stage checks one stage entry, including fields that do not apply to its
// kind.
func (v *validator) stage(where string, s StageConfig, cfg *Config) {
	training := isTraining(s.Kind)
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
		v.number(where+".lr", s.LR, nonNegative) // 0: training.optimizer.lr
		v.number(where+".fraction", s.Fraction, unitClosed)
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
		v.number(where+".temperature", s.Temperature, nonNegative) // 0: the default
		v.number(where+".hard_label_weight", s.HardLabelWeight, unitClosed)
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
			v.architecture(where, s.Architecture)
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

// architecture checks a pretrain stage's architecture: a config.json
// alone, or sizes.
func (v *validator) architecture(where string, a *ArchConfig) {
	if a.Config != "" {
		v.check(a.Family == "" && a.KVHeads == 0 && a.Vocab == 0 && a.Hidden == 0 && a.Layers == 0 && a.Heads == 0 && a.Intermediate == 0 && a.Rotary == 0,
			"%s.architecture: config gives the whole architecture; drop the other keys", where)
		return
	}
	v.check(a.Vocab > 0 && a.Hidden > 0 && a.Layers > 0 && a.Heads > 0 && a.Intermediate > 0, "%s.architecture: sizes must be positive", where)
	v.check(a.Heads > 0 && a.Hidden%max(a.Heads, 1) == 0, "%s.architecture: hidden %d not divisible by heads %d", where, a.Hidden, a.Heads)
	v.check(a.KVHeads >= 0 && (a.KVHeads == 0 || a.Heads%a.KVHeads == 0), "%s.architecture.kv_heads %d must divide heads %d (0: as many as heads)", where, a.KVHeads, a.Heads)
	v.check(a.Rotary == 0 || interval{0, 1, true, false}.holds(a.Rotary), "%s.architecture.partial_rotary_factor %g must be a finite number in (0, 1] (0: the default)", where, a.Rotary)
}
