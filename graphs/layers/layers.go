package layers

import (
	"math"

	"mohawk/graphs"
	"mohawk/tensors"
)

func lastDim(x *graphs.Value) int64 { return x.Shape[x.Rank()-1].Size() }

// Linear is y = x·Wᵀ + b with W [out, in] (PyTorch layout) named
// prefix+".weight" and, when bias is set, b [out] named prefix+".bias". It
// folds the leading axes into one GEMM with W transposed by the GEMM itself.
func Linear(p Params, prefix string, x *graphs.Value, out int64, bias bool) *graphs.Value {
	w, b := linearParams(p, prefix, lastDim(x), out, bias)
	return LinearWith(x, w, b)
}

// LinearLow is Linear computed in the graph's low precision
// (graphs.ToLowPrecision): under a bfloat16 MatMulPrecision x, W and b
// enter as bfloat16 and y stays bfloat16, for a chain of ops that runs at
// that precision up to the next product (as under PyTorch's bf16
// autocast); otherwise it is Linear.
func LinearLow(p Params, prefix string, x *graphs.Value, out int64, bias bool) *graphs.Value {
	low := graphs.ToLowPrecision
	w, b := linearParams(p, prefix, lastDim(x), out, bias)
	if b != nil {
		b = low(b)
	}
	return low(LinearWith(low(x), low(w), b))
}

func linearParams(p Params, prefix string, in, out int64, bias bool) (w, b *graphs.Value) {
	w = p.Get(prefix+".weight", graphs.S(out, in))
	if bias {
		b = p.Get(prefix+".bias", graphs.S(out))
	}
	return w, b
}

// LinearWith applies given weights: y = x·wᵀ + b (b may be nil).
func LinearWith(x, w, b *graphs.Value) *graphs.Value {
	in, out := lastDim(x), w.Shape[0]
	if x.Rank() == 2 {
		return graphs.Gemm(x, w, b, false, true)
	}
	y := graphs.Gemm(graphs.Reshape(x, -1, in), w, b, false, true)
	return graphs.ReshapeTo(y, append(x.Shape[:x.Rank()-1:x.Rank()-1], out), x)
}

// Residual adds blocks' outputs to the residual stream h: h + p₀, or
// (p₀ + p₁) + h for Phi's parallel attention and MLP. In a graph that uses
// the blocks' fused kernels (graphs.Graph.UseBlockKernels), with h
// float32, it is one graphs.Residual node that reads
// a part widened from bfloat16 (graphs.FromLowPrecision) as the bfloat16
// value it was, bit for bit the stock Adds' result; otherwise those Adds.
func Residual(h *graphs.Value, parts ...*graphs.Value) *graphs.Value {
	if h.Graph().BlockKernel(graphs.BlockResidual) && h.DType == tensors.Float32 {
		narrow := make([]*graphs.Value, len(parts))
		for i, p := range parts {
			narrow[i] = p
			if n := p.Node(); n != nil && n.Op == "Cast" && n.Inputs[0].DType == tensors.BFloat16 {
				narrow[i] = n.Inputs[0]
			}
		}
		return graphs.Residual(h, narrow...)
	}
	switch len(parts) {
	case 1:
		return graphs.Add(h, parts[0])
	case 2:
		return graphs.Add(graphs.Add(parts[0], parts[1]), h)
	}
	panic(&graphs.Error{Op: "layers.Residual", Msg: "want one or two parts"})
}

// LayerNorm normalises over the last axis with weight and bias named
// prefix+".weight"/".bias".
func LayerNorm(p Params, prefix string, x *graphs.Value, eps float32) *graphs.Value {
	d := lastDim(x)
	return graphs.LayerNormalization(x, p.Get(prefix+".weight", graphs.S(d)), p.Get(prefix+".bias", graphs.S(d)), eps)
}

// Embedding looks up rows of the table named name [vocab, dim] at ids.
func Embedding(p Params, name string, ids *graphs.Value, vocab, dim int64) *graphs.Value {
	return graphs.Gather(p.Get(name, graphs.S(vocab, dim)), ids, 0)
}

// PhiMLP is fc2(gelu_tanh(fc1(x))), both with biases, computed in the
// graph's low precision (LinearLow): under a bfloat16 MatMulPrecision the
// products, the [.., inner] activation between them and its gradient stay
// in bfloat16, and so does the result (graphs.FromLowPrecision widens it).
func PhiMLP(p Params, prefix string, x *graphs.Value, inner int64) *graphs.Value {
	h := graphs.ToLowPrecision(graphs.Gelu(LinearLow(p, prefix+".fc1", x, inner, true), true))
	return LinearLow(p, prefix+".fc2", h, lastDim(x), true)
}

// Positions is the float vector offset, offset+1, …, offset+T−1 where T is
// dim seqAxis of like; offset is an int64 scalar (nil for 0).
func Positions(like *graphs.Value, seqAxis int, offset *graphs.Value, dt tensors.DType) *graphs.Value {
	g := like.Graph()
	t := graphs.Squeeze(graphs.ShapeOf(like, seqAxis, seqAxis+1), 0)
	start := g.Int64(0)
	if offset != nil {
		start = offset
	}
	pos := graphs.Range(start, graphs.Add(start, t), g.Int64(1), like.Shape[seqAxis])
	return graphs.Cast(pos, dt)
}

