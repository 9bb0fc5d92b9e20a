package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/family"
	"mohawk/hfconfig"
	"mohawk/runtime"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// ModelKind tells a teacher (a Hugging Face config.json) from a student.
type ModelKind string

// Model kinds.
const (
	KindTeacherModel ModelKind = "teacher"
	KindStudentModel ModelKind = "student"
)

// DetectModel inspects dir/config.json: a student layout of a registered
// family (package family), else a Hugging Face config (model_type or
// architectures).
func DetectModel(dir string) (ModelKind, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", fmt.Errorf("model %s: %w (a model directory holds config.json and weights)", dir, err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("model %s: config.json is not JSON: %w", dir, err)
	}
	switch {
	case family.ForStudentConfig(b) != nil:
		return KindStudentModel, nil
	case probe["model_type"] != nil || probe["architectures"] != nil:
		return KindTeacherModel, nil
	}
	return "", fmt.Errorf("model %s: config.json is neither a Hugging Face teacher config (model_type; supported: %s) nor a student config (%s)", dir, family.Supported(), family.StudentLayouts())
}

// modelEnv loads a model directory into a stages.Env (without a runtime)
// as teacher or student and returns the name to score it under and its
// embedding rows (the ids it has a row for).
func modelEnv(ctx context.Context, dir string) (env *stages.Env, model string, rows int64, err error) {
	kind, err := DetectModel(dir)
	if err != nil {
		return nil, "", 0, err
	}
	env = &stages.Env{Ctx: ctx, Dir: os.TempDir()}
	if kind == KindTeacherModel {
		if env.Teacher, err = LoadTeacher(dir); err != nil {
			return nil, "", 0, err
		}
		return env, stages.ModelTeacher, env.Teacher.Config.Sizes().Vocab, nil
	}
	if env.Student, err = LoadStudent(dir, 1e-5); err != nil {
		return nil, "", 0, err
	}
	return env, stages.ModelStudent, env.Student.Config.Sizes().Vocab, nil
}

// openScorer opens the runtime for env (from modelEnv) and a scorer of its
// model; done closes both.
func openScorer(env *stages.Env, model string, rc runtime.Config, progress io.Writer) (sc *stages.Scorer, done func(), err error) {
	rt, err := runtime.Open(rc, progress)
	if err != nil {
		return nil, nil, err
	}
	env.Runtime = stages.ORT(rt)
	if sc, err = env.NewScorer(model); err != nil {
		rt.Close()
		return nil, nil, err
	}
	return sc, func() { sc.Close(); rt.Close() }, nil
}

// EvalOptions configure a stand-alone perplexity evaluation.
type EvalOptions struct {
	Model     string // model directory (teacher or student, with tokenizer.json)
	Data      string // file or glob of text, JSONL or Parquet files (data.Source.Path)
	Field     string // JSONL key or Parquet column holding each document (default "text")
	Separator string // text files' document separator (default "\n\n")
	SeqLen    int
	Windows   int
	Batch     int
	Runtime   runtime.Config
	Progress  io.Writer
}

