// Package llama builds Llama-family teachers (Hugging Face
// LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM) as graphs:
// embedding, pre-norm blocks of RMSNorm → grouped-query attention with full
// rotary embeddings (default, linear, llama3 or YaRN scaling) → residual,
// RMSNorm → SwiGLU MLP → residual, a final RMSNorm and the LM head (tied to
// the embedding or not), with optional per-layer outputs (hidden states,
// normalised mixer inputs, attention probabilities and block outputs) that
// the distillation stages use as targets, and an optional KV cache whose
// keys and values keep the model's own number of key/value heads.
//
// Parameters are requested under their Hugging Face names
// ("model.layers.3.self_attn.q_proj.weight"), so a checkpoint's tensors can
// be served to the builder unchanged.
//
// Status: the family's graphs, config reading and rotary scaling are here;
// the rotary scalings (TestFrequencies), the window mask and head
// repetition (graphs/layers) and the configs (hfconfig) are tested against
// hand-derived values, but no test yet compares the graphs with the
// transformers references that bench/torch/make_llama_refs.py makes; the
// model-family registry that lets the pipeline pick them from a
// config.json (issue 17) is not wired yet.
//
// Place in the dependency order: llama imports graphs, graphs/layers and
// hfconfig. It panics with *graphs.Error while building (graphs.Try
// converts); Config.Validate returns errors.
package llama
