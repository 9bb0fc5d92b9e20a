package losses_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/losses"
	"mohawk/tensors"
)

func logSoftmax(x []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(v - m)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - m - math.Log(s)
	}
	return out
}

// TestAgainstDirectFormulas evaluates every loss on random inputs and
// compares with the formula computed here in float64.
func TestAgainstDirectFormulas(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const b, tt, v = 2, 3, 5
	s := graphtest.Random(rng, -2, 2, b, tt, v)
	te := graphtest.Random(rng, -2, 2, b, tt, v)
	labels := tensors.FromInt64([]int64{b, tt}, []int64{0, 4, 2, 1, 3, 3})
	g := graphs.New("losses")
	sv := g.Input("s", tensors.Float64, graphs.S(b, tt, v))
	tv := g.Input("t", tensors.Float64, graphs.S(b, tt, v))
	lv := g.Input("labels", tensors.Int64, graphs.S(b, tt))
	const temp = 2.0
	if err := graphs.Try(func() {
		g.Output("ce", graphs.Reshape(losses.TokenCrossEntropy(sv, lv), 1))
		g.Output("soft", graphs.Reshape(losses.SoftCrossEntropy(sv, tv, temp), 1))
		g.Output("kl", graphs.Reshape(losses.KLDivergence(sv, tv, temp), 1))
		g.Output("kl_self", graphs.Reshape(losses.KLDivergence(sv, sv, 1), 1))
		g.Output("l2", graphs.Reshape(losses.L2(sv, tv), 1))
		g.Output("mse", graphs.Reshape(losses.MSE(sv, tv), 1))
	}); err != nil {
		t.Fatal(err)
	}
	out := graphtest.Run(t, g, map[string]*tensors.Tensor{"s": s, "t": te, "labels": labels})
	x, y, lab := s.Float64s(), te.Float64s(), labels.Int64s()
	var ce, soft, kl, l2, mse float64
	for r := 0; r < b*tt; r++ {
		xs, ys := x[r*v:(r+1)*v], y[r*v:(r+1)*v]
		ls := logSoftmax(xs)
		ce -= ls[lab[r]] / (b * tt)
		xt, yt := make([]float64, v), make([]float64, v)
		for i := range xs {
			xt[i], yt[i] = xs[i]/temp, ys[i]/temp
		}
		lst, ltt := logSoftmax(xt), logSoftmax(yt)
		d2 := 0.0
		for i := range xs {
			pt := math.Exp(ltt[i])
			soft -= temp * temp * pt * lst[i] / (b * tt)
			kl += temp * temp * pt * (ltt[i] - lst[i]) / (b * tt)
			d := xs[i] - ys[i]
			d2 += d * d
			mse += d * d / (b * tt * v)
		}
		l2 += math.Sqrt(d2) / (b * tt)
	}
	for _, c := range []struct {
		name string
		want float64
	}{{"ce", ce}, {"soft", soft}, {"kl", kl}, {"kl_self", 0}, {"l2", l2}, {"mse", mse}} {
		if got := out[c.name].Float64s()[0]; !(math.Abs(got-c.want) <= 1e-10) {
			t.Errorf("%s = %.12g, want %.12g", c.name, got, c.want)
		}
	}
}

