package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mohawk/deploy"
	"mohawk/internal/shareddata"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tensors"
)

// TestAttentionLayersConfig decodes every form of student.attention_layers
// and resolves it for a student of n layers.
func TestAttentionLayersConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, override string
		n                    int
		want                 []int
		err                  string
	}{
		{name: "unset", yaml: "{}", n: 6},
		{name: "list, sorted", yaml: "{attention_layers: [3, 1]}", n: 6, want: []int{1, 3}},
		{name: "override list", yaml: "{}", override: "student.attention_layers=4,0", n: 6, want: []int{0, 4}},
		{name: "override one", yaml: "{}", override: "student.attention_layers=2,", n: 6, want: []int{2}},
		{name: "yaml one", yaml: "{attention_layers: 2}", n: 6, want: []int{2}},
		{name: "every 2", yaml: "{attention_layers: {every: 2}}", n: 6, want: []int{0, 2, 4}},
		{name: "every 1 keeps all", yaml: "{attention_layers: {every: 1}}", n: 3, want: []int{0, 1, 2}},
		{name: "fraction of 6", yaml: "{attention_layers: {fraction: 0.5}}", n: 6, want: []int{0, 2, 4}},
		{name: "fraction rounds down", yaml: "{attention_layers: {fraction: 0.43}}", n: 7, want: []int{0, 2, 4}},
		{name: "fraction 1/6", yaml: "{attention_layers: {fraction: 0.17}}", n: 6, want: []int{0}},
		// MambaInLlama's 25% of a 32-layer model: every fourth layer from 0.
		{name: "fraction MambaInLlama", yaml: "{attention_layers: {fraction: 0.25}}", n: 32, want: []int{0, 4, 8, 12, 16, 20, 24, 28}},
		{name: "out of range", yaml: "{attention_layers: [1, 6]}", n: 6, err: "student.attention_layers[1] = 6 is out of range"},
		{name: "negative", yaml: "{attention_layers: [-1]}", n: 6, err: "student.attention_layers[0] = -1"},
		{name: "duplicate", yaml: "{attention_layers: [2, 2]}", n: 6, err: "student.attention_layers[1] = 2 is listed twice"},
		{name: "every too large", yaml: "{attention_layers: {every: 7}}", n: 6, err: "student.attention_layers.every 7"},
		{name: "every negative", yaml: "{attention_layers: {every: -2}}", n: 6, err: "student.attention_layers.every -2"},
		{name: "empty fraction", yaml: "{attention_layers: {fraction: 0.05}}", n: 6, err: "rounds to no attention layer"},
		{name: "overfull fraction", yaml: "{attention_layers: {fraction: 1.5}}", n: 6, err: "student.attention_layers.fraction 1.5 must be in (0, 1]"},
		{name: "two rules", yaml: "{attention_layers: {every: 2, fraction: 0.5}}", n: 6, err: "not several"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ov []string
			if tc.override != "" {
				ov = []string{tc.override}
			}
			cfg, err := Parse([]byte("name: x\nstudent: "+tc.yaml+"\n"), "p.yaml", ov)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cfg.Student.AttentionLayers.Resolve(tc.n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("layers %v (%v), want %v", got, err, tc.want)
			}
			if !cfg.Student.TrainAttention {
				t.Error("student.train_attention defaults to false, want true")
			}
		})
	}
	hyb, err := Parse([]byte("name: x\nstudent: {attention_layers: [3, 1], train_attention: false}\n"), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ResolvedYAML(hyb)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := Parse(b, "config.resolved.yaml", nil); err != nil || !reflect.DeepEqual(back.Student, hyb.Student) {
		t.Errorf("resolved hybrid config reloads as %+v (%v), want %+v", back.Student, err, hyb.Student)
	}
	if hybridIdentity(hyb.Student) == "" || hybridIdentity(StudentConfig{TrainAttention: true}) != "" {
		t.Error("the hybrid keys must enter the run identity when set, and only then")
	}
	if _, err := Parse([]byte("name: x\n"), "p.yaml", []string{"student.attention_layers=1"}); err == nil || !strings.Contains(err.Error(), "trailing comma") {
		t.Errorf("override student.attention_layers=1: error %v, want the trailing-comma advice", err)
	}
	for _, bad := range []string{"{attention_layers: {evry: 2}}", "{attention_layers: one}", "{attention_layers: {every: 2}, train_attention: maybe}"} {
		if _, err := Parse([]byte("name: x\nstudent: "+bad+"\n"), "p.yaml", nil); err == nil || !strings.Contains(err.Error(), "attention") {
			t.Errorf("student: %s decoded without an error naming the key (%v)", bad, err)
		}
	}
}

