package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"mohawk/runtime"
)

// Config is pipeline.yaml, decoded strictly: an unknown or misspelled key is
// an error naming it.
type Config struct {
	Name      string `mapstructure:"name"`
	OutputDir string `mapstructure:"output_dir"`
	Seed      uint64 `mapstructure:"seed"`
	// Budget is a run-wide token budget that stages with a fraction share.
	Budget   int64          `mapstructure:"budget"`
	Teacher  TeacherConfig  `mapstructure:"teacher"`
	Student  StudentConfig  `mapstructure:"student"`
	Data     DataConfig     `mapstructure:"data"`
	Training TrainingConfig `mapstructure:"training"`
	Eval     EvalConfig     `mapstructure:"eval"`
	Stages   []StageConfig  `mapstructure:"stages"`
	Runtime  runtime.Config `mapstructure:"runtime"`
	// Checkpoints control retention and fault handling.
	Checkpoints CheckpointConfig `mapstructure:"checkpoints"`

	dir string // directory of the config file; relative paths resolve here
}

// TeacherConfig names the Hugging Face checkpoint to distil (any
// registered family: Phi, Llama, Qwen2, Mistral).
type TeacherConfig struct {
	Path string `mapstructure:"path"`
}

// StudentConfig overrides the student derived from the teacher.
type StudentConfig struct {
	// Path starts from an existing student checkpoint (mohawk or the
	// authors' layout) instead of transferring from the teacher.
	Path      string `mapstructure:"path"`
	DState    int64  `mapstructure:"d_state"`    // 0: teacher head dim
	Heads     int64  `mapstructure:"heads"`      // 0: teacher heads
	DConv     int64  `mapstructure:"d_conv"`     // default 4
	ChunkSize int64  `mapstructure:"chunk_size"` // default 128
	Expand    int64  `mapstructure:"expand"`     // default 1
	// Init is "mohawk" (identity conv, opened gate, PyTorch defaults) or
	// "attention" (q→C, k→B, v→x, dense→out_proj, the MambaInLlama recipe).
	Init string `mapstructure:"init"`
	// AttentionLayers makes a hybrid student: these layers keep the
	// teacher's attention (see AttentionLayers for the list and rules).
	// Both hybrid keys enter a run's identity only when set (hybridIdentity),
	// so the stage hashes of pure runs are those of earlier versions.
	AttentionLayers AttentionLayers `mapstructure:"attention_layers" json:"-"`
	// TrainAttention lets Stage 3 train the kept attention layers (default
	// true); false freezes them at the teacher's weights.
	TrainAttention bool `mapstructure:"train_attention" json:"-"`
}

// Source is one text, JSONL or Parquet file, or a glob of shards
// (data/train-*.parquet), or the files of a Hugging Face dataset matching
// a pattern ({dataset: org/name, files: "data/train-*.parquet"}, found in
// the hub cache or downloaded; see ResolveHub); see data.Source for how
// formats are found.
type Source struct {
	Path      string `mapstructure:"path"`
	Dataset   string `mapstructure:"dataset" json:"Dataset,omitempty"` // a Hugging Face dataset id, org/name[@revision], instead of path
	Files     string `mapstructure:"files" json:"Files,omitempty"`     // dataset: the pattern of its files to read, e.g. data/train-*.parquet
	Format    string `mapstructure:"format"`                           // empty: from the content and name | text | jsonl | parquet
	Field     string `mapstructure:"field"`                            // jsonl: key holding the text (default "text")
	Column    string `mapstructure:"column"`                           // parquet: column holding the text (default "text")
	Separator string `mapstructure:"separator"`                        // text: document separator (default "\n\n")
}

// DataConfig lists training and validation text.
type DataConfig struct {
	Train       []Source `mapstructure:"train"`
	Val         []Source `mapstructure:"val"`
	ValFraction float64  `mapstructure:"val_fraction"` // split train by documents when val is empty
	Tokenizer   string   `mapstructure:"tokenizer"`    // default: the teacher's tokenizer.json
	CacheDir    string   `mapstructure:"cache_dir"`    // tokenized-stream cache (default output_dir/cache)
}

// OptimizerConfig is AdamW with PyTorch semantics.
type OptimizerConfig struct {
	LR          float64 `mapstructure:"lr"`
	Beta1       float64 `mapstructure:"beta1"`
	Beta2       float64 `mapstructure:"beta2"`
	Eps         float64 `mapstructure:"eps"`
	WeightDecay float64 `mapstructure:"weight_decay"`
	ClipNorm    float64 `mapstructure:"clip_norm"`
}

