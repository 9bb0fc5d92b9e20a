package graphs_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/runtime"
	"mohawk/tensors"
)

// The tests of this package run as a data-parallel group of one rank, for
// AllReduce's CPU kernel.
func init() { runtime.SetHostReducer(runtime.SingleRank{}) }

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

// adamwCases are the providers and dtypes the AdamW kernels run in.
var adamwCases = []struct {
	name string
	dt   tensors.DType
	env  func(testing.TB) *runtime.Env
}{
	{"cpu/float32", tensors.Float32, graphtest.Env},
	{"cpu/float64", tensors.Float64, graphtest.Env},
	{"cuda/float32", tensors.Float32, graphtest.CUDAEnv},
}

// TestAdamW checks the fused update against the stock-op formula bit for
// bit, on the CPU and (with MOHAWK_TEST_CUDA set) on the GPU, and that a
// step marked not finite returns its inputs whatever the gradient holds.
func TestAdamW(t *testing.T) {
	const n = 4099 // not a multiple of a block
	for _, c := range adamwCases {
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

// TestAdamWInPlace runs the in-place update on p, m and v uploaded to the
// provider's memory and checks what Fetch then finds there against the
// fused AdamW's outputs bit for bit, on the CPU and (with MOHAWK_TEST_CUDA
// set) on the GPU; a step marked not finite leaves them as they were.
func TestAdamWInPlace(t *testing.T) {
	const n = 4099
	for _, c := range adamwCases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("adamw_inplace_" + c.dt.String())
			in := map[string]*graphs.Value{}
			for _, x := range []string{"p", "g", "m", "v"} {
				in[x] = g.Input(x, c.dt, graphs.S(n))
			}
			coef := g.Input("coef", c.dt, graphs.S(graphs.AdamWCoefficients))
			g.Output("done", graphs.AdamWInPlace(in["p"], in["g"], in["m"], in["v"], coef))
			s := graphtest.SessionOn(t, env, g)
			ref := graphtest.SessionOn(t, env, adamwGraph(c.dt, n))
			for _, bad := range []bool{false, true} {
				feeds := adamwFeeds(c.dt, n, bad)
				want := graphtest.RunSession(t, ref, adamwGraph(c.dt, n), feeds)
				res := map[string]*runtime.Resident{}
				var fs []runtime.Feed
				for _, x := range []string{"p", "g", "m", "v", "coef"} {
					if x == "g" || x == "coef" {
						fs = append(fs, runtime.Feed{Host: feeds[x]})
						continue
					}
					r, err := env.Upload(feeds[x])
					if err != nil {
						t.Fatal(err)
					}
					defer r.Release()
					res[x] = r
					fs = append(fs, runtime.Feed{Resident: r})
				}
				host, _, err := s.RunResident(fs, []bool{false})
				if err != nil {
					t.Fatal(err)
				}
				if got := host[0]; got.DType != c.dt || len(got.Shape) != 1 || got.Shape[0] != 0 {
					t.Fatalf("done is %v %v, want an empty %v", got.DType, got.Shape, c.dt)
				}
				for _, x := range []string{"p", "m", "v"} {
					got, err := env.Fetch(res[x])
					if err != nil {
						t.Fatal(err)
					}
					if bad {
						sameBits(t, x+" of a step not applied", got, feeds[x])
					} else {
						sameBits(t, x, got, want[x+"_fused"])
					}
				}
			}
		})
	}
}

func TestAdamWInPlaceNeedsInputs(t *testing.T) {
	g := graphs.New("bad")
	p := g.Input("p", tensors.Float32, graphs.S(3))
	coef := g.Input("coef", tensors.Float32, graphs.S(8))
	q := graphs.Neg(p)
	if err := graphs.Try(func() { graphs.AdamWInPlace(p, p, q, p, coef) }); err == nil {
		t.Error("an update in place of a computed value was built")
	}
	if err := graphs.Try(func() { graphs.AdamWInPlace(p, p, p, p, g.Input("c7", tensors.Float32, graphs.S(7))) }); err == nil {
		t.Error("want a shape-rule error for a coef of 7")
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

// TestCausalConv checks the fused conv (CausalConvSplit, in one part and
// in several, the conv's parts followed by copied ones) and its gradient
// against the sums computed here in float64 from the same rounded inputs,
// in each dtype on the CPU and, with MOHAWK_TEST_CUDA set, on the GPU:
// float32 sums err by at most a few units of float32 per term, bfloat16
// results add half a unit of bfloat16 (the weight and bias gradients'
// partial sums are float32 in either case), and copied channels are exact.
func TestCausalConv(t *testing.T) {
	for _, c := range []struct {
		name   string
		dt     tensors.DType
		env    func(testing.TB) *runtime.Env
		b, tt  int64
		ch, k  int64   // the conv's channels and taps
		widths []int64 // the parts (nil: one of ch)
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 2, 37, 5, 4, nil},
		{"cpu/float32", tensors.Float32, graphtest.Env, 2, 37, 5, 3, nil},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 2, 37, 5, 4, nil},
		{"cpu/float64-parts", tensors.Float64, graphtest.Env, 2, 37, 5, 4, []int64{2, 3, 4, 1}},
		{"cpu/bfloat16-parts", tensors.BFloat16, graphtest.Env, 2, 37, 5, 4, []int64{1, 4, 3}},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 3, 300, 384, 4, nil},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 3, 300, 384, 4, nil},
		{"cuda/float32-parts", tensors.Float32, graphtest.CUDAEnv, 3, 300, 384, 4, []int64{128, 128, 128, 300, 3}},
		{"cuda/bfloat16-parts", tensors.BFloat16, graphtest.CUDAEnv, 3, 300, 384, 4, []int64{128, 256, 301, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			widths := c.widths
			if widths == nil {
				widths = []int64{c.ch}
			}
			cx := int64(0)
			for _, w := range widths {
				cx += w
			}
			g := graphs.New("conv")
			x := g.Input("x", c.dt, graphs.S(c.b, c.tt, cx))
			w := g.Input("w", c.dt, graphs.S(c.ch, 1, c.k))
			b := g.Input("b", c.dt, graphs.S(c.ch))
			dy := g.Input("dy", c.dt, graphs.S(c.b, c.tt, cx))
			var ys, dys []*graphs.Value
			if c.widths == nil {
				ys, dys = []*graphs.Value{graphs.CausalConv(x, w, b)}, []*graphs.Value{dy}
			} else {
				ys, dys = graphs.CausalConvSplit(x, w, b, widths...), graphs.Split(dy, -1, widths...)
			}
			g.Output("y", graphs.Concat(-1, ys...))
			dx, dwp, dbp := graphs.CausalConvGrad(x, w, ys[0].Node().Inputs[3], dys...)
			g.Output("dx", dx)
			g.Output("dwp", dwp)
			g.Output("dbp", dbp)
			rng := rand.New(rand.NewPCG(3, uint64(c.ch)))
			feeds := map[string]*tensors.Tensor{}
			vals := map[string][]float64{}
			for _, in := range g.Inputs() {
				shape := in.Shape.Sizes()
				r := graphtest.Random(rng, -1, 1, shape...).Convert(c.dt)
				feeds[in.Name()] = r
				vals[in.Name()] = r.Convert(tensors.Float64).Float64s()
			}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			X, W, Bi, DY := vals["x"], vals["w"], vals["b"], vals["dy"]
			B, T, C, K, CX := int(c.b), int(c.tt), int(c.ch), int(c.k), int(cx)
			y, ya := make([]float64, B*T*CX), make([]float64, B*T*CX)
			dxr, dxa := make([]float64, B*T*CX), make([]float64, B*T*CX)
			dw, dwa := make([]float64, C*K), make([]float64, C*K)
			db, dba := make([]float64, C), make([]float64, C)
			for r := 0; r < B*T; r++ {
				tt := r % T
				for ch := C; ch < CX; ch++ { // copied channels
					i := r*CX + ch
					y[i], dxr[i] = X[i], DY[i]
				}
				for ch := 0; ch < C; ch++ {
					i := r*CX + ch
					y[i], ya[i] = Bi[ch], math.Abs(Bi[ch])
					db[ch] += DY[i]
					dba[ch] += math.Abs(DY[i])
					for j := 0; j < K; j++ {
						if s := tt - (K - 1) + j; s >= 0 {
							v := W[ch*K+j] * X[i-(K-1-j)*CX]
							y[i] += v
							ya[i] += math.Abs(v)
							u := X[i-(K-1-j)*CX] * DY[i]
							dw[ch*K+j] += u
							dwa[ch*K+j] += math.Abs(u)
						}
						if e := K - 1 - j; tt+e < T {
							v := W[ch*K+j] * DY[i+e*CX]
							dxr[i] += v
							dxa[i] += math.Abs(v)
						}
					}
				}
			}
			sum := func(part *tensors.Tensor, n int) []float64 {
				p := part.Convert(tensors.Float64).Float64s()
				s := make([]float64, n)
				for i, v := range p {
					s[i%n] += v
				}
				return s
			}
			terms := float64(B * T)
			low := 0.0
			if c.dt == tensors.BFloat16 {
				low = math.Pow(2, -8)
			}
			check := func(name string, got, want, abs []float64, terms, round float64) {
				t.Helper()
				worst := 0.0
				for i := range want {
					// The float32 sum errs by at most sum32; rounding it to
					// the output type adds half a unit of the rounded value.
					sum32 := 4 * terms * math.Pow(2, -24) * abs[i]
					allowed := sum32 + round*(math.Abs(want[i])+sum32) + 1e-300
					if c.dt == tensors.Float64 {
						allowed = 1e-12 * (1 + abs[i])
					}
					if d := math.Abs(got[i] - want[i]); !(d <= allowed) {
						t.Fatalf("%s[%d] = %g, want %g (allowed error %.3g)", name, i, got[i], want[i], allowed)
					} else {
						worst = max(worst, d/allowed)
					}
				}
				t.Logf("%s: worst error %.2f of the allowed", name, worst)
			}
			check("y", out["y"].Convert(tensors.Float64).Float64s(), y, ya, float64(K+1), low)
			check("dx", out["dx"].Convert(tensors.Float64).Float64s(), dxr, dxa, float64(K), low)
			check("dw", sum(out["dwp"], C*K), dw, dwa, terms, 0)
			check("db", sum(out["dbp"], C), db, dba, terms, 0)
		})
	}
}

