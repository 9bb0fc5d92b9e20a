package phi_test

import (
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phi"
	"mohawk/tensors"
)

// TestLowPrecisionForward checks Options.LowPrecision (Stage 3's frozen
// teacher) under the bfloat16 precisions: in the native graph every node
// on the [B, T, Hidden] stream is bfloat16 but the embedding's lookup and
// the logits (float32) and the attention's (float16, ORT's CUDA kernel has
// no bfloat16), and the
// graph is valid ONNX (the CPU provider refuses it only for a missing
// kernel); the emulated graph's logits stay within bfloat16 rounding of
// float32 without equalling them. Weights stored in bfloat16 enter the
// native graph uncast.
func TestLowPrecisionForward(t *testing.T) {
	c := phi.Config{Vocab: 64, Hidden: 32, Layers: 2, Heads: 4, Intermediate: 64, RotaryDim: 4, RopeTheta: 10000, Eps: 1e-5}
	build := func(p graphs.MatMulPrecision, low bool) *graphs.Graph {
		g := graphs.New("phi_low")
		g.SetMatMulPrecision(p)
		ids := g.Input("ids", tensors.Int64, graphs.S(2, 8))
		get := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value { return g.Input(name, tensors.Float32, shape) })
		g.Output("logits", phi.Forward(get, c, ids, phi.Options{LowPrecision: low}).Logits)
		return g
	}
	native := build(graphs.MatMulBFloat16, true)
	stream := 0
	for _, n := range native.Nodes() {
		out := n.Outputs[0]
		if n.Op == "Cast" || n.Op == "Gather" || out.Rank() != 3 || out.Shape[2].K != c.Hidden {
			continue
		}
		stream++
		want := tensors.BFloat16
		if n.Op == "MultiHeadAttention" {
			want = tensors.Float16
		}
		if out.DType != want {
			t.Errorf("native %s on the [.., %d] stream is %v, want %v", n.Op, c.Hidden, out.DType, want)
		}
	}
	if stream < 4*c.Layers {
		t.Errorf("only %d nodes on the stream", stream)
	}
	if _, names := native.Outputs(); native.InputNamed("ids") == nil || len(names) != 1 {
		t.Fatalf("outputs %v", names)
	}
	if out, _ := native.Outputs(); out[0].DType != tensors.Float32 {
		t.Errorf("logits are %v, want float32", out[0].DType)
	}
	graphtest.WantMissingKernel(t, native)

	rng := rand.New(rand.NewPCG(5, 6))
	weights := map[string]*tensors.Tensor{}
	for name, shape := range c.ParamShapes() {
		weights[name] = graphtest.Random(rng, -0.3, 0.3, shape.Sizes()...).AsFloat32()
	}
	// Weights stored in the graph's low precision (Stage 3's teacher) enter
	// without casts.
	stored := graphs.New("phi_low_stored")
	stored.SetMatMulPrecision(graphs.MatMulBFloat16)
	stored.Output("logits", phi.Forward(&layers.Frozen{G: stored, Tensors: weights, DType: stored.LowDType()}, c,
		stored.Input("ids", tensors.Int64, graphs.S(2, 8)), phi.Options{LowPrecision: true}).Logits)
	for _, n := range stored.Nodes() {
		if n.Op == "Cast" && n.Inputs[0].IsInitializer() {
			t.Errorf("stored bfloat16 weights: %v is cast", n.Inputs[0])
		}
	}
	graphtest.WantMissingKernel(t, stored)

	ids := make([]int64, 16)
	for i := range ids {
		ids[i] = rng.Int64N(c.Vocab)
	}
	feeds := map[string]*tensors.Tensor{"ids": tensors.FromInt64([]int64{2, 8}, ids)}
	for name, w := range weights {
		feeds[name] = w
	}
	graphtest.WantBF16Close(t, "", graphtest.Run(t, build(graphs.MatMulBFloat16Emulated, true), feeds), graphtest.Run(t, build(graphs.MatMulFloat32, false), feeds))
}
