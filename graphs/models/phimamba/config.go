package phimamba

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Config is the student architecture.
type Config struct {
	Vocab      int64 // padded vocabulary (rows of the embedding and LM head)
	VocabRaw   int64 // vocabulary before padding
	PadMult    int64
	DModel     int64
	Layers     int
	DState     int64 // N
	VHeads     int64 // H (value heads)
	QKHeads    int64 // heads of B and C; equal to VHeads in Phi-Mamba
	DConv      int64
	ConvBias   bool
	Expand     int64
	ChunkSize  int64
	Activation string // after the conv: "identity" (Phi-Mamba) or "silu"
	Inner      int64  // Intermediate size of the Phi MLP
	Eps        float32
	// Attn lists the attention layers of a hybrid student (none: every
	// layer has a mixer).
	Attn Attention
}

// DInner is Expand·DModel.
func (c Config) DInner() int64 { return c.Expand * c.DModel }

// HeadDim is P = DInner/VHeads.
func (c Config) HeadDim() int64 { return c.DInner() / c.VHeads }

// ConvChannels is the width of x|B|C.
func (c Config) ConvChannels() int64 { return c.DInner() + 2*c.QKHeads*c.DState }

// InProj is the output width of in_proj: x|B|C, z, a.
func (c Config) InProj() int64 { return c.ConvChannels() + c.DInner() + c.VHeads }

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Vocab <= 0 || c.Layers <= 0 || c.Inner <= 0 {
		errs = append(errs, fmt.Errorf("sizes must be positive (vocab %d, n_layer %d, mlp inner %d)", c.Vocab, c.Layers, c.Inner))
	}
	if err := c.ValidateMixer(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateAttention()...)
	if c.QKHeads != c.VHeads {
		errs = append(errs, fmt.Errorf("n_qk_heads %d must equal n_v_heads %d (multi-head B and C, as in Phi-Mamba)", c.QKHeads, c.VHeads))
	}
	return errors.Join(errs...)
}

// ValidateMixer checks the mixer's dimensions alone, reporting every
// problem at once. It admits n_qk_heads dividing n_v_heads (B and C shared
// by groups of value heads, as the authors' mixer allows); Validate
// narrows that to Phi-Mamba's equal counts.
func (c Config) ValidateMixer() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.DModel <= 0 || c.DState <= 0 || c.VHeads <= 0 || c.QKHeads <= 0 {
		bad("sizes must be positive (d_model %d, d_state %d, n_v_heads %d, n_qk_heads %d)", c.DModel, c.DState, c.VHeads, c.QKHeads)
	}
	if c.Expand < 1 {
		bad("expand %d must be ≥ 1", c.Expand)
	}
	if c.VHeads > 0 && c.DInner()%c.VHeads != 0 {
		bad("d_inner %d is not divisible by n_v_heads %d", c.DInner(), c.VHeads)
	}
	if c.VHeads > 0 && c.QKHeads > 0 && c.VHeads%c.QKHeads != 0 {
		bad("n_qk_heads %d does not divide n_v_heads %d", c.QKHeads, c.VHeads)
	}
	if c.DConv < 1 {
		bad("d_conv %d must be ≥ 1", c.DConv)
	}
	if c.ChunkSize < 1 {
		bad("chunk_size %d must be ≥ 1", c.ChunkSize)
	}
	if c.Activation != "identity" && c.Activation != "silu" {
		bad("activation %q: only \"identity\" and \"silu\" are supported", c.Activation)
	}
	return errors.Join(errs...)
}

// ParamShapes lists every parameter with its name and shape.
func (c Config) ParamShapes() map[string][]int64 {
	out := map[string][]int64{
		"backbone.embedding.weight":       {c.Vocab, c.DModel},
		"backbone.final_layernorm.weight": {c.DModel},
		"backbone.final_layernorm.bias":   {c.DModel},
		"lm_head.weight":                  {c.Vocab, c.DModel},
		"lm_head.bias":                    {c.Vocab},
	}
	for i := 0; i < c.Layers; i++ {
		p := LayerPrefix(i)
		out[p+".mlp.fc1.weight"] = []int64{c.Inner, c.DModel}
		out[p+".mlp.fc1.bias"] = []int64{c.Inner}
		out[p+".mlp.fc2.weight"] = []int64{c.DModel, c.Inner}
		out[p+".mlp.fc2.bias"] = []int64{c.DModel}
		out[p+".input_layernorm.weight"] = []int64{c.DModel}
		out[p+".input_layernorm.bias"] = []int64{c.DModel}
		if c.IsAttention(i) {
			c.attentionShapes(i, out)
		} else {
			c.AddMixerShapes(i, out)
		}
	}
	return out
}

