package tokenizer

import (
	"strings"
	"testing"
)

// BenchmarkEncodeHF encodes train.txt document by document (split on
// "\n\n", as the data pipeline does) with each tokenizer kind of
// testdata/hf, plus the Phi reference tokenizer for comparison; MB/s is the
// encoding speed. Run it with -cpu 1 for one core.
func BenchmarkEncodeHF(b *testing.B) {
	text := string(readShared(b, "data", "en", "train.txt"))
	docs := strings.Split(text, "\n\n")
	toks := map[string]*Tokenizer{"phi": referenceTokenizer(b)}
	for _, name := range hfKinds {
		toks[name] = loadHF(b, name)
	}
	for _, name := range append([]string{"phi"}, hfKinds...) {
		tok := toks[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				for _, doc := range docs {
					tok.Encode(doc)
				}
			}
		})
	}
}
