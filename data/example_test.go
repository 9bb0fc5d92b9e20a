package data_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"mohawk/data"
)

// letters is a toy Encoder: one id per byte, and id 256 for end of text.
// Real code passes a *tokenizer.Tokenizer.
type letters struct{}

func (letters) Encode(s string) []int64 {
	ids := make([]int64, len(s))
	for i := range len(s) {
		ids[i] = int64(s[i])
	}
	return ids
}

func (letters) VocabSize() int { return 257 }

func Example() {
	dir, err := os.MkdirTemp("", "data-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(path, []byte("first document\n\nsecond one\n\nthird and last document"), 0o644); err != nil {
		log.Fatal(err)
	}

	s, err := data.Tokenize(context.Background(), data.Source{Path: path}, letters{}, 256, data.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tokens:", s.Len(), "documents:", s.NumDocs(), "offsets:", s.Docs())

	// Perplexity windows: 8+1 tokens every 8 tokens.
	w, err := data.EvalWindows(s, 8, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("eval windows:", w.Shape, "first:", w.Int64s()[:9])

	// Training batches: the same seed and index always give the same batch.
	sm, err := data.NewSampler(s, 8, 2, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("batches per epoch:", sm.BatchesPerEpoch(), "batch 5:", sm.Batch(5).Shape, "rows start at", sm.Starts(5))

	// Output:
	// tokens: 50 documents: 3 offsets: [0 15 26 50]
	// eval windows: [3 9] first: [102 105 114 115 116 32 100 111 99]
	// batches per epoch: 2 batch 5: [2 9] rows start at [34 10]
}
