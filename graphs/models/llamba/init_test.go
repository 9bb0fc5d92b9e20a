package llamba_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/llama"
	"mohawk/graphs/models/llamba"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/tensors"
)

// teacher is a small grouped-query Llama: 4 query heads sharing 2
// key/value heads, head dim 4, hidden 16 (= heads·head dim, as Llama 3.x).
func teacher(qkvBias, tied bool) llama.Config {
	return llama.Config{Vocab: 40, Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, Eps: 1e-5,
		QKVBias: qkvBias, MLPBias: !tied, Tied: tied, MaxPositions: 64, Rope: hfconfig.Rope{Type: "default", Theta: 10000}}
}

func teacherWeights(c llama.Config, seed uint64) map[string]*tensors.Tensor {
	return graphtest.RandomParams(rand.New(rand.NewPCG(seed, 13)), c.ParamShapes(), 0.3)
}

// TestTransferMap: every student tensor the map names comes from a
// teacher tensor of the same shape; what the map leaves out is exactly the
// mixers on the student's side and the attention on the teacher's; a
// student of other sizes is refused with each difference named.
func TestTransferMap(t *testing.T) {
	for _, tied := range []bool{true, false} {
		tc := teacher(false, tied)
		c := llamba.ForTeacher(tc)
		m, err := llamba.TransferMap(c, tc)
		if err != nil {
			t.Fatal(err)
		}
		ts, ss := tc.ParamShapes(), c.ParamShapes()
		used := map[string]bool{}
		for s, tn := range m {
			if !slices.Equal(ss[s], ts[tn].Sizes()) {
				t.Errorf("tied=%v: %s %v ← %s %v", tied, s, ss[s], tn, ts[tn])
			}
			used[tn] = true
		}
		for s := range ss {
			if _, ok := m[s]; !ok && !phimamba.IsMixer(s) {
				t.Errorf("tied=%v: student %s is neither transferred nor a mixer parameter", tied, s)
			}
		}
		for tn := range ts {
			if !used[tn] && !strings.Contains(tn, ".self_attn.") {
				t.Errorf("tied=%v: teacher %s is neither transferred nor attention", tied, tn)
			}
		}
	}
	tc := teacher(false, true)
	c := llamba.ForTeacher(tc)
	c.Layers, c.Tied, c.Inner = 3, false, 32
	_, err := llamba.TransferMap(c, tc)
	for _, key := range []string{"n_layer", "tie_embeddings", "mlp_cfg.intermediate_size"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("a student with other %s: error %v", key, err)
		}
	}
}

// attentionStudent initialises a student for tc from tw: transferred
// tensors copied, every mixer from its layer's attention, the rest from
// randomWeights.
func attentionStudent(t *testing.T, tc llama.Config, tw map[string]*tensors.Tensor) (llamba.Config, map[string]*tensors.Tensor) {
	t.Helper()
	c := llamba.ForTeacher(tc)
	w := randomWeights(c, 21)
	m, err := llamba.TransferMap(c, tc)
	if err != nil {
		t.Fatal(err)
	}
	for s, tn := range m {
		w[s] = tw[tn].Clone()
	}
	for i := range c.Layers {
		if err := llamba.AttentionInit(tc, tw, c, i, w); err != nil {
			t.Fatal(err)
		}
	}
	return c, w
}

