package graphs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mohawk/tensors"
)

// FusedDomain is the ONNX domain of the fused kernels that mohawk/runtime
// registers in every session (runtime.FusedDomain; a test checks that the
// two agree). Graphs that use them run only on mohawk's runtime.
const FusedDomain = "mohawk.fused"

// UseFusedKernels lets g's forward layers use FusedDomain kernels (such as
// CausalConv) where they would otherwise write stock ONNX. Gradients and
// optimizer updates use them regardless, as only training graphs have
// them; forward graphs stay stock ONNX unless their builder opts in, so
// that exported models run on any ONNX runtime. Training step graphs opt
// in (graphs/train).
func (g *Graph) UseFusedKernels() { g.root.fused = true }

// FusedKernels reports whether g's forward layers may use FusedDomain
// kernels.
func (g *Graph) FusedKernels() bool { return g.root.fused }

// UseMatrixKernels lets g use fused kernels (UseFusedKernels) and, beyond
// them, Stage 1's fused [T, T] kernels: MaskedDiffSq for the distance and
// CausalSoftmax for the teacher's probabilities (training.matrix_kernels,
// on by default; without them Stage 1 builds K and the softmax from stock
// ops, which tests compare against).
func (g *Graph) UseMatrixKernels() {
	g.root.fused = true
	g.root.matrix = true
}

// MatrixKernels reports whether g may use Stage 1's fused [T, T] kernels.
func (g *Graph) MatrixKernels() bool { return g.root.matrix }

// BlockKernel names the blocks' fused plumbing kernels, as a set of bits:
// BlockConv, CausalConvSplit for the SSM mixer's in_proj split, conv and
// split; BlockDecay, SegsumExpMul for the SSD's decay-weighted scores;
// BlockResidual, Residual for the residual stream; BlockRotary, Rotary for
// rotary embeddings. AllBlockKernels is training.block_kernels; bench-stage
// can name a subset (ParseBlockKernels) to weigh one kernel at a time.
type BlockKernel uint8

// The blocks' fused plumbing kernels (BlockKernel).
const (
	BlockConv BlockKernel = 1 << iota
	BlockDecay
	BlockResidual
	BlockRotary
	// BlockGate is GateSkip for the SSM mixer's output gate with its skip
	// and bias: not in AllBlockKernels (nor training.block_kernels) until
	// its CUDA tests have run on a GPU; bench-stage
	// --block-kernels=all,gate adds it.
	BlockGate
	AllBlockKernels = BlockConv | BlockDecay | BlockResidual | BlockRotary
)

type blockKernelName struct {
	k    BlockKernel
	name string
}

var blockKernelNames = []blockKernelName{{BlockConv, "conv"}, {BlockDecay, "decay"}, {BlockResidual, "residual"}, {BlockRotary, "rotary"},
	{BlockGate, "gate"}}

// String lists k's kernels by name, comma-separated ("" for none).
func (k BlockKernel) String() string {
	var names []string
	for _, n := range blockKernelNames {
		if k&n.k != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// MarshalText writes String, so that JSON reports name the kernels.
func (k BlockKernel) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalJSON reads what MarshalText wrote, or a boolean (all of them or
// none: training.block_kernels as plans before the set recorded it).
func (k *BlockKernel) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var on bool
		if json.Unmarshal(b, &on) != nil {
			return fmt.Errorf("block kernels %s: want a string or a boolean", b)
		}
		s = strconv.FormatBool(on)
	}
	v, err := ParseBlockKernels(s)
	*k = v
	return err
}

// ParseBlockKernels reads a set of block kernels: "all" or "true" for
// AllBlockKernels, "none", "false" or "" for none, or a comma-separated
// list of conv, decay, residual, rotary, gate and all.
func ParseBlockKernels(s string) (BlockKernel, error) {
	switch s {
	case "true":
		return AllBlockKernels, nil
	case "none", "false", "":
		return 0, nil
	}
	var k BlockKernel
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "all" {
			k |= AllBlockKernels
			continue
		}
		i := slices.IndexFunc(blockKernelNames, func(n blockKernelName) bool { return n.name == part })
		if i < 0 {
			return 0, fmt.Errorf("block kernels %q: unknown kernel %q (want all, none, or a list of conv, decay, residual, rotary, gate, all)", s, part)
		}
		k |= blockKernelNames[i].k
	}
	return k, nil
}

// UseBlockKernels lets g use fused kernels (UseFusedKernels) and, beyond
// them, the blocks' fused plumbing kernels in k (training.block_kernels,
// all of them by default since their CUDA tests and Stage 3 ran on an
// H100). Without them the blocks build those steps from stock ops (and
// the conv and decays from CausalConv and SegsumExp), which tests compare
// against.
func (g *Graph) UseBlockKernels(k BlockKernel) {
	if k != 0 {
		g.root.fused = true
	}
	g.root.block = k
}

// BlockKernel reports whether g may use every kernel in k
// (UseBlockKernels).
func (g *Graph) BlockKernel(k BlockKernel) bool { return g.root.block&k == k }

// TargetCPU marks g as built for ONNX Runtime's CPU provider: builders
// then keep stock ops where a fused kernel only saves device memory
// traffic and ORT's vectorised CPU kernels are faster than its scalar host
// loop (SoftCrossEntropy, whose exponentials dominate on the CPU).
func (g *Graph) TargetCPU() { g.root.cpu = true }

// CPUTarget reports whether g is built for the CPU provider (TargetCPU).
func (g *Graph) CPUTarget() bool { return g.root.cpu }

// ConvChunks is the number of row chunks CausalConvGrad sums its weight and
// bias gradients over (its dwp and dbp outputs' leading dimension).
const ConvChunks = 64

