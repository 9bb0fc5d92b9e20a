// Package phi builds the Phi-1.5 teacher (Hugging Face PhiForCausalLM) as a
// graph: embedding, parallel attention+MLP blocks with partial rotary
// embeddings, final LayerNorm and a biased LM head, exactly as
// ../shared/docs/mohawk-spec.md §1 describes, with optional per-layer
// outputs (hidden states, attention probabilities, attention outputs, the
// normalised layer inputs) that the distillation stages use as targets, and
// an optional KV cache for decoding.
//
// Parameters are requested under their Hugging Face names
// ("model.layers.3.self_attn.q_proj.weight"), so a checkpoint's tensors can
// be served to the builder unchanged.
//
// Place in the dependency order: phi imports graphs, graphs/layers and
// hfconfig. It panics with *graphs.Error while building (graphs.Try
// converts); Config.Validate returns errors.
package phi
