package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"mohawk/stages"
)

const resumeStages = `  - {kind: orient, tokens: 512}
  - {kind: distill, tokens: 1024, lr: 0.002}`

// losses reads every stage's per-step training loss from metrics.jsonl
// (the last record of a step wins, as in the report).
func stepLosses(t *testing.T, runDir string) map[string]map[int]float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, metricsLog))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int]float64{}
	for _, line := range splitLines(b) {
		var m struct {
			Stage string   `json:"stage"`
			Step  int      `json:"step"`
			Loss  *float64 `json:"loss"`
		}
		if json.Unmarshal(line, &m) == nil && m.Loss != nil {
			if out[m.Stage] == nil {
				out[m.Stage] = map[int]float64{}
			}
			out[m.Stage][m.Step] = *m.Loss
		}
	}
	return out
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return out
}

// TestResumeReproducesUninterruptedRun interrupts a run in the middle of
// its second stage, runs it again, and expects the same loss curve and the
// same final student, bit for bit, as a run that was never interrupted;
// the finished first stage must not be redone.
func TestResumeReproducesUninterruptedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model twice")
	}
	ref, refPath := tinyConfig(t, resumeStages)
	if _, err := Run(context.Background(), ref, refPath, RunOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	cfg, path := tinyConfig(t, resumeStages)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Run(ctx, cfg, path, RunOptions{Out: io.Discard, Observe: func(m map[string]any) {
		if m["stage"] == "distill" && m["step"] == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, stages.ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	var restarted []string
	cfg2, _ := Load(path, nil)
	if _, err := Run(context.Background(), cfg2, path, RunOptions{Out: io.Discard, Observe: func(m map[string]any) {
		if s, ok := m["stage"].(string); ok && m["step"] == 1 {
			restarted = append(restarted, s)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range restarted {
		if s == "orient" {
			t.Error("the finished orient stage was run again")
		}
	}
	runDir := func(c *Config) string { return filepath.Join(c.Resolve(c.OutputDir), c.Name) }
	want, got := stepLosses(t, runDir(ref)), stepLosses(t, runDir(cfg))
	if !reflect.DeepEqual(want, got) {
		t.Errorf("loss curves differ:\nuninterrupted %v\nresumed       %v", want, got)
	}
	a, err := LoadStudent(filepath.Join(runDir(ref), "stages", "01-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadStudent(filepath.Join(runDir(cfg), "stages", "01-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range a.Weights {
		xs, ys := x.Float32s(), b.Weights[name].Float32s()
		for i := range xs {
			if math.Float32bits(xs[i]) != math.Float32bits(ys[i]) {
				t.Fatalf("final student differs at %s[%d]: %v vs %v", name, i, xs[i], ys[i])
			}
		}
	}
}
