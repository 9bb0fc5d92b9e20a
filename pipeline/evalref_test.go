package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mohawk/data"
	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// The evaluation's numbers checked against figures computed elsewhere: the
// perplexity protocol of ../shared/README.md against the figures shipped
// with the reference models, and last-word and multiple-choice scores
// against log-probabilities computed here in float64 from the full logits.
// A missing reference file fails these tests; it does not skip them.

// requireShared returns the path of a file under ../shared, failing the
// test when it is not there.
func requireShared(t *testing.T, parts ...string) string {
	t.Helper()
	root := shareddata.Root()
	if root == "" {
		t.Fatalf("../shared (the reference models and data) is missing; it must sit beside the repository")
	}
	p := filepath.Join(append([]string{root}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference file missing: %v", err)
	}
	return p
}

// metric reads one number from a reference model's metrics JSON.
func metric(t *testing.T, key string, parts ...string) float64 {
	t.Helper()
	raw, err := os.ReadFile(requireShared(t, parts...))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", filepath.Join(parts...), err)
	}
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("%s has no number %q", filepath.Join(parts...), key)
	}
	return v
}

// referenceEvalEnv opens the CPU runtime with the reference teacher
// (phi-tiny-en) and student (phimamba-tiny-en) and their tokenizer.
func referenceEvalEnv(t *testing.T) (*stages.Env, *tokenizer.Tokenizer) {
	t.Helper()
	teacher, _, err := LoadTeacher(requireShared(t, "reference", "phi-tiny-en"))
	if err != nil {
		t.Fatal(err)
	}
	student, err := LoadStudent(requireShared(t, "reference", "phimamba-tiny-en"), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(requireShared(t, "reference", "phi-tiny-en", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.Open(runtime.Defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return &stages.Env{Ctx: context.Background(), Runtime: rt, Teacher: teacher, Student: student}, tok
}

// TestReferencePerplexity runs the README's perplexity protocol (val.txt
// split on blank lines, each document tokenized and followed by the end of
// text, windows of 256+1 tokens every 256) and compares with the figures
// computed by the reference code: the teacher's over 200 windows
// (teacher_metrics.json val_ppl_fp32_seq256) and over the first 100
// (student_metrics.json teacher_ppl_100w), the student's over 100
// (student_metrics.json student_ppl_100w_authors_code, the README's 122.86).
func TestReferencePerplexity(t *testing.T) {
	env, tok := referenceEvalEnv(t)
	eos, ok := tok.SpecialID(EOSToken)
	if !ok {
		t.Fatalf("the reference tokenizer has no %s", EOSToken)
	}
	val, err := data.Tokenize(context.Background(), data.Source{Path: requireShared(t, "data", "en", "val.txt")}, tok, eos, data.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	teacherMetrics := []string{"reference", "phi-tiny-en", "teacher_metrics.json"}
	studentMetrics := []string{"reference", "phimamba-tiny-en", "student_metrics.json"}
	windows, err := data.EvalWindows(val, 256, 200)
	if err != nil {
		t.Fatal(err)
	}
	ids := windows.Int64s()
	first := tensors.FromInt64([]int64{100, 257}, ids[:len(ids)/2])
	rest := tensors.FromInt64([]int64{100, 257}, ids[len(ids)/2:])
	score := func(model string, w *tensors.Tensor) stages.PerplexityResult {
		sc, err := env.NewScorer(model)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		start := time.Now()
		r, err := sc.Perplexity(w, 8, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: perplexity %.4f over %d windows (%d tokens) in %v", model, r.Perplexity, r.Windows, r.Tokens, time.Since(start).Round(time.Millisecond))
		return r
	}
	check := func(what string, got float64, key string, file []string) {
		want := metric(t, key, file...)
		t.Logf("%s: %.4f, reference %.4f (%s), relative error %.2g", what, got, want, key, math.Abs(got-want)/want)
		if !shareddata.Close(got, want, 0, 5e-4) {
			t.Errorf("%s: perplexity %.4f, reference %.4f (%s); want within 0.05%%", what, got, want, key)
		}
	}
	a, b := score(stages.ModelTeacher, first), score(stages.ModelTeacher, rest)
	all := math.Exp((a.NLL*float64(a.Tokens) + b.NLL*float64(b.Tokens)) / float64(a.Tokens+b.Tokens))
	if want := metric(t, "val_tokens_scored", teacherMetrics...); float64(a.Tokens+b.Tokens) != want {
		t.Errorf("scored %d tokens, the reference %v", a.Tokens+b.Tokens, want)
	}
	check("teacher, 200 windows", all, "val_ppl_fp32_seq256", teacherMetrics)
	check("teacher, 100 windows", a.Perplexity, "teacher_ppl_100w", studentMetrics)
	check("student, 100 windows", score(stages.ModelStudent, first).Perplexity, "student_ppl_100w_authors_code", studentMetrics)
}
