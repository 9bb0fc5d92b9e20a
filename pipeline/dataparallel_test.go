package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mohawk/dist"
	"mohawk/stages"
)

// dpStages: a data-parallel Stage 3 (8 steps of 4 micro-batches of one
// window, checkpoints every 2) and a data-parallel pretraining of the
// student (4 steps); with two ranks, each runs 2 micro-batches per step.
const dpStages = `  - {kind: distill, tokens: 1024}
  - {kind: pretrain, model: student, tokens: 512}`

const dpTraining = "training: {seq_len: 32, micro_batch: 1, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 2}"

var dpStageDirs = []string{"00-distill", "01-pretrain"}

// dpTol bounds how far a run with two ranks may stray from one process
// with the same global batch: the gradients are averaged in another order
// (each rank's mean over its micro-batch, then the mean over the ranks,
// against one mean over both), so they differ in their last bits and
// AdamW carries that into the weights. Measured: see TestDataParallel's
// log.
const dpTol = 1e-4

// TestMain lets the test binary be a rank of a pipeline job
// (MOHAWK_PIPELINE_RANK: the config to run; the launcher's variables give
// the rank). MOHAWK_PIPELINE_NAN="rank stage step" makes that rank's
// learning rate NaN at that 0-based step of that stage.
func TestMain(m *testing.M) {
	if cfg := os.Getenv("MOHAWK_PIPELINE_RANK"); cfg != "" {
		os.Exit(helperRank(cfg))
	}
	os.Exit(m.Run())
}

