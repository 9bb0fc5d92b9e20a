package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"mohawk/dist"
	"mohawk/stages"
)

const usage = `usage: pipeline <command> [arguments]

commands:
  run FILE [key=value...]   run the pipeline in FILE (resumes an interrupted run)
  validate FILE             check FILE and everything it names, report all problems
  ablate FILE --budget N    run Stages 1–3, 2–3, 3 only and from-scratch on FILE, compare
  eval                      held-out perplexity and zero-shot tasks of a model directory
  export                    write a model as an ONNX deployment folder
  grads                     gradients of the next-token loss for every parameter
  convert                   convert a pytorch_model.bin student to safetensors
  generate                  stream text from an exported model
  bench-generate            decode speed and memory: student, hybrid, teacher
  bench-forward             teacher forward throughput
  bench-stage               training-stage step throughput (tokens/s, MFU)
  bench-mixer               mixer forms' cost per token (chunked SSD, matrix, recurrent step)
  profile                   time per op type of ONNX Runtime profiles (--ort-profile DIR)
  setup                     install ONNX Runtime into the user cache
  fetch ORG/NAME[@REV]      download a Hugging Face model (or, with --repo-type dataset, a dataset) into the hub cache
  tokenize FILE             token ids of each document (--tokenizer tokenizer.json)

A model directory flag (--model, teacher.path, ...) also takes a Hugging Face
id, org/name[@revision], found in the hub cache ($HF_HUB_CACHE, else
$HF_HOME/hub, else ~/.cache/huggingface/hub).

Run 'pipeline <command> -h' for a command's flags.`

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := interruptible()
	defer stop()
	cmds := map[string]func(context.Context, []string) error{
		"run": cmdRun, "validate": cmdValidate, "eval": cmdEval, "export": cmdExport, "grads": cmdGrads,
		"convert": cmdConvert, "generate": cmdGenerate, "bench-generate": cmdBenchGenerate, "setup": cmdSetup,
		"bench-forward": cmdBenchForward, "bench-stage": cmdBenchStage, "ablate": cmdAblate, "bench-mixer": cmdBenchMixer,
		"profile": cmdProfile, "fetch": cmdFetch, "tokenize": cmdTokenize,
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pipeline: unknown command %q\n\n%s\n", args[0], usage)
		return 2
	}
	err := f(ctx, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage {
			fmt.Fprintf(os.Stderr, "pipeline %s: %v\n", args[0], err)
		}
		return 2
	case errors.Is(err, stages.ErrInterrupted):
		fmt.Fprintln(os.Stderr, "pipeline: interrupted; run the same command again to resume")
		return 130
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(os.Stderr, "pipeline %s: interrupted by a signal; its output is incomplete\n", args[0])
		return 130
	}
	fmt.Fprintf(os.Stderr, "pipeline %s: %v\n", args[0], err)
	var stopped *dist.StoppedError
	if errors.As(err, &stopped) { // another rank failed: the launcher names that one
		return dist.ExitStopped
	}
	return 1
}

var errUsage = errors.New("usage")

// flagError is a flag value that makes no sense: reported with exit status
// 2, like other usage errors, but with its message.
type flagError struct{ msg string }

func (e *flagError) Error() string        { return e.msg }
func (e *flagError) Is(target error) bool { return target == errUsage }

// interruptible returns a context cancelled by the first SIGINT or SIGTERM;
// every long loop of the commands checks it and returns within about a
// second (a training stage checkpoints first). A second signal exits at once
// with status 130, for whatever cannot notice the first (a read blocked in
// the kernel). stop releases the signals.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		cancel()
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "pipeline: second signal; exiting at once")
			os.Exit(130)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(sigs)
		cancel()
	}
}
