package stages

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"mohawk/data"
	"mohawk/graphs/train"
)

// TestTrainRunsEveryStepOnItsBatches checks the loop's bookkeeping on a
// whole stage: every step runs once, in order, on the sampler's batches for
// its data index, and the result reports each step's loss.
func TestTrainRunsEveryStepOnItsBatches(t *testing.T) {
	t.Parallel()
	for _, perRun := range []int{1, 3} {
		f := newFake(t, 7, perRun, 0, 0)
		res, err := f.train(t)
		if err != nil {
			t.Fatal(err)
		}
		s := f.spec
		sm, err := data.NewSampler(f.env.TrainData, s.SeqLen, s.MicroBatch, f.env.Seed)
		if err != nil {
			t.Fatal(err)
		}
		var steps []int
		for i, seen := range f.rt.seen {
			steps = append(steps, seen.step)
			var want []int64
			for j := range s.MicroBatches {
				want = append(want, sm.Batch(int64(i*s.MicroBatches+j)).Int64s()...)
			}
			if !slices.Equal(seen.batch, want) {
				t.Errorf("%d per run: step %d ran on other batches than data indices %d..%d", perRun, seen.step, i*s.MicroBatches, (i+1)*s.MicroBatches-1)
			}
		}
		if want := []int{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(steps, want) {
			t.Errorf("%d per run: steps %v ran, want %v", perRun, steps, want)
		}
		if len(res.Losses) != 7 || res.Steps != 7 || res.Tokens != int64(7*s.MicroBatches*s.MicroBatch*s.SeqLen) {
			t.Errorf("%d per run: result has %d losses, %d steps, %d tokens", perRun, len(res.Losses), res.Steps, res.Tokens)
		}
		if res.FirstLoss != res.Losses[0] || res.LastLoss != res.Losses[6] || f.log.done != 1 {
			t.Errorf("%d per run: first/last loss %g/%g of %v; %d progress bars done", perRun, res.FirstLoss, res.LastLoss, res.Losses, f.log.done)
		}
	}
}

// TestTrainResumesWhereItWasInterrupted cancels a stage during a run: it
// must stop after that run with ErrInterrupted and a checkpoint of the step
// it reached, and a second Train must continue at the next step, see the
// same batches and end with the same state as a run never interrupted.
func TestTrainResumesWhereItWasInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		perRun       int
		stateOnHost  bool
		ckptEvery    int
		cancelAt     int // cancel during the run that starts at this step (1-based)
		interruptAt  int // the step the checkpoint is of
		keepLast     int
		wantFirstRun []int // the steps the first Train runs
	}{
		{"one step per run", 1, false, 2, 4, 4, 0, []int{1, 2, 3, 4}},
		{"resident state", 3, false, 0, 4, 6, 0, []int{1, 2, 3, 4, 5, 6}},
		{"state on host", 3, true, 0, 4, 6, 0, []int{1, 2, 3, 4, 5, 6}},
		{"at a checkpoint", 1, false, 3, 3, 3, 1, []int{1, 2, 3}},
		{"before any step", 1, false, 0, 0, 0, 0, nil},
	}
	const steps = 8
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref := newFake(t, steps, tt.perRun, tt.ckptEvery, 0)
			ref.env.StateOnHost = tt.stateOnHost
			want, err := ref.train(t)
			if err != nil {
				t.Fatal(err)
			}

			f := newFake(t, steps, tt.perRun, tt.ckptEvery, 0)
			f.env.StateOnHost, f.ckpt.keepLast = tt.stateOnHost, tt.keepLast
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.env.Ctx = ctx
			if tt.cancelAt == 0 {
				cancel()
			}
			f.rt.beforeRun = func(step int) {
				if step == tt.cancelAt {
					cancel()
				}
			}
			if _, err := f.train(t); !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "stage fake") {
				t.Fatalf("interrupted Train returned %v, want ErrInterrupted naming the stage", err)
			}
			first := stepsOf(f.rt.seen)
			if !slices.Equal(first, tt.wantFirstRun) {
				t.Errorf("the interrupted Train ran steps %v, want %v", first, tt.wantFirstRun)
			}
			last, _, _, ok, _ := f.ckpt.Latest()
			if tt.interruptAt > 0 && (!ok || last != tt.interruptAt) {
				t.Fatalf("newest checkpoint after the interruption is of step %d (exists: %v), want %d", last, ok, tt.interruptAt)
			}
			if tt.interruptAt == 0 && ok {
				t.Fatalf("an interruption before the first step saved a checkpoint of step %d", last)
			}

			f.env.Ctx, f.rt.beforeRun = context.Background(), nil
			got, err := f.train(t)
			if err != nil {
				t.Fatal(err)
			}
			second := stepsOf(f.rt.seen)[len(first):]
			if len(second) == 0 || second[0] != tt.interruptAt+1 {
				t.Errorf("the resumed Train ran steps %v, want it to start at %d", second, tt.interruptAt+1)
			}
			if tt.interruptAt > 0 && !hasLine(f.log.lines, "resuming at step") {
				t.Errorf("no resume line in %q", f.log.lines)
			}
			wantBatches, gotBatches := batchesByStep(ref.rt.seen), batchesByStep(f.rt.seen)
			for s := 1; s <= steps; s++ {
				if !slices.Equal(gotBatches[s], wantBatches[s]) {
					t.Errorf("step %d ran on other batches after the interruption", s)
				}
			}
			sameState(t, f.ckpt, ref.ckpt)
			if !slices.Equal(got.Weights["w"].Float32s(), want.Weights["w"].Float32s()) {
				t.Errorf("resumed weights %v, uninterrupted %v", got.Weights["w"].Float32s(), want.Weights["w"].Float32s())
			}
		})
	}
}