// bounds checks kernel results against their allowed errors and keeps, by
// name, the largest share of its bound an error used.
type bounds struct {
	t     *testing.T
	worst map[string]float64
}

func newBounds(t *testing.T) *bounds { return &bounds{t: t, worst: map[string]float64{}} }

// check fails the test where |got − want| exceeds allowed (or is NaN); at
// is the element's index, for the message.
func (b *bounds) check(name string, got, want, allowed float64, at ...int) {
	b.t.Helper()
	d := math.Abs(got - want)
	if !(d <= allowed) {
		b.t.Fatalf("%s%v = %g, want %g (allowed error %.3g)", name, at, got, want, allowed)
	}
	if allowed > 0 {
		b.worst[name] = max(b.worst[name], d/allowed)
	}
}

func (b *bounds) log() {
	b.t.Helper()
	b.t.Logf("worst error of the allowed: %v", b.worst)
}

// tileCases are the providers, dtypes and sizes of the [Q, Q]-tile kernels'
// tests (SegsumExp, MaskedDiffSq): Q = 300 loops a row kernel's threads
// and spans two blocks of a column kernel; 70 tiles of 64 run many blocks.
var tileCases = []struct {
	name     string
	dt       tensors.DType
	env      func(testing.TB) *runtime.Env
	tiles, q int64
}{
	{"cpu/float64", tensors.Float64, graphtest.Env, 3, 37},
	{"cpu/float32", tensors.Float32, graphtest.Env, 3, 37},
	{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 3, 37},
	{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 5, 300},
	{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 5, 300},
	{"cuda/float32-tiles", tensors.Float32, graphtest.CUDAEnv, 70, 64},
}

// TestSegsumExp checks the fused decay matrix and its gradient against
// sums computed here in float64 from the same inputs, on the CPU in each
// dtype and, with MOHAWK_TEST_CUDA set, on the GPU (Q = 300 spans two
// blocks of the gradient kernel and loops the forward's threads): L within
// a few units of float32 (the CUDA exponential) or half a unit of
// bfloat16, dcs within float32's summation bound over its Q terms.
func TestSegsumExp(t *testing.T) {
	for _, c := range tileCases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("segsum_exp")
			cs := g.Input("cs", tensors.Float64, graphs.S(c.tiles, c.q))
			l := graphs.SegsumExp(cs, c.dt)
			g.Output("l", l)
			dl := g.Input("dl", c.dt, graphs.S(c.tiles, c.q, c.q))
			g.Output("dcs", graphs.SegsumExpGrad(l, dl))
			// The multiplied form takes dl's values as its multiplicand m,
			// NaN above the diagonal, where the result must be 0 regardless.
			m := g.Input("m", c.dt, graphs.S(c.tiles, c.q, c.q))
			g.Output("gl", graphs.SegsumExpMul(cs, m))
			rng := rand.New(rand.NewPCG(5, uint64(c.q)))
			// Cumulative sums of log-decays in [−1, 0.05): mostly falling, as
			// in the mixer, with a few rises, over a range where exp
			// underflows float32 only at the far corner of the longest tile.
			csv := make([]float64, c.tiles*c.q)
			for i := range csv {
				step := -rng.Float64() + 0.05
				if i%int(c.q) == 0 {
					csv[i] = rng.NormFloat64()
				} else {
					csv[i] = csv[i-1] + step*0.5
				}
			}
			dlt := graphtest.Random(rng, -1, 1, c.tiles, c.q, c.q).Convert(c.dt)
			mv := append([]float64(nil), dlt.Convert(tensors.Float64).Float64s()...)
			for at := range mv {
				if at%int(c.q) > at/int(c.q)%int(c.q) {
					mv[at] = math.NaN()
				}
			}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, map[string]*tensors.Tensor{
				"cs": tensors.FromFloat64([]int64{c.tiles, c.q}, csv), "dl": dlt,
				"m": tensors.FromFloat64([]int64{c.tiles, c.q, c.q}, mv).Convert(c.dt)})
			gotL := out["l"].Convert(tensors.Float64).Float64s()
			gotGL := out["gl"].Convert(tensors.Float64).Float64s()
			gotD := out["dcs"].Float64s()
			dlv := dlt.Convert(tensors.Float64).Float64s()
			q := int(c.q)
			rel := 4 * math.Pow(2, -24) // the CUDA exponential: ex2.approx and two roundings
			switch c.dt {
			case tensors.BFloat16:
				rel = math.Pow(2, -8) + rel
			case tensors.Float64:
				rel = 1e-15
			}
			b := newBounds(t)
			for tile := 0; tile < int(c.tiles); tile++ {
				row, col, abs := make([]float64, q), make([]float64, q), make([]float64, q)
				for i := 0; i < q; i++ {
					for j := 0; j < q; j++ {
						at := (tile*q+i)*q + j
						want := 0.0
						if j <= i {
							want = math.Exp(csv[tile*q+i] - csv[tile*q+j])
						}
						// Below float32's smallest normal the kernel may flush to 0.
						b.check("l", gotL[at], want, rel*want+1.2e-38, tile, i, j)
						// One more rounding for the product (exact in float64).
						wantGL := 0.0
						if j <= i {
							wantGL = want * dlv[at]
						}
						b.check("g∘l", gotGL[at], wantGL, (rel+math.Pow(2, -24))*math.Abs(wantGL)+1.2e-38, tile, i, j)
						// The gradient is checked from the kernel's own l.
						gv := gotL[at] * dlv[at]
						row[i] += gv
						col[j] += gv
						abs[i] += math.Abs(gv)
						abs[j] += math.Abs(gv)
					}
				}
				for k := 0; k < q; k++ {
					want := row[k] - col[k]
					allowed := (2*float64(q) + 2) * math.Pow(2, -24) * abs[k]
					if c.dt == tensors.Float64 {
						allowed = 1e-13 * abs[k]
					}
					b.check("dcs", gotD[tile*q+k], want, allowed+1e-300, tile, k)
				}
			}
			b.log()
		})
	}
}

