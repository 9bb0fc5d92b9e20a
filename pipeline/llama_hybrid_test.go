package pipeline

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mohawk/deploy"
)

// TestLlamaHybridRun runs the pipeline with a hybrid Llamba student of the
// demo-llama teacher (grouped-query attention, llama3 rope; layer 0 kept as
// attention, trained in Stage 3) at a tiny budget: the plan says Stages 1
// and 2 skip layer 0, which they leave at distance 0; the initial student
// holds the teacher's attention bit for bit and no mixer there; the
// finished student reloads as a hybrid whose attention trained; its export
// carries a KV cache of the teacher's 2 key/value heads for layer 0 beside
// layer 1's mixer states and decodes step by step as the full pass.
func TestLlamaHybridRun(t *testing.T) {
	tdir, err := filepath.Abs("../testdata/demo-llama/teacher")
	if err != nil {
		t.Fatal(err)
	}
	const st = `  - {kind: orient, tokens: 256}
  - {kind: align, tokens: 256}
  - {kind: distill, tokens: 512}
  - {kind: export}`
	cfg, path := tinyConfig(t, st, "teacher: {path: "+tdir+"}", "student: {chunk_size: 16, attention_layers: [0]}")
	var plan strings.Builder
	if _, err := Run(context.Background(), cfg, path, RunOptions{Out: &plan, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "skips attention layers [0]") {
		t.Errorf("dry-run plan does not skip attention layer 0:\n%s", plan.String())
	}
	teacher, err := LoadTeacher(tdir)
	if err != nil {
		t.Fatal(err)
	}
	start := mohawkStudent(t, teacher, cfg.Student, cfg.Seed)
	attn := []string{"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"}
	for _, n := range attn {
		if !equal(start.Weights["backbone.layers.0.mixer.self_attn."+n], teacher.Weights["model.layers.0.self_attn."+n]) {
			t.Errorf("attention %s of layer 0 is not the teacher's after init", n)
		}
	}
	if _, ok := start.Weights["backbone.layers.0.mixer.in_proj.weight"]; ok {
		t.Error("attention layer 0 has a mixer")
	}

	sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sum.Stages[:2] {
		if len(r.LayerAfter) != 2 || r.LayerAfter[0] != 0 || r.LayerBefore[0] != 0 || !(r.LayerAfter[1] > 0) {
			t.Errorf("%s: layer distances %v → %v; want layer 0 (attention) at 0 and layer 1 positive", r.Kind, r.LayerBefore, r.LayerAfter)
		}
	}
	final, err := LoadStudent(filepath.Join(sum.RunDir, "stages", "02-distill", outputDir), teacher.Config.Sizes().Eps)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(final.Config.Sizes().AttnLayers); got != "[0]" {
		t.Errorf("reloaded student has attention layers %s, want [0]", got)
	}
	if equal(final.Weights["backbone.layers.0.mixer.self_attn.q_proj.weight"], teacher.Weights["model.layers.0.self_attn.q_proj.weight"]) {
		t.Error("attention q_proj of layer 0 did not train in Stage 3 (train_attention defaults to true)")
	}
	dir := filepath.Join(sum.Stages[3].Export, "student")
	checkExport(t, dir, studentLogits(t, final), 0)
	m, err := deploy.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.States {
		names = append(names, s.Input)
		if strings.HasPrefix(s.Input, "past_key_values.0.") && (s.Shape[1] != 2 || s.SeqAxis != 2) {
			t.Errorf("KV cache %s %v (seq axis %d), want 2 key/value heads along axis 2", s.Input, s.Shape, s.SeqAxis)
		}
	}
	for _, want := range []string{"past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.conv_state", "past_key_values.1.recurrent_state"} {
		if !slices.Contains(names, want) {
			t.Errorf("export states %v lack %s", names, want)
		}
	}
}

// TestLlamaHybridBF16 trains a hybrid Llamba of the demo-llama teacher
// (layer 1 kept as attention) in Stage 3 under bf16: the run finishes with
// a finite loss and the kept attention trained.
func TestLlamaHybridBF16(t *testing.T) {
	tdir, err := filepath.Abs("../testdata/demo-llama/teacher")
	if err != nil {
		t.Fatal(err)
	}
	cfg, path := tinyConfig(t, "  - {kind: distill, tokens: 256}", "teacher: {path: "+tdir+"}", "student: {chunk_size: 16, attention_layers: [1]}",
		"training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 2, precision: bf16}")
	sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if r := sum.Stages[0]; !(r.LastLoss < math.Inf(1)) {
		t.Errorf("bf16 Stage 3 loss %g → %g", r.FirstLoss, r.LastLoss)
	}
	teacher, err := LoadTeacher(tdir)
	if err != nil {
		t.Fatal(err)
	}
	final, err := LoadStudent(filepath.Join(sum.RunDir, "stages", "00-distill", outputDir), teacher.Config.Sizes().Eps)
	if err != nil {
		t.Fatal(err)
	}
	if equal(final.Weights["backbone.layers.1.mixer.self_attn.o_proj.weight"], teacher.Weights["model.layers.1.self_attn.o_proj.weight"]) {
		t.Error("attention o_proj of layer 1 did not train under bf16")
	}
}
