package phimamba

import (
	"fmt"
	"slices"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/phi"
	"mohawk/hfconfig"
	"mohawk/tensors"
)

// The Phi family: PhiForCausalLM teachers and Phi-Mamba students.
func init() {
	family.Register(phiFamily{})
	family.RegisterPreset("phi-1.5", Phi15)
}

// Phi15 is the Phi-1.5 architecture (24 layers, or layers when positive),
// without a config.json: for benchmarks on random weights.
func Phi15(layers int) family.Teacher {
	c := phi.Config{Vocab: 51200, Hidden: 2048, Layers: 24, Heads: 32, Intermediate: 8192, RotaryDim: 32, RopeTheta: 10000, Eps: 1e-5}
	if layers > 0 {
		c.Layers = layers
	}
	return Teacher{Config: c}
}

// FamilyName is the Phi family's registered name.
const FamilyName = "phi"

type phiFamily struct{}

func (phiFamily) Name() string            { return FamilyName }
func (phiFamily) Architectures() []string { return []string{"PhiForCausalLM"} }
func (phiFamily) ModelTypes() []string    { return []string{"phi"} }
func (phiFamily) StudentLayout() string   { return "Phi-Mamba (the authors' MixerModel layout)" }

func (phiFamily) IsStudentConfig(keys map[string]bool) bool { return keys["MixerModel"] }

func (phiFamily) ParseTeacher(data []byte, source string) (family.Teacher, error) {
	h, err := hfconfig.ParseValid(data, source)
	if err != nil {
		return nil, err
	}
	return NewTeacher(h), nil
}

// ScratchTeacher is a Phi of the given sizes with transformers' defaults
// for the rest and the tokenizer's end-of-text as bos and eos.
func (phiFamily) ScratchTeacher(a family.Arch) (family.Teacher, error) {
	rot := a.Rotary
	if rot == 0 {
		rot = hfconfig.DefaultPartialRotaryFactor
	}
	if a.KVHeads != 0 && a.KVHeads != a.Heads {
		return nil, fmt.Errorf("a Phi teacher has no grouped-query attention: kv_heads %d must equal heads %d or be left out", a.KVHeads, a.Heads)
	}
	if a.Heads <= 0 || a.Hidden%a.Heads != 0 {
		return nil, fmt.Errorf("architecture: heads %d must be positive and divide hidden %d", a.Heads, a.Hidden)
	}
	h := &hfconfig.Phi{ModelType: "phi", VocabSize: a.Vocab, HiddenSize: a.Hidden, IntermediateSize: a.Intermediate,
		NumHiddenLayers: a.Layers, NumAttentionHeads: a.Heads, NumKeyValueHeads: a.Heads, HeadDim: a.Hidden / a.Heads,
		PartialRotaryFactor: rot, RopeTheta: hfconfig.DefaultRopeTheta, RopeType: hfconfig.DefaultRopeType,
		LayerNormEps: hfconfig.DefaultLayerNormEps, HiddenAct: hfconfig.DefaultHiddenAct,
		MaxPositionEmbeddings: hfconfig.DefaultMaxPositionEmbeddings, BosTokenID: int(a.EOS), EosTokenID: int(a.EOS), TorchDType: "float32"}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return NewTeacher(h), nil
}

