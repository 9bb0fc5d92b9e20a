package data

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestStreamTextMatchesWhole: reading a text file in blocks of a few bytes,
// so that documents, separators and characters straddle the blocks, gives
// the documents (text, offset, size) and the text errors that reading it
// whole gives, and encodeAll makes the same tokens and offsets from either.
func TestStreamTextMatchesWhole(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("long document ", 40)
	contents := []string{
		"", "a", "\n\n", "\n", "a\n\nb", "\n\n\n\n\n", "x\n\n\n\ny\n\n", "ab\n\ncd\n\n\n",
		"é€😀\n\nü\n\n€€€€€", long + "\n\n" + long + "\n\nshort\n\n" + long,
		"ab\xff\n\ncd", "a\n\n\xe2\x82", "ok\n\nok\n\n\xe2\x82\n\nz", "€\xe2\x82\xe2\x82\xac",
		"abc\n\nd\x00e", "\x00", "fine\n\n" + long + "\x00\xff", "\xff\x00", long + "\xc3",
	}
	var many strings.Builder
	for i := range 300 {
		fmt.Fprintf(&many, "doc %d %s\n\n", i, strings.Repeat("é", i%37))
	}
	contents = append(contents, many.String())
	for _, sep := range []string{"\n\n", "\n", "€", "<doc>"} {
		for ci, content := range contents {
			if sep != "\n\n" {
				content = strings.ReplaceAll(content, "\n\n", sep)
			}
			src, err := Source{Path: writeFile(t, "c.txt", content), Separator: sep}.normalized()
			if err != nil {
				t.Fatal(err)
			}
			sh := shard{path: src.Path, format: "text"}
			if !src.streams(sh) {
				t.Fatalf("separator %q: the text file is not streamed", sep)
			}
			whole, wantErr := src.documents(context.Background(), sh)
			for _, block := range []int{1, 2, 3, 5, 16, streamBlock} {
				var got []document
				err := src.streamText(context.Background(), sh, block, func(docs []document, first int) bool {
					if first != len(got) {
						t.Errorf("separator %q, content %d, block %d: batch at document %d after %d documents", sep, ci, block, first, len(got))
					}
					got = append(got, docs...)
					return true
				})
				if fmt.Sprint(err) != fmt.Sprint(wantErr) {
					t.Fatalf("separator %q, content %d, block %d: error %v, want %v", sep, ci, block, err, wantErr)
				}
				if err == nil && !slices.Equal(got, whole) {
					t.Fatalf("separator %q, content %d, block %d: documents\n%+v\nwant\n%+v", sep, ci, block, got, whole)
				}
			}
			if wantErr != nil {
				continue
			}
			enc := encoder{file: src.Path, tok: bytes257, eos: 256, vocab: 257, workers: 3}
			whole16, wholeEnds, err := encodeAll(context.Background(), enc, []uint16(nil), 0, func(emit func([]document, int) bool) error {
				emit(whole, 0)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got16, gotEnds, err := encodeAll(context.Background(), enc, []uint16(nil), 0, func(emit func([]document, int) bool) error {
				return src.streamText(context.Background(), sh, 3, emit)
			})
			if err != nil || !slices.Equal(got16, whole16) || !slices.Equal(gotEnds, wholeEnds) {
				t.Fatalf("separator %q, content %d: streamed tokens %v ends %v (%v), want %v ends %v", sep, ci, got16, gotEnds, err, whole16, wholeEnds)
			}
		}
	}
}
