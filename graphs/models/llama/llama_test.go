package llama_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/llama"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// The references in testdata/ were made by transformers with
// bench/torch/make_llama_refs.py (testdata/*/meta.json says which
// versions): one tiny random model per family and feature.
var families = []string{"llama-gqa-llama3", "llama-linear-bias", "llama-yarn", "qwen2", "mistral-window"}

// load reads a reference family's config, weights and reference tensors.
func load(t *testing.T, family string) (llama.Config, map[string]*tensors.Tensor, map[string]*tensors.Tensor) {
	t.Helper()
	dir := filepath.Join("testdata", family)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := hfconfig.ParseLlama(data, filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := llama.FromHF(h)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c, shareddata.Load(t, filepath.Join(dir, "model.safetensors")), shareddata.Load(t, filepath.Join(dir, "reference.safetensors"))
}

// check fails t unless got is within tol of want (NaN and Inf fail).
func check(t *testing.T, name string, got, want *tensors.Tensor, tol float64) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("%s: missing (got %v, want %v)", name, got != nil, want != nil)
	}
	d := shareddata.MaxAbsDiff(got, want)
	t.Logf("%s: max |Δ| = %.3g", name, d)
	if !(d <= tol) {
		t.Errorf("%s differs from transformers by %.3g (tolerance %g)", name, d, tol)
	}
}

// TestReferenceForward compares logits, hidden states, attention
// probabilities and attention block outputs with transformers' float32
// eager forward, for the explicit and the fused attention forms.
func TestReferenceForward(t *testing.T) {
	for _, family := range families {
		t.Run(family, func(t *testing.T) {
			c, weights, ref := load(t, family)
			g := graphs.New("llama_reference")
			ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
			if err := graphs.Try(func() {
				params := &layers.Frozen{G: g, Tensors: weights, DType: tensors.Float32}
				out := llama.Forward(params, c, ids, llama.Options{ExplicitAttention: true})
				g.Output("logits", out.Logits)
				for i := 0; i < c.Layers; i++ {
					g.Output(fmt.Sprintf("hidden_states.%d", i), out.Hidden[i])
					g.Output(fmt.Sprintf("attentions.%d", i), out.Attn[i])
					g.Output(fmt.Sprintf("attn_out.%d", i), out.AttnOut[i])
				}
				// transformers records the last hidden state after the final norm.
				g.Output(fmt.Sprintf("hidden_states.%d", c.Layers), out.FinalNormed)
				fused := llama.Forward(params, c, ids, llama.Options{})
				g.Output("logits_fused", fused.Logits)
			}); err != nil {
				t.Fatal(err)
			}
			got := graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ref["input_ids"]})
			check(t, "logits", got["logits"], ref["logits"], 1e-4)
			check(t, "logits (fused attention)", got["logits_fused"], ref["logits"], 1e-4)
			for i := 0; i <= c.Layers; i++ {
				n := fmt.Sprintf("hidden_states.%d", i)
				check(t, n, got[n], ref[n], 1e-4)
			}
			for i := 0; i < c.Layers; i++ {
				for _, n := range []string{fmt.Sprintf("attentions.%d", i), fmt.Sprintf("attn_out.%d", i)} {
					check(t, n, got[n], ref[n], 1e-5)
				}
			}
		})
	}
}

// TestReferenceGradients checks the mean next-token cross-entropy and the
// gradients transformers recorded, relative to each gradient's largest
// entry.
func TestReferenceGradients(t *testing.T) {
	for _, family := range families {
		t.Run(family, func(t *testing.T) {
			c, weights, ref := load(t, family)
			g := graphs.New("llama_grads")
			ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
			params := &layers.Inputs{G: g, DType: tensors.Float32}
			if err := graphs.Try(func() {
				out := llama.Forward(params, c, ids, llama.Options{})
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
			check(t, "loss", got["loss"], ref["loss"], 1e-5)
			n := 0
			for name, want := range ref {
				if !strings.HasPrefix(name, "grad.") {
					continue
				}
				n++
				scale := shareddata.MaxAbsDiff(want, tensors.Zeros(want.DType, want.Shape...))
				check(t, name, got[name], want, 1e-4*scale)
			}
			if n < 6 {
				t.Errorf("reference holds %d gradients, want at least 6", n)
			}
		})
	}
}
