package layers

import (
	"mohawk/graphs"
	"mohawk/tensors"
)

// CumLogDecay is the cumulative sum of log decays a [..., T] along T, in
// float64: cs_t = Σ_{k ≤ t} a_k. Differences of it are exact to float64
// however long the sum, which Decays relies on.
func CumLogDecay(a *graphs.Value) *graphs.Value {
	return graphs.CumSum(graphs.Cast(a, tensors.Float64), int64(a.Rank()-1), false, false)
}

// Decays is the decay matrix of cumulative log decays cs [..., T]
// (float64) in dtype dt: L[..., i, j] = exp(cs_i − cs_j) = exp(Σ_{k=j+1..i}
// a_k) for j ≤ i, and 0 above the diagonal.
//
// In a graph that uses fused kernels (training steps) it is one
// graphs.SegsumExp node, whose gradient is one more. Otherwise, so that
// exported models stay stock ONNX, cs is split into float32 hi + lo parts
// (float64 for float64 dt) and the segment sums are (hi_i − hi_j) + (lo_i −
// lo_j): as exact as the float64 difference rounded once more (long sums
// cancel without loss), while every [T, T] pass stays float32; a mask bias
// sends the upper triangle to exp(lowest) = 0. (A cumulative sum down each
// column of the masked [T, T] matrix gives the same values, but ONNX
// Runtime's CUDA CumSum costs O(n) per element, which made that form
// O(T³).)
func Decays(cs *graphs.Value, dt tensors.DType) *graphs.Value {
	if cs.Graph().FusedKernels() {
		return graphs.SegsumExp(cs, dt)
	}
	w := tensors.Float32
	if dt == tensors.Float64 {
		w = tensors.Float64
	}
	hi := graphs.Cast(cs, w)
	lo := graphs.Cast(graphs.Sub(cs, graphs.Cast(hi, tensors.Float64)), w)
	pairs := func(x *graphs.Value) *graphs.Value {
		return graphs.Sub(graphs.Unsqueeze(x, -1), graphs.Unsqueeze(x, -2))
	}
	axis := cs.Rank() - 1
	mask := MaskBias(CausalMask(cs, cs, axis, axis), hi)
	return graphs.Cast(graphs.Exp(graphs.Sum(pairs(hi), pairs(lo), mask)), dt)
}

// Decayed is g∘L for the decay matrix L of cumulative log decays cs
// [..., T] (float64; L as Decays') and g [..., T, T], in g's dtype. In a
// graph that uses the blocks' fused kernels (graphs.Graph.UseBlockKernels)
// it is one graphs.SegsumExpMul node, which never writes L, forward or
// backward; otherwise it is g times Decays(cs) in g's dtype (L one fused
// SegsumExp node where the graph uses fused kernels).
func Decayed(cs, g *graphs.Value) *graphs.Value {
	if cs.Graph().BlockKernel(graphs.BlockDecay) {
		return graphs.SegsumExpMul(cs, g)
	}
	return graphs.Mul(g, Decays(cs, g.DType))
}

// MatrixParts is a mixer's materialised mixing matrix M = L∘S + diag(D)
// [B, H, T, T] in parts, for Stage 1's distance (losses.FrobeniusWithDiagonal),
// which never needs M: in a training step its distance to the target is
// one fused node (graphs.MaskedDiffSq) that builds neither L nor L∘S.
type MatrixParts struct {
	S       *graphs.Value // C·Bᵀ [B, H, T, T], in the graph's low precision
	CumLogA *graphs.Value // cumulative log decays [B, H, T], float64: L = Decays(CumLogA)
	Diag    *graphs.Value // the diagonal of L∘S [B, H, T] (L's is 1), from C and B
	D       *graphs.Value // the skip D [H]
}

// Kernel materialises K = L∘S [B, H, T, T], float32 for a bfloat16 S.
func (m MatrixParts) Kernel() *graphs.Value {
	return Decayed(m.CumLogA, graphs.FromLowPrecision(m.S))
}
