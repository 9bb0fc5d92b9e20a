package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"mohawk/deploy"
	"mohawk/pipeline"
)

func cmdExport(ctx context.Context, args []string) error {
	fs := flags("export", "--model DIR --out DIR [--fp16] [--opset N]")
	model := fs.String("model", "", "model directory: a Hugging Face teacher (exported with a KV cache) or a student (with recurrent states)")
	out := fs.String("out", "", "deployment folder to write (model.onnx, config.json, tokenizer.json, genai_config.json)")
	fp16 := fs.Bool("fp16", false, "store weights as float16")
	opset := fs.Int("opset", 0, "ONNX opset (default: the lowest the graph needs; at most 26)")
	noCache := fs.Bool("no-cache", false, "teacher only: a plain input_ids → logits model without KV-cache inputs")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	if err := localModel(ctx, "model", model); err != nil {
		return err
	}
	o := deploy.Options{FP16: *fp16, Opset: *opset}
	if *noCache {
		if err := pipeline.ExportPlainTeacher(*model, *out, o); err != nil {
			return err
		}
		fmt.Printf("exported teacher model (input_ids → logits) to %s\n", *out)
		return nil
	}
	kind, err := pipeline.ExportModel(*model, *out, o)
	if err != nil {
		return err
	}
	fmt.Printf("exported %s model to %s\n", kind, *out)
	return nil
}

func cmdGenerate(ctx context.Context, args []string) error {
	fs := flags("generate", "--model EXPORT_DIR --prompt TEXT [flags]")
	model := fs.String("model", "", "deployment folder written by pipeline export")
	prompt := fs.String("prompt", "", "text to continue")
	maxNew := fs.Int("max-new-tokens", 64, "tokens to generate at most")
	var o deploy.SamplingOptions
	fs.Float64Var(&o.Temperature, "temperature", 0.8, "sampling temperature (0: greedy)")
	fs.IntVar(&o.TopK, "top-k", 50, "keep the k most likely tokens (0: all)")
	fs.Float64Var(&o.TopP, "top-p", 0.95, "nucleus sampling mass (1: off)")
	seed := fs.Uint64("seed", 1, "random seed")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || *prompt == "" {
		fs.Usage()
		return errUsage
	}
	if err := checkSampling(*maxNew, o); err != nil {
		return err
	}
	if err := localModel(ctx, "model", model); err != nil {
		return err
	}
	o.Seed = *seed
	g, err := deploy.Open(*model, rc())
	if err != nil {
		return err
	}
	defer g.Close()
	if n, limit := len(g.Tokenizer().Encode(*prompt))+*maxNew, g.ContextLength(); g.Kind() == deploy.KindTeacher && n > limit {
		fmt.Fprintf(os.Stderr, "pipeline generate: warning: the prompt and --max-new-tokens %d reach position %d, past the %d positions this teacher was trained on "+
			"(max_position_embeddings); it runs on, with rotary embeddings extrapolated to positions it never saw, so expect the text to degrade there\n", *maxNew, n, limit)
	}
	fmt.Print(*prompt)
	_, err = g.Generate(ctx, *prompt, *maxNew, o, func(text string) { fmt.Print(text) })
	fmt.Println()
	return err
}

func cmdBenchGenerate(ctx context.Context, args []string) error {
	fs := flags("bench-generate", "--student DIR --hybrid DIR --teacher DIR [flags]")
	var o deploy.BenchOptions
	fs.StringVar(&o.Student, "student", "", "student deployment folder")
	fs.StringVar(&o.Hybrid, "hybrid", "", "hybrid student deployment folder (KV cache for its attention layers)")
	fs.StringVar(&o.Teacher, "teacher", "", "teacher deployment folder (KV cache)")
	contexts := fs.String("contexts", "2048,16384", "context lengths prefilled before decoding")
	batches := fs.String("batches", "1", "numbers of sequences decoded side by side")
	fs.IntVar(&o.DecodeTokens, "decode-tokens", 32, "timed decode steps per context")
	fs.IntVar(&o.Chunk, "chunk", 0, "prefill piece length (default 512)")
	fs.BoolVar(&o.HostLogits, "host-logits", false, "fetch the logits and pick greedily on the host instead of taking the graph's next_token")
	out := fs.String("out", "bench-generate", "directory for the table (bench.md) and plot (bench.png)")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.Student == "" && o.Hybrid == "" && o.Teacher == "" {
		fs.Usage()
		return errUsage
	}
	var err error
	if o.Contexts, err = positiveInts("--contexts", *contexts); err != nil {
		return err
	}
	if o.Batches, err = positiveInts("--batches", *batches); err != nil {
		return err
	}
	o.Runtime, o.Progress = rc(), os.Stderr
	r, err := deploy.BenchGenerate(ctx, o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if err := r.WriteBenchTable(filepath.Join(*out, "bench.md")); err != nil {
		return err
	}
	if err := r.WriteBenchPlot(filepath.Join(*out, "bench.png")); err != nil {
		return err
	}
	b, _ := os.ReadFile(filepath.Join(*out, "bench.md"))
	fmt.Print(string(b))
	return nil
}

// checkSampling rejects generate's flag values that make no sense, naming
// each flag (exit status 2).
func checkSampling(maxNew int, o deploy.SamplingOptions) error {
	var bad []string
	if maxNew < 1 {
		bad = append(bad, fmt.Sprintf("--max-new-tokens %d: generate at least 1 token", maxNew))
	}
	if !(o.Temperature >= 0) || math.IsInf(o.Temperature, 0) {
		bad = append(bad, fmt.Sprintf("--temperature %v: use 0 (greedy) or a positive number", o.Temperature))
	}
	if o.TopK < 0 {
		bad = append(bad, fmt.Sprintf("--top-k %d: use 0 (all tokens) or a positive number", o.TopK))
	}
	if !(o.TopP > 0 && o.TopP <= 1) {
		bad = append(bad, fmt.Sprintf("--top-p %v: use a probability mass in (0, 1] (1: off)", o.TopP))
	}
	if len(bad) > 0 {
		return &flagError{strings.Join(bad, "; ")}
	}
	return nil
}
