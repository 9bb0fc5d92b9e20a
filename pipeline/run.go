package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"

	"mohawk/atomicfile"
	"mohawk/data"
	"mohawk/dist"
	"mohawk/graphs/models/family"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// RunOptions control a run.
type RunOptions struct {
	Out      io.Writer // progress and status (default os.Stderr)
	DryRun   bool      // validate and print the plan only
	Provider string    // overrides runtime.provider when set
	// Observe, when set, sees every metrics record as it is written (for
	// dashboards and tests).
	Observe func(m map[string]any)
	// Ranks, when set with a size above 1, makes this process one rank of
	// a job: it joins the others after the plan (see ranks.go).
	Ranks *dist.Options
}

// StageRecord is written to a stage's done.json when it completes; its
// presence with a matching hash means the stage is not run again.
type StageRecord struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Hash      string  `json:"hash"`
	Seconds   float64 `json:"seconds"`
	Tokens    int64   `json:"tokens"`
	Steps     int     `json:"steps"`
	FirstLoss float64 `json:"first_loss,omitempty"`
	LastLoss  float64 `json:"last_loss,omitempty"`
	ValLoss   float64 `json:"val_loss,omitempty"`
	ValBefore float64 `json:"val_loss_before,omitempty"`
	// Layer distances (orient: Frobenius, align: L2) before/after.
	LayerBefore []float64 `json:"layer_before,omitempty"`
	LayerAfter  []float64 `json:"layer_after,omitempty"`
	// Perplexities measured after the stage (student; teacher at eval).
	StudentPPL *stages.PerplexityResult `json:"student_ppl,omitempty"`
	TeacherPPL *stages.PerplexityResult `json:"teacher_ppl,omitempty"`
	Eval       *EvalReport              `json:"eval,omitempty"`
	Export     string                   `json:"export,omitempty"`
}

const (
	doneFile   = "done.json"
	outputDir  = "output"
	metricsLog = "metrics.jsonl"
)

// Run executes a pipeline: validation, plan, then every stage in order,
// skipping stages whose outputs already exist for the same inputs and
// resuming interrupted ones from their newest checkpoint. Cancelling ctx
// (SIGINT/SIGTERM) makes the current stage checkpoint and return
// stages.ErrInterrupted.
func Run(ctx context.Context, cfg *Config, source string, opt RunOptions) (sum *Summary, err error) {
	out := opt.Out
	if out == nil {
		out = os.Stderr
	}
	if opt.Provider != "" {
		cfg.Runtime.Provider = opt.Provider
	}
	if opt.Ranks != nil && opt.Ranks.Size > 1 {
		cfg.Runtime.CUDA.DeviceID = opt.Ranks.LocalRank // one GPU per rank of a node
		cfg.Runtime.TensorRT.DeviceID = opt.Ranks.LocalRank
	}
	if err := ResolveHub(ctx, cfg, !opt.DryRun, out); err != nil {
		return nil, err
	}
	if err := Validate(cfg, source); err != nil {
		return nil, err
	}
	w, err := prepare(ctx, cfg, out, !opt.DryRun)
	if err != nil {
		return nil, err
	}
	defer w.close()
	w.plan.Print(out)
	if err := printRanks(out, w.plan, w.student.Config.Sizes().Layers, opt.Ranks); err != nil {
		return nil, err
	}
	if err := preflight(w, out, opt.DryRun); err != nil {
		return nil, err
	}
	if opt.DryRun {
		return nil, nil
	}
	if w.ranks, err = joinRanks(ctx, opt.Ranks, w.plan, w.rt.Provider(), cfg.Runtime.CUDA.DeviceID, out); err != nil {
		return nil, err
	}
	if w.ranks != nil {
		ctx = w.ranks.start(ctx)
		defer func() { err = w.ranks.finish(err) }()
	}
	if err := os.MkdirAll(w.plan.RunDir, 0o755); err != nil {
		return nil, err
	}
	metrics := metricsLog
	if w.ranks.leader() {
		release, err := claimRunDir(w.plan)
		if err != nil {
			return nil, err
		}
		defer release()
		if err := saveResolved(cfg, w.plan); err != nil {
			return nil, err
		}
	} else {
		metrics = fmt.Sprintf("metrics.rank-%d.jsonl", opt.Ranks.Rank)
	}
	log, err := newRunLog(filepath.Join(w.plan.RunDir, metrics), out)
	if err != nil {
		return nil, err
	}
	log.observe = opt.Observe
	defer log.Close()
	sum = &Summary{Name: cfg.Name, RunDir: w.plan.RunDir, Provider: w.rt.Provider(), Started: time.Now().UTC()}
	for _, sp := range w.plan.Stages {
		rec, err := w.runStage(ctx, sp, log)
		if err != nil {
			return sum, err
		}
		sum.Stages = append(sum.Stages, *rec)
	}
	sum.Finished = time.Now().UTC()
	if !w.ranks.leader() {
		return sum, nil
	}
	if err := writeSummary(sum); err != nil {
		return sum, err
	}
	if err := WriteReport(w.plan.RunDir, sum); err != nil {
		return sum, err
	}
	fmt.Fprintf(out, "done: %s\n", filepath.Join(w.plan.RunDir, "report.md"))
	return sum, nil
}

