package family_test

import (
	"strings"
	"testing"

	_ "mohawk/graphs/models/all"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// TestForTeacherConfig: architectures pick the family, model_type is the
// fallback, and a config no family reads is refused with every supported
// architecture named.
func TestForTeacherConfig(t *testing.T) {
	for _, c := range []struct {
		json, want string
	}{
		{`{"architectures": ["PhiForCausalLM"], "model_type": "phi"}`, "phi"},
		{`{"architectures": ["LlamaForCausalLM"]}`, "llama"},
		{`{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}`, "llama"},
		{`{"architectures": ["MistralForCausalLM"], "model_type": "mistral"}`, "llama"},
		{`{"architectures": ["SomethingElse"], "model_type": "qwen2"}`, "llama"},
		{`{"model_type": "phi"}`, "phi"},
	} {
		f, err := family.ForTeacherConfig([]byte(c.json), "config.json")
		if err != nil || f.Name() != c.want {
			t.Errorf("%s: family %v, error %v; want %s", c.json, f, err, c.want)
		}
	}
	_, err := family.ForTeacherConfig([]byte(`{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}`), "x/config.json")
	for _, want := range []string{"x/config.json", "GPT2LMHeadModel", "gpt2", "PhiForCausalLM", "LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unsupported teacher: error %v does not name %s", err, want)
		}
	}
	if _, err := family.ForTeacherConfig([]byte(`[1]`), "x"); err == nil {
		t.Error("a config.json that is no object was accepted")
	}
}

// TestForStudentConfig tells the students' layouts apart, and a teacher's
// config from both.
func TestForStudentConfig(t *testing.T) {
	for _, c := range []struct {
		json, want string
	}{
		{`{"MixerModel": {}, "LanguageModel": {}}`, "phi"},
		{`{"model_type": "llamba", "ssm_cfg": {}, "mlp_cfg": {}}`, "llama"},
		{`{"model_type": "llama"}`, ""},
		{`not json`, ""},
	} {
		got := ""
		if f := family.ForStudentConfig([]byte(c.json)); f != nil {
			got = f.Name()
		}
		if got != c.want {
			t.Errorf("%s: family %q, want %q", c.json, got, c.want)
		}
	}
}

// TestByNameAndPresets: a family and a preset by name; unknown names are
// refused, naming the registered families.
func TestByNameAndPresets(t *testing.T) {
	if f, err := family.ByName("llama"); err != nil || f.Name() != "llama" {
		t.Errorf("ByName(llama): %v, %v", f, err)
	}
	if _, err := family.ByName("gpt2"); err == nil || !strings.Contains(err.Error(), "phi") || !strings.Contains(err.Error(), "llama") {
		t.Errorf("ByName(gpt2): error %v, want one listing phi and llama", err)
	}
	p, ok := family.PresetTeacher("phi-1.5", 3)
	if !ok || p.Sizes().Layers != 3 || p.Sizes().Hidden != 2048 {
		t.Errorf("preset phi-1.5 with 3 layers: %v, %v", p, ok)
	}
	if _, ok := family.PresetTeacher("nope", 0); ok {
		t.Error("an unknown preset was found")
	}
}

// TestRegisterTwice: a second family claiming a registered architecture
// is a programming error.
func TestRegisterTwice(t *testing.T) {
	f, err := family.ByName("phi")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering phi twice did not panic")
		}
	}()
	family.Register(f)
}

// TestScratchTeachers: each family makes a teacher of given sizes whose
// config.json (MarshalHF, naming the dtype) reads back as the same sizes;
// Phi refuses grouped-query key/value heads.
func TestScratchTeachers(t *testing.T) {
	a := family.Arch{Vocab: 100, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, Intermediate: 64, EOS: 7}
	for _, c := range []struct {
		name    string
		kvHeads int
	}{{"llama", 2}, {"phi", 4}} {
		f, err := family.ByName(c.name)
		if err != nil {
			t.Fatal(err)
		}
		a.KVHeads = c.kvHeads
		tc, err := f.ScratchTeacher(a)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, err := tc.MarshalHF(tensors.Float16)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		back, err := family.ParseTeacher(b, c.name+" config.json")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		s := back.Sizes()
		if back.Family() != c.name || s != tc.Sizes() || s.KVHeads != int64(c.kvHeads) || s.Hidden != 32 || s.EOS != 7 || !strings.Contains(string(b), "float16") {
			t.Errorf("%s: sizes %+v after a round trip of\n%s", c.name, s, b)
		}
	}
	f, _ := family.ByName("phi")
	a.KVHeads = 2
	if _, err := f.ScratchTeacher(a); err == nil || !strings.Contains(err.Error(), "kv_heads") {
		t.Errorf("a Phi with 2 of 4 key/value heads: error %v", err)
	}
}
