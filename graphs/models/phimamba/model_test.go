package phimamba_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

func loadStudent(t *testing.T, name string) (phimamba.Config, map[string]*tensors.Tensor) {
	t.Helper()
	dir := shareddata.Path(t, "reference", name)
	c, err := phimamba.LoadConfig(dir, 0, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	return c, shareddata.Load(t, dir+"/model.safetensors")
}

func studentLogits(t *testing.T, c phimamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor, form phimamba.Form) *tensors.Tensor {
	t.Helper()
	g := graphs.New("student_" + form.String())
	in := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
	if err := graphs.Try(func() {
		out := phimamba.Forward(&layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}, c, in, phimamba.Options{Form: form})
		g.Output("logits", out.Logits)
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ids})["logits"]
}

// TestReferenceLogits loads students saved in the authors' layout and
// compares logits with the float64 reference implementation.
func TestReferenceLogits(t *testing.T) {
	for _, name := range []string{"phimamba-random", "phimamba-tiny-en"} {
		t.Run(name, func(t *testing.T) {
			c, w := loadStudent(t, name)
			ref := shareddata.Tensors(t, "reference", name, "reference.safetensors")
			if got, want := int64(len(w)), int64(len(c.ParamShapes())); got != want {
				t.Errorf("checkpoint has %d tensors, the config implies %d", got, want)
			}
			for _, form := range []phimamba.Form{phimamba.FormSSD, phimamba.FormMatrix} {
				shareddata.WantClose(t, fmt.Sprintf("%s (%v form) logits vs the reference", name, form), studentLogits(t, c, w, ref["input_ids"], form), ref["logits"], 1e-4)
			}
		})
	}
}

// mixerGraph builds layer 0's mixer of config c on input u [B, T, D] in a
// form; FormSSD and FormStep graphs take and return states.
// tinyConfig is a one-layer student small enough for exact checks.
func tinyConfig() phimamba.Config {
	return phimamba.Config{Vocab: 64, VocabRaw: 64, PadMult: 8, DModel: 32, Layers: 1, DState: 8, VHeads: 4, QKHeads: 4,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 8, Activation: "silu", Inner: 64, Eps: 1e-5}
}

func randomWeights(c phimamba.Config, seed uint64) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	w := map[string]*tensors.Tensor{}
	for name, shape := range c.ParamShapes() {
		scale := 1 / math.Sqrt(float64(shape[len(shape)-1]))
		x := graphtest.Random(rng, -scale, scale, shape...)
		w[name] = x.AsFloat32()
	}
	return w
}

// TestFormsAgree runs the three mixer forms with the same random weights on
// the same random input and compares outputs (and final states), for lengths
// that are not multiples of the chunk size.
func TestFormsAgree(t *testing.T) {
	c := phimamba.Config{Vocab: 64, VocabRaw: 64, PadMult: 8, DModel: 32, Layers: 1, DState: 8, VHeads: 4, QKHeads: 4,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 8, Activation: "identity", Inner: 64, Eps: 1e-5}
	w := randomWeights(c, 1)
	for _, tc := range []struct{ batch, tlen int64 }{{2, 1}, {2, 5}, {2, 8}, {2, 21}, {1, 4096}} {
		batch, tlen := tc.batch, tc.tlen
		t.Run(fmt.Sprint("T=", tlen), func(t *testing.T) {
			if tlen > 1000 && testing.Short() {
				t.Skip("long sequence skipped in -short mode")
			}
			u := graphtest.Random(rand.New(rand.NewPCG(uint64(tlen), 3)), -1, 1, batch, tlen, c.DModel).AsFloat32()
			matrix := runMixer(t, c, w, u, phimamba.FormMatrix)
			ssd := runMixer(t, c, w, u, phimamba.FormSSD)
			step := runSteps(t, c, w, u)
			compare(t, "ssd vs matrix", ssd["out"], matrix["out"], 1e-5)
			compare(t, "step vs matrix", step["out"], matrix["out"], 1e-5)
			compare(t, "ssd vs step final ssm state", ssd["ssm"], step["ssm"], 1e-5)
			compare(t, "ssd vs step final conv state", ssd["conv"], step["conv"], 1e-6)
		})
	}
}

// compare checks max|a−b| ≤ tol·max|b| (relative in max-norm).
func compare(t *testing.T, what string, a, b *tensors.Tensor, tol float64) {
	t.Helper()
	shareddata.WantCloseRel(t, what, a, b, tol)
}

