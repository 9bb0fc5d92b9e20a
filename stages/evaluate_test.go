package stages

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"mohawk/data"
	"mohawk/tensors"
)

// byteEncoder encodes each byte of a string as one id below 50.
type byteEncoder struct{}

func (byteEncoder) Encode(s string) []int64 {
	ids := make([]int64, len(s))
	for i := range len(s) {
		ids[i] = int64(s[i]) % 50
	}
	return ids
}

// fakeContinuation is what the fake scorer gives cont after ctx, computed
// from the strings alone.
func fakeContinuation(ctx, cont string) (ll float64, greedy bool) {
	greedy = true
	for _, id := range (byteEncoder{}).Encode(cont) {
		ll += float64(fakeLogProb(id))
		greedy = greedy && fakeGreedy(id)
	}
	return ll, greedy
}

func newTinyScorer(t *testing.T, model string) *Scorer {
	t.Helper()
	f := newFake(t, 1, 1, 0, 0)
	withTinyModels(f)
	sc, err := f.env.NewScorer(model)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	return sc
}

// TestPerplexityBatchesEveryWindow scores 5 windows in batches of 2: every
// token of every window counts once.
func TestPerplexityBatchesEveryWindow(t *testing.T) {
	t.Parallel()
	const n, s = 5, 6
	ids := make([]int64, n*(s+1))
	for i := range ids {
		ids[i] = int64(i*11) % 50
	}
	nll := 0.0
	for r := range n {
		for _, id := range ids[r*(s+1)+1 : (r+1)*(s+1)] {
			nll -= float64(fakeLogProb(id))
		}
	}
	nll /= n * s
	for _, model := range []string{ModelTeacher, ModelStudent} {
		sc := newTinyScorer(t, model)
		bar := &countBar{}
		got, err := sc.Perplexity(tensors.FromInt64([]int64{n, s + 1}, ids), 2, bar)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tokens != n*s || got.Windows != n || !(math.Abs(got.NLL-nll) <= 1e-6) || !(math.Abs(got.Perplexity-math.Exp(nll)) <= 1e-5) {
			t.Errorf("%s: %+v, want NLL %g over %d tokens", model, got, nll, n*s)
		}
		if bar.last != n {
			t.Errorf("%s: progress reached %d of %d windows", model, bar.last, n)
		}
	}
	sc := newTinyScorer(t, ModelStudent)
	if _, err := sc.Perplexity(tensors.FromInt64([]int64{0, s + 1}, nil), 2, nil); err == nil {
		t.Error("no windows scored without an error")
	}
}

type countBar struct{ last int }

func (b *countBar) Set(step int, _ string) { b.last = step }
func (b *countBar) Done()                  {}