// CausalConv is the depthwise causal conv along T of x [B, T, C] with w
// [C, 1, K] and bias b [C], zero history, as one fused node:
//
//	y[b,t,c] = b[c] + Σ_j w[c,0,j]·x[b, t−(K−1)+j, c]
//
// summed in float32 (float64 for float64) and rounded once. x, w and b
// share a dtype: float32, float64 or bfloat16 (K ≤ 8; CUDA's gradient
// kernel takes K = 4). It is CausalConvSplit with one part; its gradient
// is CausalConvGrad.
func CausalConv(x, w, b *Value) *Value {
	if x.Rank() != 3 || !x.Shape[2].Static() {
		panic(errorf("CausalConv", "want x [B, T, C] with a static C; got %v", x))
	}
	return CausalConvSplit(x, w, b, x.Shape[2].K)[0]
}

// CausalConvSplit is CausalConv over the first C channels of x [B, T, Cx]
// (w [C, 1, K], b [C]), with x's channels split into parts of the given
// widths (at most 7, each ≥ 1, summing to Cx, the first ones to C): a
// part within the first C channels is that part of the conv, a part after
// them x's channels as they are. One node reads x once and writes the
// parts, where stock ops take a Split of x, the conv and a Split of its
// result (and two Concats in the gradient): the SSM mixer's in_proj output
// becomes its conv's x, B and C and the gate's z and the decays' input as
// they are. Its gradient is CausalConvGrad, which writes dx whole.
//
// The node's fourth input is an empty int64 tensor [0, widths…] that
// carries the widths for the kernel.
func CausalConvSplit(x, w, b *Value, widths ...int64) []*Value {
	carrier := x.g.root.Const(tensors.Zeros(tensors.Int64, append([]int64{0}, widths...)...))
	return slices.Clone(graphOf("CausalConv", x, w, b).add("CausalConv", nil, x, w, b, carrier))
}

// CausalConvGrad is CausalConvSplit's gradient from each part's dy (the
// carrier that node took, then one dy per part): dx [B, T, Cx], and the
// weight and bias gradients as partial sums over ConvChunks chunks of the
// B·T rows, dwp [ConvChunks, C, K] and dbp [ConvChunks, C] in float32
// (float64 for float64), which the caller adds up.
func CausalConvGrad(x, w, carrier *Value, dys ...*Value) (dx, dwp, dbp *Value) {
	ins := append([]*Value{x, w, carrier}, dys...)
	out := graphOf("CausalConvGrad", ins...).add("CausalConvGrad", nil, ins...)
	return out[0], out[1], out[2]
}

// wantFusedFloat checks that x has a dtype the GELU and conv kernels take:
// float32, float64 or bfloat16.
func wantFusedFloat(op string, x *Value) {
	switch x.DType {
	case tensors.Float32, tensors.Float64, tensors.BFloat16:
	default:
		panic(errorf(op, "x %v must be float32, float64 or bfloat16", x))
	}
}

// sumType is the dtype the fused kernels compute and sum a float32,
// float64 or bfloat16 input in: float64 for float64, else float32.
func sumType(dt tensors.DType) tensors.DType {
	if dt == tensors.Float64 {
		return dt
	}
	return tensors.Float32
}

// convShapes checks CausalConvSplit's and CausalConvGrad's x [B, T, Cx], w
// [C, 1, K] and carrier [0, widths…], and returns the parts' shapes [B, T,
// width].
func convShapes(op string, x, w, carrier *Value) []Shape {
	wantFusedFloat(op, x)
	sameDType(op, x, w)
	if x.Rank() != 3 || !x.Shape[2].Static() || w.Rank() != 3 || !w.Shape[0].Static() || w.Shape[0].K > x.Shape[2].K ||
		!w.Shape[1].IsOne() || !w.Shape[2].Static() || w.Shape[2].K < 1 || w.Shape[2].K > 8 {
		panic(errorf(op, "want x [B, T, Cx] and w [C ≤ Cx, 1, K ≤ 8]; got %v, %v", x, w))
	}
	sum, prefix := int64(0), false
	var parts []Shape
	for _, d := range carrier.Shape[min(1, carrier.Rank()):] {
		if !d.Static() || d.K < 1 {
			sum = -1
			break
		}
		sum += d.K
		prefix = prefix || sum == w.Shape[0].K
		parts = append(parts, S(x.Shape[0], x.Shape[1], d))
	}
	if carrier.DType != tensors.Int64 || carrier.Rank() < 2 || carrier.Rank() > 8 || carrier.Shape[0] != D(0) ||
		sum != x.Shape[2].K || !prefix {
		panic(errorf(op, "the carrier %v must be int64 [0, widths…] with 1 to 7 widths ≥ 1 that sum to x's %v channels, the first ones to w's %v",
			carrier, x.Shape[2], w.Shape[0]))
	}
	return parts
}

// convGrad is CausalConvSplit's gradient: a part whose gradient is not
// needed gives zeros.
func convGrad(n *Node, g []*Value, need []bool) []*Value {
	x, w, carrier := n.Inputs[0], n.Inputs[1], n.Inputs[3]
	dys := make([]*Value, len(n.Outputs))
	for i, d := range g {
		if d == nil {
			d = ZerosLike(n.Outputs[i])
		}
		dys[i] = d
	}
	dx, dwp, dbp := CausalConvGrad(x, w, carrier, dys...)
	dw := Cast(Reshape(ReduceSum(dwp, []int64{0}, false), w.Shape.Sizes()...), w.DType)
	db := Cast(ReduceSum(dbp, []int64{0}, false), w.DType)
	return []*Value{dx, dw, db, nil}
}

// SiluMul is the SiLU gate y·silu(z) = y·z·σ(z) of y and z (one shape
// and dtype: float32, float64 or bfloat16) as one fused node, computed in
// float32 (float64 for float64) and rounded once; stock ops take a
// Sigmoid and two Muls forward and about ten passes backward. Its
// gradient is SiluMulGrad.
func SiluMul(y, z *Value) *Value { return op1("SiluMul", nil, y, z) }

// SiluMulGrad is SiluMul's gradient from d: dy = d·z·σ(z) and dz =
// d·y·σ(z)·(1 + z·σ(−z)), like y.
func SiluMulGrad(y, z, d *Value) (dy, dz *Value) {
	out := graphOf("SiluMulGrad", y, z, d).add("SiluMulGrad", nil, y, z, d)
	return out[0], out[1]
}