// TestTrainFinishedStageRunsNothing re-runs a completed stage: it must take
// the result from the final checkpoint without running a step.
func TestTrainFinishedStageRunsNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t, 4, 1, 0, 2)
	want, err := f.train(t)
	if err != nil {
		t.Fatal(err)
	}
	ran := len(f.rt.seen)
	got, err := f.train(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.rt.seen) != ran {
		t.Errorf("the second Train of a finished stage ran %d more steps", len(f.rt.seen)-ran)
	}
	if !slices.Equal(got.Weights["w"].Float32s(), want.Weights["w"].Float32s()) || got.ValLoss != want.ValLoss || got.Steps != 4 {
		t.Errorf("finished stage's result %+v, want %+v", got, want)
	}
}

// TestTrainNonFinite checks checkpoints.on_nonfinite: stop fails naming
// the stage, step and tensor and saves nothing past the last good step;
// rollback restores the newest checkpoint with a lowered learning rate and
// gives up after max_rollbacks.
func TestTrainNonFinite(t *testing.T) {
	t.Parallel()
	always := func(step int, _ float32) bool { return step == 4 }
	highLR := func(step int, lr float32) bool { return step == 4 && lr > 0.06 }
	tests := []struct {
		name      string
		policy    string
		perRun    int
		ckptEvery int
		poison    func(step int, lr float32) bool
		wantErr   string // "" for success
		wantRuns  []int  // steps run, in order
		wantSaved []int
		wantRB    int // rollbacks in the error or the final checkpoint
	}{
		{"stop", "stop", 1, 2, always, "step 4: non-finite value in loss; lower the learning rate, or set checkpoints.on_nonfinite: rollback",
			[]int{1, 2, 3, 4}, []int{2}, 0},
		{"stop inside a run", "stop", 3, 2, always, "step 4: non-finite value in loss",
			[]int{1, 2, 3, 4, 5, 6}, []int{3}, 0},
		{"rollback recovers", "rollback", 1, 2, highLR, "",
			[]int{1, 2, 3, 4, 3, 4, 5, 6}, []int{2, 4, 6}, 1},
		{"rollback gives up", "rollback", 1, 2, always, "non-finite value in loss again after 3 rollbacks",
			[]int{1, 2, 3, 4, 3, 4, 3, 4, 3, 4}, []int{2}, 3},
		{"rollback without a checkpoint", "rollback", 1, 0, always, "no checkpoint to roll back to",
			[]int{1, 2, 3, 4}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, 6, tt.perRun, tt.ckptEvery, 0)
			f.env.NonFinite, f.rt.poison, f.ckpt.keepLast = tt.policy, tt.poison, 1
			_, err := f.train(t)
			if got := stepsOf(f.rt.seen); !slices.Equal(got, tt.wantRuns) {
				t.Errorf("steps run %v, want %v", got, tt.wantRuns)
			}
			if !slices.Equal(f.ckpt.saved, tt.wantSaved) {
				t.Errorf("checkpoints saved at %v, want %v", f.ckpt.saved, tt.wantSaved)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkRollback(t, f, tt.wantRB)
				return
			}
			var nf *NonFiniteError
			if !errors.As(err, &nf) || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "stage fake: step 4:") {
				t.Fatalf("error %v, want a *NonFiniteError of stage fake at step 4 saying %q", err, tt.wantErr)
			}
			if nf.Rollbacks != tt.wantRB || nf.Tensor != "loss" {
				t.Errorf("error reports %d rollbacks in %q, want %d in loss", nf.Rollbacks, nf.Tensor, tt.wantRB)
			}
		})
	}
}