// TestMaskedDiffSq checks Stage 1's fused distance and its gradient
// against sums computed here in float64 from the same inputs, on the CPU
// in each dtype of s and, with MOHAWK_TEST_CUDA set, on the GPU (T = 300
// loops the row kernels' threads and spans two blocks of the column
// kernel; 70 tiles of 64): the rows within float32's summation bound over
// T terms (plus the CUDA exponential's few units per term), ds within a
// few units of float32 or half a unit of bfloat16, dcs within the
// summation bound.
func TestMaskedDiffSq(t *testing.T) {
	for _, c := range tileCases { // c.dt is s's dtype
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			adt := c.dt
			if adt == tensors.BFloat16 {
				adt = tensors.Float32
			}
			g := graphs.New("masked_diff_sq")
			s := g.Input("s", c.dt, graphs.S(c.tiles, c.q, c.q))
			cs := g.Input("cs", tensors.Float64, graphs.S(c.tiles, c.q))
			a := g.Input("a", adt, graphs.S(c.tiles, c.q, c.q))
			dy := g.Input("dy", adt, graphs.S(c.tiles, c.q))
			g.Output("rows", graphs.MaskedDiffSq(s, cs, a))
			ds, dcs := graphs.MaskedDiffSqGrad(s, cs, a, dy)
			g.Output("ds", ds)
			g.Output("dcs", dcs)
			rng := rand.New(rand.NewPCG(6, uint64(c.q)))
			q := int(c.q)
			csv := make([]float64, c.tiles*c.q)
			for i := range csv {
				if i%q == 0 {
					csv[i] = rng.NormFloat64()
				} else {
					csv[i] = csv[i-1] + 0.5*(0.05-rng.Float64())
				}
			}
			feeds := map[string]*tensors.Tensor{
				"s":  graphtest.Random(rng, -1, 1, c.tiles, c.q, c.q).Convert(c.dt),
				"cs": tensors.FromFloat64([]int64{c.tiles, c.q}, csv),
				"a":  graphtest.Random(rng, 0, 0.1, c.tiles, c.q, c.q).Convert(adt),
				"dy": graphtest.Random(rng, -1, 1, c.tiles, c.q).Convert(adt),
			}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			sv := feeds["s"].Convert(tensors.Float64).Float64s()
			av := feeds["a"].Convert(tensors.Float64).Float64s()
			dyv := feeds["dy"].Convert(tensors.Float64).Float64s()
			rows, dsv, dcsv := out["rows"].Convert(tensors.Float64).Float64s(), out["ds"].Convert(tensors.Float64).Float64s(), out["dcs"].Float64s()
			u := 4 * math.Pow(2, -24) // float32 operations and the CUDA exponential, per term
			round := u
			if c.dt == tensors.BFloat16 {
				round = math.Pow(2, -8) + u
			}
			if c.dt == tensors.Float64 {
				u, round = 1e-15, 1e-15
			}
			b := newBounds(t)
			check := func(name string, at int, got, want, allowed float64) {
				t.Helper()
				b.check(name, got, want, allowed+1e-300, at)
			}
			for tile := 0; tile < int(c.tiles); tile++ {
				col, colAbs := make([]float64, q), make([]float64, q)
				row, rowAbs := make([]float64, q), make([]float64, q)
				for i := 0; i < q; i++ {
					sq, sqAbs := 0.0, 0.0
					base := tile*q + i
					for j := 0; j < q; j++ {
						at := base*q + j
						l, k := 0.0, 0.0
						if j <= i {
							l = math.Exp(csv[base] - csv[tile*q+j])
							k = sv[at] * l
						}
						e := k - av[at]
						sq += e * e
						sqAbs += (math.Abs(k) + math.Abs(av[at])) * (math.Abs(k) + math.Abs(av[at]))
						dk := 2 * dyv[base] * e
						check("ds", at, dsv[at], dk*l, round*math.Abs(dk*l)+4*u*math.Abs(2*dyv[base])*(math.Abs(k)+math.Abs(av[at]))*l)
						gv := dk * k
						row[i] += gv
						col[j] += gv
						ga := math.Abs(2*dyv[base]) * (math.Abs(k) + math.Abs(av[at])) * math.Abs(k)
						rowAbs[i] += ga
						colAbs[j] += ga
					}
					check("rows", base, rows[base], sq, (float64(q)+4)*u*sqAbs)
				}
				for k := 0; k < q; k++ {
					check("dcs", tile*q+k, dcsv[tile*q+k], row[k]-col[k], (float64(q)+4)*u*(rowAbs[k]+colAbs[k]))
				}
			}
			b.log()
		})
	}
}

// TestCausalSoftmax checks the fused causal softmax against the softmax
// computed here in float64 from the same scores, on the CPU in each dtype
// (with fewer queries than keys: the last Tq positions) and, with
// MOHAWK_TEST_CUDA set, on the GPU (Tk = 300 loops the block's threads):
// within a few units of float32 per probability plus the rounding of the
// exponential's argument, and exactly 0 where masked.
func TestCausalSoftmax(t *testing.T) {
	for _, c := range []struct {
		name          string
		dt            tensors.DType
		env           func(testing.TB) *runtime.Env
		rows, tq, tk  int64
		scale, spread float64
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 3, 9, 9, 0.125, 30},
		{"cpu/float32", tensors.Float32, graphtest.Env, 3, 5, 9, 0.125, 30},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 3, 9, 9, 0.125, 30},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 4, 300, 300, 0.125, 60},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 4, 300, 300, 0.125, 60},
		{"cuda/float32-offset", tensors.Float32, graphtest.CUDAEnv, 40, 7, 64, 1, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("causal_softmax")
			x := g.Input("x", c.dt, graphs.S(c.rows, c.tq, c.tk))
			g.Output("p", graphs.CausalSoftmax(x, c.scale))
			rng := rand.New(rand.NewPCG(4, uint64(c.tk)))
			xt := graphtest.Random(rng, -c.spread, c.spread, c.rows, c.tq, c.tk).Convert(c.dt)
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, map[string]*tensors.Tensor{"x": xt})
			got, xv := out["p"].Convert(tensors.Float64).Float64s(), xt.Convert(tensors.Float64).Float64s()
			// Relative to p: a few units of float32 for the exponential, the
			// sum and the quotient, and the rounding of the exponential's
			// argument (z − m)·log₂e, which the CUDA kernel's ex2 turns
			// into |z − m| units more.
			tol := func(arg float64) float64 { return (8 + 2*math.Abs(arg)) * math.Pow(2, -24) }
			if c.dt == tensors.Float64 {
				tol = func(float64) float64 { return 1e-14 }
			}
			b := newBounds(t)
			tq, tk := int(c.tq), int(c.tk)
			for r := 0; r < int(c.rows)*tq; r++ {
				limit := r%tq + tk - tq
				m, sum := math.Inf(-1), 0.0
				z := make([]float64, tk)
				for j := 0; j <= limit; j++ {
					z[j] = float64(float32(xv[r*tk+j] * c.scale))
					if c.dt == tensors.Float64 {
						z[j] = xv[r*tk+j] * c.scale
					}
					m = max(m, z[j])
				}
				for j := 0; j <= limit; j++ {
					sum += math.Exp(z[j] - m)
				}
				for j := 0; j < tk; j++ {
					want := 0.0
					if j <= limit {
						want = math.Exp(z[j]-m) / sum
					}
					allowed := tol(z[j]-m)*want + 1e-45
					if j > limit {
						allowed = 0
					}
					b.check("p", got[r*tk+j], want, allowed, r, j)
				}
			}
			b.log()
		})
	}
}