func siluMulGrad(n *Node, g []*Value, need []bool) []*Value {
	dy, dz := SiluMulGrad(n.Inputs[0], n.Inputs[1], g[0])
	return []*Value{dy, dz}
}

// inferSiluMul is the shape rule of SiluMul and SiluMulGrad: inputs of one
// shape and fused float dtype; as many outputs like them as the op has.
func inferSiluMul(n *Node) []TypeShape {
	x := n.Inputs[0]
	wantFusedFloat(n.Op, x)
	sameDType(n.Op, n.Inputs...)
	for _, v := range n.Inputs[1:] {
		if !v.Shape.Equal(x.Shape) {
			panic(errorf(n.Op, "inputs %v and %v differ in shape (the fused gate does not broadcast)", x, v))
		}
	}
	out := []TypeShape{{x.DType, x.Shape}}
	if n.Op == "SiluMulGrad" {
		out = append(out, out[0])
	}
	return out
}

// GateSkip is the SSM mixer's output gate with its skip and bias as one
// fused node: SiluMul(y + x·d, z + zb), for y, z, x [..., C], d [H] (a
// head's skip weight for each of its C/H channels) and zb [C], of one
// fused float dtype, each product and sum rounded to it as the stock Mul
// and Adds round them: bit for bit their SiluMul. Neither sum is written
// to memory: the gradient recomputes them (GateSkipGrad).
func GateSkip(y, z, x, d, zb *Value) *Value { return op1("GateSkip", nil, y, z, x, d, zb) }

// GateSkipGrad is SiluMulGrad of GateSkip's two gate inputs a = y + x·d
// and b = z + zb (recomputed) from g: da and db, like y.
func GateSkipGrad(y, z, x, d, zb, g *Value) (da, db *Value) {
	out := graphOf("GateSkipGrad", y, z, x, d, zb, g).add("GateSkipGrad", nil, y, z, x, d, zb, g)
	return out[0], out[1]
}

// gateSkipGrad gives y a's gradient and z b's; x and d the skip product's
// (da·d, and da·x summed per head) and zb the bias's (db summed over all
// but the channel axis), from stock ops.
func gateSkipGrad(n *Node, g []*Value, need []bool) []*Value {
	y, z, x, d, zb := n.Inputs[0], n.Inputs[1], n.Inputs[2], n.Inputs[3], n.Inputs[4]
	da, db := GateSkipGrad(y, z, x, d, zb, g[0])
	r := int64(y.Rank())
	heads := func(v *Value) *Value { // [..., C] as [..., H, C/H]
		spec := make([]int64, r+1)
		spec[r-1], spec[r] = d.Shape[0].Size(), -1
		return Reshape(v, spec...)
	}
	lead := make([]int64, r-1)
	for i := range lead {
		lead[i] = int64(i)
	}
	daH := heads(da)
	dx := ReshapeTo(Mul(daH, Unsqueeze(d, -1)), x.Shape, x)
	dd := ReduceSum(Mul(daH, heads(x)), append(slices.Clone(lead), r), false)
	dzb := ReduceSum(db, lead, false)
	return []*Value{da, db, dx, dd, dzb}
}

// inferGateSkip is the shape rule of GateSkip and GateSkipGrad: y, z, x
// (and g) of one shape [..., C] with a static C, d [H] with H dividing C,
// zb [C], all of one fused float dtype; outputs like y.
func inferGateSkip(n *Node) []TypeShape {
	y, d, zb := n.Inputs[0], n.Inputs[3], n.Inputs[4]
	wantFusedFloat(n.Op, y)
	sameDType(n.Op, n.Inputs...)
	if y.Rank() < 1 || !y.Shape[y.Rank()-1].Static() || d.Rank() != 1 || !d.Shape[0].Static() || zb.Rank() != 1 {
		panic(errorf(n.Op, "want y [..., C] with a static C, d [H] and zb [C]; got %v, %v, %v", y, d, zb))
	}
	c, h := y.Shape[y.Rank()-1].Size(), d.Shape[0].Size()
	if h < 1 || c%h != 0 || zb.Shape[0] != y.Shape[y.Rank()-1] {
		panic(errorf(n.Op, "d %v must have H dividing C = %d and zb %v C entries", d, c, zb))
	}
	for i, v := range n.Inputs {
		if i != 3 && i != 4 && !v.Shape.Equal(y.Shape) {
			panic(errorf(n.Op, "inputs %v and %v differ in shape (the fused gate does not broadcast)", y, v))
		}
	}
	out := []TypeShape{{y.DType, y.Shape}}
	if n.Op == "GateSkipGrad" {
		out = append(out, out[0])
	}
	return out
}

// NormChunks is the number of row chunks LayerNormGrad sums γ's and β's
// gradients over (its dgp and dbp outputs' leading dimension).
const NormChunks = 64

// LayerNormGrad is ONNX LayerNormalization's gradient (axis −1) as one
// fused node, from the forward node's mean and inverse standard deviation
// (mean, invstd [..., 1], float32; float64 for float64 x): with x̂ = (x −
// μ)·r and g = dy·γ,
//
//	dx = r·(g − mean(g) − x̂·mean(g·x̂))
//
// like x, and γ's and β's gradients Σ dy·x̂ and Σ dy as partial sums over
// NormChunks chunks of the rows, dgp and dbp [NormChunks, D] in mean's
// dtype, which the caller adds up. x and dy are float32, float64 or
// bfloat16, gamma [D] x's dtype. The stock ops take about ten passes over
// [..., D]; the fused node reads x and dy twice for dx and once more for
// the partial sums.
func LayerNormGrad(x, gamma, mean, invstd, dy *Value) (dx, dgp, dbp *Value) {
	out := graphOf("LayerNormGrad", x, gamma, mean, invstd, dy).add("LayerNormGrad", nil, x, gamma, mean, invstd, dy)
	return out[0], out[1], out[2]
}