// AddMixerShapes adds layer i's mixer parameters to shapes.
func (c Config) AddMixerShapes(i int, shapes map[string][]int64) {
	shapes[mixerName(i, "in_proj.weight")] = []int64{c.InProj(), c.DModel}
	shapes[mixerName(i, "z_bias")] = []int64{c.DInner()}
	shapes[mixerName(i, "conv1d.weight")] = []int64{c.ConvChannels(), 1, c.DConv}
	if c.ConvBias {
		shapes[mixerName(i, "conv1d.bias")] = []int64{c.ConvChannels()}
	}
	shapes[mixerName(i, "D")] = []int64{c.VHeads}
	shapes[mixerName(i, "out_proj.weight")] = []int64{c.DModel, c.DInner()}
}

// MixerNumParams is one mixer's parameter count (AddMixerShapes' formula).
func (c Config) MixerNumParams() int64 {
	n := c.InProj()*c.DModel + c.DInner() + c.ConvChannels()*c.DConv + c.VHeads + c.DModel*c.DInner()
	if c.ConvBias {
		n += c.ConvChannels()
	}
	return n
}

// NumParams is the parameter count (the formula of ParamShapes, summed).
func (c Config) NumParams() int64 {
	d, f := c.DModel, c.Inner
	mixer := c.MixerNumParams()
	mlp := f*d + f + d*f + d
	attn := 4 * (d*d + d)
	na := int64(len(c.Attn.Layers))
	return 2*c.Vocab*d + c.Vocab + 2*d + int64(c.Layers)*(mlp+2*d) + (int64(c.Layers)-na)*mixer + na*attn
}

// LayerPrefix is the name prefix of layer i.
func LayerPrefix(i int) string { return fmt.Sprintf("backbone.layers.%d", i) }

// IsMixer reports whether a parameter belongs to a Discrete Mamba-2 mixer
// (not to a hybrid's attention layer).
func IsMixer(name string) bool { return strings.Contains(name, ".mixer.") && !IsAttentionParam(name) }

// NoDecay reports whether weight decay skips the parameter: biases, norms
// and D (the authors mark D as no-decay).
func NoDecay(name string) bool {
	return strings.HasSuffix(name, ".bias") || strings.HasSuffix(name, "z_bias") ||
		strings.Contains(name, "layernorm") || strings.HasSuffix(name, ".D")
}

// authorsConfig is the config.json layout of goombalab/phi-mamba: the
// layers are runs of blocks Block1, Block2, … (each n_layers consecutive
// layers of one CoreType), read here from the raw top-level keys.
type authorsConfig struct {
	LanguageModel struct {
		Input struct {
			VocabSize           *int64 `json:"vocab_size"`
			PadVocabSizeMultipl *int64 `json:"pad_vocab_size_multiple"`
		} `json:"input"`
	} `json:"LanguageModel"`
	MixerModel struct {
		Input struct {
			DModel        *int64 `json:"d_model"`
			NLayer        *int   `json:"n_layer"`
			LMHeadPrenorm string `json:"lm_head_prenorm"`
		} `json:"input"`
	} `json:"MixerModel"`
}

// authorsBlock is one BlockN entry.
type authorsBlock struct {
	NLayers    *int   `json:"n_layers"`
	BlockType  string `json:"BlockType"`
	BlockInput struct {
		ResidDropout float64 `json:"resid_dropout"`
	} `json:"block_input"`
	CoreType  string          `json:"CoreType"`
	CoreInput json.RawMessage `json:"core_input"`
}

// ssmCore is the core_input of a Discrete Mamba-2 block.
type ssmCore struct {
	DState     *int64 `json:"d_state"`
	NVHeads    *int64 `json:"n_v_heads"`
	NQKHeads   *int64 `json:"n_qk_heads"`
	DConv      *int64 `json:"d_conv"`
	ConvBias   *bool  `json:"conv_bias"`
	Expand     *int64 `json:"expand"`
	ChunkSize  *int64 `json:"chunk_size"`
	Activation string `json:"activation"`
	Bias       *bool  `json:"bias"`
}

// attnCore is the core_input of a Phi attention block: the Hugging Face
// PhiConfig keys the authors' phi_attention mixer reads.
type attnCore struct {
	HiddenSize          *int64   `json:"hidden_size"`
	NumAttentionHeads   *int64   `json:"num_attention_heads"`
	PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
	RopeTheta           *float64 `json:"rope_theta"`
}

// Authors' module names this package implements.
const (
	blockType = "modules.phi_block"
	coreType  = "modules.mixers.discrete_mamba2"
	attnType  = "modules.mixers.phi_attention"
)

