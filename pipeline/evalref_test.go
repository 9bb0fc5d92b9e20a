package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
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

// metric reads one number from a reference model's metrics JSON.
func metric(t *testing.T, key string, parts ...string) float64 {
	t.Helper()
	raw, err := os.ReadFile(shareddata.Path(t, parts...))
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
	teacher, err := LoadTeacher(shareddata.Path(t, "reference", "phi-tiny-en"))
	if err != nil {
		t.Fatal(err)
	}
	student, err := LoadStudent(shareddata.Path(t, "reference", "phimamba-tiny-en"), 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(shareddata.Path(t, "reference", "phi-tiny-en", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.Open(runtime.Defaults(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return &stages.Env{Ctx: context.Background(), Runtime: stages.ORT(rt), Teacher: teacher, Student: student}, tok
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
	eos, ok := tok.SpecialID(tokenizer.DefaultEndOfText)
	if !ok {
		t.Fatalf("the reference tokenizer has no %s", tokenizer.DefaultEndOfText)
	}
	val, err := data.Tokenize(context.Background(), data.Source{Path: shareddata.Path(t, "data", "en", "val.txt")}, tok, eos, data.StreamOptions{})
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

// handScorer computes continuation log-likelihoods of the reference teacher
// independently of stages.Scorer: the full logits of its own graph, and a
// log-softmax in float64 here.
type handScorer struct {
	t    *testing.T
	tok  *tokenizer.Tokenizer
	sess stages.Session
}

func newHandScorer(t *testing.T, env *stages.Env, tok *tokenizer.Tokenizer) *handScorer {
	t.Helper()
	g := graphs.New("hand_logits")
	if err := graphs.Try(func() {
		ids := g.Input("input_ids", tensors.Int64, graphs.S(1, "seq"))
		p := &layers.Frozen{G: g, Tensors: env.Teacher.Weights, DType: tensors.Float32}
		g.Output("logits", env.Teacher.Config.Forward(p, ids, family.TeacherOptions{}).Logits)
	}); err != nil {
		t.Fatal(err)
	}
	sess, err := env.Session(g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return &handScorer{t: t, tok: tok, sess: sess}
}

// continuation is Σ log p(token | prefix) over the tokens of cont after
// ctx and whether each of them is the most likely next token, the request
// encoded as lm-evaluation-harness does: white space ending ctx moved to
// the front of cont, the pair encoded whole and the context's encoding
// length deciding where the continuation starts, an empty context being
// the end-of-text token.
func (h *handScorer) continuation(ctx, cont string) (ll float64, greedy bool) {
	if trimmed := strings.TrimRightFunc(ctx, unicode.IsSpace); trimmed != ctx {
		ctx, cont = trimmed, ctx[len(trimmed):]+cont
	}
	whole := h.tok.Encode(ctx + cont)
	nc := len(h.tok.Encode(ctx))
	if ctx == "" {
		eot, ok := h.tok.SpecialID(tokenizer.DefaultEndOfText)
		if !ok {
			h.t.Fatalf("the tokenizer has no %s", tokenizer.DefaultEndOfText)
		}
		whole, nc = append([]int64{eot}, h.tok.Encode(cont)...), 1
	}
	out, err := h.sess.Run([]*tensors.Tensor{tensors.FromInt64([]int64{1, int64(len(whole))}, whole)})
	if err != nil {
		h.t.Fatal(err)
	}
	logits := out[0].AsFloat64().Float64s()
	vocab := len(logits) / len(whole)
	greedy = true
	for pos := nc - 1; pos < len(whole)-1; pos++ {
		row := logits[pos*vocab : (pos+1)*vocab]
		best, top := 0, row[0]
		for i, v := range row {
			if v > top {
				best, top = i, v
			}
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(v - top)
		}
		next := whole[pos+1]
		ll += row[next] - top - math.Log(sum)
		greedy = greedy && int64(best) == next
	}
	return ll, greedy
}

// TestScoresByHand checks last-word accuracy and perplexity and
// multiple-choice acc and acc_norm of the scorer on small tasks against
// the same figures computed by hand from handScorer's log-probabilities.
func TestScoresByHand(t *testing.T) {
	env, tok := referenceEvalEnv(t)
	hand := newHandScorer(t, env, tok)
	sc, err := env.NewScorer(stages.ModelTeacher)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	words := []data.Completion{
		{Context: "One, two, three,", Target: " four"},
		{Context: "She opened the door and walked into the", Target: " room"},
		{Context: "The weather today is", Target: " purple"},
	}
	hits, sum := 0, 0.0
	for _, w := range words {
		ll, greedy := hand.continuation(w.Context, w.Target)
		t.Logf("%q → %q: log-likelihood %.4f, greedy %v", w.Context, w.Target, ll, greedy)
		sum += ll
		if greedy {
			hits++
		}
	}
	lw, err := sc.LastWord(tok, words)
	if err != nil {
		t.Fatal(err)
	}
	wantAcc, wantPPL := float64(hits)/float64(len(words)), math.Exp(-sum/float64(len(words)))
	t.Logf("last word: acc %.4f (by hand %.4f), ppl %.6g (by hand %.6g)", lw.Accuracy, wantAcc, lw.Perplexity, wantPPL)
	if lw.Accuracy != wantAcc || !shareddata.Close(lw.Perplexity, wantPPL, 0, 1e-4) || lw.Examples != len(words) {
		t.Errorf("last word: %+v, by hand acc %v ppl %v over %d", lw, wantAcc, wantPPL, len(words))
	}

	items := []data.MultipleChoice{
		{Context: "The sky on a clear day is", Choices: []string{"blue", "made of very old green cheese"}, Gold: 1},
		{Context: "Question: What do you drink when you are thirsty?\nAnswer:", Choices: []string{"a glass of cold water", "rocks"}, Gold: 0},
	}
	var acc, accNorm float64
	for _, it := range items {
		best, bestNorm := -1, -1
		var top, topNorm float64
		for i, c := range it.Choices {
			ll, _ := hand.continuation(it.Context, " "+c)
			norm := ll / float64(len([]rune(c)))
			t.Logf("%q + %q: log-likelihood %.4f, per character %.4f", it.Context, c, ll, norm)
			if best < 0 || ll > top {
				best, top = i, ll
			}
			if bestNorm < 0 || norm > topNorm {
				bestNorm, topNorm = i, norm
			}
		}
		if best == it.Gold {
			acc++
		}
		if bestNorm == it.Gold {
			accNorm++
		}
	}
	acc, accNorm = acc/float64(len(items)), accNorm/float64(len(items))
	mc, err := sc.MultipleChoice(tok, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("multiple choice: %s (by hand %.4f, %.4f)", metricsLine(&mc), acc, accNorm)
	if mc.Acc != acc || mc.AccNorm == nil || *mc.AccNorm != accNorm || mc.Examples != len(items) {
		t.Errorf("multiple choice: %+v, by hand acc %v acc_norm %v over %d", mc, acc, accNorm, len(items))
	}
}
