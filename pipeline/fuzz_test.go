package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML and key=value overrides to Parse, then
// Validate (which opens the files the config names, relative to
// testdata/demo) and, for configs that validate, resolves every training
// stage's budget and shape. Nothing may panic.
func FuzzParse(f *testing.F) {
	demo, err := filepath.Abs("../testdata/demo")
	if err != nil {
		f.Fatal(err)
	}
	valid := `name: fuzz
output_dir: runs
seed: 5
teacher: {path: teacher}
student: {chunk_size: 16, init: attention}
data:
  train: [{path: train.txt}]
  val: [{path: val.txt, format: text, separator: "\n\n"}]
training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 2, schedule: {kind: cosine, warmup: 0.2}}
eval: {windows: 4, seq_len: 32, tasks: [{name: t, path: val.txt, kind: piqa}], models: [student]}
checkpoints: {keep_last: 1, on_nonfinite: rollback, rollback_lr_factor: 0.5, max_rollbacks: 2}
runtime: {provider: cpu, cpu: {intra_op_threads: 1}, cuda: {mem_limit_bytes: 1000}}
stages:
  - {kind: orient, tokens: 512}
  - {kind: align, fraction: 0.1}
  - {kind: distill, tokens: 1024, lr: 0.002, temperature: 2, hard_label_weight: 0.5, trainable: mixers, schedule: {kind: constant}}
  - {kind: pretrain, model: student, tokens: 256, micro_batch: 1, seq_len: 64}
  - {kind: eval}
  - {kind: export, fp16: true, opset: 21, teacher: true}
budget: 100000
`
	seeds := []struct{ yaml, overrides string }{
		{valid, ""},
		{valid, "stages.0.tokens=1000\ntraining.micro_batch=4\ncheckpoints.keep_last=0"},
		{valid, "stages.9.tokens=1\nstages.x=1\nname.sub=2\n=3\nnoequals"},
		{"name: x\nunknown_key: 1\nstages: [{kind: bogus, tokens: -1}]\n", ""},
		{"stages: {kind: orient}\ntraining: [1, 2]\nseed: -1\n", ""},
		{"a: &a [*a]\n", ""},
		{"- 1\n- 2\n", ""},
		{"{", ""},
		{"", "seed=1e999"},
		{"stages:\n  - kind: pretrain\n    scratch: true\n    architecture: {vocab: 8192, hidden: 0, layers: 2, heads: 0, intermediate: 1}\n", ""},
		{"student: {path: teacher}\ndata: {tokenizer: teacher/tokenizer.json, val_fraction: 0.5, train: [{path: train.txt, format: jsonl, field: text}]}\n", ""},
	}
	for _, name := range []string{"make-teacher.yaml"} {
		if b, err := os.ReadFile(filepath.Join(demo, name)); err == nil {
			seeds = append(seeds, struct{ yaml, overrides string }{string(b), ""})
		}
	}
	if b, err := os.ReadFile("../pipeline.yaml"); err == nil {
		seeds = append(seeds, struct{ yaml, overrides string }{strings.ReplaceAll(string(b), "testdata/demo/", ""), ""})
	}
	for _, s := range seeds {
		f.Add([]byte(s.yaml), s.overrides)
	}
	source := filepath.Join(demo, "fuzz.yaml")
	f.Fuzz(func(t *testing.T, raw []byte, overrides string) {
		// Validate opens the files a config names; keep the fuzzer away
		// from device files that never end.
		for _, s := range []string{"/dev", "/proc", "/sys"} {
			if strings.Contains(string(raw), s) || strings.Contains(overrides, s) {
				t.Skip()
			}
		}
		var ov []string
		if overrides != "" {
			ov = strings.Split(overrides, "\n")
		}
		cfg, err := Parse(raw, source, ov)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := Validate(cfg, source); err != nil {
			if ve, ok := err.(*ValidationError); ok && len(ve.Problems) == 0 {
				t.Fatal("a ValidationError without problems")
			}
			return
		}
		for _, s := range cfg.Stages {
			switch s.Kind {
			case KindPretrain, KindOrient, KindAlign, KindDistill:
				trainOptions(cfg, s)
			}
		}
		_ = cfg.TokenizerPath()
	})
}
