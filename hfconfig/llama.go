package hfconfig

import (
	"encoding/json"
	"fmt"
	"math"
)

// Llama holds the hyperparameters of a Llama-architecture model: Hugging
// Face's LlamaForCausalLM (Llama 2 and 3.x, SmolLM, TinyLlama),
// Qwen2ForCausalLM (Qwen2, Qwen2.5) and MistralForCausalLM. The three share
// one block: RMSNorm, grouped-query attention with full rotary embeddings,
// and a SwiGLU MLP; they differ only in which biases they carry and in
// Mistral's sliding window.
type Llama struct {
	ModelType             string // "llama", "qwen2" or "mistral"
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int // NumAttentionHeads when absent
	HeadDim               int // HiddenSize / NumAttentionHeads when absent
	MaxPositionEmbeddings int
	RMSNormEps            float64
	HiddenAct             string
	TieWordEmbeddings     bool
	// QKVBias and OBias: Llama's attention_bias sets both; Qwen2 always has
	// q/k/v biases and never an o bias.
	QKVBias, OBias bool
	MLPBias        bool
	// SlidingWindow > 0 lets each query see only the last SlidingWindow
	// positions (itself included): Mistral's sliding_window, and Qwen2's when
	// use_sliding_window is set.
	SlidingWindow int
	Rope          Rope
	BosTokenID    int // -1 when null or absent
	EosTokenID    int // -1 when null or absent; the first of a list
	TorchDType    string

	source string
	notes  []Problem
}

// Rope is a rotary embedding with its scaling, in transformers' terms
// (rope_parameters in transformers 5, rope_theta + rope_scaling in 4).
type Rope struct {
	Type  string // "default", "linear", "llama3" or "yarn"
	Theta float64
	// Factor scales the context: linear divides every frequency by it; llama3
	// and yarn blend scaled and unscaled frequencies.
	Factor float64
	// llama3's band edges.
	LowFreqFactor, HighFreqFactor float64
	// OriginalMaxPositions is the context the model was trained at (llama3,
	// yarn); 0 when absent.
	OriginalMaxPositions int
	// yarn's settings; 0 where absent (the defaults apply).
	AttentionFactor, BetaFast, BetaSlow, Mscale, MscaleAllDim float64
}

// llamaDefaults are transformers' config defaults of each model type.
var llamaDefaults = map[string]Llama{
	"llama":   {RMSNormEps: 1e-6, MaxPositionEmbeddings: 2048, HiddenAct: "silu", Rope: Rope{Type: "default", Theta: 10000}},
	"qwen2":   {RMSNormEps: 1e-6, MaxPositionEmbeddings: 32768, HiddenAct: "silu", Rope: Rope{Type: "default", Theta: 10000}, QKVBias: true},
	"mistral": {RMSNormEps: 1e-6, MaxPositionEmbeddings: 4096 * 32, HiddenAct: "silu", Rope: Rope{Type: "default", Theta: 10000}},
}

// ParseLlama decodes a Llama-family config.json read from source (used in
// messages) and validates it; the error lists every problem at once, each
// naming its key.
func ParseLlama(data []byte, source string) (*Llama, error) {
	raw, err := jsonObject(data, source)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	d := &decoder{raw: raw, problems: &problems}
	var modelType string
	d.str("model_type", &modelType)
	def, ok := llamaDefaults[modelType]
	if !ok {
		return nil, &Error{Source: source, Problems: []Problem{{"model_type", fmt.Sprintf(`is %q; the Llama family reads "llama", "qwen2" and "mistral" configs`, modelType)}}}
	}
	l := def
	l.ModelType, l.source, l.BosTokenID, l.EosTokenID = modelType, source, -1, -1
	required := []struct {
		key string
		dst *int
	}{
		{"vocab_size", &l.VocabSize},
		{"hidden_size", &l.HiddenSize},
		{"intermediate_size", &l.IntermediateSize},
		{"num_hidden_layers", &l.NumHiddenLayers},
		{"num_attention_heads", &l.NumAttentionHeads},
	}
	for _, f := range required {
		if d.int(f.key, f.dst) == absent {
			problems = append(problems, Problem{f.key, "is missing; copy it from the model's original config.json"})
		}
	}
	if d.int("num_key_value_heads", &l.NumKeyValueHeads) == absent {
		l.NumKeyValueHeads = l.NumAttentionHeads
	}
	if d.int("head_dim", &l.HeadDim) == absent && l.NumAttentionHeads > 0 {
		l.HeadDim = l.HiddenSize / l.NumAttentionHeads
	}
	d.int("max_position_embeddings", &l.MaxPositionEmbeddings)
	d.float("rms_norm_eps", &l.RMSNormEps)
	d.str("hidden_act", &l.HiddenAct)
	d.bool("tie_word_embeddings", &l.TieWordEmbeddings)
	d.bool("mlp_bias", &l.MLPBias)
	if modelType != "qwen2" {
		d.bool("attention_bias", &l.QKVBias)
		l.OBias = l.QKVBias
	}
	l.decodeWindow(d)
	l.decodeRope(d, &problems)
	l.decodeTokenIDs(d)
	if d.str("dtype", &l.TorchDType) == absent {
		d.str("torch_dtype", &l.TorchDType)
	}
	problems = append(problems, l.problems()...)
	if len(problems) > 0 {
		return nil, &Error{Source: source, Problems: problems}
	}
	return &l, nil
}