// checkRollback checks a stage that rolled back once from step 4 to the
// checkpoint of step 2: the retried step 3 starts from that checkpoint at
// half the learning rate, and the final checkpoint records the rollback.
func checkRollback(t *testing.T, f *fakeSetup, rollbacks int) {
	t.Helper()
	var tries []seenStep
	for _, s := range f.rt.seen {
		if s.step == 3 {
			tries = append(tries, s)
		}
	}
	if len(tries) != 2 || !slices.Equal(tries[0].w, tries[1].w) {
		t.Fatalf("step 3 ran %d times; the retry must start from the checkpoint of step 2: %+v", len(tries), tries)
	}
	if want := float32(f.spec.LR * f.env.RollbackLRFactor); tries[1].lr != want || tries[0].lr != float32(f.spec.LR) {
		t.Errorf("learning rates of step 3: %g then %g, want %g then %g", tries[0].lr, tries[1].lr, f.spec.LR, want)
	}
	_, _, meta, _, _ := f.ckpt.Latest()
	if meta.Rollbacks != rollbacks || meta.LRFactor != f.env.RollbackLRFactor {
		t.Errorf("final checkpoint: %d rollbacks, LR factor %g; want %d, %g", meta.Rollbacks, meta.LRFactor, rollbacks, f.env.RollbackLRFactor)
	}
	if !hasLine(f.log.lines, "rolling back to step 2") {
		t.Errorf("no rollback line in %q", f.log.lines)
	}
}

// TestTrainEvaluationCadence checks that the held-out loss is computed
// before the first step, after every run that reaches a multiple of
// EvalEvery, and at the end, on the state after that step.
func TestTrainEvaluationCadence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		steps, perRun, every int
		want                 []int // steps with a held-out loss (0: before the first)
	}{
		{10, 1, 3, []int{0, 3, 6, 9, 10}},
		{10, 1, 0, []int{0, 10}},
		{6, 1, 2, []int{0, 2, 4, 6}},
		{10, 2, 3, []int{0, 4, 6, 10}}, // runs end at 2, 4, 6, 8, 10
		{5, 5, 2, []int{0, 5}},
	}
	for _, tt := range tests {
		f := newFake(t, tt.steps, tt.perRun, 0, tt.every)
		res, err := f.train(t)
		if err != nil {
			t.Fatal(err)
		}
		got := f.log.evalSteps()
		if !slices.Equal(got, tt.want) {
			t.Errorf("%d steps, %d per run, every %d: evaluated at %v, want %v", tt.steps, tt.perRun, tt.every, got, tt.want)
			continue
		}
		if windows := 2; f.rt.evalRuns != windows*len(tt.want) {
			t.Errorf("%d evaluation runs for %d evaluations of %d windows", f.rt.evalRuns, len(tt.want), windows)
		}
		// fakeEval is sum(w) plus a term of the windows alone: it must be
		// the same at every evaluation if each saw the state of its step.
		wAfter := map[int][]float32{tt.steps: res.Weights["w"].Float32s()}
		for _, s := range f.rt.seen {
			wAfter[s.step-1] = s.w
		}
		vals := valLosses(f.log)
		term := vals[0] - float64(sum32(wAfter[0]))
		for _, s := range tt.want {
			if d := vals[s] - float64(sum32(wAfter[s])); !(math.Abs(d-term) <= 1e-5) {
				t.Errorf("every %d: the held-out loss at step %d is not that of the state after it (%g vs %g)", tt.every, s, d, term)
			}
		}
		if res.ValLoss != vals[tt.steps] || res.FirstValLoss != vals[0] {
			t.Errorf("result's held-out losses %g (first %g), metrics %v", res.ValLoss, res.FirstValLoss, vals)
		}
	}
}

