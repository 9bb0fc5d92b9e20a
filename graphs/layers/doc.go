// Package layers builds the composite blocks of mohawk's models from graphs
// ops: Linear (Gemm), LayerNorm, GELU-tanh MLP, partial rotary embedding,
// causal softmax attention, causal masks, and the Params interface through
// which model builders obtain their weights.
//
// Place in the dependency order: layers imports graphs and tensors only.
// Like graphs, it panics with *graphs.Error on misuse while building;
// callers turn that into an error with graphs.Try.
package layers
