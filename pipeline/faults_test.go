package pipeline

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/stages"
	"mohawk/tensors"
)

// Numerical faults, triggered for real on the tiny pipeline: an absurd
// learning rate (the update overflows, the next step's loss is NaN), and
// a learning rate made NaN for one step through stages.FaultHook (the
// update writes NaN into every parameter while the step's own loss and
// gradients are finite). The error must name the stage, the step and the
// first non-finite tensor; no checkpoint may hold a non-finite value; the
// rollback policy must lower the learning rate and continue, or give up
// after max_rollbacks saying so.

const faultStage = `  - {kind: distill, tokens: 1024, lr: 1e30}`

// distillCheckpoints opens the distill stage's checkpoints of cfg's run.
func distillCheckpoints(cfg *Config) *Checkpoints {
	return &Checkpoints{Dir: filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name, "stages", "00-distill", "checkpoints")}
}

// rollback sets the rollback policy: learning rate ×0.5 per rollback, at
// most max.
func rollback(cfg *Config, max int) {
	cfg.Checkpoints.OnNonFinite, cfg.Checkpoints.RollbackLRFactor, cfg.Checkpoints.MaxRollbacks = "rollback", 0.5, max
}

// requireFiniteCheckpoints checks every checkpoint left verifies and holds
// only finite values, and returns the newest step.
func requireFiniteCheckpoints(t *testing.T, c *Checkpoints) int {
	t.Helper()
	for _, s := range c.steps() {
		if err := verify(c.path(s)); err != nil {
			t.Fatalf("checkpoint %d: %v", s, err)
		}
		w, _, err := readCheckpoint(c.path(s))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkFinite(s, w); err != nil {
			t.Fatalf("a checkpoint holds a non-finite value: %v", err)
		}
	}
	step, _, _, ok, err := c.Latest()
	if err != nil || !ok {
		t.Fatalf("no usable checkpoint left: %v", err)
	}
	return step
}

func TestNonFiniteStopsAndNamesStageStepTensor(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	t.Parallel()
	cfg, path := tinyConfig(t, faultStage)
	cfg.Training.CheckpointEvery = 1
	cfg.Checkpoints.OnNonFinite = "stop"
	var out bytes.Buffer
	_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
	var nf *stages.NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("got %v, want a non-finite error\n%s", err, out.String())
	}
	msg := err.Error()
	for _, w := range []string{"stage distill", "step ", nf.Tensor, "lower the learning rate"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	if nf.Stage != "distill" || nf.Step < 2 || nf.Tensor == "" {
		t.Errorf("NonFiniteError %+v: want stage distill, a step after the first, a tensor", nf)
	}
	// The bad step was not applied and nothing after it was saved: the
	// newest checkpoint is the step before, intact and finite.
	if got := requireFiniteCheckpoints(t, distillCheckpoints(cfg)); got != nf.Step-1 {
		t.Errorf("newest checkpoint is step %d, want %d (the last good step)", got, nf.Step-1)
	}
	if _, err := os.Stat(filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name, "stages", "00-distill", outputDir)); !os.IsNotExist(err) {
		t.Error("a stage that stopped on a non-finite step wrote its output")
	}
	t.Logf("%v", err)
}

func TestNonFiniteRollbackGivesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	t.Parallel()
	// Every checkpoint after the first update holds 1e30-sized weights, so
	// lowering the learning rate cannot help: the policy must give up.
	cfg, path := tinyConfig(t, faultStage)
	cfg.Training.CheckpointEvery = 1
	rollback(cfg, 2)
	var out bytes.Buffer
	_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
	var nf *stages.NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("got %v, want a non-finite error\n%s", err, out.String())
	}
	if nf.Rollbacks != 2 || !strings.Contains(err.Error(), "after 2 rollbacks") || !strings.Contains(err.Error(), "max_rollbacks") {
		t.Errorf("error %q: want it to say it gave up after 2 rollbacks (max_rollbacks)", err)
	}
	log := out.String()
	for _, w := range []string{"rolling back to step 1 with learning rate ×0.5", "rolling back to step 1 with learning rate ×0.25"} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
	requireFiniteCheckpoints(t, distillCheckpoints(cfg))
	t.Logf("%v", err)
}

