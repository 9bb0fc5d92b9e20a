// Package llamba builds the Llamba student of MOHAWK for Llama-family
// teachers (Cartesia's Llamba-1B/3B/8B, distilled from Llama 3.x): the
// Llama block — RMSNorm → mixer → residual, RMSNorm → SwiGLU MLP →
// residual — with the attention replaced by the discrete Mamba-2 mixer of
// package phimamba in every layer, a final RMSNorm and an LM head tied to
// the embedding or not, under the parameter names of Cartesia's
// checkpoints (backbone.layers.i.mixer.*, backbone.layers.i.mlp.gate_proj,
// backbone.final_layernorm, lm_head).
//
// The mixer may share each B/C head among n_v_heads/n_qk_heads value heads;
// its three graph forms (materialised mixing matrix, chunked SSD,
// recurrent step) are phimamba's. Config reads and writes Cartesia's
// config.json through hfconfig.Llamba. ForTeacher sizes a student for a
// llama.Config, TransferMap names the teacher tensors it copies and
// AttentionInit maps a teacher layer's grouped-query attention onto a
// mixer (docs/design.md, "Llama teachers and Llamba students"). A hybrid
// (Config.Attn.Layers) keeps the teacher's attention, built by
// llama.Attention, in those layers (hybrid.go).
//
// The package registers the "llama" model family (package family):
// LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM teachers
// (Teacher) with Llamba students (Config), so the pipeline reaches them
// through the registry.
//
// Place in the dependency order: llamba imports graphs, graphs/layers,
// graphs/models/phimamba, graphs/models/llama (for the teacher's config
// and names), hfconfig and tensors. Builders panic with *graphs.Error;
// config and weight functions return errors.
package llamba
