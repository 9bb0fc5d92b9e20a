package train

import (
	"fmt"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// Fixed names of the step graph's non-parameter inputs and outputs.
const (
	BatchName     = "batch"
	LRName        = "lr"
	StepName      = "step"
	LossName      = "loss"
	GradNormName  = "grad_norm"
	FiniteName    = "finite"
	GradSumSqName = "grad_sumsq"
	// UpdatedName is the output of an in-place step graph (Spec.InPlace)
	// that keeps its updates in the graph: an empty tensor.
	UpdatedName = "updated"
)

// Moment names of a parameter.
func ExpAvg(name string) string   { return name + ".exp_avg" }
func ExpAvgSq(name string) string { return name + ".exp_avg_sq" }

// newSuffix marks the step graph's outputs that are updated state.
const newSuffix = ".new"

// New is the output name of an updated tensor.
func New(name string) string { return name + newSuffix }

// IsState reports whether an output of the step graph is updated state (a
// parameter or moment named by New), as opposed to losses and diagnostics.
func IsState(output string) bool { return strings.HasSuffix(output, newSuffix) }

// AdamW holds optimizer hyperparameters with PyTorch semantics: decoupled
// weight decay applied as p ← p·(1 − lr·wd) before the Adam step, bias
// correction, eps added after the square root.
type AdamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	// ClipNorm is the global gradient-norm limit (0 disables clipping).
	ClipNorm float64
}

// DefaultAdamW is the MOHAWK setting: β = (0.9, 0.95), weight decay 0.1,
// clipping at 1.0, eps 1e-8.
func DefaultAdamW() AdamW {
	return AdamW{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 1}
}

// Param is one trainable parameter.
type Param struct {
	Name  string
	Shape graphs.Shape
	Decay bool // weight decay applies (not for biases, norms, D)
}

// LossFunc builds a micro-batch's scalar loss from the parameters and the
// micro-batch value, in graph g (a loop body when K > 1).
type LossFunc func(g *graphs.Graph, p layers.Params, batch *graphs.Value) *graphs.Value

// Spec describes a step graph.
type Spec struct {
	Name   string
	Params []Param
	DType  tensors.DType // parameter dtype (float32 or float64)
	// StepsPerRun is S: optimizer steps performed by one run of the graph.
	StepsPerRun int
	// MicroBatches is K: the gradient of the mean loss over K micro-batches
	// is accumulated before one update.
	MicroBatches int
	// Batch is the dtype and shape of one micro-batch.
	BatchDType tensors.DType
	BatchShape graphs.Shape
	Loss       LossFunc
	Opt        AdamW
	// Precision is how the graph's float32 MatMul and Gemm nodes compute
	// (bfloat16 mixed precision keeps parameters and state float32).
	Precision graphs.MatMulPrecision
	// AllReduce, when set, averages each step's accumulated gradients and
	// its loss sum over the ranks of a data-parallel group before the
	// update, so that every rank applies the same update.
	AllReduce *AllReduce
	// Recompute turns on the recomputation of the segments the loss marks
	// (graphs.Graph.Recomputed: a model's layers) in the backward pass.
	Recompute bool
	// MatrixKernels lets the loss use Stage 1's fused [T, T] kernels
	// (graphs.Graph.UseMatrixKernels).
	MatrixKernels bool
	// BlockKernels are the blocks' fused plumbing kernels the graph may
	// use (graphs.Graph.UseBlockKernels).
	BlockKernels graphs.BlockKernel
	// CPU builds the graph for ONNX Runtime's CPU provider
	// (graphs.Graph.TargetCPU).
	CPU bool
	// InPlace updates the parameters and moments in the buffers they are
	// fed in (graphs.AdamWInPlace) instead of returning new ones: the step
	// graph has no New outputs and the caller keeps its inputs, which it
	// must bind in the memory of the provider that runs the graph (resident
	// values; on the CPU provider host tensors are used where they are).
	// Without it, the parameters and moments exist twice during the
	// update, three times inside a Loop of several steps.
	InPlace bool
}

// AllReduce is how a data-parallel step graph averages its gradients with
// graphs.AllReduce nodes, placed between the accumulated gradients and the
// clipping and AdamW update. A group of one rank leaves the step bit for
// bit as it is without them.
type AllReduce struct {
	// DType is the dtype gradients travel in: Invalid (the zero value) for
	// the parameters' dtype, or BFloat16 to halve the bytes (gradients
	// rounded to bfloat16, averaged, and cast back).
	DType tensors.DType
	// BucketBytes is the least size of a bucket: consecutive gradients
	// are flattened and concatenated into buckets of at least this many
	// bytes (in DType), one AllReduce each, the last one holding the
	// rest; 0 reduces each gradient on its own.
	BucketBytes int64
}

