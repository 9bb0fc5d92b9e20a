package tokenizer

import (
	"fmt"
	"os"
	"unicode/utf8"
)

// Tokenizer is a byte-level BPE tokenizer loaded from a tokenizer.json. It is
// safe for concurrent use, except a Fork, which is for one goroutine.
type Tokenizer struct {
	source  string
	entries []entry          // indexed by id; entries[id].ok when id is in use
	ids     map[string]int64 // token string (vocabulary form) or added-token content to id
	special map[string]int64 // content of added tokens marked special

	raw        *addedMatcher // added tokens with normalized false, nil if none
	normalized *addedMatcher // added tokens with normalized true, nil if none
	norm       normalizer
	pre        preTokenizer
	model      *bpeModel
	post       template
	decoder    []decodeStep // decoders of a character-level tokenizer; unused when pre.byteLevel
}

type entry struct {
	token string // as in the file: byte-level characters, or an added token's content
	text  string // the bytes the ByteLevel decoder turns token into
	ok    bool
}

// preTokenizer is the supported family of pre-tokenizers: an optional Split
// with a supported pattern, then ByteLevel; or, for character-level
// (SentencePiece-style) tokenizers, Metaspace or none.
type preTokenizer struct {
	split          func(string) int // the Split's scanner (splitPatterns), nil without a Split
	byteLevel      bool             // ends with ByteLevel: the model works on bytes
	addPrefixSpace bool             // ByteLevel's add_prefix_space
	useRegex       bool             // ByteLevel's use_regex
	metaspace      *metaspace       // a Metaspace pre-tokenizer, nil if none
}

// Load reads and parses the tokenizer.json at path.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w (pass the path of a Hugging Face tokenizer.json)", err)
	}
	return Parse(data, path)
}

// Fork returns a tokenizer that shares t's vocabulary and merges but has
// its own private cache of encoded pieces, without locks. Unlike t, a fork
// is for one goroutine at a time: goroutines encoding in parallel should
// each use their own fork, since a cache they all share makes them contend
// for its locks (BenchmarkEncodeParallel).
func (t *Tokenizer) Fork() *Tokenizer {
	c := *t
	m := t.model
	c.model = &bpeModel{byteIDs: m.byteIDs, merges: m.merges, unk: m.unk, fuseUnk: m.fuseUnk, whole: m.whole, chars: m.chars}
	c.model.cache.private = true
	return &c
}

// Encode returns the token ids of text, as Hugging Face's
// tokenizer.encode(text, add_special_tokens=True).ids would: with the
// special tokens of a TemplateProcessing post-processor around them. Text
// that is not valid UTF-8 is encoded byte by byte like any other text.
func (t *Tokenizer) Encode(text string) []int64 {
	return t.AppendEncode(make([]int64, 0, len(text)/3+1+len(t.post.prefix)+len(t.post.suffix)), text)
}

// AppendEncode appends the ids that Encode returns for text to ids and
// returns the extended slice. Encoding many texts into one reused slice
// saves an allocation per text.
func (t *Tokenizer) AppendEncode(ids []int64, text string) []int64 {
	ids = append(ids, t.post.prefix...)
	segment := 0 // the first segment is the one at the start of text
	ids = t.raw.split(ids, text, func(ids []int64, s string) []int64 {
		segment++
		return t.appendNormalized(ids, s, segment == 1)
	})
	return append(ids, t.post.suffix...)
}

// appendNormalized encodes a stretch of text free of raw added tokens: it
// normalizes it, then looks for the added tokens marked normalized. first
// tells whether s starts the input text.
func (t *Tokenizer) appendNormalized(ids []int64, s string, first bool) []int64 {
	if t.norm != nil {
		s = t.norm.apply(s)
	}
	segment := 0
	return t.normalized.split(ids, s, func(ids []int64, s string) []int64 {
		segment++
		return t.appendPreTokenized(ids, s, first && segment == 1)
	})
}

