package hfconfig

import (
	"mohawk/internal/sharedpath"

	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// exported is p with the unexported bookkeeping cleared, for comparisons.
func exported(p *Phi) Phi {
	c := *p
	c.source, c.notes, c.missing, c.bad = "", nil, nil, nil
	return c
}

var phi15 = Phi{
	ModelType: "phi", VocabSize: 51200, HiddenSize: 2048, IntermediateSize: 8192,
	NumHiddenLayers: 24, NumAttentionHeads: 32, NumKeyValueHeads: 32, HeadDim: 64,
	PartialRotaryFactor: 0.5, RopeTheta: 10000, RopeType: "default", LayerNormEps: 1e-5,
	HiddenAct: "gelu_new", MaxPositionEmbeddings: 2048, BosTokenID: 50256, EosTokenID: 50256,
	TorchDType: "float16",
}

func TestLoadPhi15(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"testdata/phi-1_5", "testdata/phi-1_5/config.json"} {
		p, err := Load(path)
		if err != nil {
			t.Fatalf("Load(%s): %v", path, err)
		}
		if got := exported(p); !reflect.DeepEqual(got, phi15) {
			t.Errorf("Load(%s) =\n%+v\nwant\n%+v", path, got, phi15)
		}
		if p.RotaryDim() != 32 {
			t.Errorf("RotaryDim = %d, want 32", p.RotaryDim())
		}
	}
}

// referenceConfig returns the shared phi-tiny-en config.json or skips.
func referenceConfig(t *testing.T) string {
	t.Helper()
	return sharedpath.Path(t, "reference", "phi-tiny-en", FileName)
}

