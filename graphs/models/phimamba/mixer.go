package phimamba

import (
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// Form, State and MixerOut are the registry's (package family).
type (
	Form     = family.Form
	State    = family.State
	MixerOut = family.MixerOut
)

// The three forms of the mixer.
const (
	FormSSD    = family.FormSSD    // chunked SSD (linear in T)
	FormMatrix = family.FormMatrix // materialised mixing matrix (quadratic)
	FormStep   = family.FormStep   // recurrent single-token step
)

// ssmInputs are the per-token inputs of the SSM after projection and conv,
// b and c already repeated to one head per value head.
// x, b, c and z are in the graph's low precision (bfloat16 under a
// bfloat16 MatMulPrecision, see project); logA and conv are float32.
type ssmInputs struct {
	x    *graphs.Value // [B, T, H, P]
	logA *graphs.Value // [B, T, H] = −softplus(a_raw)
	b, c *graphs.Value // [B, T, H, N]
	z    *graphs.Value // [B, T, DInner] (gate input, z_bias not yet added)
	conv *graphs.Value // final conv state (when a state was given)
}

func mixerName(i int, n string) string { return LayerPrefix(i) + ".mixer." + n }

// project applies in_proj and the causal depthwise conv (with an optional
// incoming conv state) and splits the result. The projection, the conv and
// its activation run in the graph's low precision (layers.LinearLow), as
// under PyTorch's bf16 autocast: under a bfloat16 MatMulPrecision the
// [B, T, ConvChannels] tensors and their gradients move half the bytes.
// logA (through softplus) and the conv state are float32.
//
// Without history in a graph that uses the blocks' fused kernels
// (graphs.Graph.UseBlockKernels) the split, the conv and the split of its
// result are one graphs.CausalConvSplit node, whose gradient writes
// in_proj's output gradient whole; otherwise they are a Split, causalConv
// and another Split.
func project(p layers.Params, c Config, i int, u *graphs.Value, conv *graphs.Value) ssmInputs {
	low := graphs.ToLowPrecision
	w := layers.LinearLow(p, mixerName(i, "in_proj"), u, c.InProj(), false)
	cx, di, h := c.ConvChannels(), c.DInner(), c.VHeads
	n, hd, g := c.DState, c.HeadDim(), c.QKHeads
	cw := low(p.Get(mixerName(i, "conv1d.weight"), graphs.S(cx, 1, c.DConv)))
	var cb *graphs.Value
	if c.ConvBias {
		cb = low(p.Get(mixerName(i, "conv1d.bias"), graphs.S(cx)))
	}
	var xs []*graphs.Value // x, B, C after the conv, then z and a_raw
	var state *graphs.Value
	if conv == nil && w.Graph().BlockKernel(graphs.BlockConv) {
		xs = graphs.CausalConvSplit(w, cw, convBias(cw, cb), di, g*n, g*n, di, h)
	} else {
		parts := graphs.Split(w, -1, cx, di, h)
		if conv != nil {
			conv = low(conv)
		}
		var y *graphs.Value
		y, state = causalConv(parts[0], cw, cb, conv)
		xs = append(graphs.Split(y, -1, di, g*n, g*n), parts[1], parts[2])
	}
	if c.Activation == "silu" {
		for j := range 3 {
			xs[j] = low(silu(xs[j]))
		}
	}
	if state != nil {
		state = graphs.FromLowPrecision(state)
	}
	// Each of the QKHeads B/C heads serves VHeads/QKHeads consecutive value
	// heads (Llamba's n_qk_heads < n_v_heads); Phi-Mamba has one per head.
	perHead := func(v *graphs.Value) *graphs.Value { return layers.RepeatHeads(graphs.Reshape(v, 0, 0, g, n), h/g) }
	return ssmInputs{
		x:    graphs.Reshape(xs[0], 0, 0, h, hd),
		b:    perHead(xs[1]),
		c:    perHead(xs[2]),
		logA: graphs.Neg(graphs.Softplus(graphs.FromLowPrecision(xs[4]))),
		z:    xs[3],
		conv: state,
	}
}

// wide is in with x, b, c and z in float32, for the forms that compute
// the SSM outside SSD.
func (in ssmInputs) wide() ssmInputs {
	in.x, in.b, in.c, in.z = graphs.FromLowPrecision(in.x), graphs.FromLowPrecision(in.b), graphs.FromLowPrecision(in.c), graphs.FromLowPrecision(in.z)
	return in
}

// causalConv is the depthwise causal conv along T of x [B, T, C] with
// weights w [C, 1, K] and bias b [C] (nil for none): y_t = b + Σ_j
// w[:, 0, j]·xs_{t+j}, where xs is x preceded by the K−1 inputs of past
// [B, C, K−1] (nil: zeros). It returns y [B, T, C] and, when past is given,
// the last K−1 inputs as the next state [B, C, K−1].
//
// Without history in a graph that uses fused kernels (training steps) it
// is one graphs.CausalConv node, whose gradient is one more. Otherwise, so
// that exported models stay stock ONNX, it is K whole-tensor products, each
// shifted into place, in the [B, T, C] layout the projections produce: no
// transposes, and autodiff keeps only xs for the weight gradient. (On the
// H200 this beat ONNX Conv, cuDNN's grouped convolution, between two
// transposes; and ONNX admits a bfloat16 Conv only from opset 22.)
func causalConv(x, w, b, past *graphs.Value) (y, state *graphs.Value) {
	k := w.Shape[2].K
	if past == nil && x.Graph().FusedKernels() {
		return graphs.CausalConv(x, w, convBias(w, b)), nil
	}
	var xs *graphs.Value // [B, K−1+T, C]
	if past == nil {
		xs = graphs.ZeroPad(x, []int64{0, k - 1, 0, 0, 0, 0})
	} else {
		xs = graphs.Concat(1, graphs.Transpose(past, 0, 2, 1), x)
		state = graphs.Transpose(graphs.SliceAxis(xs, 1, -(k-1), graphs.End), 0, 2, 1)
	}
	terms := make([]*graphs.Value, k)
	for j := range k {
		end := int64(graphs.End)
		if j < k-1 {
			end = j - (k - 1)
		}
		tap := graphs.Reshape(graphs.SliceAxis(w, 2, j, j+1), -1) // [C]
		terms[j] = graphs.SliceAxis(graphs.Mul(xs, tap), 1, j, end)
	}
	y = graphs.Sum(terms...)
	if b != nil {
		y = graphs.Add(y, b)
	}
	return y, state
}

// convBias is the conv's bias b, or zeros [C] in w's dtype for a conv
// without one (the fused conv kernels take a bias).
func convBias(w, b *graphs.Value) *graphs.Value {
	if b != nil {
		return b
	}
	return graphs.ZerosLike(graphs.Reshape(graphs.SliceAxis(w, 2, 0, 1), -1))
}

func silu(x *graphs.Value) *graphs.Value { return graphs.Mul(x, graphs.Sigmoid(x)) }

// finish adds D·x, applies the SiLU gate and out_proj to y [B, T, H, P].
// Like the SSD's products, these run in the graph's low precision, up to
// out_proj's result (float32): under a bfloat16 MatMulPrecision the
// [B, T, DInner] gate and its gradient chain move half the bytes.
func finish(p layers.Params, c Config, i int, y *graphs.Value, in ssmInputs) *graphs.Value {
	low := graphs.ToLowPrecision
	d := low(p.Get(mixerName(i, "D"), graphs.S(c.VHeads)))
	// The same sums and gate in one node (graphs.GateSkip), which rounds
	// them as the stock ops do in bfloat16 or float32; the CPU's bfloat16
	// emulation rounds the stock chain only where it meets a product, so it
	// keeps the stock ops.
	if g := y.Graph(); g.BlockKernel(graphs.BlockGate) && g.MatMulPrecision() != graphs.MatMulBFloat16Emulated {
		zb := low(p.Get(mixerName(i, "z_bias"), graphs.S(c.DInner())))
		flat := func(v *graphs.Value) *graphs.Value { return graphs.ReshapeTo(low(v), in.z.Shape, in.z) }
		y = graphs.GateSkip(flat(y), low(in.z), flat(in.x), d, zb)
	} else {
		y = graphs.Add(low(y), graphs.Mul(low(in.x), graphs.Unsqueeze(d, -1)))
		y = graphs.ReshapeTo(y, in.z.Shape, in.z)
		zb := low(p.Get(mixerName(i, "z_bias"), graphs.S(c.DInner())))
		y = low(layers.SiluGate(low(y), low(graphs.Add(low(in.z), zb))))
	}
	return graphs.FromLowPrecision(layers.LinearLow(p, mixerName(i, "out_proj"), y, c.DModel, false))
}

// Mixer applies layer i's mixer to the normed input u [B, T, D] in the
// given form. st supplies incoming states for FormSSD (optional: nil means
// an empty context and no states are returned) and FormStep (required; u
// must then have T = 1).
func Mixer(p layers.Params, c Config, i int, u *graphs.Value, form Form, st *State) MixerOut {
	var conv *graphs.Value
	if st != nil {
		conv = st.Conv
	}
	switch form {
	case FormMatrix:
		in := project(p, c, i, u, nil).wide()
		d := p.Get(mixerName(i, "D"), graphs.S(c.VHeads))
		m := MixingMatrix(in.b, in.c, in.logA, d)
		xh := graphs.Transpose(in.x, 0, 2, 1, 3)                     // [B, H, T, P]
		y := graphs.Transpose(graphs.MatMul(m, xh), 0, 2, 1, 3)      // M already holds D
		y = graphs.Sub(y, graphs.Mul(in.x, graphs.Unsqueeze(d, -1))) // finish adds D·x once
		return MixerOut{Out: finish(p, c, i, y, in), Matrix: m}
	case FormSSD:
		in := project(p, c, i, u, conv)
		var init *graphs.Value
		if st != nil {
			init = st.SSM
		}
		y, final := SSD(in.x, in.logA, in.b, in.c, c.ChunkSize, init)
		out := MixerOut{Out: finish(p, c, i, y, in)}
		if st != nil {
			out.State = State{Conv: in.conv, SSM: final}
		}
		return out
	case FormStep:
		if st == nil || st.Conv == nil || st.SSM == nil {
			panic(&graphs.Error{Op: "phimamba.Mixer", Msg: "the step form needs conv and ssm states"})
		}
		if !u.Shape[1].IsOne() {
			panic(&graphs.Error{Op: "phimamba.Mixer", Msg: "the step form takes one token; got " + u.String()})
		}
		in := project(p, c, i, u, st.Conv).wide()
		y, s := Step(in.x, in.logA, in.b, in.c, st.SSM)
		return MixerOut{Out: finish(p, c, i, y, in), State: State{Conv: in.conv, SSM: s}}
	}
	panic(&graphs.Error{Op: "phimamba.Mixer", Msg: "unknown form " + form.String()})
}

// decays returns exp(segsum(a)) [..., T, T] of log decays a [..., T] in
// dtype dt (layers.Decays of their float64 cumulative sum): L[i, j] =
// exp(Σ_{k=j+1..i} a_k) for j ≤ i, 0 above the diagonal; one fused node
// in training graphs.
func decays(a *graphs.Value, dt tensors.DType) *graphs.Value {
	return layers.Decays(layers.CumLogDecay(a), dt)
}

// decayed is the SSD's decay-weighted scores g∘L for log decays a [..., Q]
// and g [..., Q, Q], in g's dtype: one fused graphs.SegsumExpMul node with
// the blocks' kernels (graphs.Graph.UseBlockKernels), which rounds each
// product once; otherwise g times lowDecays(a), L rounded to the graph's
// low precision first (bfloat16, or its emulation on the CPU).
func decayed(a, g *graphs.Value) *graphs.Value {
	if g.Graph().BlockKernel(graphs.BlockDecay) {
		return graphs.SegsumExpMul(layers.CumLogDecay(a), g)
	}
	return graphs.Mul(g, lowDecays(a))
}

// lowDecays is decays of float32 or float64 a in the graph's low
// precision (graphs.ToLowPrecision): bfloat16 from the fused kernel itself
// under a bfloat16 MatMulPrecision.
func lowDecays(a *graphs.Value) *graphs.Value {
	dt := a.DType
	if dt == tensors.Float32 {
		dt = a.Graph().LowDType()
	}
	return graphs.ToLowPrecision(decays(a, dt))
}

// indexGrid returns int64 row indices [T, 1] and column indices [1, T] for
// dim axis of v.
func indexGrid(v *graphs.Value, axis int) (rows, cols *graphs.Value) {
	r := v.Graph().Root()
	t := graphs.Squeeze(graphs.ShapeOf(v, axis, axis+1), 0)
	idx := graphs.Range(r.Int64(0), t, r.Int64(1), v.Shape[axis])
	return graphs.Unsqueeze(idx, 1), graphs.Unsqueeze(idx, 0)
}

// MixingMatrix materialises M = L∘(C·Bᵀ) + D·I [B, H, T, T] with
// L[l, s] = exp(Σ_{k=s+1..l} log a_k) for b, c [B, T, H, N], logA [B, T, H]
// and d [H] (row = output position, as the attention matrix).
func MixingMatrix(b, c, logA, d *graphs.Value) *graphs.Value {
	k := matrixParts(b, c, logA, d).Kernel()
	rows, cols := indexGrid(k, 2)
	eye := graphs.Cast(graphs.Equal(rows, cols), d.DType)              // [T, T]
	return graphs.Add(k, graphs.Mul(graphs.Reshape(d, -1, 1, 1), eye)) // + D on the diagonal
}

// matrixParts splits the mixing matrix of b, c [B, T, H, N], logA [B, T,
// H] and d [H] into layers.MatrixParts: S = C·Bᵀ (its operands in the
// graph's low precision), the cumulative log decays, the diagonal C_t·B_t
// (L's diagonal is exp 0 = 1; computed from the small inputs, so that its
// gradient does not pass through [T, T] matrices) and D.
func matrixParts(b, c, logA, d *graphs.Value) layers.MatrixParts {
	low := graphs.ToLowPrecision
	bh := graphs.Transpose(b, 0, 2, 1, 3) // [B, H, T, N]
	ch := graphs.Transpose(c, 0, 2, 1, 3)
	return layers.MatrixParts{
		S:       graphs.MatMul(low(ch), graphs.Transpose(low(bh), 0, 1, 3, 2)),
		CumLogA: layers.CumLogDecay(graphs.Transpose(logA, 0, 2, 1)), // [B, H, T]
		Diag:    graphs.Transpose(graphs.ReduceSum(graphs.Mul(c, b), []int64{-1}, false), 0, 2, 1),
		D:       d,
	}
}

// SSD is the chunked state-space-duality algorithm for x [B, T, H, P],
// logA [B, T, H], b, c [B, T, H, N] with chunk length q and an optional
// initial state init [B, H, N, P] (nil: zeros). It returns y [B, T, H, P]
// (without the D skip) and the final state [B, H, N, P], where
// S_t = a_t·S_{t−1} + B_t x_tᵀ and y_t = S_tᵀ C_t. T need not be a multiple
// of q: the sequence is padded with zeros (log a = 0), which does not affect
// earlier positions, and the final state is taken at the last real token.
//
// The products and the tensors between them (x, b, c, the decay-weighted
// scores and states) are in the graph's low precision
// (graphs.ToLowPrecision: bfloat16 under a bfloat16 MatMulPrecision, as
// PyTorch's autocast runs these einsums); the cumulative decays and their
// exponentials are float32, and so is the final state; y is left in the
// low precision for the mixer's gate.
func SSD(x, logA, b, c *graphs.Value, q int64, init *graphs.Value) (y, final *graphs.Value) {
	g := x.Graph().Root()
	low := graphs.ToLowPrecision
	bd, td, hd := x.Shape[0], x.Shape[1], x.Shape[2]
	pd, nd := x.Shape[3], b.Shape[3]
	// Pad T up to a multiple of q: pad = ceil(T/q)·q − T (run time). A
	// static T that is already a multiple (training graphs) needs no copy.
	t := graphs.ShapeOf(x, 1, 2)
	aligned := td.Static() && td.K%q == 0
	pad := func(v *graphs.Value) *graphs.Value { return v }
	if !aligned {
		qv := g.Int64s(q)
		padN := graphs.Sub(graphs.Mul(graphs.Div(graphs.Add(t, g.Int64s(q-1)), qv), qv), t)
		chunks := graphs.Sym("chunks(" + td.String() + ")")
		tp := graphs.Dim{K: q, Factors: chunks.Factors}
		pad = func(v *graphs.Value) *graphs.Value { return graphs.PadEnd(v, 1, padN, tp, 0) }
	}
	// Decays in the padded tail are 1 (log a = 0), so the state carries
	// through unchanged and the final state is the last real token's.
	toChunks := func(v *graphs.Value) *graphs.Value {
		v = graphs.Transpose(pad(v), append([]int64{0, 2, 1}, seq(3, v.Rank())...)...) // [B, H, Tp, ...]
		spec := []int64{0, 0, -1, q}
		for _, d := range v.Shape[3:] {
			spec = append(spec, d.Size())
		}
		return graphs.Reshape(v, spec...)
	}
	if !aligned { // CUDA's Pad has no bfloat16 kernel: pad in float32
		x, b, c = graphs.FromLowPrecision(x), graphs.FromLowPrecision(b), graphs.FromLowPrecision(c)
	}
	xc := low(toChunks(x)) // [B, H, c, Q, P]
	bc := low(toChunks(b)) // [B, H, c, Q, N]
	cc := low(toChunks(c)) // [B, H, c, Q, N]
	ac := toChunks(logA)   // [B, H, c, Q]
	acs := graphs.CumSum(ac, 3, false, false)
	// 1. Intra-chunk (diagonal blocks).
	scores := decayed(ac, graphs.MatMul(cc, graphs.Transpose(bc, 0, 1, 2, 4, 3))) // L∘(C·Bᵀ) [B, H, c, Q, Q]
	yDiag := graphs.MatMul(scores, xc)                                            // [B, H, c, Q, P]
	// 2. Each chunk's own state: Σ_j exp(cs_last − cs_j)·B_j x_jᵀ.
	last := graphs.SliceAxis(acs, 3, q-1, q) // [B, H, c, 1]
	decay := low(graphs.Unsqueeze(graphs.Exp(graphs.Sub(last, acs)), -1))
	states := graphs.MatMul(graphs.Transpose(graphs.Mul(bc, decay), 0, 1, 2, 4, 3), xc) // [B, H, c, N, P]
	// 3. Scan over chunks: state entering each chunk, and the final state.
	if init == nil {
		init = graphs.Full(x.Graph(), logA.DType, graphs.Shape{bd, hd, nd, pd}, 0, x, b)
	}
	all := graphs.Concat(2, graphs.Unsqueeze(low(init), 2), states) // [B, H, c+1, N, P]
	chunkA := graphs.Concat(2, graphs.Full(x.Graph(), logA.DType, graphs.Shape{bd, hd, graphs.D(1)}, 0, x), graphs.Squeeze(last, 3))
	decayChunk := lowDecays(chunkA) // [B, H, c+1, c+1]
	flat := graphs.Reshape(all, 0, 0, 0, -1)
	mixed := graphs.Reshape(graphs.MatMul(decayChunk, flat), 0, 0, 0, nd.Size(), pd.Size())
	entering := graphs.SliceAxis(mixed, 2, 0, -1)                                                  // [B, H, c, N, P]
	final = graphs.FromLowPrecision(graphs.Squeeze(graphs.SliceAxis(mixed, 2, -1, graphs.End), 2)) // [B, H, N, P]
	// 4. Contribution of the entering state: exp(cs_i)·(C_i · S).
	yOff := graphs.Mul(graphs.MatMul(cc, entering), low(graphs.Unsqueeze(graphs.Exp(acs), -1)))
	yc := graphs.Add(yDiag, yOff) // [B, H, c, Q, P]
	yt := graphs.Reshape(yc, 0, 0, -1, pd.Size())
	if !aligned {
		yt = graphs.SliceDynamic(yt, g.Int64s(0), t, []int64{2}, graphs.Shape{bd, hd, td, pd}) // crop the padding
	}
	return graphs.Transpose(yt, 0, 2, 1, 3), final
}

func seq(from, to int) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, int64(i))
	}
	return out
}

