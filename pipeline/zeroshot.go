package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"mohawk/data"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tokenizer"
)

// Label is the task's name in results: Name, or Kind when Name is empty.
func (t Task) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Kind
}

// loadTasks reads the examples of zero-shot tasks (paths already resolved),
// keeping the first Limit of each when Limit > 0.
func loadTasks(specs []Task) ([]*data.Task, error) {
	var out []*data.Task
	for _, s := range specs {
		b, err := data.LookupBenchmark(s.Kind)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", s.Label(), err)
		}
		t, err := data.LoadBenchmark(b, s.Path)
		if err != nil {
			return nil, err
		}
		t.Truncate(s.Limit)
		out = append(out, t)
	}
	return out, nil
}

// harnessEncoder encodes as lm-evaluation-harness's HFLM does with its
// default add_bos_token (None since v0.4.9.2: the tokenizer's own
// behaviour): every context and context+continuation with the tokenizer's
// special tokens, so a Llama-3 tokenizer's <|begin_of_text|> starts each of
// them and never sits in the middle, except a text that already starts
// with the prefix token's text, which gets none. Prefix is the harness's
// prefix_token_id, scored before a continuation with an empty context
// (encoded with EncodeNoSpecial): the tokenizer's BOS, else its end of
// text (tokenizer.EndOfText: the eos_token of tokenizer_config.json).
type harnessEncoder struct {
	*tokenizer.Tokenizer
	prefix     int64
	prefixText string
}

// newHarnessEncoder is tok (loaded from tokPath) as the harness uses it;
// it is a stages.PrefixEncoder when tok has a BOS or an end-of-text token.
// A tokenizer with neither (tokenizer.ErrNoEndOfText) gives a plain
// Encoder, which scores no request with an empty context. A
// tokenizer_config.json that is corrupt, unreadable or names a token tok
// lacks is an error naming the file, BOS or not, as in runs, validate and
// perplexity evaluation.
func newHarnessEncoder(tok *tokenizer.Tokenizer, tokPath string) (stages.Encoder, error) {
	eot, _, err := tokenizer.EndOfText(tokPath, tok)
	if err != nil && !errors.Is(err, tokenizer.ErrNoEndOfText) {
		return nil, err
	}
	prefix, ok := tok.BOS()
	if !ok {
		if err != nil {
			return tok, nil
		}
		prefix = eot
	}
	text, _ := tok.Decode([]int64{prefix})
	return harnessEncoder{tok, prefix, text}, nil
}

func (e harnessEncoder) Encode(s string) []int64 {
	if e.prefixText != "" && strings.HasPrefix(s, e.prefixText) {
		return e.EncodeNoSpecial(s)
	}
	return e.Tokenizer.Encode(s)
}

func (e harnessEncoder) Prefix() int64 { return e.prefix }

// scoreTasks scores every task with one model's scorer; results are keyed
// by the label of the task's spec.
func scoreTasks(sc *stages.Scorer, enc stages.Encoder, model string, specs []Task, tasks []*data.Task, log *runLog) (map[string]*stages.TaskResult, error) {
	out := map[string]*stages.TaskResult{}
	for i, t := range tasks {
		name := specs[i].Label()
		prog := log.Progress(fmt.Sprintf("%s (%s)", name, model), t.Len())
		r, err := sc.Task(enc, t, prog)
		prog.Done()
		if err != nil {
			return nil, fmt.Errorf("task %s (%s): %w", name, model, err)
		}
		out[name] = &r
		log.Printf("%s %s: %s over %d examples", model, name, metricsLine(&r), r.Examples)
	}
	return out, nil
}

// metricsLine writes a task result's metrics.
func metricsLine(r *stages.TaskResult) string {
	s := fmt.Sprintf("acc %.4f", r.Acc)
	if r.AccNorm != nil {
		s += fmt.Sprintf(" acc_norm %.4f", *r.AccNorm)
	}
	if r.Perplexity != nil {
		s += fmt.Sprintf(" perplexity %.3f", *r.Perplexity)
	}
	return s
}

// ZeroShotOptions configure a stand-alone zero-shot evaluation.
type ZeroShotOptions struct {
	Model    string // model directory (teacher or student, with tokenizer.json)
	Tasks    []Task // Kind is a benchmark name, Path its file, dataset directory or dataset id (from the hub cache; not downloaded)
	Runtime  runtime.Config
	Progress io.Writer // progress lines and per-task results (nil: none)
}