// RotaryTables returns cos and sin [T, 1, rot] for positions pos [T]:
// angles p·θ_i with θ_i = base^(−2i/rot), duplicated to [a, a] (the NeoX /
// Hugging Face "rotate half" layout).
func RotaryTables(pos *graphs.Value, rot int64, base float64) (cos, sin *graphs.Value) {
	g := pos.Graph()
	half := rot / 2
	inv := make([]float64, rot)
	for i := int64(0); i < half; i++ {
		// Hugging Face computes the inverse frequencies in float32.
		f := float32(1) / float32(math.Pow(base, float64(float32(2*i)/float32(rot))))
		inv[i], inv[i+half] = float64(f), float64(f)
	}
	invT := g.Const(tensors.FromFloat64([]int64{1, rot}, inv).Convert(pos.DType))
	ang := graphs.Mul(graphs.Unsqueeze(pos, 1), invT) // [T, rot]
	ang = graphs.Unsqueeze(ang, 1)                    // [T, 1, rot]
	return graphs.Cos(ang), graphs.Sin(ang)
}

// ApplyRotary rotates the first rot channels of x [B, T, H, P] with tables
// cos, sin [T, 1, rot]; channels rot..P pass through. In a graph that uses
// the blocks' fused kernels (graphs.Graph.UseBlockKernels), with tables of
// x's dtype and length, it is one graphs.Rotary node, bit for bit the
// stock ops' result.
func ApplyRotary(x, cos, sin *graphs.Value, rot int64) *graphs.Value {
	if x.Graph().BlockKernel(graphs.BlockRotary) && cos.DType == x.DType && sin.DType == x.DType && cos.Rank() == 3 &&
		cos.Shape[0] == x.Shape[1] && cos.Shape[2] == graphs.D(rot) && x.DType != tensors.Float16 {
		return graphs.Rotary(x, cos, sin)
	}
	p := lastDim(x)
	xr, xp := x, (*graphs.Value)(nil)
	if rot < p {
		parts := graphs.Split(x, -1, rot, p-rot)
		xr, xp = parts[0], parts[1]
	}
	halves := graphs.Split(xr, -1, rot/2, rot/2)
	rotated := graphs.Concat(-1, graphs.Neg(halves[1]), halves[0])
	y := graphs.Add(graphs.Mul(xr, cos), graphs.Mul(rotated, sin))
	if xp != nil {
		y = graphs.Concat(-1, y, xp)
	}
	return y
}

// CausalMask is a bool [Tq, Tk] mask, true where key position k may be seen
// by query position q: k ≤ q + (Tk − Tq) (queries are the last Tq of Tk
// positions, as when decoding after a cache).
func CausalMask(q, k *graphs.Value, qAxis, kAxis int) *graphs.Value {
	tq := graphs.Squeeze(graphs.ShapeOf(q, qAxis, qAxis+1), 0)
	tk := graphs.Squeeze(graphs.ShapeOf(k, kAxis, kAxis+1), 0)
	r := q.Graph().Root()
	rows := graphs.Range(graphs.Sub(tk, tq), tk, r.Int64(1), q.Shape[qAxis])
	cols := graphs.Range(r.Int64(0), tk, r.Int64(1), k.Shape[kAxis])
	return graphs.LessOrEqual(graphs.Unsqueeze(cols, 0), graphs.Unsqueeze(rows, 1))
}

// MaskBias is a float tensor of mask's shape (and like's dtype): 0 where
// mask is true, the lowest finite value elsewhere. Added to scores, it sets
// the masked ones to that lowest value exactly (any finite score is
// absorbed) and leaves the others bit for bit, so exp or softmax gives 0
// there. Unlike a Where over the scores, the addition passes gradients
// through untouched (they are 0 at masked entries, where exp is 0), and on
// ONNX Runtime's CPU provider it runs several times faster; the Where runs
// only over the small mask.
func MaskBias(mask, like *graphs.Value) *graphs.Value {
	return graphs.Where(mask, graphs.ScalarLike(like, 0), graphs.ScalarLike(like, graphs.Lowest(like.DType)))
}

// CausalAttention computes softmax(q·kᵀ·scale + causal mask)·v for q [B, H,
// Tq, P], k, v [B, H, Tk, P] and returns the output [B, H, Tq, P] and the
// attention probabilities [B, H, Tq, Tk]. Masked scores are set to the
// lowest finite value, so every row (whose diagonal is visible) is finite.
//
// In a graph that uses the matrix kernels (graphs.Graph.UseMatrixKernels:
// Stage 1's steps, which read the teacher's probabilities) the scores are
// the product in the graph's low precision and the masked, scaled softmax
// is one graphs.CausalSoftmax node; otherwise stock ops (MaskedAttention).
func CausalAttention(q, k, v *graphs.Value, scale float64) (out, probs *graphs.Value) {
	if !q.Graph().MatrixKernels() {
		return MaskedAttention(q, k, v, CausalMask(q, k, 2, 2), scale)
	}
	low := graphs.ToLowPrecision
	probs = graphs.CausalSoftmax(graphs.MatMul(low(q), graphs.Transpose(low(k), 0, 1, 3, 2)), scale)
	return graphs.MatMul(probs, v), probs
}
