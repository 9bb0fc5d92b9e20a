package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestMergeOrder checks that merges apply lowest rank first, leftmost among
// equal ranks, one pair at a time as in Hugging Face's BPE.
func TestMergeOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		merges [][2]string
		text   string
		want   []string
	}{
		{"no merges", nil, "abc", []string{"a", "b", "c"}},
		{"chain", [][2]string{{"a", "b"}, {"ab", "c"}}, "abc", []string{"abc"}},
		{"lower rank wins", [][2]string{{"b", "c"}, {"a", "b"}, {"ab", "c"}}, "abc", []string{"a", "bc"}},
		{"leftmost among equals", [][2]string{{"a", "a"}}, "aaa", []string{"aa", "a"}},
		{"pairs of pairs", [][2]string{{"a", "a"}, {"aa", "aa"}}, "aaaaa", []string{"aaaa", "a"}},
		// A new pair outranking the pending ones is merged before them:
		// merging every (a, a) first would give [aa aa].
		{"new pair first", [][2]string{{"aa", "a"}, {"a", "a"}}, "aaaa", []string{"aaa", "a"}},
		{"space marker", [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}}, "the the", []string{"t", "he", " the"}},
		{"multibyte", [][2]string{{"Ã", "©"}}, "é", []string{"é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := byteLevelFile{}
			for _, m := range tt.merges {
				f.merges = append(f.merges, [2]string{byteTokenOf(m[0]), byteTokenOf(m[1])})
			}
			tok := f.parse(t)
			want := ids(t, tok, tt.want...)
			if got := tok.Encode(tt.text); !slices.Equal(got, want) {
				t.Errorf("Encode(%q) = %v, want %v (%q)", tt.text, got, want, tt.want)
			}
		})
	}
}

// byteTokenOf returns s in byte-level form unless it already is (the
// byte-level characters used in the tables above are not ASCII).
func byteTokenOf(s string) string {
	for _, r := range s {
		if r >= 0x80 {
			return s
		}
	}
	return byteToken(s)
}

func TestAddedTokens(t *testing.T) {
	t.Parallel()
	f := byteLevelFile{
		merges: [][2]string{{"Ġ", "b"}},
		added: []map[string]any{
			{"content": "<|endoftext|>", "special": true, "normalized": false},
			{"content": "<ab>", "special": true, "normalized": false},
			{"content": "<ab>c", "special": true, "normalized": false},
			{"content": "<l>", "special": true, "normalized": false, "lstrip": true},
			{"content": "<r>", "special": true, "normalized": false, "rstrip": true},
			{"content": "cat", "single_word": true, "normalized": false},
			{"content": "  ", "normalized": true},                        // Phi-1.5 style run of spaces
			{"content": "<x  y>", "special": false, "normalized": false}, // raw tokens go first
		},
	}
	tok := f.parse(t)
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"alone", "<|endoftext|>", []string{"<|endoftext|>"}},
		{"inside a word", "a<|endoftext|>b", []string{"a", "<|endoftext|>", "b"}},
		{"splits pre-tokenization", "a <|endoftext|> b", []string{"a", " ", "<|endoftext|>", " b"}},
		{"longest match", "<ab>cd<ab>d", []string{"<ab>c", "d", "<ab>", "d"}},
		{"partial", "<|endoftext", []string{"<|", "endoftext"}},
		{"lstrip", "a \t<l>b", []string{"a", "<l>", "b"}},
		{"lstrip at start", "  <l>", []string{"<l>"}},
		{"lstrip stops at previous token", "<r> <l>", []string{"<r>", "<l>"}},
		{"rstrip", "a<r>  \n b", []string{"a", "<r>", "b"}},
		{"single word", "cat and cat's", []string{"cat", " and", " ", "cat", "'s"}},
		{"single word inside a word", "concat cats", []string{"concat", " cats"}},
		{"normalized run of spaces", "a  b", []string{"a", "  ", "b"}},
		{"normalized runs of spaces", "a     b", []string{"a", "  ", "  ", " b"}},
		{"raw before normalized", "<x  y>  ", []string{"<x  y>", "  "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := ids(t, tok, tt.want...)
			got := tok.Encode(tt.text)
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%q) = %v, want %v (%q)", tt.text, got, want, tt.want)
			}
		})
	}
	for content, special := range map[string]bool{"<|endoftext|>": true, "<ab>": true, "cat": false, "  ": false} {
		if _, ok := tok.SpecialID(content); ok != special {
			t.Errorf("SpecialID(%q) found %v, want %v", content, ok, special)
		}
		id, ok := tok.TokenID(content)
		if !ok {
			t.Errorf("TokenID(%q) not found", content)
		}
		if s, err := tok.Decode([]int64{id}); err != nil || s != content {
			t.Errorf("Decode(%d) = %q, %v, want %q", id, s, err, content)
		}
	}
	if got, want := tok.VocabSize(), 256+1+8; got != want {
		t.Errorf("VocabSize() = %d, want %d", got, want)
	}
}

