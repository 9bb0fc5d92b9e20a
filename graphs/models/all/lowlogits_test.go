package all_test

import (
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// TestLowLogits checks that every family's teacher, run in low precision
// under a bfloat16 MatMulPrecision, leaves its logits bfloat16 with
// TeacherOptions.LowLogits and widens them to float32 without (Stage 3
// reads them whole or a chunk at a time).
func TestLowLogits(t *testing.T) {
	for _, f := range family.All() {
		tc, err := f.ScratchTeacher(family.Arch{Vocab: 40, Hidden: 16, Layers: 2, Heads: 4, Intermediate: 32, EOS: 0})
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		for _, low := range []bool{false, true} {
			g := graphs.New("teacher")
			g.SetMatMulPrecision(graphs.MatMulBFloat16)
			shapes := tc.ParamShapes()
			p := layers.ParamFunc(func(name string, _ graphs.Shape) *graphs.Value {
				return g.Input(name, tensors.Float32, shapes[name])
			})
			var logits *graphs.Value
			if err := graphs.Try(func() {
				ids := g.Input("ids", tensors.Int64, graphs.S(2, 8))
				logits = tc.Forward(p, ids, family.TeacherOptions{LowPrecision: true, LowLogits: low}).Logits
			}); err != nil {
				t.Fatalf("%s: %v", f.Name(), err)
			}
			want := tensors.Float32
			if low {
				want = tensors.BFloat16
			}
			if logits.DType != want {
				t.Errorf("%s teacher, LowLogits %v: logits are %v, want %v", f.Name(), low, logits.DType, want)
			}
		}
	}
}
