package deploy

import (
	"fmt"
	"slices"

	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// decodeForm is how a student graph computes its calls. Only decodeIf is
// exported; the other two exist to measure that choice (BenchmarkDecodeForms).
type decodeForm int

const (
	// decodeIf: one graph for every T; an If on T == 1 runs the recurrent
	// step form, otherwise the chunked SSD form.
	decodeIf decodeForm = iota
	// decodeSSD: the chunked SSD form for every T (T = 1 is padded to a
	// whole chunk).
	decodeSSD
	// decodeStep: a T = 1-only graph of the step form (the lower bound a
	// separate decode graph would reach).
	decodeStep
)

// weights serves w as float32 parameters of g: float32 initializers, or
// float16 initializers cast to float32 once each when fp16 is set.
func weights(g *graphs.Graph, w map[string]*tensors.Tensor, fp16 bool) layers.Params {
	if !fp16 {
		return &layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}
	}
	stored := &layers.Frozen{G: g, Tensors: w, DType: tensors.Float16}
	cast := map[string]*graphs.Value{}
	return layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
		if v, ok := cast[name]; ok {
			return v
		}
		v := graphs.Cast(stored.Get(name, shape), tensors.Float32)
		cast[name] = v
		return v
	})
}

// studentGraph builds the student's deployment graph in the given form.
func studentGraph(c family.Student, w map[string]*tensors.Tensor, fp16 bool, form decodeForm) (*graphs.Graph, error) {
	g := graphs.New(c.Family() + "_student_decoder")
	sz := c.Sizes()
	err := graphs.Try(func() {
		seq := graphs.Sym(seqDim)
		if form == decodeStep {
			seq = graphs.D(1)
		}
		ids := g.Input(InputIDs, tensors.Int64, graphs.S(batchDim, seq))
		states := make([]family.State, sz.Layers)
		for i := range states {
			states[i] = studentStateInputs(g, c, i)
		}
		p := weights(g, w, fp16)
		// forward returns logits and the per-layer states, in output order.
		forward := func(ids *graphs.Value, st []family.State, f family.Form) []*graphs.Value {
			out := c.Forward(p, ids, family.StudentOptions{Form: f, States: st})
			vals := []*graphs.Value{out.Logits}
			for _, s := range out.States {
				vals = append(vals, stateValues(s)...)
			}
			return vals
		}
		var outs []*graphs.Value
		switch form {
		case decodeSSD:
			outs = forward(ids, states, family.FormSSD)
		case decodeStep:
			outs = forward(ids, states, family.FormStep)
		case decodeIf:
			capture := func(b *graphs.IfBranch) (*graphs.Value, []family.State) {
				st := make([]family.State, len(states))
				capture := func(v *graphs.Value) *graphs.Value {
					if v == nil {
						return nil
					}
					return b.Capture(v)
				}
				for i, s := range states {
					st[i] = family.State{Conv: capture(s.Conv), SSM: capture(s.SSM), Key: capture(s.Key), Value: capture(s.Value)}
				}
				return b.Capture(ids), st
			}
			step := graphs.NewIfBranch(g, "decode_step")
			sIDs, sSt := capture(step)
			if len(sz.AttnLayers) > 0 {
				// A KV cache leaves with past+T positions from the other
				// branch, past+1 from this one. Declaring the incoming cache
				// here as past+T−1 long (a Reshape that changes nothing at run
				// time, T being 1) makes the Concat that appends the new
				// position the branch's output itself, written straight into
				// the If's output. (Reshaping the outgoing cache instead
				// copied all of it once more per step.) A [1, 1, past+T, 1]
				// tensor lends the length.
				along := func(d graphs.Dim, like *graphs.Value) *graphs.Value {
					return graphs.Full(g, tensors.Float32, graphs.Shape{graphs.D(1), graphs.D(1), d, graphs.D(1)}, 0, like)
				}
				k := states[sz.AttnLayers[0]].Key
				lengths := graphs.Concat(2, along(k.Shape[2], k), along(ids.Shape[1], ids))
				past := graphs.SliceAxis(step.Capture(lengths), 2, 1, graphs.End) // past+T−1
				for _, i := range sz.AttnLayers {
					for _, v := range []**graphs.Value{&sSt[i].Key, &sSt[i].Value} {
						*v = graphs.ReshapeTo(*v, graphs.Shape{(*v).Shape[0], (*v).Shape[1], past.Shape[2], (*v).Shape[3]}, past)
					}
				}
			}
			vals := forward(graphs.Reshape(sIDs, 0, 1), sSt, family.FormStep)
			vals[0] = graphs.ReshapeTo(vals[0], graphs.S(batchDim, seqDim, sz.Vocab), sIDs) // [B, 1, V] is [B, T, V] here
			step.Finish(vals...)
			chunked := graphs.NewIfBranch(g, "prefill_ssd")
			cIDs, cSt := capture(chunked)
			chunked.Finish(forward(cIDs, cSt, family.FormSSD)...)
			single := graphs.Equal(graphs.ShapeOf(ids, 1, 2), g.Int64s(1))
			outs = graphs.If(single, step, chunked)
		}
		g.Output(Logits, outs[0])
		for i, s := range studentStates(c) {
			g.Output(s.Output, outs[1+i])
		}
	})
	if err != nil {
		return nil, fmt.Errorf("build the student graph: %w", err)
	}
	return g, nil
}