func TestLoadReference(t *testing.T) {
	t.Parallel()
	path := referenceConfig(t)
	p, err := Load(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	want := Phi{
		ModelType: "phi", VocabSize: 8192, HiddenSize: 256, IntermediateSize: 1024,
		NumHiddenLayers: 6, NumAttentionHeads: 8, NumKeyValueHeads: 8, HeadDim: 32,
		PartialRotaryFactor: 0.5, RopeTheta: 10000, RopeType: "default", LayerNormEps: 1e-5,
		HiddenAct: "gelu_new", MaxPositionEmbeddings: 2048, BosTokenID: 0, EosTokenID: 0,
		TorchDType: "float16",
	}
	if got := exported(p); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if p.RotaryDim() != 16 {
		t.Errorf("RotaryDim = %d, want 16", p.RotaryDim())
	}

	// Marshal reproduces the file, bar the transformers version.
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(orig, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	delete(a, "transformers_version")
	if !reflect.DeepEqual(a, b) {
		t.Errorf("Marshal gave\n%s\nthe reference is\n%s", out, orig)
	}
}

// config is a minimal valid transformers 4 config, as a map to edit.
func config() map[string]any {
	return map[string]any{
		"model_type":          "phi",
		"vocab_size":          1000,
		"hidden_size":         64,
		"intermediate_size":   256,
		"num_hidden_layers":   2,
		"num_attention_heads": 4,
	}
}

func encode(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	p, err := Parse(encode(t, config()), "min.json")
	if err != nil {
		t.Fatal(err)
	}
	want := Phi{
		ModelType: "phi", VocabSize: 1000, HiddenSize: 64, IntermediateSize: 256,
		NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 4, HeadDim: 16,
		PartialRotaryFactor: 0.5, RopeTheta: 10000, RopeType: "default", LayerNormEps: 1e-5,
		HiddenAct: "gelu_new", MaxPositionEmbeddings: 2048, BosTokenID: 1, EosTokenID: 2,
	}
	if got := exported(p); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseLayouts(t *testing.T) {
	t.Parallel()
	set := func(kv map[string]any) map[string]any {
		m := config()
		for k, v := range kv {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		m    map[string]any
		want func(p *Phi) bool
	}{
		{"transformers 4 rope keys", set(map[string]any{"rope_theta": 500.0, "partial_rotary_factor": 0.25, "rope_scaling": nil}),
			func(p *Phi) bool {
				return p.RopeTheta == 500 && p.PartialRotaryFactor == 0.25 && p.RopeType == "default"
			}},
		{"transformers 5 rope_parameters", set(map[string]any{"rope_parameters": map[string]any{"rope_theta": 500.0, "partial_rotary_factor": 0.25, "rope_type": "default"}}),
			func(p *Phi) bool { return p.RopeTheta == 500 && p.PartialRotaryFactor == 0.25 }},
		{"both layouts agreeing", set(map[string]any{"partial_rotary_factor": 0.25, "rope_parameters": map[string]any{"partial_rotary_factor": 0.25}}),
			func(p *Phi) bool { return p.PartialRotaryFactor == 0.25 && p.RopeTheta == 10000 }},
		{"dtype over torch_dtype", set(map[string]any{"dtype": "bfloat16", "torch_dtype": "float32"}),
			func(p *Phi) bool { return p.TorchDType == "bfloat16" }},
		{"torch_dtype", set(map[string]any{"torch_dtype": "float32"}),
			func(p *Phi) bool { return p.TorchDType == "float32" }},
		{"null key-value heads", set(map[string]any{"num_key_value_heads": nil}),
			func(p *Phi) bool { return p.NumKeyValueHeads == 4 }},
		{"null token ids", set(map[string]any{"bos_token_id": nil, "eos_token_id": nil}),
			func(p *Phi) bool { return p.BosTokenID == -1 && p.EosTokenID == -1 }},
		{"integers written as floats", set(map[string]any{"hidden_size": 64.0, "max_position_embeddings": 4096.0}),
			func(p *Phi) bool { return p.HiddenSize == 64 && p.MaxPositionEmbeddings == 4096 }},
		{"gelu_pytorch_tanh", set(map[string]any{"hidden_act": "gelu_pytorch_tanh"}),
			func(p *Phi) bool { return p.HiddenAct == "gelu_pytorch_tanh" }},
		{"tied embeddings", set(map[string]any{"tie_word_embeddings": true}),
			func(p *Phi) bool { return p.TieWordEmbeddings }},
		{"consistent head_dim", set(map[string]any{"head_dim": 16}),
			func(p *Phi) bool { return p.HeadDim == 16 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(encode(t, tc.m), "c.json")
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			if !tc.want(p) {
				t.Errorf("unexpected result %+v", exported(p))
			}
		})
	}
}

// problemKeys is the keys of err's problems, which must be an *Error.
func problemKeys(t *testing.T, err error) []string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	var keys []string
	for _, p := range e.Problems {
		keys = append(keys, p.Key)
	}
	return keys
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit map[string]any // nil values delete the key
		del  []string
		keys []string
		want string
	}{
		{"missing vocab_size", nil, []string{"vocab_size"}, []string{"vocab_size"}, "vocab_size is missing; copy it from the model's original config.json"},
		{"null hidden_size", map[string]any{"hidden_size": nil}, nil, []string{"hidden_size"}, "hidden_size is missing"},
		{"missing num_hidden_layers", nil, []string{"num_hidden_layers"}, []string{"num_hidden_layers"}, "num_hidden_layers is missing"},
		{"missing num_attention_heads", nil, []string{"num_attention_heads"}, []string{"num_attention_heads"}, "num_attention_heads is missing"},
		{"missing intermediate_size", nil, []string{"intermediate_size"}, []string{"intermediate_size"}, "intermediate_size is missing"},
		{"zero vocab_size", map[string]any{"vocab_size": 0}, nil, []string{"vocab_size"}, "vocab_size is 0; it must be a positive integer"},
		{"hidden not divisible by heads", map[string]any{"hidden_size": 66}, nil, []string{"hidden_size"}, "hidden_size 66 is not divisible by num_attention_heads 4"},
		{"unsupported hidden_act", map[string]any{"hidden_act": "relu"}, nil, []string{"hidden_act"}, `hidden_act is "relu"; only "gelu_new" and "gelu_pytorch_tanh"`},
		{"exact gelu", map[string]any{"hidden_act": "gelu"}, nil, []string{"hidden_act"}, `hidden_act is "gelu"`},
		{"unsupported rope_type", map[string]any{"rope_parameters": map[string]any{"rope_type": "linear", "factor": 2.0}}, nil, []string{"rope_parameters.rope_type"}, `rope_parameters.rope_type is "linear"; only "default" RoPE is supported`},
		{"rope_scaling set", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}, nil, []string{"rope_scaling"}, `rope_scaling is {"factor":2,"type":"linear"}; RoPE scaling is not supported`},
		{"qk_layernorm", map[string]any{"qk_layernorm": true}, nil, []string{"qk_layernorm"}, "qk_layernorm is true; layer norms on queries and keys are not supported"},
		{"grouped-query attention", map[string]any{"num_key_value_heads": 2}, nil, []string{"num_key_value_heads"}, "num_key_value_heads is 2 but num_attention_heads is 4; grouped-query attention is not supported"},
		{"other model_type", map[string]any{"model_type": "llama"}, nil, []string{"model_type"}, `model_type is "llama"; only "phi" (PhiForCausalLM) checkpoints are supported`},
		{"missing model_type", nil, []string{"model_type"}, []string{"model_type"}, `model_type is missing; only "phi"`},
		{"rope layouts disagree", map[string]any{"rope_theta": 100.0, "rope_parameters": map[string]any{"rope_theta": 200.0}}, nil, []string{"rope_parameters.rope_theta"}, "rope_parameters.rope_theta is 200 but the top-level rope_theta is 100; make them agree"},
		{"partial_rotary_factor out of range", map[string]any{"partial_rotary_factor": 1.5}, nil, []string{"partial_rotary_factor"}, "partial_rotary_factor is 1.5; it must be in (0, 1]"},
		{"odd rotary dimensions", map[string]any{"partial_rotary_factor": 0.3125}, nil, []string{"partial_rotary_factor"}, "0.3125 of head_dim 16 gives 5 rotary dimensions; RoPE needs a positive even number"},
		{"zero rope_theta", map[string]any{"rope_theta": 0}, nil, []string{"rope_theta"}, "rope_theta is 0; it must be a positive number"},
		{"negative layer_norm_eps", map[string]any{"layer_norm_eps": -1e-5}, nil, []string{"layer_norm_eps"}, "layer_norm_eps is -1e-05"},
		{"zero max_position_embeddings", map[string]any{"max_position_embeddings": 0}, nil, []string{"max_position_embeddings"}, "max_position_embeddings is 0"},
		{"inconsistent head_dim", map[string]any{"head_dim": 32}, nil, []string{"head_dim"}, "head_dim is 32 but hidden_size / num_attention_heads is 16"},
		{"eos outside the vocabulary", map[string]any{"eos_token_id": 1000}, nil, []string{"eos_token_id"}, "eos_token_id is 1000, outside the vocabulary of 1000 tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := config()
			for k, v := range tc.edit {
				m[k] = v
			}
			for _, k := range tc.del {
				delete(m, k)
			}
			p, err := Parse(encode(t, m), "bad/config.json")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = p.Validate()
			if err == nil {
				t.Fatal("Validate passed")
			}
			if got := problemKeys(t, err); !slices.Equal(got, tc.keys) {
				t.Errorf("problem keys %q, want %q (%v)", got, tc.keys, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "bad/config.json: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want bad/config.json: ...%s...", msg, tc.want)
			}
			if _, err := p.Marshal(); err == nil {
				t.Error("Marshal accepted an invalid config")
			}
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	m := config()
	delete(m, "vocab_size")
	m["hidden_act"] = "silu"
	m["qk_layernorm"] = true
	m["num_key_value_heads"] = 1
	m["rope_scaling"] = map[string]any{"type": "dynamic"}
	p, err := Parse(encode(t, m), "many.json")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Validate()
	want := []string{"rope_scaling", "vocab_size", "num_key_value_heads", "hidden_act", "qk_layernorm"}
	if got := problemKeys(t, err); !slices.Equal(got, want) {
		t.Errorf("problem keys %q, want %q", got, want)
	}
	if !strings.HasPrefix(err.Error(), "many.json: 5 problems:\n\trope_scaling is ") {
		t.Errorf("error text %q", err)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		keys []string // nil: a syntax error
		want string
	}{
		{"empty", ``, nil, "c.json: not a JSON object"},
		{"null", `null`, nil, "c.json: not a JSON object: the file holds null"},
		{"array", `[1]`, nil, "c.json: not a JSON object"},
		{"truncated", `{"vocab_size": 1`, nil, "fix the file or re-download it"},
		{"string integer", `{"hidden_size": "64"}`, []string{"hidden_size"}, `hidden_size is "64", which is not an integer; write an integer there`},
		{"fractional integer", `{"vocab_size": 10.5}`, []string{"vocab_size"}, "vocab_size is 10.5, which is not an integer"},
		{"huge integer", `{"vocab_size": 1e30}`, []string{"vocab_size"}, "not an integer"},
		{"boolean as string", `{"qk_layernorm": "false"}`, []string{"qk_layernorm"}, "which is not true or false"},
		{"number as string", `{"rope_theta": "1e4"}`, []string{"rope_theta"}, "which is not a number"},
		{"infinite float", `{"layer_norm_eps": 1e999}`, []string{"layer_norm_eps"}, "which is not a finite number"},
		{"model_type a number", `{"model_type": 3}`, []string{"model_type"}, "model_type is 3, which is not a string"},
		{"rope_parameters a list", `{"rope_parameters": [1]}`, []string{"rope_parameters"}, "which is not an object"},
		{"nested wrong type", `{"rope_parameters": {"rope_type": 1, "rope_theta": "x"}}`, []string{"rope_parameters.rope_theta", "rope_parameters.rope_type"}, "rope_parameters.rope_type is 1"},
		{"eos list", `{"eos_token_id": [1, 2]}`, []string{"eos_token_id"}, "eos_token_id is [1, 2], which is not an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.data), "c.json")
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if tc.keys != nil {
				if got := problemKeys(t, err); !slices.Equal(got, tc.keys) {
					t.Errorf("problem keys %q, want %q", got, tc.keys)
				}
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "c.json: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want c.json: ...%s...", msg, tc.want)
			}
		})
	}
}

// TestLoadMergesProblems checks that Load reports wrong JSON types and
// unsupported settings together, without repeating a key it could not read.
func TestLoadMergesProblems(t *testing.T) {
	t.Parallel()
	m := config()
	m["hidden_size"] = "64"
	m["hidden_act"] = "relu"
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, encode(t, m), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if got, want := problemKeys(t, err), []string{"hidden_size", "hidden_act"}; !slices.Equal(got, want) {
		t.Errorf("problem keys %q, want %q (%v)", got, want, err)
	}
	if !strings.HasPrefix(err.Error(), path+": 2 problems:") {
		t.Errorf("error %q", err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), FileName) {
		t.Errorf("Load(dir without config.json): %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "too large for a config.json") {
		t.Errorf("Load(big): %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	p, err := Load("testdata/phi-1_5")
	if err != nil {
		t.Fatal(err)
	}
	p.BosTokenID = -1
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"{\n  \"architectures\": [\n    \"PhiForCausalLM\"\n  ],\n",
		`"model_type": "phi",`,
		`"bos_token_id": null,`,
		`"dtype": "float16",`,
		`"layer_norm_eps": 1e-05,`,
		"\"rope_parameters\": {\n    \"partial_rotary_factor\": 0.5,\n    \"rope_theta\": 10000.0,\n    \"rope_type\": \"default\"\n  },",
		"\"vocab_size\": 51200\n}\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Marshal output lacks %q:\n%s", want, out)
		}
	}
	q, err := Parse(out, "out.json")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := exported(p), exported(q); !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed\n%+v\ninto\n%+v", a, b)
	}

	built := phi15 // a config made in code, not parsed
	if _, err := built.Marshal(); err != nil {
		t.Errorf("Marshal of a config built in code: %v", err)
	}
	built.ModelType = ""
	if _, err := built.Marshal(); err == nil || !strings.HasPrefix(err.Error(), "phi config: model_type is missing") {
		t.Errorf("Marshal without model_type: %v", err)
	}
}

func TestPyFloat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{10000, "10000.0"}, {0.5, "0.5"}, {1e-5, "1e-05"}, {0.0001, "0.0001"}, {0.02, "0.02"},
		{0, "0.0"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {500000, "500000.0"}, {1.5e-7, "1.5e-07"},
	} {
		if got := pyFloat(tc.f); string(got) != tc.want {
			t.Errorf("pyFloat(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestRotaryDim(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		factor float64
		head   int
		want   int
	}{{0.5, 64, 32}, {0.5, 32, 16}, {1, 80, 80}, {0.4, 80, 32}, {0.25, 30, 7}} {
		p := Phi{PartialRotaryFactor: tc.factor, HeadDim: tc.head}
		if got := p.RotaryDim(); got != tc.want {
			t.Errorf("RotaryDim(%v × %d) = %d, want %d", tc.factor, tc.head, got, tc.want)
		}
	}
}
