package llama

import (
	"fmt"
	"math"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/hfconfig"
	"mohawk/tensors"
)

// Config is the teacher architecture.
type Config struct {
	Vocab, Hidden, Intermediate int64
	Layers                      int
	Heads, KVHeads, HeadDim     int64
	Eps                         float32
	QKVBias, OBias, MLPBias     bool
	Tied                        bool  // the LM head is the embedding table
	Window                      int64 // sliding window (positions seen, self included); 0 for none
	Rope                        hfconfig.Rope
	MaxPositions                int
}

// FromHF converts a Hugging Face Llama-family config.
func FromHF(h *hfconfig.Llama) Config {
	return Config{Vocab: int64(h.VocabSize), Hidden: int64(h.HiddenSize), Intermediate: int64(h.IntermediateSize),
		Layers: h.NumHiddenLayers, Heads: int64(h.NumAttentionHeads), KVHeads: int64(h.NumKeyValueHeads),
		HeadDim: int64(h.HeadDim), Eps: float32(h.RMSNormEps), QKVBias: h.QKVBias, OBias: h.OBias,
		MLPBias: h.MLPBias, Tied: h.TieWordEmbeddings, Window: int64(h.SlidingWindow), Rope: h.Rope,
		MaxPositions: h.MaxPositionEmbeddings}
}

