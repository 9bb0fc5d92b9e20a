package tokenizer

import (
	"errors"
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

// TestEndOfText checks which token ends a document for a tokenizer.json
// and the tokenizer_config.json beside it. The ids are those of the
// added_tokens lists in testdata/hf (read there with Python's json).
func TestEndOfText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, tok, config string // config "" writes no tokenizer_config.json
		wantID            int64
		wantTok, wantErr  string
		none              bool // the error wraps ErrNoEndOfText
	}{
		{name: "default", tok: "qwen2", wantID: 956, wantTok: "<|endoftext|>"},
		{name: "string", tok: "llama3", config: `{"eos_token": "<|end_of_text|>"}`, wantID: 957, wantTok: "<|end_of_text|>"},
		{name: "object", tok: "llama3", config: `{"eos_token": {"content": "<|eot_id|>", "special": true}}`, wantID: 958, wantTok: "<|eot_id|>"},
		{name: "chat", tok: "qwen2", config: `{"eos_token": "<|im_end|>"}`, wantID: 958, wantTok: "<|im_end|>"},
		{name: "sentencepiece", tok: "llama2", config: `{"bos_token": "<s>", "eos_token": "</s>"}`, wantID: 2, wantTok: "</s>"},
		{name: "null keeps the default", tok: "qwen2", config: `{"eos_token": null}`, wantID: 956, wantTok: "<|endoftext|>"},
		{name: "no default", tok: "llama3", wantErr: "has no special token <|endoftext|> and no tokenizer_config.json", none: true},
		{name: "no default, null", tok: "llama3", config: `{"eos_token": null}`, wantErr: "has no special token <|endoftext|>", none: true},
		{name: "unknown token", tok: "llama3", config: `{"eos_token": "<|nope|>"}`, wantErr: `names eos_token "<|nope|>", which is not a special token`},
		{name: "number", tok: "llama3", config: `{"eos_token": 5}`, wantErr: "eos_token: want a string or an object"},
		{name: "corrupt", tok: "llama3", config: `{"eos_token": `, wantErr: "tokenizer_config.json: unexpected end of JSON input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data, err := os.ReadFile(filepath.Join("testdata", "hf", c.tok+".json"))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "tokenizer.json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(c.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			id, name, err := EndOfText(path, tok)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || errors.Is(err, ErrNoEndOfText) != c.none {
					t.Fatalf("EndOfText = %d %q, %v; want an error containing %q (wrapping ErrNoEndOfText: %v)", id, name, err, c.wantErr, c.none)
				}
				return
			}
			if err != nil || id != c.wantID || name != c.wantTok {
				t.Fatalf("EndOfText = %d %q, %v; want %d %q", id, name, err, c.wantID, c.wantTok)
			}
		})
	}
}