// ZeroShot scores a model directory on zero-shot tasks as
// lm-evaluation-harness does, keyed by the tasks' labels.
func ZeroShot(ctx context.Context, o ZeroShotOptions) (map[string]*stages.TaskResult, error) {
	tokPath := filepath.Join(o.Model, "tokenizer.json")
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, err
	}
	enc, err := newHarnessEncoder(tok, tokPath)
	if err != nil {
		return nil, err
	}
	specs := slices.Clone(o.Tasks)
	if err := resolveTasks(ctx, specs, func(p string) string { return p }, false, o.Progress); err != nil {
		return nil, err
	}
	tasks, err := loadTasks(specs)
	if err != nil {
		return nil, err
	}
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	env, model, rows, err := modelEnv(ctx, o.Model)
	if err != nil {
		return nil, err
	}
	if err := tok.CheckFits(rows, "the model in "+o.Model); err != nil {
		return nil, err
	}
	sc, done, err := openScorer(env, model, o.Runtime, out)
	if err != nil {
		return nil, err
	}
	defer done()
	return scoreTasks(sc, enc, model, specs, tasks, &runLog{metrics: nopCloser{io.Discard}, out: out})
}

// nopCloser is a writer whose Close does nothing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// ZeroShotTable writes the paper's Table 1 layout as Markdown: one row per
// model (in the order given) with the column of each of data.Benchmarks
// (the paper's metric: acc, or acc_norm for ARC-C and HellaSwag, as
// percentages), the LAMBADA perplexity, and the average of the six columns
// when a model has all of them. results maps a model to its task results;
// a task is found by its benchmark (TaskResult.Task), whatever its label.
func ZeroShotTable(models []string, results map[string]map[string]*stages.TaskResult) string {
	var b strings.Builder
	b.WriteString("| model |")
	for _, bm := range data.Benchmarks {
		fmt.Fprintf(&b, " %s %s |", bm.Column, bm.Metric)
	}
	b.WriteString(" LAMB ppl | Avg |\n|---|")
	b.WriteString(strings.Repeat("---|", len(data.Benchmarks)+2))
	b.WriteString("\n")
	for _, m := range models {
		fmt.Fprintf(&b, "| %s |", m)
		sum, n, ppl := 0.0, 0, ""
		for _, bm := range data.Benchmarks {
			r := findTask(results[m], bm.Name)
			if r == nil {
				b.WriteString(cell(""))
				continue
			}
			v := r.Acc
			if bm.Metric == "acc_norm" && r.AccNorm != nil {
				v = *r.AccNorm
			}
			if r.Perplexity != nil {
				ppl = fmt.Sprintf("%.2f", *r.Perplexity)
			}
			sum, n = sum+100*v, n+1
			b.WriteString(cell(fmt.Sprintf("%.1f", 100*v)))
		}
		avg := ""
		if n == len(data.Benchmarks) {
			avg = fmt.Sprintf("%.1f", sum/float64(n))
		}
		b.WriteString(cell(ppl) + cell(avg) + "\n")
	}
	return b.String()
}

// cell is a Markdown table cell after the first.
func cell(s string) string {
	if s == "" {
		return " |"
	}
	return " " + s + " |"
}

// findTask returns the result of a benchmark among a model's results: the
// one named after it, else the first by name, else nil.
func findTask(results map[string]*stages.TaskResult, benchmark string) *stages.TaskResult {
	if r := results[benchmark]; r != nil && r.Task == benchmark {
		return r
	}
	for _, name := range sortedNames(results) {
		if r := results[name]; r.Task == benchmark {
			return r
		}
	}
	return nil
}

// TaskSpecs turns the command line's task settings into tasks: names is a
// comma-separated list of task names; data a comma-separated list of
// name=path (a file, the dataset's directory or its Hugging Face id); a task without one reads
// dir/<its Hugging Face dataset id> when dir is set. limit keeps the first
// examples of each task (0: all).
func TaskSpecs(names, files, dir string, limit int) ([]Task, error) {
	paths := map[string]string{}
	if files != "" {
		for _, kv := range strings.Split(files, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || v == "" {
				return nil, fmt.Errorf("task data %q is not name=path", kv)
			}
			paths[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	var out []Task
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		b, err := data.LookupBenchmark(n)
		if err != nil {
			return nil, err
		}
		p, ok := paths[n]
		delete(paths, n)
		switch {
		case ok:
		case dir != "" && b.Dataset != "":
			p = filepath.Join(dir, filepath.FromSlash(b.Dataset))
		case b.Dataset == "":
			return nil, fmt.Errorf("task %s has no data; give %s=PATH, its JSONL or Parquet file", n, n)
		default:
			return nil, fmt.Errorf("task %s has no data; give %s=PATH (a file or a directory of %s) or a directory of datasets", n, n, b.Dataset)
		}
		out = append(out, Task{Kind: n, Path: p, Limit: limit})
	}
	for n := range paths {
		return nil, fmt.Errorf("task data given for %s, which is not among the tasks %q", n, names)
	}
	return out, nil
}
