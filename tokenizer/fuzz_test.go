package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeDecode checks that any valid UTF-8 text survives Encode then
// Decode with the reference tokenizer.
func FuzzEncodeDecode(f *testing.F) {
	tok := referenceTokenizer(f)
	for _, s := range []string{
		"", "Hello world", "I'm you're we've they'll he'd", "a   b  \n\n\tc ",
		"1,000.5 ½²", "naïve 日本語 🦀🇰🇷", "x<|endoftext|>y", "<|endoftext", "e\u0301\u00a0\u3000",
	} {
		f.Add(s)
	}
	val := readShared(f, "data", "en", "val.txt")
	for doc := range strings.SplitSeq(string(val[:min(len(val), 2000)]), "\n\n") {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("Hugging Face only encodes valid UTF-8")
		}
		ids := tok.Encode(s)
		got, err := tok.Decode(ids)
		if err != nil {
			t.Fatalf("Decode(Encode(%q)): %v", s, err)
		}
		if got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}

// FuzzParse checks that Parse never panics, and that what it accepts can
// encode and decode.
func FuzzParse(f *testing.F) {
	pre := `"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},"decoder":{"type":"ByteLevel"}`
	for _, s := range []string{
		`{` + pre + `,"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"Ġ":3},"merges":[["a","b"]]}}`,
		`{` + pre + `,"model":{"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[{"id":3,"content":"<s>","special":true}]}`,
		`{` + pre + `,"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,"vocab":{"<unk>":0,"<0x61>":1},"merges":[]}}`,
		`{` + pre + `,"model":{"type":"BPE","ignore_merges":true,"vocab":{"a":0,"aa":1},"merges":[["a","a"]]},"added_tokens":[{"id":2,"content":"  ","lstrip":true,"rstrip":true,"single_word":true}]}`,
		`{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"` +
			strings.ReplaceAll(gpt2Pattern, `\`, `\\`) + `"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]},"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`,
		`{"model":{"type":"WordPiece"}}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	for _, name := range hfKinds {
		data, err := os.ReadFile(filepath.Join("testdata", "hf", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Parse(data, "fuzz.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer: fuzz.json: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, s := range []string{"ab a  b<s>", "\x00\xff€"} {
			if _, err := tok.Decode(tok.Encode(s)); err != nil {
				t.Fatalf("Decode(Encode(%q)): %v", s, err)
			}
		}
	})
}
