package phi_test

import (
	"fmt"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/phi"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// tinyConfig is ../shared/reference/phi-tiny-en's architecture.
var tinyConfig = phi.Config{Vocab: 8192, Hidden: 256, Layers: 6, Heads: 8, Intermediate: 1024, RotaryDim: 16, RopeTheta: 10000, Eps: 1e-5}

// TestReferenceForward compares logits, hidden states and attention
// probabilities with Hugging Face transformers' fp32 outputs.
func TestReferenceForward(t *testing.T) {
	weights := shareddata.Load(t, shareddata.Path(t, "reference", "phi-tiny-en"))
	ref := shareddata.Tensors(t, "reference", "phi-tiny-en", "reference.safetensors")
	g := graphs.New("phi_reference")
	ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
	var out *phi.Outputs
	if err := graphs.Try(func() {
		params := &layers.Frozen{G: g, Tensors: weights, DType: tensors.Float32}
		out = phi.Forward(params, tinyConfig, ids, phi.Options{ExplicitAttention: true})
		g.Output("logits", out.Logits)
		for i, h := range out.Hidden {
			g.Output(fmt.Sprintf("hidden_states.%d", i), h)
		}
		g.Output("final_normed", out.FinalNormed)
		for i, a := range out.Attn {
			g.Output(fmt.Sprintf("attentions.%d", i), a)
		}
		// The same model with fused attention (no probabilities).
		fused := phi.Forward(params, tinyConfig, ids, phi.Options{})
		g.Output("logits_fused", fused.Logits)
	}); err != nil {
		t.Fatal(err)
	}
	got := graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ref["input_ids"]})
	check := func(name string, gotT, want *tensors.Tensor, tol float64) {
		shareddata.WantClose(t, name+" vs transformers", gotT, want, tol)
	}
	check("logits", got["logits"], ref["logits"], 1e-4)
	check("logits (fused attention)", got["logits_fused"], ref["logits"], 1e-4)
	for i := 0; i < 6; i++ {
		check(fmt.Sprintf("hidden_states.%d", i), got[fmt.Sprintf("hidden_states.%d", i)], ref[fmt.Sprintf("hidden_states.%d", i)], 1e-4)
		check(fmt.Sprintf("attentions.%d", i), got[fmt.Sprintf("attentions.%d", i)], ref[fmt.Sprintf("attentions.%d", i)], 1e-5)
	}
	// transformers 5 records the last hidden state after the final LayerNorm.
	check("hidden_states.6", got["final_normed"], ref["hidden_states.6"], 1e-4)
}

// TestReferenceGradients checks the mean next-token cross-entropy and its
// gradients for the five parameters transformers recorded.
func TestReferenceGradients(t *testing.T) {
	weights := shareddata.Load(t, shareddata.Path(t, "reference", "phi-tiny-en"))
	ref := shareddata.Tensors(t, "reference", "phi-tiny-en", "reference.safetensors")
	g := graphs.New("phi_grads")
	ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
	params := &layers.Inputs{G: g, DType: tensors.Float32}
	if err := graphs.Try(func() {
		out := phi.Forward(params, tinyConfig, ids, phi.Options{})
		loss := losses.TokenCrossEntropy(graphs.SliceAxis(out.Logits, 1, 0, -1), graphs.SliceAxis(ids, 1, 1, graphs.End))
		g.Output("loss", graphs.Reshape(loss, 1))
		var wrt []*graphs.Value
		for _, n := range params.Names() {
			wrt = append(wrt, params.Value(n))
		}
		for i, gr := range graphs.Gradients(loss, wrt...) {
			g.Output("grad."+params.Names()[i], gr)
		}
	}); err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*tensors.Tensor{"input_ids": ref["input_ids"]}
	for _, n := range params.Names() {
		feeds[n] = weights[n].AsFloat32()
	}
	got := graphtest.Run(t, g, feeds)
	shareddata.WantCloseRel(t, "loss vs transformers", got["loss"], ref["loss"], 1e-4)
	n := 0
	for name, want := range ref {
		if len(name) < 5 || name[:5] != "grad." {
			continue
		}
		n++
		shareddata.WantCloseRel(t, name+" vs transformers", got[name], want, 1e-4)
	}
	if n != 5 {
		t.Errorf("reference holds %d gradients, want 5", n)
	}
}
