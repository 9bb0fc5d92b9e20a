package pipeline

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"mohawk/graphs"
	"mohawk/graphs/models/family"
	"mohawk/stages"
	"mohawk/tensors"
)

// TrafficRow is one (op, shapes) group of a step graph's nodes.
type TrafficRow struct {
	Op     string `json:"op"`
	Shapes string `json:"shapes"` // inputs → outputs, dtype:[dims] each
	Calls  int    `json:"calls"`
	Bytes  int64  `json:"bytes"`
}

// TrafficResult is the memory traffic a stage's step graph models.
type TrafficResult struct {
	StageBenchOptions
	Nodes        int          `json:"nodes"`
	BytesPerStep int64        `json:"bytes_per_step"`
	Rows         []TrafficRow `json:"rows"` // largest first
}

// zeroWeights are a teacher's weights as zeros: only their shapes matter
// to StageTraffic.
func zeroWeights(c family.Teacher) stages.Weights {
	w := stages.Weights{}
	for name, s := range c.ParamShapes() {
		w[name] = tensors.Zeros(tensors.Float32, s.Sizes()...)
	}
	return w
}

// StageTraffic builds the step graph of o's stage (distill, orient or
// align; one step per run, the
// products in o.Precision as the CUDA provider runs them: bfloat16 for
// bf16, where the CPU would emulate) without a runtime, and sums what its
// nodes read and write (graphs.Node.Traffic) by op and shapes. On the GPU
// the step's elementwise and reduction kernels are bound by these bytes,
// so a graph change can be weighed here before it is timed there.
func StageTraffic(o StageBenchOptions) (*TrafficResult, error) {
	g, _, err := benchStepGraph(o, "--traffic", KindDistill, KindOrient, KindAlign)
	if err != nil {
		return nil, err
	}
	r := &TrafficResult{StageBenchOptions: o}
	byKey := map[string]*TrafficRow{}
	for _, n := range g.LiveNodes() {
		b := n.Traffic()
		r.Nodes++
		r.BytesPerStep += b
		key := n.Op + " " + nodeShapes(n)
		row := byKey[key]
		if row == nil {
			row = &TrafficRow{Op: n.Op, Shapes: nodeShapes(n)}
			byKey[key] = row
		}
		row.Calls++
		row.Bytes += b
	}
	for _, row := range byKey {
		r.Rows = append(r.Rows, *row)
	}
	sort.Slice(r.Rows, func(i, j int) bool {
		a, b := r.Rows[i], r.Rows[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Op+a.Shapes < b.Op+b.Shapes
	})
	return r, nil
}

// benchStepGraph builds o's step graph (one step per run, all layers at
// once, the products in o.Precision as the CUDA provider runs them) from
// zero weights, without a runtime, and returns the teacher's sizes with
// it. flag names the option asking, for the refusal of a stage other than
// those it models (kinds: distill, and orient and align where given).
func benchStepGraph(o StageBenchOptions, flag string, kinds ...string) (*graphs.Graph, family.TeacherSizes, error) {
	if !slices.Contains(kinds, o.Stage) {
		what := "the " + kinds[0] + " step"
		if n := len(kinds); n > 1 {
			what = "the " + strings.Join(kinds[:n-1], ", ") + " and " + kinds[n-1] + " steps"
		}
		return nil, family.TeacherSizes{}, fmt.Errorf("bench: %s models %s; got --stage %s", flag, what, o.Stage)
	}
	if err := o.checkPrecision(); err != nil {
		return nil, family.TeacherSizes{}, err
	}
	env, err := benchEnv(o.Teacher, zeroWeights)
	if err != nil {
		return nil, family.TeacherSizes{}, err
	}
	opt := stages.TrainOptions{Steps: 1, MicroBatches: max(1, o.MicroBatches), MicroBatch: o.MicroBatch, SeqLen: o.Seq,
		StepsPerRun: 1, Precision: o.Precision, Recompute: o.Recompute, LossChunk: o.LossChunk, MatrixKernels: o.MatrixKernels, BlockKernels: o.BlockKernels}
	p := stages.NativePrecision(o.Precision)
	var g *graphs.Graph
	if o.Stage == KindDistill {
		g, err = env.DistillStepGraph(opt, stages.DistillOptions{Temperature: 1}, p)
	} else {
		g, err = env.OrientStepGraph(o.Stage, opt, p)
	}
	return g, env.Teacher.Config.Sizes(), err
}

// benchEnv is a stages.Env, without a runtime, of the teacher model
// (benchTeacher, with weights) and the student derived from it.
func benchEnv(model string, weights func(family.Teacher) stages.Weights) (*stages.Env, error) {
	t, err := benchTeacher(model, weights)
	if err != nil {
		return nil, err
	}
	sc, err := StudentConfigFor(t.Config, StudentConfig{})
	if err != nil {
		return nil, err
	}
	student, err := NewStudent(t, sc, InitMohawk, 1)
	if err != nil {
		return nil, err
	}
	return &stages.Env{Teacher: t, Student: student}, nil
}

func nodeShapes(n *graphs.Node) string {
	list := func(vs []*graphs.Value) string {
		var s []string
		for _, v := range vs {
			if v != nil {
				s = append(s, fmt.Sprintf("%v:%v", v.DType, v.Shape))
			}
		}
		return strings.Join(s, " ")
	}
	return list(n.Inputs) + " → " + list(n.Outputs)
}