// readBlocks returns Block1, Block2, … in order; a gap in the numbering is
// an error.
func readBlocks(top map[string]json.RawMessage, source string) ([]authorsBlock, error) {
	n := 0
	for k := range top {
		if strings.HasPrefix(k, "Block") {
			n++
		}
	}
	blocks := make([]authorsBlock, n)
	for j := range blocks {
		key := fmt.Sprintf("Block%d", j+1)
		raw, ok := top[key]
		if !ok {
			return nil, fmt.Errorf("%s: missing key %s (blocks must be numbered Block1…Block%d)", source, key, n)
		}
		if err := json.Unmarshal(raw, &blocks[j]); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", source, key, err)
		}
		if blocks[j].NLayers == nil && n > 1 {
			return nil, fmt.Errorf("%s: missing key %s.n_layers (needed when there are several blocks)", source, key)
		}
	}
	return blocks, nil
}

// sameCore reports whether two Mamba core_inputs are equal.
func sameCore(a, b ssmCore) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// ParseConfig reads the authors' config.json format. The MLP width is not in
// that format (the authors fix it at 4·d_model, Phi's ratio); the Phi MLP's
// inner size and LayerNorm eps are therefore passed in. A hybrid config
// lists Phi attention blocks (CoreType modules.mixers.phi_attention) among
// the Discrete Mamba-2 ones; every Mamba block must share one core_input.
func ParseConfig(data []byte, source string, mlpInner int64, eps float32) (Config, error) {
	var a authorsConfig
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("%s: not a Phi-Mamba config.json: %w", source, err)
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return Config{}, fmt.Errorf("%s: not a Phi-Mamba config.json: %w", source, err)
	}
	blocks, err := readBlocks(top, source)
	if err != nil {
		return Config{}, err
	}
	var errs []error
	need := func(key string, ok bool) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: missing key %s", source, key))
		}
	}
	li, mi := a.LanguageModel.Input, a.MixerModel.Input
	need("LanguageModel.input.vocab_size", li.VocabSize != nil)
	need("MixerModel.input.d_model", mi.DModel != nil)
	need("MixerModel.input.n_layer", mi.NLayer != nil)
	need("Block1", len(blocks) > 0)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	var ci *ssmCore
	var attn Attention
	layer := 0
	for j, b := range blocks {
		key := fmt.Sprintf("Block%d", j+1)
		n := *mi.NLayer
		if b.NLayers != nil {
			n = *b.NLayers
		}
		if b.BlockType != "" && b.BlockType != blockType {
			errs = append(errs, fmt.Errorf("%s: %s.BlockType %q is not supported (only %s)", source, key, b.BlockType, blockType))
		}
		switch b.CoreType {
		case "", coreType:
			var cur ssmCore
			if err := json.Unmarshal(b.CoreInput, &cur); err != nil {
				return Config{}, fmt.Errorf("%s: %s.core_input: %w", source, key, err)
			}
			if ci == nil {
				ci = &cur
			} else if !sameCore(*ci, cur) {
				errs = append(errs, fmt.Errorf("%s: %s.core_input differs from the first Mamba block's (one mixer setting per model is supported)", source, key))
			}
		case attnType:
			var cur attnCore
			if err := json.Unmarshal(b.CoreInput, &cur); err != nil {
				return Config{}, fmt.Errorf("%s: %s.core_input: %w", source, key, err)
			}
			if cur.NumAttentionHeads == nil {
				errs = append(errs, fmt.Errorf("%s: missing key %s.core_input.num_attention_heads", source, key))
				continue
			}
			if cur.HiddenSize != nil && *cur.HiddenSize != *mi.DModel {
				errs = append(errs, fmt.Errorf("%s: %s.core_input.hidden_size %d differs from MixerModel.input.d_model %d", source, key, *cur.HiddenSize, *mi.DModel))
			}
			a := Attention{Heads: *cur.NumAttentionHeads, RopeTheta: or(cur.RopeTheta, 10000)}
			if a.Heads > 0 {
				a.RotaryDim = int64(math.Round(or(cur.PartialRotaryFactor, 0.5) * float64(*mi.DModel/a.Heads)))
			}
			if len(attn.Layers) > 0 && (a.Heads != attn.Heads || a.RotaryDim != attn.RotaryDim || a.RopeTheta != attn.RopeTheta) {
				errs = append(errs, fmt.Errorf("%s: %s.core_input differs from the first attention block's", source, key))
			}
			a.Layers = attn.Layers
			for i := layer; i < layer+n; i++ {
				a.Layers = append(a.Layers, i)
			}
			attn = a
		default:
			errs = append(errs, fmt.Errorf("%s: %s.CoreType %q is not supported (only %s and %s)", source, key, b.CoreType, coreType, attnType))
		}
		layer += n
	}
	if layer != *mi.NLayer {
		errs = append(errs, fmt.Errorf("%s: the blocks' n_layers add up to %d, MixerModel.input.n_layer is %d", source, layer, *mi.NLayer))
	}
	if ci == nil { // every layer is attention: placeholder mixer settings, never used
		one := int64(1)
		ci = &ssmCore{DState: &one, NVHeads: &one}
	}
	need("Block*.core_input.d_state", ci.DState != nil)
	need("Block*.core_input.n_v_heads", ci.NVHeads != nil)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	if ci.Bias != nil && *ci.Bias {
		errs = append(errs, fmt.Errorf("%s: core_input.bias true is not supported (Phi-Mamba uses bias false with z_bias)", source))
	}
	if mi.LMHeadPrenorm != "" && mi.LMHeadPrenorm != "layer" {
		errs = append(errs, fmt.Errorf("%s: MixerModel.input.lm_head_prenorm %q is not supported (only \"layer\")", source, mi.LMHeadPrenorm))
	}
	c := Config{
		VocabRaw: *li.VocabSize, PadMult: or(li.PadVocabSizeMultipl, 8), DModel: *mi.DModel, Layers: *mi.NLayer,
		DState: *ci.DState, VHeads: *ci.NVHeads, QKHeads: or(ci.NQKHeads, *ci.NVHeads), DConv: or(ci.DConv, 4),
		ConvBias: ci.ConvBias == nil || *ci.ConvBias, Expand: or(ci.Expand, 1), ChunkSize: or(ci.ChunkSize, 128),
		Activation: ci.Activation, Inner: mlpInner, Eps: eps, Attn: attn,
	}
	if c.Activation == "" {
		c.Activation = "identity"
	}
	if mlpInner == 0 {
		c.Inner = 4 * c.DModel
	}
	c.Vocab = PadVocab(c.VocabRaw, c.PadMult)
	if err := c.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", source, err))
	}
	return c, errors.Join(errs...)
}