// ScheduleConfig is the learning-rate schedule of one stage.
type ScheduleConfig struct {
	Kind       string  `mapstructure:"kind"`         // wsd (default) | cosine | constant
	Warmup     float64 `mapstructure:"warmup"`       // fraction of the stage's steps
	Decay      float64 `mapstructure:"decay"`        // wsd: fraction of steps in the final decay
	MinLRRatio float64 `mapstructure:"min_lr_ratio"` // floor as a fraction of lr
}

// TrainingConfig holds defaults every training stage inherits.
type TrainingConfig struct {
	SeqLen          int             `mapstructure:"seq_len"`
	MicroBatch      int             `mapstructure:"micro_batch"`
	TokensPerUpdate int             `mapstructure:"tokens_per_update"`
	Optimizer       OptimizerConfig `mapstructure:"optimizer"`
	Schedule        ScheduleConfig  `mapstructure:"schedule"`
	EvalEvery       int             `mapstructure:"eval_every"`       // steps; 0 = only at the end
	EvalWindows     int             `mapstructure:"eval_windows"`     // held-out windows per evaluation
	CheckpointEvery int             `mapstructure:"checkpoint_every"` // steps; 0 = only at the end
	// StepsPerRun optimizer steps are performed per session run (an ONNX
	// Loop keeps parameters and optimizer state on the device between
	// them); evaluation and checkpoints happen between runs.
	StepsPerRun int `mapstructure:"steps_per_run"`
	// Precision of the training graphs: "fp32" (default) or "bf16"
	// (bfloat16 products with the activations between them, as PyTorch's
	// bf16 autocast, and Stage 3's frozen teacher wholly in bfloat16;
	// float32 parameters, optimizer state, residual stream, norms and
	// losses; the CPU provider emulates the rounding).
	Precision string `mapstructure:"precision"`
	// Recompute trades time for memory: "none" (default) keeps every
	// activation the backward pass needs; "layers" keeps each student
	// layer's input only and recomputes the layer's forward in the backward
	// pass (about one more forward of the student per step).
	Recompute string `mapstructure:"recompute"`
	// LossChunk computes Stage 3's student logits and loss in chunks of
	// this many positions, each recomputed in the backward pass, so that no
	// [B, T, vocabulary] tensor exists; 0 (default) computes them whole.
	LossChunk int `mapstructure:"loss_chunk"`
	// MatrixKernels runs Stage 1's [T, T] work as fused kernels (the
	// distance without the mixing matrix in memory, the teacher's softmax
	// in one pass): about a third of Stage 1's modelled memory traffic,
	// and twice the step's speed on an H100 (docs/benchmarks.md). On by
	// default; false builds the stock-op form.
	MatrixKernels bool `mapstructure:"matrix_kernels"`
	// BlockKernels runs the blocks' plumbing as fused kernels: the SSM
	// mixer's in_proj split, conv and split as one node, the SSD's
	// decay-weighted scores without the decay matrix in memory, the
	// residual stream's update reading bfloat16 branches as they are, and
	// the rotary embedding in one pass: about 12% of Stage 3's modelled
	// memory traffic, 5.9% more Stage 3 tokens/s on an H100 with a lower
	// memory peak (docs/benchmarks.md, twelfth session). On by default;
	// false builds the stock-op form the tests compare them against.
	BlockKernels bool `mapstructure:"block_kernels"`
}

// EvalConfig configures the evaluation stage.
type EvalConfig struct {
	Windows  int `mapstructure:"windows"`   // perplexity windows (default 200)
	SeqLen   int `mapstructure:"seq_len"`   // perplexity window length (default 256)
	LastWord int `mapstructure:"last_word"` // LAMBADA-style examples from held-out text (0 = off)
	// AfterEachStage measures the student's held-out perplexity after every
	// training stage (for the report's table).
	AfterEachStage bool     `mapstructure:"after_each_stage"`
	Tasks          []Task   `mapstructure:"tasks"`  // zero-shot tasks (docs/zero-shot.md)
	Models         []string `mapstructure:"models"` // teacher, student (default both)
}

// Task is one zero-shot task: an lm-evaluation-harness task name (Kind:
// winogrande, arc_easy, arc_challenge, piqa, hellaswag, lambada_openai, or
// arc and generic for other multiple-choice files) and its data (Path: a
// Parquet or JSONL file, the dataset's directory, or its Hugging Face id,
// org/name[@revision], resolved as ResolveHub says).
type Task struct {
	Name  string `mapstructure:"name"` // label in results (default: Kind)
	Path  string `mapstructure:"path"`
	Kind  string `mapstructure:"kind"`
	Limit int    `mapstructure:"limit"` // first examples only (0: all)
}