// Step is one recurrent update for a single token: x [B, 1, H, P], logA
// [B, 1, H], b, c [B, 1, H, N], state [B, H, N, P]:
// S ← a·S + B xᵀ, y = Sᵀ C. It returns y [B, 1, H, P] and the new state.
func Step(x, logA, b, c, state *graphs.Value) (y, next *graphs.Value) {
	xs, bs, cs := graphs.Squeeze(x, 1), graphs.Squeeze(b, 1), graphs.Squeeze(c, 1) // [B, H, P], [B, H, N]
	a := graphs.Exp(graphs.Reshape(graphs.Squeeze(logA, 1), 0, 0, 1, 1))           // [B, H, 1, 1]
	outer := graphs.Mul(graphs.Unsqueeze(bs, -1), graphs.Unsqueeze(xs, -2))        // [B, H, N, P]
	next = graphs.Add(graphs.Mul(a, state), outer)
	yv := graphs.MatMul(graphs.Unsqueeze(cs, -2), next) // [B, H, 1, P]
	return graphs.Transpose(yv, 0, 2, 1, 3), next
}

// ZeroState is an empty-context state for batch dim of like (dtype dt).
func ZeroState(c Config, like *graphs.Value, dt tensors.DType) State {
	b := like.Shape[0]
	g := like.Graph()
	return State{
		Conv: graphs.Full(g, dt, graphs.Shape{b, graphs.D(c.ConvChannels()), graphs.D(c.DConv - 1)}, 0, like),
		SSM:  graphs.Full(g, dt, graphs.Shape{b, graphs.D(c.VHeads), graphs.D(c.DState), graphs.D(c.HeadDim())}, 0, like),
	}
}

// MatrixParts returns layer i's mixing matrix M = L∘(C·Bᵀ) + diag(D)
// [B, H, T, T] in parts (layers.MatrixParts) for the normed input u.
// Stage 1's distance (losses.FrobeniusWithDiagonal) never needs M.
func MatrixParts(p layers.Params, c Config, i int, u *graphs.Value) layers.MatrixParts {
	in := project(p, c, i, u, nil).wide()
	return matrixParts(in.b, in.c, in.logA, p.Get(mixerName(i, "D"), graphs.S(c.VHeads)))
}

// MixerParams lists layer i's mixer parameter names; matrixOnly keeps those
// the mixing matrix depends on (in_proj, conv, D).
func (c Config) MixerParams(i int, matrixOnly bool) []string {
	names := []string{mixerName(i, "in_proj.weight"), mixerName(i, "conv1d.weight")}
	if c.ConvBias {
		names = append(names, mixerName(i, "conv1d.bias"))
	}
	names = append(names, mixerName(i, "D"))
	if !matrixOnly {
		names = append(names, mixerName(i, "z_bias"), mixerName(i, "out_proj.weight"))
	}
	return names
}
