package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"mohawk/stages"
	"mohawk/tensors"
)

func weightsAt(step int) stages.Weights {
	return stages.Weights{"w": tensors.FromFloat32([]int64{2}, []float32{float32(step), 1})}
}

func TestCheckpointsSaveLatestAndDamage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logged []string
	c := &Checkpoints{Dir: dir, KeepLast: 2, Log: func(f string, a ...any) { logged = append(logged, f) }}
	for step := 1; step <= 4; step++ {
		meta := stages.Meta{Step: step, ValLoss: float64(10 - step)}
		if step == 1 {
			meta.ValLoss = 1 // the best held-out loss: kept by retention
		}
		if err := c.Save(step, weightsAt(step), meta); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.steps(); len(got) != 3 || got[0] != 4 || got[1] != 3 || got[2] != 1 {
		t.Fatalf("kept steps %v, want [4 3 1] (last two and the best)", got)
	}
	step, w, meta, ok, err := c.Latest()
	if err != nil || !ok || step != 4 || w["w"].Float32s()[0] != 4 || meta.Step != 4 {
		t.Fatalf("Latest = %d %v %+v %v %v", step, w, meta, ok, err)
	}
	// Flip a byte of the newest checkpoint's tensors: it must be skipped.
	p := filepath.Join(c.path(4), ckptTensors)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 0xff
	os.WriteFile(p, b, 0o644)
	if step, _, _, _, _ := c.Latest(); step != 3 {
		t.Fatalf("after corrupting step 4, Latest gave step %d, want 3", step)
	}
	// A checkpoint without its manifest (a crash before the commit) is never used.
	os.Remove(filepath.Join(c.path(3), ckptManifest))
	if step, _, _, _, _ := c.Latest(); step != 1 {
		t.Fatalf("after removing step 3's manifest, Latest gave step %d, want 1", step)
	}
	if len(logged) < 2 {
		t.Errorf("skipped checkpoints were not reported: %v", logged)
	}
	// A leftover temporary directory from an interrupted save is ignored and cleaned.
	os.MkdirAll(filepath.Join(dir, ".tmp-step-00000009-123"), 0o755)
	if err := c.Save(5, weightsAt(5), stages.Meta{Step: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-step-00000009-123")); !os.IsNotExist(err) {
		t.Error("temporary directory survived")
	}
}
