package graphs

import "mohawk/tensors"

// MatMul is the batched matrix product of a [..., M, K] and b [..., K, N]
// (both rank ≥ 2; leading axes broadcast). Float32 products follow the
// graph's MatMulPrecision.
func MatMul(a, b *Value) *Value {
	return withPrecision(graphOf("MatMul", a, b).root.matmul, func(a, b *Value) *Value { return op1("MatMul", nil, a, b) }, a, b)
}

type gemmAttr struct {
	TransA, TransB bool
	Alpha, Beta    float32
}

// Gemm is alpha·op(a)·op(b) + beta·c for 2-D a and b (c may be nil or
// broadcast to the result), op = transpose when the flag is set. Float32
// products follow the graph's MatMulPrecision (the bias is then added in
// float32).
func Gemm(a, b, c *Value, transA, transB bool) *Value {
	p := graphOf("Gemm", a, b, c).root.matmul
	if p != MatMulFloat32 && a.DType == tensors.Float32 {
		y := withPrecision(p, func(a, b *Value) *Value { return op1("Gemm", &gemmAttr{transA, transB, 1, 1}, a, b) }, a, b)
		if c != nil {
			y = Add(y, c)
		}
		return y
	}
	ins := []*Value{a, b}
	if c != nil {
		ins = append(ins, c)
	}
	return op1("Gemm", &gemmAttr{transA, transB, 1, 1}, ins...)
}

// MatMulPrecision selects how a graph's MatMul and Gemm nodes compute
// products of float32 tensors (set on the root graph; loop bodies follow).
type MatMulPrecision uint8

const (
	// MatMulFloat32 computes in float32 (TF32 where the runtime allows it).
	MatMulFloat32 MatMulPrecision = iota
	// MatMulBFloat16 casts both operands to bfloat16, multiplies them with
	// bfloat16 kernels (tensor cores, float32 accumulation) and casts the
	// bfloat16 result back, as PyTorch's bf16 autocast does. Gradients pass
	// through the casts, so the backward products run in bfloat16 as well,
	// while parameters, optimizer state and everything else stay float32.
	MatMulBFloat16
	// MatMulBFloat16Emulated rounds the operands and the result to
	// bfloat16 exactly as MatMulBFloat16 does but multiplies in float32: the
	// same numerics (up to summation order) for runtimes without bfloat16
	// kernels, such as ONNX Runtime's CPU provider.
	MatMulBFloat16Emulated
)

// SetMatMulPrecision sets the precision of the MatMul and Gemm nodes built
// from now on in g's root graph and its subgraphs.
func (g *Graph) SetMatMulPrecision(p MatMulPrecision) { g.root.matmul = p }

// MatMulPrecision is g's MatMulPrecision (SetMatMulPrecision).
func (g *Graph) MatMulPrecision() MatMulPrecision { return g.root.matmul }

// LowDType is the dtype ToLowPrecision gives float32 values in g:
// bfloat16 under MatMulBFloat16, float32 otherwise (the emulation keeps
// float32 values). Weights that only ever enter g in its low precision can
// be stored in it.
func (g *Graph) LowDType() tensors.DType {
	if g.root.matmul == MatMulBFloat16 {
		return tensors.BFloat16
	}
	return tensors.Float32
}

// withPrecision applies op to float32 a and b under precision p.
func withPrecision(p MatMulPrecision, op func(a, b *Value) *Value, a, b *Value) *Value {
	if p == MatMulFloat32 || a.DType != tensors.Float32 || b.DType != tensors.Float32 {
		return op(a, b)
	}
	if p == MatMulBFloat16 {
		return Cast(op(Cast(a, tensors.BFloat16), Cast(b, tensors.BFloat16)), tensors.Float32)
	}
	return roundBF16(op(roundBF16(a), roundBF16(b)))
}

// ToLowPrecision is float32 x as the graph's MatMulPrecision keeps values
// between two products: bfloat16 under MatMulBFloat16, float32 rounded to
// bfloat16 values under the emulation, x itself otherwise (and for x not
// float32). A chain of elementwise ops between products that takes its
// input this way (an MLP's activation, forward and gradient) then moves
// half the bytes, as under PyTorch's bf16 autocast; FromLowPrecision turns
// the chain's result back into float32.
func ToLowPrecision(x *Value) *Value {
	if x.DType != tensors.Float32 {
		return x
	}
	switch x.g.root.matmul {
	case MatMulBFloat16:
		return Cast(x, tensors.BFloat16)
	case MatMulBFloat16Emulated:
		return roundBF16(x)
	}
	return x
}

// FromLowPrecision is bfloat16 x cast back to float32 (x itself otherwise).
func FromLowPrecision(x *Value) *Value {
	if x.DType == tensors.BFloat16 {
		return Cast(x, tensors.Float32)
	}
	return x
}

// roundBF16 rounds float32 x to the nearest bfloat16 value (kept float32).
func roundBF16(x *Value) *Value {
	if x.Node() != nil && x.Node().def.Type == "Cast" && x.Node().Inputs[0].DType == tensors.BFloat16 {
		return x // already a rounded value
	}
	return Cast(Cast(x, tensors.BFloat16), tensors.Float32)
}