// TestModelOptions covers the BPE model's options and the ByteLevel
// pre-tokenizer's.
func TestModelOptions(t *testing.T) {
	t.Parallel()
	// small is a vocabulary without most byte characters.
	small := func(extra map[string]any) func(map[string]any) {
		return func(doc map[string]any) {
			vocab := map[string]any{"a": 0, "b": 1, "<unk>": 2, "<0x7A>": 3, "abc": 4, "c": 5}
			model(doc)["vocab"] = vocab
			model(doc)["merges"] = []any{}
			for k, v := range extra {
				model(doc)[k] = v
			}
		}
	}
	preTokenizer := func(addPrefixSpace, useRegex bool) func(map[string]any) {
		return func(doc map[string]any) {
			doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": addPrefixSpace, "use_regex": useRegex}
		}
	}
	tests := []struct {
		name string
		file byteLevelFile
		text string
		want []int64
	}{
		{"unknown bytes dropped", byteLevelFile{edit: small(nil)}, "ab?z", []int64{0, 1}},
		{"unknown token", byteLevelFile{edit: small(map[string]any{"unk_token": "<unk>"})}, "a??b", []int64{0, 2, 2, 1}},
		{"fused unknown token", byteLevelFile{edit: small(map[string]any{"unk_token": "<unk>", "fuse_unk": true})}, "a??b?", []int64{0, 2, 1, 2}},
		{"byte fallback", byteLevelFile{edit: small(map[string]any{"unk_token": "<unk>", "byte_fallback": true})}, "az?", []int64{0, 3, 2}},
		{"merges needed", byteLevelFile{edit: small(nil)}, "abc", []int64{0, 1, 5}},
		{"ignore merges", byteLevelFile{edit: small(map[string]any{"ignore_merges": true})}, "abc", []int64{4}},
		{"prefix space", byteLevelFile{merges: [][2]string{{"Ġ", "a"}}, edit: preTokenizer(true, true)}, "a a", []int64{256, 256}},
		{"prefix space kept", byteLevelFile{merges: [][2]string{{"Ġ", "a"}}, edit: preTokenizer(true, true)}, " a", []int64{256}},
		{"no regex", byteLevelFile{merges: [][2]string{{"a", "Ġ"}, {"aĠ", "a"}}, edit: preTokenizer(false, false)}, "a a", []int64{257}},
		{"regex", byteLevelFile{merges: [][2]string{{"a", "Ġ"}, {"aĠ", "a"}}, edit: preTokenizer(false, true)}, "a a", []int64{'a', ' ', 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := tt.file.parse(t)
			if got := tok.Encode(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tok := byteLevelFile{
		merges: [][2]string{{"â", "Ĥ"}},
		added:  []map[string]any{{"content": "<|endoftext|>", "special": true, "normalized": false}},
	}.parse(t)
	tests := []struct {
		name    string
		ids     []int64
		want    string
		wantErr string
	}{
		{"empty", nil, "", ""},
		{"bytes", []int64{'h', 'i', ' ', '\n'}, "hi \n", ""},
		{"special token", []int64{'a', 257, 'b'}, "a<|endoftext|>b", ""},
		{"euro sign in pieces", []int64{0xE2, 0x82, 0xAC}, "€", ""},
		{"merged prefix of the euro sign", []int64{256, 0xAC}, "€", ""},
		{"truncated character", []int64{256, 'A'}, "\ufffdA", ""},
		{"invalid bytes", []int64{0xFF, 0xFE}, "\ufffd\ufffd", ""},
		{"unknown id", []int64{'a', 258}, "", "id 258 at position 1"},
		{"negative id", []int64{-1}, "", "id -1 at position 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tok.Decode(tt.ids)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "synthetic.json") {
					t.Errorf("Decode(%v) error = %v, want one naming %q and the file", tt.ids, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Decode(%v) = %q, %v, want %q", tt.ids, got, err, tt.want)
			}
		})
	}
	if _, ok := tok.Token(258); ok {
		t.Error("Token(258) found, want none")
	}
	if s, ok := tok.Token(256); !ok || s != "âĤ" {
		t.Errorf("Token(256) = %q, %v, want %q", s, ok, "âĤ")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	set := func(key string, v any) func(map[string]any) {
		return func(doc map[string]any) { doc[key] = v }
	}
	setModel := func(key string, v any) func(map[string]any) {
		return func(doc map[string]any) { model(doc)[key] = v }
	}
	tests := []struct {
		name string
		data []byte // used when file is nil
		file *byteLevelFile
		want string
	}{
		{"not json", []byte("{"), nil, "not a tokenizer.json object"},
		{"json array", []byte("[1]"), nil, "not a tokenizer.json object"},
		{"empty object", []byte("{}"), nil, "model: missing"},
		{"model type", nil, &byteLevelFile{edit: setModel("type", "WordPiece")}, `model.type: "WordPiece" is not supported`},
		{"model missing", nil, &byteLevelFile{edit: set("model", nil)}, "model: missing"},
		{"model not an object", nil, &byteLevelFile{edit: set("model", "BPE")}, "model: json: cannot unmarshal"},
		{"vocab missing", nil, &byteLevelFile{edit: setModel("vocab", nil)}, "model.vocab: missing or empty"},
		{"vocab id not a number", nil, &byteLevelFile{edit: setModel("vocab", map[string]any{"a": "1"})}, "model: json: cannot unmarshal"},
		{"negative id", nil, &byteLevelFile{edit: setModel("vocab", map[string]any{"a": -1})}, "model.vocab: token \"a\" has id -1"},
		{"sparse ids", nil, &byteLevelFile{edit: setModel("vocab", map[string]any{"a": 1 << 30})}, "model.vocab: ids are too sparse"},
		{"duplicate ids", nil, &byteLevelFile{edit: setModel("vocab", map[string]any{"a": 0, "b": 0, "c": 1})}, `model.vocab: tokens "a" and "b" share id 0`},
		{"normalizer", nil, &byteLevelFile{edit: set("normalizer", map[string]any{"type": "Lowercase"})}, `normalizer.type: "Lowercase" is not supported`},
		{"pre-tokenizer missing", nil, &byteLevelFile{edit: set("pre_tokenizer", nil)}, `decoder.type: "ByteLevel" needs a ByteLevel pre_tokenizer`},
		{"pre-tokenizer type", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Whitespace"})}, `pre_tokenizer.type: "Whitespace" is not supported`},
		{"empty sequence", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{}})}, "pre_tokenizer.pretokenizers: empty"},
		{"nested sequence", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Sequence"}}})}, `pre_tokenizer.pretokenizers[0].type: "Sequence" is not supported`},
		{"split pattern", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "Isolated"},
			map[string]any{"type": "ByteLevel"}}})}, `pre_tokenizer.pretokenizers[0].pattern.Regex: the Split regex "\\s+" is not supported`},
		{"split behavior", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2Pattern}, "behavior": "Removed"},
			map[string]any{"type": "ByteLevel"}}})}, `pre_tokenizer.pretokenizers[0].behavior: "Removed"`},
		{"byte level not last", nil, &byteLevelFile{edit: set("pre_tokenizer", map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "ByteLevel"}, map[string]any{"type": "Digits"}}})}, `pre_tokenizer.pretokenizers[0].type: "ByteLevel" is not supported before`},
		{"decoder missing", nil, &byteLevelFile{edit: set("decoder", nil)}, "decoder: missing"},
		{"decoder type", nil, &byteLevelFile{edit: set("decoder", map[string]any{"type": "WordPiece"})}, `decoder.type: "WordPiece" is not supported`},
		{"post-processor type", nil, &byteLevelFile{edit: set("post_processor", map[string]any{"type": "RobertaProcessing"})}, `post_processor.type: "RobertaProcessing" is not supported`},
		{"merge of unknown token", nil, &byteLevelFile{edit: setModel("merges", []any{[]any{"Ġ", "zz"}})}, `model.merges[0]: token "zz" is not in model.vocab`},
		{"merge into unknown token", nil, &byteLevelFile{edit: setModel("merges", []any{[]any{"Ġ", "t"}})}, `model.merges[0]: merged token "Ġt" is not in model.vocab`},
		{"merge string", nil, &byteLevelFile{edit: setModel("merges", []any{"a b c"})}, `model.merges[0]: "a b c" is not two tokens`},
		{"merge of three", nil, &byteLevelFile{edit: setModel("merges", []any{[]any{"a", "b", "c"}})}, "model.merges[0]: has 3 elements"},
		{"merge of numbers", nil, &byteLevelFile{edit: setModel("merges", []any{[]any{1, 2}})}, "model.merges[0]: json: cannot unmarshal"},
		{"unknown unk token", nil, &byteLevelFile{edit: setModel("unk_token", "<unk>")}, `model.unk_token: "<unk>" is not in model.vocab`},
		{"dropout", nil, &byteLevelFile{edit: setModel("dropout", 0.1)}, "model.dropout: 0.1 is not supported"},
		{"subword prefix", nil, &byteLevelFile{edit: setModel("continuing_subword_prefix", "##")}, "model.continuing_subword_prefix"},
		{"word suffix", nil, &byteLevelFile{edit: setModel("end_of_word_suffix", "</w>")}, "model.end_of_word_suffix"},
		{"added tokens not a list", nil, &byteLevelFile{edit: set("added_tokens", "x")}, "added_tokens: json: cannot unmarshal"},
		{"added token without id", nil, &byteLevelFile{edit: set("added_tokens", []any{map[string]any{"content": "x"}})}, "added_tokens[0].id: missing"},
		{"added token without content", nil, &byteLevelFile{edit: set("added_tokens", []any{map[string]any{"id": 300}})}, "added_tokens[0].content: missing or empty"},
		{"added token id mismatch", nil, &byteLevelFile{edit: set("added_tokens", []any{map[string]any{"id": 300, "content": "a"}})}, `added_tokens[0]: token "a" has id 300 but model.vocab gives it id 97`},
		{"added token id taken", nil, &byteLevelFile{edit: set("added_tokens", []any{map[string]any{"id": 97, "content": "<s>"}})}, `added_tokens[0]: id 97 of "<s>" is already taken by "a"`},
		{"added token twice", nil, &byteLevelFile{edit: set("added_tokens", []any{
			map[string]any{"id": 300, "content": "<s>"}, map[string]any{"id": 301, "content": "<s>"}})}, `added_tokens[1]: token "<s>" appears twice, with ids 300 and 301`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := tt.data
			if tt.file != nil {
				data = tt.file.json(t)
			}
			tok, err := Parse(data, "bad.json")
			if err == nil {
				t.Fatalf("Parse succeeded with %d tokens, want an error containing %q", tok.VocabSize(), tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "tokenizer: bad.json: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want one starting %q and containing %q", msg, "tokenizer: bad.json: ", tt.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(map[string]any)
	}{
		{"model without type", func(doc map[string]any) { delete(model(doc), "type") }},
		{"byte level defaults", func(doc map[string]any) { doc["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }},
		{"no post-processor", func(doc map[string]any) { doc["post_processor"] = nil }},
		{"no added tokens", func(doc map[string]any) { delete(doc, "added_tokens") }},
		{"zero dropout", func(doc map[string]any) { model(doc)["dropout"] = 0 }},
		{"empty prefix", func(doc map[string]any) { model(doc)["continuing_subword_prefix"] = "" }},
		{"added token listed twice", func(doc map[string]any) {
			eos := map[string]any{"id": 256, "content": "<|endoftext|>", "special": true}
			doc["added_tokens"] = []any{eos, eos}
		}},
		{"added token in the vocabulary", func(doc map[string]any) {
			doc["added_tokens"] = []any{map[string]any{"id": 97, "content": "a", "special": true}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Parse(byteLevelFile{edit: tt.edit}.json(t), "ok.json")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := tok.Decode(tok.Encode("a b")); err != nil || got != "a b" && got != " a b" {
				t.Errorf("round trip of %q gave %q, %v", "a b", got, err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(%q) error = %v, want one naming the file", missing, err)
	}
	good := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(good, byteLevelFile{}.json(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.VocabSize(); got != 256 {
		t.Errorf("VocabSize() = %d, want 256", got)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(%q) error = %v, want one naming the file", bad, err)
	}
}

// TestConcurrentEncode encodes from several goroutines at once (run with
// -race).
func TestConcurrentEncode(t *testing.T) {
	t.Parallel()
	tok := byteLevelFile{merges: [][2]string{{"Ġ", "a"}, {"Ġa", "b"}}}.parse(t)
	text := strings.Repeat("ab ab abc xyz\n", 200)
	want := tok.Encode(text)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := tok.Encode(text); !slices.Equal(got, want) {
				t.Error("concurrent Encode gave a different result")
			}
		})
	}
	wg.Wait()
}

// TestCacheBound checks that the piece cache stays bounded.
func TestCacheBound(t *testing.T) {
	t.Parallel()
	tok := byteLevelFile{merges: [][2]string{{"a", "b"}}}.parse(t)
	var b strings.Builder
	for i := range maxCacheEntries + 100 {
		fmt.Fprintf(&b, " %c%c%c%c", 'a'+i%26, 'a'+i/26%26, 'a'+i/676%26, 'a'+i/17576%26)
	}
	b.WriteString(" " + strings.Repeat("ab", maxCachedPiece))
	text := b.String()
	ids := tok.Encode(text)
	if got, err := tok.Decode(ids); err != nil || got != text {
		t.Fatalf("round trip failed: %v", err)
	}
	n := tok.model.cache.len()
	if n == 0 || n > maxCacheEntries {
		t.Errorf("cache holds %d pieces, want between 1 and %d", n, maxCacheEntries)
	}
}

// TestForkEncodesAlike encodes val.txt with a tokenizer and its fork: same
// ids, and the fork fills only its own piece cache.
func TestForkEncodesAlike(t *testing.T) {
	tok := referenceTokenizer(t)
	text := string(readShared(t, "data", "en", "val.txt"))[:200000]
	fork := tok.Fork()
	before := tok.model.cache.len()
	got := fork.Encode(text)
	if tok.model.cache.len() != before {
		t.Errorf("encoding with the fork changed the original's cache: %d → %d pieces", before, tok.model.cache.len())
	}
	if fork.model.cache.len() == 0 {
		t.Error("the fork cached nothing")
	}
	if want := tok.Encode(text); !slices.Equal(got, want) {
		t.Errorf("fork and original encode differently (%d vs %d ids)", len(got), len(want))
	}
}

// TestAppendEncode appends the ids of texts of val.txt to a slice holding
// other ids: they are kept, and the ids appended are Encode's.
func TestAppendEncode(t *testing.T) {
	t.Parallel()
	tok := referenceTokenizer(t)
	val := string(readShared(t, "data", "en", "val.txt"))
	ids := []int64{7, 8}
	want := slices.Clone(ids)
	for _, text := range []string{val[:1000], "", val[1000:1500], "<|endoftext|> a"} {
		ids = tok.AppendEncode(ids, text)
		want = append(want, tok.Encode(text)...)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("AppendEncode gave %d ids, want %d: %v...", len(ids), len(want), ids[:min(len(ids), 10)])
	}
}

// TestCheckFits pairs a tokenizer of 256 byte ids and one added token (id
// 256) with embeddings of several sizes.
func TestCheckFits(t *testing.T) {
	t.Parallel()
	tok := byteLevelFile{added: []map[string]any{{"content": "<|end|>", "special": true}}}.parse(t)
	for _, tt := range []struct {
		rows int64
		want string // "" for no error
	}{
		{300, ""},
		{257, ""},
		{256, `tokenizer synthetic.json has ids up to 256 ("<|end|>") but the model has 256 embedding rows (ids 0 to 255)`},
		{0, `has ids up to 256 ("<|end|>") but the model has 0 embedding rows`},
	} {
		err := tok.CheckFits(tt.rows, "the model")
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("rows %d: got %v, want no error", tt.rows, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("rows %d: got %v\nwant an error containing %q", tt.rows, err, tt.want)
		}
	}
}