// Build returns the step graph. It panics with *graphs.Error on a
// malformed spec (graphs.Try converts).
func Build(s Spec) *graphs.Graph {
	if s.MicroBatches < 1 || s.StepsPerRun < 1 {
		panic(&graphs.Error{Op: "train.Build", Msg: fmt.Sprintf("micro-batches %d and steps per run %d must be ≥ 1", s.MicroBatches, s.StepsPerRun)})
	}
	g := graphs.New(s.Name)
	g.SetMatMulPrecision(s.Precision)
	g.UseFusedKernels() // a step graph runs only on mohawk's runtime
	if s.MatrixKernels {
		g.UseMatrixKernels()
	}
	g.UseBlockKernels(s.BlockKernels)
	if s.CPU {
		g.TargetCPU()
	}
	g.SetRecompute(s.Recompute)
	n := len(s.Params)
	params := make([]*graphs.Value, n)
	m := make([]*graphs.Value, n)
	v := make([]*graphs.Value, n)
	for i, p := range s.Params {
		params[i] = g.Input(p.Name, s.DType, p.Shape)
	}
	for i, p := range s.Params {
		m[i] = g.Input(ExpAvg(p.Name), s.DType, p.Shape)
		v[i] = g.Input(ExpAvgSq(p.Name), s.DType, p.Shape)
	}
	steps, k := int64(s.StepsPerRun), int64(s.MicroBatches)
	batch := g.Input(BatchName, s.BatchDType, append(graphs.Shape{graphs.D(steps), graphs.D(k)}, s.BatchShape...))
	lr := g.Input(LRName, s.DType, graphs.S(steps))
	step := g.Input(StepName, s.DType, graphs.S(1))

	var st stepOut
	if steps == 1 {
		st = oneStep(s, params, m, v, graphs.Squeeze(batch, 0), lr, step, nil)
		st.losses = graphs.Unsqueeze(st.losses, 0)
		st.sumsq = graphs.Unsqueeze(st.sumsq, 0)
	} else {
		st = manySteps(g, s, params, m, v, batch, lr, step)
	}
	if s.InPlace {
		g.Output(UpdatedName, st.done)
	}
	for i, p := range st.params {
		g.Output(New(s.Params[i].Name), p)
		g.Output(New(ExpAvg(s.Params[i].Name)), st.m[i])
		g.Output(New(ExpAvgSq(s.Params[i].Name)), st.v[i])
	}
	g.Output(LossName, st.losses)
	g.Output(GradNormName, st.norm)
	g.Output(FiniteName, st.finite)
	g.Output(GradSumSqName, st.sumsq)
	return g
}

// stepOut is the result of one or more optimizer steps.
type stepOut struct {
	params, m, v []*graphs.Value // nil in place
	done         *graphs.Value   // in place: the updates' empty outputs
	losses       *graphs.Value   // [K] for one step, [S, K] for many
	norm         *graphs.Value   // [1] / [S]
	finite       *graphs.Value   // [1] / [S] bool
	sumsq        *graphs.Value   // [P] / [S, P]
}

// manySteps runs S optimizer steps in an ONNX Loop whose carried state is
// the parameters, the moments and whether every step so far was finite;
// in place, only the latter (the body updates the outer graph's inputs).
func manySteps(g *graphs.Graph, s Spec, params, m, v []*graphs.Value, batch, lr, step *graphs.Value) stepOut {
	n := len(params)
	ok0 := g.Const(tensors.FromBool([]int64{1}, []bool{true}))
	init := []*graphs.Value{ok0}
	if !s.InPlace {
		init = append(append(append(append([]*graphs.Value{}, params...), m...), v...), ok0)
	}
	body := graphs.NewLoopBody(g, "optstep", init)
	ok := body.Carried[len(init)-1]
	cp, cm, cv := params, m, v
	if !s.InPlace {
		cp, cm, cv = body.Carried[:n], body.Carried[n:2*n], body.Carried[2*n:3*n]
	}
	it := body.Iter
	mb := graphs.Gather(batch, it, 0) // [K, ...]
	lri := graphs.Reshape(graphs.Gather(lr, it, 0), 1)
	t := graphs.Add(step, graphs.Reshape(graphs.Cast(it, s.DType), 1))
	st := oneStep(s, cp, cm, cv, mb, lri, t, ok)
	next := append(append(append(append([]*graphs.Value{}, st.params...), st.m...), st.v...), st.finite)
	scans := []*graphs.Value{st.losses, graphs.Reshape(st.norm, -1), graphs.Reshape(st.finite, -1), st.sumsq}
	if s.InPlace {
		scans = append(scans, st.done)
	}
	body.Finish(nil, next, scans)
	outs := graphs.Loop(g.Int64(int64(s.StepsPerRun)), init, body, graphs.D(int64(s.StepsPerRun)))
	sc := outs[len(init):]
	out := stepOut{losses: sc[0], norm: graphs.Reshape(sc[1], -1), finite: graphs.Reshape(sc[2], -1), sumsq: sc[3]}
	if s.InPlace {
		out.done = graphs.Reshape(sc[4], -1)
	} else {
		out.params, out.m, out.v = outs[:n], outs[n:2*n], outs[2*n:3*n]
	}
	return out
}

