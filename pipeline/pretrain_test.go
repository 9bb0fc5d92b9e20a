package pipeline

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mohawk/data"
	"mohawk/stages"
)

// pretrainStages trains a small Phi from scratch (issue 3's pretrain stage).
const pretrainStages = `  - kind: pretrain
    model: teacher
    scratch: true
    architecture: {vocab: 8192, hidden: 32, layers: 1, heads: 2, intermediate: 64}
    tokens: 3072
    lr: 0.01`

// TestPretrainLossFallsAndResumes runs plain language-model training from
// scratch: training and held-out losses fall, and a run killed halfway
// resumes with exactly the loss curve of an uninterrupted one.
func TestPretrainLossFallsAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model twice")
	}
	ref, refPath := tinyConfig(t, pretrainStages, "training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 4, eval_every: 6, checkpoint_every: 4}")
	sum, err := Run(context.Background(), ref, refPath, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	rec := sum.Stages[0]
	if !(rec.LastLoss < rec.FirstLoss) || !(rec.ValLoss < rec.ValBefore) {
		t.Errorf("losses did not fall: train %.3f → %.3f, held-out %.3f → %.3f", rec.FirstLoss, rec.LastLoss, rec.ValBefore, rec.ValLoss)
	}
	t.Logf("pretrain %d steps: train loss %.3f → %.3f, held-out %.3f → %.3f", rec.Steps, rec.FirstLoss, rec.LastLoss, rec.ValBefore, rec.ValLoss)

	cfg, path := tinyConfig(t, pretrainStages, "training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 4, eval_every: 6, checkpoint_every: 4}")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Run(ctx, cfg, path, RunOptions{Out: io.Discard, Observe: func(m map[string]any) {
		if m["step"] == 13 {
			cancel()
		}
	}})
	if !errors.Is(err, stages.ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	cfg2, _ := Load(path, nil)
	if _, err := Run(context.Background(), cfg2, path, RunOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	runDir := func(c *Config) string { return filepath.Join(c.Resolve(c.OutputDir), c.Name) }
	if want, got := stepLosses(t, runDir(ref)), stepLosses(t, runDir(cfg)); !reflect.DeepEqual(want, got) {
		t.Errorf("loss curves differ:\nuninterrupted %v\nresumed       %v", want, got)
	}
	// The trained teacher is saved as a Hugging Face directory that loads.
	if _, err := LoadTeacher(filepath.Join(runDir(cfg), "stages", "00-pretrain", outputDir)); err != nil {
		t.Error(err)
	}
}

// TestEvalMultipleChoice scores a tiny hand-written task file end to end.
func TestEvalMultipleChoice(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, "piqa.jsonl")
	lines := []string{
		`{"goal": "To open a door,", "sol1": "turn the handle and push.", "sol2": "eat the handle slowly.", "label": 0}`,
		`{"goal": "To dry wet hands,", "sol1": "pour water on them.", "sol2": "rub them with a towel.", "label": 1}`,
		`{"goal": "To read a book,", "sol1": "open it and look at the pages.", "sol2": "bury it in the garden.", "label": 0}`,
	}
	if err := os.WriteFile(task, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The six tasks of the paper's table, from the fixtures' dataset
	// directories, beside the JSONL file.
	fixtures, err := filepath.Abs("../testdata/tasks")
	if err != nil {
		t.Fatal(err)
	}
	paper := ""
	for _, b := range data.Benchmarks {
		paper += ", {kind: " + b.Name + ", path: " + filepath.Join(fixtures, b.Dataset) + "}"
	}
	cfg, path := tinyConfig(t, "  - {kind: eval}", "eval: {windows: 2, seq_len: 32, last_word: 5, tasks: [{name: piqa-mini, path: "+task+", kind: piqa}"+paper+"]}")
	sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ev := sum.Stages[0].Eval
	for _, m := range []string{"teacher", "student"} {
		me := ev.Models[m]
		if me == nil || me.Tasks["piqa-mini"] == nil || me.Tasks["piqa-mini"].Examples != 3 || me.LastWord == nil || me.LastWord.Examples != 5 {
			t.Fatalf("%s: incomplete evaluation %+v", m, me)
		}
		t.Logf("%s: piqa-mini %s; last-word acc %.3f", m, metricsLine(me.Tasks["piqa-mini"]), me.LastWord.Accuracy)
	}
	b, err := os.ReadFile(filepath.Join(sum.RunDir, "report.md"))
	if err != nil || !strings.Contains(string(b), "piqa-mini acc") {
		t.Errorf("report lacks the task: %v", err)
	}
	results := map[string]map[string]*stages.TaskResult{"teacher": ev.Models["teacher"].Tasks, "student": ev.Models["student"].Tasks}
	table := ZeroShotTable([]string{"teacher", "student"}, results)
	if !strings.Contains(string(b), "zero-shot tasks (the paper's Table 1 layout)") || !strings.Contains(string(b), table) {
		t.Errorf("report lacks the zero-shot table\n%s", table)
	}
	for _, m := range []string{"teacher", "student"} {
		if r := findTask(results[m], "lambada_openai"); r == nil || r.Examples != 2 || r.Perplexity == nil || r.AccNorm != nil {
			t.Errorf("%s: lambada_openai result %+v", m, r)
		}
	}
	t.Logf("\n%s", table)
}