// decodeWindow reads Mistral's sliding_window, or Qwen2's when
// use_sliding_window is set.
func (l *Llama) decodeWindow(d *decoder) {
	use := l.ModelType == "mistral"
	if l.ModelType == "qwen2" {
		d.bool("use_sliding_window", &use)
		var maxWindowLayers int
		if use && d.int("max_window_layers", &maxWindowLayers) == present && maxWindowLayers < l.NumHiddenLayers {
			l.notes = append(l.notes, Problem{"max_window_layers", fmt.Sprintf("is %d of %d layers; a sliding window on only some layers is not supported", maxWindowLayers, l.NumHiddenLayers)})
		}
	}
	if use {
		d.int("sliding_window", &l.SlidingWindow)
	}
}

// decodeRope reads rope_parameters (transformers 5) or rope_theta and
// rope_scaling (transformers 4); where both are given, rope_parameters
// wins and the theta values must agree.
func (l *Llama) decodeRope(d *decoder, problems *[]Problem) {
	var top float64
	topTheta := d.float("rope_theta", &top)
	if topTheta == present {
		l.Rope.Theta = top
	}
	var params map[string]json.RawMessage
	prefix := "rope_parameters."
	if d.object("rope_parameters", &params) == absent {
		prefix = "rope_scaling."
		d.object("rope_scaling", &params)
	}
	rp := &decoder{raw: params, prefix: prefix, problems: problems}
	var theta float64
	if rp.float("rope_theta", &theta) == present {
		if topTheta == present && top != theta {
			l.notes = append(l.notes, Problem{prefix + "rope_theta", fmt.Sprintf("is %v but the top-level rope_theta is %v; make them agree (transformers 5 reads rope_parameters)", theta, top)})
		}
		l.Rope.Theta = theta
	}
	// transformers 4 wrote the kind as "type" before "rope_type".
	if rp.str("rope_type", &l.Rope.Type) == absent {
		rp.str("type", &l.Rope.Type)
	}
	for _, f := range []struct {
		key string
		dst *float64
	}{
		{"factor", &l.Rope.Factor}, {"low_freq_factor", &l.Rope.LowFreqFactor}, {"high_freq_factor", &l.Rope.HighFreqFactor},
		{"attention_factor", &l.Rope.AttentionFactor}, {"beta_fast", &l.Rope.BetaFast}, {"beta_slow", &l.Rope.BetaSlow},
		{"mscale", &l.Rope.Mscale}, {"mscale_all_dim", &l.Rope.MscaleAllDim},
	} {
		rp.float(f.key, f.dst)
	}
	rp.int("original_max_position_embeddings", &l.Rope.OriginalMaxPositions)
	var partial float64
	if rp.float("partial_rotary_factor", &partial) == present && partial != 1 {
		l.notes = append(l.notes, Problem{prefix + "partial_rotary_factor", fmt.Sprintf("is %v; Llama-family models rotate whole heads (1.0)", partial)})
	}
}

// decodeTokenIDs reads bos/eos ids; eos may be a list (Llama 3.1 Instruct),
// whose first entry is taken.
func (l *Llama) decodeTokenIDs(d *decoder) {
	d.int("bos_token_id", &l.BosTokenID)
	var list []int
	if v := d.get("eos_token_id"); len(v) > 0 && v[0] == '[' {
		if json.Unmarshal(v, &list) != nil || len(list) == 0 {
			d.fail("eos_token_id", v, "an integer or a non-empty list of integers")
			return
		}
		l.EosTokenID = list[0]
		return
	}
	d.int("eos_token_id", &l.EosTokenID)
}