// CheckpointConfig sets retention and non-finite handling.
type CheckpointConfig struct {
	KeepLast int `mapstructure:"keep_last"` // newest checkpoints kept per stage (plus the best)
	// OnNonFinite is "stop" (default) or "rollback": reload the last good
	// checkpoint and multiply the learning rate by RollbackLRFactor.
	OnNonFinite      string  `mapstructure:"on_nonfinite"`
	RollbackLRFactor float64 `mapstructure:"rollback_lr_factor"`
	MaxRollbacks     int     `mapstructure:"max_rollbacks"`
}

// StageConfig is one entry of stages:. Fields a stage kind does not use must
// stay unset.
type StageConfig struct {
	Name   string `mapstructure:"name"`
	Kind   string `mapstructure:"kind"`   // pretrain | orient | align | distill | eval | export
	Tokens int64  `mapstructure:"tokens"` // training tokens of this stage
	// Fraction of the run's total budget (run.tokens) instead of Tokens.
	Fraction float64 `mapstructure:"fraction"`
	// Per-stage overrides of training defaults.
	LR              float64         `mapstructure:"lr"`
	SeqLen          int             `mapstructure:"seq_len"`
	MicroBatch      int             `mapstructure:"micro_batch"`
	TokensPerUpdate int             `mapstructure:"tokens_per_update"`
	Schedule        *ScheduleConfig `mapstructure:"schedule"`
	// pretrain: which architecture ("teacher": a Phi model, "student": a
	// Phi-Mamba), and whether to start from scratch (true) or from the
	// current weights.
	Model   string `mapstructure:"model"`
	Scratch bool   `mapstructure:"scratch"`
	// pretrain: the architecture of a new teacher trained from scratch.
	Architecture *ArchConfig `mapstructure:"architecture"`
	// pretrain (teacher): dtype of the saved teacher weights (float32 or
	// float16, as Hugging Face checkpoints are often stored).
	SaveDType string `mapstructure:"save_dtype"`
	// distill
	Temperature     float64 `mapstructure:"temperature"`
	HardLabelWeight float64 `mapstructure:"hard_label_weight"`
	Trainable       string  `mapstructure:"trainable"` // all (default) | mixers
	// orient/align: layers trained per group (0 = all at once)
	LayerGroup int `mapstructure:"layer_group"`
	// export
	Out     string `mapstructure:"out"`
	FP16    bool   `mapstructure:"fp16"`
	Opset   int    `mapstructure:"opset"`
	Teacher bool   `mapstructure:"teacher"` // export the teacher too
}

// DefaultArchFamily is the family of a stage architecture given by sizes
// without architecture.family.
const DefaultArchFamily = "phi"

// ArchConfig is a teacher architecture for pretraining from scratch:
// a config.json (Config) of any registered family, or the sizes below
// in the family named by Family (DefaultArchFamily when empty).
type ArchConfig struct {
	Config       string  `mapstructure:"config" json:",omitempty"`
	Family       string  `mapstructure:"family" json:",omitempty"`
	KVHeads      int     `mapstructure:"kv_heads" json:",omitempty"`
	Vocab        int     `mapstructure:"vocab"`
	Hidden       int     `mapstructure:"hidden"`
	Layers       int     `mapstructure:"layers"`
	Heads        int     `mapstructure:"heads"`
	Intermediate int     `mapstructure:"intermediate"`
	Rotary       float64 `mapstructure:"partial_rotary_factor"`
}

// Stage kinds.
const (
	KindPretrain = "pretrain"
	KindOrient   = "orient"
	KindAlign    = "align"
	KindDistill  = "distill"
	KindEval     = "eval"
	KindExport   = "export"
)