// EvalPerplexity runs the held-out perplexity protocol: split the files
// into documents (data.Source), tokenize each with the model's
// tokenizer.json and append the end-of-text id, concatenate, score the
// first Windows windows of SeqLen+1 tokens starting every SeqLen tokens.
func EvalPerplexity(ctx context.Context, o EvalOptions) (*stages.PerplexityResult, error) {
	tokPath := filepath.Join(o.Model, "tokenizer.json")
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, err
	}
	eos, _, err := tokenizer.EndOfText(tokPath, tok)
	if err != nil {
		return nil, err
	}
	env, model, rows, err := modelEnv(ctx, o.Model)
	if err != nil {
		return nil, err
	}
	// data.Tokenize keeps every id below the tokenizer's vocabulary size, so
	// a tokenizer that fits the embedding gives only ids the model has.
	if err := tok.CheckFits(rows, "the model in "+o.Model); err != nil {
		return nil, err
	}
	sep := o.Separator
	if sep == "" {
		sep = "\n\n"
	}
	stream, err := data.Tokenize(ctx, data.Source{Path: o.Data, Field: o.Field, Separator: sep}, tok, eos, data.StreamOptions{Progress: o.Progress})
	if err != nil {
		return nil, err
	}
	windows, err := data.EvalWindows(stream, o.SeqLen, o.Windows)
	if err != nil {
		return nil, err
	}
	sc, done, err := openScorer(env, model, o.Runtime, o.Progress)
	if err != nil {
		return nil, err
	}
	defer done()
	batch := o.Batch
	if batch <= 0 {
		batch = 8
	}
	var prog stages.Progress // a line at every tenth of the windows
	if o.Progress != nil {
		prog = (&runLog{out: o.Progress}).Progress("eval", int(windows.Shape[0]))
	}
	r, err := sc.Perplexity(windows, batch, prog)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Grads writes, for a Hugging Face teacher and token ids [B, T] (tensor
// "input_ids" of the input file), the float32 gradients of the mean
// next-token cross-entropy for every parameter under its Hugging Face name,
// plus the loss.
func Grads(ctx context.Context, modelDir, inputFile, outFile string, rc runtime.Config, progress io.Writer) (float32, error) {
	t, err := LoadTeacher(modelDir)
	if err != nil {
		return 0, err
	}
	in, err := safetensors.Open(inputFile)
	if err != nil {
		return 0, err
	}
	ids, err := in.Tensor("input_ids")
	in.Close()
	if err != nil {
		return 0, fmt.Errorf("%s: %w (the file must hold an int64 tensor input_ids [batch, seq])", inputFile, err)
	}
	if ids.DType != tensors.Int64 || len(ids.Shape) != 2 || ids.Shape[1] < 2 {
		return 0, fmt.Errorf("%s: input_ids is %v%v; want int64 [batch, seq] with seq ≥ 2", inputFile, ids.DType, ids.Shape)
	}
	if err := checkTokenIDs(ids, t.Config.Sizes().Vocab, inputFile+": input_ids", "vocab_size in "+filepath.Join(modelDir, hfconfig.FileName)); err != nil {
		return 0, err
	}
	params := t.Config.ParamShapes()
	names := sortedNames(params)
	g := graphs.New("grads")
	err = graphs.Try(func() {
		x := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
		p := &layers.Inputs{G: g, DType: tensors.Float32}
		for _, n := range names {
			p.Get(n, params[n])
		}
		logits := t.Config.Forward(p, x, family.TeacherOptions{}).Logits
		loss := losses.TokenCrossEntropy(graphs.SliceAxis(logits, 1, 0, -1), graphs.SliceAxis(x, 1, 1, graphs.End))
		g.Output("loss", graphs.Reshape(loss, 1))
		wrt := make([]*graphs.Value, len(names))
		for i, n := range names {
			wrt[i] = p.Value(n)
		}
		for i, gr := range graphs.Gradients(loss, wrt...) {
			g.Output("grad."+names[i], gr)
		}
	})
	if err != nil {
		return 0, err
	}
	rt, err := runtime.Open(rc, progress)
	if err != nil {
		return 0, err
	}
	defer rt.Close()
	env := &stages.Env{Ctx: ctx, Runtime: stages.ORT(rt), Dir: os.TempDir()}
	feeds := map[string]*tensors.Tensor{"input_ids": ids}
	for n, w := range t.Weights {
		feeds[n] = w
	}
	out, err := env.RunGraph(g, feeds)
	if err != nil {
		return 0, err
	}
	var named []safetensors.Named
	for _, n := range names {
		named = append(named, safetensors.Named{Name: n, T: out["grad."+n]})
	}
	named = append(named, safetensors.Named{Name: "loss", T: out["loss"]})
	if err := safetensors.Write(outFile, named, map[string]string{"producer": "mohawk grads", "loss": "mean next-token cross-entropy"}); err != nil {
		return 0, err
	}
	return out["loss"].Float32s()[0], nil
}

// Convert reads a student saved by the authors (pytorch_model.bin +
// config.json) and writes it in mohawk's layout (model.safetensors +
// config.json), copying tokenizer.json when present.
func Convert(in, out string) (*stages.Student, error) {
	s, err := LoadStudent(in, 1e-5)
	if err != nil {
		return nil, err
	}
	if err := SaveStudent(out, s); err != nil {
		return nil, err
	}
	if tj := filepath.Join(in, "tokenizer.json"); exists(tj) {
		if err := copyFile(tj, filepath.Join(out, "tokenizer.json")); err != nil {
			return nil, err
		}
	}
	return s, nil
}
