package pipeline

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mohawk/internal/shareddata"
)

// TestValidateRefusesHostileValues gives the tiny config one bad value at a
// time, each one validate used to accept and run then died on or silently
// changed, and expects exactly one problem naming the key. Placeholders in
// the cases name fixtures made here: FILE (a regular file), PIPE (a FIFO), DIR (a
// directory), SHORT (phi-tiny-en whose config says 4 of its 6 layers),
// LONG (the demo teacher claiming 10⁹ positions).
func TestValidateRefusesHostileValues(t *testing.T) {
	t.Parallel()
	fx := t.TempDir()
	file, fifo := filepath.Join(fx, "file"), filepath.Join(fx, "fifo")
	if err := os.WriteFile(file, []byte("text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	short := editedCopy(t, shareddata.Path(t, "reference", "phi-tiny-en"), `"num_hidden_layers": 6,`, `"num_hidden_layers": 4,`)
	long := editedCopy(t, filepath.Join(demoDir(t), "teacher"), `"max_position_embeddings": 2048`, `"max_position_embeddings": 1000000000`)
	fixtures := strings.NewReplacer("FILE", file, "PIPE", fifo, "DIR", fx, "SHORT", short, "LONG", long)
	const twoStages = "  - {kind: distill, tokens: 256}\n  - {kind: eval}"
	tests := []struct {
		name      string
		stages    string   // "" for twoStages
		replace   []string // top-level sections of the template replaced
		overrides []string
		want      string // "" for a valid config
	}{
		{name: "the template is valid"},
		// Numbers: non-finite, out of range, or out of range as float32.
		{name: "weight_decay .inf", replace: []string{"training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, optimizer: {weight_decay: .inf}}"},
			want: "training.optimizer.weight_decay +Inf must be a finite number ≥ 0"},
		{name: "lr NaN", overrides: []string{"training.optimizer.lr=NaN"}, want: "training.optimizer.lr NaN must be a finite number > 0"},
		{name: "lr beyond float32", overrides: []string{"training.optimizer.lr=1e39"}, want: "training.optimizer.lr 1e+39 must be a finite number > 0"},
		{name: "beta1 negative", overrides: []string{"training.optimizer.beta1=-0.1"}, want: "training.optimizer.beta1 -0.1 must be a finite number in [0, 1)"},
		{name: "beta2 1 as a float32", overrides: []string{"training.optimizer.beta2=0.99999999999"}, want: "training.optimizer.beta2 0.99999999999 is 1 as a float32"},
		{name: "eps 0 as a float32", overrides: []string{"training.optimizer.eps=1e-50"}, want: "training.optimizer.eps 1e-50 is 0 as a float32"},
		{name: "clip_norm -Inf", overrides: []string{"training.optimizer.clip_norm=-Inf"}, want: "training.optimizer.clip_norm -Inf must be a finite number ≥ 0"},
		{name: "warmup NaN", overrides: []string{"training.schedule.warmup=NaN"}, want: "training.schedule.warmup NaN must be a finite number in [0, 1]"},
		{name: "min_lr_ratio NaN", overrides: []string{"training.schedule.min_lr_ratio=NaN"}, want: "training.schedule.min_lr_ratio NaN"},
		{name: "stage lr +Inf", stages: "  - {kind: distill, tokens: 256, lr: .inf}", want: "stages[0].lr +Inf must be a finite number ≥ 0"},
		{name: "stage temperature +Inf", stages: "  - {kind: distill, tokens: 256, temperature: .inf}", want: "stages[0].temperature +Inf must be a finite number ≥ 0"},
		{name: "hard_label_weight NaN", stages: "  - {kind: distill, tokens: 256, hard_label_weight: .nan}", want: "stages[0].hard_label_weight NaN"},
		{name: "stage schedule decay NaN", stages: "  - {kind: distill, tokens: 256, schedule: {kind: wsd, decay: .nan}}", want: "stages[0].schedule.decay NaN"},
		{name: "rollback_lr_factor +Inf", overrides: []string{"checkpoints.rollback_lr_factor=+Inf"}, want: "checkpoints.rollback_lr_factor +Inf must be a finite number in (0, 1]"},
		{name: "max_rollbacks negative", overrides: []string{"checkpoints.max_rollbacks=-1"}, want: "checkpoints.max_rollbacks -1 must not be negative"},
		// Integers: decoding refuses what weak typing would wrap or truncate.
		{name: "seed -1", replace: []string{"seed: -1"}, want: "'seed' is -1; it must not be negative"},
		{name: "seed override -1", overrides: []string{"seed=-1"}, want: "'seed' is -1; it must not be negative"},
		{name: "seed 1.5", replace: []string{"seed: 1.5"}, want: "'seed' is 1.5; it must be a whole number"},
		{name: "tokens 1e30", stages: "  - {kind: distill, tokens: 1e30}", want: "'stages[0].tokens' is 1e+30, beyond the range of the key's type (int64)"},
		// Paths.
		{name: "output_dir is a file", overrides: []string{"output_dir=FILE"}, want: "output_dir: FILE exists and is not a directory"},
		{name: "output_dir under a file", overrides: []string{"output_dir=FILE/runs"}, want: "output_dir: FILE/runs cannot be created: FILE is not a directory"},
		{name: "run directory is a file", overrides: []string{"output_dir=DIR", "name=file"}, want: "the run directory output_dir/name: FILE exists and is not a directory"},
		{name: "cache_dir is a file", overrides: []string{"data.cache_dir=FILE"}, want: "data.cache_dir: FILE exists and is not a directory"},
		{name: "train a device", overrides: []string{"data.train.0.path=/dev/zero"}, want: "data.train[0].path: /dev/zero is a character device, not a regular file"},
		{name: "train FIFO", overrides: []string{"data.train.0.path=PIPE"}, want: "data.train[0].path: PIPE is a named pipe (FIFO), not a regular file"},
		{name: "val directory", overrides: []string{"data.val.0.path=DIR"}, want: "data.val[0].path: DIR is a directory, not a file"},
		{name: "tokenizer a device", overrides: []string{"data.tokenizer=/dev/zero"}, want: "data.tokenizer: /dev/zero is a character device"},
		{name: "task FIFO", replace: []string{"eval: {windows: 4, seq_len: 32, tasks: [{name: t, path: PIPE, kind: piqa}]}"}, want: "eval.tasks[0].path: PIPE is a named pipe (FIFO)"},
		// Hybrids.
		{name: "all layers attention with Stage 2", stages: "  - {kind: align, tokens: 256}", overrides: []string{"student.attention_layers=0,1"},
			want: "stages[0] (align): student.attention_layers [0 1] keeps every layer as attention, so the student has no SSM mixer for Stage 2 to fit"},
		{name: "all layers attention, Stage 3 only", overrides: []string{"student.attention_layers=0,1"}},
		// Sequence lengths.
		{name: "seq_len 1e9", overrides: []string{"training.seq_len=1000000000"}, want: "training.seq_len 1000000000 is beyond the teacher's max_position_embeddings 2048"},
		{name: "stage seq_len", stages: "  - {kind: distill, tokens: 8192, seq_len: 4096}", want: "stages[0].seq_len 4096 is beyond the teacher's max_position_embeddings 2048"},
		{name: "eval seq_len", overrides: []string{"eval.seq_len=4096"}, want: "eval.seq_len 4096 is beyond the teacher's max_position_embeddings 2048"},
		{name: "seq_len beyond memory", overrides: []string{"teacher.path=LONG", "training.seq_len=10000000", "eval.seq_len=32"},
			want: "training.seq_len 10000000: one layer's attention probabilities for one micro-batch of 2 alone take 4 B × 2 × 4 heads × 10000000² = 3.2e+15 bytes"},
		// Checkpoints.
		{name: "teacher config with fewer layers", overrides: []string{"teacher.path=SHORT"},
			want: "teacher.path: model.layers.4.* and model.layers.5.* in SHORT are not used: config.json num_hidden_layers is 4 but the checkpoint holds 6 layers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var replace, overrides []string
			for _, r := range tt.replace {
				replace = append(replace, fixtures.Replace(r))
			}
			for _, o := range tt.overrides {
				overrides = append(overrides, fixtures.Replace(o))
			}
			want := fixtures.Replace(tt.want)
			path := filepath.Join(dir, "pipeline.yaml")
			if err := os.WriteFile(path, []byte(tinyYAML(t, dir, filepath.Join(dir, "cache"), cmp.Or(tt.stages, twoStages), replace...)), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, overrides)
			if err == nil {
				err = Validate(cfg, path)
			}
			var ve *ValidationError
			switch {
			case want == "" && err != nil:
				t.Fatalf("the config is refused: %v", err)
			case want == "":
			case err == nil:
				t.Fatalf("accepted; want an error containing %q", want)
			case !strings.Contains(err.Error(), want):
				t.Fatalf("got %v\nwant an error containing %q", err, want)
			case errors.As(err, &ve) && len(ve.Problems) != 1:
				t.Errorf("got %d problems, want only the one named:\n%v", len(ve.Problems), err)
			}
		})
	}
}

// editedCopy copies a model directory and replaces old by new (once) in
// its config.json.
func editedCopy(t *testing.T, src, old, new string) string {
	t.Helper()
	dir := copyDir(t, src)
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s holds no %q", p, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