func runMixer(t *testing.T, c phimamba.Config, w map[string]*tensors.Tensor, u *tensors.Tensor, form phimamba.Form) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("mixer_" + form.String())
	x := g.Input("u", tensors.Float32, graphs.S("batch", "seq", c.DModel))
	if err := graphs.Try(func() {
		var st *phimamba.State
		if form == phimamba.FormSSD {
			z := phimamba.ZeroState(c, x, tensors.Float32)
			st = &z
		}
		m := phimamba.Mixer(&layers.Frozen{G: g, Tensors: w}, c, 0, x, form, st)
		g.Output("out", m.Out)
		if st != nil {
			g.Output("conv", m.State.Conv)
			g.Output("ssm", m.State.SSM)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{"u": u})
}

// runSteps feeds u one token at a time through the step form, carrying the
// states on the host.
func runSteps(t *testing.T, c phimamba.Config, w map[string]*tensors.Tensor, u *tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("mixer_step")
	b := u.Shape[0]
	x := g.Input("u", tensors.Float32, graphs.S("batch", 1, c.DModel))
	conv := g.Input("conv", tensors.Float32, graphs.S("batch", c.ConvChannels(), c.DConv-1))
	ssm := g.Input("ssm", tensors.Float32, graphs.S("batch", c.VHeads, c.DState, c.HeadDim()))
	if err := graphs.Try(func() {
		m := phimamba.Mixer(&layers.Frozen{G: g, Tensors: w}, c, 0, x, phimamba.FormStep, &phimamba.State{Conv: conv, SSM: ssm})
		g.Output("out", m.Out)
		g.Output("conv_next", m.State.Conv)
		g.Output("ssm_next", m.State.SSM)
	}); err != nil {
		t.Fatal(err)
	}
	s := graphtest.Session(t, g)
	convT := tensors.Zeros(tensors.Float32, b, c.ConvChannels(), c.DConv-1)
	ssmT := tensors.Zeros(tensors.Float32, b, c.VHeads, c.DState, c.HeadDim())
	tl, d := u.Shape[1], u.Shape[2]
	out := tensors.Zeros(tensors.Float32, b, tl, c.DModel)
	uf, of := u.Float32s(), out.Float32s()
	for i := int64(0); i < tl; i++ {
		tok := tensors.Zeros(tensors.Float32, b, 1, d)
		for bi := int64(0); bi < b; bi++ {
			copy(tok.Float32s()[bi*d:(bi+1)*d], uf[(bi*tl+i)*d:(bi*tl+i+1)*d])
		}
		r := graphtest.RunSession(t, s, g, map[string]*tensors.Tensor{"u": tok, "conv": convT, "ssm": ssmT})
		for bi := int64(0); bi < b; bi++ {
			copy(of[(bi*tl+i)*d:(bi*tl+i+1)*d], r["out"].Float32s()[bi*d:(bi+1)*d])
		}
		convT, ssmT = r["conv_next"], r["ssm_next"]
	}
	return map[string]*tensors.Tensor{"out": out, "conv": convT, "ssm": ssmT}
}

// TestMatrixParts checks Stage 1's parts against the materialised mixing
// matrix: K + diag(D) = M, and the diagonal computed from C and B is K's.
func TestMatrixParts(t *testing.T) {
	c := tinyConfig()
	w := randomWeights(c, 5)
	const b, tlen = 2, 21
	g := graphs.New("matrix_parts")
	x := g.Input("u", tensors.Float32, graphs.S(b, tlen, c.DModel))
	if err := graphs.Try(func() {
		p := &layers.Frozen{G: g, Tensors: w}
		m := phimamba.MatrixParts(p, c, 0, x)
		k, kDiag, d := m.Kernel(), m.Diag, m.D
		g.Output("m", phimamba.Mixer(p, c, 0, x, phimamba.FormMatrix, nil).Matrix)
		eye := make([]float32, tlen*tlen)
		for i := 0; i < tlen; i++ {
			eye[i*tlen+i] = 1
		}
		diagD := graphs.Mul(graphs.Reshape(d, -1, 1, 1), g.Const(tensors.FromFloat32([]int64{tlen, tlen}, eye)))
		g.Output("k_plus_d", graphs.Add(k, diagD))
		g.Output("k_diag", kDiag)
		g.Output("diag_of_k", losses.Diagonal(k))
	}); err != nil {
		t.Fatal(err)
	}
	u := graphtest.Random(rand.New(rand.NewPCG(9, 3)), -1, 1, b, tlen, c.DModel).AsFloat32()
	got := graphtest.Run(t, g, map[string]*tensors.Tensor{"u": u})
	compare(t, "K + diag(D) vs M", got["k_plus_d"], got["m"], 1e-6)
	compare(t, "diagonal from C·B vs diagonal of K", got["k_diag"], got["diag_of_k"], 1e-5)
}
