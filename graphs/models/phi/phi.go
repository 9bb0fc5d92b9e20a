package phi

import (
	"fmt"
	"math"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/hfconfig"
	"mohawk/tensors"
)

// FromHF converts a Hugging Face Phi config to the teacher architecture.
func FromHF(h *hfconfig.Phi) Config {
	return Config{Vocab: int64(h.VocabSize), Hidden: int64(h.HiddenSize), Layers: h.NumHiddenLayers,
		Heads: int64(h.NumAttentionHeads), Intermediate: int64(h.IntermediateSize),
		RotaryDim: int64(h.RotaryDim()), RopeTheta: h.RopeTheta, Eps: float32(h.LayerNormEps)}
}

// Config is the teacher architecture.
type Config struct {
	Vocab        int64
	Hidden       int64
	Layers       int
	Heads        int64
	Intermediate int64
	RotaryDim    int64
	RopeTheta    float64
	Eps          float32
}

// HeadDim is Hidden/Heads.
func (c Config) HeadDim() int64 { return c.Hidden / c.Heads }

// Validate checks the dimensions fit together.
func (c Config) Validate() error {
	switch {
	case c.Vocab <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.Intermediate <= 0:
		return fmt.Errorf("phi config: sizes must be positive: %+v", c)
	case c.Hidden%c.Heads != 0:
		return fmt.Errorf("phi config: hidden size %d is not divisible by %d heads", c.Hidden, c.Heads)
	case c.RotaryDim < 0 || c.RotaryDim > c.HeadDim() || c.RotaryDim%2 != 0:
		return fmt.Errorf("phi config: rotary dim %d must be even and at most the head dim %d", c.RotaryDim, c.HeadDim())
	}
	return nil
}

// NumParams is the parameter count of the architecture.
func (c Config) NumParams() int64 {
	d, f := c.Hidden, c.Intermediate
	perLayer := 4*(d*d+d) + (d*f + f) + (f*d + d) + 2*d
	return c.Vocab*d + int64(c.Layers)*perLayer + 2*d + c.Vocab*d + c.Vocab
}

// ParamShapes lists every parameter with its Hugging Face name and shape.
func (c Config) ParamShapes() map[string]graphs.Shape {
	out := map[string]graphs.Shape{}
	d, f := c.Hidden, c.Intermediate
	out["model.embed_tokens.weight"] = graphs.S(c.Vocab, d)
	for i := 0; i < c.Layers; i++ {
		p := LayerPrefix(i)
		for _, n := range []string{"q_proj", "k_proj", "v_proj", "dense"} {
			out[p+".self_attn."+n+".weight"] = graphs.S(d, d)
			out[p+".self_attn."+n+".bias"] = graphs.S(d)
		}
		out[p+".mlp.fc1.weight"], out[p+".mlp.fc1.bias"] = graphs.S(f, d), graphs.S(f)
		out[p+".mlp.fc2.weight"], out[p+".mlp.fc2.bias"] = graphs.S(d, f), graphs.S(d)
		out[p+".input_layernorm.weight"], out[p+".input_layernorm.bias"] = graphs.S(d), graphs.S(d)
	}
	out["model.final_layernorm.weight"], out["model.final_layernorm.bias"] = graphs.S(d), graphs.S(d)
	out["lm_head.weight"], out["lm_head.bias"] = graphs.S(c.Vocab, d), graphs.S(c.Vocab)
	return out
}

// LayerPrefix is the Hugging Face name prefix of layer i.
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d", i) }

// Options, Cache and Outputs are the registry's (package family), which
// every teacher family shares.
type (
	Options = family.TeacherOptions
	Cache   = family.Cache
	Outputs = family.TeacherOutputs
)