// inferLayerNormGrad is the shape rule of LayerNormGrad.
func inferLayerNormGrad(n *Node) []TypeShape {
	x, gamma, mean, invstd, dy := n.Inputs[0], n.Inputs[1], n.Inputs[2], n.Inputs[3], n.Inputs[4]
	wantFusedFloat("LayerNormGrad", x)
	want := sumType(x.DType)
	r := x.Rank()
	ok := r >= 1 && r <= 7 && gamma.DType == x.DType && dy.DType == x.DType && dy.Shape.Equal(x.Shape)
	if ok {
		stat := append(append(Shape{}, x.Shape[:r-1]...), D(1))
		ok = gamma.Shape.Equal(S(x.Shape[r-1])) && mean.DType == want && invstd.DType == want &&
			mean.Shape.Equal(stat) && invstd.Shape.Equal(stat)
	}
	if !ok {
		panic(errorf("LayerNormGrad", "want x and dy [..., D], gamma [D] of x's dtype and mean and invstd [..., 1] in %v; got %v, %v, %v, %v, %v",
			want, x, gamma, mean, invstd, dy))
	}
	part := S(NormChunks, x.Shape[r-1])
	return []TypeShape{{x.DType, x.Shape}, {want, part}, {want, part}}
}

// AdamWCoefficients is the length of AdamW's coef input.
const AdamWCoefficients = 8

// AdamW is one fused AdamW update of a parameter p with gradient g and
// moments m, v (one shape and float dtype). coef [8] holds b1, a1, b2, a2,
// decay, step, eps and finite; the results are
//
//	m′ = b1·m + a1·g,  v′ = b2·v + a2·(g·g),  p′ = p·decay − step·(m′ / (√v′ + eps))
//
// with every operation rounded once in that order (the stock-op form gives
// the same bits), or p, m, v unchanged where finite is 0. It is one node
// reading p, g, m, v and writing p′, m′, v′, where the stock ops make about
// fifteen whole-tensor passes. It has no gradient.
func AdamW(p, g, m, v, coef *Value) (p2, m2, v2 *Value) {
	out := graphOf("AdamW", p, g, m, v, coef).add("AdamW", nil, p, g, m, v, coef)
	return out[0], out[1], out[2]
}

// AdamWInPlace is AdamW writing p′, m′ and v′ over p, m and v, in the
// buffers the session was fed: no second copy of the parameters and
// moments exists during the update. It returns an empty tensor ([0], p's
// dtype) that only keeps the node in the graph (feed it to an output).
//
// ONNX values are immutable, so the node is safe only under conditions the
// graph builder must guarantee and this function checks what it can of:
// p, m and v are inputs of the outermost graph (the caller's own buffers,
// which ONNX Runtime uses without a copy when they are bound in the
// memory of the provider that runs the node), and every other node that
// reads them is an ancestor of g or coef, so it has run before the update.
// graphs/train's step graph makes coef depend on the loss and on every
// gradient, which every reader of a parameter feeds. It has no gradient.
func AdamWInPlace(p, g, m, v, coef *Value) *Value {
	for _, x := range []*Value{p, m, v} {
		if !x.IsInput() || x.g.parent != nil {
			panic(errorf("AdamWInPlace", "%v must be an input of the outermost graph, whose buffer the update overwrites", x))
		}
	}
	return op1("AdamWInPlace", nil, p, g, m, v, coef)
}

// GeluGrad is dy·gelu′(x) for the tanh form of Gelu, one fused node (x and
// dy of one shape and dtype: float32, float64, or bfloat16, whose result
// is computed in float32 and rounded once) where the stock ops take
// thirteen passes. It is Gelu's gradient; it has none itself.
func GeluGrad(x, dy *Value) *Value { return op1("GeluGrad", nil, x, dy) }

// SegsumExp is the decay matrix of cumulative log-decays cs [..., Q]
// (float64), as one fused node:
//
//	L[..., i, j] = exp(cs[..., i] − cs[..., j])  for j ≤ i,  0 above the diagonal
//
// the difference taken in float64 and the exponential rounded once to dt
// (float32, float64 or bfloat16; the CUDA kernel's exponential is within
// a few units of float32). Written with stock ops this is the segment sum
// and its mask, the exponential and a cast, five or more passes over the
// [..., Q, Q] result, and as many again in the gradient. Its gradient is
// SegsumExpGrad. (The node's second input is an empty tensor of dt that
// carries the result's dtype; SegsumExpMul passes a multiplicand there.)
func SegsumExp(cs *Value, dt tensors.DType) *Value {
	return op1("SegsumExp", nil, cs, cs.g.root.Const(tensors.Zeros(dt, 0)))
}

// SegsumExpMul is g∘L for L = SegsumExp(cs) and g [..., Q, Q] (float32,
// float64 or bfloat16; the result has g's dtype), as one fused node: L is
// never written, and each product is taken in float32 (float64 for
// float64) and rounded once, where the stock form writes L rounded to g's
// dtype and reads it back for a Mul. Above the diagonal the result is 0
// whatever g holds there. Its gradient is SegsumExpGrad of the result for
// cs and SegsumExpMul(cs, dy) for g, so the backward pass never writes L
// either. The SSD's decay-weighted scores L∘(C·Bᵀ) within a chunk are one.
func SegsumExpMul(cs, g *Value) *Value { return op1("SegsumExp", nil, cs, g) }

// SegsumExpGrad is SegsumExp's gradient from dl (l and dl [..., Q, Q] of
// one dtype): with G = l·dl below the diagonal, dcs[..., k] = Σ_j G[..., k, j]
// − Σ_i G[..., i, k], float64 [..., Q] (the row and the column sums are
// float32, float64 for float64). For y = SegsumExpMul(cs, g) the same sums
// of y·dy are cs's gradient, since dL∘L = (dy∘g)∘L = dy∘y.
func SegsumExpGrad(l, dl *Value) *Value { return op1("SegsumExpGrad", nil, l, dl) }

