package llamba

import (
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phimamba"
)

// Forward builds the student on token ids [B, T]. Options and Outputs are
// phimamba's; Outputs.Normed[i] is RMSNorm_i(Hidden[i]), the mixer's input,
// and Outputs.Matrix (FormMatrix) holds one [B, n_v_heads, T, T] mixing
// matrix per layer, as the teacher's per-head attention (a hybrid's
// attention layer: the teacher's probabilities, [B, heads, T, T]).
func Forward(p layers.Params, c Config, ids *graphs.Value, opt phimamba.Options) *phimamba.Outputs {
	nl := c.Layers
	if opt.Layers > 0 {
		nl = opt.Layers
	}
	if opt.States != nil && len(opt.States) != c.Layers {
		panic(&graphs.Error{Op: "llamba.Forward", Msg: "one state per layer is needed"})
	}
	h := layers.Embedding(p, "backbone.embedding.weight", ids, c.Vocab, c.DModel)
	out := &phimamba.Outputs{}
	var rot rotary
	for i := 0; i < nl; i++ {
		pre := LayerPrefix(i)
		out.Hidden = append(out.Hidden, h)
		// One recomputation segment per layer (graphs.Graph.Recomputed).
		ids.Graph().Recomputed(func() {
			u := layers.RMSNorm(p, pre+".input_layernorm", h, c.Eps)
			out.Normed = append(out.Normed, u)
			var st *phimamba.State
			if opt.States != nil {
				st = &opt.States[i]
			}
			var m phimamba.MixerOut
			if c.IsAttention(i) {
				cos, sin := rot.tables(c, ids, opt.States, h)
				m = attention(p, c, i, u, cos, sin, opt.Form, st)
			} else {
				m = phimamba.Mixer(p, c.Config, i, u, opt.Form, st)
			}
			h = layers.Residual(h, m.Out)
			v := layers.RMSNorm(p, pre+".post_attention_layernorm", h, c.Eps)
			mlp := graphs.FromLowPrecision(layers.SwiGLU(p, pre+".mlp", v, c.Inner, c.MLPBias))
			h = layers.Residual(h, mlp)
			out.MixerOut, out.MLPOut = append(out.MixerOut, m.Out), append(out.MLPOut, mlp)
			if m.Matrix != nil {
				out.Matrix = append(out.Matrix, m.Matrix)
			}
			if st != nil {
				out.States = append(out.States, m.State)
			}
		})
	}
	out.Hidden = append(out.Hidden, h)
	if nl < c.Layers || opt.NoLogits {
		return out
	}
	out.Logits = Head(p, c, h)
	return out
}

// Head is the final RMSNorm and LM head (the embedding when tied) on the
// last layer's output h [B, T, D] (any T: a chunk of positions gives that
// chunk's logits).
func Head(p layers.Params, c Config, h *graphs.Value) *graphs.Value {
	f := layers.RMSNorm(p, "backbone.final_layernorm", h, c.Eps)
	if c.Tied {
		return layers.LinearWith(f, p.Get("backbone.embedding.weight", graphs.S(c.Vocab, c.DModel)), nil)
	}
	return layers.Linear(p, "lm_head", f, c.Vocab, c.HeadBias)
}
