package phimamba

import (
	"fmt"
	"slices"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/graphs/models/phi"
	"mohawk/tensors"
)

// Attention lists the layers of a hybrid student that keep the teacher's
// Phi attention instead of a mixer, and what that attention needs. Its
// weights are named LayerPrefix(i)+".mixer.self_attn.{q_proj,k_proj,
// v_proj,dense}.{weight,bias}", as in the authors' hybrid models.
type Attention struct {
	Layers    []int // ascending, distinct; empty: a pure Phi-Mamba
	Heads     int64
	RotaryDim int64
	RopeTheta float64
}

// IsAttention reports whether layer i is an attention layer.
func (c Config) IsAttention(i int) bool { return slices.Contains(c.Attn.Layers, i) }

// SSMLayers lists the layers that have a Discrete Mamba-2 mixer.
func (c Config) SSMLayers() []int {
	var out []int
	for i := 0; i < c.Layers; i++ {
		if !c.IsAttention(i) {
			out = append(out, i)
		}
	}
	return out
}

// AttnHeadDim is DModel/Attn.Heads.
func (c Config) AttnHeadDim() int64 { return c.DModel / c.Attn.Heads }

// validateAttention checks the attention layer list and its sizes.
func (c Config) validateAttention() []error {
	a := c.Attn
	if len(a.Layers) == 0 {
		return nil
	}
	var errs []error
	for j, i := range a.Layers {
		if i < 0 || i >= c.Layers {
			errs = append(errs, fmt.Errorf("attention layer %d is out of range [0, %d)", i, c.Layers))
		}
		if j > 0 && i <= a.Layers[j-1] {
			errs = append(errs, fmt.Errorf("attention layers %v must be ascending and distinct", a.Layers))
			break
		}
	}
	switch {
	case a.Heads <= 0 || c.DModel%a.Heads != 0:
		errs = append(errs, fmt.Errorf("attention heads %d must be positive and divide d_model %d", a.Heads, c.DModel))
	case a.RotaryDim < 0 || a.RotaryDim%2 != 0 || a.RotaryDim > c.AttnHeadDim():
		errs = append(errs, fmt.Errorf("attention rotary dim %d must be even and at most the head dim %d", a.RotaryDim, c.AttnHeadDim()))
	}
	return errs
}

// attnNames are the attention projections of a layer.
var attnNames = []string{"q_proj", "k_proj", "v_proj", "dense"}

// AttentionName is the student's name of parameter n (e.g. "q_proj.weight")
// of attention layer i.
func AttentionName(i int, n string) string { return LayerPrefix(i) + ".mixer.self_attn." + n }

// IsAttentionParam reports whether a parameter belongs to an attention layer.
func IsAttentionParam(name string) bool { return strings.Contains(name, ".mixer.self_attn.") }

// attentionShapes adds attention layer i's parameters to out.
func (c Config) attentionShapes(i int, out map[string][]int64) {
	for _, n := range attnNames {
		out[AttentionName(i, n+".weight")] = []int64{c.DModel, c.DModel}
		out[AttentionName(i, n+".bias")] = []int64{c.DModel}
	}
}

// TeacherAttentionName maps a student attention parameter of layer i to the
// teacher's (Hugging Face Phi) name, for weight transfer.
func TeacherAttentionName(i int, n string) string { return phi.LayerPrefix(i) + ".self_attn." + n }

// AttentionParams lists layer i's attention parameters.
func (c Config) AttentionParams(i int) []string {
	var out []string
	for _, n := range attnNames {
		out = append(out, AttentionName(i, n+".weight"), AttentionName(i, n+".bias"))
	}
	return out
}

// phiConfig is the teacher-shaped config phi.Attention needs.
func (c Config) phiConfig() phi.Config {
	return phi.Config{Vocab: c.Vocab, Hidden: c.DModel, Layers: c.Layers, Heads: c.Attn.Heads, Intermediate: c.Inner,
		RotaryDim: c.Attn.RotaryDim, RopeTheta: c.Attn.RopeTheta, Eps: c.Eps}
}

// rotary builds the rotary tables for ids [B, T] once per Forward.
type rotary struct {
	cos, sin *graphs.Value
}

func (r *rotary) tables(c Config, ids *graphs.Value, states []State, dt tensors.DType) (cos, sin *graphs.Value) {
	if r.cos == nil {
		r.cos, r.sin = layers.RotaryTables(AttentionPositions(c.Attn.Layers, ids, states, dt), c.Attn.RotaryDim, c.Attn.RopeTheta)
	}
	return r.cos, r.sin
}

// AttentionPositions are the rotary positions of ids [B, T] in a hybrid
// whose attention layers are attn: they start at the cached length of the
// first attention layer's incoming key (0 without states), in float32
// (float64 when dt is).
func AttentionPositions(attn []int, ids *graphs.Value, states []State, dt tensors.DType) *graphs.Value {
	var offset *graphs.Value
	if states != nil {
		offset = graphs.Squeeze(graphs.ShapeOf(states[attn[0]].Key, 2, 3), 0)
	}
	posDType := tensors.Float32
	if dt == tensors.Float64 {
		posDType = dt
	}
	return layers.Positions(ids, 1, offset, posDType)
}

// TeacherAttention runs a teacher's attention block as a hybrid's
// attention layer i. from is the teacher's name prefix of that block's
// parameters (e.g. "model.layers.3.self_attn."); they are read under
// AttentionName(i, …). run builds the block with those parameters and, when
// st is given (past keys and values [B, KV heads, Tpast, P]), a cache
// whose slot i holds them; it returns the block output and its
// probabilities. The result holds the presents as its state, and the
// probabilities as its matrix when form is FormMatrix.
func TeacherAttention(p layers.Params, i int, from string, form Form, st *State,
	run func(p layers.Params, cache *family.Cache) (out, probs *graphs.Value)) MixerOut {
	to := AttentionName(i, "")
	renamed := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
		return p.Get(to+strings.TrimPrefix(name, from), shape)
	})
	var cache *family.Cache
	if st != nil {
		if st.Key == nil || st.Value == nil {
			panic(&graphs.Error{Op: "hybrid attention", Msg: fmt.Sprintf("attention layer %d needs past key and value states", i)})
		}
		cache = &family.Cache{PastKey: make([]*graphs.Value, i+1), PastValue: make([]*graphs.Value, i+1)}
		cache.PastKey[i], cache.PastValue[i] = st.Key, st.Value
	}
	out, probs := run(renamed, cache)
	m := MixerOut{Out: graphs.FromLowPrecision(out)}
	if form == FormMatrix {
		m.Matrix = probs
	}
	if cache != nil {
		m.State = State{Key: cache.PresentKey[0], Value: cache.PresentValue[0]}
	}
	return m
}

// attention applies attention layer i (the teacher's Phi attention under
// the student's names) to the normed input u. FormMatrix builds attention
// from standard ops and returns the probabilities as the layer's matrix.
func attention(p layers.Params, c Config, i int, u, cos, sin *graphs.Value, form Form, st *State) MixerOut {
	return TeacherAttention(p, i, phi.LayerPrefix(i)+".self_attn.", form, st, func(p layers.Params, cache *family.Cache) (out, probs *graphs.Value) {
		return phi.Attention(p, c.phiConfig(), i, u, cos, sin, cache, form == FormMatrix)
	})
}