// studentStateInputs are layer i's state inputs, named as studentStates
// lists them: conv and recurrent state for a mixer layer, the KV cache for
// a hybrid's attention layer.
func studentStateInputs(g *graphs.Graph, c family.Student, i int) family.State {
	sz := c.Sizes()
	if c.IsAttention(i) {
		past := graphs.S(batchDim, sz.AttnHeads, pastSeqDim, sz.AttnHeadDim)
		return family.State{Key: g.Input(fmt.Sprintf(PastKey, i), tensors.Float32, past), Value: g.Input(fmt.Sprintf(PastValue, i), tensors.Float32, past)}
	}
	return family.State{
		Conv: g.Input(fmt.Sprintf(PastConv, i), tensors.Float32, graphs.S(batchDim, sz.ConvChannels, sz.DConv-1)),
		SSM:  g.Input(fmt.Sprintf(PastRecurrent, i), tensors.Float32, graphs.S(batchDim, sz.VHeads, sz.DState, sz.HeadDim)),
	}
}

// stateValues are a layer's outgoing states in studentStates order.
func stateValues(s family.State) []*graphs.Value {
	if s.Key != nil {
		return []*graphs.Value{s.Key, s.Value}
	}
	return []*graphs.Value{s.Conv, s.SSM}
}

// teacherGraph builds the teacher's deployment graph with a KV cache of
// the teacher's key/value heads.
func teacherGraph(c family.Teacher, w map[string]*tensors.Tensor, fp16 bool) (*graphs.Graph, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sz := c.Sizes()
	g := graphs.New(c.Family() + "_decoder")
	err := graphs.Try(func() {
		ids := g.Input(InputIDs, tensors.Int64, graphs.S(batchDim, seqDim))
		cache := &family.Cache{}
		past := graphs.S(batchDim, sz.KVHeads, pastSeqDim, sz.HeadDim)
		for i := 0; i < sz.Layers; i++ {
			cache.PastKey = append(cache.PastKey, g.Input(fmt.Sprintf(PastKey, i), tensors.Float32, past))
			cache.PastValue = append(cache.PastValue, g.Input(fmt.Sprintf(PastValue, i), tensors.Float32, past))
		}
		out := c.Forward(weights(g, w, fp16), ids, family.TeacherOptions{Cache: cache})
		g.Output(Logits, out.Logits)
		for i := 0; i < sz.Layers; i++ {
			g.Output(fmt.Sprintf(PresentKey, i), cache.PresentKey[i])
			g.Output(fmt.Sprintf(PresentValue, i), cache.PresentValue[i])
		}
	})
	if err != nil {
		return nil, fmt.Errorf("build the teacher graph: %w", err)
	}
	return g, nil
}

// addNextToken appends the NextToken output to g: the greedy choice after
// each sequence's last position, the index of the largest of
// logits[:, -1, :width] as [batch_size, 1] int64 (the first on ties, as
// the greedy Sampler picks). A Generator that decodes greedily fetches it
// instead of the logits, so only token ids cross between host and device.
func addNextToken(g *graphs.Graph, width int64) error {
	return graphs.Try(func() {
		outs, names := g.Outputs()
		logits := outs[slices.Index(names, Logits)]
		last := graphs.Slice(logits, []int64{-1, 0}, []int64{graphs.End, width}, []int64{1, 2}, nil)
		g.Output(NextToken, graphs.ArgMax(last, 2, false))
	})
}
