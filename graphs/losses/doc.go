// Package losses builds the training objectives of mohawk as graph values:
// token cross-entropy, soft cross-entropy and KL divergence against teacher
// distributions (with temperature), the per-(batch, head) Frobenius distance
// of mixing matrices (Stage 1), the per-token L2 distance of hidden states
// (Stage 2) and mean squared error. Every loss is a float scalar of rank 0,
// the mean over its examples, ready for graphs.Gradients.
//
// Place in the dependency order: losses imports graphs only, and panics with
// *graphs.Error on misuse like every graph builder.
package losses
