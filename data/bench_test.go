package data

import (
	"context"
	"fmt"
	"os"
	"testing"

	"mohawk/internal/shareddata"
)

// BenchmarkTokenize tokenizes train.txt with the Phi tokenizer; MB/s is
// bytes of text per second. The tokenizer's piece cache is warm after the
// first iteration, as when a long corpus is encoded.
func BenchmarkTokenize(b *testing.B) {
	path := shareddata.Path(b, "data", "en", "train.txt")
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	tok, eos := referenceTokenizer(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(st.Size())
			for b.Loop() {
				if _, err := Tokenize(context.Background(), Source{Path: path}, tok, eos, StreamOptions{Workers: workers}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCachedLoad reads train.txt's tokens from a warm cache file.
func BenchmarkCachedLoad(b *testing.B) {
	path := shareddata.Path(b, "data", "en", "train.txt")
	tok, eos := referenceTokenizer(b)
	opts := StreamOptions{CacheDir: b.TempDir(), TokenizerID: "phi-tiny-en"}
	if _, err := Tokenize(context.Background(), Source{Path: path}, tok, eos, opts); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Tokenize(context.Background(), Source{Path: path}, tok, eos, opts)
		if err != nil || !s.Cached() {
			b.Fatal(err, "or the cache was not used")
		}
	}
}