// TestTrainCheckpointCadence checks that checkpoints are saved after every
// run that reaches a multiple of CheckpointEvery and at the end, with the
// step's token count and data index, and that only the newest kept one is
// resumed from.
func TestTrainCheckpointCadence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		steps, perRun, every int
		want                 []int
	}{
		{10, 1, 3, []int{3, 6, 9, 10}},
		{10, 1, 0, []int{10}},
		{6, 1, 2, []int{2, 4, 6}},
		{10, 4, 3, []int{4, 8, 10}}, // runs end at 4, 8, 10
	}
	for _, tt := range tests {
		f := newFake(t, tt.steps, tt.perRun, tt.every, 0)
		f.ckpt.keepLast = 2
		if _, err := f.train(t); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.ckpt.saved, tt.want) {
			t.Errorf("%d steps, %d per run, every %d: saved at %v, want %v", tt.steps, tt.perRun, tt.every, f.ckpt.saved, tt.want)
		}
		s := f.spec
		for _, c := range f.ckpt.kept {
			m := c.meta
			if m.Step != c.step || m.Tokens != int64(c.step*s.MicroBatches*s.MicroBatch*s.SeqLen) || m.DataIndex != int64(c.step*s.MicroBatches) {
				t.Errorf("checkpoint of step %d has meta %+v", c.step, m)
			}
			if len(c.state) != 3 {
				t.Errorf("checkpoint of step %d holds %d tensors, want w and its two moments", c.step, len(c.state))
			}
		}
		if len(f.ckpt.kept) > 2 {
			t.Errorf("%d checkpoints kept, want at most 2", len(f.ckpt.kept))
		}
	}
}

// TestTrainRejectsBadSpecs checks that errors before training name the
// stage and what is wrong.
func TestTrainRejectsBadSpecs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(f *fakeSetup)
		want string
	}{
		{"schedule", func(f *fakeSetup) { f.spec.Schedule.Kind = "linear" }, `stage fake: schedule kind "linear"`},
		{"initial value", func(f *fakeSetup) { f.spec.Initial = Weights{} }, "stage fake: no initial value for parameter w"},
		{"too little data", func(f *fakeSetup) { f.spec.SeqLen = 2000 }, "stage fake: evaluation windows of val.txt"},
	}
	for _, tt := range tests {
		f := newFake(t, 3, 1, 0, 0)
		tt.edit(f)
		if _, err := f.train(t); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func stepsOf(seen []seenStep) []int {
	var out []int
	for _, s := range seen {
		out = append(out, s.step)
	}
	return out
}

func hasLine(lines []string, part string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, part) })
}

// valLosses are the held-out losses of the metrics by step.
func valLosses(l *fakeLog) map[int]float64 {
	out := map[int]float64{}
	for _, m := range l.metrics {
		if v, ok := m["val_loss"]; ok {
			out[m["step"].(int)] = v.(float64)
		}
	}
	return out
}

// sameState compares the newest checkpoints of two runs tensor by tensor.
func sameState(t *testing.T, got, want *fakeCkpt) {
	t.Helper()
	gs, g, _, _, _ := got.Latest()
	ws, w, _, _, _ := want.Latest()
	if gs != ws {
		t.Fatalf("newest checkpoints of steps %d and %d", gs, ws)
	}
	for _, name := range []string{"w", train.ExpAvg("w"), train.ExpAvgSq("w")} {
		if !slices.Equal(g[name].Float32s(), w[name].Float32s()) {
			t.Errorf("%s at step %d: %v, want %v", name, gs, g[name].Float32s(), w[name].Float32s())
		}
	}
}
