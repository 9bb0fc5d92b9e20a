package llamba

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"mohawk/graphs/models/llama"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
)

// Config is the student architecture: the mixer's sizes (and vocabulary,
// width, depth, MLP width Inner and norm epsilon Eps) in the embedded
// phimamba.Config, plus the Llama block's options.
type Config struct {
	phimamba.Config
	MLPBias  bool // biases on gate_proj, up_proj and down_proj
	Tied     bool // the LM head is the embedding table
	HeadBias bool // lm_head.bias (untied heads only)
	// A hybrid's attention layers are Config.Attn.Layers (phimamba's field;
	// its other Attn fields stay zero); they keep the attention of the
	// teacher AttnTeacher, whose config.json AttnCfg (compact JSON) is
	// written as attn_cfg. Both are zero for a pure Llamba.
	AttnTeacher llama.Config
	AttnCfg     []byte
}

// FromHF converts a parsed Llamba config.json.
func FromHF(h *hfconfig.Llamba) Config {
	c := Config{
		Config: phimamba.Config{
			VocabRaw: int64(h.VocabSize), PadMult: int64(h.PadVocabSizeMultiple), DModel: int64(h.DModel), Layers: h.NLayer,
			DState: int64(h.DState), VHeads: int64(h.NVHeads), QKHeads: int64(h.NQKHeads), DConv: int64(h.DConv),
			ConvBias: h.ConvBias, Expand: int64(h.Expand), ChunkSize: int64(h.ChunkSize), Activation: h.Activation,
			Inner: int64(h.IntermediateSize), Eps: float32(h.NormEpsilon),
		},
		MLPBias: h.MLPBias, Tied: h.TieEmbeddings, HeadBias: h.LMHeadBias,
	}
	c.Vocab = phimamba.PadVocab(c.VocabRaw, c.PadMult)
	if len(h.AttnLayers) > 0 {
		c.Attn.Layers, c.AttnCfg = slices.Clone(h.AttnLayers), slices.Clone([]byte(h.AttnCfg))
	}
	return c
}

// HF is c in config.json terms.
func (c Config) HF() *hfconfig.Llamba {
	return &hfconfig.Llamba{
		VocabSize: int(c.VocabRaw), PadVocabSizeMultiple: int(c.PadMult), TieEmbeddings: c.Tied, LMHeadBias: c.HeadBias,
		DModel: int(c.DModel), NLayer: c.Layers, NormEpsilon: float64(c.Eps), LMHeadPrenorm: "rms",
		IntermediateSize: int(c.Inner), MLPBias: c.MLPBias, ActFn: "silu",
		DState: int(c.DState), NVHeads: int(c.VHeads), NQKHeads: int(c.QKHeads), DConv: int(c.DConv), ConvBias: c.ConvBias,
		Expand: int(c.Expand), ChunkSize: int(c.ChunkSize), Activation: c.Activation,
		AttnLayers: slices.Clone(c.Attn.Layers), AttnCfg: slices.Clone(c.AttnCfg),
	}
}