// ParseStudent reads the authors' layout; the MLP width comes from the
// weights (the layout omits it), eps from the teacher.
func (phiFamily) ParseStudent(data []byte, source string, shapes map[string][]int64, eps float32) (family.Student, error) {
	inner := int64(0)
	if fc1 := shapes[LayerPrefix(0)+".mlp.fc1.weight"]; len(fc1) == 2 {
		inner = fc1[0]
	}
	c, err := ParseConfig(data, source, inner, eps)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Teacher is a Phi teacher as the registry sees it: the architecture and
// the config.json it came from (nil for one made in code: MarshalHF then
// fails).
type Teacher struct {
	phi.Config
	HF *hfconfig.Phi
}

// NewTeacher is the teacher of a Hugging Face Phi config.
func NewTeacher(h *hfconfig.Phi) Teacher { return Teacher{Config: phi.FromHF(h), HF: h} }

// Family is FamilyName.
func (Teacher) Family() string { return FamilyName }

// Sizes are the teacher's sizes; max positions and token ids come from
// config.json (transformers' defaults without one).
func (t Teacher) Sizes() family.TeacherSizes {
	s := family.TeacherSizes{Vocab: t.Vocab, Hidden: t.Hidden, Intermediate: t.Intermediate, Layers: t.Layers,
		Heads: t.Heads, KVHeads: t.Heads, HeadDim: t.HeadDim(), Eps: t.Eps,
		MaxPositions: hfconfig.DefaultMaxPositionEmbeddings, BOS: -1, EOS: -1}
	if t.HF != nil {
		s.MaxPositions, s.BOS, s.EOS = t.HF.MaxPositionEmbeddings, int64(t.HF.BosTokenID), int64(t.HF.EosTokenID)
	}
	return s
}

// LayerPrefix is phi.LayerPrefix.
func (Teacher) LayerPrefix(i int) string { return phi.LayerPrefix(i) }

// Forward is phi.Forward.
func (t Teacher) Forward(p layers.Params, ids *graphs.Value, opt family.TeacherOptions) *family.TeacherOutputs {
	return phi.Forward(p, t.Config, ids, opt)
}

// MarshalHF writes the config.json with torch_dtype dtype.
func (t Teacher) MarshalHF(dtype tensors.DType) ([]byte, error) {
	if t.HF == nil {
		return nil, fmt.Errorf("the Phi teacher has no config.json to write")
	}
	h := *t.HF
	h.TorchDType = dtype.String()
	return h.Marshal()
}

// NoDecay is the package's NoDecay (biases and LayerNorms).
func (Teacher) NoDecay(name string) bool { return NoDecay(name) }

// Student derives the Phi-Mamba student: same layers, width and
// vocabulary, heads = teacher heads, d_state = head dim, conv width 4,
// expand 1, chunk 128, unless o overrides them; o.AttentionLayers keep
// the teacher's attention (a hybrid).
func (t Teacher) Student(o family.StudentChoices) (family.Student, error) {
	c := Config{
		Vocab: t.Vocab, VocabRaw: t.Vocab, PadMult: 1, DModel: t.Hidden, Layers: t.Layers,
		DState: t.HeadDim(), VHeads: t.Heads, QKHeads: t.Heads, DConv: 4, ConvBias: true, Expand: 1,
		ChunkSize: 128, Activation: "identity", Inner: t.Intermediate, Eps: t.Eps,
	}
	c = c.WithChoices(o)
	if len(o.AttentionLayers) > 0 {
		c.Attn = Attention{Layers: slices.Clone(o.AttentionLayers), Heads: t.Heads, RotaryDim: t.RotaryDim, RopeTheta: t.RopeTheta}
	}
	return c, nil
}

// WithChoices is c with the mixer sizes o sets (d_state, heads for both
// B/C and values, conv width, chunk, expand); zeros keep c's.
func (c Config) WithChoices(o family.StudentChoices) Config {
	if o.DState > 0 {
		c.DState = o.DState
	}
	if o.Heads > 0 {
		c.VHeads, c.QKHeads = o.Heads, o.Heads
	}
	if o.DConv > 0 {
		c.DConv = o.DConv
	}
	if o.ChunkSize > 0 {
		c.ChunkSize = o.ChunkSize
	}
	if o.Expand > 0 {
		c.Expand = o.Expand
	}
	return c
}

// student is s as a Phi-Mamba config, or an error naming its family.
func student(s family.Student) (Config, error) {
	c, ok := s.(Config)
	if !ok {
		return Config{}, fmt.Errorf("a %s student cannot be distilled from a Phi teacher", s.Family())
	}
	return c, nil
}

// TransferMap maps the embedding, final norm, head, every layer's MLP and
// input LayerNorm, and a hybrid's attention layers to the teacher's names.
func (t Teacher) TransferMap(s family.Student) (map[string]string, error) {
	c, err := student(s)
	if err != nil {
		return nil, err
	}
	m := map[string]string{
		"backbone.embedding.weight":       "model.embed_tokens.weight",
		"backbone.final_layernorm.weight": "model.final_layernorm.weight",
		"backbone.final_layernorm.bias":   "model.final_layernorm.bias",
		"lm_head.weight":                  "lm_head.weight",
		"lm_head.bias":                    "lm_head.bias",
	}
	for i := 0; i < c.Layers; i++ {
		s, tp := LayerPrefix(i), phi.LayerPrefix(i)
		for _, n := range []string{"mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "input_layernorm.weight", "input_layernorm.bias"} {
			m[s+"."+n] = tp + "." + n
		}
		if c.IsAttention(i) {
			for _, n := range c.AttentionParams(i) {
				m[n] = TeacherAttentionName(i, strings.TrimPrefix(n, AttentionName(i, "")))
			}
		}
	}
	return m, nil
}

// AttentionInit copies layer i's attention projections into the mixer:
// x ← v_proj, B ← k_proj, C ← q_proj (the first row blocks of in_proj, in
// that order), out_proj ← dense. The teacher's q/k/v biases have no
// counterpart and are dropped.
func (t Teacher) AttentionInit(tw map[string]*tensors.Tensor, s family.Student, i int, w map[string]*tensors.Tensor) error {
	c, err := student(s)
	if err != nil {
		return err
	}
	if err := t.CheckAttentionInit(c); err != nil {
		return err
	}
	d := t.Hidden
	tp := phi.LayerPrefix(i) + ".self_attn."
	ipName := LayerPrefix(i) + ".mixer.in_proj.weight"
	ip := w[ipName]
	if ip == nil || ip.DType != tensors.Float32 || len(ip.Shape) != 2 || ip.Shape[1] != d || ip.Shape[0] < 3*d {
		return fmt.Errorf("attention init, layer %d: student tensor %s must be float32 [≥%d, %d]", i, ipName, 3*d, d)
	}
	rows := ip.Clone()
	dst := rows.Float32s()
	for j, n := range []string{"v_proj", "k_proj", "q_proj"} {
		src := tw[tp+n+".weight"]
		if src == nil || !slices.Equal(src.Shape, []int64{d, d}) {
			return fmt.Errorf("attention init, layer %d: teacher tensor %s must be [%d, %d]", i, tp+n+".weight", d, d)
		}
		copy(dst[int64(j)*d*d:int64(j+1)*d*d], src.Convert(tensors.Float32).Float32s())
	}
	out := tw[tp+"dense.weight"]
	if out == nil || !slices.Equal(out.Shape, []int64{d, d}) {
		return fmt.Errorf("attention init, layer %d: teacher tensor %sdense.weight must be [%d, %d]", i, tp, d, d)
	}
	w[ipName] = rows
	w[LayerPrefix(i)+".mixer.out_proj.weight"] = out.Convert(tensors.Float32).Clone()
	return nil
}

// CheckAttentionInit: x, B and C must each be as wide as the teacher's
// hidden size.
func (t Teacher) CheckAttentionInit(s family.Student) error {
	c, err := student(s)
	if err != nil {
		return err
	}
	if d := t.Hidden; c.DInner() != d || c.VHeads*c.DState != d || c.QKHeads*c.DState != d {
		return fmt.Errorf(`student.init "attention" needs d_inner = heads·d_state = the teacher hidden size %d`, d)
	}
	return nil
}

// Family is FamilyName.
func (Config) Family() string { return FamilyName }

// Sizes are the student's sizes.
func (c Config) Sizes() family.StudentSizes {
	s := family.StudentSizes{Vocab: c.Vocab, DModel: c.DModel, Inner: c.Inner, Layers: c.Layers, DState: c.DState,
		VHeads: c.VHeads, QKHeads: c.QKHeads, HeadDim: c.HeadDim(), DConv: c.DConv, ConvChannels: c.ConvChannels(),
		DInner: c.DInner(), InProj: c.InProj(), ChunkSize: c.ChunkSize, Expand: c.Expand}
	if len(c.Attn.Layers) > 0 {
		s.AttnLayers, s.AttnHeads, s.AttnHeadDim = slices.Clone(c.Attn.Layers), c.Attn.Heads, c.AttnHeadDim()
	}
	return s
}

// LayerPrefix is the package's LayerPrefix.
func (Config) LayerPrefix(i int) string { return LayerPrefix(i) }

// LayersKey is the authors' key of the layer count.
func (Config) LayersKey() string { return "MixerModel.input.n_layer" }

// Forward is the package's Forward.
func (c Config) Forward(p layers.Params, ids *graphs.Value, opt family.StudentOptions) *family.StudentOutputs {
	return Forward(p, c, ids, opt)
}

// Head is the package's Head.
func (c Config) Head(p layers.Params, h *graphs.Value) *graphs.Value { return Head(p, c, h) }

// Mixer is the package's Mixer.
func (c Config) Mixer(p layers.Params, i int, u *graphs.Value, form family.Form, st *family.State) family.MixerOut {
	return Mixer(p, c, i, u, form, st)
}

// MatrixParts is the package's MatrixParts.
func (c Config) MatrixParts(p layers.Params, i int, u *graphs.Value) layers.MatrixParts {
	return MatrixParts(p, c, i, u)
}

// IsMixer is the package's IsMixer.
func (Config) IsMixer(name string) bool { return IsMixer(name) }

// IsAttentionParam is the package's IsAttentionParam.
func (Config) IsAttentionParam(name string) bool { return IsAttentionParam(name) }

// NoDecay is the package's NoDecay.
func (Config) NoDecay(name string) bool { return NoDecay(name) }
