package phimamba

import (
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
)

// Options and Outputs are the registry's (package family).
type (
	Options = family.StudentOptions
	Outputs = family.StudentOutputs
)

// Forward builds the student on token ids [B, T].
func Forward(p layers.Params, c Config, ids *graphs.Value, opt Options) *Outputs {
	nl := c.Layers
	if opt.Layers > 0 {
		nl = opt.Layers
	}
	if opt.States != nil && len(opt.States) != c.Layers {
		panic(&graphs.Error{Op: "phimamba.Forward", Msg: "one state per layer is needed"})
	}
	h := layers.Embedding(p, "backbone.embedding.weight", ids, c.Vocab, c.DModel)
	out := &Outputs{}
	var rot rotary
	for i := 0; i < nl; i++ {
		out.Hidden = append(out.Hidden, h)
		// One recomputation segment per layer (graphs.Graph.Recomputed).
		ids.Graph().Recomputed(func() {
			u := layers.LayerNorm(p, LayerPrefix(i)+".input_layernorm", h, c.Eps)
			out.Normed = append(out.Normed, u)
			var st *State
			if opt.States != nil {
				st = &opt.States[i]
			}
			var m MixerOut
			if c.IsAttention(i) {
				cos, sin := rot.tables(c, ids, opt.States, h.DType)
				m = attention(p, c, i, u, cos, sin, opt.Form, st)
			} else {
				m = Mixer(p, c, i, u, opt.Form, st)
			}
			mlp := graphs.FromLowPrecision(layers.PhiMLP(p, LayerPrefix(i)+".mlp", u, c.Inner))
			out.MixerOut, out.MLPOut = append(out.MixerOut, m.Out), append(out.MLPOut, mlp)
			if m.Matrix != nil {
				out.Matrix = append(out.Matrix, m.Matrix)
			}
			if st != nil {
				out.States = append(out.States, m.State)
			}
			h = layers.Residual(h, m.Out, mlp)
		})
	}
	out.Hidden = append(out.Hidden, h)
	if nl < c.Layers || opt.NoLogits {
		return out
	}
	out.Logits = Head(p, c, h)
	return out
}

// Head is the final LayerNorm and LM head on the last layer's output h
// [B, T, D] (any T: a chunk of positions gives that chunk's logits).
func Head(p layers.Params, c Config, h *graphs.Value) *graphs.Value {
	return layers.Linear(p, "lm_head", layers.LayerNorm(p, "backbone.final_layernorm", h, c.Eps), c.Vocab, true)
}
