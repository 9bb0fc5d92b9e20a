package hfconfig

import (
	"reflect"
	"strings"
	"testing"
)

// llamba3B is the config.json of cartesia-ai/Llamba-3B as published.
const llamba3B = `{
  "model_type": "llamba", "vocab_size": 128256, "tie_embeddings": true, "pad_vocab_size_multiple": 8,
  "lm_head_bias": false, "d_model": 3072, "n_layer": 28, "resid_dropout": 0.0, "norm_epsilon": 1e-5,
  "mlp_cfg": {"intermediate_size": 8192, "bias": false, "act_fn": "silu"},
  "ssm_cfg": {"d_state": 64, "n_v_heads": 32, "n_qk_heads": 32, "expand": 1, "chunk_size": 128,
              "activation": "identity", "bias": false}
}`

func TestParseLlamba(t *testing.T) {
	l, err := ParseLlamba([]byte(llamba3B), "Llamba-3B/config.json")
	if err != nil {
		t.Fatal(err)
	}
	want := Llamba{VocabSize: 128256, PadVocabSizeMultiple: 8, TieEmbeddings: true, DModel: 3072, NLayer: 28,
		NormEpsilon: 1e-5, LMHeadPrenorm: "rms", IntermediateSize: 8192, ActFn: "silu", DState: 64, NVHeads: 32,
		NQKHeads: 32, DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 128, Activation: "identity"}
	if !reflect.DeepEqual(*l, want) {
		t.Errorf("parsed %+v\nwant   %+v", *l, want)
	}
}

// TestLlambaRoundTrip: Marshal then ParseLlamba gives back every field,
// for values other than the defaults (grouped B/C heads, untied biased
// head, silu conv activation, no conv bias).
func TestLlambaRoundTrip(t *testing.T) {
	in := Llamba{VocabSize: 1001, PadVocabSizeMultiple: 16, LMHeadBias: true, DModel: 96, NLayer: 3, ResidDropout: 0.1,
		NormEpsilon: 1e-6, LMHeadPrenorm: "rms", IntermediateSize: 256, MLPBias: true, ActFn: "silu", DState: 16,
		NVHeads: 8, NQKHeads: 2, DConv: 3, Expand: 2, ChunkSize: 64, Activation: "silu"}
	data, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ParseLlamba(data, "round-trip")
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if !reflect.DeepEqual(*out, in) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", *out, in)
	}
}

// TestLlambaBadValues: each bad value is refused with its key named.
func TestLlambaBadValues(t *testing.T) {
	for _, tc := range []struct{ from, to, key string }{
		{`"d_model": 3072`, `"d_model": 3070`, "ssm_cfg.n_v_heads"},
		{`"n_qk_heads": 32`, `"n_qk_heads": 5`, "ssm_cfg.n_qk_heads"},
		{`"n_qk_heads": 32`, `"n_qk_heads": "8"`, "ssm_cfg.n_qk_heads"},
		{`"d_state": 64`, `"d_state": 0`, "ssm_cfg.d_state"},
		{`"activation": "identity"`, `"activation": "gelu"`, "ssm_cfg.activation"},
		{`"bias": false}`, `"bias": true}`, "ssm_cfg.bias"},
		{`"act_fn": "silu"`, `"act_fn": "gelu"`, "mlp_cfg.act_fn"},
		{`"intermediate_size": 8192, `, ``, "mlp_cfg.intermediate_size"},
		{`"n_layer": 28,`, ``, "n_layer"},
		{`"norm_epsilon": 1e-5`, `"norm_epsilon": -1`, "norm_epsilon"},
		{`"norm_epsilon": 1e-5`, `"norm_epsilon": 1e-5, "lm_head_prenorm": "layer"`, "lm_head_prenorm"},
		{`"model_type": "llamba"`, `"model_type": "llama"`, "model_type"},
		{`"tie_embeddings": true`, `"tie_embeddings": 1`, "tie_embeddings"},
		{`"resid_dropout": 0.0`, `"resid_dropout": 1.5`, "resid_dropout"},
		{`"lm_head_bias": false`, `"lm_head_bias": true`, "lm_head_bias"},
	} {
		src := strings.Replace(llamba3B, tc.from, tc.to, 1)
		if src == llamba3B {
			t.Fatalf("%q not found in the base config", tc.from)
		}
		_, err := ParseLlamba([]byte(src), "bad.json")
		if err == nil {
			t.Errorf("%s → %s: accepted", tc.from, tc.to)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "bad.json") || !strings.Contains(msg, tc.key+" ") {
			t.Errorf("%s → %s: error %q does not name bad.json and %s", tc.from, tc.to, msg, tc.key)
		}
	}
	if _, err := ParseLlamba([]byte("[1]"), "list.json"); err == nil || !strings.Contains(err.Error(), "list.json") {
		t.Errorf("a JSON list: error %v", err)
	}
}

// FuzzParseLlamba: arbitrary bytes never panic ParseLlamba, and every
// config it accepts survives a Marshal/ParseLlamba round trip unchanged.
func FuzzParseLlamba(f *testing.F) {
	for _, seed := range []string{
		llamba3B,
		`{"vocab_size": 40, "d_model": 16, "n_layer": 1, "mlp_cfg": {"intermediate_size": 8}, "ssm_cfg": {"n_v_heads": 4, "n_qk_heads": 2, "d_state": 1e0}}`,
		`{"vocab_size": "40", "mlp_cfg": [], "ssm_cfg": {"n_v_heads": -4}}`,
		`null`, `[]`, `{`, ``, `{"d_model": 1e999}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLlamba(data, "fuzz.json")
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted config: %v", err)
		}
		m, err := ParseLlamba(out, "out.json")
		if err != nil {
			t.Fatalf("ParseLlamba of Marshal's output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(l, m) {
			t.Fatalf("round trip changed\n%+v\ninto\n%+v", *l, *m)
		}
	})
}
