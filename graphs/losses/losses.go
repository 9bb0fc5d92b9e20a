package losses

import (
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// TokenCrossEntropy is the mean over tokens of −log softmax(logits)[label]
// for logits [B, T, V] and integer labels [B, T].
func TokenCrossEntropy(logits, labels *graphs.Value) *graphs.Value {
	logp := graphs.LogSoftmax(logits, -1)
	picked := graphs.GatherElements(logp, graphs.Unsqueeze(graphs.Cast(labels, tensors.Int64), -1), -1)
	return graphs.Neg(graphs.ReduceMeanAll(picked))
}

// SoftCrossEntropy is the mean over tokens of −Σ_v p_T(v)·log p_S(v) with
// p = softmax(logits/τ), scaled by τ² (Hinton et al.) so that gradient
// magnitudes do not depend on the temperature; τ = 1 is the MOHAWK Stage 3
// objective. The teacher's logits may be bfloat16 under float32 student
// logits: they are read as they are in a graph that uses fused kernels
// (graphs.Graph.UseFusedKernels; one graphs.SoftCrossEntropy node, whose
// gradient is one node more) unless it targets the CPU provider
// (graphs.Graph.TargetCPU), and widened to the student's dtype otherwise.
func SoftCrossEntropy(student, teacher *graphs.Value, temperature float64) *graphs.Value {
	sameShape(student, teacher)
	if g := student.Graph(); g.FusedKernels() && !g.CPUTarget() && graphs.SoftCrossEntropyTakes(student.DType, teacher.DType) {
		ce, _ := graphs.SoftCrossEntropy(student, teacher, 1/temperature)
		return scaleT2(graphs.ReduceMeanAll(ce), temperature)
	}
	ls, pt := tempered(student, teacher, temperature)
	ce := graphs.Neg(graphs.ReduceSum(graphs.Mul(pt, ls), []int64{-1}, false))
	return scaleT2(graphs.ReduceMeanAll(ce), temperature)
}

// KLDivergence is the mean over tokens of KL(p_T ‖ p_S) = Σ p_T (log p_T −
// log p_S), with the same temperature handling as SoftCrossEntropy. It
// differs from the soft cross-entropy by the teacher's entropy, a constant
// for the student.
func KLDivergence(student, teacher *graphs.Value, temperature float64) *graphs.Value {
	teacher = like(teacher, student)
	ls, pt := tempered(student, teacher, temperature)
	lt := graphs.LogSoftmax(temperatureScale(teacher, temperature), -1)
	kl := graphs.ReduceSum(graphs.Mul(pt, graphs.Sub(lt, ls)), []int64{-1}, false)
	return scaleT2(graphs.ReduceMeanAll(kl), temperature)
}

// tempered is the student's log-probabilities and the teacher's
// probabilities at temperature t, the teacher's logits first widened to
// the student's dtype when they differ (bfloat16 teacher logits).
func tempered(student, teacher *graphs.Value, t float64) (logStudent, probTeacher *graphs.Value) {
	teacher = like(teacher, student)
	return graphs.LogSoftmax(temperatureScale(student, t), -1), graphs.Softmax(temperatureScale(teacher, t), -1)
}

// like is the teacher's logits in the student's dtype, after checking that
// their shapes agree.
func like(teacher, student *graphs.Value) *graphs.Value {
	sameShape(student, teacher)
	if teacher.DType != student.DType {
		return graphs.Cast(teacher, student.DType)
	}
	return teacher
}

func sameShape(student, teacher *graphs.Value) {
	if !student.Shape.Equal(teacher.Shape) {
		panic(&graphs.Error{Op: "SoftCrossEntropy", Msg: "student " + student.String() + " and teacher " + teacher.String() + " logits differ in shape (vocabulary mismatch?)"})
	}
}

func temperatureScale(x *graphs.Value, t float64) *graphs.Value {
	if t == 1 {
		return x
	}
	return graphs.Mul(x, graphs.ScalarLike(x, 1/t))
}

func scaleT2(x *graphs.Value, t float64) *graphs.Value {
	if t == 1 {
		return x
	}
	return graphs.Mul(x, graphs.ScalarLike(x, t*t))
}

// FrobeniusWithDiagonal is the Stage 1 distance: the mean over (batch,
// head) of ‖M − A‖_F (not squared, as in MOHAWK) for a mixing matrix M =
// K + diag(D) given in parts m (K = L∘S) and the teacher's attention A
// [B, H, T, T] (T static). It never builds K + diag(D): per matrix
// ‖K + D·I − A‖² = ‖K − A‖² + Σ_i (2D·(K_ii − A_ii) + D²), which saves two
// passes over [B, H, T, T] forward and two backward; K's diagonal comes
// from m (computed without K), A's is a strided slice. In a graph that
// uses the matrix kernels (graphs.Graph.UseMatrixKernels) ‖K − A‖² is one
// graphs.MaskedDiffSq node, which builds neither L nor K; otherwise K is
// materialised (m.Kernel()).
func FrobeniusWithDiagonal(m layers.MatrixParts, a *graphs.Value) *graphs.Value {
	var sq *graphs.Value // [B, H]
	if a.Graph().MatrixKernels() {
		sq = graphs.ReduceSum(graphs.MaskedDiffSq(m.S, m.CumLogA, a), []int64{-1}, false)
	} else {
		sq = graphs.ReduceSumSquare(graphs.Sub(m.Kernel(), a), []int64{-2, -1}, false)
	}
	d := m.D
	dd := graphs.Unsqueeze(d, -1)                                                     // [H, 1]
	off := graphs.Sub(m.Diag, Diagonal(a))                                            // [B, H, T]
	extra := graphs.Mul(dd, graphs.Add(graphs.Mul(graphs.ScalarLike(d, 2), off), dd)) // D·(2(K_ii − A_ii) + D)
	return graphs.ReduceMeanAll(safeSqrt(graphs.Add(sq, graphs.ReduceSum(extra, []int64{-1}, false))))
}

// Diagonal returns the diagonals [..., T] of square matrices x [..., T, T]
// (T static) as one strided slice of the flattened matrices.
func Diagonal(x *graphs.Value) *graphs.Value {
	r := x.Rank()
	t := x.Shape[r-1]
	if !t.Static() || x.Shape[r-2] != t {
		panic(&graphs.Error{Op: "losses.diagonal", Msg: "needs square matrices of static size; got " + x.String()})
	}
	spec := make([]int64, r-1)
	spec[r-2] = t.K * t.K
	flat := graphs.Reshape(x, spec...)
	return graphs.Slice(flat, []int64{0}, []int64{graphs.End}, []int64{int64(r - 2)}, []int64{t.K + 1})
}

// L2 is the mean over tokens of ‖s − t‖₂ over the last axis (not squared,
// as in MOHAWK Stage 2).
func L2(s, t *graphs.Value) *graphs.Value {
	return graphs.ReduceMeanAll(safeSqrt(graphs.ReduceSumSquare(graphs.Sub(s, t), []int64{-1}, false)))
}

// MSE is the mean of (s − t)².
func MSE(s, t *graphs.Value) *graphs.Value {
	d := graphs.Sub(s, t)
	return graphs.ReduceMeanAll(graphs.Mul(d, d))
}

// safeSqrt is √(x + ε) with ε = 1e-12 (1e-30 in float64), so that the
// gradient stays finite when a distance is exactly zero; the value moves by
// at most √ε.
func safeSqrt(x *graphs.Value) *graphs.Value {
	eps := 1e-12
	if x.DType == tensors.Float64 {
		eps = 1e-30
	}
	return graphs.Sqrt(graphs.Add(x, graphs.ScalarLike(x, eps)))
}

// TimeChunked is the mean over tokens of a per-token loss computed over
// axis 1 (time, of static length t) in chunks of at most chunk positions:
// per(at) builds the mean loss of one chunk, at slicing a [B, T, ...]
// value to the chunk. Each chunk is one segment that the backward pass
// recomputes (graphs.Graph.AlwaysRecomputed), so a chunk's [B, C, V]
// tensors are live only while that chunk is computed, forward or backward,
// instead of [B, T, V] ones for the whole step. The result equals per over
// the whole sequence up to rounding.
func TimeChunked(g *graphs.Graph, t, chunk int64, per func(at func(*graphs.Value) *graphs.Value) *graphs.Value) *graphs.Value {
	if chunk < 1 || t < 1 {
		panic(&graphs.Error{Op: "losses.TimeChunked", Msg: "chunk and sequence length must be ≥ 1"})
	}
	var sum *graphs.Value
	for t0 := int64(0); t0 < t; t0 += chunk {
		t1 := min(t0+chunk, t)
		at := func(x *graphs.Value) *graphs.Value {
			if !x.Shape[1].Static() || x.Shape[1].K != t {
				panic(&graphs.Error{Op: "losses.TimeChunked", Msg: "value " + x.String() + " is not [B, T, ...] for the chunked length"})
			}
			return graphs.SliceAxis(x, 1, t0, t1)
		}
		var l *graphs.Value
		g.AlwaysRecomputed(func() {
			l = per(at)
			l = graphs.Mul(l, graphs.ScalarLike(l, float64(t1-t0)/float64(t)))
		})
		if sum == nil {
			sum = l
		} else {
			sum = graphs.Add(sum, l)
		}
	}
	return sum
}