// TestSoftCrossEntropyFused checks the soft cross-entropy in a graph that
// uses fused kernels (one graphs.SoftCrossEntropy node) against the stock
// form, in value and in the student's gradient, at temperature 2: in
// float64 (and its gradient numerically), and with float32 student logits
// against bfloat16 teacher logits, which the stock form widens; and that a
// graph built for the CPU provider keeps the stock form.
func TestSoftCrossEntropyFused(t *testing.T) {
	g := graphs.New("soft_cpu")
	g.UseFusedKernels()
	g.TargetCPU()
	losses.SoftCrossEntropy(g.Input("s", tensors.Float32, graphs.S(2, 5)), g.Input("t", tensors.BFloat16, graphs.S(2, 5)), 1)
	for _, n := range g.Nodes() {
		if n.Op == "SoftCrossEntropy" {
			t.Fatal("a graph for the CPU provider has a SoftCrossEntropy node")
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	const b, tt, v, temp = 2, 3, 70, 2.0
	s := graphtest.Random(rng, -6, 6, b, tt, v)
	te := graphtest.Random(rng, -6, 6, b, tt, v)
	for _, c := range []struct {
		name    string
		s, t    tensors.DType
		tol     float64
		numeric bool
	}{
		{"float64", tensors.Float64, tensors.Float64, 1e-12, true},
		{"float32-bfloat16", tensors.Float32, tensors.BFloat16, 1e-5, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			build := func(g *graphs.Graph, sv, tv *graphs.Value, fused bool) *graphs.Value {
				if fused {
					g.UseFusedKernels()
				}
				return graphs.Reshape(losses.SoftCrossEntropy(sv, tv, temp), 1)
			}
			run := func(fused bool) (loss, grad []float64) {
				g := graphs.New("soft")
				sv := g.Input("s", c.s, graphs.S(b, tt, v))
				tv := g.Input("t", c.t, graphs.S(b, tt, v))
				var nodes int
				if err := graphs.Try(func() {
					l := build(g, sv, tv, fused)
					g.Output("loss", l)
					g.Output("ds", graphs.Gradients(graphs.Reshape(l), sv)[0])
					for _, n := range g.Nodes() {
						if n.Op == "SoftCrossEntropy" {
							nodes++
						}
					}
				}); err != nil {
					t.Fatal(err)
				}
				if fused != (nodes == 1) {
					t.Fatalf("fused=%v: %d SoftCrossEntropy nodes", fused, nodes)
				}
				out := graphtest.Run(t, g, map[string]*tensors.Tensor{"s": s.Convert(c.s), "t": te.Convert(c.t)})
				return out["loss"].Convert(tensors.Float64).Float64s(), out["ds"].Convert(tensors.Float64).Float64s()
			}
			wl, wg := run(false)
			gl, gg := run(true)
			if !(math.Abs(gl[0]-wl[0]) <= c.tol*math.Abs(wl[0])) {
				t.Errorf("fused loss %.10g, stock %.10g", gl[0], wl[0])
			}
			scale := 0.0
			for _, x := range wg {
				scale = max(scale, math.Abs(x))
			}
			for i := range wg {
				if !(math.Abs(gg[i]-wg[i]) <= c.tol*scale) {
					t.Fatalf("ds[%d]: fused %g, stock %g", i, gg[i], wg[i])
				}
			}
			if c.numeric {
				graphtest.CheckGradients(t, graphtest.GradCase{Name: "SoftCrossEntropy/fused", Inputs: []*tensors.Tensor{s},
					Build: func(g *graphs.Graph, x []*graphs.Value) *graphs.Value { return build(g, x[0], g.Const(te), true) }})
			}
		})
	}
}

// TestFrobeniusWithDiagonal checks the diagonal-folded Stage 1 distance
// of a mixing matrix in parts (K = L∘S, L from cumulative log decays)
// against ‖K + diag(d) − A‖_F computed here, and its gradients with
// respect to S, the decays and d numerically (with K's diagonal taken by
// Diagonal, so they pass through a strided slice), in the stock form
// (K materialised) and the fused one (graphs.MaskedDiffSq).
func TestFrobeniusWithDiagonal(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	const b, h, n = 2, 3, 5
	st := graphtest.Random(rng, -1, 1, b, h, n, n)
	at := graphtest.Random(rng, -1, 1, b, h, n, n)
	dt := graphtest.Random(rng, -1, 1, h)
	logA := graphtest.Random(rng, -0.7, 0.1, b, h, n)
	cs := logA.Float64s()
	for i := range cs {
		if i%n > 0 {
			cs[i] += cs[i-1]
		}
	}
	cst := tensors.FromFloat64([]int64{b, h, n}, cs)
	sx, ax, dx := st.Float64s(), at.Float64s(), dt.Float64s()
	want := 0.0
	for m := 0; m < b*h; m++ {
		sum := 0.0
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				k := 0.0
				if j <= i {
					k = sx[m*n*n+i*n+j] * math.Exp(cs[m*n+i]-cs[m*n+j])
				}
				e := k - ax[m*n*n+i*n+j]
				if i == j {
					e += dx[m%h]
				}
				sum += e * e
			}
		}
		want += math.Sqrt(sum) / (b * h)
	}
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) {
			loss := func(g *graphs.Graph, s, c, d *graphs.Value) *graphs.Value {
				if fused {
					g.UseMatrixKernels()
				}
				m := layers.MatrixParts{S: s, CumLogA: c, Diag: losses.Diagonal(s), D: d}
				return graphs.Reshape(losses.FrobeniusWithDiagonal(m, g.Const(at)), 1)
			}
			g := graphs.New("frob_diag")
			sv := g.Input("s", tensors.Float64, graphs.S(b, h, n, n))
			cv := g.Input("cs", tensors.Float64, graphs.S(b, h, n))
			dv := g.Input("d", tensors.Float64, graphs.S(h))
			if err := graphs.Try(func() { g.Output("loss", loss(g, sv, cv, dv)) }); err != nil {
				t.Fatal(err)
			}
			ops := map[string]int{}
			for _, node := range g.Nodes() {
				ops[node.Op]++
			}
			if fused != (ops["MaskedDiffSq"] == 1) || ops["Exp"] != 0 && fused {
				t.Fatalf("nodes by op %v: want one MaskedDiffSq and no Exp exactly when fused", ops)
			}
			got := graphtest.Run(t, g, map[string]*tensors.Tensor{"s": st, "cs": cst, "d": dt})["loss"].Float64s()[0]
			if !(math.Abs(got-want) <= 1e-10) {
				t.Errorf("FrobeniusWithDiagonal = %.12g, want %.12g", got, want)
			}
			graphtest.CheckGradients(t, graphtest.GradCase{Name: "FrobeniusWithDiagonal", Inputs: []*tensors.Tensor{st, cst, dt},
				Build: func(g *graphs.Graph, v []*graphs.Value) *graphs.Value { return loss(g, v[0], v[1], v[2]) }})
		})
	}
}

