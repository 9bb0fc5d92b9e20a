package pipeline

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tensors"
)

func phiTinyTeacher(t *testing.T) *stages.Teacher {
	t.Helper()
	teacher, err := LoadTeacher(shareddata.Path(t, "reference", "phi-tiny-en"))
	if err != nil {
		t.Fatal(err)
	}
	return teacher
}

// studentFor is the pure Phi-Mamba student StudentConfigFor derives from
// a Phi teacher.
func studentFor(t *testing.T, teacher *stages.Teacher) phimamba.Config {
	t.Helper()
	c, err := StudentConfigFor(teacher.Config, StudentConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return c.(phimamba.Config)
}

// TestStudentFromTeacher builds the student of phi-tiny-en, checks its
// parameter count against the formula and the transferred and initialised
// weights, saves it in the authors' layout, reloads it and compares logits.
func TestStudentFromTeacher(t *testing.T) {
	teacher := phiTinyTeacher(t)
	c := studentFor(t, teacher)
	s, err := NewStudent(teacher, c, InitMohawk, 1)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, w := range s.Weights {
		n += w.NumElements()
	}
	d, l, v, f := int64(256), int64(6), int64(8192), int64(1024)
	// in_proj (2d + 2·H·N + H)·d, z_bias d, conv (d + 2·H·N)·(4+1), D H, out_proj d², MLP, LN.
	h, nst := int64(8), int64(32)
	mixer := (2*d+2*h*nst+h)*d + d + (d+2*h*nst)*5 + h + d*d
	formula := 2*v*d + v + 2*d + l*(mixer+(f*d+f+d*f+d)+2*d)
	t.Logf("student of phi-tiny-en: %d parameters (teacher %d)", n, teacher.Config.NumParams())
	if n != formula || n != c.NumParams() {
		t.Errorf("parameter count %d, formula %d, Config.NumParams %d", n, formula, c.NumParams())
	}
	// Transferred tensors equal the teacher's; mixer initialisation as specified.
	if !equal(s.Weights["backbone.layers.3.mlp.fc2.weight"], teacher.Weights["model.layers.3.mlp.fc2.weight"]) ||
		!equal(s.Weights["lm_head.bias"], teacher.Weights["lm_head.bias"]) {
		t.Error("MLP/head weights were not copied from the teacher")
	}
	conv := s.Weights["backbone.layers.0.mixer.conv1d.weight"].Float32s()
	if conv[3] != 1 || conv[0] != 0 || conv[7] != 1 {
		t.Errorf("conv taps %v…, want identity [0 0 0 1]", conv[:8])
	}
	if zb := s.Weights["backbone.layers.0.mixer.z_bias"].Float32s()[0]; zb != GateBias {
		t.Errorf("z_bias %v, want %v", zb, GateBias)
	}
	// z rows of in_proj are zero: rows ConvChannels .. ConvChannels+DInner.
	ip := s.Weights["backbone.layers.0.mixer.in_proj.weight"].Float32s()
	for r := c.ConvChannels(); r < c.ConvChannels()+c.DInner(); r += 37 {
		if ip[r*d] != 0 {
			t.Fatalf("in_proj z row %d is not zero", r)
		}
	}

	dir := t.TempDir()
	if err := SaveStudent(dir, s); err != nil {
		t.Fatal(err)
	}
	back, err := LoadStudent(dir, teacher.Config.Sizes().Eps)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.Open(runtime.Defaults(), os.Stderr)
	if err != nil {
		strict.Unavailable(t, "needs ONNX Runtime: %v", err)
	}
	defer rt.Close()
	ids := shareddata.Tensors(t, "reference", "phi-tiny-en", "reference.safetensors")["input_ids"]
	logits := func(st *stages.Student) *tensors.Tensor {
		return scores(t, &stages.Env{Ctx: context.Background(), Runtime: stages.ORT(rt), Student: st, Dir: t.TempDir()}, stages.ModelStudent, ids)
	}
	if !equal(logits(s), logits(back)) {
		t.Error("the reloaded student scores differently")
	}
	if !reflect.DeepEqual(back.Config, s.Config) {
		t.Errorf("config changed on reload: %+v vs %+v", back.Config, s.Config)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Error(err)
	}
}

func TestAttentionInit(t *testing.T) {
	teacher := phiTinyTeacher(t)
	c := studentFor(t, teacher)
	s, err := NewStudent(teacher, c, InitAttention, 1)
	if err != nil {
		t.Fatal(err)
	}
	ip := s.Weights[phimamba.LayerPrefix(2)+".mixer.in_proj.weight"].Float32s()
	d := int(c.DModel)
	for i, name := range []string{"v_proj", "k_proj", "q_proj"} {
		src := teacher.Weights["model.layers.2.self_attn."+name+".weight"].Float32s()
		for j := 0; j < d*d; j += 97 {
			if ip[i*d*d+j] != src[j] {
				t.Fatalf("in_proj block %d (%s) differs at %d", i, name, j)
			}
		}
	}
	if !equal(s.Weights[phimamba.LayerPrefix(2)+".mixer.out_proj.weight"], teacher.Weights["model.layers.2.self_attn.dense.weight"]) {
		t.Error("out_proj is not the teacher's dense")
	}
}

// scores runs env's scorer of model (stages.ModelTeacher or ModelStudent)
// on ids and returns each next token's log-probability.
func scores(t *testing.T, env *stages.Env, model string, ids *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	sc, err := env.NewScorer(model)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	lp, _, err := sc.Score(ids)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

func equal(a, b *tensors.Tensor) bool {
	x, y := a.AsFloat32().Float32s(), b.AsFloat32().Float32s()
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
			return false
		}
	}
	return true
}
