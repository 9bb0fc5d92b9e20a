package llamba

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/llama"
	"mohawk/hfconfig"
	"mohawk/tensors"
)

// The Llama family: LlamaForCausalLM, Qwen2ForCausalLM and
// MistralForCausalLM teachers with Llamba students.
func init() { family.Register(llamaFamily{}) }

// FamilyName is the Llama family's registered name.
const FamilyName = "llama"

type llamaFamily struct{}

func (llamaFamily) Name() string { return FamilyName }
func (llamaFamily) Architectures() []string {
	return []string{"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"}
}
func (llamaFamily) ModelTypes() []string { return []string{"llama", "qwen2", "mistral"} }
func (llamaFamily) StudentLayout() string {
	return "Llamba (Cartesia's layout with ssm_cfg and mlp_cfg)"
}

func (llamaFamily) IsStudentConfig(keys map[string]bool) bool {
	return keys["ssm_cfg"] && keys["mlp_cfg"]
}

func (llamaFamily) ParseTeacher(data []byte, source string) (family.Teacher, error) {
	h, err := hfconfig.ParseLlama(data, source)
	if err != nil {
		return nil, err
	}
	return Teacher{Config: llama.FromHF(h), HF: h, Raw: data}, nil
}

// ScratchTeacher is a Llama of the given sizes: RMSNorm epsilon 1e-5,
// rope theta 10000 without scaling, untied head, no biases, context 2048.
func (f llamaFamily) ScratchTeacher(a family.Arch) (family.Teacher, error) {
	if a.Rotary != 0 && a.Rotary != 1 {
		return nil, fmt.Errorf("architecture.partial_rotary_factor %v: Llama-family models rotate whole heads; leave it out", a.Rotary)
	}
	kv := a.KVHeads
	if kv == 0 {
		kv = a.Heads
	}
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "vocab_size": a.Vocab,
		"hidden_size": a.Hidden, "intermediate_size": a.Intermediate, "num_hidden_layers": a.Layers,
		"num_attention_heads": a.Heads, "num_key_value_heads": kv, "hidden_act": "silu",
		"max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
		"bos_token_id": a.EOS, "eos_token_id": a.EOS, "torch_dtype": "float32",
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return f.ParseTeacher(data, "the pretrain stage's architecture")
}

// ParseStudent reads Cartesia's layout (it holds every size).
func (llamaFamily) ParseStudent(data []byte, source string, _ map[string][]int64, _ float32) (family.Student, error) {
	c, err := ParseConfig(data, source)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Teacher is a Llama-family teacher as the registry sees it: the
// architecture, its parsed config.json and the file's bytes (kept
// whole for MarshalHF).
type Teacher struct {
	llama.Config
	HF  *hfconfig.Llama
	Raw []byte
}

// Family is FamilyName.
func (Teacher) Family() string { return FamilyName }

// Sizes are the teacher's sizes.
func (t Teacher) Sizes() family.TeacherSizes {
	s := family.TeacherSizes{Vocab: t.Vocab, Hidden: t.Hidden, Intermediate: t.Intermediate, Layers: t.Layers,
		Heads: t.Heads, KVHeads: t.KVHeads, HeadDim: t.HeadDim, MaxPositions: t.MaxPositions, Eps: t.Eps, BOS: -1, EOS: -1}
	if t.HF != nil {
		s.BOS, s.EOS = int64(t.HF.BosTokenID), int64(t.HF.EosTokenID)
	}
	return s
}

// LayerPrefix is llama.LayerPrefix.
func (Teacher) LayerPrefix(i int) string { return llama.LayerPrefix(i) }

// Forward is llama.Forward.
func (t Teacher) Forward(p layers.Params, ids *graphs.Value, opt family.TeacherOptions) *family.TeacherOutputs {
	return llama.Forward(p, t.Config, ids, opt)
}

// MarshalHF is the teacher's own config.json with torch_dtype dtype.
func (t Teacher) MarshalHF(dtype tensors.DType) ([]byte, error) {
	if t.Raw == nil {
		return nil, errors.New("the Llama teacher has no config.json to write")
	}
	return hfconfig.WithDType(t.Raw, dtype.String())
}

// NoDecay skips biases and RMSNorm weights.
func (Teacher) NoDecay(name string) bool {
	return strings.HasSuffix(name, ".bias") || strings.HasSuffix(name, "norm.weight")
}

// Student is ForTeacher with o's overrides; o.AttentionLayers keep the
// teacher's attention (a hybrid, which records the teacher's config.json).
func (t Teacher) Student(o family.StudentChoices) (family.Student, error) {
	c := ForTeacher(t.Config)
	c.Config = c.Config.WithChoices(o)
	if len(o.AttentionLayers) > 0 {
		if t.Raw == nil {
			return nil, fmt.Errorf("student.attention_layers: a hybrid records its teacher's config.json, and this %s teacher has none", FamilyName)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, t.Raw); err != nil {
			return nil, fmt.Errorf("student.attention_layers: the teacher's config.json: %w", err)
		}
		c.Attn.Layers, c.AttnTeacher, c.AttnCfg = slices.Clone(o.AttentionLayers), t.Config, buf.Bytes()
	}
	return c, nil
}

// student is s as a Llamba config, or an error naming its family.
func student(s family.Student) (Config, error) {
	c, ok := s.(Config)
	if !ok {
		return Config{}, fmt.Errorf("a %s student cannot be distilled from a Llama-family teacher", s.Family())
	}
	return c, nil
}

// TransferMap is the package's TransferMap.
func (t Teacher) TransferMap(s family.Student) (map[string]string, error) {
	c, err := student(s)
	if err != nil {
		return nil, err
	}
	return TransferMap(c, t.Config)
}

// AttentionInit is the package's AttentionInit.
func (t Teacher) AttentionInit(tw map[string]*tensors.Tensor, s family.Student, i int, w map[string]*tensors.Tensor) error {
	c, err := student(s)
	if err != nil {
		return err
	}
	return AttentionInit(t.Config, tw, c, i, w)
}

// CheckAttentionInit is the package's CheckAttentionInit.
func (t Teacher) CheckAttentionInit(s family.Student) error {
	c, err := student(s)
	if err != nil {
		return err
	}
	return CheckAttentionInit(t.Config, c)
}

// Family is FamilyName.
func (Config) Family() string { return FamilyName }

// LayersKey is Cartesia's key of the layer count.
func (Config) LayersKey() string { return "n_layer" }

// Forward is the package's Forward.
func (c Config) Forward(p layers.Params, ids *graphs.Value, opt family.StudentOptions) *family.StudentOutputs {
	return Forward(p, c, ids, opt)
}

// Head is the package's Head.
func (c Config) Head(p layers.Params, h *graphs.Value) *graphs.Value { return Head(p, c, h) }