// work is a run in progress: runtime, models, data and plan.
type work struct {
	cfg     *Config
	rt      *runtime.Env
	tok     *tokenizer.Tokenizer
	eos     int64 // the tokenizer's end-of-text id (tokenizer.EndOfText)
	teacher *stages.Teacher
	student *stages.Student
	train   *data.Stream
	val     *data.Stream
	plan    *Plan
	out     io.Writer
	ranks   *ranks // nil for a run of one process
}

func (w *work) close() {
	if w.rt != nil {
		w.rt.Close()
	}
}

// prepare loads everything the plan depends on. With open=false (dry run)
// no runtime is opened.
func prepare(ctx context.Context, cfg *Config, out io.Writer, open bool) (*work, error) {
	w := &work{cfg: cfg, out: out}
	var err error
	if w.tok, err = tokenizer.Load(cfg.TokenizerPath()); err != nil {
		return nil, err
	}
	eos, _, err := tokenizer.EndOfText(cfg.TokenizerPath(), w.tok)
	if err != nil {
		return nil, err
	}
	w.eos = eos
	if err := w.loadModels(); err != nil {
		return nil, err
	}
	if err := w.loadData(ctx, eos); err != nil {
		return nil, err
	}
	tfp, err := Fingerprint(cfg.Resolve(cfg.Teacher.Path))
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, s := range append(append([]Source{}, cfg.Data.Train...), cfg.Data.Val...) {
		paths = append(paths, cfg.Resolve(s.Path))
	}
	dfp, err := Fingerprint(paths...)
	if err != nil {
		return nil, err
	}
	sfp, _ := json.Marshal(cfg.Student)
	sfp = append(sfp, hybridIdentity(cfg.Student)...)
	if cfg.Student.Path != "" {
		fp, err := Fingerprint(cfg.Resolve(cfg.Student.Path))
		if err != nil {
			return nil, err
		}
		sfp = append(sfp, fp...)
	}
	dcfg, _ := json.Marshal(cfg.Data)
	if w.plan, err = MakePlan(cfg, Identity{Teacher: tfp, Data: dfp + string(dcfg), Student: string(sfp)}, w.teacher.Config, w.student.Config); err != nil {
		return nil, err
	}
	if open {
		if w.rt, err = runtime.Open(cfg.Runtime, out); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// loadModels reads the teacher (or creates a fresh one for a pretrain-from-
// scratch stage) and initialises the student.
func (w *work) loadModels() error {
	cfg := w.cfg
	var scratch *ArchConfig
	for _, s := range cfg.Stages {
		if s.Kind == KindPretrain && s.Model != "student" && s.Scratch {
			scratch = s.Architecture
		}
	}
	var err error
	if scratch != nil {
		tc, err := scratchTeacher(cfg, scratch, w.eos)
		if err != nil {
			return err
		}
		w.teacher = &stages.Teacher{Config: tc, Weights: RandomTeacher(tc, cfg.Seed)}
	} else if w.teacher, err = LoadTeacher(cfg.Resolve(cfg.Teacher.Path)); err != nil {
		return err
	}
	if cfg.Student.Path != "" {
		dir := cfg.Resolve(cfg.Student.Path)
		if w.student, err = LoadStudent(dir, w.teacher.Config.Sizes().Eps); err != nil {
			return err
		}
		return checkStudentHybrid(w.student.Config, cfg.Student, dir)
	}
	sc, err := StudentConfigFor(w.teacher.Config, cfg.Student)
	if err != nil {
		return err
	}
	w.student, err = NewStudent(w.teacher, sc, cfg.Student.Init, cfg.Seed)
	return err
}

// scratchTeacher is the architecture a pretrain-from-scratch stage trains:
// the teacher config.json at architecture.config (resolved against the
// run's config file), else the sizes of architecture in the family
// architecture.family names, with the tokenizer's end-of-text as bos and
// eos.
func scratchTeacher(cfg *Config, a *ArchConfig, eos int64) (family.Teacher, error) {
	if a.Config != "" {
		return LoadTeacherConfig(cfg.Resolve(a.Config))
	}
	name := a.Family
	if name == "" {
		name = DefaultArchFamily
	}
	f, err := family.ByName(name)
	if err != nil {
		return nil, fmt.Errorf("architecture.family: %w", err)
	}
	return f.ScratchTeacher(family.Arch{Vocab: a.Vocab, Hidden: a.Hidden, Layers: a.Layers, Heads: a.Heads, KVHeads: a.KVHeads,
		Intermediate: a.Intermediate, Rotary: a.Rotary, EOS: eos})
}

// RandomTeacher initialises a teacher: matrices N(0, 0.02²), biases 0,
// norm weights 1 (seeded per tensor name).
func RandomTeacher(c family.Teacher, seed uint64) stages.Weights {
	w := stages.Weights{}
	for name, s := range c.ParamShapes() {
		w[name] = initTensor(name, s.Sizes(), InitScratch, seed)
	}
	return w
}

// dataSource is s as the data package reads it, its path resolved against
// the config file.
func (s Source) dataSource(cfg *Config) data.Source {
	field := s.Field
	if s.Column != "" {
		field = s.Column
	}
	return data.Source{Path: cfg.Resolve(s.Path), Format: s.Format, Field: field, Separator: s.Separator}
}

func (w *work) loadData(ctx context.Context, eos int64) error {
	cfg := w.cfg
	cache := cfg.Data.CacheDir
	if cache == "" {
		cache = filepath.Join(cfg.Resolve(cfg.OutputDir), ".cache", "tokens")
	} else {
		cache = cfg.Resolve(cache)
	}
	tokID, err := Fingerprint(cfg.TokenizerPath())
	if err != nil {
		return err
	}
	opts := data.StreamOptions{CacheDir: cache, TokenizerID: tokID, Progress: w.out}
	load := func(srcs []Source) (*data.Stream, error) {
		var streams []*data.Stream
		for _, s := range srcs {
			st, err := data.Tokenize(ctx, s.dataSource(cfg), w.tok, eos, opts)
			if err != nil {
				return nil, err
			}
			streams = append(streams, st)
		}
		return data.Concat(streams...)
	}
	if w.train, err = load(cfg.Data.Train); err != nil {
		return err
	}
	if len(cfg.Data.Val) > 0 {
		w.val, err = load(cfg.Data.Val)
		return err
	}
	w.train, w.val, err = data.SplitTrainVal(w.train, cfg.Data.ValFraction, cfg.Seed)
	return err
}

func saveResolved(cfg *Config, p *Plan) error {
	b, err := ResolvedYAML(cfg)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(p.RunDir, "config.resolved.yaml"), b); err != nil {
		return err
	}
	pb, _ := json.MarshalIndent(p, "", "  ")
	return atomicfile.WriteBytes(filepath.Join(p.RunDir, "plan.json"), pb)
}

// runStage runs one stage or, when its done.json matches, loads its output.
func (w *work) runStage(ctx context.Context, sp StagePlan, log *runLog) (*StageRecord, error) {
	rec, ok := w.finished(sp)
	if err := w.ranks.agree("whether stage "+sp.Name+" is done", []byte(fmt.Sprint(ok))); err != nil {
		return nil, err
	}
	if ok {
		log.Printf("stage %s: already done (hash %s); skipping", sp.Name, sp.Hash)
		return rec, nil
	}
	if err := os.MkdirAll(sp.Dir, 0o755); err != nil {
		return nil, err
	}
	ck := &Checkpoints{Dir: filepath.Join(sp.Dir, "checkpoints"), KeepLast: w.cfg.Checkpoints.KeepLast, Log: log.Printf, Key: sp.Hash}
	env := &stages.Env{Ctx: ctx, Runtime: stages.ORT(w.rt), Teacher: w.teacher, Student: w.student, TrainData: w.train, ValData: w.val,
		Seed: w.cfg.Seed + uint64(sp.Index), Dir: sp.Dir, Ckpt: ck, Log: log,
		NonFinite: w.cfg.Checkpoints.OnNonFinite, RollbackLRFactor: w.cfg.Checkpoints.RollbackLRFactor, MaxRollbacks: w.cfg.Checkpoints.MaxRollbacks}
	w.ranks.setup(env, sp)
	rec = &StageRecord{Name: sp.Name, Kind: sp.Kind, Hash: sp.Hash}
	if sp.Train == nil && !w.ranks.leader() {
		log.Printf("stage %s (%s): rank 0's work", sp.Name, sp.Kind)
		return rec, nil
	}
	t0 := time.Now()
	log.Printf("stage %s (%s): starting", sp.Name, sp.Kind)
	var res *stages.Result
	var err error
	switch sp.Kind {
	case KindOrient, KindAlign:
		res, err = env.Orient(sp.Kind, *sp.Train)
	case KindDistill:
		res, err = env.Distill(*sp.Train, *sp.Distill)
	case KindPretrain:
		which := stages.PretrainTeacher
		if sp.PretrainWhat == "student" {
			which = stages.PretrainStudent
			if sp.Scratch {
				env.Student, err = NewStudent(w.teacher, w.student.Config, InitScratch, w.cfg.Seed)
			}
		}
		if err == nil {
			res, err = env.Pretrain(which, *sp.Train)
		}
	case KindEval:
		rec.Eval, err = w.evaluate(env, log)
	case KindExport:
		rec.Export, err = w.export(sp)
	}
	if err != nil {
		return nil, err
	}
	w.teacher, w.student = env.Teacher, env.Student
	if res != nil && res.Train != nil {
		tr := res.Train
		rec.Tokens, rec.Steps, rec.FirstLoss, rec.LastLoss, rec.ValLoss, rec.ValBefore = tr.Tokens, tr.Steps, tr.FirstLoss, tr.LastLoss, tr.ValLoss, tr.FirstValLoss
		rec.LayerBefore, rec.LayerAfter = res.LayerBefore, res.LayerAfter
	}
	if !w.ranks.leader() { // rank 0 writes the output, evaluates and records
		return rec, nil
	}
	if sp.Train != nil {
		if err := w.saveOutput(sp); err != nil {
			return nil, err
		}
		if w.cfg.Eval.AfterEachStage {
			model := stages.ModelStudent
			if sp.Kind == KindPretrain && sp.PretrainWhat != "student" {
				model = stages.ModelTeacher
			}
			ppl, err := w.perplexity(env, model, log)
			if err != nil {
				return nil, err
			}
			if model == stages.ModelTeacher {
				rec.TeacherPPL = ppl
			} else {
				rec.StudentPPL = ppl
			}
		}
	}
	rec.Seconds = time.Since(t0).Seconds()
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(sp.Dir, doneFile), b); err != nil {
		return nil, err
	}
	log.Printf("stage %s: done in %s", sp.Name, time.Duration(rec.Seconds*float64(time.Second)).Round(time.Second))
	return rec, nil
}