// segsumExpGrad is the gradient of SegsumExp and SegsumExpMul: cs's from
// the result, and a multiplicand's as dy∘L.
func segsumExpGrad(n *Node, g []*Value, need []bool) []*Value {
	cs, m := n.Inputs[0], n.Inputs[1]
	var dcs, dm *Value
	if need[0] {
		dcs = SegsumExpGrad(n.Outputs[0], g[0])
	}
	if need[1] && !isCarrier(m) {
		dm = SegsumExpMul(cs, g[0])
	}
	return []*Value{dcs, dm}
}

// isCarrier reports whether v is an empty [0] tensor that carries only a
// dtype (SegsumExp's second input).
func isCarrier(v *Value) bool { return v.Shape.Equal(S(0)) }

// inferSegsumExp is the shape rule of SegsumExp and SegsumExpMul.
func inferSegsumExp(n *Node) []TypeShape {
	cs, like := n.Inputs[0], n.Inputs[1]
	if cs.DType != tensors.Float64 || cs.Rank() < 1 || cs.Rank() > 7 {
		panic(errorf("SegsumExp", "cs %v must be float64 of rank 1 to 7", cs))
	}
	wantFusedFloat("SegsumExp", like)
	out := append(append(Shape{}, cs.Shape...), cs.Shape[cs.Rank()-1])
	if !isCarrier(like) && !like.Shape.Equal(out) {
		panic(errorf("SegsumExp", "the second input %v must be an empty dtype carrier ([0]) or a multiplicand %v", like, out))
	}
	return ts(like.DType, out)
}

// inferSegsumExpGrad is the shape rule of SegsumExpGrad.
func inferSegsumExpGrad(n *Node) []TypeShape {
	l, dl := n.Inputs[0], n.Inputs[1]
	wantFusedFloat("SegsumExpGrad", l)
	sameDType("SegsumExpGrad", l, dl)
	r := l.Rank()
	if r < 2 || l.Shape[r-1] != l.Shape[r-2] || !l.Shape.Equal(dl.Shape) {
		panic(errorf("SegsumExpGrad", "want l and dl of one shape [..., Q, Q]; got %v, %v", l, dl))
	}
	return ts(tensors.Float64, append(Shape{}, l.Shape[:r-1]...))
}

// MaskedDiffSq is Stage 1's squared distance between a mixer's masked
// kernel K = L∘s and a target a, row by row, as one fused node that never
// materialises L or K: for s, a [..., T, T] and cumulative log decays cs
// [..., T] (float64), with L[i, j] = exp(cs_i − cs_j) for j ≤ i and 0
// above the diagonal (SegsumExp),
//
//	rows[..., i] = Σ_j (s[..., i, j]·L[i, j] − a[..., i, j])²
//
// in a's dtype [..., T]. s is float32, float64 or bfloat16; a is float32
// (float64 with float64 s). The sums are float32 (float64 for float64;
// the CPU loop sums in float64). Its gradient is MaskedDiffSqGrad; a gets
// none (it is a target).
func MaskedDiffSq(s, cs, a *Value) *Value { return op1("MaskedDiffSq", nil, s, cs, a) }

// MaskedDiffSqGrad is MaskedDiffSq's gradient from dy [..., T] (a's dtype):
// with dK = 2·dy_i·(K − a), ds = dK∘L in s's dtype and, with G = dK∘K,
// dcs[..., k] = Σ_j G[k, j] − Σ_i G[i, k] (float64).
func MaskedDiffSqGrad(s, cs, a, dy *Value) (ds, dcs *Value) {
	out := graphOf("MaskedDiffSqGrad", s, cs, a, dy).add("MaskedDiffSqGrad", nil, s, cs, a, dy)
	return out[0], out[1]
}

func maskedDiffSqGrad(n *Node, g []*Value, need []bool) []*Value {
	if need[2] {
		panic(errorf("MaskedDiffSq", "the target a %v has no gradient", n.Inputs[2]))
	}
	ds, dcs := MaskedDiffSqGrad(n.Inputs[0], n.Inputs[1], n.Inputs[2], g[0])
	return []*Value{ds, dcs, nil}
}

// maskedDiffSqInputs checks s, cs and a of MaskedDiffSq and its gradient.
func maskedDiffSqInputs(op string, s, cs, a *Value) {
	wantFusedFloat(op, s)
	want := sumType(s.DType)
	r := s.Rank()
	if r < 2 || r > 7 || s.Shape[r-1] != s.Shape[r-2] || !a.Shape.Equal(s.Shape) || a.DType != want ||
		cs.DType != tensors.Float64 || !cs.Shape.Equal(s.Shape[:r-1]) {
		panic(errorf(op, "want s [..., T, T], cs [..., T] float64 and a like s in %v; got %v, %v, %v", want, s, cs, a))
	}
}

// inferMaskedDiffSq is the shape rule of MaskedDiffSq.
func inferMaskedDiffSq(n *Node) []TypeShape {
	s, cs, a := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	maskedDiffSqInputs("MaskedDiffSq", s, cs, a)
	return ts(a.DType, cs.Shape)
}

// inferMaskedDiffSqGrad is the shape rule of MaskedDiffSqGrad.
func inferMaskedDiffSqGrad(n *Node) []TypeShape {
	s, cs, a, dy := n.Inputs[0], n.Inputs[1], n.Inputs[2], n.Inputs[3]
	maskedDiffSqInputs("MaskedDiffSqGrad", s, cs, a)
	if dy.DType != a.DType || !dy.Shape.Equal(cs.Shape) {
		panic(errorf("MaskedDiffSqGrad", "dy %v must be %v %v", dy, a.DType, cs.Shape))
	}
	return []TypeShape{{s.DType, s.Shape}, {tensors.Float64, cs.Shape}}
}

// CausalSoftmax is the causal attention probabilities of scores x [..., Tq,
// Tk] (Tq ≤ Tk; float32, float64 or bfloat16), one fused node:
//
//	p[..., i, j] = softmax_j(scale·x[..., i, j]) over the keys j ≤ i + Tk − Tq, 0 for the others
//
// in float32 (float64 for float64): what stock ops write as a cast, a
// scale, a mask bias and a softmax. Its gradient is stock ops on p.
func CausalSoftmax(x *Value, scale float64) *Value {
	return op1("CausalSoftmax", nil, x, x.g.root.Const(tensors.FromFloat64([]int64{1}, []float64{scale}).Convert(sumType(x.DType))))
}

