package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"mohawk/data"
	"mohawk/pipeline"
	"mohawk/runtime"
	"mohawk/stages"
)

// flags returns a FlagSet that prints its usage to stderr and reports
// parse errors as usage errors.
func flags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pipeline %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	return nil
}

// splitArgs separates the config file and key=value overrides, accepting
// flags anywhere.
func splitArgs(fs *flag.FlagSet, args []string) (file string, overrides []string, err error) {
	var rest []string
	for len(args) > 0 {
		if err := parse(fs, args); err != nil {
			return "", nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) == 0 {
		fs.Usage()
		return "", nil, errUsage
	}
	for _, o := range rest[1:] {
		if !strings.Contains(o, "=") {
			fmt.Fprintf(os.Stderr, "pipeline: %q is not a key=value override\n", o)
			return "", nil, errUsage
		}
	}
	return rest[0], rest[1:], nil
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flags("run", "FILE [key=value ...] [--provider P] [--dry-run]")
	provider := fs.String("provider", "", "execution provider: cpu, cuda or tensorrt (overrides runtime.provider)")
	dry := fs.Bool("dry-run", false, "validate and print the plan with token, step and memory figures; run nothing")
	nproc := fs.Int("nproc-per-node", 1, "start N local ranks of this run; under torchrun, Slurm, Open MPI or a PyTorchJob the ranks come from the environment")
	port := fs.Int("master-port", 0, "rendezvous port for --nproc-per-node (0: a free one)")
	file, overrides, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	cfg, err := pipeline.Load(file, overrides)
	if err != nil {
		return err
	}
	ranks, err := launch(ctx, args, *nproc, *port, *dry)
	if ranks == nil || err != nil {
		return err
	}
	_, err = pipeline.Run(ctx, cfg, file, pipeline.RunOptions{DryRun: *dry, Provider: *provider, Ranks: ranks})
	return err
}

func cmdValidate(ctx context.Context, args []string) error {
	fs := flags("validate", "FILE [key=value ...] [--ranks N]")
	ranks := fs.Int("ranks", 1, "check the data-parallel stages for a job of N ranks (their micro-batches per update must divide among them) and show each rank's share")
	file, overrides, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if *ranks < 1 {
		return &flagError{fmt.Sprintf("--ranks %d: must be at least 1", *ranks)}
	}
	cfg, err := pipeline.Load(file, overrides)
	if err != nil {
		return err
	}
	if err := pipeline.ResolveHub(ctx, cfg, false, os.Stderr); err != nil {
		return err
	}
	if err := pipeline.Validate(cfg, file); err != nil {
		return err
	}
	if err := pipeline.ValidateRanks(os.Stdout, cfg, file, *ranks); err != nil {
		return err
	}
	fmt.Printf("%s: ok\n", file)
	return nil
}

// runtimeFlags adds --provider and returns a function giving the config.
func runtimeFlags(fs *flag.FlagSet) func() runtime.Config {
	p := fs.String("provider", "cpu", "execution provider: cpu, cuda or tensorrt")
	lib := fs.String("ort-library", "", "path of libonnxruntime.so (default: $ORT_LIB, then the user cache)")
	tf32 := fs.Bool("tf32", false, "cuda: allow TF32 tensor cores for float32 matrix products")
	arena := fs.String("arena-extend", "next_power_of_two", "cuda: how the memory arena grows: next_power_of_two or same_as_requested")
	memLimit := fs.Float64("mem-limit-gb", 0, "cuda: cap ONNX Runtime's device memory arena at this many GB of 10^9 bytes (runtime.cuda.mem_limit_bytes; 0: no cap)")
	threads := fs.Int("threads", 0, "cpu: intra-op threads (0: ONNX Runtime's default)")
	logLevel := fs.String("ort-log-level", "error", "ONNX Runtime log level: verbose, info, warning, error, fatal (info shows node placement)")
	memPattern := fs.Bool("mem-pattern", false, "turn on ONNX Runtime's memory pattern (runtime.mem_pattern): planned tensors in one block of their own beside the arena")
	profile := fs.String("ort-profile", "", "write ONNX Runtime's per-node profile of every session into this existing folder (see 'pipeline profile')")
	return func() runtime.Config {
		c := runtime.Defaults()
		c.Provider, c.Library, c.LogLevel, c.ProfileDir = *p, *lib, *logLevel, *profile
		c.CUDA.TF32, c.CUDA.ArenaExtend = *tf32, *arena
		c.CUDA.MemLimitBytes = int64(*memLimit * 1e9)
		c.CPU.IntraOpThreads = *threads
		c.MemPattern = *memPattern
		return c
	}
}

func cmdEval(ctx context.Context, args []string) error {
	fs := flags("eval", "--model DIR (--data FILE | --dataset ID --files PATTERN | --tasks LIST) [flags]")
	model := fs.String("model", "", "model directory: a Hugging Face teacher (Phi, Llama, Qwen2, Mistral) or a student, with tokenizer.json")
	var src pipeline.Source
	fs.StringVar(&src.Path, "data", "", "held-out text for perplexity: a text file (documents separated by --doc-separator), JSONL or Parquet file, or a glob of them")
	fs.StringVar(&src.Dataset, "dataset", "", "held-out text from a Hugging Face dataset in the hub cache, org/name[@revision], instead of --data")
	fs.StringVar(&src.Files, "files", "", "--dataset: the pattern of its files to read, e.g. 'data/validation-*.parquet'")
	fs.StringVar(&src.Field, "field", "", "JSONL key or Parquet column holding each document's text (default text)")
	fs.StringVar(&src.Field, "column", "", "the same as --field")
	seq := fs.Int("seq-len", 256, "tokens fed per window (each window scores its last seq-len tokens)")
	windows := fs.Int("windows", 200, "number of windows")
	sep := fs.String("doc-separator", `\n\n`, "document separator (Go escapes such as \\n are understood)")
	batch := fs.Int("batch", 8, "windows per session run")
	tasks := fs.String("tasks", "", "zero-shot tasks, comma separated: "+data.BenchmarkNames()+" (docs/zero-shot.md)")
	taskData := fs.String("task-data", "", "task=path,... : each task's Parquet or JSONL file, its dataset's directory, or its Hugging Face dataset id (from the hub cache)")
	taskDir := fs.String("task-dir", "", "directory holding the datasets under their Hugging Face ids (allenai/ai2_arc, ...), for tasks without --task-data")
	limit := fs.Int("limit", 0, "score the first N examples of each task (0: all)")
	asJSON := fs.Bool("json", false, "print a JSON object")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || (src.Path == "" && src.Dataset == "" && src.Files == "" && *tasks == "") {
		fs.Usage()
		return errUsage
	}
	// Like --model, a dataset is taken from the hub cache, never downloaded.
	keys := pipeline.SourceKeys{Role: "--dataset", Path: "--data", Dataset: "--dataset", Files: "--files"}
	if err := pipeline.ResolveSource(ctx, &src, keys, func(p string) string { return p }, false, os.Stderr); err != nil {
		return err
	}
	if err := localModel(ctx, "model", model); err != nil {
		return err
	}
	res := map[string]any{}
	if src.Path != "" {
		separator, err := strconv.Unquote(`"` + *sep + `"`)
		if err != nil {
			return fmt.Errorf("--doc-separator %q is not a valid Go string escape: %w", *sep, err)
		}
		r, err := pipeline.EvalPerplexity(ctx, pipeline.EvalOptions{Model: *model, Data: src.Path, Field: src.Field, Separator: separator,
			SeqLen: *seq, Windows: *windows, Batch: *batch, Runtime: rc(), Progress: os.Stderr})
		if err != nil {
			return err
		}
		if err := checkFinite("eval", r); err != nil {
			return err
		}
		res["perplexity"] = r
		if !*asJSON {
			fmt.Printf("perplexity %.4f over %d tokens (%d windows of %d)\n", r.Perplexity, r.Tokens, r.Windows, *seq)
		}
	}
	if *tasks != "" {
		specs, err := pipeline.TaskSpecs(*tasks, *taskData, *taskDir, *limit)
		if err != nil {
			return err
		}
		r, err := pipeline.ZeroShot(ctx, pipeline.ZeroShotOptions{Model: *model, Tasks: specs, Runtime: rc(), Progress: os.Stderr})
		if err != nil {
			return err
		}
		if err := checkFinite("eval", r); err != nil {
			return err
		}
		res["tasks"] = r
		if !*asJSON {
			fmt.Print(pipeline.ZeroShotTable([]string{*model}, map[string]map[string]*stages.TaskResult{*model: r}))
		}
	}
	if *asJSON {
		return printJSON("eval", res)
	}
	return nil
}

func cmdGrads(ctx context.Context, args []string) error {
	fs := flags("grads", "--model HF_DIR --input FILE --out FILE")
	model := fs.String("model", "", "Hugging Face teacher model directory")
	input := fs.String("input", "", "safetensors file holding input_ids (int64 [batch, seq])")
	out := fs.String("out", "", "output safetensors file (float32 gradients under Hugging Face names, plus loss)")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || *input == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	if err := localModel(ctx, "model", model); err != nil {
		return err
	}
	loss, err := pipeline.Grads(ctx, *model, *input, *out, rc(), os.Stderr)
	if err != nil {
		return err
	}
	if err := checkFinite("grads", struct{ Loss float32 }{loss}); err != nil {
		return err
	}
	fmt.Printf("loss %.6f; gradients written to %s\n", loss, *out)
	return nil
}

func cmdConvert(ctx context.Context, args []string) error {
	fs := flags("convert", "--in DIR --out DIR")
	in := fs.String("in", "", "student directory with config.json and pytorch_model.bin (or model.safetensors)")
	out := fs.String("out", "", "output directory (model.safetensors + config.json)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	if err := localModel(ctx, "in", in); err != nil {
		return err
	}
	s, err := pipeline.Convert(*in, *out)
	if err != nil {
		return err
	}
	fmt.Printf("converted %d tensors (%d parameters) to %s\n", len(s.Weights), s.Config.NumParams(), *out)
	return nil
}

func cmdSetup(ctx context.Context, args []string) error {
	fs := flags("setup", "[--provider cpu|cuda]")
	provider := fs.String("provider", "cpu", "also install the CUDA provider libraries with cuda")
	if err := parse(fs, args); err != nil {
		return err
	}
	path, err := runtime.Install(ctx, runtime.InstallOptions{GPU: *provider != "cpu", Progress: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("ONNX Runtime %s ready: %s\n", runtime.ORTVersion, path)
	return nil
}

func cmdBenchForward(ctx context.Context, args []string) error {
	fs := flags("bench-forward", "--model DIR|phi-1.5 [flags]")
	model := fs.String("model", "", "teacher directory, or phi-1.5 for a random Phi-1.5-shaped model")
	batch := fs.Int("batch", 1, "sequences per run")
	seq := fs.Int("seq", 256, "tokens per sequence")
	iters := fs.Int("iters", 10, "timed runs (after one warm-up run)")
	precision := fs.String("precision", "fp32", "fp32, or bf16 for bfloat16 products")
	hostLogits := fs.Bool("host-logits", false, "copy the logits to the host after every run (by default they stay on the device, as transformers and evaluation leave them)")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" {
		fs.Usage()
		return errUsage
	}
	if err := localModel(ctx, "model", model); err != nil {
		return err
	}
	r, err := pipeline.BenchForward(ctx, *model, pipeline.ForwardBenchOptions{Batch: *batch, Seq: *seq, Iters: *iters, Precision: *precision, HostLogits: *hostLogits}, rc(), os.Stderr)
	if err != nil {
		return err
	}
	return printJSON("bench-forward", r)
}

func cmdBenchStage(ctx context.Context, args []string) error {
	fs := flags("bench-stage", "--teacher DIR|phi-1.5 --stage STAGE [flags]")
	o := pipeline.StageBenchOptions{}
	fs.StringVar(&o.Teacher, "teacher", "", "teacher directory, or phi-1.5 for random Phi-1.5-shaped teacher and student")
	fs.StringVar(&o.Stage, "stage", "distill", "orient, align, distill, pretrain (student LM) or pretrain-teacher")
	fs.IntVar(&o.MicroBatch, "micro-batch", 4, "sequences per micro-batch")
	fs.IntVar(&o.Seq, "seq", 256, "tokens per sequence")
	fs.IntVar(&o.MicroBatches, "micro-batches", 1, "micro-batches accumulated per optimizer step")
	fs.IntVar(&o.StepsPerRun, "steps-per-run", 1, "optimizer steps per session run")
	fs.IntVar(&o.Runs, "runs", 3, "timed runs, between an untimed warm-up run and an untimed last run (which copies the state to the host)")
	fs.StringVar(&o.Precision, "precision", "fp32", "fp32, or bf16 for bfloat16 products with float32 parameters and state")
	fs.BoolVar(&o.StateOnHost, "state-on-host", false, "copy parameters and optimizer state to the host after every run (the pre-resident behaviour)")
	fs.StringVar(&o.AllReduce, "all-reduce", "", "add gradient AllReduce nodes over one rank: host (CPU kernel) or nccl (NCCL on the GPU); results must equal the plain step's")
	fs.StringVar(&o.AllReduceDType, "all-reduce-dtype", "fp32", "dtype the gradients are reduced in: fp32 or bf16")
	fs.Float64Var(&o.BucketMB, "bucket-mb", 0, "gradients per AllReduce: buckets of at least this many MiB (0: one AllReduce per tensor)")
	traffic := fs.Int("traffic", 0, "run nothing: print the bytes the step graph's nodes move (distill, orient or align, as on CUDA) and its N largest (op, shapes) groups")
	memory := fs.Bool("memory", false, "print the distill step graph's liveness peak and the tensors live there by kind, without a runtime")
	measure := fs.Bool("measure", false, "with --memory: also run one step on the provider and print how far resident memory rose (the CPU provider's arena)")
	fs.StringVar(&o.Recompute, "recompute", "", "training.recompute: empty (none) or layers")
	fs.IntVar(&o.LossChunk, "loss-chunk", 0, "training.loss_chunk: tokens per soft cross-entropy chunk (0: one piece)")
	fs.BoolVar(&o.MatrixKernels, "matrix-kernels", true, "training.matrix_kernels: Stage 1's fused [T, T] kernels (--matrix-kernels=false: the stock ops)")
	o.BlockKernels = pipeline.AllBlockKernels // training.block_kernels' default
	fs.Var(&pipeline.BlockKernelsFlag{K: &o.BlockKernels}, "block-kernels", "training.block_kernels: the blocks' fused plumbing kernels: all of them (=all), none (=none, the stock ops) or a subset (=conv,decay,residual,rotary); =all,gate adds the opt-in gate kernel")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.Teacher == "" {
		fs.Usage()
		return errUsage
	}
	if o.Recompute == "none" {
		o.Recompute = ""
	}
	if (o.Recompute != "" && o.Recompute != stages.RecomputeLayers) || o.LossChunk < 0 {
		return &flagError{fmt.Sprintf("--recompute %q must be none or layers and --loss-chunk %d not negative", o.Recompute, o.LossChunk)}
	}
	if err := localModel(ctx, "teacher", &o.Teacher); err != nil {
		return err
	}
	if *traffic > 0 {
		r, err := pipeline.StageTraffic(o)
		if err != nil {
			return err
		}
		printTraffic(r, *traffic)
		return nil
	}
	if *memory {
		o.Runtime = rc()
		measureFn := pipeline.StageMemory
		if *measure {
			measureFn = pipeline.MeasureStageMemory
		}
		r, err := measureFn(o)
		if err != nil {
			return err
		}
		printMemory(r)
		return nil
	}
	o.Runtime = rc()
	r, err := pipeline.BenchStage(ctx, o, os.Stderr)
	if err != nil {
		return err
	}
	return printJSON("bench-stage", r)
}

// printTraffic prints r's total and its n largest groups.
func printTraffic(r *pipeline.TrafficResult, n int) {
	fmt.Printf("%d nodes, %.2f GB per step (%s, micro-batch %d, seq %d)\n", r.Nodes, float64(r.BytesPerStep)/1e9, r.Precision, r.MicroBatch, r.Seq)
	fmt.Printf("%8s %9s %6s  %s\n", "calls", "GB", "share", "op and shapes")
	for _, row := range r.Rows[:min(n, len(r.Rows))] {
		fmt.Printf("%8d %9.2f %5.1f%%  %-12s %s\n", row.Calls, float64(row.Bytes)/1e9, 100*float64(row.Bytes)/float64(r.BytesPerStep), row.Op, row.Shapes)
	}
}

// printMemory prints r's peak and its live tensors by kind.
func printMemory(r *pipeline.MemoryResult) {
	fmt.Printf("%d nodes; peak %.2f GB of node outputs + %.2f GB resident = %.2f GB (%s, micro-batch %d, seq %d, recompute %q, loss chunk %d)\n",
		r.Nodes, float64(r.PeakBytes)/1e9, float64(r.ResidentBytes)/1e9, float64(r.TotalBytes)/1e9, r.Precision, r.MicroBatch, r.Seq, r.Recompute, r.LossChunk)
	fmt.Printf("peak in the %s pass at %s\n", r.PeakPhase, r.PeakNode)
	if r.MeasuredBytes > 0 {
		fmt.Printf("measured: resident memory rose %.3f GB during one run (liveness peak %.3f GB of node outputs: %+.1f%%)\n",
			float64(r.MeasuredBytes)/1e9, float64(r.PeakBytes)/1e9, 100*(float64(r.PeakBytes)/float64(r.MeasuredBytes)-1))
	}
	if r.ArenaPeakBytes > 0 {
		fmt.Printf("measured: ONNX Runtime's arena peak %.3f GB in use, %.3f GB reserved (liveness peak of node outputs: %+.1f%%)\n",
			float64(r.ArenaPeakBytes)/1e9, float64(r.ArenaReservedBytes)/1e9, 100*(float64(r.PeakBytes)/float64(r.ArenaPeakBytes)-1))
	}
	fmt.Printf("%6s %9s  %s\n", "count", "GB", "live at the peak")
	for _, row := range r.Rows {
		fmt.Printf("%6d %9.2f  %s\n", row.Count, float64(row.Bytes)/1e9, row.Kind)
	}
}

func cmdAblate(ctx context.Context, args []string) error {
	fs := flags("ablate", "FILE --budget N [--recipes s123,s23,s3,scratch] [key=value ...]")
	budget := fs.Int64("budget", 0, "total training tokens of each recipe")
	recipes := fs.String("recipes", "s123,s23,s3,scratch", "recipes to run: s123, s23, s3, scratch")
	provider := fs.String("provider", "", "execution provider (overrides runtime.provider)")
	lr := pipeline.PeerLRs
	fs.Float64Var(&lr.Align, "lr-align", lr.Align, "learning rate of Stages 1 and 2")
	fs.Float64Var(&lr.Distill, "lr-distill", lr.Distill, "learning rate of Stage 3")
	fs.Float64Var(&lr.Scratch, "lr-scratch", lr.Scratch, "learning rate of the from-scratch student")
	file, overrides, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if *budget <= 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := pipeline.Load(file, overrides)
	if err != nil {
		return err
	}
	out, err := pipeline.Ablate(ctx, cfg, file, *budget, strings.Split(*recipes, ","), lr, pipeline.RunOptions{Provider: *provider})
	if err != nil {
		return err
	}
	b, _ := os.ReadFile(out)
	fmt.Print(string(b))
	return nil
}

func cmdBenchMixer(ctx context.Context, args []string) error {
	fs := flags("bench-mixer", "--teacher DIR|phi-1.5 [--forms ssd,matrix,step] [--seqs 512,2048,8192]")
	teacher := fs.String("teacher", "", "teacher whose derived student's layer-0 mixer is timed (random mixer weights)")
	forms := fs.String("forms", "ssd,matrix,step", "mixer forms: ssd (chunked), matrix (materialised, quadratic), step (recurrent, one token per run)")
	seqs := fs.String("seqs", "512,2048,8192", "sequence lengths")
	iters := fs.Int("iters", 3, "timed repetitions (after one warm-up)")
	rc := runtimeFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *teacher == "" {
		fs.Usage()
		return errUsage
	}
	if err := localModel(ctx, "teacher", teacher); err != nil {
		return err
	}
	ts, err := positiveInts("--seqs", *seqs)
	if err != nil {
		return err
	}
	rs, err := pipeline.BenchMixer(ctx, *teacher, strings.Split(*forms, ","), ts, *iters, rc(), os.Stderr)
	for _, r := range rs {
		if err := printJSON("bench-mixer", r); err != nil {
			return err
		}
	}
	return err
}

// positiveInts parses a comma-separated list of positive integers (a flag's
// value), naming the flag in errors.
func positiveInts(flag, list string) ([]int, error) {
	var out []int
	for _, x := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", flag, x)
		}
		out = append(out, n)
	}
	return out, nil
}

