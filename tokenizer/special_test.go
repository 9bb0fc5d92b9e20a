package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEncodeNoSpecial checks EncodeNoSpecial and BOS against Hugging
// Face's add_special_tokens=True ids of the adversarial documents: without
// special tokens they are the same ids less the one token each template
// puts first, which the table names.
func TestEncodeNoSpecial(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.Join("testdata", "hf", "adversarial.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(text), "\n\n")
	for name, bos := range map[string]string{"llama3": "<|begin_of_text|>", "llama2": "<s>", "metaspace": "<s>", "metaspace_split": "<s>", "qwen2": ""} {
		t.Run(name, func(t *testing.T) {
			tok := loadHF(t, name)
			want := readGzipLines(t, filepath.Join("testdata", "hf", name+".adversarial.ids.gz"))
			if len(want) != len(docs) {
				t.Fatalf("%d reference lines for %d documents", len(want), len(docs))
			}
			bosID, hasBOS := tok.SpecialID(bos)
			if got, ok := tok.BOS(); ok != (bos != "") || ok && got != bosID {
				t.Fatalf("BOS = %d, %v; want %q (id %d, %v)", got, ok, bos, bosID, hasBOS)
			}
			for i, doc := range docs {
				ref := strings.Fields(want[i])
				if bos != "" {
					if len(ref) == 0 || ref[0] != idLine([]int64{bosID}) {
						t.Fatalf("document %d: Hugging Face's ids %q do not start with %s", i, want[i], bos)
					}
					ref = ref[1:]
				}
				got := tok.EncodeNoSpecial(doc)
				if idLine(got) != strings.Join(ref, " ") {
					t.Errorf("document %d %q:\n got %v\nwant %s", i, doc, got, strings.Join(ref, " "))
				}
			}
		})
	}
}
