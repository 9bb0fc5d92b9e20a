package graphs_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/runtime"
	"mohawk/tensors"
)

func TestFusedDomainMatchesRuntime(t *testing.T) {
	if graphs.FusedDomain != runtime.FusedDomain {
		t.Fatalf("graphs.FusedDomain %q, runtime.FusedDomain %q", graphs.FusedDomain, runtime.FusedDomain)
	}
}

// adamwGraph computes the fused AdamW update and the same formula in stock
// ops (b1·m + a1·g, b2·v + a2·(g·g), p·decay − step·(m′ / (√v′ + eps))) on
// one set of inputs.
func adamwGraph(dt tensors.DType, n int64) *graphs.Graph {
	g := graphs.New("adamw_" + dt.String())
	p, gr, m, v := g.Input("p", dt, graphs.S(n)), g.Input("g", dt, graphs.S(n)), g.Input("m", dt, graphs.S(n)), g.Input("v", dt, graphs.S(n))
	coef := g.Input("coef", dt, graphs.S(graphs.AdamWCoefficients))
	p2, m2, v2 := graphs.AdamW(p, gr, m, v, coef)
	g.Output("p_fused", p2)
	g.Output("m_fused", m2)
	g.Output("v_fused", v2)
	k := func(i int64) *graphs.Value { return graphs.SliceAxis(coef, 0, i, i+1) }
	ms := graphs.Add(graphs.Mul(k(0), m), graphs.Mul(k(1), gr))
	vs := graphs.Add(graphs.Mul(k(2), v), graphs.Mul(k(3), graphs.Mul(gr, gr)))
	ps := graphs.Sub(graphs.Mul(p, k(4)), graphs.Mul(k(5), graphs.Div(ms, graphs.Add(graphs.Sqrt(vs), k(6)))))
	g.Output("p_stock", ps)
	g.Output("m_stock", ms)
	g.Output("v_stock", vs)
	return g
}

// adamwFeeds draws p, g, m, v over many magnitudes, zeros and subnormal
// squares included, and realistic coefficients; bad puts NaN and ±Inf into
// g and marks the step not finite.
func adamwFeeds(dt tensors.DType, n int64, bad bool) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	draw := func(nonneg bool) []float64 {
		x := make([]float64, n)
		for i := range x {
			switch i % 7 {
			case 0:
				x[i] = 0
			case 1:
				x[i] = rng.NormFloat64() * 1e-20
			default:
				x[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-5))
			}
			if nonneg {
				x[i] *= x[i]
			}
		}
		return x
	}
	gr := draw(false)
	coef := []float64{0.9, 0.1 * 0.73, 0.95, 0.05 * 0.73 * 0.73, 1 - 3e-4*0.1, 3e-4 * 0.31 / 0.1, 1e-8 * 0.31, 1}
	if bad {
		gr[3], gr[10], gr[17] = math.NaN(), math.Inf(1), math.Inf(-1)
		coef[7] = 0
	}
	t := func(x []float64) *tensors.Tensor { return tensors.FromFloat64([]int64{int64(len(x))}, x).Convert(dt) }
	return map[string]*tensors.Tensor{"p": t(draw(false)), "g": t(gr), "m": t(draw(false)), "v": t(draw(true)), "coef": t(coef)}
}

// sameBits reports the first element where a and b differ in their bits.
func sameBits(t *testing.T, what string, a, b *tensors.Tensor) {
	t.Helper()
	x, y := a.Convert(tensors.Float64).Float64s(), b.Convert(tensors.Float64).Float64s()
	if len(x) != len(y) {
		t.Fatalf("%s: %d elements against %d", what, len(x), len(y))
	}
	for i := range x {
		if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
			t.Fatalf("%s: element %d is %g, want %g (bit for bit)", what, i, x[i], y[i])
		}
	}
}

// TestAdamW checks the fused update against the stock-op formula bit for
// bit, on the CPU and (with MOHAWK_TEST_CUDA set) on the GPU, and that a
// step marked not finite returns its inputs whatever the gradient holds.
func TestAdamW(t *testing.T) {
	const n = 4099 // not a multiple of a block
	for _, c := range []struct {
		name string
		dt   tensors.DType
		env  func(testing.TB) *runtime.Env
	}{
		{"cpu/float32", tensors.Float32, graphtest.Env},
		{"cpu/float64", tensors.Float64, graphtest.Env},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := adamwGraph(c.dt, n)
			s := graphtest.SessionOn(t, env, g)
			out := graphtest.RunSession(t, s, g, adamwFeeds(c.dt, n, false))
			for _, x := range []string{"p", "m", "v"} {
				sameBits(t, x, out[x+"_fused"], out[x+"_stock"])
			}
			feeds := adamwFeeds(c.dt, n, true)
			out = graphtest.RunSession(t, s, g, feeds)
			for _, x := range []string{"p", "m", "v"} {
				sameBits(t, x+" of a step not applied", out[x+"_fused"], feeds[x])
			}
		})
	}
}

func TestAdamWShapeRule(t *testing.T) {
	g := graphs.New("bad")
	p := g.Input("p", tensors.Float32, graphs.S(3, 4))
	ok := g.Input("coef", tensors.Float32, graphs.S(8))
	for _, c := range []struct {
		name string
		args func() []*graphs.Value
	}{
		{"shape", func() []*graphs.Value {
			return []*graphs.Value{p, g.Input("g1", tensors.Float32, graphs.S(4, 3)), p, p, ok}
		}},
		{"dtype", func() []*graphs.Value {
			return []*graphs.Value{p, g.Input("g2", tensors.Float64, graphs.S(3, 4)), p, p, ok}
		}},
		{"coef", func() []*graphs.Value {
			return []*graphs.Value{p, p, p, p, g.Input("c7", tensors.Float32, graphs.S(7))}
		}},
		{"int", func() []*graphs.Value {
			q := g.Input("q", tensors.Int64, graphs.S(2))
			return []*graphs.Value{q, q, q, q, g.Input("ci", tensors.Int64, graphs.S(8))}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := c.args()
			if err := graphs.Try(func() { graphs.AdamW(a[0], a[1], a[2], a[3], a[4]) }); err == nil {
				t.Fatal("want a shape-rule error")
			}
		})
	}
}
