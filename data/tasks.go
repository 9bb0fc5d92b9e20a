package data

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Benchmark is a zero-shot task as lm-evaluation-harness defines it: which
// Hugging Face dataset split it reads, how a row becomes a question, and
// the metric the MOHAWK paper's Table 1 reports for it.
type Benchmark struct {
	// Name is the lm-evaluation-harness task name.
	Name string
	// Dataset, Config and Split are the Hugging Face dataset, its
	// configuration ("" for the default one) and the split the harness
	// scores.
	Dataset, Config, Split string
	// Column is the task's column header in the paper's Table 1, and Metric
	// the metric that column reports: "acc" or "acc_norm".
	Column, Metric string
	// loader is the taskLoaders entry that reads a row; "" reads a
	// lambada_openai text.
	loader string
	// files are glob patterns, relative to a dataset directory, of the
	// split's files besides the Parquet layouts every dataset has (see
	// Files).
	files []string
}

// Benchmarks are the zero-shot tasks of the MOHAWK paper's Table 1 in its
// column order. Their Metric is acc, except for ARC-Challenge and HellaSwag
// where the paper reports acc_norm.
var Benchmarks = []Benchmark{
	{Name: "winogrande", Dataset: "allenai/winogrande", Config: "winogrande_xl", Split: "validation",
		Column: "WinoG", Metric: "acc", loader: "winogrande", files: []string{"dev.jsonl"}},
	{Name: "arc_easy", Dataset: "allenai/ai2_arc", Config: "ARC-Easy", Split: "test",
		Column: "ARC-E", Metric: "acc", loader: "arc", files: []string{"ARC-Easy/ARC-Easy-Test.jsonl", "ARC-Easy-Test.jsonl"}},
	{Name: "arc_challenge", Dataset: "allenai/ai2_arc", Config: "ARC-Challenge", Split: "test",
		Column: "ARC-C", Metric: "acc_norm", loader: "arc", files: []string{"ARC-Challenge/ARC-Challenge-Test.jsonl", "ARC-Challenge-Test.jsonl"}},
	{Name: "piqa", Dataset: "ybisk/piqa", Config: "plain_text", Split: "validation",
		Column: "PIQA", Metric: "acc", loader: "piqa"},
	{Name: "hellaswag", Dataset: "Rowan/hellaswag", Config: "default", Split: "validation",
		Column: "HellaS", Metric: "acc_norm", loader: "hellaswag", files: []string{"data/hellaswag_val.jsonl", "hellaswag_val.jsonl"}},
	{Name: "lambada_openai", Dataset: "EleutherAI/lambada_openai", Config: "default", Split: "test",
		Column: "LAMB", Metric: "acc", files: []string{"data/lambada_test.jsonl", "lambada_test.jsonl", "data/lambada_test_en.jsonl", "lambada_test_en.jsonl"}},
}

// fileTasks are the task kinds outside the paper's table, read from one
// file each: ARC in either layout under its own name, and the generic
// multiple-choice layout (see LoadMultipleChoice).
var fileTasks = []Benchmark{{Name: "arc", loader: "arc"}, {Name: "generic", loader: "generic"}}

// BenchmarkNames returns the names of Benchmarks, comma separated.
func BenchmarkNames() string {
	var names []string
	for _, b := range Benchmarks {
		names = append(names, b.Name)
	}
	return strings.Join(names, ",")
}

// LookupBenchmark returns the benchmark of an lm-evaluation-harness task
// name (or of "arc" or "generic"), or an error listing the known ones.
func LookupBenchmark(name string) (Benchmark, error) {
	for _, b := range slices.Concat(Benchmarks, fileTasks) {
		if b.Name == name {
			return b, nil
		}
	}
	return Benchmark{}, fmt.Errorf("unknown zero-shot task %q; use one of %s (or arc, generic)", name, BenchmarkNames())
}

// Files returns the glob patterns, relative to a directory holding the
// dataset's files (a Hugging Face snapshot or the files copied out of
// one), that LoadBenchmark tries in order, and that a download of the
// dataset by id chooses from (the first the Hub has): the Parquet files of the split
// as the dataset publishes them and as the Hub's Parquet conversion names
// them, then the task's JSONL files.
func (b Benchmark) Files() []string {
	c, s := b.Config, b.Split
	out := []string{
		c + "/" + s + "-*.parquet", // allenai/ai2_arc: ARC-Easy/test-00000-of-00001.parquet
		c + "/" + s + "/*.parquet", // refs/convert/parquet: plain_text/validation/0000.parquet
		"data/" + s + "-*.parquet", // the default layout of datasets pushed as Parquet
		s + "-*.parquet",
		s + "/*.parquet",
		s + ".jsonl",
	}
	return append(out, b.files...)
}

// Task is a benchmark's questions (multiple-choice tasks) or completions
// (lambada_openai), read from Paths.
type Task struct {
	Benchmark
	Paths       []string
	Questions   []MultipleChoice
	Completions []Completion
}

// Len is the number of examples.
func (t *Task) Len() int { return len(t.Questions) + len(t.Completions) }

// Truncate keeps the first n examples (all when n ≤ 0).
func (t *Task) Truncate(n int) {
	if n > 0 && len(t.Questions) > n {
		t.Questions = t.Questions[:n]
	}
	if n > 0 && len(t.Completions) > n {
		t.Completions = t.Completions[:n]
	}
}

// LoadBenchmark reads a benchmark's examples from path: one Parquet or
// JSONL file of the split, or a directory holding the dataset's files, in
// which the first pattern of Files that matches anything gives the files
// (shards are read in name order).
func LoadBenchmark(b Benchmark, path string) (*Task, error) {
	paths, err := b.Locate(path)
	if err != nil {
		return nil, err
	}
	t := &Task{Benchmark: b, Paths: paths}
	for _, p := range paths {
		if b.loader == "" {
			c, err := LoadLambada(p)
			if err != nil {
				return nil, err
			}
			t.Completions = append(t.Completions, c...)
			continue
		}
		q, err := LoadMultipleChoice(p, b.loader)
		if err != nil {
			return nil, err
		}
		t.Questions = append(t.Questions, q...)
	}
	return t, nil
}

// Locate returns the files LoadBenchmark reads for path.
func (b Benchmark) Locate(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if b.Dataset == "" {
			return nil, fmt.Errorf("%s data: %w; give the task's JSONL or Parquet file", b.Name, err)
		}
		return nil, fmt.Errorf("%s data: %w; give a file or a directory of %s (%s split), or the dataset's Hugging Face id (%s) to read it from the hub cache", b.Name, err, b.Dataset, b.Split, b.Dataset)
	}
	if st.IsDir() {
		return b.find(path)
	}
	return []string{path}, nil
}

// find returns the files of the first pattern of Files that matches in dir.
func (b Benchmark) find(dir string) ([]string, error) {
	if b.Dataset == "" {
		return nil, fmt.Errorf("%s is a directory; %s tasks are read from one JSONL or Parquet file: give its path", dir, b.Name)
	}
	for _, pat := range b.Files() {
		m, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(pat)))
		if err != nil {
			panic(err) // the patterns are constants
		}
		if len(m) > 0 {
			slices.Sort(m)
			return m, nil
		}
	}
	return nil, fmt.Errorf("%s: no %s files of %s (%s split) here; looked for %s; or give the file itself",
		dir, b.Name, b.Dataset, b.Split, strings.Join(b.Files(), ", "))
}