func (t *Tokenizer) appendPreTokenized(ids []int64, s string, first bool) []int64 {
	switch {
	case t.pre.metaspace != nil:
		return t.pre.metaspace.appendPieces(ids, s, first, t.model)
	case !t.pre.byteLevel:
		if s == "" {
			return ids
		}
		return t.model.appendWord(ids, s)
	case t.pre.split == nil:
		return t.appendByteLevel(ids, s)
	}
	for s != "" {
		n := t.pre.split(s)
		ids = t.appendByteLevel(ids, s[:n])
		s = s[n:]
	}
	return ids
}

func (t *Tokenizer) appendByteLevel(ids []int64, s string) []int64 {
	if s == "" {
		return ids
	}
	if t.pre.addPrefixSpace && s[0] != ' ' {
		s = " " + s
	}
	if !t.pre.useRegex {
		return t.model.appendWord(ids, s)
	}
	for s != "" {
		n := gpt2Piece(s)
		ids = t.model.appendWord(ids, s[:n])
		s = s[n:]
	}
	return ids
}

// Decode returns the text of ids. Added tokens, special ones included, decode
// to their content; byte sequences that are not valid UTF-8 become U+FFFD as
// in Hugging Face's lossy decoding. An id outside the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int64) (string, error) {
	buf := make([]byte, 0, 4*len(ids))
	for i, id := range ids {
		if id < 0 || id >= int64(len(t.entries)) || !t.entries[id].ok {
			return "", fmt.Errorf("tokenizer: decode: id %d at position %d is not in the vocabulary of %s (ids run from 0 to %d)",
				id, i, t.source, len(t.entries)-1)
		}
		buf = append(buf, t.entries[id].text...)
	}
	if !t.pre.byteLevel {
		return t.decodeChars(ids), nil
	}
	return lossyUTF8(buf), nil
}

// lossyUTF8 converts b to a string, replacing each maximal ill-formed
// subsequence by U+FFFD as Rust's String::from_utf8_lossy does.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			n = invalidPrefix(b)
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return string(out)
}

// invalidPrefix returns the length of the maximal prefix of b that starts a
// well-formed UTF-8 sequence without completing it, at least 1; b must not
// start with a valid sequence.
func invalidPrefix(b []byte) int {
	lo, hi := byte(0x80), byte(0xBF) // allowed range of the second byte
	var need int                     // continuation bytes after the lead
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for n <= need && n < len(b) && lo <= b[n] && b[n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return n
}

// VocabSize returns the size of the id space: the largest id of the
// vocabulary and the added tokens, plus one.
func (t *Tokenizer) VocabSize() int { return len(t.entries) }

// CheckFits refuses the tokenizer for a model with rows embedding rows
// when its ids (added tokens included) reach past them: text could encode
// to an id the model has no row for. model names the model and where rows
// comes from.
func (t *Tokenizer) CheckFits(rows int64, model string) error {
	top := int64(len(t.entries)) - 1
	if top < rows {
		return nil
	}
	return fmt.Errorf("vocabulary mismatch: tokenizer %s has ids up to %d (%q) but %s has %d embedding rows (ids 0 to %d); use the tokenizer the model was trained with",
		t.source, top, t.entries[top].token, model, rows, rows-1)
}

// TokenID returns the id of a token given in its tokenizer.json form (such
// as "Ġthe" for " the") or of an added token's content.
func (t *Tokenizer) TokenID(token string) (int64, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// Token returns the tokenizer.json form of id: byte-level characters for
// the vocabulary, the content for an added token.
func (t *Tokenizer) Token(id int64) (string, bool) {
	if id < 0 || id >= int64(len(t.entries)) || !t.entries[id].ok {
		return "", false
	}
	return t.entries[id].token, true
}

// SpecialID returns the id of the added token marked special whose content
// is content, such as "<|endoftext|>".
func (t *Tokenizer) SpecialID(content string) (int64, bool) {
	id, ok := t.special[content]
	return id, ok
}