// causalSoftmaxGrad is scale·p∘(g − Σ_j p∘g), in x's dtype; the scale (a
// constant) gets none.
func causalSoftmaxGrad(n *Node, g []*Value, need []bool) []*Value {
	p, x, scale := n.Outputs[0], n.Inputs[0], n.Inputs[1]
	dz := Mul(p, Sub(g[0], ReduceSum(Mul(p, g[0]), []int64{-1}, true)))
	return []*Value{Cast(Mul(dz, scale), x.DType), nil}
}

// inferCausalSoftmax is the shape rule of CausalSoftmax.
func inferCausalSoftmax(n *Node) []TypeShape {
	x, scale := n.Inputs[0], n.Inputs[1]
	wantFusedFloat("CausalSoftmax", x)
	want := sumType(x.DType)
	r := x.Rank()
	if r < 2 || r > 8 || scale.DType != want || !scale.Shape.Equal(S(1)) ||
		x.Shape[r-1].Static() && x.Shape[r-2].Static() && x.Shape[r-2].K > x.Shape[r-1].K {
		panic(errorf("CausalSoftmax", "want x [..., Tq, Tk] with Tq ≤ Tk and scale [1] in %v; got %v, %v", want, x, scale))
	}
	return ts(want, x.Shape)
}

// SoftCrossEntropy is the soft cross-entropy of student logits s against
// teacher logits t [..., V], row by row, as one fused node: with z =
// scale·s and u = scale·t,
//
//	ce[...] = −Σ_v softmax(u)_v·log softmax(z)_v
//
// and stats [..., 2], each row's logsumexp of z and of u (which the
// gradient reads), both in float32 (float64 for float64 s). s is float32,
// float64 or bfloat16; t float32 or bfloat16 (float64 with float64 s), so
// bfloat16 teacher logits are read as they are. The CPU loop sums in
// float64; the CUDA kernel in float32 with approximate exponentials and
// logarithms (within a few units of float32). Written with stock ops this
// is a log-softmax, a softmax, a product and a sum over [..., V], and
// their gradients as many passes again; the fused node reads s and t
// twice and its gradient (SoftCrossEntropyGrad) reads them once and
// writes ds. t is a target and gets no gradient.
func SoftCrossEntropy(s, t *Value, scale float64) (ce, stats *Value) {
	sc := s.g.root.Const(tensors.FromFloat64([]int64{1}, []float64{scale}).Convert(sumType(s.DType)))
	out := graphOf("SoftCrossEntropy", s, t, sc).add("SoftCrossEntropy", nil, s, t, sc)
	return out[0], out[1]
}

// SoftCrossEntropyGrad is SoftCrossEntropy's gradient for s from dce
// (SoftCrossEntropy's inputs and its stats): ds = dce·scale·(softmax(z) −
// softmax(u)), in s's dtype.
func SoftCrossEntropyGrad(s, t, scale, stats, dce *Value) *Value {
	return op1("SoftCrossEntropyGrad", nil, s, t, scale, stats, dce)
}

func softCrossEntropyGrad(n *Node, g []*Value, need []bool) []*Value {
	if need[1] {
		panic(errorf("SoftCrossEntropy", "the teacher logits %v are a target and have no gradient", n.Inputs[1]))
	}
	if g[1] != nil {
		panic(errorf("SoftCrossEntropy", "its stats output %v has no gradient", n.Outputs[1]))
	}
	return []*Value{SoftCrossEntropyGrad(n.Inputs[0], n.Inputs[1], n.Inputs[2], n.Outputs[1], g[0]), nil, nil}
}

// SoftCrossEntropyTakes reports whether SoftCrossEntropy takes student
// logits of dtype s against teacher logits of dtype t: float32 or bfloat16
// each, or float64 both.
func SoftCrossEntropyTakes(s, t tensors.DType) bool {
	low := func(d tensors.DType) bool { return d == tensors.Float32 || d == tensors.BFloat16 }
	return low(s) && low(t) || s == tensors.Float64 && t == tensors.Float64
}

// softCrossEntropyInputs checks s, t and scale of SoftCrossEntropy and its
// gradient, and returns the rows' shape (s's but the last axis) and their
// dtype.
func softCrossEntropyInputs(op string, s, t, scale *Value) (Shape, tensors.DType) {
	wantFusedFloat(op, s)
	want := sumType(s.DType)
	r := s.Rank()
	if r < 1 || r > 7 || !SoftCrossEntropyTakes(s.DType, t.DType) || !t.Shape.Equal(s.Shape) || scale.DType != want || !scale.Shape.Equal(S(1)) {
		panic(errorf(op, "want s and t [..., V] (t float32 or bfloat16; float64 with float64 s) and scale [1] in %v; got %v, %v, %v",
			want, s, t, scale))
	}
	return append(Shape{}, s.Shape[:r-1]...), want
}

// inferSoftCrossEntropy is the shape rule of SoftCrossEntropy.
func inferSoftCrossEntropy(n *Node) []TypeShape {
	rows, dt := softCrossEntropyInputs("SoftCrossEntropy", n.Inputs[0], n.Inputs[1], n.Inputs[2])
	return []TypeShape{{dt, rows}, {dt, append(append(Shape{}, rows...), D(2))}}
}

// inferSoftCrossEntropyGrad is the shape rule of SoftCrossEntropyGrad.
func inferSoftCrossEntropyGrad(n *Node) []TypeShape {
	s, stats, dce := n.Inputs[0], n.Inputs[3], n.Inputs[4]
	rows, dt := softCrossEntropyInputs("SoftCrossEntropyGrad", s, n.Inputs[1], n.Inputs[2])
	if stats.DType != dt || dce.DType != dt || !dce.Shape.Equal(rows) || !stats.Shape.Equal(append(append(Shape{}, rows...), D(2))) {
		panic(errorf("SoftCrossEntropyGrad", "want stats [..., 2] and dce [...] in %v for s %v; got %v, %v", dt, s, stats, dce))
	}
	return ts(s.DType, s.Shape)
}

