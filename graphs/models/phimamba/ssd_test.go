package phimamba_test

import (
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// TestSSDReference runs the chunked SSD on the Mamba authors' minimal-SSD
// inputs (called there in discretised form: ssd(x·dt, A·dt, B, C), chunk 16)
// and compares outputs, final state and the gradients of Σ y ⊙ loss_weight.
func TestSSDReference(t *testing.T) {
	ref := shareddata.Tensors(t, "reference", "ssd", "ssd_reference.safetensors")
	g := graphs.New("ssd_reference")
	in := map[string]*graphs.Value{}
	for _, n := range []string{"x", "dt", "A", "B", "C"} {
		in[n] = g.Input(n, tensors.Float32, graphs.StaticShape(ref[n].Shape))
	}
	if err := graphs.Try(func() {
		x := graphs.Mul(in["x"], graphs.Unsqueeze(in["dt"], -1))
		logA := graphs.Mul(in["A"], in["dt"])
		y, final := phimamba.SSD(x, logA, in["B"], in["C"], 16, nil)
		g.Output("y", y)
		g.Output("final_state", graphs.Transpose(final, 0, 1, 3, 2)) // reference layout [B, H, P, N]
		loss := graphs.ReduceSumAll(graphs.Mul(y, g.Const(ref["loss_weight"])))
		wrt := []*graphs.Value{in["x"], in["dt"], in["A"], in["B"], in["C"]}
		for i, gr := range graphs.Gradients(loss, wrt...) {
			g.Output("grad."+[]string{"x", "dt", "A", "B", "C"}[i], gr)
		}
	}); err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*tensors.Tensor{}
	for n := range in {
		feeds[n] = ref[n]
	}
	got := graphtest.Run(t, g, feeds)
	for _, name := range []string{"y", "final_state", "grad.x", "grad.dt", "grad.A", "grad.B", "grad.C"} {
		shareddata.WantClose(t, name+" vs the reference SSD", got[name], ref[name], 1e-4)
	}
}