// oneStep is one optimizer step on K micro-batches [K, ...]; ok (bool [1],
// may be nil) gates the update as well as the step's own finiteness.
func oneStep(s Spec, params, m, v []*graphs.Value, batch, lr, step, ok *graphs.Value) stepOut {
	byName := map[string]*graphs.Value{}
	for i, p := range s.Params {
		byName[p.Name] = params[i]
	}
	src := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
		v, found := byName[name]
		if !found {
			panic(&graphs.Error{Op: "train.Build", Msg: "loss asked for parameter " + name + ", which is not trainable in this step"})
		}
		if !v.Shape.Equal(shape) {
			panic(&graphs.Error{Op: "train.Build", Msg: fmt.Sprintf("parameter %s has shape %v, loss wants %v", name, v.Shape, shape)})
		}
		return v
	})
	grads, losses := accumulate(batch.Graph(), s, params, src, batch)
	lossSum := graphs.Reshape(graphs.ReduceSumAll(losses), 1)
	if s.AllReduce != nil {
		grads = allReduce(*s.AllReduce, grads)
		// The loss joins the finiteness check: every rank must decide alike.
		lossSum = graphs.AllReduce(lossSum)
	}
	return update(s, params, grads, m, v, losses, lossSum, lr, step, ok)
}

// allReduce averages grads over the data-parallel group in buckets of at
// least a.BucketBytes bytes, in a.DType.
func allReduce(a AllReduce, grads []*graphs.Value) []*graphs.Value {
	dt := a.DType
	if dt == tensors.Invalid {
		dt = grads[0].DType
	}
	if dt != grads[0].DType && dt != tensors.BFloat16 {
		panic(&graphs.Error{Op: "train.Build", Msg: fmt.Sprintf("all-reduce dtype %v: want the parameters' %v or bfloat16", dt, grads[0].DType)})
	}
	// Each AllReduce input is a Reshape to static sizes: ONNX shape
	// inference loses the shapes of a Loop's outputs (the accumulated
	// gradients when K > 1), and a custom op's shape function cannot tell
	// an unknown shape from a scalar's, so its output would be a scalar
	// to the ops after it.
	size := func(g *graphs.Value) int64 { return g.Shape.NumElements().Size() }
	out := make([]*graphs.Value, len(grads))
	var bucket []int
	var bytes int64
	flush := func() {
		if len(bucket) == 1 {
			i := bucket[0]
			x := graphs.Reshape(graphs.Cast(grads[i], dt), grads[i].Shape.Sizes()...)
			out[i] = graphs.Cast(graphs.AllReduce(x), grads[i].DType)
		} else if len(bucket) > 1 {
			flat := make([]*graphs.Value, len(bucket))
			for j, i := range bucket {
				flat[j] = graphs.Reshape(graphs.Cast(grads[i], dt), size(grads[i]))
			}
			sum := graphs.AllReduce(graphs.Concat(0, flat...))
			at := int64(0)
			for _, i := range bucket {
				n := size(grads[i])
				part := graphs.SliceAxis(sum, 0, at, at+n)
				out[i] = graphs.Cast(graphs.Reshape(part, grads[i].Shape.Sizes()...), grads[i].DType)
				at += n
			}
		}
		bucket, bytes = bucket[:0], 0
	}
	for i, g := range grads {
		bucket = append(bucket, i)
		bytes += size(g) * int64(dt.Size())
		if bytes >= a.BucketBytes {
			flush()
		}
	}
	flush()
	return out
}

// accumulate returns the mean gradient over the K micro-batches of batch
// [K, ...] and the per-micro-batch losses [K].
func accumulate(g *graphs.Graph, s Spec, params []*graphs.Value, src layers.Params, batch *graphs.Value) ([]*graphs.Value, *graphs.Value) {
	k := s.MicroBatches
	if k == 1 {
		mb := graphs.Squeeze(batch, 0)
		loss := s.Loss(mb.Graph(), src, mb)
		return graphs.Gradients(loss, params...), graphs.Reshape(loss, 1)
	}
	init := make([]*graphs.Value, len(params))
	for i, p := range params {
		init[i] = graphs.ZerosLike(p)
	}
	body := graphs.NewLoopBody(g, "microbatch", init)
	mb := graphs.Gather(batch, body.Iter, 0)
	loss := s.Loss(body.G, src, mb)
	gs := graphs.Gradients(loss, params...)
	acc := make([]*graphs.Value, len(params))
	for i := range params {
		acc[i] = graphs.Add(body.Carried[i], gs[i])
	}
	body.Finish(nil, acc, []*graphs.Value{loss})
	outs := graphs.Loop(g.Int64(int64(k)), init, body, graphs.D(int64(k)))
	inv := graphs.ScalarLike(params[0], 1/float64(k))
	grads := make([]*graphs.Value, len(params))
	for i := range params {
		grads[i] = graphs.Mul(outs[i], inv)
	}
	return grads, outs[len(params)]
}