// Residual is the residual stream's update h + p₀, or (p₀ + p₁) + h, as
// one fused node: h is float32 (or float64) and each part has h's shape
// and dtype or is bfloat16, widened exactly. Each addition is rounded once
// in that order, so the result equals the stock Adds (and Casts of
// bfloat16 parts) bit for bit, while the node reads h and the parts once
// and writes the sum, where the stock ops also write each widened part and
// the partial sum. Its gradient is the incoming one for h and for each
// part, cast to a bfloat16 part's dtype (once for both).
func Residual(h *Value, parts ...*Value) *Value {
	ins := append([]*Value{h}, parts...)
	return op1("Residual", nil, ins...)
}

func residualGrad(n *Node, g []*Value, need []bool) []*Value {
	out := make([]*Value, len(n.Inputs))
	out[0] = g[0]
	var low *Value
	for i, p := range n.Inputs[1:] {
		switch {
		case !need[i+1]:
		case p.DType == g[0].DType:
			out[i+1] = g[0]
		default:
			if low == nil {
				low = Cast(g[0], p.DType)
			}
			out[i+1] = low
		}
	}
	return out
}

// inferResidual is the shape rule of Residual.
func inferResidual(n *Node) []TypeShape {
	h, parts := n.Inputs[0], n.Inputs[1:]
	ok := (h.DType == tensors.Float32 || h.DType == tensors.Float64) && len(parts) >= 1 && len(parts) <= 2
	for _, p := range parts {
		ok = ok && p.Shape.Equal(h.Shape) && (p.DType == h.DType || h.DType == tensors.Float32 && p.DType == tensors.BFloat16)
	}
	if !ok {
		panic(errorf("Residual", "want h float32 or float64 and one or two parts of its shape, each of its dtype or bfloat16; got %v, %v", h, parts))
	}
	return ts(h.DType, h.Shape)
}

// Rotary is the rotary position embedding of x [B, T, H, P] with tables
// cos, sin [T, 1, R] (x's dtype: float32, float64 or bfloat16; R even, at
// most P) as one fused node: for channel c < R, with r the rotated half
// (r_c = −x_{c+R/2} below R/2, x_{c−R/2} above),
//
//	y_c = x_c·cos_c + r_c·sin_c
//
// each product and the sum rounded to x's dtype, as the stock Muls and Add
// round them (the result is theirs bit for bit); channels from R on pass
// through. It reads x once and writes y, where the stock ops split x
// twice, negate, concatenate twice, multiply twice and add. Its gradient,
// in stock ops, is dy_c·cos_c − (the rotated half of dy∘sin)_c below R and
// dy above.
func Rotary(x, cos, sin *Value) *Value { return op1("Rotary", nil, x, cos, sin) }

func rotaryGrad(n *Node, g []*Value, need []bool) []*Value {
	if need[1] || need[2] {
		panic(errorf("Rotary", "the tables %v, %v have no gradient here", n.Inputs[1], n.Inputs[2]))
	}
	x, cos, sin, dy := n.Inputs[0], n.Inputs[1], n.Inputs[2], g[0]
	r, p := cos.Shape[2].K, x.Shape[3].K
	dyr := dy
	if r < p {
		dyr = SliceAxis(dy, 3, 0, r)
	}
	t := Split(Mul(dyr, sin), -1, r/2, r/2)
	dx := Add(Mul(dyr, cos), Concat(-1, t[1], Neg(t[0])))
	if r < p {
		dx = Concat(-1, dx, SliceAxis(dy, 3, r, p))
	}
	return []*Value{dx, nil, nil}
}

// inferRotary is the shape rule of Rotary.
func inferRotary(n *Node) []TypeShape {
	x, cos, sin := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	wantFusedFloat("Rotary", x)
	sameDType("Rotary", x, cos, sin)
	if x.Rank() != 4 || !x.Shape[3].Static() || cos.Rank() != 3 || !cos.Shape.Equal(sin.Shape) || cos.Shape[0] != x.Shape[1] ||
		!cos.Shape[1].IsOne() || !cos.Shape[2].Static() || cos.Shape[2].K < 2 || cos.Shape[2].K%2 != 0 || cos.Shape[2].K > x.Shape[3].K {
		panic(errorf("Rotary", "want x [B, T, H, P] and tables cos, sin [T, 1, R] with R even and at most P; got %v, %v, %v", x, cos, sin))
	}
	return ts(x.DType, x.Shape)
}

// AllReduce is the element-wise mean of x over the ranks of a data-parallel
// group, one fused node: mohawk/runtime's kernel reduces over the NCCL
// communicator registered in the process (on the CUDA provider's stream)
// or over its registered host reducer (on the CPU), and a group of one
// rank returns x bit for bit. x is float32, float64 (CPU only) or
// bfloat16. As the mean is linear and the same on every rank, its
// gradient is the AllReduce of the incoming gradient.
func AllReduce(x *Value) *Value { return op1("AllReduce", nil, x) }

func allReduceGrad(n *Node, g []*Value, need []bool) []*Value { return []*Value{AllReduce(g[0])} }

// inferAllReduce is the shape rule of AllReduce.
func inferAllReduce(n *Node) []TypeShape {
	x := n.Inputs[0]
	wantFusedFloat("AllReduce", x)
	return ts(x.DType, x.Shape)
}

