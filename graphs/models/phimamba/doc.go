// Package phimamba builds the Phi-Mamba student of MOHAWK
// (../shared/docs/mohawk-spec.md §2): Phi's parallel block with the
// attention replaced by the "discrete Mamba-2" mixer, under the parameter
// names of the authors' released checkpoints (backbone.layers.i.mixer.*).
//
// The mixer has three graph forms over one parameter set:
//   - Matrix: the materialised mixing matrix M = L∘(C·Bᵀ) + D·I [B, H, T, T]
//     (the Stage 1 object);
//   - SSD: the chunked state-space-duality algorithm, linear in T, which also
//     takes an initial state and returns the final conv and SSM states
//     (training, evaluation, prefill);
//   - Step: the recurrent single-token update with explicit states.
//
// All segment sums are masked cumulative sums inside a chunk, never
// differences of a long global cumsum.
//
// A hybrid student (Config.Attn) keeps the teacher's Phi attention in the
// listed layers, under backbone.layers.i.mixer.self_attn.* (the authors'
// hybrid naming); every form then runs those layers as attention (Step and
// SSD-with-states over a KV cache in State.Key/Value), and config.json
// lists them as modules.mixers.phi_attention blocks.
//
// The package registers the "phi" model family (package family):
// PhiForCausalLM teachers (Teacher) with Phi-Mamba students (Config).
//
// Place in the dependency order: phimamba imports graphs, graphs/layers,
// graphs/models/family, graphs/models/phi (for the attention of hybrids
// and the family's teacher), hfconfig and tensors. Builders panic with *graphs.Error; Config validation returns
// errors.
package phimamba
