package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mohawk/internal/diskfault"
	"mohawk/stages"
	"mohawk/tensors"
)

// Resource limits: the preflight check refuses a run that cannot fit before
// any stage starts, and a disk that fills up during a checkpoint leaves the
// previous checkpoint intact and the run resumable.

// mountTmpfs mounts a tmpfs of size (e.g. "2m") on a new directory, or
// skips the test when mounting is not permitted: like a GPU, that right is
// hardware CI may not have, so this skip is allowed in strict mode.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a %s tmpfs to fill (%v); this test needs root or CAP_SYS_ADMIN", size, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file until the file system is full, then gives back
// leave bytes, and returns its path; removing it frees the space again.
func fillDisk(t testing.TB, dir string, leave int64) string {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// Small writes may still fit in the last partial pages; use them up.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
	if fi, err := f.Stat(); err == nil && leave > 0 {
		f.Truncate(max(0, fi.Size()-leave))
	}
	return path
}

// TestCheckpointDiskFull fills a 4 MiB tmpfs between two checkpoints (see
// saveFailsThenRecovers); it needs the right to mount one.
func TestCheckpointDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "4m")
	saveFailsThenRecovers(t, mnt, syscall.ENOSPC, func() (repair func()) {
		filler := fillDisk(t, mnt, 512<<10) // the 1 MiB tensor cannot fit
		return func() { os.Remove(filler) }
	})
}

// TestCheckpointWriteFaults breaks each file of a checkpoint in each way a
// disk fails, injected through internal/diskfault (no privileges needed;
// see saveFailsThenRecovers).
func TestCheckpointWriteFaults(t *testing.T) {
	for _, c := range []struct {
		name string
		f    diskfault.Fault
		want error
	}{
		{"tensors: disk full", diskfault.Fault{Name: ckptTensors, After: 512 << 10, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"tensors: I/O error", diskfault.Fault{Name: ckptTensors, After: 100, Err: syscall.EIO}, syscall.EIO},
		{"tensors: short write", diskfault.Fault{Name: ckptTensors, After: 700 << 10}, io.ErrShortWrite},
		{"tensors: fsync fails", diskfault.Fault{Name: ckptTensors, OnSync: true, Err: syscall.EIO}, syscall.EIO},
		{"key: disk full", diskfault.Fault{Name: ckptKey, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"meta: short write", diskfault.Fault{Name: ckptMeta, After: 10}, io.ErrShortWrite},
		{"manifest: disk full", diskfault.Fault{Name: ckptManifest, After: 10, Err: syscall.EDQUOT}, syscall.EDQUOT},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c.f.Under = dir
			saveFailsThenRecovers(t, dir, c.want, func() func() { return diskfault.Inject(c.f) })
		})
	}
}

// saveFailsThenRecovers saves a checkpoint under dir, breaks the disk with
// fail, and checks that the next save fails with want, says so (and what
// to do, when the disk is full), leaves no temporary files, and that the
// first checkpoint still verifies; then repairs the disk and checks that
// saving works again.
func saveFailsThenRecovers(t *testing.T, dir string, want error, fail func() (repair func())) {
	t.Helper()
	c := &Checkpoints{Dir: filepath.Join(dir, "checkpoints"), KeepLast: 2, Key: "k1"}
	big := func(step int) stages.Weights {
		v := make([]float32, 256<<10) // 1 MiB
		for i := range v {
			v[i] = float32(step)
		}
		return stages.Weights{"w": tensors.FromFloat32([]int64{int64(len(v))}, v)}
	}
	if err := c.Save(1, big(1), stages.Meta{Step: 1}); err != nil {
		t.Fatal(err)
	}
	repair := fail()
	err := c.Save(2, big(2), stages.Meta{Step: 2})
	repair()
	if !errors.Is(err, want) {
		t.Fatalf("save on a failing disk: got %v, want %v", err, want)
	}
	t.Logf("save on a failing disk: %v", err)
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	if full && !strings.Contains(err.Error(), "previous checkpoint is kept") {
		t.Errorf("the error does not say what happened and what to do: %v", err)
	}
	if left := leftoversIn(c.Dir); len(left) > 0 {
		t.Errorf("the failed save left %v", left)
	}
	step, w, _, ok, err := c.Latest()
	if err != nil || !ok || step != 1 || w["w"].Float32s()[0] != 1 {
		t.Fatalf("after the failed save, Latest = %d, %v, %v; want step 1", step, ok, err)
	}
	if err := c.Save(2, big(2), stages.Meta{Step: 2}); err != nil {
		t.Fatalf("save after the disk was repaired: %v", err)
	}
	if step, _, _, _, _ := c.Latest(); step != 2 {
		t.Fatalf("Latest = %d after the disk was repaired, want 2", step)
	}
}