func init() {
	register(&OpDef{Type: "Rotary", Domain: FusedDomain, Since: 1, Infer: inferRotary, Grad: rotaryGrad, Attrs: noAttrs})
	register(&OpDef{Type: "Residual", Domain: FusedDomain, Since: 1, Infer: inferResidual, Grad: residualGrad, Attrs: noAttrs})
	register(&OpDef{Type: "AllReduce", Domain: FusedDomain, Since: 1, Infer: inferAllReduce, Grad: allReduceGrad, Attrs: noAttrs})
	register(&OpDef{Type: "CausalConv", Domain: FusedDomain, Since: 1, Infer: inferCausalConv, Grad: convGrad, Attrs: noAttrs})
	register(&OpDef{Type: "CausalConvGrad", Domain: FusedDomain, Since: 1, Infer: inferCausalConvGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "GeluGrad", Domain: FusedDomain, Since: 1, Infer: inferGeluGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "SegsumExp", Domain: FusedDomain, Since: 1, Infer: inferSegsumExp, Grad: segsumExpGrad, Attrs: noAttrs})
	register(&OpDef{Type: "SegsumExpGrad", Domain: FusedDomain, Since: 1, Infer: inferSegsumExpGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "MaskedDiffSq", Domain: FusedDomain, Since: 1, Infer: inferMaskedDiffSq, Grad: maskedDiffSqGrad, Attrs: noAttrs})
	register(&OpDef{Type: "MaskedDiffSqGrad", Domain: FusedDomain, Since: 1, Infer: inferMaskedDiffSqGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "CausalSoftmax", Domain: FusedDomain, Since: 1, Infer: inferCausalSoftmax, Grad: causalSoftmaxGrad, Attrs: noAttrs})
	register(&OpDef{Type: "SoftCrossEntropy", Domain: FusedDomain, Since: 1, Infer: inferSoftCrossEntropy, Grad: softCrossEntropyGrad, Attrs: noAttrs})
	register(&OpDef{Type: "SoftCrossEntropyGrad", Domain: FusedDomain, Since: 1, Infer: inferSoftCrossEntropyGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "SiluMul", Domain: FusedDomain, Since: 1, Infer: inferSiluMul, Grad: siluMulGrad, Attrs: noAttrs})
	register(&OpDef{Type: "SiluMulGrad", Domain: FusedDomain, Since: 1, Infer: inferSiluMul, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "GateSkip", Domain: FusedDomain, Since: 1, Infer: inferGateSkip, Grad: gateSkipGrad, Attrs: noAttrs})
	register(&OpDef{Type: "GateSkipGrad", Domain: FusedDomain, Since: 1, Infer: inferGateSkip, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "LayerNormGrad", Domain: FusedDomain, Since: 1, Infer: inferLayerNormGrad, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "AdamW", Domain: FusedDomain, Since: 1, Infer: inferAdamW, NoGrad: true, Attrs: noAttrs})
	register(&OpDef{Type: "AdamWInPlace", Domain: FusedDomain, Since: 1, Infer: inferAdamWInPlace, NoGrad: true, Attrs: noAttrs})
}

// inferCausalConv is the shape rule of CausalConv.
func inferCausalConv(n *Node) []TypeShape {
	x, w, b := n.Inputs[0], n.Inputs[1], n.Inputs[2]
	parts := convShapes("CausalConv", x, w, n.Inputs[3])
	sameDType("CausalConv", x, b)
	if !b.Shape.Equal(S(w.Shape[0])) {
		panic(errorf("CausalConv", "the bias %v must be [C] for w %v", b, w))
	}
	out := make([]TypeShape, len(parts))
	for i, p := range parts {
		out[i] = TypeShape{x.DType, p}
	}
	return out
}

// inferCausalConvGrad is the shape rule of CausalConvGrad.
func inferCausalConvGrad(n *Node) []TypeShape {
	x, w := n.Inputs[0], n.Inputs[1]
	parts := convShapes("CausalConvGrad", x, w, n.Inputs[2])
	dys := n.Inputs[3:]
	if len(dys) != len(parts) {
		panic(errorf("CausalConvGrad", "%d parts' gradients for %d parts", len(dys), len(parts)))
	}
	for i, dy := range dys {
		sameDType("CausalConvGrad", x, dy)
		if !dy.Shape.Equal(parts[i]) {
			panic(errorf("CausalConvGrad", "part %d's gradient %v must be %v", i, dy, parts[i]))
		}
	}
	part := sumType(x.DType)
	c, k := w.Shape[0], w.Shape[2]
	return []TypeShape{{x.DType, x.Shape}, {part, S(D(ConvChunks), c, k)}, {part, S(D(ConvChunks), c)}}
}

// inferGeluGrad is the shape rule of GeluGrad.
func inferGeluGrad(n *Node) []TypeShape {
	x, dy := n.Inputs[0], n.Inputs[1]
	wantFusedFloat("GeluGrad", x)
	sameDType("GeluGrad", x, dy)
	if !x.Shape.Equal(dy.Shape) {
		panic(errorf("GeluGrad", "dy %v must have x's shape %v", dy, x.Shape))
	}
	return ts(x.DType, x.Shape)
}

// inferAdamW is the shape rule of AdamW.
func inferAdamW(n *Node) []TypeShape {
	p := adamwInputs(n)
	t := TypeShape{p.DType, p.Shape}
	return []TypeShape{t, t, t}
}

// inferAdamWInPlace is the shape rule of AdamWInPlace.
func inferAdamWInPlace(n *Node) []TypeShape {
	p := adamwInputs(n)
	return ts(p.DType, S(0))
}

// adamwInputs checks the inputs of an AdamW or AdamWInPlace node and
// returns p.
func adamwInputs(n *Node) *Value {
	op := n.Op
	if len(n.Inputs) != 5 {
		panic(errorf(op, "want p, g, m, v, coef; got %d inputs", len(n.Inputs)))
	}
	p, coef := n.Inputs[0], n.Inputs[4]
	if p.DType != tensors.Float32 && p.DType != tensors.Float64 {
		panic(errorf(op, "p %v must be float32 or float64", p))
	}
	sameDType(op, n.Inputs...)
	for _, x := range n.Inputs[1:4] {
		if !x.Shape.Equal(p.Shape) {
			panic(errorf(op, "g, m and v must have p's shape %v; got %v", p.Shape, x))
		}
	}
	if !coef.Shape.Equal(S(AdamWCoefficients)) {
		panic(errorf(op, "coef %v must be [%d]", coef, AdamWCoefficients))
	}
	return p
}
