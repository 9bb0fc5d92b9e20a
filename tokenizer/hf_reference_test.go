package tokenizer

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hfKinds are the hand-built tokenizer.json files of testdata/hf, one per
// supported kind; make_refs.js wrote their reference ids with Hugging Face
// tokenizers (see testdata/hf/README.md).
var hfKinds = []string{"llama3", "qwen2", "llama2", "metaspace", "metaspace_split"}

func loadHF(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	tok, err := Load(filepath.Join("testdata", "hf", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// idLine formats ids as make_refs.js writes them.
func idLine(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

func readGzipLines(tb testing.TB, path string) []string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestHFAdversarial compares every id of every adversarial document, and
// its decoding, with Hugging Face's, encoded with the tokenizer and with a
// Fork (whose piece cache is a pieceTable).
func TestHFAdversarial(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.Join("testdata", "hf", "adversarial.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(text), "\n\n")
	for _, name := range hfKinds {
		t.Run(name, func(t *testing.T) {
			tok := loadHF(t, name)
			want := readGzipLines(t, filepath.Join("testdata", "hf", name+".adversarial.ids.gz"))
			raw, err := os.ReadFile(filepath.Join("testdata", "hf", name+".adversarial.decoded.json"))
			if err != nil {
				t.Fatal(err)
			}
			var decoded []string
			if err := json.Unmarshal(raw, &decoded); err != nil {
				t.Fatal(err)
			}
			if len(want) != len(docs) || len(decoded) != len(docs) {
				t.Fatalf("%d reference lines and %d decodings for %d documents", len(want), len(decoded), len(docs))
			}
			n := 0
			fork := tok.Fork()
			for i, doc := range docs {
				ids := tok.Encode(doc)
				n += len(ids)
				if got := idLine(ids); got != want[i] {
					t.Errorf("document %d %q:\n got %s\nwant %s", i, doc, got, want[i])
					continue
				}
				if got := idLine(fork.Encode(doc)); got != want[i] {
					t.Errorf("document %d %q, fork:\n got %s\nwant %s", i, doc, got, want[i])
				}
				if s, err := tok.Decode(ids); err != nil || s != decoded[i] {
					t.Errorf("Decode of document %d = %q, %v, want %q", i, s, err, decoded[i])
				}
			}
			t.Logf("%s: %d documents, %d ids equal to Hugging Face's", name, len(docs), n)
		})
	}
}

// TestHFValidation compares the ids of every document of val.txt with
// Hugging Face's, through the SHA-256 of each document's id line, encoded
// with the tokenizer and with a Fork.
func TestHFValidation(t *testing.T) {
	t.Parallel()
	docs := strings.Split(string(readShared(t, "data", "en", "val.txt")), "\n\n")
	for _, name := range hfKinds {
		t.Run(name, func(t *testing.T) {
			tok := loadHF(t, name)
			raw, err := os.ReadFile(filepath.Join("testdata", "hf", name+".val.sha256"))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Fields(string(raw))
			if len(want) != len(docs) {
				t.Fatalf("%d reference sums for %d documents", len(want), len(docs))
			}
			n, bad := 0, 0
			fork := tok.Fork()
			for i, doc := range docs {
				ids := tok.Encode(doc)
				n += len(ids)
				for _, enc := range []struct {
					name string
					ids  []int64
				}{{"tokenizer", ids}, {"fork", fork.Encode(doc)}} {
					sum := sha256.Sum256([]byte(idLine(enc.ids)))
					if got := hex.EncodeToString(sum[:8]); got != want[i] {
						if bad++; bad <= 3 {
							t.Errorf("document %d (%.60q...): the %s's ids differ from Hugging Face's", i, doc, enc.name)
						}
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d encodings of %d documents differ", bad, len(docs))
			}
			t.Logf("%s: %d documents, %d ids checked against Hugging Face's", name, len(docs), n)
		})
	}
}

// TestHFDecode compares Decode with Hugging Face's decode(ids,
// skip_special_tokens=false) on the adversarial documents' ids without
// special tokens and on random id sequences.
func TestHFDecode(t *testing.T) {
	t.Parallel()
	for _, name := range hfKinds {
		t.Run(name, func(t *testing.T) {
			tok := loadHF(t, name)
			raw, err := os.ReadFile(filepath.Join("testdata", "hf", name+".decode.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cases []struct {
				IDs  []int64 `json:"ids"`
				Text string  `json:"text"`
			}
			if err := json.Unmarshal(raw, &cases); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				if got, err := tok.Decode(c.IDs); err != nil || got != c.Text {
					t.Errorf("Decode(%v) = %q, %v, want %q", c.IDs, got, err, c.Text)
				}
			}
			t.Logf("%s: %d decodings equal to Hugging Face's", name, len(cases))
		})
	}
}