// TestSoftCrossEntropy checks the fused soft cross-entropy, its stats and
// its gradient (SoftCrossEntropyGrad, from the node's own stats) against
// sums computed here in float64 from the same logits, on the CPU (which
// sums in float64) and, with MOHAWK_TEST_CUDA set, on the GPU (V = 300
// loops the block's threads; 4,000 rows run many blocks), for each pair of
// student and teacher dtypes the kernels take. The allowed error is a few
// units of float32 relative to the row's log-sum-exps (the CUDA kernel's
// ex2 and lg2 are approximate), plus half a unit of bfloat16 for a
// bfloat16 gradient.
func TestSoftCrossEntropy(t *testing.T) {
	f32, f64, bf := tensors.Float32, tensors.Float64, tensors.BFloat16
	for _, c := range []struct {
		name       string
		s, t       tensors.DType
		env        func(testing.TB) *runtime.Env
		rows, v    int64
		scale, max float64
	}{
		{"cpu/float64", f64, f64, graphtest.Env, 6, 37, 0.5, 30},
		{"cpu/float32-bfloat16", f32, bf, graphtest.Env, 6, 37, 1, 30},
		{"cpu/bfloat16-float32", bf, f32, graphtest.Env, 6, 37, 1, 30},
		{"cuda/float32-float32", f32, f32, graphtest.CUDAEnv, 8, 300, 1, 30},
		{"cuda/float32-bfloat16", f32, bf, graphtest.CUDAEnv, 8, 300, 0.5, 30},
		{"cuda/bfloat16-float32", bf, f32, graphtest.CUDAEnv, 8, 300, 1, 30},
		{"cuda/bfloat16-bfloat16", bf, bf, graphtest.CUDAEnv, 8, 300, 1, 30},
		{"cuda/float32-bfloat16-rows", f32, bf, graphtest.CUDAEnv, 4000, 64, 1, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			sum := f32 // the dtype of ce, stats and dce
			if c.s == f64 {
				sum = f64
			}
			g := graphs.New("soft_cross_entropy")
			sv := g.Input("s", c.s, graphs.S(2, c.rows/2, c.v))
			tv := g.Input("t", c.t, graphs.S(2, c.rows/2, c.v))
			dce := g.Input("dce", sum, graphs.S(2, c.rows/2))
			ce, stats := graphs.SoftCrossEntropy(sv, tv, c.scale)
			g.Output("ce", ce)
			g.Output("stats", stats)
			g.Output("ds", graphs.SoftCrossEntropyGrad(sv, tv, ce.Node().Inputs[2], stats, dce))
			rows := int(c.rows)
			rng := rand.New(rand.NewPCG(9, uint64(c.v)))
			st := graphtest.Random(rng, -c.max, c.max, 2, int64(rows/2), c.v).Convert(c.s)
			tt := graphtest.Random(rng, -c.max, c.max, 2, int64(rows/2), c.v).Convert(c.t)
			dt := graphtest.Random(rng, -1, 1, 2, int64(rows/2)).Convert(sum)
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, map[string]*tensors.Tensor{"s": st, "t": tt, "dce": dt})
			sx, tx, dx := st.Convert(f64).Float64s(), tt.Convert(f64).Float64s(), dt.Convert(f64).Float64s()
			gotCE, gotStats, gotDS := out["ce"].Convert(f64).Float64s(), out["stats"].Convert(f64).Float64s(), out["ds"].Convert(f64).Float64s()
			unit := math.Pow(2, -24)
			if c.s == f64 {
				unit = math.Pow(2, -50)
			}
			round := func(x float64) float64 { // z and u are rounded to the sums' dtype
				if c.s == f64 {
					return x
				}
				return float64(float32(x))
			}
			b := newBounds(t)
			v := int(c.v)
			for r := 0; r < rows; r++ {
				z, u := make([]float64, v), make([]float64, v)
				mz, mu := math.Inf(-1), math.Inf(-1)
				for j := range v {
					z[j], u[j] = round(sx[r*v+j]*c.scale), round(tx[r*v+j]*c.scale)
					mz, mu = max(mz, z[j]), max(mu, u[j])
				}
				var sz, su, w float64
				for j := range v {
					sz += math.Exp(z[j] - mz)
					su += math.Exp(u[j] - mu)
					w += math.Exp(u[j]-mu) * (z[j] - mz)
				}
				lz, lu, want := mz+math.Log(sz), mu+math.Log(su), math.Log(sz)-w/su
				scaleOf := 1 + math.Abs(lz) + math.Abs(lu)
				b.check("ce", gotCE[r], want, 16*unit*scaleOf, r)
				b.check("lse z", gotStats[2*r], lz, 16*unit*scaleOf, r)
				b.check("lse u", gotStats[2*r+1], lu, 16*unit*scaleOf, r)
				gr := dx[r] * c.scale
				for j := range v {
					ps, pt := math.Exp(z[j]-lz), math.Exp(u[j]-lu)
					want := gr * (ps - pt)
					allowed := math.Abs(gr) * (ps + pt) * 16 * unit * (scaleOf + math.Abs(z[j]) + math.Abs(u[j]))
					if c.s == bf {
						allowed += math.Abs(want) * math.Pow(2, -8) // half a unit of bfloat16
					}
					b.check("ds", gotDS[r*v+j], want, allowed+1e-300, r, j)
				}
			}
			b.log()
		})
	}
}

// lnReference is LayerNormalization's gradient computed here in float64
// from x, γ and dy [rows, d] with the statistics of x: dx, dγ and dβ, and
// per row the scale of dx's terms (r·(|g| + mean|g| + |x̂|·mean|g·x̂|) per
// element is at most r·rowScale·(1+|x̂|)) and of dγ's (Σ|dy·x̂| per column).
type lnReference struct {
	dx, dg, db, gScale []float64
	r, xhat            []float64
	rowScale           []float64
}

func layerNormReference(x, gamma, dy []float64, rows, d int, eps float64) lnReference {
	ref := lnReference{dx: make([]float64, rows*d), dg: make([]float64, d), db: make([]float64, d), gScale: make([]float64, d),
		r: make([]float64, rows), xhat: make([]float64, rows*d), rowScale: make([]float64, rows)}
	for i := range rows {
		row := x[i*d : (i+1)*d]
		mu, v := 0.0, 0.0
		for _, e := range row {
			mu += e / float64(d)
		}
		for _, e := range row {
			v += (e - mu) * (e - mu) / float64(d)
		}
		r := 1 / math.Sqrt(v+eps)
		ref.r[i] = r
		var m1, m2, a1, a2 float64
		for j := range d {
			xh := (row[j] - mu) * r
			ref.xhat[i*d+j] = xh
			g := dy[i*d+j] * gamma[j]
			m1 += g / float64(d)
			m2 += g * xh / float64(d)
			a1 += math.Abs(g) / float64(d)
			a2 += math.Abs(g*xh) / float64(d)
			ref.dg[j] += dy[i*d+j] * xh
			ref.db[j] += dy[i*d+j]
			ref.gScale[j] += math.Abs(dy[i*d+j] * xh)
		}
		ref.rowScale[i] = a1 + a2
		for j := range d {
			g := dy[i*d+j] * gamma[j]
			ref.dx[i*d+j] = r * (g - m1 - ref.xhat[i*d+j]*m2)
		}
	}
	return ref
}