func leftoversIn(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if isLeftover(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRunDiskFullThenResume fills the disk in the middle of the distill
// stage: the run fails at its next checkpoint with ENOSPC; once space is
// freed the same command resumes from the previous checkpoint and ends with
// the student of an uninterrupted run, bit for bit. The disk fills for real
// in a 256 MiB tmpfs (where mounting one is allowed) and by injection
// (internal/diskfault, everywhere).
func TestRunDiskFullThenResume(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model three times")
	}
	ref, refPath := tinyConfig(t, resumeStages)
	if _, err := Run(context.Background(), ref, refPath, RunOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	want, err := LoadStudent(filepath.Join(ref.Resolve(ref.OutputDir), ref.Name, "stages", "01-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("injected", func(t *testing.T) {
		dir := t.TempDir()
		runFullDiskThenResume(t, dir, want, func() func() {
			// A checkpoint holds about 14 MB; the first MiB of its tensors fits.
			return diskfault.Inject(diskfault.Fault{Under: dir, Name: ckptTensors, After: 1 << 20, Err: syscall.ENOSPC})
		})
	})
	t.Run("tmpfs", func(t *testing.T) {
		mnt := mountTmpfs(t, "256m")
		runFullDiskThenResume(t, mnt, want, func() func() {
			filler := fillDisk(t, mnt, 1<<20) // part of a 14 MB checkpoint fits
			return func() { os.Remove(filler) }
		})
	})
}

// runFullDiskThenResume runs the tiny pipeline into dir, fills the disk
// with fill after distill step 3, checks the run fails with ENOSPC keeping
// step 2, frees the space and checks the re-run resumes from step 2 and
// ends with the student want.
func runFullDiskThenResume(t *testing.T, dir string, want *stages.Student, fill func() (free func())) {
	cfg, path := tinyConfig(t, resumeStages)
	cfg.OutputDir = dir
	var free func()
	var out bytes.Buffer
	_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out, Observe: func(m map[string]any) {
		if m["stage"] == "distill" && m["step"] == 3 && free == nil {
			free = fill()
		}
	}})
	if free == nil {
		t.Fatalf("the run never reached distill step 3\n%s", out.String())
	}
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("run on a disk that fills up: got %v, want ENOSPC\n%s", err, out.String())
	}
	t.Logf("run on a full disk: %v", err)
	c := &Checkpoints{Dir: filepath.Join(dir, cfg.Name, "stages", "01-distill", "checkpoints")}
	if step := requireFiniteCheckpoints(t, c); step != 2 {
		t.Fatalf("newest checkpoint after the failure is step %d, want 2", step)
	}
	free()
	out.Reset()
	cfg2, _ := Load(path, nil)
	cfg2.OutputDir = dir
	if _, err := Run(context.Background(), cfg2, path, RunOptions{Out: &out}); err != nil {
		t.Fatalf("re-run after freeing space: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stage distill: resuming at step 2/8") {
		t.Errorf("the re-run did not resume from step 2:\n%s", out.String())
	}
	got, err := LoadStudent(filepath.Join(dir, cfg.Name, "stages", "01-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range want.Weights {
		if !bytes.Equal(x.Data, got.Weights[name].Data) {
			t.Fatalf("final student differs from the uninterrupted run at %s", name)
		}
	}
}

// TestPreflightDiskTooSmall runs the tiny pipeline into a 2 MiB tmpfs: the
// preflight check must refuse before any stage starts, saying how much the
// run needs and what to change.
func TestPreflightDiskTooSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the demo teacher")
	}
	mnt := mountTmpfs(t, "2m")
	cfg, path := tinyConfig(t, resumeStages)
	cfg.OutputDir = mnt
	var out bytes.Buffer
	_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
	if err == nil {
		t.Fatal("a run that cannot fit its checkpoints started")
	}
	for _, w := range []string{"not enough disk space at " + mnt, "checkpoints ", "free", "keep_last", "output_dir"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, cfg.Name, "stages")); !os.IsNotExist(err) {
		t.Error("a stage started although the preflight check failed")
	}
	t.Logf("%v", err)
	// A dry run only warns.
	out.Reset()
	if _, err := Run(context.Background(), cfg, path, RunOptions{Out: &out, DryRun: true}); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !strings.Contains(out.String(), "warning: preflight: not enough disk space") {
		t.Errorf("the dry run did not warn:\n%s", out.String())
	}
}

