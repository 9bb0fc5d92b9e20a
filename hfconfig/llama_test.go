package hfconfig

import (
	"reflect"
	"strings"
	"testing"
)

// llama32 is Llama-3.2-1B's config.json in transformers-4 keys (rope_theta
// and rope_scaling at the top level, eos as a list as in the Instruct
// variants).
const llama32 = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
  "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
  "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "hidden_act": "silu",
  "rope_theta": 500000.0,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"
}`

// qwen25 is Qwen2.5-0.5B's shape in transformers-5 keys (rope_parameters).
const qwen25 = `{
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
  "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
  "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
  "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "hidden_act": "silu",
  "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
  "use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21,
  "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151643, "dtype": "bfloat16"
}`

const mistral = `{
  "model_type": "mistral", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
  "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "hidden_act": "silu",
  "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2
}`

func TestParseLlama(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       Llama
	}{
		{"llama-3.2 (transformers 4 keys)", llama32, Llama{
			ModelType: "llama", VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192, NumHiddenLayers: 16,
			NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 64, MaxPositionEmbeddings: 131072, RMSNormEps: 1e-5,
			HiddenAct: "silu", TieWordEmbeddings: true, BosTokenID: 128000, EosTokenID: 128001, TorchDType: "bfloat16",
			Rope: Rope{Type: "llama3", Theta: 500000, Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}},
		{"qwen2.5 (transformers 5 keys)", qwen25, Llama{
			ModelType: "qwen2", VocabSize: 151936, HiddenSize: 896, IntermediateSize: 4864, NumHiddenLayers: 24,
			NumAttentionHeads: 14, NumKeyValueHeads: 2, HeadDim: 64, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6,
			HiddenAct: "silu", TieWordEmbeddings: true, QKVBias: true, BosTokenID: 151643, EosTokenID: 151643,
			TorchDType: "bfloat16", Rope: Rope{Type: "default", Theta: 1e6}}},
		{"mistral (sliding window)", mistral, Llama{
			ModelType: "mistral", VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 14336, NumHiddenLayers: 32,
			NumAttentionHeads: 32, NumKeyValueHeads: 8, HeadDim: 128, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-5,
			HiddenAct: "silu", SlidingWindow: 4096, BosTokenID: 1, EosTokenID: 2, Rope: Rope{Type: "default", Theta: 10000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLlama([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			got.source, tc.want.source = "", ""
			if got.notes != nil {
				t.Fatalf("notes %v", got.notes)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// TestParseLlamaProblems: every unsupported or inconsistent value is named
// by its key, all at once.
func TestParseLlamaProblems(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown rope type", `"rope_scaling": {"rope_type": "longrope", "factor": 2.0}`, `rope_parameters.rope_type is "longrope"`},
		{"kv heads do not divide", `"num_key_value_heads": 5`, "num_key_value_heads 5 does not divide num_attention_heads 32"},
		{"activation", `"hidden_act": "gelu"`, `hidden_act is "gelu"`},
		{"theta disagrees", `"rope_theta": 1.0, "rope_parameters": {"rope_theta": 2.0}`, "rope_parameters.rope_theta is 2 but the top-level rope_theta is 1"},
		{"llama3 without its context", `"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}`, "original_max_position_embeddings is 0"},
		{"eos outside vocabulary", `"eos_token_id": 40000`, "eos_token_id is 40000, outside the vocabulary of 32000"},
		{"wrong type", `"num_hidden_layers": "32"`, `num_hidden_layers is "32", which is not an integer`},
		{"negative window", `"sliding_window": -1`, "sliding_window is -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The edit goes last: where mistral has the key already, Go's
			// decoder keeps the last duplicate.
			src := strings.Replace(mistral, "\n}", ", "+tc.edit+"\n}", 1)
			_, err := ParseLlama([]byte(src), "cfg.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := ParseLlama([]byte(`{"model_type": "gpt2"}`), "c.json"); err == nil || !strings.Contains(err.Error(), `model_type is "gpt2"`) {
		t.Errorf("gpt2: %v", err)
	}
}
