package llamba

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"mohawk/graphs/models/llama"
	"mohawk/tensors"
)

// TransferMap maps the student's parameters that a Llama-family teacher t
// supplies unchanged to the teacher's names: the embedding, every RMSNorm
// (input_layernorm and post_attention_layernorm per layer, the final
// model.norm), the SwiGLU MLPs, an untied LM head and a hybrid's attention
// layers. It refuses students whose sizes (or a hybrid's attn_cfg) differ
// from the teacher's, listing every difference.
func TransferMap(c Config, t llama.Config) (map[string]string, error) {
	var errs []error
	for _, f := range []struct {
		key     string
		s, teac any
	}{
		{"d_model", c.DModel, t.Hidden}, {"padded vocab_size", c.Vocab, t.Vocab}, {"n_layer", c.Layers, t.Layers},
		{"mlp_cfg.intermediate_size", c.Inner, t.Intermediate}, {"mlp_cfg.bias", c.MLPBias, t.MLPBias}, {"tie_embeddings", c.Tied, t.Tied},
	} {
		if f.s != f.teac {
			errs = append(errs, fmt.Errorf("student %s %v differs from the teacher's %v; weight transfer needs them equal", f.key, f.s, f.teac))
		}
	}
	if len(c.Attn.Layers) > 0 && !reflect.DeepEqual(c.AttnTeacher, t) {
		errs = append(errs, errors.New("student attn_cfg differs from the teacher's config.json; a hybrid's attention layers need the teacher they were made for"))
	}
	if c.HeadBias {
		errs = append(errs, errors.New("student lm_head_bias is true, but Llama-family heads have no bias to transfer; set it to false"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m := map[string]string{
		"backbone.embedding.weight":       "model.embed_tokens.weight",
		"backbone.final_layernorm.weight": "model.norm.weight",
	}
	if !c.Tied {
		m["lm_head.weight"] = "lm_head.weight"
	}
	for i := 0; i < c.Layers; i++ {
		s, tp := LayerPrefix(i), llama.LayerPrefix(i)
		names := []string{"input_layernorm.weight", "post_attention_layernorm.weight",
			"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}
		if c.MLPBias {
			names = append(names, "mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias")
		}
		for _, n := range names {
			m[s+"."+n] = tp + "." + n
		}
	}
	c.attentionTransfer(m)
	return m, nil
}

// CheckAttentionInit reports whether AttentionInit can map teacher t's
// attention onto student c: one mixer head per query head with the head
// dim as d_state, and a conv bias to hold q/k/v biases.
func CheckAttentionInit(t llama.Config, c Config) error {
	if c.VHeads != t.Heads || c.QKHeads != t.Heads || c.DState != t.HeadDim || c.HeadDim() != t.HeadDim || c.DModel != t.Hidden {
		return fmt.Errorf("attention init needs n_v_heads = n_qk_heads = the teacher's %d heads, d_state = head dim = %d and d_model = %d "+
			"(the student has n_v_heads %d, n_qk_heads %d, d_state %d, head dim %d, d_model %d); size it with llamba.ForTeacher",
			t.Heads, t.HeadDim, t.Hidden, c.VHeads, c.QKHeads, c.DState, c.HeadDim(), c.DModel)
	}
	if t.QKVBias && !c.ConvBias {
		return fmt.Errorf("the teacher has q/k/v biases, which attention init puts in conv1d.bias; set ssm_cfg.conv_bias true")
	}
	return nil
}

// AttentionInit overwrites, in place, the tensors of student weights w that
// hold layer i's mixer projections and conv with their initialisation from
// the teacher's grouped-query attention (teacher config t, weights tw under
// Hugging Face names). With r = Heads/KVHeads query
// heads per key/value head, mixer head h (n_v_heads = n_qk_heads = Heads):
//
//	C head h ← q_proj head h
//	B head h ← k_proj head h/r
//	x head h ← v_proj head h/r
//
// as rows of in_proj's x|B|C block; conv1d becomes the identity (last tap
// 1, others 0) and its bias takes the q/k/v biases in the same layout
// (zero without them), so that x, B and C are exactly the teacher's v, k
// and q; out_proj ← o_proj. The z and a rows of in_proj, z_bias and D are
// left as they are. Not carried over: rotary embeddings, the softmax and
// its 1/√head_dim scale, and an o_proj bias (the mixer's out_proj has none).
func AttentionInit(t llama.Config, tw map[string]*tensors.Tensor, c Config, i int, w map[string]*tensors.Tensor) error {
	if err := CheckAttentionInit(t, c); err != nil {
		return err
	}
	hd, d, kv := t.HeadDim, t.Hidden, t.KVHeads
	q, k, v := t.Heads*hd, kv*hd, kv*hd
	tp := llama.LayerPrefix(i) + ".self_attn."
	get := func(name string, shape ...int64) ([]float32, error) {
		x, ok := tw[tp+name]
		if !ok {
			return nil, fmt.Errorf("attention init, layer %d: teacher tensor %s is missing", i, tp+name)
		}
		if !slices.Equal(x.Shape, shape) {
			return nil, fmt.Errorf("attention init, layer %d: teacher tensor %s has shape %v, want %v", i, tp+name, x.Shape, shape)
		}
		return x.Convert(tensors.Float32).Float32s(), nil
	}
	var errs []error
	must := func(name string, shape ...int64) []float32 {
		v, err := get(name, shape...)
		errs = append(errs, err)
		return v
	}
	wq, wk, wv, wo := must("q_proj.weight", q, d), must("k_proj.weight", k, d), must("v_proj.weight", v, d), must("o_proj.weight", d, q)
	bq, bk, bv := make([]float32, q), make([]float32, k), make([]float32, v)
	if t.QKVBias {
		bq, bk, bv = must("q_proj.bias", q), must("k_proj.bias", k), must("v_proj.bias", v)
	}
	sp := LayerPrefix(i) + ".mixer."
	ip, conv, out := w[sp+"in_proj.weight"], w[sp+"conv1d.weight"], w[sp+"out_proj.weight"]
	for _, s := range []struct {
		name string
		t    *tensors.Tensor
		want []int64
	}{{"in_proj.weight", ip, []int64{c.InProj(), d}}, {"conv1d.weight", conv, []int64{c.ConvChannels(), 1, c.DConv}}, {"out_proj.weight", out, []int64{d, c.DInner()}}} {
		if s.t == nil || s.t.DType != tensors.Float32 || !slices.Equal(s.t.Shape, s.want) {
			errs = append(errs, fmt.Errorf("attention init, layer %d: student tensor %s must be float32 %v", i, sp+s.name, s.want))
		}
	}
	var cb *tensors.Tensor
	if c.ConvBias {
		if cb = w[sp+"conv1d.bias"]; cb == nil || cb.DType != tensors.Float32 || !slices.Equal(cb.Shape, []int64{c.ConvChannels()}) {
			errs = append(errs, fmt.Errorf("attention init, layer %d: student tensor %sconv1d.bias must be float32 [%d]", i, sp, c.ConvChannels()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Head j of a block of per-head rows (weights: hd rows of d; biases: hd values).
	r := t.Heads / kv
	rows, bias := ip.Float32s(), []float32(nil)
	if cb != nil {
		bias = cb.Float32s()
	}
	block := func(start int64, src, srcBias []float32, head func(h int64) int64) {
		for h := int64(0); h < t.Heads; h++ {
			from, to := head(h)*hd, start+h*hd
			copy(rows[to*d:(to+hd)*d], src[from*d:(from+hd)*d])
			if bias != nil {
				copy(bias[to:to+hd], srcBias[from:from+hd])
			}
		}
	}
	group := func(h int64) int64 { return h / r }
	own := func(h int64) int64 { return h }
	block(0, wv, bv, group)          // x
	block(c.DInner(), wk, bk, group) // B
	block(c.DInner()+q, wq, bq, own) // C
	taps := conv.Float32s()
	for ch := int64(0); ch < c.ConvChannels(); ch++ {
		for j := int64(0); j < c.DConv; j++ {
			taps[ch*c.DConv+j] = 0
		}
		taps[ch*c.DConv+c.DConv-1] = 1
	}
	copy(out.Float32s(), wo)
	return nil
}