// ParseConfig reads Cartesia's config.json layout from data (source names
// it in messages).
func ParseConfig(data []byte, source string) (Config, error) {
	h, err := hfconfig.ParseLlamba(data, source)
	if err != nil {
		return Config{}, err
	}
	c := FromHF(h)
	if len(c.AttnCfg) > 0 {
		t, err := hfconfig.ParseLlama(c.AttnCfg, source+" attn_cfg")
		if err != nil {
			return Config{}, err
		}
		c.AttnTeacher = llama.FromHF(t)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// LoadConfig reads dir/config.json (or a file path).
func LoadConfig(path string) (Config, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read student config: %w", err)
	}
	return ParseConfig(data, path)
}

// Marshal writes c in Cartesia's config.json layout.
func (c Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c.HF().Marshal()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.VocabRaw <= 0 || c.Vocab < c.VocabRaw || c.Layers <= 0 || c.Inner <= 0 || !(c.Eps > 0) {
		errs = append(errs, fmt.Errorf("sizes must be positive (vocab %d padded to %d, n_layer %d, intermediate_size %d, norm_epsilon %g)", c.VocabRaw, c.Vocab, c.Layers, c.Inner, c.Eps))
	}
	if c.Tied && c.HeadBias {
		errs = append(errs, errors.New("lm_head_bias needs an untied head (tie_embeddings false)"))
	}
	if err := c.ValidateMixer(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateAttention()...)
	return errors.Join(errs...)
}

// LayerPrefix is the name prefix of layer i (phimamba's: the mixer's
// parameters are named alike).
func LayerPrefix(i int) string { return phimamba.LayerPrefix(i) }

// ParamShapes lists every parameter with its name and shape.
func (c Config) ParamShapes() map[string][]int64 {
	d, f := c.DModel, c.Inner
	out := map[string][]int64{
		"backbone.embedding.weight":       {c.Vocab, d},
		"backbone.final_layernorm.weight": {d},
	}
	if !c.Tied {
		out["lm_head.weight"] = []int64{c.Vocab, d}
		if c.HeadBias {
			out["lm_head.bias"] = []int64{c.Vocab}
		}
	}
	for i := 0; i < c.Layers; i++ {
		p := LayerPrefix(i)
		if c.IsAttention(i) {
			c.attentionShapes(i, out)
		} else {
			c.AddMixerShapes(i, out)
		}
		for _, n := range []string{"gate_proj", "up_proj"} {
			out[p+".mlp."+n+".weight"] = []int64{f, d}
			if c.MLPBias {
				out[p+".mlp."+n+".bias"] = []int64{f}
			}
		}
		out[p+".mlp.down_proj.weight"] = []int64{d, f}
		if c.MLPBias {
			out[p+".mlp.down_proj.bias"] = []int64{d}
		}
		out[p+".input_layernorm.weight"] = []int64{d}
		out[p+".post_attention_layernorm.weight"] = []int64{d}
	}
	return out
}

// ForTeacher sizes a Llamba student for teacher t: the teacher's width,
// depth, vocabulary (unpadded), MLP, norm epsilon and head tying; one mixer
// head per query head (n_v_heads = n_qk_heads = the teacher's heads, as
// Llamba-1B and -8B have), d_state = the head dim, expand so that
// d_inner = heads·head dim (1 for Llama 3.x), conv width 4 with bias,
// chunk 128, no conv activation. These sizes are what AttentionInit needs.
func ForTeacher(t llama.Config) Config {
	c := Config{
		Config: phimamba.Config{
			Vocab: t.Vocab, VocabRaw: t.Vocab, PadMult: 1, DModel: t.Hidden, Layers: t.Layers,
			DState: t.HeadDim, VHeads: t.Heads, QKHeads: t.Heads, DConv: 4, ConvBias: true, Expand: 1,
			ChunkSize: 128, Activation: "identity", Inner: t.Intermediate, Eps: t.Eps,
		},
		MLPBias: t.MLPBias, Tied: t.Tied,
	}
	if w := t.Heads * t.HeadDim; w%t.Hidden == 0 {
		c.Expand = w / t.Hidden
	}
	return c
}

// NumParams is the parameter count, from the sizes (ParamShapes summed).
func (c Config) NumParams() int64 {
	d, f := c.DModel, c.Inner
	mixer := c.MixerNumParams()
	mlp := 3 * f * d
	if c.MLPBias {
		mlp += 2*f + d
	}
	na := int64(len(c.Attn.Layers))
	n := c.Vocab*d + d + int64(c.Layers)*(mlp+2*d) + (int64(c.Layers)-na)*mixer + na*c.attentionNumParams()
	if !c.Tied {
		n += c.Vocab * d
		if c.HeadBias {
			n += c.Vocab
		}
	}
	return n
}