// Forward builds the teacher on token ids [B, T] (int64).
func Forward(p layers.Params, c Config, ids *graphs.Value, opt Options) *Outputs {
	nl := c.Layers
	if opt.Layers > 0 {
		nl = opt.Layers
	}
	// The rotary tables (from positions, which bfloat16 cannot count) are
	// made in float32 at least, then lowered with the embedding rows.
	h := layers.Embedding(p, "model.embed_tokens.weight", ids, c.Vocab, c.Hidden)
	var offset *graphs.Value
	if opt.Cache != nil {
		offset = graphs.Squeeze(graphs.ShapeOf(opt.Cache.PastKey[0], 2, 3), 0)
	}
	posDType := tensors.Float32
	if h.DType == tensors.Float64 {
		posDType = h.DType
	}
	cos, sin := layers.RotaryTables(layers.Positions(ids, 1, offset, posDType), c.RotaryDim, c.RopeTheta)
	if opt.LowPrecision {
		low := graphs.ToLowPrecision
		h, cos, sin = low(h), low(cos), low(sin)
		p = lowParams{p}
	}
	out := &Outputs{}
	for i := 0; i < nl; i++ {
		out.Hidden = append(out.Hidden, h)
		pre := LayerPrefix(i)
		u := layers.LayerNorm(p, pre+".input_layernorm", h, c.Eps)
		out.Normed = append(out.Normed, u)
		attn, probs := Attention(p, c, i, u, cos, sin, opt.Cache, opt.ExplicitAttention)
		mlp := layers.PhiMLP(p, pre+".mlp", u, c.Intermediate)
		if !opt.LowPrecision {
			mlp = graphs.FromLowPrecision(mlp)
		}
		out.Attn, out.AttnOut, out.MLPOut = append(out.Attn, probs), append(out.AttnOut, attn), append(out.MLPOut, mlp)
		h = layers.Residual(h, attn, mlp)
	}
	out.Hidden = append(out.Hidden, h)
	if nl < c.Layers || opt.NoLogits {
		return out
	}
	out.FinalNormed = layers.LayerNorm(p, "model.final_layernorm", h, c.Eps)
	out.Logits = layers.Linear(p, "lm_head", out.FinalNormed, c.Vocab, true)
	if !opt.LowLogits {
		out.Logits = graphs.FromLowPrecision(out.Logits)
	}
	return out
}

// lowParams serves float32 parameters in the graph's low precision.
type lowParams struct{ layers.Params }

func (l lowParams) Get(name string, shape graphs.Shape) *graphs.Value {
	return graphs.ToLowPrecision(l.Params.Get(name, shape))
}

// Attention is layer i's self-attention on normed input u [B, T, D]: it
// returns the block output (after dense) and, when explicit is set or a cache
// is given, the probabilities (otherwise nil: see Options.ExplicitAttention).
func Attention(p layers.Params, c Config, i int, u, cos, sin *graphs.Value, cache *Cache, explicit bool) (out, attn *graphs.Value) {
	pre := LayerPrefix(i) + ".self_attn"
	hd := c.HeadDim()
	heads := func(name string) *graphs.Value {
		x := layers.Linear(p, pre+"."+name, u, c.Hidden, true)
		return graphs.Reshape(x, 0, 0, c.Heads, hd) // [B, T, H, P]
	}
	q, k, v := heads("q_proj"), heads("k_proj"), heads("v_proj")
	if c.RotaryDim > 0 {
		q, k = layers.ApplyRotary(q, cos, sin, c.RotaryDim), layers.ApplyRotary(k, cos, sin, c.RotaryDim)
	}
	scale := 1 / math.Sqrt(float64(hd))
	var o *graphs.Value
	if cache == nil && !explicit && (u.DType == tensors.Float32 || u.DType == tensors.BFloat16) {
		flat := func(x *graphs.Value) *graphs.Value { return graphs.ReshapeTo(x, u.Shape, u) } // [B, T, H·P]
		o = graphs.CausalMultiHeadAttention(flat(q), flat(k), flat(v), c.Heads, scale)
	} else {
		toBHTP := func(x *graphs.Value) *graphs.Value { return graphs.Transpose(x, 0, 2, 1, 3) }
		q, k, v = toBHTP(q), toBHTP(k), toBHTP(v)
		if cache != nil {
			k = graphs.Concat(2, cache.PastKey[i], k)
			v = graphs.Concat(2, cache.PastValue[i], v)
			cache.PresentKey = append(cache.PresentKey, k)
			cache.PresentValue = append(cache.PresentValue, v)
		}
		o, attn = layers.CausalAttention(q, k, v, scale)
		o = graphs.ReshapeTo(graphs.Transpose(o, 0, 2, 1, 3), u.Shape, u) // [B, T, H·P]
	}
	return layers.Linear(p, pre+".dense", o, c.Hidden, true), attn
}
