package losses_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
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
		g.Output("frob", graphs.Reshape(losses.Frobenius(sv, tv), 1))
		g.Output("l2", graphs.Reshape(losses.L2(sv, tv), 1))
		g.Output("mse", graphs.Reshape(losses.MSE(sv, tv), 1))
	}); err != nil {
		t.Fatal(err)
	}
	out := graphtest.Run(t, g, map[string]*tensors.Tensor{"s": s, "t": te, "labels": labels})
	x, y, lab := s.Float64s(), te.Float64s(), labels.Int64s()
	var ce, soft, kl, l2, mse float64
	frob := make([]float64, b*tt)
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
		frob[r/tt] += d2 // the last two axes [tt, v] are one matrix per batch row
	}
	fro := (math.Sqrt(frob[0]) + math.Sqrt(frob[1])) / b
	for _, c := range []struct {
		name string
		want float64
	}{{"ce", ce}, {"soft", soft}, {"kl", kl}, {"kl_self", 0}, {"frob", fro}, {"l2", l2}, {"mse", mse}} {
		if got := out[c.name].Float64s()[0]; math.Abs(got-c.want) > 1e-10 {
			t.Errorf("%s = %.12g, want %.12g", c.name, got, c.want)
		}
	}
}
