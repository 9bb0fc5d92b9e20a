package data

import (
	"context"
	"fmt"
	"os"
	"testing"

	"mohawk/internal/cpubench"
	"mohawk/internal/shareddata"
)

// BenchmarkTokenize tokenizes train.txt with the Phi tokenizer; MB/s is
// bytes of text per second of wall time, MB/cpu-s per second of the
// process's CPU time (user and system), which other load on a shared machine
// disturbs less. Each worker's piece cache starts cold in every iteration,
// as in a run of the pipeline.
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
			cpu := cpubench.Seconds(b)
			for b.Loop() {
				if _, err := Tokenize(context.Background(), Source{Path: path}, tok, eos, StreamOptions{Workers: workers}); err != nil {
					b.Fatal(err)
				}
			}
			cpubench.ReportMB(b, st.Size(), cpu)
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
