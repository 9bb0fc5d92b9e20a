package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mohawk/dist"
)

func TestShardRange(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		size, n int
		want    [][2]int
	}{
		{2, 2, [][2]int{{0, 1}, {1, 2}}},
		{2, 5, [][2]int{{0, 3}, {3, 5}}},
		{3, 2, [][2]int{{0, 1}, {1, 2}, {2, 2}}},
		{4, 10, [][2]int{{0, 3}, {3, 6}, {6, 8}, {8, 10}}},
		{1, 3, [][2]int{{0, 3}}},
	} {
		for r, w := range c.want {
			if lo, hi := ShardRange(r, c.size, c.n); lo != w[0] || hi != w[1] {
				t.Errorf("ShardRange(%d, %d, %d) = [%d, %d), want [%d, %d)", r, c.size, c.n, lo, hi, w[0], w[1])
			}
		}
	}
}

// rankRun is a pipeline run by the built binary in its own directory.
type rankRun struct {
	t   *testing.T
	bin string
	dir string // holds pipeline.yaml and runs/
}

// rankStages: layer-sharded Stages 1 and 2 (two groups of one layer) and a
// Stage 3 that every rank runs, checkpointing every 2 of its 8 steps.
const rankStages = `  - {kind: orient, tokens: 512, layer_group: 1}
  - {kind: align, tokens: 512, layer_group: 1}
  - {kind: distill, tokens: 1024}`

func newRankRun(t *testing.T, bin, cache, name string) *rankRun {
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	y := tinyYAML(t, dir, cache, rankStages)
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return &rankRun{t: t, bin: bin, dir: dir}
}

func (r *rankRun) runDir() string { return filepath.Join(r.dir, "runs", "tiny") }

// command is `pipeline run` on the run's config; env (RANK=…) adds to the
// environment.
func (r *rankRun) command(env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(r.bin, append([]string{"run", filepath.Join(r.dir, "pipeline.yaml")}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

func (r *rankRun) mustRun(args ...string) string {
	r.t.Helper()
	cmd, out := r.command(nil, args...)
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("pipeline run %v: %v\n%s", args, err, out)
	}
	return out.String()
}

// rankEnv is the torchrun environment of rank of size.
func rankEnv(rank, size, port int) []string {
	return []string{"RANK=" + strconv.Itoa(rank), "WORLD_SIZE=" + strconv.Itoa(size), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(port)}
}

// sameOutputs compares the stage outputs and records of two runs: the
// models byte for byte, done.json but for the time taken and the keys in
// skip.
func sameOutputs(t *testing.T, want, got string, skip ...string) {
	t.Helper()
	for _, s := range []string{"00-orient", "01-align", "02-distill"} {
		for _, f := range []string{"output/model.safetensors", "output/config.json"} {
			a, errA := os.ReadFile(filepath.Join(want, "stages", s, f))
			b, errB := os.ReadFile(filepath.Join(got, "stages", s, f))
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Errorf("%s/%s differs from the one-process run (%v, %v)", s, f, errA, errB)
			}
		}
		var a, b map[string]any
		for p, m := range map[string]*map[string]any{want: &a, got: &b} {
			raw, err := os.ReadFile(filepath.Join(p, "stages", s, doneFile))
			if err != nil || json.Unmarshal(raw, m) != nil {
				t.Fatalf("%s: %v", s, err)
			}
			for _, k := range append(skip, "seconds") {
				delete(*m, k)
			}
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s: done.json differs:\none process %v\nranks       %v", s, a, b)
		}
	}
}

// TestRanks runs the pipeline as one process for reference, then as two
// local ranks (--nproc-per-node 2): the layer-sharded Stages 1 and 2 and
// the replicated Stage 3 end with the one-process outputs and records. A
// rank killed with SIGKILL in Stage 3 makes the other stop within a bound,
// naming it, with the newest checkpoint intact; one process then resumes
// and ends where the reference did. Ranks with different plans are refused
// before any training.
func TestRanks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/pipeline and runs it several times")
	}
	bin := buildPipeline(t)
	cache := filepath.Join(t.TempDir(), "cache")
	ref := newRankRun(t, bin, cache, "ref")
	ref.mustRun()

	t.Run("two ranks equal one process", func(t *testing.T) {
		r := newRankRun(t, bin, cache, "two")
		out := r.mustRun("--nproc-per-node", "2")
		for _, want := range []string{"[rank 1] stage orient-layers-1-1: 4/4", "[rank 0] stage orient-layers-0-0: 4/4", "[rank 0] done: "} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		sameOutputs(t, ref.runDir(), r.runDir())
	})

	t.Run("killed rank", func(t *testing.T) {
		r := newRankRun(t, bin, cache, "killed")
		port, err := dist.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r0, out0 := r.command(rankEnv(0, 2, port))
		r1, out1 := r.command(rankEnv(1, 2, port))
		for _, c := range []*exec.Cmd{r0, r1} {
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Process.Kill()
		}
		ckpts := filepath.Join(r.runDir(), "stages", "02-distill", "checkpoints")
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if _, err := os.Stat(filepath.Join(ckpts, "step-00000004")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no distill checkpoint at step 4 after 5 minutes:\n%s\n%s", out0, out1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t0 := time.Now()
		r1.Process.Signal(syscall.SIGKILL)
		done := make(chan error, 1)
		go func() { done <- r0.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(out0.String(), "rank 1 lost its connection") {
				t.Errorf("rank 0 exited with %v, want an error naming rank 1:\n%s", err, out0)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("rank 0 still runs 30 s after rank 1 was killed:\n%s", out0)
		}
		r1.Wait()
		t.Logf("rank 0 stopped %s after rank 1 was killed", time.Since(t0).Round(time.Millisecond))
		ck := &Checkpoints{Dir: ckpts}
		step, _, _, ok, err := ck.Latest()
		if err != nil || !ok || step < 4 {
			t.Fatalf("newest checkpoint after the kill: step %d ok=%v err=%v", step, ok, err)
		}
		// One process resumes the two ranks' run and ends where the reference did.
		out := r.mustRun()
		if !strings.Contains(out, fmt.Sprintf("stage distill: resuming at step %d/8", step)) {
			t.Errorf("the relaunch did not resume at step %d:\n%s", step, out)
		}
		// A resumed stage records no first loss (any resumed run does so).
		sameOutputs(t, ref.runDir(), r.runDir(), "first_loss", "val_loss_before")
	})

	t.Run("different plans", func(t *testing.T) {
		r := newRankRun(t, bin, cache, "mismatch")
		port, err := dist.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r0, out0 := r.command(rankEnv(0, 2, port))
		r1, out1 := r.command(rankEnv(1, 2, port), "seed=6")
		r0.Start()
		err1 := r1.Run()
		err0 := r0.Wait()
		for i, c := range []struct {
			err error
			out *bytes.Buffer
		}{{err0, out0}, {err1, out1}} {
			if c.err == nil || !strings.Contains(c.out.String(), "rank 1's plan (hash") {
				t.Errorf("rank %d: %v, want a plan mismatch naming rank 1:\n%s", i, c.err, c.out)
			}
			if strings.Contains(c.out.String(), "starting") {
				t.Errorf("rank %d started a stage:\n%s", i, c.out)
			}
		}
	})
}