// TestHybridStudentTransfer builds hybrid students of the demo teacher:
// the kept attention layers are the teacher's tensors bit for bit, the
// config survives a save and load, a checkpoint that disagrees with
// student.attention_layers is refused, and the student that keeps every
// layer scores exactly as the teacher does.
func TestHybridStudentTransfer(t *testing.T) {
	teacher, err := LoadTeacher(demoDir(t) + "/teacher")
	if err != nil {
		t.Fatal(err)
	}
	o := StudentConfig{AttentionLayers: AttentionLayers{Layers: []int{1}}}
	s := mohawkStudent(t, teacher, o, 1)
	for _, n := range []string{"q_proj.weight", "k_proj.bias", "v_proj.weight", "dense.weight", "dense.bias"} {
		if !equal(s.Weights["backbone.layers.1.mixer.self_attn."+n], teacher.Weights["model.layers.1.self_attn."+n]) {
			t.Errorf("attention %s of layer 1 is not the teacher's", n)
		}
	}
	if _, ok := s.Weights["backbone.layers.1.mixer.in_proj.weight"]; ok {
		t.Error("attention layer 1 has a mixer")
	}
	if _, ok := s.Weights["backbone.layers.0.mixer.in_proj.weight"]; !ok {
		t.Error("layer 0 has no mixer")
	}
	dir := t.TempDir()
	if err := SaveStudent(dir, s); err != nil {
		t.Fatal(err)
	}
	back, err := LoadStudent(dir, teacher.Config.Sizes().Eps)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Config, s.Config) {
		t.Errorf("hybrid config changed on reload: %+v vs %+v", back.Config, s.Config)
	}
	if err := checkStudentHybrid(back.Config, o, dir); err != nil {
		t.Errorf("agreeing attention layers refused: %v", err)
	}
	err = checkStudentHybrid(back.Config, StudentConfig{AttentionLayers: AttentionLayers{Every: 1}}, dir)
	if err == nil || !strings.Contains(err.Error(), "student.attention_layers") {
		t.Errorf("disagreeing attention layers: error %v, want one naming student.attention_layers", err)
	}

	keep := mohawkStudent(t, teacher, StudentConfig{AttentionLayers: AttentionLayers{Every: 1}}, 1)
	rt, err := runtime.Open(runtime.Defaults(), os.Stderr)
	if err != nil {
		strict.Unavailable(t, "needs ONNX Runtime: %v", err)
	}
	defer rt.Close()
	env := &stages.Env{Ctx: context.Background(), Runtime: stages.ORT(rt), Teacher: teacher, Student: keep, Dir: t.TempDir()}
	ids := tensors.FromInt64([]int64{2, 9}, []int64{1, 5, 9, 33, 2, 7, 7, 100, 3, 4, 50, 6, 8, 12, 90, 11, 0, 13})
	if st, te := scores(t, env, stages.ModelStudent, ids), scores(t, env, stages.ModelTeacher, ids); !equal(st, te) {
		t.Error("the student keeping every attention layer scores differently from the teacher")
	}
}

