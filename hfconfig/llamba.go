package hfconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// Llamba holds the config.json of a Llamba student (Cartesia's
// cartesia-ai/Llamba-1B/3B/8B, model_type "llamba"): a Llama-shaped model
// whose attention is the discrete Mamba-2 mixer. The layout is flat at the
// top, with the MLP in mlp_cfg and the mixer in ssm_cfg:
//
//	{"model_type": "llamba", "vocab_size", "tie_embeddings",
//	 "pad_vocab_size_multiple", "lm_head_bias", "d_model", "n_layer",
//	 "resid_dropout", "norm_epsilon",
//	 "mlp_cfg": {"intermediate_size", "bias", "act_fn"},
//	 "ssm_cfg": {"d_state", "n_v_heads", "n_qk_heads", "d_conv",
//	             "conv_bias", "expand", "chunk_size", "activation", "bias"}}
//
// A hybrid student (mohawk's, not Cartesia's) adds "attn_layers", the
// layers that keep the teacher's attention, and "attn_cfg", the teacher's
// own config.json, which sizes that attention.
//
// Optional keys default as in Cartesia's LlambaConfig and DiscreteMamba2
// (cartesia-pytorch/cartesia_pytorch/Llamba/configuration_llamba.py and
// mixers/discrete_mamba2.py in github.com/cartesia-ai/edge); the sizes
// that define a model (vocab_size, d_model, n_layer,
// mlp_cfg.intermediate_size) are required.
type Llamba struct {
	VocabSize            int // before padding
	PadVocabSizeMultiple int
	TieEmbeddings        bool
	LMHeadBias           bool
	DModel               int
	NLayer               int
	ResidDropout         float64
	NormEpsilon          float64
	LMHeadPrenorm        string // "rms", the only kind Llamba has
	// mlp_cfg
	IntermediateSize int
	MLPBias          bool
	ActFn            string
	// ssm_cfg
	DState     int
	NVHeads    int
	NQKHeads   int // each B/C head serves NVHeads/NQKHeads value heads
	DConv      int
	ConvBias   bool
	Expand     int
	ChunkSize  int
	Activation string // after the conv: "identity" or "silu"
	Bias       bool   // biases on in_proj and out_proj (not supported)
	// A hybrid's attention layers and its teacher's config.json (compact
	// JSON; nil without attention layers).
	AttnLayers []int
	AttnCfg    json.RawMessage
}

// llambaDefaults are Cartesia's defaults for the optional keys.
var llambaDefaults = Llamba{
	PadVocabSizeMultiple: 8, NormEpsilon: 1e-5, LMHeadPrenorm: "rms", ActFn: "silu",
	DState: 64, NVHeads: 32, NQKHeads: 32, DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 128, Activation: "identity",
}

// ParseLlamba decodes and validates a Llamba config.json read from source
// (used in messages); the error lists every problem at once, each naming
// its key.
func ParseLlamba(data []byte, source string) (*Llamba, error) {
	raw, err := jsonObject(data, source)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	d := &decoder{raw: raw, problems: &problems}
	l := llambaDefaults
	var modelType string
	if d.str("model_type", &modelType) == present && modelType != "llamba" {
		problems = append(problems, Problem{"model_type", fmt.Sprintf(`is %q; a Llamba student config has "llamba"`, modelType)})
	}
	required := func(d *decoder, key string, dst *int) {
		if d.int(key, dst) == absent {
			problems = append(problems, Problem{d.prefix + key, "is missing; copy it from the model's config.json or from its teacher's"})
		}
	}
	required(d, "vocab_size", &l.VocabSize)
	required(d, "d_model", &l.DModel)
	required(d, "n_layer", &l.NLayer)
	d.int("pad_vocab_size_multiple", &l.PadVocabSizeMultiple)
	d.bool("tie_embeddings", &l.TieEmbeddings)
	d.bool("lm_head_bias", &l.LMHeadBias)
	d.float("resid_dropout", &l.ResidDropout)
	d.float("norm_epsilon", &l.NormEpsilon)
	d.str("lm_head_prenorm", &l.LMHeadPrenorm)

	var mlpRaw, ssmRaw map[string]json.RawMessage
	if d.object("mlp_cfg", &mlpRaw) == absent {
		problems = append(problems, Problem{"mlp_cfg", "is missing; it must hold at least intermediate_size"})
	}
	mlp := &decoder{raw: mlpRaw, prefix: "mlp_cfg.", problems: &problems}
	if mlpRaw != nil {
		required(mlp, "intermediate_size", &l.IntermediateSize)
	}
	mlp.bool("bias", &l.MLPBias)
	mlp.str("act_fn", &l.ActFn)

	d.object("ssm_cfg", &ssmRaw)
	ssm := &decoder{raw: ssmRaw, prefix: "ssm_cfg.", problems: &problems}
	for _, f := range []struct {
		key string
		dst *int
	}{
		{"d_state", &l.DState}, {"n_v_heads", &l.NVHeads}, {"n_qk_heads", &l.NQKHeads},
		{"d_conv", &l.DConv}, {"expand", &l.Expand}, {"chunk_size", &l.ChunkSize},
	} {
		ssm.int(f.key, f.dst)
	}
	ssm.bool("conv_bias", &l.ConvBias)
	ssm.bool("bias", &l.Bias)
	ssm.str("activation", &l.Activation)
	if v := d.get("attn_layers"); v != nil && json.Unmarshal(v, &l.AttnLayers) != nil {
		d.fail("attn_layers", v, "a list of layer indices")
	}
	if v := d.get("attn_cfg"); v != nil {
		var buf bytes.Buffer
		if v[0] != '{' || json.Compact(&buf, v) != nil {
			d.fail("attn_cfg", v, "an object (the teacher's config.json)")
		} else {
			l.AttnCfg = buf.Bytes()
		}
	}
	seen := map[string]bool{}
	for _, p := range problems {
		seen[p.Key] = true
	}
	for _, p := range l.problems() { // a key already reported is not reported twice
		if !seen[p.Key] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, &Error{Source: source, Problems: problems}
	}
	return &l, nil
}

