package tokenizer

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzEncodeHF encodes any text with every tokenizer kind of testdata/hf
// and checks that it does not panic, that every id is in the vocabulary,
// that encoding is deterministic, and that decoding succeeds. For the
// byte-level kinds, whose decoding is exact, Decode(Encode(s)) must be the
// template's leading special tokens followed by s as normalized (NFC),
// when s holds no added token (whose content the ByteLevel decoder maps
// through its byte table, as Hugging Face does).
func FuzzEncodeHF(f *testing.F) {
	toks := make([]*Tokenizer, len(hfKinds))
	for i, name := range hfKinds {
		toks[i] = loadHF(f, name)
	}
	for _, s := range []string{
		"", " ", "HELLO I'M 'S 'ſ", "a\t\tb  \t c\r\n\r\nd\n \n e   \n\tf    ", "12345678 ½ ٣٤٥",
		"🦀🇰🇷👩\u200d👧 cafe\u0301", "<|begin_of_text|>x<s>[INST] <extra_id>y", "▁▁ x ▁", "\x00\u2028\u3000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k, tok := range toks {
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || id >= int64(tok.VocabSize()) {
					t.Fatalf("%s: Encode(%q) gave id %d outside [0, %d)", hfKinds[k], s, id, tok.VocabSize())
				}
			}
			if again := tok.Encode(s); !slices.Equal(ids, again) {
				t.Fatalf("%s: Encode(%q) gave %v, then %v", hfKinds[k], s, ids, again)
			}
			got, err := tok.Decode(ids)
			if err != nil {
				t.Fatalf("%s: Decode(Encode(%q)): %v", hfKinds[k], s, err)
			}
			if tok.pre.byteLevel && utf8.ValidString(s) && !hasAdded(tok, s) {
				prefix, _ := tok.Decode(tok.post.prefix)
				if want := prefix + tok.norm.apply(s); got != want {
					t.Fatalf("%s: Decode(Encode(%q)) = %q, want %q", hfKinds[k], s, got, want)
				}
			}
		}
	})
}

// hasAdded reports whether tok finds an added token in s.
func hasAdded(tok *Tokenizer, s string) bool {
	_, _, _, raw := tok.raw.next(s, 0)
	_, _, _, normalized := tok.normalized.next(tok.norm.apply(s), 0)
	return raw || normalized
}