func swapLast(x *Value) *Value {
	r := x.Rank()
	perm := make([]int64, r)
	for i := range perm {
		perm[i] = int64(i)
	}
	perm[r-1], perm[r-2] = perm[r-2], perm[r-1]
	return Transpose(x, perm...)
}

func init() {
	register(&OpDef{Type: "MatMul", Since: 13, Infer: inferMatMul, Grad: matMulGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Gemm", Since: 13, Infer: inferGemm, Grad: gemmGrad, Attrs: gemmAttrs})
}

// inferMatMul is the shape rule of MatMul.
func inferMatMul(n *Node) []TypeShape {
	a, b := n.Inputs[0], n.Inputs[1]
	wantFloat("MatMul", a, b)
	sameDType("MatMul", a, b)
	if a.Rank() < 2 || b.Rank() < 2 {
		panic(errorf("MatMul", "inputs %v and %v need rank ≥ 2", a, b))
	}
	ra, rb := a.Rank(), b.Rank()
	if a.Shape[ra-1] != b.Shape[rb-2] {
		panic(errorf("MatMul", "inner dims differ: %v · %v", a, b))
	}
	batch := broadcastShapes("MatMul", a.Shape[:ra-2], b.Shape[:rb-2])
	return ts(a.DType, append(batch, a.Shape[ra-2], b.Shape[rb-1]))
}

// matMulGrad is the VJP of MatMul.
func matMulGrad(n *Node, g []*Value, need []bool) []*Value {
	a, b := n.Inputs[0], n.Inputs[1]
	out := make([]*Value, 2)
	// A weight matrix b [K,N] applied to a batch of rows: fold the batch
	// into one GEMM instead of a batched product and a reduction.
	if b.Rank() == 2 && a.Rank() > 2 {
		k, m := a.Shape[a.Rank()-1], b.Shape[1]
		if !m.Static() || !k.Static() {
			panic(errorf("MatMul", "gradient needs static inner dims, got %v · %v", a, b))
		}
		g2 := Reshape(g[0], -1, m.K)
		if need[0] {
			out[0] = reshapeLike(Gemm(g2, b, nil, false, true), a)
		}
		if need[1] {
			out[1] = Gemm(Reshape(a, -1, k.K), g2, nil, true, false)
		}
		return out
	}
	if need[0] {
		out[0] = sumLike(MatMul(g[0], swapLast(b)), a)
	}
	if need[1] {
		out[1] = sumLike(MatMul(swapLast(a), g[0]), b)
	}
	return out
}

// inferGemm is the shape rule of Gemm.
func inferGemm(n *Node) []TypeShape {
	a, b, at := n.Inputs[0], n.Inputs[1], n.Attr.(*gemmAttr)
	wantFloat("Gemm", a, b)
	sameDType("Gemm", a, b)
	if a.Rank() != 2 || b.Rank() != 2 {
		panic(errorf("Gemm", "inputs %v and %v must be 2-D", a, b))
	}
	m, k := a.Shape[0], a.Shape[1]
	if at.TransA {
		m, k = k, m
	}
	k2, nn := b.Shape[0], b.Shape[1]
	if at.TransB {
		k2, nn = nn, k2
	}
	if k != k2 {
		panic(errorf("Gemm", "inner dims differ: %v · %v (transA=%v transB=%v)", a, b, at.TransA, at.TransB))
	}
	out := S(m, nn)
	if len(n.Inputs) > 2 {
		sameDType("Gemm", a, n.Inputs[2])
		if !broadcastShapes("Gemm", out, n.Inputs[2].Shape).Equal(out) {
			panic(errorf("Gemm", "bias %v does not broadcast to %v", n.Inputs[2], out))
		}
	}
	return ts(a.DType, out)
}

// gemmGrad is the VJP of Gemm.
func gemmGrad(n *Node, g []*Value, need []bool) []*Value {
	a, b, at := n.Inputs[0], n.Inputs[1], n.Attr.(*gemmAttr)
	if at.Alpha != 1 || at.Beta != 1 {
		panic(errorf("Gemm", "gradient needs alpha = beta = 1"))
	}
	out := make([]*Value, len(n.Inputs))
	gy := g[0]
	if need[0] { // d op(a) = gy · op(b)ᵀ
		if at.TransA {
			out[0] = Gemm(b, gy, nil, at.TransB, true)
		} else {
			out[0] = Gemm(gy, b, nil, false, !at.TransB)
		}
	}
	if need[1] { // d op(b) = op(a)ᵀ · gy
		if at.TransB {
			out[1] = Gemm(gy, a, nil, true, at.TransA)
		} else {
			out[1] = Gemm(a, gy, nil, !at.TransA, false)
		}
	}
	if len(n.Inputs) > 2 && need[2] {
		out[2] = sumLike(gy, n.Inputs[2])
	}
	return out
}

// gemmAttrs is the ONNX emitter of Gemm.
func gemmAttrs(n *Node) []Attr {
	a := n.Attr.(*gemmAttr)
	return []Attr{intAttr("transA", boolInt(a.TransA)), intAttr("transB", boolInt(a.TransB)),
		floatAttr("alpha", a.Alpha), floatAttr("beta", a.Beta)}
}