// TestTimeChunked checks that the soft cross-entropy of logits h·W against
// a teacher's g·U, computed in chunks of positions that the backward pass
// recomputes, equals the whole computation in value and gradients, with
// chunks that do not divide the length, that the chunked graph holds no
// [B, T, V] value, and that its liveness peak is well below the whole
// one's (a chunk's values are not kept for the backward pass).
func TestTimeChunked(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const b, tt, d, v = 2, 12, 4, 200
	feeds := map[string]*tensors.Tensor{
		"h": graphtest.Random(rng, -1, 1, b, tt, d), "w": graphtest.Random(rng, -1, 1, d, v),
		"g": graphtest.Random(rng, -1, 1, b, tt, d), "u": graphtest.Random(rng, -2, 2, d, v),
	}
	build := func(chunk int64) *graphs.Graph {
		g := graphs.New("chunked")
		in := func(name string, s ...any) *graphs.Value { return g.Input(name, tensors.Float64, graphs.S(s...)) }
		h, w, u := in("h", b, tt, d), in("w", d, v), in("u", d, v)
		// Computed values, as the models' hidden states are: chunks slice them.
		hs, gs := graphs.Tanh(h), graphs.Tanh(in("g", b, tt, d))
		per := func(at func(*graphs.Value) *graphs.Value) *graphs.Value {
			return losses.SoftCrossEntropy(graphs.MatMul(at(hs), w), graphs.MatMul(at(gs), u), 2)
		}
		var loss *graphs.Value
		if chunk == 0 {
			loss = per(func(x *graphs.Value) *graphs.Value { return x })
		} else {
			loss = losses.TimeChunked(g, tt, chunk, per)
		}
		g.Output("loss", loss)
		gr := graphs.Gradients(loss, h, w)
		g.Output("dh", gr[0])
		g.Output("dw", gr[1])
		return g
	}
	whole := build(0)
	want := graphtest.Run(t, whole, feeds)
	wholePeak := graphs.AnalyzeLiveness(whole).PeakBytes
	for _, chunk := range []int64{5, 12, 20} {
		g := build(chunk)
		got := graphtest.Run(t, g, feeds)
		for name, w := range want {
			gv, wv := got[name].Float64s(), w.Float64s()
			for i := range wv {
				if d := math.Abs(gv[i] - wv[i]); !(d <= 1e-12*math.Max(1, math.Abs(wv[i]))) {
					t.Fatalf("chunk %d: %s[%d] = %g, whole %g", chunk, name, i, gv[i], wv[i])
				}
			}
		}
		if chunk >= tt {
			continue
		}
		for _, n := range g.Nodes() {
			for _, o := range n.Outputs {
				if o.Shape.Static() && o.Shape.NumElements().K == b*tt*v {
					t.Errorf("chunk %d: %s node makes %v, a [B, T, V] value", chunk, n.Op, o)
				}
			}
		}
		if peak := graphs.AnalyzeLiveness(g).PeakBytes; !(float64(peak) < 0.6*float64(wholePeak)) {
			t.Errorf("chunk %d: liveness peak %d bytes, whole %d: want below 60%%", chunk, peak, wholePeak)
		}
	}
}
