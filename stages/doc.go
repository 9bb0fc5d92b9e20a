// Package stages implements the steps of a MOHAWK run: pretrain (plain
// language-model training), orient (Stage 1, matrix orientation), align
// (Stage 2, hidden-state alignment), distill (Stage 3, knowledge
// distillation), eval (perplexity, last-word accuracy, zero-shot multiple
// choice) and export.
//
// Each training stage builds one ONNX step graph (teacher forward with the
// teacher's weights as frozen initializers, student forward, loss, backward,
// gradient accumulation and the AdamW update) and runs it once per optimizer
// step through the runtime package; teacher activations never leave the
// graph. The shared loop (Trainer) handles the schedule, evaluation,
// checkpoints, interruption and non-finite values.
//
// Place in the dependency order: pipeline → stages → graphs/..., export,
// runtime, data. Stages never read configuration files: pipeline hands each
// stage its typed settings, and implements the Checkpointer and Logger
// interfaces stages use. Errors are returned, wrapped with the stage name;
// graph-building panics are converted with graphs.Try at this boundary.
package stages