func helperRank(path string) int {
	l, _, err := dist.FromEnv(os.Getenv)
	if err == nil {
		var rank, step int
		var stage string
		if spec := os.Getenv("MOHAWK_PIPELINE_NAN"); spec != "" {
			if _, err = fmt.Sscan(spec, &rank, &stage, &step); err == nil && rank == l.Rank {
				stages.FaultHook = func(s string, first int, lrs []float32) {
					if s == stage && first <= step && step < first+len(lrs) {
						lrs[step-first] = float32(math.NaN())
					}
				}
			}
		}
	}
	if err == nil {
		var cfg *Config
		if cfg, err = Load(path, nil); err == nil {
			_, err = Run(context.Background(), cfg, path, RunOptions{Ranks: &dist.Options{Launch: l}})
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		var stopped *dist.StoppedError
		if errors.As(err, &stopped) {
			return dist.ExitStopped
		}
		return 1
	}
	return 0
}

// TestDataParallel: Stage 3 and pretraining with two local ranks
// (--nproc-per-node 2), each a disjoint half of every step's micro-batches,
// end where one process with the same global batch does, to reduction-order
// rounding (dpTol), and two such runs agree bit for bit. A run of two ranks
// interrupted after a checkpoint resumes as one process, and one process's
// as two ranks, both ending where the reference did. A NaN on rank 1 stops
// both ranks, each naming rank 1.
func TestDataParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/pipeline and runs it several times")
	}
	bin := buildPipeline(t)
	cache := filepath.Join(t.TempDir(), "cache")
	newRun := func(name string) *rankRun {
		r := newRankRun(t, bin, cache, name)
		y := tinyYAML(t, r.dir, cache, dpStages, dpTraining)
		if err := os.WriteFile(filepath.Join(r.dir, "pipeline.yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return r
	}
	ref := newRun("ref")
	ref.mustRun()
	two := newRun("two")
	out := two.mustRun("--nproc-per-node", "2")
	for _, want := range []string{"data parallel: each rank runs 2 of the 4 micro-batches",
		"[rank 1] stage distill: data parallel, rank 1 of 2 runs micro-batches 2-3 of every step's 4",
		"[rank 0] stage pretrain: data parallel, rank 0 of 2 runs micro-batches 0-1 of every step's 4"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	d := closeRuns(t, ref.runDir(), two.runDir(), dpStageDirs)
	t.Logf("two ranks against one process: largest difference %.3g (losses and weights; tolerance %g)", d, dpTol)

	t.Run("two runs of two ranks are bit-identical", func(t *testing.T) {
		again := newRun("again")
		again.mustRun("--nproc-per-node", "2")
		if d := closeRuns(t, two.runDir(), again.runDir(), dpStageDirs); d != 0 {
			t.Errorf("two runs of two ranks differ by %g", d)
		}
		for _, s := range dpStageDirs {
			f := filepath.Join("stages", s, outputDir, "model.safetensors")
			a, errA := os.ReadFile(filepath.Join(two.runDir(), f))
			b, errB := os.ReadFile(filepath.Join(again.runDir(), f))
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Errorf("%s differs between two runs of two ranks (%v, %v)", f, errA, errB)
			}
		}
	})

	t.Run("two ranks resumed by one process", func(t *testing.T) {
		r := newRun("2to1")
		r.interrupt(t, "--nproc-per-node", "2")
		out := r.mustRun()
		if !strings.Contains(out, "stage distill: resuming at step") {
			t.Errorf("the relaunch did not resume:\n%s", out)
		}
		closeRuns(t, ref.runDir(), r.runDir(), dpStageDirs, "first_loss", "val_loss_before")
	})

	t.Run("one process resumed by two ranks", func(t *testing.T) {
		r := newRun("1to2")
		r.interrupt(t)
		out := r.mustRun("--nproc-per-node", "2")
		if !strings.Contains(out, "stage distill: resuming at step") {
			t.Errorf("the relaunch did not resume:\n%s", out)
		}
		closeRuns(t, ref.runDir(), r.runDir(), dpStageDirs, "first_loss", "val_loss_before")
	})

	t.Run("NaN on rank 1 stops both", func(t *testing.T) {
		r := newRun("nan")
		port, err := dist.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for rank := range 2 {
			c := exec.Command(os.Args[0], "-test.run=^$")
			c.Env = append(os.Environ(), append(rankEnv(rank, 2, port),
				"MOHAWK_PIPELINE_RANK="+filepath.Join(r.dir, "pipeline.yaml"), "MOHAWK_PIPELINE_NAN=1 distill 2")...)
			var b bytes.Buffer
			c.Stdout, c.Stderr = &b, &b
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Process.Kill()
			cmds, outs = append(cmds, c), append(outs, &b)
		}
		for rank, c := range cmds {
			err := c.Wait()
			o := outs[rank].String()
			if err == nil || !strings.Contains(o, "step 4: non-finite value in loss of rank 1") {
				t.Errorf("rank %d: %v; want an error naming step 4 and rank 1:\n%s", rank, err, o)
			}
		}
	})
}

// interrupt runs the pipeline (args: --nproc-per-node 2 or none) until its
// distill stage has written the checkpoint of step 4, then sends it
// SIGINT, as Ctrl-C does, and waits for it to stop.
func (r *rankRun) interrupt(t *testing.T, args ...string) {
	t.Helper()
	cmd, out := r.command(nil, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ckpt := filepath.Join(r.runDir(), "stages", "00-distill", "checkpoints", "step-00000004")
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ckpt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no distill checkpoint at step 4 after 5 minutes:\n%s", out)
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err == nil {
		t.Logf("the run ended before the interrupt reached it:\n%s", out)
	}
}

// closeRuns checks that two runs end alike: the per-step losses (rank 0's
// metrics.jsonl), done.json losses and output weights of the stages in
// dirs ("00-distill": stage distill), within dpTol; it returns the largest
// difference (0 for runs bit for bit alike). Keys in skip are left out of
// done.json's comparison (a resumed stage records no first loss).
func closeRuns(t *testing.T, want, got string, dirs []string, skip ...string) float64 {
	t.Helper()
	worst, bad := 0.0, 0
	see := func(what string, a, b float64) {
		d := math.Abs(a - b)
		if !(d <= dpTol) {
			if bad++; bad <= 10 {
				t.Errorf("%s: %v against %v", what, b, a)
			}
		}
		if d > worst || math.IsNaN(d) {
			worst = d
		}
	}
	la, lb := stepLosses(t, want), stepLosses(t, got)
	for _, s := range dirs {
		_, stage, _ := strings.Cut(s, "-")
		if len(la[stage]) == 0 || len(la[stage]) != len(lb[stage]) {
			t.Fatalf("stage %s: %d and %d steps logged", stage, len(la[stage]), len(lb[stage]))
		}
		for step, a := range la[stage] {
			see(fmt.Sprintf("%s step %d loss", stage, step), a, lb[stage][step])
		}
	}
	for _, s := range dirs {
		var recs [2]StageRecord
		for i, dir := range []string{want, got} {
			raw, err := os.ReadFile(filepath.Join(dir, "stages", s, doneFile))
			if err != nil || json.Unmarshal(raw, &recs[i]) != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		a, b := recs[0], recs[1]
		if a.Steps != b.Steps || a.Tokens != b.Tokens {
			t.Errorf("%s: %d steps, %d tokens against %d, %d", s, b.Steps, b.Tokens, a.Steps, a.Tokens)
		}
		fields := map[string][2]float64{"last_loss": {a.LastLoss, b.LastLoss}, "val_loss": {a.ValLoss, b.ValLoss},
			"first_loss": {a.FirstLoss, b.FirstLoss}, "val_loss_before": {a.ValBefore, b.ValBefore}}
		for _, k := range skip {
			delete(fields, k)
		}
		for k, v := range fields {
			see(s+" "+k, v[0], v[1])
		}
		wa, err := LoadStudent(filepath.Join(want, "stages", s, outputDir), 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		wb, err := LoadStudent(filepath.Join(got, "stages", s, outputDir), 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		for name, x := range wa.Weights {
			y, ok := wb.Weights[name]
			if !ok {
				t.Fatalf("%s: no %s", s, name)
			}
			xs, ys := x.Float32s(), y.Float32s()
			for i := range xs {
				see(s+" "+name+"["+strconv.Itoa(i)+"]", float64(xs[i]), float64(ys[i]))
			}
		}
	}
	return worst
}

// TestRanksShownBeforeRunning: validate with ranks and a dry run of a
// rank of the job show each rank's micro-batches of the data-parallel
// stages (the dry run also the memory per GPU, the plan's figure), and
// both refuse a number of ranks the micro-batches per update do not
// divide among, naming the stage.
func TestRanksShownBeforeRunning(t *testing.T) {
	t.Parallel()
	share := "  %-10s data parallel: each rank runs %d of the 4 micro-batches of 1 per update (rank r: micro-batches %[2]d·r to %[2]d·r+%d)"
	for _, c := range []struct {
		ranks int
		want  []string
		bad   string
	}{
		{2, []string{fmt.Sprintf(share, "distill", 2, 1), fmt.Sprintf(share, "pretrain", 2, 1)}, ""},
		{4, []string{fmt.Sprintf(share, "distill", 1, 0), fmt.Sprintf(share, "pretrain", 1, 0)}, ""},
		{3, nil, "stage distill: 4 micro-batches per update do not divide among 3 ranks"},
	} {
		cfg, path := tinyConfig(t, dpStages, dpTraining)
		var validated strings.Builder
		err := ValidateRanks(&validated, cfg, path, c.ranks)
		var dry strings.Builder
		_, errDry := Run(context.Background(), cfg, path, RunOptions{Out: &dry, DryRun: true,
			Ranks: &dist.Options{Launch: dist.Launch{Launcher: "test", Size: c.ranks, LocalSize: c.ranks, MasterAddr: "127.0.0.1"}}})
		if c.bad != "" {
			for what, err := range map[string]error{"validate": err, "dry run": errDry} {
				if err == nil || !strings.Contains(err.Error(), c.bad) {
					t.Errorf("%d ranks, %s: %v, want %q", c.ranks, what, err, c.bad)
				}
			}
			continue
		}
		if err != nil || errDry != nil {
			t.Fatalf("%d ranks: validate %v, dry run %v", c.ranks, err, errDry)
		}
		_, mem, _ := strings.Cut(dry.String(), "memory ≈ ")
		mem, _, _ = strings.Cut(mem, " (")
		want := append(c.want, fmt.Sprintf("ranks: %d", c.ranks))
		for what, out := range map[string]string{"validate": validated.String(), "dry run": dry.String()} {
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%d ranks: %s output lacks %q:\n%s", c.ranks, what, w, out)
				}
			}
		}
		if w := "memory per rank (per GPU) ≈ " + mem + ","; mem == "" || !strings.Contains(dry.String(), w) {
			t.Errorf("%d ranks: the dry run lacks %q:\n%s", c.ranks, w, dry.String())
		}
	}
}
