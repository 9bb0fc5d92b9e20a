package llamba_test

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/llamba"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// tiny is a small Llamba with B/C heads shared by pairs of value heads.
func tiny(qkHeads int64, tied bool) llamba.Config {
	return llamba.Config{
		Config: phimamba.Config{Vocab: 48, VocabRaw: 48, PadMult: 8, DModel: 24, Layers: 2, DState: 6, VHeads: 4, QKHeads: qkHeads,
			DConv: 4, ConvBias: true, Expand: 2, ChunkSize: 8, Activation: "identity", Inner: 40, Eps: 1e-5},
		MLPBias: !tied, Tied: tied, HeadBias: !tied,
	}
}

// randomWeights draws every parameter of c from U(±1/√fan_in) (norm
// weights from [0.8, 1.2], D from [0.5, 1.5]).
func randomWeights(c llamba.Config, seed uint64) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := map[string]*tensors.Tensor{}
	shapes := c.ParamShapes()
	for _, name := range slices.Sorted(maps.Keys(shapes)) { // one draw order, whatever the map's
		shape := shapes[name]
		lo, hi := -1/math.Sqrt(float64(shape[len(shape)-1])), 1/math.Sqrt(float64(shape[len(shape)-1]))
		switch {
		case strings.HasSuffix(name, "layernorm.weight"):
			lo, hi = 0.8, 1.2
		case strings.HasSuffix(name, ".D"):
			lo, hi = 0.5, 1.5
		}
		w[name] = graphtest.Random(rng, lo, hi, shape...).AsFloat32()
	}
	return w
}

func randomIDs(seed uint64, vocab, b, tlen int64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 11))
	ids := make([]int64, b*tlen)
	for i := range ids {
		ids[i] = rng.Int64N(vocab)
	}
	return tensors.FromInt64([]int64{b, tlen}, ids)
}

// relDiff is max|a−b| / max|b|; NaN or Inf anywhere makes it NaN or Inf.
func relDiff(a, b *tensors.Tensor) float64 {
	return shareddata.MaxAbsDiff(a, b) / shareddata.MaxAbsDiff(b, tensors.Zeros(b.DType, b.Shape...))
}

func check(t *testing.T, what string, got, want *tensors.Tensor, tol float64) {
	t.Helper()
	d := relDiff(got, want)
	t.Logf("%s: max |Δ| / max |want| = %.3g", what, d)
	if !(d <= tol) {
		t.Errorf("%s: relative difference %.3g (tolerance %g)", what, d, tol)
	}
}

// runModel runs the whole student in a form on ids; FormSSD starts from
// zero states (a hybrid's attention layers: an empty KV cache) and also
// returns the final states (conv.i, ssm.i; key.i_next).
func runModel(t *testing.T, c llamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor, form phimamba.Form) map[string]*tensors.Tensor {
	t.Helper()
	return runForm(t, c, w, ids, form, form == phimamba.FormSSD)
}

