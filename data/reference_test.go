package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/tokenizer"
)

// TestReferenceCounts tokenizes the real corpus with the Phi tokenizer and
// checks the known token and document counts.
func TestReferenceCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file         string
		tokens, docs int
	}{
		{"val.txt", 185920, 1400},
		{"train.txt", 3565351, 26630},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			s := referenceStreamOf(t, tt.file)
			if s.Len() != tt.tokens || s.NumDocs() != tt.docs || s.wide {
				t.Fatalf("%d tokens in %d documents (wide %v), want %d in %d", s.Len(), s.NumDocs(), s.wide, tt.tokens, tt.docs)
			}
			raw, err := os.ReadFile(shareddata.Path(t, "data", "en", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			docs := strings.Split(string(raw), "\n\n")
			tok, eos := referenceTokenizer(t)
			for _, i := range []int{0, len(docs) / 2, len(docs) - 1} {
				want := append(tok.Encode(docs[i]), eos)
				d := s.Docs()
				if got := s.Window(d[i], d[i+1]-d[i]); !slices.Equal(got, want) {
					t.Fatalf("document %d: %v..., want %v...", i, got[:min(8, len(got))], want[:min(8, len(want))])
				}
			}
		})
	}
}

// TestReferenceEvalWindows checks the perplexity protocol on val.txt: 200
// windows of 257 tokens, window k starting at token 256·k, consecutive
// windows sharing one token.
func TestReferenceEvalWindows(t *testing.T) {
	t.Parallel()
	s := referenceStreamOf(t, "val.txt")
	w, err := EvalWindows(s, 256, 200)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Shape, []int64{200, 257}) {
		t.Fatalf("shape %v", w.Shape)
	}
	v := w.Int64s()
	row := func(k int) []int64 { return v[k*257 : (k+1)*257] }
	for k := range 200 {
		if !slices.Equal(row(k), s.Window(256*k, 257)) {
			t.Fatalf("window %d does not start at token %d", k, 256*k)
		}
		if k < 199 && row(k)[256] != row(k + 1)[0] {
			t.Fatalf("window %d's last token %d is not window %d's first %d", k, row(k)[256], k+1, row(k + 1)[0])
		}
	}
	if _, err := EvalWindows(s, 256, 727); err == nil || !strings.Contains(err.Error(), "185920 tokens hold 726 windows of 256+1 tokens, not 727") {
		t.Fatalf("727 windows: error %v", err)
	}
}

// TestReferenceCache round-trips val.txt through the token cache.
func TestReferenceCache(t *testing.T) {
	t.Parallel()
	want := referenceStreamOf(t, "val.txt")
	tok, eos := referenceTokenizer(t)
	opts := StreamOptions{CacheDir: t.TempDir(), TokenizerID: "phi-tiny-en"}
	src := Source{Path: shareddata.Path(t, "data", "en", "val.txt")}
	for i, cached := range []bool{false, true} {
		s, err := Tokenize(context.Background(), src, tok, eos, opts)
		if err != nil {
			t.Fatal(err)
		}
		if s.Cached() != cached {
			t.Fatalf("call %d: Cached %v", i, s.Cached())
		}
		sameStream(t, want, s)
	}
}

// TestReferenceTraining splits train.txt and samples from it across an
// epoch boundary, reproducibly.
func TestReferenceTraining(t *testing.T) {
	t.Parallel()
	s := referenceStreamOf(t, "train.txt")
	train, val, err := SplitTrainVal(s, 0.01, 3)
	if err != nil {
		t.Fatal(err)
	}
	if val.NumDocs() != 266 || train.NumDocs() != 26630-266 || train.Len()+val.Len() != s.Len() {
		t.Fatalf("%d+%d documents, %d+%d tokens", train.NumDocs(), val.NumDocs(), train.Len(), val.Len())
	}
	train2, val2, _ := SplitTrainVal(s, 0.01, 3)
	sameStream(t, train, train2)
	sameStream(t, val, val2)

	a, err := NewSampler(train, 256, 8, 11)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSampler(train, 256, 8, 11)
	per := a.BatchesPerEpoch()
	if want := int64((train.Len()/256 - 1) / 8); per != want {
		t.Fatalf("BatchesPerEpoch %d, want %d", per, want)
	}
	for _, i := range []int64{per - 1, per, per + 1, 5*per + 17} {
		if !slices.Equal(a.Batch(i).Int64s(), b.Batch(i).Int64s()) {
			t.Fatalf("batch %d differs between two samplers with the same seed", i)
		}
	}
}

// TestProtocolWithBOS tokenizes val.txt as the perplexity protocol does
// with a tokenizer whose template adds <|begin_of_text|> (the Llama-3 test
// tokenizer): every document is Hugging Face's encode(doc,
// add_special_tokens=True), BOS first, compared through the SHA-256 sums
// of its reference ids, followed by the end-of-text id.
func TestProtocolWithBOS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "tokenizer", "testdata", "hf")
	tok, err := tokenizer.Load(filepath.Join(dir, "llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.SpecialID("<|begin_of_text|>")
	eos, ok := tok.SpecialID("<|end_of_text|>")
	if !ok {
		t.Fatal("llama3.json has no <|end_of_text|>")
	}
	s, err := Tokenize(context.Background(), Source{Path: shareddata.Path(t, "data", "en", "val.txt")}, tok, eos, StreamOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "llama3.val.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(raw))
	if s.NumDocs() != len(want) {
		t.Fatalf("%d documents, %d reference sums", s.NumDocs(), len(want))
	}
	d := s.Docs()
	for i := range s.NumDocs() {
		ids := s.Window(d[i], d[i+1]-d[i])
		if ids[0] != bos || ids[len(ids)-1] != eos || slices.Contains(ids[1:], bos) {
			t.Fatalf("document %d: %v...%v; want one BOS (%d) first and EOS (%d) last", i, ids[:min(4, len(ids))], ids[max(0, len(ids)-4):], bos, eos)
		}
		line := strings.Trim(fmt.Sprint(ids[:len(ids)-1]), "[]")
		sum := sha256.Sum256([]byte(line))
		if got := hex.EncodeToString(sum[:8]); got != want[i] {
			t.Fatalf("document %d: its ids differ from Hugging Face's add_special_tokens=True encoding", i)
		}
	}
}