// finished loads a completed stage's record and outputs.
func (w *work) finished(sp StagePlan) (*StageRecord, bool) {
	b, err := os.ReadFile(filepath.Join(sp.Dir, doneFile))
	if err != nil {
		return nil, false
	}
	var rec StageRecord
	if json.Unmarshal(b, &rec) != nil || rec.Hash != sp.Hash {
		return nil, false
	}
	if sp.Train != nil {
		dir := filepath.Join(sp.Dir, outputDir)
		if sp.Kind == KindPretrain && sp.PretrainWhat != "student" {
			t, err := LoadTeacher(dir)
			if err != nil {
				return nil, false
			}
			w.teacher = t
		} else {
			s, err := LoadStudent(dir, w.teacher.Config.Sizes().Eps)
			if err != nil {
				return nil, false
			}
			w.student = s
		}
	}
	return &rec, true
}

// saveOutput writes the model a training stage produced, with the
// tokenizer beside it, so the directory is usable on its own.
func (w *work) saveOutput(sp StagePlan) error {
	dir := filepath.Join(sp.Dir, outputDir)
	var err error
	if sp.Kind == KindPretrain && sp.PretrainWhat != "student" {
		dt := tensors.Float32
		if sp.SaveDType == "float16" {
			dt = tensors.Float16
		}
		err = SaveTeacher(dir, w.teacher, dt)
	} else {
		err = SaveStudent(dir, w.student)
	}
	if err != nil {
		return err
	}
	return copyFile(w.cfg.TokenizerPath(), filepath.Join(dir, "tokenizer.json"))
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(dst, b)
}

