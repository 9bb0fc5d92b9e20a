package llamba

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/llama"
	"mohawk/graphs/models/phimamba"
)

// A hybrid Llamba keeps the teacher's grouped-query attention (its rotary
// scaling, biases and sliding window included) in the layers
// c.Attn.Layers, built by llama.Attention on parameters named
// phimamba.AttentionName(i, "{q,k,v,o}_proj.{weight,bias}")
// (backbone.layers.i.mixer.self_attn.*); its KV cache holds the teacher's
// key/value heads.

// attnPrefix is the teacher's name prefix of layer i's attention
// parameters.
func attnPrefix(i int) string { return llama.LayerPrefix(i) + ".self_attn." }

// attentionShapes adds attention layer i's parameters to out: the
// teacher's layer-i attention shapes under the student's names.
func (c Config) attentionShapes(i int, out map[string][]int64) {
	one := c.AttnTeacher
	one.Layers = 1
	from := attnPrefix(0)
	for name, s := range one.ParamShapes() {
		if n, ok := strings.CutPrefix(name, from); ok {
			out[phimamba.AttentionName(i, n)] = s.Sizes()
		}
	}
}

// attentionNumParams is one attention layer's parameter count.
func (c Config) attentionNumParams() int64 {
	shapes := map[string][]int64{}
	c.attentionShapes(0, shapes)
	var n int64
	for _, s := range shapes {
		k := int64(1)
		for _, d := range s {
			k *= d
		}
		n += k
	}
	return n
}

// validateAttention checks the attention layer list and the teacher
// config that sizes them.
func (c Config) validateAttention() []error {
	ls := c.Attn.Layers
	if len(ls) == 0 {
		return nil
	}
	var errs []error
	for j, i := range ls {
		if i < 0 || i >= c.Layers {
			errs = append(errs, fmt.Errorf("attn_layers: layer %d is out of range [0, %d)", i, c.Layers))
		}
		if j > 0 && i <= ls[j-1] {
			errs = append(errs, fmt.Errorf("attn_layers %v must be ascending and distinct", ls))
			break
		}
	}
	if len(c.AttnCfg) == 0 {
		return append(errs, errors.New("attn_layers need attn_cfg, the teacher's config.json"))
	}
	if err := c.AttnTeacher.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("attn_cfg: %w", err))
	}
	if c.AttnTeacher.Hidden != c.DModel {
		errs = append(errs, fmt.Errorf("attn_cfg hidden_size %d differs from d_model %d", c.AttnTeacher.Hidden, c.DModel))
	}
	return errs
}

// Sizes are the student's sizes; a hybrid's KV cache holds the teacher's
// key/value heads of its head dim.
func (c Config) Sizes() family.StudentSizes {
	m := c.Config
	m.Attn = phimamba.Attention{}
	s := m.Sizes()
	if len(c.Attn.Layers) > 0 {
		s.AttnLayers, s.AttnHeads, s.AttnHeadDim = slices.Clone(c.Attn.Layers), c.AttnTeacher.KVHeads, c.AttnTeacher.HeadDim
	}
	return s
}

// rotary builds the teacher's rotary tables for ids [B, T] once per
// Forward.
type rotary struct {
	cos, sin *graphs.Value
}

func (r *rotary) tables(c Config, ids *graphs.Value, states []phimamba.State, h *graphs.Value) (cos, sin *graphs.Value) {
	if r.cos == nil {
		t := c.AttnTeacher
		inv, scale := llama.Frequencies(t.Rope, int(t.HeadDim), t.MaxPositions)
		r.cos, r.sin = layers.RotaryFromFrequencies(phimamba.AttentionPositions(c.Attn.Layers, ids, states, h.DType), inv, scale)
	}
	return r.cos, r.sin
}

// attention applies attention layer i, the teacher's, to the normed input
// u (phimamba.TeacherAttention: KV cache states, FormMatrix's
// probabilities).
func attention(p layers.Params, c Config, i int, u, cos, sin *graphs.Value, form phimamba.Form, st *phimamba.State) phimamba.MixerOut {
	return phimamba.TeacherAttention(p, i, attnPrefix(i), form, st, func(p layers.Params, cache *family.Cache) (out, probs *graphs.Value) {
		return llama.Attention(p, c.AttnTeacher, i, u, cos, sin, cache, form == phimamba.FormMatrix)
	})
}

// attentionTransfer maps a hybrid's attention parameters to the teacher's
// names.
func (c Config) attentionTransfer(m map[string]string) {
	for _, i := range c.Attn.Layers {
		shapes := map[string][]int64{}
		c.attentionShapes(i, shapes)
		for name := range shapes {
			m[name] = attnPrefix(i) + strings.TrimPrefix(name, phimamba.AttentionName(i, ""))
		}
	}
}