// TestLastWordAndMultipleChoice checks that only the continuation's tokens
// are scored, and how acc, acc_norm and the errors come out.
func TestLastWordAndMultipleChoice(t *testing.T) {
	t.Parallel()
	sc := newTinyScorer(t, ModelStudent)
	ex := []data.Completion{{Context: "the cat sat on the", Target: " mat"}, {Context: "a b", Target: " c"}, {Context: "xy", Target: " zz"}}
	hits, ll := 0, 0.0
	for _, c := range ex {
		l, g := fakeContinuation(c.Context, c.Target)
		ll += l
		if g {
			hits++
		}
	}
	got, err := sc.LastWord(byteEncoder{}, ex)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(hits) / 3; got.Accuracy != want || got.Examples != 3 || !(math.Abs(got.Perplexity-math.Exp(-ll/3)) <= 1e-6*got.Perplexity) {
		t.Errorf("last word: %+v, want accuracy %g and perplexity %g", got, want, math.Exp(-ll/3))
	}
	if _, err := sc.LastWord(byteEncoder{}, nil); err == nil {
		t.Error("no last-word examples scored without an error")
	}
	if _, err := sc.LastWord(byteEncoder{}, []data.Completion{{Context: "abc", Target: ""}}); err == nil || !strings.Contains(err.Error(), "adds no tokens") {
		t.Errorf("empty continuation: %v", err)
	}

	items := []data.MultipleChoice{
		{Context: "pick", Choices: []string{"aaa", "b", "cc"}, Gold: 0},
		{Context: "pick", Choices: []string{"aaa", "b", "cc"}, Gold: 0},
		{Context: "pick", Choices: []string{"aaa", "b", "cc"}, Gold: 0},
	}
	var acc, accNorm float64
	for i := range items {
		var lls []float64
		for _, r := range items[i].Requests() {
			l, _ := fakeContinuation(r.Context, r.Continuation)
			lls = append(lls, l)
		}
		if i < 2 { // two questions the fake gets right, one it gets wrong
			items[i].Gold = slices.Index(lls, slices.Max(lls))
		} else {
			items[i].Gold = slices.Index(lls, slices.Min(lls))
		}
		a, an := items[i].Score(lls)
		acc, accNorm = acc+b2f(a), accNorm+b2f(an)
	}
	if acc != 2 {
		t.Fatalf("the fake gets %g of the 3 multiple-choice questions right, want 2", acc)
	}
	mc, err := sc.MultipleChoice(byteEncoder{}, items, &countBar{})
	if err != nil {
		t.Fatal(err)
	}
	if mc.Acc != acc/3 || mc.AccNorm == nil || *mc.AccNorm != accNorm/3 || mc.Examples != 3 {
		t.Errorf("multiple choice: %+v, want acc %g, acc_norm %g", mc, acc/3, accNorm/3)
	}
	if _, err := sc.MultipleChoice(byteEncoder{}, nil, nil); err == nil {
		t.Error("no multiple-choice items scored without an error")
	}
	bad := []data.MultipleChoice{{Context: "q", Choices: []string{"a", ""}, Contexts: []string{"x", "y"}, Continuation: ""}}
	if _, err := sc.MultipleChoice(byteEncoder{}, bad, nil); err == nil || !strings.Contains(err.Error(), "item 0: request 0: continuation") {
		t.Errorf("empty continuation: %v", err)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestNewScorerRejectsUnknownModels checks the error of a bad model name.
func TestNewScorerRejectsUnknownModels(t *testing.T) {
	t.Parallel()
	f := newFake(t, 1, 1, 0, 0)
	withTinyModels(f)
	if _, err := f.env.NewScorer("tutor"); err == nil || !strings.Contains(err.Error(), "unknown model tutor") {
		t.Errorf("NewScorer(tutor): %v", err)
	}
}

// cancelBar cancels its context when progress first reaches a step.
type cancelBar struct {
	countBar
	cancel func()
}

func (b *cancelBar) Set(step int, s string) {
	b.countBar.Set(step, s)
	b.cancel()
}

// TestScorerStopsWhenCancelled: once the Env's context is done, the
// scorer's loops run no further batch and return the context's error (a
// SIGINT/SIGTERM during eval), in perplexity and in the task scores.
func TestScorerStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	f := newFake(t, 1, 1, 0, 0)
	withTinyModels(f)
	ctx, cancel := context.WithCancel(context.Background())
	f.env.Ctx = ctx
	sc, err := f.env.NewScorer(ModelStudent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sc.Close)
	bar := &cancelBar{cancel: cancel}
	_, err = sc.Perplexity(tensors.FromInt64([]int64{6, 4}, make([]int64, 24)), 2, bar)
	if !errors.Is(err, context.Canceled) || bar.last != 2 {
		t.Errorf("cancelled after the first batch of 2: error %v, progress %d; want context.Canceled at 2", err, bar.last)
	}
	if _, err := sc.LastWord(byteEncoder{}, []data.Completion{{Context: "the cat", Target: " sat"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("LastWord after the cancel: %v", err)
	}
}

// bosEncoder is byteEncoder behind a beginning-of-sequence token (49), the
// way a Llama-3 tokenizer adds <|begin_of_text|>; 49 is also the prefix.
type bosEncoder struct{ byteEncoder }

func (e bosEncoder) Encode(s string) []int64          { return append([]int64{49}, e.byteEncoder.Encode(s)...) }
func (e bosEncoder) EncodeNoSpecial(s string) []int64 { return e.byteEncoder.Encode(s) }
func (bosEncoder) Prefix() int64                      { return 49 }

// TestEmptyContextPrefix: a continuation without context is scored after
// the prefix token, encoded without special tokens (no second BOS), and
// when its own first token is the prefix, that token becomes the context,
// as lm-evaluation-harness does.
func TestEmptyContextPrefix(t *testing.T) {
	t.Parallel()
	sc := newTinyScorer(t, ModelStudent)
	for _, tc := range []struct{ cont, scored string }{
		{"ab", "ab"},
		{"1ab", "ab"}, // '1' is id 49, the prefix
	} {
		want, _ := fakeContinuation("", tc.scored)
		got, err := sc.LastWord(bosEncoder{}, []data.Completion{{Context: "", Target: tc.cont}})
		if err != nil {
			t.Fatal(err)
		}
		if !(math.Abs(got.Perplexity-math.Exp(-want)) <= 1e-6*got.Perplexity) {
			t.Errorf("continuation %q: perplexity %g, want %g (%q scored)", tc.cont, got.Perplexity, math.Exp(-want), tc.scored)
		}
	}
}