// TestAttentionInitIsLinearAttention: a mixer initialised from a grouped-
// query attention layer (with q/k/v biases), with its decay switched off
// (the a rows of in_proj read only input channel 0, held at 1, with weight
// −100: log a = −softplus(−100) rounds to 0), D = 0 and the gate opened to
// the constant SiLU(z_bias) (z rows zero), computes causal linear
// attention of the teacher's projections:
//
//	y_h[l] = Σ_{s≤l} (q_h[l] · k_{h/r}[s]) v_{h/r}[s],  out = o_proj(SiLU(z_bias) ⊙ y)
//
// and its mixing matrix for value head h is q_h[l]·k_{h/r}[s] below the
// diagonal; both are computed here in float64 from the teacher's weights.
func TestAttentionInitIsLinearAttention(t *testing.T) {
	tc := teacher(true, true)
	tw := teacherWeights(tc, 1)
	c, w := attentionStudent(t, tc, tw)
	pre := llamba.LayerPrefix(0) + ".mixer."
	d, di, h := c.DModel, c.DInner(), c.VHeads
	ip := w[pre+"in_proj.weight"].Float32s()
	clear(ip[c.ConvChannels()*d:])
	for j := range h {
		ip[(c.ConvChannels()+di+j)*d] = -100
	}
	clear(w[pre+"D"].Float32s())
	const bt, tl = 2, 9
	u := graphtest.Random(rand.New(rand.NewPCG(2, 2)), -1, 1, bt, tl, d).AsFloat32()
	uf := u.Float32s()
	for i := int64(0); i < bt*tl; i++ {
		uf[i*d] = 1
	}

	// The teacher's projections, in float64.
	proj := func(name string, rows int64) [][]float64 { // [B·T][rows]
		wt, bs := tw[llama.LayerPrefix(0)+".self_attn."+name+".weight"].Float32s(), tw[llama.LayerPrefix(0)+".self_attn."+name+".bias"].Float32s()
		out := make([][]float64, bt*tl)
		for i := range out {
			out[i] = make([]float64, rows)
			for r := range rows {
				s := float64(bs[r])
				for k := range d {
					s += float64(wt[r*d+k]) * float64(uf[int64(i)*d+k])
				}
				out[i][r] = s
			}
		}
		return out
	}
	hd, r := tc.HeadDim, tc.Heads/tc.KVHeads
	q, k, v := proj("q_proj", tc.Heads*hd), proj("k_proj", tc.KVHeads*hd), proj("v_proj", tc.KVHeads*hd)
	zb, wo := w[pre+"z_bias"].Float32s(), tw[llama.LayerPrefix(0)+".self_attn.o_proj.weight"].Float32s()
	wantM := make([]float64, bt*h*tl*tl)
	wantOut := make([]float64, bt*tl*d)
	for b := range int64(bt) {
		for l := range int64(tl) {
			y := make([]float64, di)
			for hh := range h {
				g := hh / r
				for s := int64(0); s <= l; s++ {
					dot := 0.0
					for n := range hd {
						dot += q[b*tl+l][hh*hd+n] * k[b*tl+s][g*hd+n]
					}
					wantM[((b*h+hh)*tl+l)*tl+s] = dot
					for p := range hd {
						y[hh*hd+p] += dot * v[b*tl+s][g*hd+p]
					}
				}
			}
			for ch := range di {
				z := float64(zb[ch])
				y[ch] *= z / (1 + math.Exp(-z))
			}
			for o := range d {
				s := 0.0
				for ch := range di {
					s += float64(wo[o*di+ch]) * y[ch]
				}
				wantOut[(b*tl+l)*d+o] = s
			}
		}
	}
	for _, form := range []phimamba.Form{phimamba.FormMatrix, phimamba.FormSSD} {
		got := runMixer(t, c, w, u, form)
		check(t, fmt.Sprint(form, " mixer vs causal linear attention"), got["out"], tensors.FromFloat64([]int64{bt, tl, d}, wantOut), 1e-5)
		if form == phimamba.FormMatrix {
			check(t, "mixing matrix vs q·kᵀ per head", got["matrix"], tensors.FromFloat64([]int64{bt, h, tl, tl}, wantM), 1e-5)
		}
	}
}

// stage1Pair returns the teacher's attention probabilities and the
// student's mixing matrices of layer 0 [B, H, T, T] on ids, and the
// normalised inputs both compute them from.
func stage1Pair(t *testing.T, tc llama.Config, tw map[string]*tensors.Tensor, c llamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor) map[string]*tensors.Tensor {
	t.Helper()
	g := graphs.New("stage1")
	in := g.Input("input_ids", tensors.Int64, graphs.StaticShape(ids.Shape))
	if err := graphs.Try(func() {
		te := llama.Forward(&layers.Frozen{G: g, Tensors: tw, Prefix: "teacher."}, tc, in, llama.Options{Layers: 1, ExplicitAttention: true})
		st := llamba.Forward(&layers.Frozen{G: g, Tensors: w, Prefix: "student."}, c, in, phimamba.Options{Form: phimamba.FormMatrix, Layers: 1})
		g.Output("attn", te.Attn[0])
		g.Output("matrix", st.Matrix[0])
		g.Output("teacher_normed", te.Normed[0])
		g.Output("student_normed", st.Normed[0])
	}); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ids})
}

