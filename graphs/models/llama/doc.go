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
// Status: the family's graphs, config reading and rotary scaling are here.
// TestReferenceForward and TestReferenceGradients compare logits, hidden
// states, attention probabilities, attention outputs, the loss and
// gradients with transformers on the five tiny models in testdata/ (made by
// bench/torch/make_llama_refs.py: Llama with GQA and llama3 scaling, with
// biases and linear scaling, with YaRN; Qwen2; Mistral with a sliding
// window); the rotary scalings, the window mask and head repetition are
// also tested against hand-derived values. The model-family registry that
// lets the pipeline pick these graphs from a config.json (issue 17) is not
// wired yet.
//
// Place in the dependency order: llama imports graphs, graphs/layers and
// hfconfig. It panics with *graphs.Error while building (graphs.Try
// converts); Config.Validate returns errors.
package llama