// problems lists every reason mohawk cannot use the config.
func (l *Llama) problems() []Problem {
	probs := append([]Problem(nil), l.notes...)
	add := func(key, format string, args ...any) {
		probs = append(probs, Problem{key, fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vocab_size", l.VocabSize}, {"hidden_size", l.HiddenSize}, {"intermediate_size", l.IntermediateSize},
		{"num_hidden_layers", l.NumHiddenLayers}, {"num_attention_heads", l.NumAttentionHeads},
		{"num_key_value_heads", l.NumKeyValueHeads}, {"head_dim", l.HeadDim}, {"max_position_embeddings", l.MaxPositionEmbeddings},
	} {
		if f.v < 0 || (f.v == 0 && f.key != "vocab_size") {
			add(f.key, "is %d; it must be a positive integer", f.v)
		}
	}
	if l.NumKeyValueHeads > 0 && l.NumAttentionHeads%l.NumKeyValueHeads != 0 {
		add("num_key_value_heads", "%d does not divide num_attention_heads %d; each key/value head must serve a whole group of query heads", l.NumKeyValueHeads, l.NumAttentionHeads)
	}
	if l.HeadDim%2 != 0 {
		add("head_dim", "is %d; rotary embeddings need an even head dimension", l.HeadDim)
	}
	if l.HiddenAct != "silu" {
		add("hidden_act", `is %q; the Llama family's MLP is SwiGLU ("silu")`, l.HiddenAct)
	}
	if !(l.RMSNormEps > 0) || math.IsInf(l.RMSNormEps, 0) {
		add("rms_norm_eps", "is %v; it must be a small positive number such as 1e-5", l.RMSNormEps)
	}
	if l.SlidingWindow < 0 {
		add("sliding_window", "is %d; it must be positive, or null for full attention", l.SlidingWindow)
	}
	probs = append(probs, l.Rope.problems(l.MaxPositionEmbeddings)...)
	for _, f := range []struct {
		key string
		v   int
	}{{"bos_token_id", l.BosTokenID}, {"eos_token_id", l.EosTokenID}} {
		if f.v < -1 || (l.VocabSize > 0 && f.v >= l.VocabSize) {
			add(f.key, "is %d, outside the vocabulary of %d tokens; fix the token id", f.v, l.VocabSize)
		}
	}
	return probs
}

// problems checks the rope settings; maxPos is max_position_embeddings.
func (r Rope) problems(maxPos int) []Problem {
	var probs []Problem
	add := func(key, format string, args ...any) {
		probs = append(probs, Problem{"rope_parameters." + key, fmt.Sprintf(format, args...)})
	}
	if !(r.Theta > 0) || math.IsInf(r.Theta, 0) {
		add("rope_theta", "is %v; it must be a positive number", r.Theta)
	}
	switch r.Type {
	case "default":
	case "linear", "yarn":
		if !(r.Factor >= 1) || math.IsInf(r.Factor, 0) {
			add("factor", "is %v; %s scaling needs a factor of at least 1", r.Factor, r.Type)
		}
	case "llama3":
		if !(r.Factor >= 1) || math.IsInf(r.Factor, 0) {
			add("factor", "is %v; llama3 scaling needs a factor of at least 1", r.Factor)
		}
		if !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) {
			add("high_freq_factor", "is %v with low_freq_factor %v; llama3 scaling needs 0 < low_freq_factor < high_freq_factor", r.HighFreqFactor, r.LowFreqFactor)
		}
		if r.OriginalMaxPositions <= 0 {
			add("original_max_position_embeddings", "is %d; llama3 scaling needs the pretraining context length", r.OriginalMaxPositions)
		}
	default:
		add("rope_type", `is %q; supported: "default", "linear", "llama3", "yarn"`, r.Type)
	}
	if r.Type == "yarn" && r.OriginalMaxPositions == 0 && maxPos <= 0 {
		add("original_max_position_embeddings", "is missing and so is max_position_embeddings; yarn needs one")
	}
	return probs
}

// WithDType is a config.json (data, a JSON object) with its torch_dtype
// set to dtype; a transformers 5 "dtype" key is set too where present.
// Other keys are kept (in sorted order).
func WithDType(data []byte, dtype string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, fmt.Errorf("config.json is not a JSON object: %v", err)
	}
	v, _ := json.Marshal(dtype)
	m["torch_dtype"] = v
	if _, ok := m["dtype"]; ok {
		m["dtype"] = v
	}
	return json.MarshalIndent(m, "", "  ")
}