// TestPreflightMemory checks the memory side with a fake machine: host
// memory on the CPU, the configured CUDA limit on a GPU, and a note when
// there is nothing to compare with.
func TestPreflightMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the demo teacher")
	}
	t.Parallel()
	cfg, _ := tinyConfig(t, resumeStages)
	w, err := prepare(context.Background(), cfg, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	probe := func(mem int64) sysProbe {
		return sysProbe{
			freeDisk:     func(string) (int64, error) { return math.MaxInt64 / 2, nil },
			memAvailable: func() (int64, string, error) { return mem, "test", nil },
		}
	}
	tc, sc := w.teacher.Config, w.student.Config
	// Plenty of memory: no error; the need is the plan plus the runtime.
	r := measureResources(w.plan, cfg, tc, sc, probe(64<<30))
	if err := r.check(cfg); err != nil {
		t.Fatalf("64 GiB: %v", err)
	}
	if r.MemNeeded != w.plan.Memory.TotalBytes+runtimeOverheadBytes || r.DiskNeeded <= 0 {
		t.Errorf("needs: memory %d, disk %d", r.MemNeeded, r.DiskNeeded)
	}
	// Too little host memory on the CPU.
	err = measureResources(w.plan, cfg, tc, sc, probe(64<<20)).check(cfg)
	for _, want := range []string{"not enough host memory", "64.0 MiB is available", "training.micro_batch (now 2)", "training.seq_len (now 32)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CPU, 64 MiB: error %v lacks %q", err, want)
		}
	}
	// CUDA: compared with runtime.cuda.mem_limit_bytes when set …
	gpu := *cfg
	gpu.Runtime.Provider = "cuda"
	gpu.Runtime.CUDA.MemLimitBytes = 1 << 20
	err = measureResources(w.plan, &gpu, tc, sc, probe(64<<30)).check(&gpu)
	if err == nil || !strings.Contains(err.Error(), "not enough CUDA memory") || !strings.Contains(err.Error(), "runtime.cuda.mem_limit_bytes") {
		t.Errorf("CUDA with a 1 MiB limit: %v", err)
	}
	// … and skipped with a note when it is not.
	gpu.Runtime.CUDA.MemLimitBytes = 0
	r = measureResources(w.plan, &gpu, tc, sc, probe(64<<30))
	if err := r.check(&gpu); err != nil || !strings.Contains(r.summary(), "device memory not checked") {
		t.Errorf("CUDA without a limit: %v; %s", err, r.summary())
	}
	// The estimate of the checkpoints matches what a save writes: one
	// distill checkpoint holds every student parameter and two moments.
	for _, s := range w.plan.Stages {
		if s.Kind == KindDistill && trainableParams(s, tc, sc) != sc.NumParams() {
			t.Errorf("distill trains %d parameters, the student has %d", trainableParams(s, tc, sc), sc.NumParams())
		}
	}
}

// TestRunDirIsLocked: a second process on the same run directory is
// refused with a message naming it; a crashed holder (the lock goes with
// the process) does not block.
func TestRunDirIsLocked(t *testing.T) {
	t.Parallel()
	p := &Plan{RunDir: t.TempDir()}
	release, err := claimRunDir(p)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description, so a second open in
	// this process conflicts just as another process would.
	if _, err := claimRunDir(p); err == nil || !strings.Contains(err.Error(), "in use by another pipeline process") {
		t.Fatalf("second claim: %v", err)
	}
	release()
	// Leftovers of a crashed writer are removed on the next claim.
	for _, n := range []string{".model.safetensors.tmp-123", ".tmp-step-00000004-99/state.safetensors"} {
		os.MkdirAll(filepath.Dir(filepath.Join(p.RunDir, "stages", "x", n)), 0o755)
		os.WriteFile(filepath.Join(p.RunDir, "stages", "x", n), []byte("torn"), 0o644)
	}
	release, err = claimRunDir(p)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if left := leftoversIn(filepath.Join(p.RunDir, "stages", "x")); len(left) > 0 {
		t.Errorf("leftovers survived: %v", left)
	}
}
