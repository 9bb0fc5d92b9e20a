package data

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/tokenizer"
)

// byteEncoder encodes every byte b of the text as id b+offset.
type byteEncoder struct {
	vocab  int
	offset int64
}

func (e byteEncoder) Encode(s string) []int64 {
	ids := make([]int64, len(s))
	for i := range len(s) {
		ids[i] = int64(s[i]) + e.offset
	}
	return ids
}

func (e byteEncoder) VocabSize() int { return e.vocab }

// bytes257 is a byte encoder whose end-of-text id is 256.
var bytes257 = byteEncoder{vocab: 257}

// writeFile writes content to name in a fresh temporary directory and
// returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenizeText tokenizes content as a text file with the byte encoder and
// end-of-text id 256.
func tokenizeText(t testing.TB, content string) *Stream {
	t.Helper()
	s, err := Tokenize(context.Background(), Source{Path: writeFile(t, "corpus.txt", content)}, bytes257, 256, StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokensOf returns all tokens of s.
func tokensOf(s *Stream) []int64 { return s.Window(0, s.Len()) }

// sameStream fails the test unless a and b hold the same tokens and
// documents.
func sameStream(t testing.TB, a, b *Stream) {
	t.Helper()
	if a.Len() != b.Len() || !slices.Equal(a.Docs(), b.Docs()) || !slices.Equal(tokensOf(a), tokensOf(b)) || a.wide != b.wide {
		t.Fatalf("streams differ: %d tokens in %d documents vs %d tokens in %d documents", a.Len(), a.NumDocs(), b.Len(), b.NumDocs())
	}
}

var reference struct {
	once sync.Once
	tok  *tokenizer.Tokenizer
	eos  int64
	err  error

	streams sync.Map // file name → *referenceStream
}

type referenceStream struct {
	once sync.Once
	s    *Stream
	err  error
}

// referenceTokenizer loads the Phi tokenizer of ../shared once, with its
// end-of-text id.
func referenceTokenizer(t testing.TB) (*tokenizer.Tokenizer, int64) {
	t.Helper()
	path := shareddata.Path(t, "reference", "phi-tiny-en", "tokenizer.json")
	reference.once.Do(func() {
		reference.tok, reference.err = tokenizer.Load(path)
		if reference.err == nil {
			reference.eos, _ = reference.tok.SpecialID("<|endoftext|>")
		}
	})
	if reference.err != nil {
		t.Fatal(reference.err)
	}
	return reference.tok, reference.eos
}

// referenceStreamOf tokenizes ../shared/data/en/<name> once per test process.
func referenceStreamOf(t testing.TB, name string) *Stream {
	t.Helper()
	path := shareddata.Path(t, "data", "en", name)
	tok, eos := referenceTokenizer(t)
	v, _ := reference.streams.LoadOrStore(name, &referenceStream{})
	r := v.(*referenceStream)
	r.once.Do(func() {
		r.s, r.err = Tokenize(context.Background(), Source{Path: path}, tok, eos, StreamOptions{})
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.s
}