func (w *work) perplexity(env *stages.Env, model string, log *runLog) (*stages.PerplexityResult, error) {
	e := w.cfg.Eval
	windows, err := data.EvalWindows(w.val, e.SeqLen, e.Windows)
	if err != nil {
		return nil, fmt.Errorf("perplexity: %w", err)
	}
	sc, err := env.NewScorer(model)
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	prog := log.Progress("perplexity ("+model+")", e.Windows)
	defer prog.Done()
	r, err := sc.Perplexity(windows, w.cfg.Training.MicroBatch, prog)
	if err != nil {
		return nil, err
	}
	log.Printf("%s perplexity: %.3f over %d tokens", model, r.Perplexity, r.Tokens)
	log.Metric(map[string]any{"eval": "perplexity", "model": model, "perplexity": r.Perplexity, "tokens": r.Tokens})
	return &r, nil
}

// ResolvedYAML renders cfg with pipeline.yaml's keys and every default
// filled in; `pipeline run` loads it back unchanged (paths are made
// absolute so it works from any directory).
func ResolvedYAML(cfg *Config) ([]byte, error) {
	c := *cfg
	c.OutputDir = c.Resolve(c.OutputDir)
	c.Teacher.Path = c.Resolve(c.Teacher.Path)
	c.Student.Path = c.Resolve(c.Student.Path)
	c.Data.Tokenizer = c.Resolve(c.Data.Tokenizer)
	c.Data.CacheDir = c.Resolve(c.Data.CacheDir)
	abs := func(src []Source) []Source {
		out := append([]Source(nil), src...)
		for i := range out {
			out[i].Path = c.Resolve(out[i].Path)
		}
		return out
	}
	c.Data.Train, c.Data.Val = abs(c.Data.Train), abs(c.Data.Val)
	c.Eval.Tasks = append([]Task(nil), c.Eval.Tasks...)
	for i := range c.Eval.Tasks {
		c.Eval.Tasks[i].Path = c.Resolve(c.Eval.Tasks[i].Path)
	}
	c.Stages = append([]StageConfig(nil), c.Stages...)
	for i := range c.Stages {
		c.Stages[i].Out = c.Resolve(c.Stages[i].Out)
	}
	return yaml.Marshal(keyed(reflect.ValueOf(c)))
}

// keyed converts a config value to maps keyed by its mapstructure tags
// (what pipeline.yaml spells), dropping nil pointers.
func keyed(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return keyed(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			tag := f.Tag.Get("mapstructure")
			if tag == "" || !f.IsExported() {
				continue
			}
			if x := keyed(v.Field(i)); x != nil {
				m[tag] = x
			}
		}
		return m
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = keyed(v.Index(i))
		}
		return out
	}
	return v.Interface()
}
