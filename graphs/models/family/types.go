package family

import (
	"fmt"

	"mohawk/graphs"
)

// TeacherOptions select what a teacher's Forward builds beyond the logits.
type TeacherOptions struct {
	// Layers, when positive, stops after that many layers (for stages that
	// only need the first layers' targets); logits are then not built.
	Layers int
	// NoLogits skips the final norm and LM head.
	NoLogits bool
	// Cache, when set, supplies past keys/values per layer ([B, KV heads,
	// Tpast, head dim]) and receives the presents; positions start at Tpast.
	Cache *Cache
	// ExplicitAttention builds attention from standard ONNX ops and keeps
	// each layer's probabilities in TeacherOutputs.Attn: Stage 1's target,
	// and exports meant for any ONNX runtime. Without it, and without a
	// cache, a float32 model's attention may be one fused ONNX Runtime node
	// (graphs.CausalMultiHeadAttention) that never materialises the
	// [B, H, T, T] scores, and Attn holds nils.
	ExplicitAttention bool
	// LowPrecision runs the whole model in the graph's low precision
	// (graphs.ToLowPrecision): under a bfloat16 MatMulPrecision the residual
	// stream, norms, rotary and products are bfloat16 and only the logits
	// are widened to float32 (the frozen teacher of Stage 3).
	LowPrecision bool
	// LowLogits, with LowPrecision, leaves the logits in the graph's low
	// precision too (bfloat16 under a bfloat16 MatMulPrecision: half the
	// bytes of float32 logits).
	LowLogits bool
}

// Cache is a KV cache for decoding: inputs Past{Key,Value}[i] and, after
// Forward, outputs Present{Key,Value}[i] (past and new positions), each
// [B, KV heads, T, head dim].
type Cache struct {
	PastKey, PastValue       []*graphs.Value
	PresentKey, PresentValue []*graphs.Value
}

// TeacherOutputs are what a teacher's Forward builds.
type TeacherOutputs struct {
	Logits *graphs.Value // [B, T, V]
	// Hidden[i] is the residual stream entering layer i; Hidden[L] leaves the
	// last layer (before the final norm).
	Hidden []*graphs.Value
	// Normed[i] is the input of layer i's attention block (its norm of
	// Hidden[i]): what the student's mixer i sees in Stages 1 and 2.
	Normed []*graphs.Value
	// Attn[i] are layer i's attention probabilities [B, Heads, T, T], keys
	// repeated per group (nil unless ExplicitAttention is set or a cache
	// is given).
	Attn []*graphs.Value
	// AttnOut[i] is layer i's attention block output (after the output
	// projection) [B, T, D]: Stage 2's target.
	AttnOut []*graphs.Value
	// MLPOut[i] is layer i's MLP output [B, T, D].
	MLPOut []*graphs.Value
	// FinalNormed is the final norm of Hidden[L] when logits are built.
	FinalNormed *graphs.Value
}

// Form selects the graph form of a student's mixer.
type Form int

// The three forms of the mixer.
const (
	FormSSD    Form = iota // chunked SSD (linear in T)
	FormMatrix             // materialised mixing matrix (quadratic)
	FormStep               // recurrent single-token step
)

func (f Form) String() string {
	switch f {
	case FormSSD:
		return "ssd"
	case FormMatrix:
		return "matrix"
	case FormStep:
		return "step"
	}
	return fmt.Sprintf("form(%d)", int(f))
}

// State is a student layer's recurrent state: conv [B, ConvChannels,
// DConv−1] (the last DConv−1 pre-conv inputs) and ssm [B, H, N, P] for a
// mixer layer; key and value [B, Heads, T, HeadDim] (the KV cache) for an
// attention layer of a hybrid student.
type State struct {
	Conv, SSM  *graphs.Value
	Key, Value *graphs.Value
}

// MixerOut is what a student's mixer returns.
type MixerOut struct {
	Out    *graphs.Value // [B, T, D] after out_proj
	Matrix *graphs.Value // [B, H, T, T], FormMatrix only
	State  State         // final states (FormSSD with states, FormStep)
}

// StudentOptions select the student's form and extra outputs.
type StudentOptions struct {
	Form Form
	// States are per-layer incoming states (FormSSD: optional, enables state
	// outputs; FormStep: required).
	States []State
	// Layers, when positive, builds only the first layers (no logits).
	Layers int
	// NoLogits skips the final norm and LM head.
	NoLogits bool
}

// StudentOutputs are what a student's Forward builds.
type StudentOutputs struct {
	Logits   *graphs.Value   // [B, T, Vocab]
	Hidden   []*graphs.Value // residual stream entering each layer, then the last layer's output
	Normed   []*graphs.Value // the mixer's input of each layer
	MixerOut []*graphs.Value // [B, T, D] per layer
	MLPOut   []*graphs.Value
	Matrix   []*graphs.Value // FormMatrix: [B, H, T, T] per layer
	States   []State         // final states per layer, when incoming states were given
}