// TestLayerNormGrad checks LayerNormalization's fused gradient against
// the gradient computed here in float64: the LayerNormGrad node alone in
// float64 on the CPU (statistics fed), then the gradient of a
// LayerNormalization node (its own statistics, through the fused node and
// the sums of its partials) in float32 and bfloat16 on the CPU and, with
// MOHAWK_TEST_CUDA set, on the GPU. Rows not a multiple of NormChunks leave
// chunks short or empty; D = 300 loops the row kernel's threads. dx is
// allowed a few units of its dtype relative to its terms' scale, dγ and
// dβ the float32 summation bound over a chunk and the chunks.
func TestLayerNormGrad(t *testing.T) {
	const eps = 1e-5
	for _, c := range []struct {
		name    string
		dt      tensors.DType
		env     func(testing.TB) *runtime.Env
		rows, d int64
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 150, 37},
		{"cpu/float32", tensors.Float32, graphtest.Env, 150, 37},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 150, 37},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 150, 300},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 150, 300},
		{"cuda/float32-rows", tensors.Float32, graphtest.CUDAEnv, 4000, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			rng := rand.New(rand.NewPCG(11, uint64(c.d)))
			xt := graphtest.Random(rng, -3, 5, c.rows, c.d).Convert(c.dt)
			gt := graphtest.Random(rng, 0.5, 1.5, c.d).Convert(c.dt)
			bt := graphtest.Random(rng, -1, 1, c.d).Convert(c.dt)
			dyt := graphtest.Random(rng, -1, 1, c.rows, c.d).Convert(c.dt)
			x, gamma, dy := xt.Convert(tensors.Float64).Float64s(), gt.Convert(tensors.Float64).Float64s(), dyt.Convert(tensors.Float64).Float64s()
			rows, d := int(c.rows), int(c.d)
			ref := layerNormReference(x, gamma, dy, rows, d, eps)
			g := graphs.New("layer_norm_grad")
			xv := g.Input("x", c.dt, graphs.S(c.rows, c.d))
			gv := g.Input("gamma", c.dt, graphs.S(c.d))
			dyv := g.Input("dy", c.dt, graphs.S(c.rows, c.d))
			feeds := map[string]*tensors.Tensor{"x": xt, "gamma": gt, "dy": dyt}
			if c.dt == tensors.Float64 || c.dt == tensors.BFloat16 && strings.HasPrefix(c.name, "cpu/") {
				// The node alone, fed the statistics (LayerNormalization
				// gives none in float64, and the CPU provider has no
				// bfloat16 kernel for it).
				mu, r := make([]float64, rows), make([]float64, rows)
				for i := range rows {
					r[i] = ref.r[i]
					mu[i] = x[i*d] - ref.xhat[i*d]/r[i]
				}
				st := tensors.Float64
				if c.dt != st {
					st = tensors.Float32
				}
				feeds["mean"] = tensors.FromFloat64([]int64{c.rows, 1}, mu).Convert(st)
				feeds["invstd"] = tensors.FromFloat64([]int64{c.rows, 1}, r).Convert(st)
				dx, dgp, dbp := graphs.LayerNormGrad(xv, gv, g.Input("mean", st, graphs.S(c.rows, 1)), g.Input("invstd", st, graphs.S(c.rows, 1)), dyv)
				g.Output("dx", dx)
				g.Output("dgamma", graphs.ReduceSum(dgp, []int64{0}, false))
				g.Output("dbeta", graphs.ReduceSum(dbp, []int64{0}, false))
			} else {
				bv := g.Input("beta", c.dt, graphs.S(c.d))
				feeds["beta"] = bt
				y := graphs.LayerNormalization(xv, gv, bv, eps)
				gr := graphs.Gradients(graphs.ReduceSumAll(graphs.Mul(graphs.Cast(y, tensors.Float32), graphs.Cast(dyv, tensors.Float32))), xv, gv, bv)
				g.Output("dx", gr[0])
				g.Output("dgamma", gr[1])
				g.Output("dbeta", gr[2])
				n := 0
				for _, node := range g.Nodes() {
					if node.Op == "LayerNormGrad" {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("%d LayerNormGrad nodes in the gradient, want 1", n)
				}
			}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			dx, dg, db := out["dx"].Convert(tensors.Float64).Float64s(), out["dgamma"].Convert(tensors.Float64).Float64s(), out["dbeta"].Convert(tensors.Float64).Float64s()
			unit, half := math.Pow(2, -24), 0.0
			switch c.dt {
			case tensors.Float64:
				unit = math.Pow(2, -50)
			case tensors.BFloat16:
				half = math.Pow(2, -8) // half a unit of bfloat16, relative
			}
			per := float64((rows + graphs.NormChunks - 1) / graphs.NormChunks)
			b := newBounds(t)
			for i := range rows {
				for j := range d {
					k := i*d + j
					allowed := 64*unit*ref.r[i]*(math.Abs(dy[k]*gamma[j])+ref.rowScale[i])*(1+math.Abs(ref.xhat[k])) + half*math.Abs(ref.dx[k])
					b.check("dx", dx[k], ref.dx[k], allowed, i, j)
				}
			}
			for j := range d {
				sum := (per + graphs.NormChunks + 64) * unit
				b.check("dgamma", dg[j], ref.dg[j], sum*ref.gScale[j]+half*math.Abs(ref.dg[j]), j)
				bsum := 0.0
				for i := range rows {
					bsum += math.Abs(dy[i*d+j])
				}
				b.check("dbeta", db[j], ref.db[j], sum*bsum+half*math.Abs(ref.db[j]), j)
			}
			b.log()
		})
	}
}

// TestSiluMul checks the fused SiLU gate y·z·σ(z) and its gradient
// (SiluMulGrad) against the formulas computed here in float64 from the
// same inputs, on the CPU in each dtype and, with MOHAWK_TEST_CUDA set, on
// the GPU, over z from −30 to 30 (σ saturating both ways): within a few
// units of float32 relative to the terms (the CUDA kernel's exponential is
// approximate), plus half a unit of bfloat16 for bfloat16 outputs.
func TestSiluMul(t *testing.T) {
	for _, c := range []struct {
		name string
		dt   tensors.DType
		env  func(testing.TB) *runtime.Env
		n    int64
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 999},
		{"cpu/float32", tensors.Float32, graphtest.Env, 999},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 999},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 300_001},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 300_001},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("silu_mul")
			y, z, d := g.Input("y", c.dt, graphs.S(c.n)), g.Input("z", c.dt, graphs.S(c.n)), g.Input("d", c.dt, graphs.S(c.n))
			g.Output("out", graphs.SiluMul(y, z))
			dy, dz := graphs.SiluMulGrad(y, z, d)
			g.Output("dy", dy)
			g.Output("dz", dz)
			rng := rand.New(rand.NewPCG(12, uint64(c.n)))
			feeds := map[string]*tensors.Tensor{"y": graphtest.Random(rng, -2, 2, c.n).Convert(c.dt),
				"z": graphtest.Random(rng, -30, 30, c.n).Convert(c.dt), "d": graphtest.Random(rng, -1, 1, c.n).Convert(c.dt)}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			yv, zv, dv := feeds["y"].Convert(tensors.Float64).Float64s(), feeds["z"].Convert(tensors.Float64).Float64s(), feeds["d"].Convert(tensors.Float64).Float64s()
			got := map[string][]float64{}
			for _, k := range []string{"out", "dy", "dz"} {
				got[k] = out[k].Convert(tensors.Float64).Float64s()
			}
			unit, half := 16*math.Pow(2, -24), 0.0
			switch c.dt {
			case tensors.Float64:
				unit = 32 * math.Pow(2, -52)
			case tensors.BFloat16:
				half = math.Pow(2, -8)
			}
			b := newBounds(t)
			for i := range yv {
				s := 1 / (1 + math.Exp(-zv[i]))
				want := map[string]float64{"out": yv[i] * zv[i] * s, "dy": dv[i] * zv[i] * s, "dz": dv[i] * yv[i] * s * (1 + zv[i]*(1-s))}
				scale := map[string]float64{"out": math.Abs(want["out"]), "dy": math.Abs(want["dy"]),
					"dz": math.Abs(dv[i]*yv[i]*s) * (1 + math.Abs(zv[i])*(1-s))}
				for k, w := range want {
					b.check(k, got[k][i], w, unit*scale[k]*(1+math.Abs(zv[i])*(1-s))+half*math.Abs(w), i)
				}
			}
			b.log()
		})
	}
}

