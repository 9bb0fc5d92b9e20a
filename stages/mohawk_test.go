package stages

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/graphs/train"
	"mohawk/tensors"
)

// tinyWeights fills every tensor of shapes with small deterministic values.
func tinyWeights(shapes map[string][]int64) Weights {
	w := Weights{}
	for name, shape := range shapes {
		v := make([]float32, tensors.NumElements(shape))
		for i := range v {
			v[i] = float32(i%7-3) / 50
		}
		w[name] = tensors.FromFloat32(shape, v)
	}
	return w
}

// withTinyModels gives f's Env a two-layer teacher and student (real
// graphs are built for them; the fake runtime runs none).
func withTinyModels(f *fakeSetup) {
	tc := phi.Config{Vocab: 50, Hidden: 8, Layers: 2, Heads: 2, Intermediate: 16, RotaryDim: 4, RopeTheta: 1e4, Eps: 1e-5}
	sc := phimamba.Config{Vocab: 50, VocabRaw: 50, PadMult: 1, DModel: 8, Layers: 2, DState: 4, VHeads: 2, QKHeads: 2,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 4, Activation: "identity", Inner: 16, Eps: 1e-5}
	ts := map[string][]int64{}
	for n, s := range tc.ParamShapes() {
		ts[n] = s.Sizes()
	}
	f.env.Teacher = &Teacher{Config: phimamba.Teacher{Config: tc}, Weights: tinyWeights(ts)}
	f.env.Student = &Student{Config: sc, Weights: tinyWeights(sc.ParamShapes())}
}

// stageOptions are the fake stage's settings as a plan hands them over.
func stageOptions(f *fakeSetup) TrainOptions {
	s := f.spec
	return TrainOptions{Steps: s.Steps, MicroBatches: s.MicroBatches, MicroBatch: s.MicroBatch, SeqLen: s.SeqLen,
		LR: s.LR, Opt: s.Opt, Schedule: s.Schedule, EvalEvery: s.EvalEvery, EvalWindows: s.EvalWindows,
		CheckpointEvery: s.CheckpointEvery, StepsPerRun: s.StepsPerRun}
}

