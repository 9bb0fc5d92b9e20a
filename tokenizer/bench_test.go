package tokenizer

import (
	"strings"
	"testing"

	"mohawk/internal/cpubench"
)

// BenchmarkEncode encodes val.txt with the reference tokenizer; MB/s is the
// encoding speed. warm reuses the piece cache across iterations, as when
// encoding a long corpus; cold empties it before each.
func BenchmarkEncode(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "val.txt"))
	b.Run("warm", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.Encode(text)
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.model.cache.reset()
			tok.Encode(text)
		}
	})
}

// BenchmarkDecode decodes the encoding of val.txt; MB/s counts text bytes.
func BenchmarkDecode(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "val.txt"))
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeParallel encodes val.txt from every GOMAXPROCS goroutine at
// once, all with one tokenizer (shared) or each with its own Fork (forked,
// as data.Tokenize's workers do); compare MB/s at -cpu 1,2 to see whether
// encoding scales.
func BenchmarkEncodeParallel(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "val.txt"))
	for _, fork := range []bool{false, true} {
		name := map[bool]string{false: "shared", true: "forked"}[fork]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.RunParallel(func(pb *testing.PB) {
				t := tok
				if fork {
					t = tok.Fork()
				}
				t.Encode(text) // warm the piece cache
				for pb.Next() {
					t.Encode(text)
				}
			})
		})
	}
}

// BenchmarkEncodeFork encodes train.txt document by document (split on
// "\n\n") with a new Fork in each iteration, as one worker of data.Tokenize
// does: the fork's piece cache starts cold and fills with the corpus's
// 98,000 distinct pieces. It leaves out reading the file, so it shows the
// encoder alone. MB/cpu-s is per second of the process's CPU time.
func BenchmarkEncodeFork(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "train.txt"))
	docs := strings.Split(text, "\n\n")
	b.SetBytes(int64(len(text)))
	cpu := cpubench.Seconds(b)
	for b.Loop() {
		t := tok.Fork()
		for _, doc := range docs {
			t.Encode(doc)
		}
	}
	cpubench.ReportMB(b, int64(len(text)), cpu)
}
