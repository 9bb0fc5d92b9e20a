package tokenizer

import (
	"mohawk/internal/sharedpath"

	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
)

// sharedPath returns a path under ../shared or skips the test.
func sharedPath(tb testing.TB, rel ...string) string {
	tb.Helper()
	return sharedpath.Path(tb, rel...)
}

var reference struct {
	once sync.Once
	tok  *Tokenizer
	err  error
}

// referenceTokenizer loads the reference tokenizer.json once.
func referenceTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	path := sharedPath(tb, "reference", "phi-tiny-en", "tokenizer.json")
	reference.once.Do(func() { reference.tok, reference.err = Load(path) })
	if reference.err != nil {
		tb.Fatal(reference.err)
	}
	return reference.tok
}

// readShared returns the contents of a file under the shared directory.
func readShared(tb testing.TB, rel ...string) []byte {
	tb.Helper()
	data, err := os.ReadFile(sharedPath(tb, rel...))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// byteLevelFile describes a small synthetic byte-level tokenizer.json: a
// vocabulary of the 256 byte characters (ids 0 to 255, in byte order), then
// one token per merge, then the added tokens.
type byteLevelFile struct {
	merges [][2]string      // in byte-level form, such as {"Ġ", "t"}
	added  []map[string]any // added_tokens entries without their ids
	edit   func(doc map[string]any)
}

// byteToken returns the byte-level form of s.
func byteToken(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteRune(byteChar[s[i]])
	}
	return b.String()
}

func (f byteLevelFile) json(tb testing.TB) []byte {
	tb.Helper()
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteChar[b])] = b
	}
	merges := make([]any, len(f.merges))
	for i, m := range f.merges {
		if _, ok := vocab[m[0]+m[1]]; !ok {
			vocab[m[0]+m[1]] = len(vocab)
		}
		merges[i] = []string{m[0], m[1]}
	}
	added := make([]any, len(f.added))
	for i, a := range f.added {
		entry := map[string]any{"id": len(vocab) + i}
		for k, v := range a {
			entry[k] = v
		}
		added[i] = entry
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil,
			"continuing_subword_prefix": nil, "end_of_word_suffix": nil,
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges,
		},
	}
	if f.edit != nil {
		f.edit(doc)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func (f byteLevelFile) parse(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := Parse(f.json(tb), "synthetic.json")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// model returns the model object of a document built by byteLevelFile.
func model(doc map[string]any) map[string]any { return doc["model"].(map[string]any) }

// ids returns the ids of texts: each is a vocabulary token (given as text,
// not in byte-level form), an added token, or else stands for its bytes'
// tokens.
func ids(tb testing.TB, tok *Tokenizer, texts ...string) []int64 {
	tb.Helper()
	var out []int64
	for _, s := range texts {
		if id, ok := tok.TokenID(byteToken(s)); ok {
			out = append(out, id)
			continue
		}
		if id, ok := tok.TokenID(s); ok {
			out = append(out, id)
			continue
		}
		for i := range len(s) {
			id, ok := tok.TokenID(string(byteChar[s[i]]))
			if !ok {
				tb.Fatalf("no token for byte %#x of %q", s[i], s)
			}
			out = append(out, id)
		}
	}
	return out
}