// TestResidual checks the fused residual update against the stock Adds
// (and Casts of bfloat16 parts) it replaces, bit for bit, on the CPU and,
// with MOHAWK_TEST_CUDA set, on the GPU: one part or two, each float32 or
// bfloat16, and float64 on the CPU; a NaN or an infinity in a part
// reaches the result as the stock sum has it.
func TestResidual(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   func(testing.TB) *runtime.Env
		h     tensors.DType
		parts []tensors.DType
		n     int64
	}{
		{"cpu/float64", graphtest.Env, tensors.Float64, []tensors.DType{tensors.Float64, tensors.Float64}, 999},
		{"cpu/one-float32", graphtest.Env, tensors.Float32, []tensors.DType{tensors.Float32}, 999},
		{"cpu/two-bfloat16", graphtest.Env, tensors.Float32, []tensors.DType{tensors.BFloat16, tensors.BFloat16}, 70_001},
		{"cpu/float32-bfloat16", graphtest.Env, tensors.Float32, []tensors.DType{tensors.Float32, tensors.BFloat16}, 999},
		{"cuda/one-bfloat16", graphtest.CUDAEnv, tensors.Float32, []tensors.DType{tensors.BFloat16}, 300_001},
		{"cuda/two-bfloat16", graphtest.CUDAEnv, tensors.Float32, []tensors.DType{tensors.BFloat16, tensors.BFloat16}, 300_001},
		{"cuda/bfloat16-float32", graphtest.CUDAEnv, tensors.Float32, []tensors.DType{tensors.BFloat16, tensors.Float32}, 300_001},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("residual")
			h := g.Input("h", c.h, graphs.S(c.n))
			rng := rand.New(rand.NewPCG(21, uint64(c.n)))
			hv := graphtest.Random(rng, -4, 4, c.n).Convert(c.h)
			feeds := map[string]*tensors.Tensor{"h": hv}
			var parts, wide []*graphs.Value
			for i, dt := range c.parts {
				name := string(rune('a' + i))
				p := g.Input(name, dt, graphs.S(c.n))
				parts, wide = append(parts, p), append(wide, graphs.Cast(p, c.h))
				pv := graphtest.Random(rng, -4, 4, c.n).Convert(tensors.Float64).Float64s()
				pv[7*i+1], pv[7*i+2] = math.NaN(), math.Inf(1-2*i)
				feeds[name] = tensors.FromFloat64([]int64{c.n}, pv).Convert(dt)
			}
			g.Output("fused", graphs.Residual(h, parts...))
			stock := graphs.Add(h, wide[0])
			if len(wide) == 2 {
				stock = graphs.Add(graphs.Add(wide[0], wide[1]), h)
			}
			g.Output("stock", stock)
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			got, want := out["fused"].Convert(tensors.Float64).Float64s(), out["stock"].Convert(tensors.Float64).Float64s()
			for i := range want {
				if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
					t.Fatalf("fused[%d] = %g, stock %g", i, got[i], want[i])
				}
			}
			if !math.IsNaN(got[1]) {
				t.Fatalf("fused[1] = %g with a NaN part", got[1])
			}
		})
	}
}

// TestRotary checks the fused rotary embedding bit for bit against sums
// rounded here as the stock ops round them and against the stock ops of
// layers.ApplyRotary (where ONNX Runtime's CPU has them), on the CPU in
// each dtype and, with MOHAWK_TEST_CUDA set, on the GPU: tables covering part of each head
// (Phi's 32 of 64) and all of it (Llama's), a NaN in x reaching its own
// channel and its partner.
func TestRotary(t *testing.T) {
	for _, c := range []struct {
		name           string
		dt             tensors.DType
		env            func(testing.TB) *runtime.Env
		b, tt, h, p, r int64
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 2, 5, 3, 8, 4},
		{"cpu/float32", tensors.Float32, graphtest.Env, 2, 5, 3, 8, 8},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 2, 5, 3, 8, 4},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 3, 300, 8, 64, 32},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 3, 300, 8, 64, 32},
		{"cuda/bfloat16-full", tensors.BFloat16, graphtest.CUDAEnv, 2, 77, 4, 64, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			g := graphs.New("rotary")
			x := g.Input("x", c.dt, graphs.S(c.b, c.tt, c.h, c.p))
			cos, sin := g.Input("cos", c.dt, graphs.S(c.tt, 1, c.r)), g.Input("sin", c.dt, graphs.S(c.tt, 1, c.r))
			g.Output("fused", graphs.Rotary(x, cos, sin))
			stock := c.dt != tensors.BFloat16 || strings.HasPrefix(c.name, "cuda") // ORT's CPU has no bfloat16 Neg
			if stock {
				g.Output("stock", layers.ApplyRotary(x, cos, sin, c.r))
			}
			rng := rand.New(rand.NewPCG(31, uint64(c.p)))
			xv := graphtest.Random(rng, -3, 3, c.b, c.tt, c.h, c.p).Convert(tensors.Float64).Float64s()
			xv[1] = math.NaN()
			feeds := map[string]*tensors.Tensor{"x": tensors.FromFloat64([]int64{c.b, c.tt, c.h, c.p}, xv).Convert(c.dt),
				"cos": graphtest.Random(rng, -1, 1, c.tt, 1, c.r).Convert(c.dt), "sin": graphtest.Random(rng, -1, 1, c.tt, 1, c.r).Convert(c.dt)}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			got := out["fused"].Convert(tensors.Float64).Float64s()
			// The reference here: each product and the sum rounded to the
			// dtype, as the stock ops do.
			round := func(v float64) float64 {
				switch c.dt {
				case tensors.Float32:
					return float64(float32(v))
				case tensors.BFloat16:
					return float64(tensors.BFloat16ToFloat32(tensors.Float32ToBFloat16(float32(v))))
				}
				return v
			}
			xs, cs, ss := feeds["x"].Convert(tensors.Float64).Float64s(), feeds["cos"].Convert(tensors.Float64).Float64s(), feeds["sin"].Convert(tensors.Float64).Float64s()
			want := make([]float64, len(xs))
			p, r, h := int(c.p), int(c.r), int(c.r/2)
			for i := range xs {
				ch, tt := i%p, i/p/int(c.h)%int(c.tt)
				want[i] = xs[i]
				if ch < r {
					var rc float64
					if ch < h {
						rc = -xs[i+h]
					} else {
						rc = xs[i-h]
					}
					want[i] = round(round(xs[i]*cs[tt*r+ch]) + round(rc*ss[tt*r+ch]))
				}
			}
			refs := map[string][]float64{"reference": want}
			if stock {
				refs["stock"] = out["stock"].Convert(tensors.Float64).Float64s()
			}
			for name, ref := range refs {
				for i := range ref {
					if got[i] != ref[i] && !(math.IsNaN(got[i]) && math.IsNaN(ref[i])) {
						t.Fatalf("fused[%d] = %g, %s %g", i, got[i], name, ref[i])
					}
				}
			}
			if !math.IsNaN(got[1]) || !math.IsNaN(got[1+c.r/2]) {
				t.Fatalf("a NaN at channel 1 gave %g there and %g at its partner", got[1], got[1+c.r/2])
			}
		})
	}
}

// TestFusedNaN checks that a NaN input reaches the outputs it feeds, and
// only those, in the soft cross-entropy, the LayerNorm gradient and the
// SiLU gate, on the CPU and (with MOHAWK_TEST_CUDA set) on the GPU (whose
// max.f32 drops NaN operands, so the sums must carry it): a NaN logit
// makes its row's loss, statistics and gradient NaN, a NaN dy its row's dx
// and the γ and β gradients, a NaN z its gate output and gradients, so that
// the trainer's non-finite guard sees it.
func TestFusedNaN(t *testing.T) {
	for _, c := range []struct {
		name string
		env  func(testing.TB) *runtime.Env
	}{{"cpu", graphtest.Env}, {"cuda", graphtest.CUDAEnv}} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			const rows, v = 3, 300
			g := graphs.New("fused_nan")
			f32 := func(name string, d ...int64) *graphs.Value {
				return g.Input(name, tensors.Float32, graphs.StaticShape(d))
			}
			sv, tv, dce := f32("s", rows, v), f32("t", rows, v), f32("dce", rows)
			ce, stats := graphs.SoftCrossEntropy(sv, tv, 1)
			g.Output("ce", ce)
			g.Output("stats", stats)
			g.Output("ds", graphs.SoftCrossEntropyGrad(sv, tv, ce.Node().Inputs[2], stats, dce))
			xv, gv, mv, rv, dyv := f32("x", rows, v), f32("gamma", v), f32("mean", rows, 1), f32("invstd", rows, 1), f32("dy", rows, v)
			dx, dgp, _ := graphs.LayerNormGrad(xv, gv, mv, rv, dyv)
			g.Output("dx", dx)
			g.Output("dgamma", graphs.ReduceSum(dgp, []int64{0}, false))
			yv, zv := f32("y", rows, v), f32("z", rows, v)
			g.Output("gate", graphs.SiluMul(yv, zv))
			dyg, dzg := graphs.SiluMulGrad(yv, zv, dyv)
			g.Output("dy_gate", dyg)
			g.Output("dz_gate", dzg)
			rng := rand.New(rand.NewPCG(13, 13))
			feed := func(nan int, d ...int64) *tensors.Tensor { // NaN at element nan (−1: none)
				x := graphtest.Random(rng, -2, 2, d...).Float64s()
				if nan >= 0 {
					x[nan] = math.NaN()
				}
				return tensors.FromFloat64(d, x).AsFloat32()
			}
			feeds := map[string]*tensors.Tensor{
				"s": feed(7, rows, v), "t": feed(v+5, rows, v), "dce": feed(-1, rows),
				"x": feed(-1, rows, v), "gamma": feed(-1, v), "mean": feed(-1, rows, 1), "invstd": tensors.FromFloat64([]int64{rows, 1}, []float64{1, 1, 1}).AsFloat32(),
				"dy": feed(2*v+9, rows, v), "y": feed(-1, rows, v), "z": feed(2*v+9, rows, v),
			}
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			// check checks that row r of name (rows of width w) is all NaN
			// exactly when nan[r], and finite otherwise.
			check := func(name string, w int, nan ...bool) {
				x := out[name].Convert(tensors.Float64).Float64s()
				for r, want := range nan {
					for j := range w {
						if got := math.IsNaN(x[r*w+j]); got != want || !want && math.IsInf(x[r*w+j], 0) {
							t.Fatalf("%s[%d, %d] = %g, want NaN: %v", name, r, j, x[r*w+j], want)
						}
					}
				}
			}
			check("ce", 1, true, true, false)
			// stats [rows, 2]: row 0's student and row 1's teacher log-sum-exp.
			st := out["stats"].Convert(tensors.Float64).Float64s()
			for i, want := range []bool{true, false, false, true, false, false} {
				if math.IsNaN(st[i]) != want {
					t.Fatalf("stats %v: want NaN exactly at 0 and 3", st)
				}
			}
			check("ds", v, true, true, false)
			check("dx", v, false, false, true)
			dg := out["dgamma"].Convert(tensors.Float64).Float64s()
			if !math.IsNaN(dg[9]) || math.IsNaN(dg[0]) {
				t.Fatalf("dgamma[9] = %g (want NaN), dgamma[0] = %g (want finite)", dg[9], dg[0])
			}
			for _, name := range []string{"gate", "dy_gate", "dz_gate"} {
				x := out[name].Convert(tensors.Float64).Float64s()
				for i, e := range x {
					if math.IsNaN(e) != (i == 2*v+9) {
						t.Fatalf("%s[%d] = %g: want NaN only at %d", name, i, e, 2*v+9)
					}
				}
			}
		})
	}
}