// TestHybridRun runs the whole pipeline with a hybrid student of the demo
// teacher (layer 1 kept as attention and frozen) at a tiny budget: the
// dry-run plan says what each stage does with the attention layer, Stages 1
// and 2 report distance 0 for it, the finished student still holds the
// teacher's attention bit for bit while its mixer trained, and the export
// decodes.
func TestHybridRun(t *testing.T) {
	const st = `  - {kind: orient, tokens: 256}
  - {kind: align, tokens: 256}
  - {kind: distill, tokens: 512}
  - {kind: export}`
	cfg, path := tinyConfig(t, st, "student: {chunk_size: 16, attention_layers: [1], train_attention: false}")
	var plan strings.Builder
	if _, err := Run(context.Background(), cfg, path, RunOptions{Out: &plan, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"orient    256 tokens", "skips attention layers [1]", "attention layers [1] frozen"} {
		if !strings.Contains(plan.String(), want) {
			t.Errorf("dry-run plan lacks %q:\n%s", want, plan.String())
		}
	}
	sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sum.Stages[:2] {
		if len(r.LayerAfter) != 2 || r.LayerAfter[1] != 0 || r.LayerBefore[1] != 0 || !(r.LayerAfter[0] > 0) {
			t.Errorf("%s: layer distances %v → %v; want layer 1 (attention) at 0 and layer 0 positive", r.Kind, r.LayerBefore, r.LayerAfter)
		}
	}
	teacher, err := LoadTeacher(demoDir(t) + "/teacher")
	if err != nil {
		t.Fatal(err)
	}
	final, err := LoadStudent(filepath.Join(sum.RunDir, "stages", "02-distill", outputDir), teacher.Config.Sizes().Eps)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"q_proj.weight", "v_proj.bias", "dense.weight"} {
		if !equal(final.Weights["backbone.layers.1.mixer.self_attn."+n], teacher.Weights["model.layers.1.self_attn."+n]) {
			t.Errorf("frozen attention %s changed in training", n)
		}
	}
	start := mohawkStudent(t, teacher, cfg.Student, cfg.Seed)
	if equal(final.Weights["backbone.layers.0.mixer.in_proj.weight"], start.Weights["backbone.layers.0.mixer.in_proj.weight"]) {
		t.Error("layer 0's mixer did not train")
	}
	g, err := deploy.Open(filepath.Join(sum.Stages[3].Export, "student"), runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	full, err := g.Feed([][]int64{{5, 9, 2, 44, 7, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Prefill([][]int64{{5, 9, 2}}); err != nil {
		t.Fatal(err)
	}
	var last *tensors.Tensor
	for _, id := range []int64{44, 7, 1} {
		if last, err = g.Step([]int64{id}); err != nil {
			t.Fatal(err)
		}
	}
	v := full.Shape[2]
	want := tensors.FromFloat32([]int64{1, v}, full.Float32s()[5*v:])
	shareddata.WantClose(t, "exported hybrid: prefill + decode vs full pass, last position", last, want, 1e-4)
}

// TestHybridTrainAttention checks that Stage 3 trains the kept attention
// layers under train_attention: true (the default), in float32 and bf16.
func TestHybridTrainAttention(t *testing.T) {
	teacher, err := LoadTeacher(demoDir(t) + "/teacher")
	if err != nil {
		t.Fatal(err)
	}
	for _, precision := range []string{"fp32", "bf16"} {
		t.Run(precision, func(t *testing.T) {
			cfg, path := tinyConfig(t, "  - {kind: distill, tokens: 256}", "student: {chunk_size: 16, attention_layers: {every: 2}}",
				"training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 2, precision: "+precision+"}")
			sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			final, err := LoadStudent(filepath.Join(sum.RunDir, "stages", "00-distill", outputDir), teacher.Config.Sizes().Eps)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(final.Config.Sizes().AttnLayers) != "[0]" {
				t.Fatalf("attention layers %v, want [0] (every 2 of 2 layers)", final.Config.Sizes().AttnLayers)
			}
			if equal(final.Weights["backbone.layers.0.mixer.self_attn.q_proj.weight"], teacher.Weights["model.layers.0.self_attn.q_proj.weight"]) {
				t.Error("attention q_proj of layer 0 did not train under train_attention: true")
			}
		})
	}
}

// TestHybridAblate runs one ablation arm with a hybrid student given as an
// override, as `pipeline ablate FILE --budget N student.attention_layers=1`
// does (a single layer needs the trailing comma: "1" alone reads as a
// boolean, which is refused with that advice).
func TestHybridAblate(t *testing.T) {
	_, path := tinyConfig(t, "  - {kind: eval}")
	cfg, err := Load(path, []string{"student.attention_layers=1,"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Ablate(context.Background(), cfg, path, 512, []string{"s23"}, PeerLRs, RunOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	report := string(readBytes(t, out))
	if !strings.Contains(report, "attention layers [1] kept from the teacher (train_attention true)") || !strings.Contains(report, "| Stages 2–3 |") {
		t.Errorf("ablation report does not describe the hybrid arm:\n%s", report)
	}
	s, err := LoadStudent(filepath.Join(cfg.Resolve(cfg.OutputDir), cfg.Name+"-s23-512", "stages", "01-distill", outputDir), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Config.Sizes().AttnLayers) != "[1]" {
		t.Errorf("the arm's student has attention layers %v, want [1]", s.Config.Sizes().AttnLayers)
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
