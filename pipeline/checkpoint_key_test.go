package pipeline

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/stages"
)

// TestCheckpointKey: a checkpoint written under another stage key (the
// stage's settings or anything upstream changed) is neither resumed from
// nor kept; one written before keys existed is still resumed from; a
// retired checkpoint never leaves a half-deleted step directory.
func TestCheckpointKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := &Checkpoints{Dir: dir, KeepLast: 2, Key: "aaaa"}
	for step := 1; step <= 3; step++ {
		if err := old.Save(step, weightsAt(step), stages.Meta{Step: step}); err != nil {
			t.Fatal(err)
		}
	}
	var logged []string
	now := &Checkpoints{Dir: dir, KeepLast: 2, Key: "bbbb", Log: func(f string, a ...any) { logged = append(logged, f) }}
	if step, _, _, ok, _ := now.Latest(); ok {
		t.Fatalf("resumed from step %d of another configuration", step)
	}
	if len(logged) == 0 || !strings.Contains(logged[0], "another configuration") {
		t.Errorf("skipping a foreign checkpoint was not reported: %v", logged)
	}
	if err := now.Save(1, weightsAt(1), stages.Meta{Step: 1}); err != nil {
		t.Fatal(err)
	}
	if got := now.steps(); len(got) != 1 || got[0] != 1 || readKey(now.path(1)) != "bbbb" {
		t.Fatalf("after the first save of the new configuration: steps %v (key %q); the foreign ones must be gone", got, readKey(now.path(1)))
	}
	// A checkpoint without a key (written before keys) is accepted.
	os.Remove(filepath.Join(now.path(1), ckptKey))
	writeManifest(now.path(1), []string{ckptTensors, ckptMeta})
	if step, _, _, ok, _ := now.Latest(); !ok || step != 1 {
		t.Fatalf("a checkpoint without a key was not resumed from")
	}
	// Retiring leaves no step directory behind, only a temporary one that
	// Latest ignores and prune removes.
	if err := retire(now.path(1)); err != nil {
		t.Fatal(err)
	}
	if len(now.steps()) != 0 || len(leftoversIn(dir)) != 0 {
		t.Errorf("after retire: steps %v, leftovers %v", now.steps(), leftoversIn(dir))
	}
}

// TestChangedStageIsRetrained: changing a finished stage's settings makes
// it train again from the start (its old checkpoints are of another
// configuration), instead of resuming from (or returning) the old weights.
func TestChangedStageIsRetrained(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model twice")
	}
	t.Parallel()
	cfg, path := tinyConfig(t, `  - {kind: orient, tokens: 512}`)
	if _, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	cfg2, err := Load(path, []string{"stages.0.lr=0.0005"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := Run(context.Background(), cfg2, path, RunOptions{Out: &out}); err != nil {
		t.Fatal(err)
	}
	log := out.String()
	if strings.Contains(log, "resuming at step") || strings.Contains(log, "already done") || !strings.Contains(log, "stage orient: 1/4") {
		t.Errorf("the changed stage was not retrained from step 0:\n%s", log)
	}
}