// TestTileKernelShapeRules checks that the shape rules of the fused
// kernels (SegsumExp, MaskedDiffSq, CausalSoftmax, CausalConvSplit,
// Residual and more) refuse what their kernels cannot take.
func TestTileKernelShapeRules(t *testing.T) {
	g := graphs.New("bad")
	f32 := func(name string, d ...int64) *graphs.Value {
		return g.Input(name, tensors.Float32, graphs.StaticShape(d))
	}
	f64 := func(name string, d ...int64) *graphs.Value {
		return g.Input(name, tensors.Float64, graphs.StaticShape(d))
	}
	for _, c := range []struct {
		name  string
		build func()
	}{
		{"SegsumExp of float32 sums", func() { graphs.SegsumExp(f32("cs32", 2, 5), tensors.Float32) }},
		{"SegsumExp into int64", func() { graphs.SegsumExp(f64("cs", 2, 5), tensors.Int64) }},
		{"SegsumExpGrad of non-square", func() { graphs.SegsumExpGrad(f32("l", 2, 5, 4), f32("dl", 2, 5, 4)) }},
		{"MaskedDiffSq target shape", func() { graphs.MaskedDiffSq(f32("s", 2, 5, 5), f64("c", 2, 5), f32("a", 2, 5, 4)) }},
		{"MaskedDiffSq decays length", func() { graphs.MaskedDiffSq(f32("s2", 2, 5, 5), f64("c2", 2, 4), f32("a2", 2, 5, 5)) }},
		{"MaskedDiffSq float64 target of float32 s", func() { graphs.MaskedDiffSq(f32("s3", 2, 5, 5), f64("c3", 2, 5), f64("a3", 2, 5, 5)) }},
		{"MaskedDiffSqGrad dy shape", func() {
			graphs.MaskedDiffSqGrad(f32("s4", 2, 5, 5), f64("c4", 2, 5), f32("a4", 2, 5, 5), f32("dy", 2, 4))
		}},
		{"CausalSoftmax more queries than keys", func() { graphs.CausalSoftmax(f32("x", 2, 6, 5), 1) }},
		{"CausalSoftmax of a vector", func() { graphs.CausalSoftmax(f32("v", 5), 1) }},
		{"SoftCrossEntropy vocabulary", func() { graphs.SoftCrossEntropy(f32("s4", 2, 7), f32("t4", 2, 6), 1) }},
		{"SoftCrossEntropy float64 teacher", func() { graphs.SoftCrossEntropy(f32("s5", 2, 7), f64("t5", 2, 7), 1) }},
		{"SoftCrossEntropyGrad stats", func() {
			s, tt := f32("s6", 2, 7), f32("t6", 2, 7)
			ce, _ := graphs.SoftCrossEntropy(s, tt, 1)
			graphs.SoftCrossEntropyGrad(s, tt, ce.Node().Inputs[2], f32("st6", 2, 3), f32("d6", 2))
		}},
		{"SegsumExpMul multiplicand shape", func() { graphs.SegsumExpMul(f64("cs12", 2, 5), f32("m12", 2, 5, 4)) }},
		{"CausalConvSplit widths sum", func() {
			graphs.CausalConvSplit(f32("x13", 2, 5, 7), f32("w13", 3, 1, 4), f32("b13", 3), 3, 3)
		}},
		{"CausalConvSplit conv across a part", func() {
			graphs.CausalConvSplit(f32("x14", 2, 5, 7), f32("w14", 3, 1, 4), f32("b14", 3), 2, 2, 3)
		}},
		{"CausalConvGrad parts", func() {
			x, w := f32("x15", 2, 5, 7), f32("w15", 3, 1, 4)
			p := graphs.CausalConvSplit(x, w, f32("b15", 3), 3, 4)
			graphs.CausalConvGrad(x, w, p[0].Node().Inputs[3], f32("dy15", 2, 5, 3))
		}},
		{"Rotary table length", func() { graphs.Rotary(f32("x19", 1, 3, 2, 8), f32("c19", 4, 1, 4), f32("s19", 4, 1, 4)) }},
		{"Rotary odd rotation", func() { graphs.Rotary(f32("x20", 1, 3, 2, 8), f32("c20", 3, 1, 3), f32("s20", 3, 1, 3)) }},
		{"Rotary table gradient", func() {
			x, c := f32("x21", 1, 3, 2, 8), f32("c21", 3, 1, 4)
			graphs.Gradients(graphs.ReduceSumAll(graphs.Rotary(x, c, f32("s21", 3, 1, 4))), c)
		}},
		{"Residual part shape", func() { graphs.Residual(f32("h16", 2, 7), f32("p16", 7)) }},
		{"Residual of bfloat16", func() {
			graphs.Residual(g.Input("h17", tensors.BFloat16, graphs.S(7)), g.Input("p17", tensors.BFloat16, graphs.S(7)))
		}},
		{"Residual of three parts", func() {
			graphs.Residual(f32("h18", 7), f32("p18", 7), f32("q18", 7), f32("r18", 7))
		}},
		{"SiluMul broadcast", func() { graphs.SiluMul(f32("y10", 2, 7), f32("z10", 7)) }},
		{"GateSkip heads not dividing C", func() {
			graphs.GateSkip(f32("y19", 2, 8), f32("z19", 2, 8), f32("x19", 2, 8), f32("d19", 3), f32("b19", 8))
		}},
		{"GateSkip bias length", func() {
			graphs.GateSkip(f32("y20", 2, 8), f32("z20", 2, 8), f32("x20", 2, 8), f32("d20", 4), f32("b20", 4))
		}},
		{"GateSkip broadcast x", func() {
			graphs.GateSkip(f32("y21", 2, 8), f32("z21", 2, 8), f32("x21", 8), f32("d21", 4), f32("b21", 8))
		}},
		{"SiluMul dtypes", func() { graphs.SiluMul(f32("y11", 7), f64("z11", 7)) }},
		{"LayerNormGrad gamma length", func() {
			graphs.LayerNormGrad(f32("x8", 3, 7), f32("g8", 6), f32("m8", 3, 1), f32("r8", 3, 1), f32("dy8", 3, 7))
		}},
		{"LayerNormGrad float64 statistics of float32 x", func() {
			graphs.LayerNormGrad(f32("x9", 3, 7), f32("g9", 7), f64("m9", 3, 1), f64("r9", 3, 1), f32("dy9", 3, 7))
		}},
		{"SoftCrossEntropy teacher gradient", func() {
			s, tt := f32("s7", 2, 7), f32("t7", 2, 7)
			ce, _ := graphs.SoftCrossEntropy(s, tt, 1)
			graphs.Gradients(graphs.ReduceSumAll(ce), tt)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := graphs.Try(c.build); err == nil {
				t.Fatal("want a shape-rule error")
			}
		})
	}
	if err := graphs.Try(func() {
		a := f32("target", 2, 5, 5)
		rows := graphs.MaskedDiffSq(f32("s5", 2, 5, 5), f64("c5", 2, 5), a)
		graphs.Gradients(graphs.ReduceSumAll(rows), a)
	}); err == nil {
		t.Error("MaskedDiffSq gave its target a gradient")
	}
}