// LoadConfig reads dir/config.json (or a file path).
func LoadConfig(path string, mlpInner int64, eps float32) (Config, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read student config: %w", err)
	}
	return ParseConfig(data, path, mlpInner, eps)
}

// Marshal writes c in the authors' config.json format: one block per run
// of consecutive layers of one kind (a pure student has Block1 only).
func (c Config) Marshal() ([]byte, error) {
	m := orderedJSON{
		{"LanguageModel", map[string]any{"input": map[string]any{"vocab_size": c.VocabRaw, "pad_vocab_size_multiple": c.PadMult}}},
		{"MixerModel", map[string]any{"input": map[string]any{"d_model": c.DModel, "n_layer": c.Layers, "lm_head_prenorm": "layer"}}},
	}
	ssm := map[string]any{
		"d_state": c.DState, "n_v_heads": c.VHeads, "n_qk_heads": c.QKHeads, "d_conv": c.DConv,
		"conv_bias": c.ConvBias, "expand": c.Expand, "chunk_size": c.ChunkSize, "activation": c.Activation, "bias": false,
	}
	block := 0
	for start := 0; start < c.Layers; {
		end := start + 1
		for end < c.Layers && c.IsAttention(end) == c.IsAttention(start) {
			end++
		}
		core, input := coreType, any(ssm)
		if c.IsAttention(start) {
			core = attnType
			input = map[string]any{
				"hidden_size": c.DModel, "num_attention_heads": c.Attn.Heads,
				"partial_rotary_factor": float64(c.Attn.RotaryDim) / float64(c.AttnHeadDim()), "rope_theta": c.Attn.RopeTheta,
			}
		}
		block++
		m = append(m, keyValue{fmt.Sprintf("Block%d", block), map[string]any{
			"n_layers": end - start, "BlockType": blockType, "block_input": map[string]any{"resid_dropout": 0.0},
			"CoreType": core, "core_input": input,
		}})
		start = end
	}
	return json.MarshalIndent(m, "", "  ")
}

// orderedJSON is a JSON object that keeps its keys in order: the authors'
// loader builds the layers from the blocks in file order.
type orderedJSON []keyValue

type keyValue struct {
	key   string
	value any
}

func (o orderedJSON) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for j, kv := range o {
		if j > 0 {
			buf = append(buf, ',')
		}
		k, err := json.Marshal(kv.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(kv.value)
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return append(buf, '}'), nil
}

// PadVocab rounds v up to a multiple of m.
func PadVocab(v, m int64) int64 {
	if m <= 1 {
		return v
	}
	return (v + m - 1) / m * m
}

func or[T any](p *T, d T) T {
	if p == nil {
		return d
	}
	return *p
}