// runForm is runModel, with zero incoming states only when states is set.
func runForm(t *testing.T, c llamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor, form phimamba.Form, states bool) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("llamba_" + form.String())
	in := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
	feeds := map[string]*tensors.Tensor{"input_ids": ids}
	if err := graphs.Try(func() {
		opt := phimamba.Options{Form: form}
		if states {
			like := graphs.Unsqueeze(graphs.Cast(in, tensors.Float32), -1)
			sz := c.Sizes()
			for i := range c.Layers {
				if !c.IsAttention(i) {
					opt.States = append(opt.States, phimamba.ZeroState(c.Config, like, tensors.Float32))
					continue
				}
				// An empty KV cache, fed.
				kv := func(name string) *graphs.Value {
					feeds[name] = tensors.Zeros(tensors.Float32, ids.Shape[0], sz.AttnHeads, 0, sz.AttnHeadDim)
					return g.Input(name, tensors.Float32, graphs.S("batch", sz.AttnHeads, "past", sz.AttnHeadDim))
				}
				opt.States = append(opt.States, phimamba.State{Key: kv(fmt.Sprint("key.", i)), Value: kv(fmt.Sprint("value.", i))})
			}
		}
		out := llamba.Forward(&layers.Frozen{G: g, Tensors: w}, c, in, opt)
		g.Output("logits", out.Logits)
		for i, s := range out.States {
			if c.IsAttention(i) {
				g.Output(fmt.Sprint("key.", i, "_next"), s.Key)
				continue
			}
			g.Output(fmt.Sprint("conv.", i), s.Conv)
			g.Output(fmt.Sprint("ssm.", i), s.SSM)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, feeds)
}

// runSteps feeds ids one token at a time through the step form, carrying
// every layer's states on the host (conv.i and ssm.i; a hybrid's attention
// layer: its KV cache key.i and value.i); it returns the logits [B, T, V]
// and the final states.
func runSteps(t *testing.T, c llamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("llamba_step")
	in := g.Input("input_ids", tensors.Int64, graphs.S("batch", 1))
	b, tl := ids.Shape[0], ids.Shape[1]
	sz := c.Sizes()
	var states []phimamba.State
	feeds := map[string]*tensors.Tensor{}
	input := func(name string, shape graphs.Shape, zero ...int64) *graphs.Value {
		feeds[name] = tensors.Zeros(tensors.Float32, zero...)
		return g.Input(name, tensors.Float32, shape)
	}
	for i := range c.Layers {
		if c.IsAttention(i) {
			kv := graphs.S("batch", sz.AttnHeads, "past", sz.AttnHeadDim)
			states = append(states, phimamba.State{Key: input(fmt.Sprint("key.", i), kv, b, sz.AttnHeads, 0, sz.AttnHeadDim),
				Value: input(fmt.Sprint("value.", i), kv, b, sz.AttnHeads, 0, sz.AttnHeadDim)})
			continue
		}
		states = append(states, phimamba.State{
			Conv: input(fmt.Sprint("conv.", i), graphs.S("batch", c.ConvChannels(), c.DConv-1), b, c.ConvChannels(), c.DConv-1),
			SSM:  input(fmt.Sprint("ssm.", i), graphs.S("batch", c.VHeads, c.DState, c.HeadDim()), b, c.VHeads, c.DState, c.HeadDim()),
		})
	}
	if err := graphs.Try(func() {
		out := llamba.Forward(&layers.Frozen{G: g, Tensors: w}, c, in, phimamba.Options{Form: phimamba.FormStep, States: states})
		g.Output("logits", out.Logits)
		for i, s := range out.States {
			if c.IsAttention(i) {
				g.Output(fmt.Sprint("key.", i, "_next"), s.Key)
				g.Output(fmt.Sprint("value.", i, "_next"), s.Value)
				continue
			}
			g.Output(fmt.Sprint("conv.", i, "_next"), s.Conv)
			g.Output(fmt.Sprint("ssm.", i, "_next"), s.SSM)
		}
	}); err != nil {
		t.Fatal(err)
	}
	s := graphtest.Session(t, g)
	names := slices.Collect(maps.Keys(feeds))
	logits := tensors.Zeros(tensors.Float32, b, tl, c.Vocab)
	lf, v := logits.Float32s(), c.Vocab
	for pos := int64(0); pos < tl; pos++ {
		tok := make([]int64, b)
		for bi := range b {
			tok[bi] = ids.Int64s()[bi*tl+pos]
		}
		feeds["input_ids"] = tensors.FromInt64([]int64{b, 1}, tok)
		r := graphtest.RunSession(t, s, g, feeds)
		for bi := range b {
			copy(lf[(bi*tl+pos)*v:(bi*tl+pos+1)*v], r["logits"].Float32s()[bi*v:(bi+1)*v])
		}
		for _, n := range names {
			feeds[n] = r[n+"_next"]
		}
	}
	out := map[string]*tensors.Tensor{"logits": logits}
	for _, n := range names {
		out[n] = feeds[n]
	}
	return out
}

// TestFormsAgree runs the whole student (two layers, random weights) in
// the three mixer forms on the same tokens and compares logits and final
// states, with B/C heads shared by pairs of value heads and one per value
// head, tied and untied heads, at lengths that are not multiples of the
// chunk size.
func TestFormsAgree(t *testing.T) {
	for _, tc := range []struct {
		qk   int64
		tied bool
	}{{2, true}, {1, false}, {4, false}} {
		c := tiny(tc.qk, tc.tied)
		w := randomWeights(c, uint64(tc.qk))
		for _, tlen := range []int64{1, 5, 21} {
			t.Run(fmt.Sprintf("qk=%d/tied=%v/T=%d", tc.qk, tc.tied, tlen), func(t *testing.T) {
				ids := randomIDs(uint64(tlen), c.Vocab, 2, tlen)
				matrix := runModel(t, c, w, ids, phimamba.FormMatrix)
				ssd := runModel(t, c, w, ids, phimamba.FormSSD)
				step := runSteps(t, c, w, ids)
				check(t, "ssd vs matrix logits", ssd["logits"], matrix["logits"], 1e-5)
				check(t, "step vs matrix logits", step["logits"], matrix["logits"], 1e-5)
				for i := range c.Layers {
					check(t, fmt.Sprint("ssd vs step final ssm state, layer ", i), ssd[fmt.Sprint("ssm.", i)], step[fmt.Sprint("ssm.", i)], 1e-5)
					check(t, fmt.Sprint("ssd vs step final conv state, layer ", i), ssd[fmt.Sprint("conv.", i)], step[fmt.Sprint("conv.", i)], 1e-6)
				}
			})
		}
	}
}

// TestGroupedHeads: a mixer whose G B/C heads each serve H/G value heads
// equals a mixer with H B/C heads whose in_proj rows and conv channels
// for B and C repeat each group's head (value head h reads B/C head
// h·G/H), in every form.
func TestGroupedHeads(t *testing.T) {
	grouped := tiny(2, false)
	full := tiny(4, false)
	wg := randomWeights(grouped, 3)
	wf := map[string]*tensors.Tensor{}
	for name, x := range wg {
		wf[name] = x
	}
	// Row r of the full x|B|C block reads row src(r) of the grouped one.
	di, n, h, g := grouped.DInner(), grouped.DState, grouped.VHeads, grouped.QKHeads
	src := func(r int64) int64 {
		if r < di {
			return r
		}
		part, within := (r-di)/(h*n), (r-di)%(h*n) // 0 for B, 1 for C
		head, k := within/n, within%n
		return di + part*g*n + (head*g/h)*n + k
	}
	pre := llamba.LayerPrefix(0) + ".mixer."
	for _, s := range []struct {
		name string
		cols int64
	}{{"in_proj.weight", grouped.DModel}, {"conv1d.weight", grouped.DConv}, {"conv1d.bias", 1}} {
		x := wg[pre+s.name]
		shape := append([]int64{full.ConvChannels()}, x.Shape[1:]...)
		extra := int64(0)
		if s.name == "in_proj.weight" { // z and a rows follow x|B|C unchanged
			extra = grouped.InProj() - grouped.ConvChannels()
			shape[0] += extra
		}
		y := tensors.Zeros(tensors.Float32, shape...)
		xv, yv := x.Float32s(), y.Float32s()
		for r := int64(0); r < full.ConvChannels(); r++ {
			copy(yv[r*s.cols:(r+1)*s.cols], xv[src(r)*s.cols:(src(r)+1)*s.cols])
		}
		copy(yv[full.ConvChannels()*s.cols:], xv[grouped.ConvChannels()*s.cols:])
		wf[pre+s.name] = y
	}
	u := graphtest.Random(rand.New(rand.NewPCG(4, 4)), -1, 1, 2, 13, grouped.DModel).AsFloat32()
	for _, form := range []phimamba.Form{phimamba.FormMatrix, phimamba.FormSSD} {
		a, b := runMixer(t, grouped, wg, u, form), runMixer(t, full, wf, u, form)
		check(t, fmt.Sprint(form, ": grouped vs repeated B/C heads"), a["out"], b["out"], 1e-6)
		if form == phimamba.FormMatrix {
			check(t, "grouped vs repeated mixing matrix", a["matrix"], b["matrix"], 1e-6)
		}
	}
}

func runMixer(t *testing.T, c llamba.Config, w map[string]*tensors.Tensor, u *tensors.Tensor, form phimamba.Form) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("mixer_" + form.String())
	x := g.Input("u", tensors.Float32, graphs.StaticShape(u.Shape))
	if err := graphs.Try(func() {
		m := phimamba.Mixer(&layers.Frozen{G: g, Tensors: w}, c.Config, 0, x, form, nil)
		g.Output("out", m.Out)
		if m.Matrix != nil {
			g.Output("matrix", m.Matrix)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{"u": u})
}

// TestGradients: with B/C heads shared by pairs of value heads, the SSD
// and materialised forms give the same mixer gradients (input and every
// parameter) on a length that fills its chunks and one that does not.
func TestGradients(t *testing.T) {
	c := tiny(2, false)
	w := randomWeights(c, 9)
	for _, seq := range []int64{16, 13} {
		build := func(form phimamba.Form) *graphs.Graph {
			return graphtest.GradStep("mixer_grad", graphs.MatMulFloat32, graphs.S(2, seq, c.DModel), func(get layers.Params, u *graphs.Value) *graphs.Value {
				made := map[string]*graphs.Value{} // the matrix form asks for D twice
				once := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
					if made[name] == nil {
						made[name] = get.Get(name, shape)
					}
					return made[name]
				})
				return phimamba.Mixer(once, c.Config, 0, u, form, nil).Out
			})
		}
		rng := rand.New(rand.NewPCG(uint64(seq), 1))
		feeds := map[string]*tensors.Tensor{
			"x": graphtest.Random(rng, -1, 1, 2, seq, c.DModel).AsFloat32(),
			"r": graphtest.Random(rng, -1, 1, 2, seq, c.DModel).AsFloat32(),
		}
		for name, x := range w {
			if phimamba.IsMixer(name) && strings.HasPrefix(name, llamba.LayerPrefix(0)+".") {
				feeds[name] = x
			}
		}
		ssd, matrix := graphtest.Run(t, build(phimamba.FormSSD), feeds), graphtest.Run(t, build(phimamba.FormMatrix), feeds)
		if len(ssd) < 8 {
			t.Fatalf("T=%d: only %d outputs; the gradients are missing", seq, len(ssd))
		}
		for name, want := range matrix {
			check(t, fmt.Sprintf("T=%d %s ssd vs matrix", seq, name), ssd[name], want, 1e-5)
		}
	}
}
