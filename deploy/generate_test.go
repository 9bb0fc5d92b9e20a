package deploy

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/tokenizer"
)

// TestGenerate generates greedily from both models: the streamed pieces
// join to the returned text, a second run repeats it, generation stops at
// the end-of-text id and when the context is cancelled.
func TestGenerate(t *testing.T) {
	for _, m := range refModels(t) {
		t.Run(m.kind, func(t *testing.T) {
			g := open(t, m.folder(t, Options{}))
			const prompt = "Once upon a time"
			var pieces []string
			text, err := g.Generate(context.Background(), prompt, 24, SamplingOptions{}, func(s string) { pieces = append(pieces, s) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s greedy: %q", m.kind, text)
			if strings.Join(pieces, "") != text || text == "" {
				t.Errorf("streamed %q, returned %q", pieces, text)
			}
			again, err := g.Generate(context.Background(), prompt, 24, SamplingOptions{}, nil)
			if err != nil || again != text {
				t.Errorf("second greedy run gave %q (%v), first %q", again, err, text)
			}
			sampled, err := g.Generate(context.Background(), prompt, 24, SamplingOptions{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 7}, nil)
			if err != nil || sampled == "" {
				t.Errorf("sampling gave %q (%v)", sampled, err)
			}

			// Make the first greedy token the end-of-text id: nothing is generated.
			logits, err := g.Prefill([][]int64{g.Tokenizer().Encode(prompt)})
			if err != nil {
				t.Fatal(err)
			}
			greedy, _ := NewSampler(SamplingOptions{})
			first := greedy.Sample(logits.Float32s())
			eos := g.genai.Model.EOS
			g.genai.Model.EOS = first
			stopped, err := g.Generate(context.Background(), prompt, 24, SamplingOptions{}, func(string) { t.Error("a token was streamed after end-of-text") })
			g.genai.Model.EOS = eos
			if err != nil || stopped != "" {
				t.Errorf("generation did not stop at end-of-text: %q (%v)", stopped, err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			n := 0
			_, err = g.Generate(ctx, prompt, 24, SamplingOptions{}, func(string) {
				if n++; n == 3 {
					cancel()
				}
			})
			if !errors.Is(err, context.Canceled) || n != 3 {
				t.Errorf("after cancelling at the third piece: %d pieces, error %v", n, err)
			}
		})
	}
}

// TestGeneratorErrors checks misuse of Prefill, Step and Feed.
func TestGeneratorErrors(t *testing.T) {
	g := open(t, ref(t, KindStudent).folder(t, Options{}))
	if _, err := g.Step([]int64{1}); err == nil || !strings.Contains(err.Error(), "step before prefill") {
		t.Errorf("Step without a context: %v", err)
	}
	for _, tc := range []struct {
		name string
		ids  [][]int64
		want string
	}{
		{"empty", nil, "no tokens"},
		{"ragged with an empty row", [][]int64{{1, 2}, {}}, "sequence 1: "},
		{"out of vocabulary", [][]int64{{1, 8192}}, "outside the vocabulary"},
		{"negative", [][]int64{{-1}}, "outside the vocabulary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := g.Prefill(tc.ids); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := g.Prefill([][]int64{{1, 2}, {3, 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Step([]int64{5}); err == nil || !strings.Contains(err.Error(), "the context holds 2") {
		t.Errorf("Step with a different batch: %v", err)
	}
	if _, err := g.Feed([][]int64{{1, 2}, {3}}); err == nil || !strings.Contains(err.Error(), "equal lengths") {
		t.Errorf("Feed of ragged rows: %v", err)
	}
	teacher := open(t, ref(t, KindTeacher).folder(t, Options{}))
	if _, err := teacher.Prefill([][]int64{{1, 2}, {3}}); err == nil || !strings.Contains(err.Error(), "no attention mask") {
		t.Errorf("teacher Prefill of ragged rows: %v", err)
	}
	if text, err := g.Generate(context.Background(), "The cat", -1, SamplingOptions{}, nil); err == nil || text != "" || !strings.Contains(err.Error(), "-1 new tokens") {
		t.Errorf("Generate of -1 new tokens: %q, %v", text, err)
	}
	if _, err := Open(t.TempDir(), testRuntime); err == nil || !strings.Contains(err.Error(), ManifestFile+" is missing") {
		t.Errorf("Open of an empty folder: %v", err)
	}
}

// TestTextStream feeds the ids of text with multi-byte characters one by
// one: pieces hold no U+FFFD, some characters span tokens, and the pieces
// join to the text.
func TestTextStream(t *testing.T) {
	t.Parallel()
	tok, err := tokenizer.Load(shareddata.Path(t, "reference", "phi-tiny-en", TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		"naïve café — 日本語の文章 ☕ 🙂!",
		"plain ascii",
		"🙂🙂🙂 ünïcödé ∑∫√",
	} {
		t.Run(text, func(t *testing.T) {
			t.Parallel()
			s := textStream{tok: tok}
			var pieces []string
			held := 0
			for _, id := range tok.Encode(text) {
				p, err := s.add(id)
				if err != nil {
					t.Fatal(err)
				}
				if p == "" {
					held++
				}
				pieces = append(pieces, p)
			}
			pieces = append(pieces, s.flush())
			for _, p := range pieces {
				if strings.ContainsRune(p, '\uFFFD') {
					t.Errorf("piece %q holds a replacement character", p)
				}
			}
			if got := strings.Join(pieces, ""); got != text {
				t.Errorf("pieces join to %q, want %q", got, text)
			}
			if nonASCII := strings.IndexFunc(text, func(r rune) bool { return r > 127 }) >= 0; nonASCII && held == 0 {
				t.Errorf("no token was held back; the test text should split characters across tokens")
			}
		})
	}
}

// TestSampler checks greedy choice, top-k and top-p truncation, seeded
// repeatability and the sampled frequencies.
func TestSampler(t *testing.T) {
	t.Parallel()
	logp := func(ps ...float64) []float32 {
		out := make([]float32, len(ps))
		for i, p := range ps {
			out[i] = float32(math.Log(p))
		}
		return out
	}
	probs := logp(0.1, 0.5, 0.2, 0.15, 0.05)
	for _, tc := range []struct {
		name string
		o    SamplingOptions
		want []float64 // expected frequency per id
	}{
		{"greedy", SamplingOptions{}, []float64{0, 1, 0, 0, 0}},
		{"top-k 1", SamplingOptions{Temperature: 5, TopK: 1}, []float64{0, 1, 0, 0, 0}},
		{"temperature 1", SamplingOptions{Temperature: 1, Seed: 1}, []float64{0.1, 0.5, 0.2, 0.15, 0.05}},
		{"top-k 2", SamplingOptions{Temperature: 1, TopK: 2, Seed: 2}, []float64{0, 0.5 / 0.7, 0.2 / 0.7, 0, 0}},
		{"top-p 0.8", SamplingOptions{Temperature: 1, TopP: 0.8, Seed: 3}, []float64{0, 0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0}},
		{"top-p 0.45", SamplingOptions{Temperature: 1, TopP: 0.45, Seed: 4}, []float64{0, 1, 0, 0, 0}},
		{"cold", SamplingOptions{Temperature: 0.25, Seed: 5}, softmaxPow([]float64{0.1, 0.5, 0.2, 0.15, 0.05}, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 40000
			s, err := NewSampler(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			counts := make([]float64, len(probs))
			var first []int64
			for i := 0; i < n; i++ {
				id := s.Sample(probs)
				counts[id]++
				if i < 20 {
					first = append(first, id)
				}
			}
			for id, c := range counts {
				if f := c / n; !(math.Abs(f-tc.want[id]) <= 0.01) {
					t.Errorf("id %d drawn with frequency %.4f, want %.4f", id, f, tc.want[id])
				}
			}
			s2, _ := NewSampler(tc.o)
			for i, id := range first {
				if got := s2.Sample(probs); got != id {
					t.Fatalf("draw %d: a sampler with the same seed gave %d, the first %d", i, got, id)
				}
			}
		})
	}
	for _, o := range []SamplingOptions{{Temperature: -1}, {TopK: -2}, {TopP: 1.5}, {Temperature: math.NaN()}} {
		if _, err := NewSampler(o); err == nil {
			t.Errorf("NewSampler(%+v) accepted bad options", o)
		}
	}
}

// softmaxPow is p^k renormalised (sampling at temperature 1/k).
func softmaxPow(p []float64, k float64) []float64 {
	out := make([]float64, len(p))
	total := 0.0
	for i, x := range p {
		out[i] = math.Pow(x, k)
		total += out[i]
	}
	for i := range out {
		out[i] /= total
	}
	return out
}

// TestRaggedPrefill prefills a student with rows of different lengths, then
// steps them together: every row's logits equal those of the row run alone.
func TestRaggedPrefill(t *testing.T) {
	m := ref(t, KindStudent)
	dir := m.folder(t, Options{})
	batch, alone := open(t, dir), open(t, dir)
	vocab := batch.VocabSize()
	all := rows(m.ids, 0, int(m.ids.Shape[1]))
	lengths := []int{3, 7, 5}
	prompts := make([][]int64, len(lengths))
	for i, n := range lengths {
		prompts[i] = all[i%len(all)][:n]
	}
	next := func(step int) []int64 { // the tokens fed at a step, per row
		out := make([]int64, len(prompts))
		for i := range out {
			out[i] = int64((7*i + 3*step + 1) % vocab)
		}
		return out
	}
	got := [][]float32{}
	l, err := batch.Prefill(prompts)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Context() != 7 {
		t.Errorf("Context %d after ragged prefill, want the longest row, 7", batch.Context())
	}
	got = append(got, l.Float32s())
	for s := 0; s < 4; s++ {
		if l, err = batch.Step(next(s)); err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Float32s())
	}
	v := vocab
	worst := 0.0
	for i, p := range prompts {
		want, err := alone.Prefill([][]int64{p})
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s < 5; s++ {
			if s > 0 {
				if want, err = alone.Step([]int64{next(s - 1)[i]}); err != nil {
					t.Fatal(err)
				}
			}
			for k, w := range want.Float32s() {
				worst = math.Max(worst, math.Abs(float64(got[s][i*v+k]-w)))
			}
		}
	}
	t.Logf("ragged batch vs each row alone, prefill and 4 steps: max |Δ logits| = %.3g", worst)
	if !(worst <= 1e-4) {
		t.Errorf("max |Δ logits| = %.3g", worst)
	}
}