// TestParseBlockKernels reads bench-stage's --block-kernels values and
// writes them back.
func TestParseBlockKernels(t *testing.T) {
	for _, c := range []struct {
		in, want string
		fail     bool
	}{
		{"all", "conv,decay,residual,rotary", false},
		{"true", "conv,decay,residual,rotary", false},
		{"none", "", false},
		{"false", "", false},
		{"", "", false},
		{"residual", "residual", false},
		{"rotary, conv", "conv,rotary", false},
		{"decay,decay", "decay", false},
		{"all,gate", "conv,decay,residual,rotary,gate", false},
		{"gate", "gate", false},
		{"conv,bogus", "", true},
		{"Conv", "", true},
	} {
		k, err := graphs.ParseBlockKernels(c.in)
		if (err != nil) != c.fail || k.String() != c.want {
			t.Errorf("ParseBlockKernels(%q) = %q, %v; want %q (error %v)", c.in, k, err, c.want, c.fail)
		}
	}
	// JSON (a plan's record): the names both ways, and the boolean that
	// plans wrote before.
	for _, c := range []struct {
		in   string
		want graphs.BlockKernel
		fail bool
	}{
		{`"conv,rotary"`, graphs.BlockConv | graphs.BlockRotary, false},
		{`""`, 0, false},
		{`true`, graphs.AllBlockKernels, false},
		{`false`, 0, false},
		{`3`, 0, true},
		{`"bogus"`, 0, true},
	} {
		var k graphs.BlockKernel
		err := json.Unmarshal([]byte(c.in), &k)
		if (err != nil) != c.fail || (!c.fail && k != c.want) {
			t.Errorf("json %s: %q, %v; want %q (error %v)", c.in, k, err, c.want, c.fail)
		}
	}
	b, err := json.Marshal(struct{ K graphs.BlockKernel }{graphs.BlockDecay | graphs.BlockResidual})
	var back struct{ K graphs.BlockKernel }
	if err != nil || json.Unmarshal(b, &back) != nil || back.K != graphs.BlockDecay|graphs.BlockResidual {
		t.Errorf("json round trip: %s, %v, %q", b, err, back.K)
	}
}

// TestGateSkip checks the fused gate with its skip and bias bit for bit
// against the fused SiLU gate (SiluMul, SiluMulGrad) of a = y + x·d and
// b = z + zb computed here, each product and sum rounded to the dtype as
// the stock Mul and Adds round them, on the CPU in each dtype and, with
// MOHAWK_TEST_CUDA set, on the GPU; a NaN in x reaches its element of the
// output and of b's gradient only.
func TestGateSkip(t *testing.T) {
	const heads, p = 4, 8 // C = 32
	for _, c := range []struct {
		name string
		dt   tensors.DType
		env  func(testing.TB) *runtime.Env
		rows int64
	}{
		{"cpu/float64", tensors.Float64, graphtest.Env, 33},
		{"cpu/float32", tensors.Float32, graphtest.Env, 33},
		{"cpu/bfloat16", tensors.BFloat16, graphtest.Env, 2_049},
		{"cuda/float32", tensors.Float32, graphtest.CUDAEnv, 10_001},
		{"cuda/bfloat16", tensors.BFloat16, graphtest.CUDAEnv, 10_001},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := c.env(t)
			const ch = heads * p
			rng := rand.New(rand.NewPCG(31, uint64(c.rows)))
			val := func(lo, hi float64, shape ...int64) *tensors.Tensor {
				return graphtest.Random(rng, lo, hi, shape...).Convert(c.dt)
			}
			feeds := map[string]*tensors.Tensor{"y": val(-2, 2, 3, c.rows, ch), "z": val(-8, 8, 3, c.rows, ch), "x": val(-2, 2, 3, c.rows, ch),
				"d": val(-1.5, 1.5, heads), "zb": val(-1, 1, ch), "g": val(-1, 1, 3, c.rows, ch)}
			xs := feeds["x"].Convert(tensors.Float64).Float64s()
			xs[5] = math.NaN()
			feeds["x"] = tensors.FromFloat64(feeds["x"].Shape, xs).Convert(c.dt)
			// a and b as the stock ops round them: the products and sums of
			// float32 or bfloat16 values are exact in float64, so rounding
			// each once to the dtype gives the dtype's own result.
			round := func(v []float64) []float64 {
				if c.dt == tensors.Float64 {
					return v
				}
				return tensors.FromFloat64([]int64{int64(len(v))}, v).Convert(c.dt).Convert(tensors.Float64).Float64s()
			}
			f64 := func(k string) []float64 { return feeds[k].Convert(tensors.Float64).Float64s() }
			y, z, d, zb := f64("y"), f64("z"), f64("d"), f64("zb")
			prod := make([]float64, len(y))
			for i := range y {
				prod[i] = xs[i] * d[i%ch/p]
			}
			prod = round(prod)
			sumA, sumB := make([]float64, len(y)), make([]float64, len(y))
			for i := range y {
				sumA[i], sumB[i] = y[i]+prod[i], z[i]+zb[i%ch]
			}
			shape := feeds["y"].Shape
			feeds["a"] = tensors.FromFloat64(shape, round(sumA)).Convert(c.dt)
			feeds["b"] = tensors.FromFloat64(shape, round(sumB)).Convert(c.dt)

			g := graphs.New("gate_skip")
			in := func(k string) *graphs.Value {
				shape := make(graphs.Shape, len(feeds[k].Shape))
				for i, n := range feeds[k].Shape {
					shape[i] = graphs.D(n)
				}
				return g.Input(k, c.dt, shape)
			}
			yv, zv, xv, dv, zbv, gv, av, bv := in("y"), in("z"), in("x"), in("d"), in("zb"), in("g"), in("a"), in("b")
			g.Output("out", graphs.GateSkip(yv, zv, xv, dv, zbv))
			g.Output("want_out", graphs.SiluMul(av, bv))
			da, db := graphs.GateSkipGrad(yv, zv, xv, dv, zbv, gv)
			wa, wb := graphs.SiluMulGrad(av, bv, gv)
			g.Output("da", da)
			g.Output("db", db)
			g.Output("want_da", wa)
			g.Output("want_db", wb)
			out := graphtest.RunSession(t, graphtest.SessionOn(t, env, g), g, feeds)
			for _, k := range []string{"out", "da", "db"} {
				got, want := out[k].Convert(tensors.Float64).Float64s(), out["want_"+k].Convert(tensors.Float64).Float64s()
				for i := range want {
					if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
						t.Fatalf("%s[%d] = %g, want %g (SiluMul of the stock-rounded sums)", k, i, got[i], want[i])
					}
				}
				// a NaN in a[5] reaches out and db (both take a), not da.
				if math.IsNaN(got[5]) != (k != "da") || math.IsNaN(got[4]) || math.IsNaN(got[6]) {
					t.Fatalf("%s: a NaN in x[5] gives %g, %g, %g at 4, 5, 6", k, got[4], got[5], got[6])
				}
			}
		})
	}
}