// Validate checks the dimensions fit together.
func (c Config) Validate() error {
	switch {
	case c.Vocab <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.Intermediate <= 0:
		return fmt.Errorf("llama config: sizes must be positive: %+v", c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("llama config: %d key/value heads do not divide %d query heads", c.KVHeads, c.Heads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("llama config: head dim %d must be even for rotary embeddings", c.HeadDim)
	}
	return nil
}

// LayerPrefix is the Hugging Face name prefix of layer i.
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d", i) }

// ParamShapes lists every parameter with its Hugging Face name and shape
// (no lm_head.weight when the head is tied).
func (c Config) ParamShapes() map[string]graphs.Shape {
	out := map[string]graphs.Shape{}
	d, f := c.Hidden, c.Intermediate
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	out["model.embed_tokens.weight"] = graphs.S(c.Vocab, d)
	linear := func(name string, o, i int64, bias bool) {
		out[name+".weight"] = graphs.S(o, i)
		if bias {
			out[name+".bias"] = graphs.S(o)
		}
	}
	for i := 0; i < c.Layers; i++ {
		p := LayerPrefix(i)
		linear(p+".self_attn.q_proj", q, d, c.QKVBias)
		linear(p+".self_attn.k_proj", kv, d, c.QKVBias)
		linear(p+".self_attn.v_proj", kv, d, c.QKVBias)
		linear(p+".self_attn.o_proj", d, q, c.OBias)
		linear(p+".mlp.gate_proj", f, d, c.MLPBias)
		linear(p+".mlp.up_proj", f, d, c.MLPBias)
		linear(p+".mlp.down_proj", d, f, c.MLPBias)
		out[p+".input_layernorm.weight"] = graphs.S(d)
		out[p+".post_attention_layernorm.weight"] = graphs.S(d)
	}
	out["model.norm.weight"] = graphs.S(d)
	if !c.Tied {
		out["lm_head.weight"] = graphs.S(c.Vocab, d)
	}
	return out
}

// Options, Cache and Outputs are the registry's (package family):
// Outputs.Normed[i] is RMSNorm_i(Hidden[i]), the attention block's input,
// and a cache holds KVHeads heads.
type (
	Options = family.TeacherOptions
	Cache   = family.Cache
	Outputs = family.TeacherOutputs
)

// Forward builds the model on token ids [B, T] (int64).
func Forward(p layers.Params, c Config, ids *graphs.Value, opt Options) *Outputs {
	nl := c.Layers
	if opt.Layers > 0 {
		nl = opt.Layers
	}
	h := layers.Embedding(p, "model.embed_tokens.weight", ids, c.Vocab, c.Hidden)
	var offset *graphs.Value
	if opt.Cache != nil {
		offset = graphs.Squeeze(graphs.ShapeOf(opt.Cache.PastKey[0], 2, 3), 0)
	}
	posDType := tensors.Float32
	if h.DType == tensors.Float64 {
		posDType = h.DType
	}
	inv, scale := Frequencies(c.Rope, int(c.HeadDim), c.MaxPositions)
	cos, sin := layers.RotaryFromFrequencies(layers.Positions(ids, 1, offset, posDType), inv, scale)
	if opt.LowPrecision {
		low := graphs.ToLowPrecision
		h, cos, sin = low(h), low(cos), low(sin)
		p = lowParams{p}
	}
	out := &Outputs{}
	for i := 0; i < nl; i++ {
		out.Hidden = append(out.Hidden, h)
		pre := LayerPrefix(i)
		u := layers.RMSNorm(p, pre+".input_layernorm", h, c.Eps)
		attn, probs := Attention(p, c, i, u, cos, sin, opt.Cache, opt.ExplicitAttention)
		h = layers.Residual(h, attn)
		mlp := layers.SwiGLU(p, pre+".mlp", layers.RMSNorm(p, pre+".post_attention_layernorm", h, c.Eps), c.Intermediate, c.MLPBias)
		h = layers.Residual(h, mlp)
		out.Normed, out.Attn = append(out.Normed, u), append(out.Attn, probs)
		out.AttnOut, out.MLPOut = append(out.AttnOut, attn), append(out.MLPOut, mlp)
	}
	out.Hidden = append(out.Hidden, h)
	if nl < c.Layers || opt.NoLogits {
		return out
	}
	out.FinalNormed = layers.RMSNorm(p, "model.norm", h, c.Eps)
	head := "lm_head.weight"
	if c.Tied {
		head = "model.embed_tokens.weight"
	}
	w := p.Get(head, graphs.S(c.Vocab, c.Hidden))
	out.Logits = layers.LinearWith(out.FinalNormed, w, nil)
	if !opt.LowLogits {
		out.Logits = graphs.FromLowPrecision(out.Logits)
	}
	return out
}

// lowParams serves float32 parameters in the graph's low precision
// (Options.LowPrecision).
type lowParams struct{ layers.Params }

func (l lowParams) Get(name string, shape graphs.Shape) *graphs.Value {
	return graphs.ToLowPrecision(l.Params.Get(name, shape))
}

// Attention is layer i's grouped-query self-attention on normed input u
// [B, T, D]: it returns the block output (after o_proj) and, when explicit
// is set, a cache is given or the model has a sliding window, the
// probabilities [B, Heads, T, Tk] (otherwise nil).
func Attention(p layers.Params, c Config, i int, u, cos, sin *graphs.Value, cache *Cache, explicit bool) (out, attn *graphs.Value) {
	pre := LayerPrefix(i) + ".self_attn"
	heads := func(name string, n int64) *graphs.Value {
		x := layers.Linear(p, pre+"."+name, u, n*c.HeadDim, c.QKVBias)
		return graphs.Reshape(x, 0, 0, n, c.HeadDim) // [B, T, n, P]
	}
	q, k, v := heads("q_proj", c.Heads), heads("k_proj", c.KVHeads), heads("v_proj", c.KVHeads)
	q, k = layers.ApplyRotary(q, cos, sin, c.HeadDim), layers.ApplyRotary(k, cos, sin, c.HeadDim)
	groups := c.Heads / c.KVHeads
	scale := 1 / math.Sqrt(float64(c.HeadDim))
	width := c.Heads * c.HeadDim
	var o *graphs.Value
	if cache == nil && !explicit && c.Window == 0 && (u.DType == tensors.Float32 || u.DType == tensors.BFloat16) {
		flat := func(x *graphs.Value) *graphs.Value { return graphs.Reshape(x, 0, 0, width) } // [B, T, H·P]
		o = graphs.CausalMultiHeadAttention(flat(q), flat(layers.RepeatHeads(k, groups)), flat(layers.RepeatHeads(v, groups)), c.Heads, scale)
	} else {
		toBHTP := func(x *graphs.Value) *graphs.Value { return graphs.Transpose(x, 0, 2, 1, 3) }
		kt, vt := toBHTP(k), toBHTP(v)
		if cache != nil {
			kt = graphs.Concat(2, cache.PastKey[i], kt)
			vt = graphs.Concat(2, cache.PastValue[i], vt)
			cache.PresentKey = append(cache.PresentKey, kt)
			cache.PresentValue = append(cache.PresentValue, vt)
		}
		// Repeat the key/value heads after the cache, which keeps KVHeads.
		back := func(x *graphs.Value) *graphs.Value { return toBHTP(layers.RepeatHeads(toBHTP(x), groups)) }
		qt := toBHTP(q)
		mask := layers.CausalMask(qt, kt, 2, 2)
		if c.Window > 0 {
			mask = layers.WindowMask(qt, kt, 2, 2, c.Window)
		}
		o, attn = layers.MaskedAttention(qt, back(kt), back(vt), mask, scale)
		o = graphs.Reshape(graphs.Transpose(o, 0, 2, 1, 3), 0, 0, width) // [B, T, H·P]
	}
	return layers.Linear(p, pre+".o_proj", o, c.Hidden, c.OBias), attn
}

// NumParams is the parameter count (ParamShapes summed).
func (c Config) NumParams() int64 {
	var n int64
	for _, s := range c.ParamShapes() {
		k := int64(1)
		for _, d := range s.Sizes() {
			k *= d
		}
		n += k
	}
	return n
}
