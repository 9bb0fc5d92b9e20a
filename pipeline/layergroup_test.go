package pipeline

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestLayerGroups trains Stages 1 and 2 one layer at a time: every layer's
// distance falls, each group keeps its own checkpoints, and a second run
// skips the finished stages.
func TestLayerGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model")
	}
	cfg, path := tinyConfig(t, `  - {kind: orient, tokens: 512, layer_group: 1}
  - {kind: align, tokens: 512, layer_group: 1}`)
	sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range sum.Stages {
		if len(rec.LayerBefore) != 2 || len(rec.LayerAfter) != 2 {
			t.Fatalf("%s: per-layer distances %v → %v, want two layers", rec.Name, rec.LayerBefore, rec.LayerAfter)
		}
		for i := range rec.LayerBefore {
			if !(rec.LayerAfter[i] < rec.LayerBefore[i]) {
				t.Errorf("%s: layer %d distance %.4g → %.4g did not fall", rec.Name, i, rec.LayerBefore[i], rec.LayerAfter[i])
			}
		}
		if rec.Steps != 8 { // two groups of 4 steps each
			t.Errorf("%s: %d steps, want 8", rec.Name, rec.Steps)
		}
	}
	ck := filepath.Join(sum.RunDir, "stages", "00-orient", "checkpoints")
	for _, g := range []string{"orient-layers-0-0", "orient-layers-1-1"} {
		if _, err := os.Stat(filepath.Join(ck, g)); err != nil {
			t.Errorf("group checkpoints: %v", err)
		}
	}
}
