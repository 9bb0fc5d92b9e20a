package layers

import (
	"mohawk/graphs"
	"mohawk/tensors"
)

// RMSNorm is w · x / sqrt(mean(x²) + eps) over the last axis, with weight
// named prefix+".weight", computed as transformers' LlamaRMSNorm does: the
// mean square and the scaling in at least float32, the product with the
// weight in x's own dtype.
func RMSNorm(p Params, prefix string, x *graphs.Value, eps float32) *graphs.Value {
	d := lastDim(x)
	w := p.Get(prefix+".weight", graphs.S(d))
	xf := graphs.FromLowPrecision(x)
	ms := graphs.ReduceMean(graphs.Mul(xf, xf), []int64{-1}, true)
	inv := graphs.Reciprocal(graphs.Sqrt(graphs.Add(ms, graphs.ScalarLike(ms, float64(eps)))))
	y := graphs.Cast(graphs.Mul(xf, inv), x.DType)
	return graphs.Mul(graphs.Cast(w, x.DType), y)
}

// SwiGLU is down(silu(gate(x)) · up(x)), the Llama-family MLP, with
// projections named prefix+".gate_proj", ".up_proj" and ".down_proj"
// (biased when bias is set).
func SwiGLU(p Params, prefix string, x *graphs.Value, inner int64, bias bool) *graphs.Value {
	gate := Linear(p, prefix+".gate_proj", x, inner, bias)
	up := Linear(p, prefix+".up_proj", x, inner, bias)
	return Linear(p, prefix+".down_proj", SiluGate(up, gate), lastDim(x), bias)
}

// SiluGate is y·silu(z) = y·z·σ(z) for y and z of one shape and dtype:
// one fused graphs.SiluMul node in a graph that uses fused kernels (float32
// and bfloat16; computed in float32 and rounded once), else stock ops
// (silu(z) rounded to the dtype before the product).
func SiluGate(y, z *graphs.Value) *graphs.Value {
	if y.Graph().FusedKernels() && (y.DType == tensors.Float32 || y.DType == tensors.BFloat16) {
		return graphs.SiluMul(y, z)
	}
	return graphs.Mul(graphs.Mul(z, graphs.Sigmoid(z)), y)
}

// RotaryFromFrequencies returns cos and sin [T, 1, 2·len(inv)] for
// positions pos [T]: angles p·inv[i] duplicated to the "rotate half"
// layout, each multiplied by scale (YaRN's attention factor; 1 otherwise).
// inv holds float32 values, as transformers computes them.
func RotaryFromFrequencies(pos *graphs.Value, inv []float64, scale float64) (cos, sin *graphs.Value) {
	g := pos.Graph()
	half := len(inv)
	full := make([]float64, 2*half)
	copy(full, inv)
	copy(full[half:], inv)
	invT := g.Const(tensors.FromFloat64([]int64{1, int64(2 * half)}, full).Convert(pos.DType))
	ang := graphs.Unsqueeze(graphs.Mul(graphs.Unsqueeze(pos, 1), invT), 1) // [T, 1, rot]
	cos, sin = graphs.Cos(ang), graphs.Sin(ang)
	if scale != 1 {
		cos, sin = graphs.Mul(cos, graphs.ScalarLike(cos, scale)), graphs.Mul(sin, graphs.ScalarLike(sin, scale))
	}
	return cos, sin
}

// RepeatHeads repeats each of the G heads of x [B, T, G, P] groups times in
// place ([B, T, G·groups, P], head h reading head h/groups), as grouped-
// query attention shares one key/value head among a group of query heads.
func RepeatHeads(x *graphs.Value, groups int64) *graphs.Value {
	if groups == 1 {
		return x
	}
	b, t, g, p := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	e := graphs.Expand(graphs.Unsqueeze(x, 3), graphs.Shape{b, t, g, graphs.D(groups), p}, x)
	return graphs.Reshape(e, 0, 0, g.Size()*groups, p.Size())
}

// WindowMask is CausalMask further limited to the last window key
// positions of each query (the query's own included): true where
// q + (Tk − Tq) − window < k ≤ q + (Tk − Tq), Mistral's sliding window.
func WindowMask(q, k *graphs.Value, qAxis, kAxis int, window int64) *graphs.Value {
	tq := graphs.Squeeze(graphs.ShapeOf(q, qAxis, qAxis+1), 0)
	tk := graphs.Squeeze(graphs.ShapeOf(k, kAxis, kAxis+1), 0)
	r := q.Graph().Root()
	rows := graphs.Unsqueeze(graphs.Range(graphs.Sub(tk, tq), tk, r.Int64(1), q.Shape[qAxis]), 1)
	cols := graphs.Unsqueeze(graphs.Range(r.Int64(0), tk, r.Int64(1), k.Shape[kAxis]), 0)
	seen := graphs.LessOrEqual(cols, rows)
	recent := graphs.Greater(cols, graphs.Sub(rows, r.Int64(window)))
	return graphs.And(seen, recent)
}

// MaskedAttention is CausalAttention under a given bool mask [Tq, Tk]
// (true where a key may be seen; every row must see at least one key).
func MaskedAttention(q, k, v, mask *graphs.Value, scale float64) (out, probs *graphs.Value) {
	scores := graphs.Mul(graphs.MatMul(q, graphs.Transpose(k, 0, 1, 3, 2)), graphs.ScalarLike(q, scale))
	probs = graphs.Softmax(graphs.Add(scores, MaskBias(mask, q)), -1)
	return graphs.MatMul(probs, v), probs
}
