package llamba_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/llama"
	"mohawk/graphs/models/llamba"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// hybridTeachers are small Llama-family teachers of 3 layers, 4 query
// heads over 2 key/value heads of 4 (width 16), each with one of the
// attention's options.
var hybridTeachers = []struct {
	name  string
	extra map[string]any
}{
	{"gqa", map[string]any{"model_type": "llama"}},
	{"llama3 rope, attention bias", map[string]any{"model_type": "llama", "attention_bias": true,
		"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8}}},
	{"qwen2 q/k/v biases", map[string]any{"model_type": "qwen2"}},
	{"mistral sliding window 5", map[string]any{"model_type": "mistral", "sliding_window": 5}},
}

// hybridTeacher parses the config.json of hybridTeachers entry extra.
func hybridTeacher(t *testing.T, extra map[string]any) llamba.Teacher {
	t.Helper()
	cfg := map[string]any{"vocab_size": 40, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 3,
		"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": false}
	for k, v := range extra {
		cfg[k] = v
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := family.ParseTeacher(data, "teacher config.json")
	if err != nil {
		t.Fatal(err)
	}
	return tc.(llamba.Teacher)
}

// hybrid is teacher tc's student with attention layers attn (chunk 8).
func hybrid(t *testing.T, tc llamba.Teacher, attn ...int) llamba.Config {
	t.Helper()
	s, err := tc.Student(family.StudentChoices{ChunkSize: 8, AttentionLayers: attn})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s.(llamba.Config)
}

// TestHybridFormsAgree: a hybrid's logits in the materialised, chunked
// (with an empty KV cache and without states) and step forms (the KV cache
// carried on the host) agree, for each teacher
// attention and choice of attention layers.
func TestHybridFormsAgree(t *testing.T) {
	for _, tt := range hybridTeachers {
		for _, attn := range [][]int{{1}, {0, 2}} {
			t.Run(fmt.Sprint(tt.name, " attention ", attn), func(t *testing.T) {
				c := hybrid(t, hybridTeacher(t, tt.extra), attn...)
				w := randomWeights(c, 5)
				ids := randomIDs(6, c.Vocab, 2, 13)
				matrix := runModel(t, c, w, ids, phimamba.FormMatrix)
				ssd := runModel(t, c, w, ids, phimamba.FormSSD)
				plain := runForm(t, c, w, ids, phimamba.FormSSD, false)
				step := runSteps(t, c, w, ids)
				check(t, "ssd vs matrix logits", ssd["logits"], matrix["logits"], 1e-5)
				check(t, "ssd without states vs matrix logits", plain["logits"], matrix["logits"], 1e-5)
				check(t, "step vs matrix logits", step["logits"], matrix["logits"], 1e-5)
				if k := step[fmt.Sprint("key.", attn[0])]; k == nil || k.Shape[1] != 2 || k.Shape[2] != 13 || k.Shape[3] != 4 {
					t.Errorf("final KV cache of layer %d: %v, want [2, 2 key/value heads, 13, 4]", attn[0], k)
				}
			})
		}
	}
}

// TestHybridAllAttentionIsTheTeacher: the hybrid that keeps every layer,
// given the teacher's tensors under the student's names (renamed here
// independently of TransferMap, which must agree), gives the teacher's
// logits exactly.
func TestHybridAllAttentionIsTheTeacher(t *testing.T) {
	rename := strings.NewReplacer("model.embed_tokens.", "backbone.embedding.", "model.norm.", "backbone.final_layernorm.",
		".self_attn.", ".mixer.self_attn.", "model.layers.", "backbone.layers.")
	for _, tt := range hybridTeachers {
		t.Run(tt.name, func(t *testing.T) {
			tc := hybridTeacher(t, tt.extra)
			c := hybrid(t, tc, 0, 1, 2)
			tw := graphtest.RandomParams(rand.New(rand.NewPCG(3, 4)), tc.ParamShapes(), 0.3)
			sw := map[string]*tensors.Tensor{}
			for name, x := range tw {
				sw[rename.Replace(name)] = x
			}
			if !reflect.DeepEqual(graphtest.Shapes(sw), c.ParamShapes()) {
				t.Fatalf("renamed teacher tensors %v differ from the student's parameters %v", graphtest.Shapes(sw), c.ParamShapes())
			}
			m, err := llamba.TransferMap(c, tc.Config)
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != len(sw) {
				t.Errorf("TransferMap names %d tensors, want all %d", len(m), len(sw))
			}
			for s, tn := range m {
				if rename.Replace(tn) != s {
					t.Errorf("TransferMap: %s ← %s", s, tn)
				}
			}
			ids := randomIDs(9, c.Vocab, 2, 11)
			g := graphs.New("teacher")
			in := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
			if err := graphs.Try(func() {
				g.Output("logits", llama.Forward(&layers.Frozen{G: g, Tensors: tw}, tc.Config, in, llama.Options{}).Logits)
			}); err != nil {
				t.Fatal(err)
			}
			want := graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ids})["logits"]
			for _, form := range []phimamba.Form{phimamba.FormSSD, phimamba.FormMatrix} {
				shareddata.WantClose(t, fmt.Sprintf("all-attention student (%v form) vs teacher logits", form), runForm(t, c, sw, ids, form, false)["logits"], want, 0)
			}
		})
	}
}

// TestHybridConfigRoundTrip: hybrids save their attention layers and
// teacher (attn_layers, attn_cfg) and read back unchanged; NumParams
// agrees with ParamShapes.
func TestHybridConfigRoundTrip(t *testing.T) {
	for _, tt := range hybridTeachers {
		for _, attn := range [][]int{{0}, {1, 2}} {
			name := fmt.Sprint(tt.name, " attention ", attn)
			data := roundTrip(t, name, hybrid(t, hybridTeacher(t, tt.extra), attn...))
			if !strings.Contains(string(data), `"attn_layers"`) || !strings.Contains(string(data), `"attn_cfg"`) {
				t.Errorf("%s: config.json lacks attn_layers or attn_cfg:\n%s", name, data)
			}
		}
	}
}

// TestHybridConfigErrors: broken hybrid configs are refused, naming the key.
func TestHybridConfigErrors(t *testing.T) {
	good, err := hybrid(t, hybridTeacher(t, hybridTeachers[0].extra), 1).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key string
		v         any
		want      string
	}{
		{"out of range", "attn_layers", []int{3}, "out of range"},
		{"unordered", "attn_layers", []int{2, 1}, "ascending"},
		{"no teacher", "attn_cfg", nil, "attn_cfg"},
		{"not a list", "attn_layers", "1", "attn_layers"},
		{"other width", "attn_cfg", map[string]any{"model_type": "llama", "vocab_size": 40, "hidden_size": 8, "intermediate_size": 24,
			"num_hidden_layers": 3, "num_attention_heads": 2}, "hidden_size 8 differs from d_model 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := map[string]any{}
			for k, v := range m {
				bad[k] = v
			}
			bad[tc.key] = tc.v
			if tc.v == nil {
				delete(bad, tc.key)
			}
			data, err := json.Marshal(bad)
			if err != nil {
				t.Fatal(err)
			}
			_, err = llamba.ParseConfig(data, "student.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "student.json") {
				t.Errorf("error %v, want one naming student.json and %q", err, tc.want)
			}
		})
	}
}

// TestHybridTransferOtherTeacher: a hybrid made for one teacher is refused
// weight transfer from a teacher of the same sizes whose attention differs
// (here its rope scaling), naming attn_cfg.
func TestHybridTransferOtherTeacher(t *testing.T) {
	c := hybrid(t, hybridTeacher(t, hybridTeachers[0].extra), 1)
	other := hybridTeacher(t, hybridTeachers[1].extra)
	if _, err := llamba.TransferMap(c, other.Config); err == nil || !strings.Contains(err.Error(), "attn_cfg") {
		t.Errorf("transfer from another teacher: error %v, want one naming attn_cfg", err)
	}
}