// changed lists the names whose tensors differ between two weight sets.
func changed(before, after Weights) []string {
	var out []string
	for n, t := range after {
		if b, ok := before[n]; !ok || !slices.Equal(b.Float32s(), t.Float32s()) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestOrientTrainsTheMixers runs Stage 1 and Stage 2, all layers at once
// and one layer per group: exactly the mixer parameters of the stage train
// (each group its own layer's, in its own checkpoint series), and the
// per-layer distances are reported before and after.
func TestOrientTrainsTheMixers(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"orient", "align"} {
		for _, group := range []int{0, 1} {
			f := newFake(t, 3, 1, 0, 0)
			withTinyModels(f)
			before := maps.Clone(f.env.Student.Weights)
			c := f.env.Student.Config.(phimamba.Config)
			o := stageOptions(f)
			o.LayerGroup = group
			res, err := f.env.Orient(kind, o)
			if err != nil {
				t.Fatalf("%s, groups of %d: %v", kind, group, err)
			}
			var want []string
			for i := range c.Layers {
				want = append(want, c.MixerParams(i, kind == "orient")...)
			}
			slices.Sort(want)
			if got := changed(before, f.env.Student.Weights); !slices.Equal(got, want) {
				t.Errorf("%s, groups of %d: changed %v, want the mixers' %v", kind, group, got, want)
			}
			if len(res.LayerBefore) != c.Layers || len(res.LayerAfter) != c.Layers || slices.Equal(res.LayerBefore, res.LayerAfter) {
				t.Errorf("%s, groups of %d: layer distances %v → %v", kind, group, res.LayerBefore, res.LayerAfter)
			}
			wantSubs := []string(nil)
			if group == 1 {
				wantSubs = []string{kind + "-layers-0-0", kind + "-layers-1-1"}
			}
			if got := slices.Sorted(maps.Keys(f.ckpt.subs)); !slices.Equal(got, wantSubs) {
				t.Errorf("%s, groups of %d: checkpoint series %v, want %v", kind, group, got, wantSubs)
			}
			if groups := max(1, len(wantSubs)); res.Train.Steps != groups*o.Steps || len(res.Train.Losses) != groups*o.Steps {
				t.Errorf("%s, groups of %d: %d steps and %d losses for %d groups of %d steps", kind, group, res.Train.Steps, len(res.Train.Losses), groups, o.Steps)
			}
		}
	}
}

// TestDistillAndPretrainTrainTheirModel checks which weights Stage 3 and
// pretraining train and replace.
func TestDistillAndPretrainTrainTheirModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		run     func(e *Env, o TrainOptions) error
		teacher bool                   // the teacher is trained, not the student
		want    func(name string) bool // trained student (or teacher) weights
	}{
		{"distill", func(e *Env, o TrainOptions) error {
			_, err := e.Distill(o, DistillOptions{Temperature: 2, HardLabelWeight: 0.5})
			return err
		}, false, func(string) bool { return true }},
		{"distill mixers only", func(e *Env, o TrainOptions) error {
			_, err := e.Distill(o, DistillOptions{MixersOnly: true})
			return err
		}, false, phimamba.IsMixer},
		{"pretrain student", func(e *Env, o TrainOptions) error {
			_, err := e.Pretrain(PretrainStudent, o)
			return err
		}, false, func(string) bool { return true }},
		{"pretrain teacher", func(e *Env, o TrainOptions) error {
			_, err := e.Pretrain(PretrainTeacher, o)
			return err
		}, true, func(string) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, 2, 1, 0, 0)
			withTinyModels(f)
			teacher, student := maps.Clone(f.env.Teacher.Weights), maps.Clone(f.env.Student.Weights)
			if err := tt.run(f.env, stageOptions(f)); err != nil {
				t.Fatal(err)
			}
			trainedBefore, trainedAfter, frozenBefore, frozenAfter := student, f.env.Student.Weights, teacher, f.env.Teacher.Weights
			if tt.teacher {
				trainedBefore, trainedAfter, frozenBefore, frozenAfter = teacher, f.env.Teacher.Weights, student, f.env.Student.Weights
			}
			var want []string
			for n := range trainedBefore {
				if tt.want(n) {
					want = append(want, n)
				}
			}
			slices.Sort(want)
			if got := changed(trainedBefore, trainedAfter); !slices.Equal(got, want) {
				t.Errorf("changed %d weights, want %d: %v", len(got), len(want), got)
			}
			if !slices.Equal(f.rt.trained, want) {
				t.Errorf("the step graph trains %v, want %v", f.rt.trained, want)
			}
			if got := changed(frozenBefore, frozenAfter); len(got) != 0 {
				t.Errorf("the frozen model changed: %v", got)
			}
		})
	}
	f := newFake(t, 2, 1, 0, 0)
	withTinyModels(f)
	if _, err := f.env.Pretrain(PretrainModel(7), stageOptions(f)); err == nil {
		t.Error("Pretrain of an unknown model succeeded")
	}
}

// TestDistillStepGraph builds Stage 3's step graph without a runtime, for
// StepsPerRun steps, with the stage's inputs.
func TestDistillStepGraph(t *testing.T) {
	t.Parallel()
	f := newFake(t, 2, 2, 0, 0)
	withTinyModels(f)
	g, err := f.env.DistillStepGraph(stageOptions(f), DistillOptions{}, graphs.MatMulBFloat16)
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "distill_step2" {
		t.Errorf("graph %s, want distill_step2", g.Name)
	}
	ins := map[string]bool{}
	for _, v := range g.Inputs() {
		ins[v.Name()] = true
	}
	for n := range f.env.Student.Weights {
		for _, in := range []string{n, train.ExpAvg(n), train.ExpAvgSq(n)} {
			if !ins[in] {
				t.Errorf("no input %s", in)
			}
		}
	}
}

// TestGroups checks how Stage 1/2 cut layers into groups.
func TestGroups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, size int
		want    string
	}{
		{6, 0, "[{0 6}]"}, {6, 6, "[{0 6}]"}, {6, 9, "[{0 6}]"},
		{6, 2, "[{0 2} {2 4} {4 6}]"}, {5, 2, "[{0 2} {2 4} {4 5}]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(groups(tt.n, tt.size)); got != tt.want {
			t.Errorf("groups(%d, %d) = %s, want %s", tt.n, tt.size, got, tt.want)
		}
	}
}