// changedHeads lists the heads h of x [B, H, T, T] where x and y differ.
func changedHeads(x, y *tensors.Tensor) []int64 {
	xs, ys := x.Convert(tensors.Float64).Float64s(), y.Convert(tensors.Float64).Float64s()
	per := x.Shape[2] * x.Shape[3]
	var out []int64
	for h := range x.Shape[1] {
		for b := range x.Shape[0] {
			base := (b*x.Shape[1] + h) * per
			if !slices.Equal(xs[base:base+per], ys[base:base+per]) {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// TestStage1HeadMapping: Stage 1 compares the teacher's per-head attention
// [B, Heads, T, T] (keys repeated per group) with the student's mixing
// matrices [B, n_v_heads, T, T] head by head, from the same normalised
// input. After AttentionInit the heads line up: the shapes agree, the
// inputs are equal, and changing key/value head g (or query head j) of the
// teacher changes exactly heads {h : h/r = g} (or {j}) of the teacher's
// attention and of the re-initialised student's matrices.
func TestStage1HeadMapping(t *testing.T) {
	tc := teacher(false, false)
	tw := teacherWeights(tc, 5)
	c, w := attentionStudent(t, tc, tw)
	ids := randomIDs(3, tc.Vocab, 2, 7)
	base := stage1Pair(t, tc, tw, c, w, ids)
	if a, m := base["attn"].Shape, base["matrix"].Shape; !slices.Equal(a, m) || a[1] != tc.Heads {
		t.Fatalf("teacher attention %v, student matrices %v; want both [2 %d 7 7]", a, m, tc.Heads)
	}
	check(t, "student vs teacher layer-0 normalised input", base["student_normed"], base["teacher_normed"], 0)
	r := tc.Heads / tc.KVHeads
	for _, p := range []struct {
		proj string
		head int64
		want []int64
	}{
		{"k_proj", 1, []int64{r, r + 1}}, {"k_proj", 0, []int64{0, 1}}, {"q_proj", 2, []int64{2}},
	} {
		pw := map[string]*tensors.Tensor{}
		for n, x := range tw {
			pw[n] = x
		}
		name := llama.LayerPrefix(0) + ".self_attn." + p.proj + ".weight"
		x := tw[name].Clone()
		rows := x.Float32s()[p.head*tc.HeadDim*tc.Hidden : (p.head+1)*tc.HeadDim*tc.Hidden]
		for i := range rows {
			rows[i] += 0.25 * float32(i%3-1)
		}
		pw[name] = x
		pc, pws := attentionStudent(t, tc, pw)
		got := stage1Pair(t, tc, pw, pc, pws, ids)
		if th, sh := changedHeads(got["attn"], base["attn"]), changedHeads(got["matrix"], base["matrix"]); !slices.Equal(th, p.want) || !slices.Equal(sh, p.want) {
			t.Errorf("changing %s head %d moved teacher heads %v and student heads %v; want %v", p.proj, p.head, th, sh, p.want)
		}
	}
}

// TestMatchesTeacherWithoutMixing: with the teacher's o_proj and the
// student's out_proj zeroed, attention and mixers add nothing and both
// models reduce to embedding → (RMSNorm → SwiGLU → residual) per layer →
// final RMSNorm → head; the student built with TransferMap then gives the
// teacher's logits (package llama is tested against transformers), for a
// tied head and for an untied head with MLP biases.
func TestMatchesTeacherWithoutMixing(t *testing.T) {
	for _, tied := range []bool{true, false} {
		tc := teacher(false, tied)
		tw := teacherWeights(tc, 8)
		c, w := attentionStudent(t, tc, tw)
		for i := range c.Layers {
			clear(tw[llama.LayerPrefix(i)+".self_attn.o_proj.weight"].Float32s())
			clear(w[llamba.LayerPrefix(i)+".mixer.out_proj.weight"].Float32s())
		}
		ids := randomIDs(4, tc.Vocab, 2, 6)
		g := graphs.New("no_mixing")
		in := g.Input("input_ids", tensors.Int64, graphs.StaticShape(ids.Shape))
		if err := graphs.Try(func() {
			g.Output("teacher", llama.Forward(&layers.Frozen{G: g, Tensors: tw, Prefix: "teacher."}, tc, in, llama.Options{}).Logits)
			g.Output("student", llamba.Forward(&layers.Frozen{G: g, Tensors: w, Prefix: "student."}, c, in, phimamba.Options{Form: phimamba.FormSSD}).Logits)
		}); err != nil {
			t.Fatal(err)
		}
		got := graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ids})
		check(t, fmt.Sprintf("tied=%v: student vs teacher logits without mixing", tied), got["student"], got["teacher"], 1e-6)
	}
}

// TestAttentionInitRefuses: a student sized otherwise than one mixer head
// per query head of the head dim, a missing teacher tensor and q/k/v biases
// without a conv bias are refused, each error saying what.
func TestAttentionInitRefuses(t *testing.T) {
	tc := teacher(true, true)
	tw := teacherWeights(tc, 2)
	fits := llamba.ForTeacher(tc)
	other := fits
	other.DState = 2
	noBias := fits
	noBias.ConvBias = false
	missing := map[string]*tensors.Tensor{}
	for n, x := range tw {
		if !strings.HasSuffix(n, "k_proj.bias") {
			missing[n] = x
		}
	}
	for _, cs := range []struct {
		c    llamba.Config
		tw   map[string]*tensors.Tensor
		want string
	}{
		{other, tw, "d_state 2"}, {noBias, tw, "conv_bias"}, {fits, missing, "self_attn.k_proj.bias is missing"},
	} {
		err := llamba.AttentionInit(tc, cs.tw, cs.c, 0, randomWeights(cs.c, 1))
		if err == nil || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("error %v, want one saying %q", err, cs.want)
		}
	}
}
