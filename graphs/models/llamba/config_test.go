package llamba_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mohawk/graphs/models/llama"
	"mohawk/graphs/models/llamba"
	"mohawk/hfconfig"
)

// TestConfigRoundTrip: a student sized for a teacher, and one with grouped
// B/C heads, padding and an untied biased head, survive Marshal →
// LoadConfig unchanged; NumParams agrees with ParamShapes.
func TestConfigRoundTrip(t *testing.T) {
	grouped := tiny(2, false)
	grouped.VocabRaw, grouped.Vocab = 45, 48 // padded to a multiple of 8
	for name, c := range map[string]llamba.Config{"for teacher": llamba.ForTeacher(teacher(true, true)), "grouped": grouped} {
		roundTrip(t, name, c)
	}
}

// roundTrip checks that c survives Marshal → LoadConfig unchanged and that
// NumParams agrees with ParamShapes; it returns the config.json.
func roundTrip(t *testing.T, name string, c llamba.Config) []byte {
	t.Helper()
	data, err := c.Marshal()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := llamba.LoadConfig(dir)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, data)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("%s: round trip changed the config:\n got %+v\nwant %+v", name, got, c)
	}
	var n int64
	for _, s := range c.ParamShapes() {
		k := int64(1)
		for _, d := range s {
			k *= d
		}
		n += k
	}
	if n != c.NumParams() {
		t.Errorf("%s: ParamShapes hold %d parameters, NumParams says %d", name, n, c.NumParams())
	}
	return data
}

// TestForTeacherLlama32 sizes a student for Llama-3.2-1B's shape (32 query
// heads over 8 key/value heads of dim 64, width 2048): one mixer head per
// query head with d_state 64, expand 1, as Cartesia's Llamba-1B.
func TestForTeacherLlama32(t *testing.T) {
	h, err := hfconfig.ParseLlama([]byte(`{"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
		"intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
		"rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true}`), "llama-3.2-1b.json")
	if err != nil {
		t.Fatal(err)
	}
	c := llamba.ForTeacher(llama.FromHF(h))
	want := map[string]int64{"d_model": 2048, "n_layer": 16, "d_state": 64, "n_v_heads": 32, "n_qk_heads": 32, "expand": 1, "intermediate_size": 8192, "vocab_size": 128256}
	got := map[string]int64{"d_model": c.DModel, "n_layer": int64(c.Layers), "d_state": c.DState, "n_v_heads": c.VHeads, "n_qk_heads": c.QKHeads, "expand": c.Expand, "intermediate_size": c.Inner, "vocab_size": c.Vocab}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
	if !c.Tied || c.Eps != 1e-5 {
		t.Errorf("tied %v, eps %g; want the teacher's tied head and 1e-5", c.Tied, c.Eps)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// TestConfigRefused: values the model cannot take are refused, naming the key.
func TestConfigRefused(t *testing.T) {
	for _, tc := range []struct{ json, key string }{
		{`{"vocab_size": 40, "d_model": 16, "n_layer": 1, "tie_embeddings": true, "lm_head_bias": true, "mlp_cfg": {"intermediate_size": 8}, "ssm_cfg": {"n_v_heads": 4, "n_qk_heads": 4}}`, "lm_head_bias"},
		{`{"vocab_size": 40, "d_model": 16, "n_layer": 1, "mlp_cfg": {"intermediate_size": 8}, "ssm_cfg": {"n_v_heads": 4, "n_qk_heads": 3}}`, "n_qk_heads"},
		{`{"vocab_size": 40, "d_model": 16, "n_layer": 1, "mlp_cfg": {"intermediate_size": 8}, "ssm_cfg": {"n_v_heads": 3, "n_qk_heads": 3}}`, "n_v_heads"},
	} {
		_, err := llamba.ParseConfig([]byte(tc.json), "student.json")
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), "student.json") {
			t.Errorf("%s: error %v, want one naming student.json and %s", tc.json, err, tc.key)
		}
	}
}