// Validate reports every reason mohawk cannot build the model (a config
// made in code has no source in the message).
func (l *Llamba) Validate() error {
	if p := l.problems(); len(p) > 0 {
		return &Error{Source: "llamba config", Problems: p}
	}
	return nil
}

func (l *Llamba) problems() []Problem {
	var probs []Problem
	add := func(key, format string, args ...any) {
		probs = append(probs, Problem{key, fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vocab_size", l.VocabSize}, {"d_model", l.DModel}, {"n_layer", l.NLayer}, {"pad_vocab_size_multiple", l.PadVocabSizeMultiple},
		{"mlp_cfg.intermediate_size", l.IntermediateSize}, {"ssm_cfg.d_state", l.DState}, {"ssm_cfg.n_v_heads", l.NVHeads},
		{"ssm_cfg.n_qk_heads", l.NQKHeads}, {"ssm_cfg.d_conv", l.DConv}, {"ssm_cfg.expand", l.Expand}, {"ssm_cfg.chunk_size", l.ChunkSize},
	} {
		if f.v <= 0 {
			add(f.key, "is %d; it must be a positive integer", f.v)
		}
	}
	if l.NVHeads > 0 && l.NQKHeads > 0 && l.NVHeads%l.NQKHeads != 0 {
		add("ssm_cfg.n_qk_heads", "%d does not divide ssm_cfg.n_v_heads %d; each B/C head must serve a whole group of value heads", l.NQKHeads, l.NVHeads)
	}
	if l.NVHeads > 0 && l.DModel > 0 && l.Expand > 0 && (l.DModel*l.Expand)%l.NVHeads != 0 {
		add("ssm_cfg.n_v_heads", "%d does not divide d_model·expand = %d; each value head needs a whole share of the channels", l.NVHeads, l.DModel*l.Expand)
	}
	if l.TieEmbeddings && l.LMHeadBias {
		add("lm_head_bias", "is true with tie_embeddings true; a tied head (the embedding table) has no bias: set one of them to false")
	}
	if l.Bias {
		add("ssm_cfg.bias", "is true; Llamba mixers have no in_proj/out_proj biases (they use z_bias): set it to false")
	}
	if l.Activation != "identity" && l.Activation != "silu" {
		add("ssm_cfg.activation", `is %q; supported: "identity" (Llamba) and "silu"`, l.Activation)
	}
	if l.ActFn != "silu" {
		add("mlp_cfg.act_fn", `is %q; the Llama MLP is SwiGLU ("silu")`, l.ActFn)
	}
	if (len(l.AttnLayers) > 0) != (len(l.AttnCfg) > 0) {
		add("attn_layers", "and attn_cfg go together: a hybrid student needs both its attention layers and its teacher's config.json; give both or neither")
	}
	if l.LMHeadPrenorm != "rms" {
		add("lm_head_prenorm", `is %q; Llamba's final norm is RMSNorm ("rms")`, l.LMHeadPrenorm)
	}
	if !(l.NormEpsilon > 0) || math.IsInf(l.NormEpsilon, 0) {
		add("norm_epsilon", "is %v; it must be a small positive number such as 1e-5", l.NormEpsilon)
	}
	if !(l.ResidDropout >= 0 && l.ResidDropout < 1) {
		add("resid_dropout", "is %v; it must be in [0, 1)", l.ResidDropout)
	}
	return probs
}

// Marshal writes the config in Cartesia's layout (d_conv and conv_bias
// included, which Cartesia's released configs leave at their defaults).
func (l *Llamba) Marshal() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	m := map[string]any{
		"model_type": "llamba", "vocab_size": l.VocabSize, "tie_embeddings": l.TieEmbeddings,
		"pad_vocab_size_multiple": l.PadVocabSizeMultiple, "lm_head_bias": l.LMHeadBias, "d_model": l.DModel,
		"n_layer": l.NLayer, "resid_dropout": pyFloat(l.ResidDropout), "norm_epsilon": pyFloat(l.NormEpsilon),
		"lm_head_prenorm": l.LMHeadPrenorm,
		"mlp_cfg":         map[string]any{"intermediate_size": l.IntermediateSize, "bias": l.MLPBias, "act_fn": l.ActFn},
		"ssm_cfg": map[string]any{
			"d_state": l.DState, "n_v_heads": l.NVHeads, "n_qk_heads": l.NQKHeads, "d_conv": l.DConv,
			"conv_bias": l.ConvBias, "expand": l.Expand, "chunk_size": l.ChunkSize, "activation": l.Activation, "bias": l.Bias,
		},
	}
	if len(l.AttnLayers) > 0 {
		m["attn_layers"], m["attn_cfg"] = l.AttnLayers, l.AttnCfg
	}
	return json.MarshalIndent(m, "", "  ")
}
