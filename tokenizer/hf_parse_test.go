package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseHFErrors edits the Llama-3 and Llama-2 test files into ones
// with unsupported or broken parts and checks each error names the key.
func TestParseHFErrors(t *testing.T) {
	t.Parallel()
	split := func(regex string) func(map[string]any) {
		return func(doc map[string]any) {
			doc["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": regex}
		}
	}
	set := func(key string, v any) func(map[string]any) {
		return func(doc map[string]any) { doc[key] = v }
	}
	template := func(key string, v any) func(map[string]any) {
		return func(doc map[string]any) { doc["post_processor"].(map[string]any)[key] = v }
	}
	tests := []struct {
		name, file string
		edit       func(map[string]any)
		want       string
	}{
		{"unknown split regex", "llama3", split(`\p{N}{1,4}|\s+`), `pre_tokenizer.pretokenizers[0].pattern.Regex: the Split regex "\\p{N}{1,4}|\\s+" is not supported`},
		{"split regex differing by one character", "llama3", split(strings.Replace(llama3Pattern, "{1,3}", "{1,2}", 1)), "is not supported"},
		{"three pre-tokenizers", "llama3", func(doc map[string]any) {
			seq := doc["pre_tokenizer"].(map[string]any)
			seq["pretokenizers"] = append(seq["pretokenizers"].([]any), map[string]any{"type": "ByteLevel"})
		}, "pre_tokenizer.pretokenizers: has 3 entries"},
		{"normalizer type", "llama3", set("normalizer", map[string]any{"type": "NFKC"}), `normalizer.type: "NFKC" is not supported`},
		{"replace regex", "llama2", set("normalizer", map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " +"}, "content": "▁"}}}), "normalizer.normalizers[0].pattern: only a non-empty String pattern"},
		{"prepend empty", "llama2", set("normalizer", map[string]any{"type": "Prepend", "prepend": ""}), "normalizer.prepend: missing or empty"},
		{"metaspace scheme", "metaspace", set("pre_tokenizer", map[string]any{"type": "Metaspace", "prepend_scheme": "sometimes"}), `pre_tokenizer.prepend_scheme: "sometimes" is not always, first or never`},
		{"metaspace replacement", "metaspace", set("pre_tokenizer", map[string]any{"type": "Metaspace", "replacement": "__"}), `pre_tokenizer.replacement: "__" is not one character`},
		{"template token missing", "llama2", template("special_tokens", map[string]any{}), `post_processor.single[0]: special token "<s>" is not in post_processor.special_tokens`},
		{"template id out of range", "llama2", template("special_tokens", map[string]any{"<s>": map[string]any{"ids": []any{99999}}}), "has id 99999 outside the vocabulary"},
		{"template without sequence", "llama2", template("single", []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}}), `post_processor.single: has no Sequence "A"`},
		{"post-processor type", "llama2", set("post_processor", map[string]any{"type": "BertProcessing"}), `post_processor.type: "BertProcessing" is not supported`},
		{"decoder type", "llama2", set("decoder", map[string]any{"type": "WordPiece"}), `decoder.type: "WordPiece" is not supported`},
		{"strip decoder", "llama2", set("decoder", map[string]any{"type": "Strip", "content": "ab", "start": 1}), "decoder: a Strip decoder needs a one-character content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "hf", tt.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			tt.edit(doc)
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Parse(data, "bad.json")
			if err == nil {
				t.Fatalf("Parse succeeded with %d tokens, want an error containing %q", tok.VocabSize(), tt.want)
			}
			if !strings.HasPrefix(err.Error(), "tokenizer: bad.json: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want one naming bad.json and containing %q", err, tt.want)
			}
		})
	}
}