// injectNaNLR makes the learning rate of one 0-based step of stage NaN,
// once.
func injectNaNLR(t *testing.T, stage string, step int) *int {
	fired := new(int)
	stages.FaultHook = func(s string, first int, lrs []float32) {
		if s == stage && first <= step && step < first+len(lrs) && *fired == 0 {
			lrs[step-first] = float32(math.NaN())
			*fired++
		}
	}
	t.Cleanup(func() { stages.FaultHook = nil })
	return fired
}

// Not parallel: stages.FaultHook is global (parallel tests run after the
// serial ones, never alongside).
func TestNonFiniteRollbackRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	cfg, path := tinyConfig(t, `  - {kind: distill, tokens: 1024, lr: 0.002}`)
	rollback(cfg, 3)
	// Checkpoints at steps 2, 4, 6, 8; step 3's update is poisoned, step 4
	// sees a NaN loss, the run rolls back to step 2 and goes on at half the
	// learning rate.
	fired := injectNaNLR(t, "distill", 2)
	var out bytes.Buffer
	if _, err := Run(context.Background(), cfg, path, RunOptions{Out: &out}); err != nil {
		t.Fatalf("run with one poisoned step: %v\n%s", err, out.String())
	}
	if *fired != 1 {
		t.Fatalf("the fault fired %d times", *fired)
	}
	log := out.String()
	if !strings.Contains(log, "stage distill: step 4: non-finite value in loss") || !strings.Contains(log, "rolling back to step 2 with learning rate ×0.5") {
		t.Errorf("log does not show the detection at step 4 and the rollback to step 2:\n%s", log)
	}
	c := distillCheckpoints(cfg)
	step := requireFiniteCheckpoints(t, c)
	_, _, meta, _, _ := c.Latest()
	if step != 8 || meta.Rollbacks != 1 || meta.LRFactor != 0.5 {
		t.Errorf("final checkpoint step %d, rollbacks %d, lr factor %g; want 8, 1, 0.5", step, meta.Rollbacks, meta.LRFactor)
	}
	s, err := LoadStudent(filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name, "stages", "00-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkFinite(8, s.Weights); err != nil {
		t.Errorf("final student: %v", err)
	}
}

// TestNonFiniteUpdateIsNeverCheckpointed poisons the update of a step that
// ends at a checkpoint: its loss and gradients are finite, so only the
// checkpoint guard can catch it.
func TestNonFiniteUpdateIsNeverCheckpointed(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	cfg, path := tinyConfig(t, `  - {kind: distill, tokens: 1024, lr: 0.002}`)
	injectNaNLR(t, "distill", 3) // step 4, checkpointed (checkpoint_every 2)
	var out bytes.Buffer
	_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
	var nfs *NonFiniteStateError
	if !errors.As(err, &nfs) {
		t.Fatalf("got %v, want a non-finite state error\n%s", err, out.String())
	}
	for _, w := range []string{"stage distill", "checkpoint step 4", "tensor ", "previous one is kept"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if got := requireFiniteCheckpoints(t, distillCheckpoints(cfg)); got != 2 {
		t.Errorf("newest checkpoint is step %d, want 2", got)
	}
	t.Logf("%v", err)
}

func TestCheckFiniteDTypes(t *testing.T) {
	t.Parallel()
	w := weightsAt(1)
	if err := checkFinite(1, w); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := weightsAt(1)
		w["w"].Float32s()[1] = bad
		var e *NonFiniteStateError
		if err := checkFinite(3, w); !errors.As(err, &e) || e.Tensor != "w" || e.Index != 1 || e.Step != 3 {
			t.Errorf("%v: got %v", bad, err)
		}
		for _, dt := range []string{"float16", "bfloat16", "float64"} {
			d, _ := tensors.ParseDType(dt)
			if i := firstNonFiniteElement(w["w"].Convert(d)); i != 1 {
				t.Errorf("%v as %s: first non-finite element %d, want 1", bad, dt, i)
			}
		}
	}
}
