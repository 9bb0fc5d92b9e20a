package pipeline

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRejectsUnknownKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"top level", "name: x\ntrainig: {seq_len: 3}\n", "trainig"},
		{"nested", "name: x\ntraining: {sq_len: 3}\n", "sq_len"},
		{"in a stage", "name: x\nstages: [{kind: distill, tokens: 5, temprature: 2}]\n", "temprature"},
		{"runtime", "name: x\nruntime: {provder: cuda}\n", "provder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.yaml), "p.yaml", nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "p.yaml") {
				t.Errorf("error %v; want one naming %q and the file", err, tt.want)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	y := "name: x\nstages: [{kind: orient, tokens: 100}, {kind: distill, tokens: 200}]\n"
	cfg, err := Parse([]byte(y), "p.yaml", []string{"stages.1.tokens=999", "training.seq_len=64", "runtime.provider=cuda", "name=other"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stages[1].Tokens != 999 || cfg.Training.SeqLen != 64 || cfg.Runtime.Provider != "cuda" || cfg.Name != "other" {
		t.Errorf("overrides not applied: %+v %+v %q %q", cfg.Stages[1], cfg.Training, cfg.Runtime.Provider, cfg.Name)
	}
	for _, bad := range []string{"stages.7.tokens=1", "nokey", "name.sub=1"} {
		if _, err := Parse([]byte(y), "p.yaml", []string{bad}); err == nil {
			t.Errorf("override %q accepted", bad)
		}
	}
}

// TestValidateReportsEverything gives a config with many problems and
// expects each to be reported in one error.
func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	y := `name: "a/b"
teacher: {path: /nonexistent/teacher}
data:
  train: [{path: /nonexistent/train.txt, format: csv}, {path: "/nonexistent/train-*.parquet"}, {path: ../pipeline.yaml, format: parquet, field: body}]
  val: [{path: ../pipeline.yaml, format: jsonl, column: body}, {path: ../pipeline.yaml, field: a, column: b}, {path: ../pipeline.yaml, format: text, column: c}]
training: {seq_len: 0, precision: fp16, optimizer: {lr: -1, beta1: 1.5}, schedule: {kind: linear}}
stages:
  - {kind: orient}
  - {kind: distill, tokens: 10, temperature: -1, trainable: some}
  - {kind: eval, tokens: 5}
  - {kind: explode}
checkpoints: {on_nonfinite: ignore}
runtime: {provider: tpu}
eval:
  tasks:
    - {kind: arc-e, path: ../testdata/tasks}
    - {kind: arc_easy, path: ../testdata/tasks, limit: -1}
    - {name: arc_easy, kind: generic, path: ../testdata/tasks/EleutherAI/lambada_openai/data/lambada_test.jsonl}
`
	cfg, err := Parse([]byte(y), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(cfg, "p.yaml")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *ValidationError", err)
	}
	for _, want := range []string{`name "a/b"`, "teacher.path", "data.train[0].path", "data.train[0].format", "train-*.parquet matches no file",
		"data.train[2].field applies to jsonl sources only", "data.val[0].column applies to parquet sources only",
		"data.val[1]: set field (JSONL) or column (Parquet), not both", "data.val[2].field and .column apply to jsonl and parquet",
		"seq_len 0", `precision "fp16"`, "lr -1", "beta1 1.5", "schedule kind", "stages[0]: tokens", "temperature -1", "trainable",
		"stages[2]: tokens does not apply", `kind "explode"`, "on_nonfinite", "runtime",
		`eval.tasks[0].kind: unknown zero-shot task "arc-e"`, "eval.tasks[1]: limit -1", "eval.tasks[1].path: ../testdata/tasks: no arc_easy files of allenai/ai2_arc",
		`eval.tasks[2]: task name "arc_easy" is used twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidateDemoConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Load("../pipeline.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg, "pipeline.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestResolvedConfigReloads writes the resolved config the way a run does
// and loads it back: same settings, and it validates.
func TestResolvedConfigReloads(t *testing.T) {
	t.Parallel()
	cfg, err := Load("../pipeline.yaml", []string{"stages.2.tokens=1234"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ResolvedYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b, "config.resolved.yaml", nil)
	if err != nil {
		t.Fatalf("the resolved config does not load:\n%s\n%v", b, err)
	}
	if err := Validate(back, "config.resolved.yaml"); err != nil {
		t.Fatal(err)
	}
	if back.Stages[2].Tokens != 1234 || back.Training != cfg.Training || back.Teacher.Path != cfg.Resolve(cfg.Teacher.Path) {
		t.Errorf("round trip changed settings: %+v vs %+v", back.Training, cfg.Training)
	}
}
