// Package train builds training-step graphs: forward, loss, backward,
// gradient accumulation over micro-batches, global-norm clipping and the
// AdamW update, all in one ONNX graph, so one ordinary session run performs
// a whole optimizer step and parameters and optimizer state never need to
// leave the device between ops of a step.
//
// One run of a step graph performs S optimizer steps of K micro-batches
// each (S > 1 keeps parameters and moments inside the graph, as ONNX Loop
// state, across steps). Interface (names are fixed so runners can bind them):
//   - inputs: every trainable parameter under its own name, its AdamW moments
//     "<name>.exp_avg" and "<name>.exp_avg_sq", the batches (BatchName,
//     [S, K, micro-batch shape...]), the learning rate of each step LRName
//     [S] and the 1-based number of the first step StepName [1] (float);
//   - outputs: "<name>.new", "<name>.exp_avg.new", "<name>.exp_avg_sq.new" per
//     parameter, LossName [S, K] (each micro-batch's loss), GradNormName [S]
//     (global norm before clipping), FiniteName [S] (bool: the step's loss
//     and gradients were finite and it was applied) and GradSumSqName [S, P]
//     (per-parameter squared gradient norms, in parameter order, to name the
//     first non-finite tensor).
//
// A step with non-finite loss or gradients is not applied, nor is any later
// step of the same run: the outputs hold the state after the last good
// step, and FiniteName is false from the bad step on.
//
// Data parallelism (Spec.AllReduce): each rank feeds its own batches, and
// graphs.AllReduce nodes average the accumulated gradients and the loss
// sum over the ranks before clipping and the update, so every rank applies
// the same update; LossName stays per rank, while GradNormName,
// GradSumSqName and FiniteName, computed from the averaged gradients, are
// the group's.
//
// Place in the dependency order: train imports graphs and graphs/layers.
package train