// Defaults returns the settings a pipeline.yaml overrides.
func Defaults() map[string]any {
	return map[string]any{
		"name":       "run",
		"output_dir": "runs",
		"seed":       1234,
		"student": map[string]any{
			"d_conv": 4, "chunk_size": 128, "expand": 1, "init": "mohawk", "train_attention": true,
		},
		"training": map[string]any{
			"seq_len": 256, "micro_batch": 16, "tokens_per_update": 4096,
			"optimizer":        map[string]any{"lr": 1e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip_norm": 1.0},
			"schedule":         map[string]any{"kind": "wsd", "warmup": 0.1, "decay": 0.1, "min_lr_ratio": 0.0},
			"eval_every":       0,
			"eval_windows":     20,
			"checkpoint_every": 100,
			"steps_per_run":    1,
			"precision":        "fp32",
			"recompute":        "none",
			"loss_chunk":       0,
			"matrix_kernels":   true,
			"block_kernels":    true,
		},
		"eval":        map[string]any{"windows": 200, "seq_len": 256, "after_each_stage": true},
		"checkpoints": map[string]any{"keep_last": 2, "on_nonfinite": "stop", "rollback_lr_factor": 0.5, "max_rollbacks": 3},
	}
}

// Load reads a pipeline.yaml, applies key=value overrides (dotted keys,
// list indices as numbers: stages.2.tokens=1000) and decodes it strictly.
// Paths in the file are resolved relative to the file's directory.
func Load(path string, overrides []string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(raw, path, overrides)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML bytes (see Load); source names the file in errors.
func Parse(raw []byte, source string, overrides []string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", source, err)
	}
	settings := v.AllSettings()
	merged := mergeMaps(Defaults(), settings)
	for _, o := range overrides {
		if err := applyOverride(merged, o); err != nil {
			return nil, fmt.Errorf("override %q: %w", o, err)
		}
	}
	var cfg Config
	var md mapstructure.Metadata
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &cfg,
		ErrorUnused:      true,
		WeaklyTypedInput: true,
		Metadata:         &md,
		TagName:          "mapstructure",
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(attentionLayersHook, mapstructure.StringToSliceHookFunc(","), wholeNumbers),
	})
	if err != nil {
		return nil, err
	}
	if err := dec.Decode(merged); err != nil {
		return nil, fmt.Errorf("%s: %w", source, friendlyDecodeError(err))
	}
	cfg.dir = filepath.Dir(source)
	return &cfg, nil
}

// wholeNumbers refuses what weak typing would silently change on the way
// into an integer key: a negative number into an unsigned one (seed: -1
// became 2⁶⁴−1), and a float that is not a whole number in the key's
// range (tokens: 1e30, micro_batch: 2.5). mapstructure names the key.
func wholeNumbers(from, to reflect.Value) (any, error) {
	var lo, hi float64
	switch to.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		lo, hi = 0, math.Ldexp(1, to.Type().Bits())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		lo, hi = -math.Ldexp(1, to.Type().Bits()-1), math.Ldexp(1, to.Type().Bits()-1)
	default:
		return from.Interface(), nil
	}
	var x float64
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if lo == 0 && from.Int() < 0 {
			return nil, fmt.Errorf("is %d; it must not be negative", from.Int())
		}
		return from.Interface(), nil
	case reflect.Float32, reflect.Float64:
		x = from.Float()
	default:
		return from.Interface(), nil
	}
	switch {
	case lo == 0 && x < 0:
		return nil, fmt.Errorf("is %g; it must not be negative", x)
	case x != math.Trunc(x): // NaN too; ±Inf fails the range below
		return nil, fmt.Errorf("is %g; it must be a whole number", x)
	case x < lo || x >= hi:
		return nil, fmt.Errorf("is %g, beyond the range of the key's type (%s)", x, to.Type())
	}
	return from.Interface(), nil
}

// friendlyDecodeError rewrites mapstructure's unused-key message into one
// that names the key and says what to do.
func friendlyDecodeError(err error) error {
	msg := err.Error()
	const preamble = "decoding failed due to the following error(s):\n\n"
	if one, ok := strings.CutPrefix(msg, preamble); ok && !strings.Contains(one, "\n") && !strings.Contains(one, "has invalid keys: ") {
		return errors.New(one)
	}
	if i := strings.Index(msg, "has invalid keys: "); i >= 0 {
		keys := strings.TrimSpace(msg[i+len("has invalid keys: "):])
		where := strings.TrimSpace(strings.TrimPrefix(msg[:i], "decoding failed due to the following error(s):\n\n"))
		where = strings.TrimPrefix(where, "'")
		where = strings.TrimSuffix(where, "' ")
		if where == "" || where == "'" {
			where = "the top level"
		}
		return fmt.Errorf("unknown key(s) %s in %s; check the spelling against pipeline.yaml's documented keys", keys, strings.Trim(where, "' "))
	}
	return err
}

func mergeMaps(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeMaps(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// applyOverride sets one dotted key (numbers index lists) to a YAML scalar.
func applyOverride(m map[string]any, kv string) error {
	k, val, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	parts := strings.Split(strings.ToLower(k), ".")
	var cur any = m
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = parseScalar(val)
				return nil
			}
			next, ok := c[p]
			if !ok {
				next = map[string]any{}
				c[p] = next
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(p)
			if err != nil || idx < 0 || idx >= len(c) {
				return fmt.Errorf("%q is not an index of a list of %d entries", p, len(c))
			}
			if last {
				c[idx] = parseScalar(val)
				return nil
			}
			cur = c[idx]
		default:
			return fmt.Errorf("%s is not a section", strings.Join(parts[:i], "."))
		}
	}
	return nil
}

func parseScalar(s string) any {
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

// Resolve makes a path from the config absolute (relative to the file).
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}