// update clips the gradients to the global norm and applies AdamW. The
// clipping factor is folded into the moment coefficients and the bias
// corrections into two scalars:
//
//	m ← β1·m + (1−β1)·c·g,  v ← β2·v + (1−β2)·c²·g²
//	p ← p·(1 − lr·wd) − (lr·√bc2/bc1)·m / (√v + eps·√bc2)
//
// which equals PyTorch's p − (lr/bc1)·m / (√v/√bc2 + eps) up to rounding.
// Each parameter's update is one fused node (graphs.AdamW: it reads p, g,
// m, v once and writes p, m, v once, where stock ops took about fifteen
// passes) fed these scalars and the step's finiteness: a step whose loss or
// gradient norm is not finite leaves p, m and v bit for bit as they were.
// The squared norm is one ReduceSumSquare per parameter.
func update(s Spec, params, grads, m, v []*graphs.Value, losses, lossSum, lr, step, ok *graphs.Value) stepOut {
	o := s.Opt
	g := params[0].Graph()
	c := func(x float64) *graphs.Value { return g.Scalar(s.DType, x) }
	sq := make([]*graphs.Value, len(grads))
	for i, gr := range grads {
		sq[i] = graphs.Reshape(graphs.ReduceSumSquareAll(gr), 1)
	}
	sumsq := graphs.Concat(0, sq...)
	norm := graphs.Reshape(graphs.Sqrt(graphs.ReduceSumAll(sumsq)), 1)
	check := graphs.Add(norm, lossSum)
	finite := graphs.Not(graphs.Or(graphs.IsNaN(check), graphs.IsInf(check)))
	if ok != nil {
		finite = graphs.And(finite, ok)
	}
	a1, a2 := c(1-o.Beta1), c(1-o.Beta2)
	if o.ClipNorm > 0 {
		// PyTorch clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6)).
		// A non-finite norm makes coef NaN, which the unapplied step ignores.
		coef := graphs.Min(c(1), graphs.Div(c(o.ClipNorm), graphs.Add(norm, c(1e-6))))
		a1, a2 = graphs.Mul(a1, coef), graphs.Mul(a2, graphs.Mul(coef, coef))
	}
	bc1 := graphs.Sub(c(1), graphs.Pow(c(o.Beta1), step))
	sqrtBC2 := graphs.Sqrt(graphs.Sub(c(1), graphs.Pow(c(o.Beta2), step)))
	stepSize := graphs.Div(graphs.Mul(lr, sqrtBC2), bc1)
	eps := graphs.Mul(c(o.Eps), sqrtBC2)
	// The fused update's coefficients: b1, a1, b2, a2, decay, step, eps,
	// finite; one vector for the decayed parameters and one for the rest.
	coefs := func(decay *graphs.Value) *graphs.Value {
		xs := []*graphs.Value{c(o.Beta1), a1, c(o.Beta2), a2, decay, stepSize, eps, graphs.Cast(finite, s.DType)}
		for i, x := range xs {
			xs[i] = graphs.Reshape(x, 1)
		}
		return graphs.Concat(0, xs...)
	}
	var decayed, plain *graphs.Value
	u := stepOut{norm: norm, finite: finite, sumsq: sumsq, losses: losses}
	var done []*graphs.Value
	for i, p := range params {
		var k *graphs.Value
		if s.Params[i].Decay && o.WeightDecay > 0 {
			if decayed == nil {
				decayed = coefs(graphs.Sub(c(1), graphs.Mul(lr, c(o.WeightDecay))))
			}
			k = decayed
		} else {
			if plain == nil {
				plain = coefs(c(1))
			}
			k = plain
		}
		if s.InPlace {
			done = append(done, graphs.AdamWInPlace(p, grads[i], m[i], v[i], k))
			continue
		}
		pi, mi, vi := graphs.AdamW(p, grads[i], m[i], v[i], k)
		u.params, u.m, u.v = append(u.params, pi), append(u.m, mi), append(u.v, vi)
	}
	if s.InPlace {
		u.done = graphs.Concat(0, done...)
	}
	return u
}