func cmdProfile(_ context.Context, args []string) error {
	fs := flags("profile", "[--top N] [--nodes N] [--shapes N] [--skip-runs N] [--json] PROFILE.json...")
	top := fs.Int("top", 25, "op types shown per profile (0: all)")
	nodes := fs.Int("nodes", 0, "also show the N slowest nodes with their output shapes")
	shapes := fs.Int("shapes", 0, "also show the N slowest (op type, input and output shapes) groups, per run")
	skip := fs.Int("skip-runs", 0, "leave out the first N model runs (warm-up: allocation, cuDNN algorithm search)")
	asJSON := fs.Bool("json", false, "print one JSON object per profile")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	for _, path := range fs.Args() {
		p, err := runtime.SummarizeProfile(path, *skip)
		if err != nil {
			return err
		}
		if *top > 0 && len(p.Ops) > *top {
			p.Ops = p.Ops[:*top]
		}
		p.Nodes = p.Nodes[:min(*nodes, len(p.Nodes))]
		p.Shapes = p.Shapes[:min(*shapes, len(p.Shapes))]
		if *asJSON {
			if err := printJSON("profile", p); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("%s (%d model runs, first %d left out)\n", path, p.Runs, p.Skipped)
		t := p.Timeline
		fmt.Printf("per run: %.1f ms, host in nodes %.1f ms (%.0f%%), host waiting for the device after the last node %.1f ms\n",
			t.RunMillis, t.HostMillis, 100*t.HostMillis/max(t.RunMillis, 1e-9), t.WaitMillis)
		fmt.Printf("%-28s %-8s %8s %12s %7s %10s %8s\n", "op", "provider", "calls", "ms", "share", "GB", "GB/s")
		for _, o := range p.Ops {
			fmt.Printf("%-28s %-8s %8d %12.1f %6.1f%% %10.2f %8.1f\n", o.Op, o.Provider, o.Calls, o.Millis, 100*o.Share, float64(o.Bytes)/1e9, o.GBps())
		}
		for _, n := range p.Nodes {
			fmt.Printf("  %-10s %-20s %4d× %10.2f ms %8.3f GB  %s\n", n.Node, n.Op, n.Calls, n.Millis, float64(n.Bytes)/1e9, n.Outputs)
		}
		if len(p.Shapes) > 0 {
			runs := float64(max(p.Runs-p.Skipped, 1))
			fmt.Printf("per run: %8s %10s %8s %8s  op and shapes\n", "calls", "ms", "GB", "GB/s")
			for _, g := range p.Shapes {
				fmt.Printf("         %8.1f %10.2f %8.2f %8.1f  %-20s %s\n", float64(g.Calls)/runs, g.Millis/runs, float64(g.Bytes)/runs/1e9, g.GBps(), g.Op, g.Shapes)
			}
		}
	}
	return nil
}
