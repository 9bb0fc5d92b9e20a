package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// metaspace is the Metaspace pre-tokenizer of SentencePiece-style
// tokenizers: spaces become the replacement character ("▁"), which is
// prepended to the text (always, or only to the stretch at the very start
// of the input), and with split the text is cut before every replacement.
type metaspace struct {
	replacement string
	prepend     string // "always", "first" or "never"
	split       bool
}

// appendPieces encodes s with model; first tells whether s starts the
// input text.
func (m *metaspace) appendPieces(ids []int64, s string, first bool, model *bpeModel) []int64 {
	if s == "" {
		return ids
	}
	s = strings.ReplaceAll(s, " ", m.replacement)
	if (m.prepend == "always" || m.prepend == "first" && first) && !strings.HasPrefix(s, m.replacement) {
		s = m.replacement + s
	}
	if !m.split {
		return model.appendWord(ids, s)
	}
	for s != "" {
		n := strings.Index(s[len(m.replacement):], m.replacement)
		if n < 0 {
			return model.appendWord(ids, s)
		}
		n += len(m.replacement)
		ids = model.appendWord(ids, s[:n])
		s = s[n:]
	}
	return ids
}

// charSymbols gives the first symbols of a word for a BPE model that works
// on characters (SentencePiece style) rather than bytes: each character's
// vocabulary id, else its bytes' <0xNN> tokens when model.byte_fallback has
// them all, else the unknown token.
type charSymbols struct {
	vocab    map[string]int32
	fallback [256]int32 // id of <0xNN>, -1 when absent or without byte_fallback
}

func newCharSymbols(m *modelJSON) *charSymbols {
	c := &charSymbols{vocab: make(map[string]int32, len(m.Vocab))}
	for tok, id := range m.Vocab {
		c.vocab[tok] = int32(id)
	}
	for b := range c.fallback {
		c.fallback[b] = -1
		if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok && m.ByteFallback {
			c.fallback[b] = int32(id)
		}
	}
	return c
}

func (c *charSymbols) appendSymbols(syms []symbol, w string, unk int32, fuseUnk bool) []symbol {
	push := func(id int32) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
	}
	// Like Hugging Face, an unknown token waits until the next character
	// of the vocabulary (or the end of the word), so byte-fallback tokens
	// in between come before it, and fuse_unk joins it with later unknowns.
	pending := false
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		ch := w[i : i+n]
		i += n
		if id, ok := c.vocab[ch]; ok {
			if pending {
				push(unk)
				pending = false
			}
			push(id)
			continue
		}
		if c.hasFallback(ch) {
			for j := range len(ch) {
				push(c.fallback[ch[j]])
			}
			continue
		}
		if unk >= 0 {
			if pending && !fuseUnk {
				push(unk)
			}
			pending = true
		}
	}
	if pending {
		push(unk)
	}
	return syms
}

func (c *charSymbols) hasFallback(ch string) bool {
	for j := range len(ch) {
		if c.fallback[ch[j]] < 0 {
			return false
		}
	}
	return true
}

// decodeStep is one decoder of a Sequence decoder for character-level
// tokenizers; it rewrites the list of token strings.
type decodeStep func(tokens []string) []string

type decoderJSON struct {
	Type        string            `json:"type"`
	Decoders    []json.RawMessage `json:"decoders"`
	Content     *string           `json:"content"`
	Start       int               `json:"start"`
	Stop        int               `json:"stop"`
	Replacement *string           `json:"replacement"`
	Prepend     *string           `json:"prepend_scheme"`
	AddPrefix   *bool             `json:"add_prefix_space"`
	Pattern     *struct {
		String *string `json:"String"`
	} `json:"pattern"`
}

// charDecoder reads the decoder of a character-level tokenizer: Replace
// (String pattern), ByteFallback, Fuse, Strip, Metaspace, or a Sequence of
// them.
func (p parser) charDecoder(raw json.RawMessage, key string) ([]decodeStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c decoderJSON
	if err := p.decode(raw, key, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var steps []decodeStep
		for i, item := range c.Decoders {
			s, err := p.charDecoder(item, fmt.Sprintf("%s.decoders[%d]", key, i))
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String == "" || c.Content == nil {
			return nil, p.errorf(key, "a Replace decoder needs a non-empty String pattern and a content")
		}
		from, to := *c.Pattern.String, *c.Content
		return []decodeStep{func(toks []string) []string {
			for i, t := range toks {
				toks[i] = strings.ReplaceAll(t, from, to)
			}
			return toks
		}}, nil
	case "ByteLevel":
		return nil, p.errorf(key+".type", "%q needs a ByteLevel pre_tokenizer; this file's pre-tokenizer is not byte-level", c.Type)
	case "ByteFallback":
		return []decodeStep{byteFallbackDecode}, nil
	case "Fuse":
		return []decodeStep{func(toks []string) []string { return []string{strings.Join(toks, "")} }}, nil
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 || c.Start < 0 || c.Stop < 0 {
			return nil, p.errorf(key, "a Strip decoder needs a one-character content and non-negative start and stop")
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return []decodeStep{func(toks []string) []string {
			for i, t := range toks {
				toks[i] = stripRune(t, r, c.Start, c.Stop)
			}
			return toks
		}}, nil
	case "Metaspace":
		ms, err := p.metaspace(&c.Replacement, c.Prepend, c.AddPrefix, nil, key)
		if err != nil {
			return nil, err
		}
		return []decodeStep{func(toks []string) []string {
			for i, t := range toks {
				to := " "
				if i == 0 && ms.prepend != "never" {
					to = ""
				}
				toks[i] = strings.ReplaceAll(t, ms.replacement, to)
			}
			return toks
		}}, nil
	}
	return nil, p.errorf(key+".type", "%q is not supported for a SentencePiece-style tokenizer; supported decoders are Replace, ByteFallback, Fuse, Strip, Metaspace and a Sequence of them", c.Type)
}

// metaspace reads the fields of a Metaspace pre-tokenizer or decoder.
func (p parser) metaspace(replacement **string, scheme *string, addPrefix, split *bool, key string) (*metaspace, error) {
	m := &metaspace{replacement: "▁", prepend: "always", split: true}
	if *replacement != nil {
		m.replacement = **replacement
	}
	if utf8.RuneCountInString(m.replacement) != 1 {
		return nil, p.errorf(key+".replacement", "%q is not one character", m.replacement)
	}
	if addPrefix != nil && !*addPrefix {
		m.prepend = "never"
	}
	if scheme != nil {
		m.prepend = *scheme
	}
	if m.prepend != "always" && m.prepend != "first" && m.prepend != "never" {
		return nil, p.errorf(key+".prepend_scheme", "%q is not always, first or never", m.prepend)
	}
	if split != nil {
		m.split = *split
	}
	return m, nil
}

// byteFallbackDecode turns runs of <0xNN> tokens into the text of their
// bytes, or into one U+FFFD per token when the bytes are not valid UTF-8.
func byteFallbackDecode(toks []string) []string {
	out := make([]string, 0, len(toks))
	var run []byte
	flush := func() {
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			out = append(out, strings.Repeat("\uFFFD", len(run)))
		}
		run = run[:0]
	}
	for _, t := range toks {
		if b, ok := fallbackByte(t); ok {
			run = append(run, b)
			continue
		}
		if len(run) > 0 {
			flush()
		}
		out = append(out, t)
	}
	if len(run) > 0 {
		flush()
	}
	return out
}

// fallbackByte parses a byte-fallback token "<0xNN>".
func fallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range t[3:5] {
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = byte(c - '0')
		case 'a' <= c && c <= 'f':
			v = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			v = byte(c - 'A' + 10)
		default:
			return 0, false
		}
		b = b<<4 | v
	}
	return b, true
}

// stripRune removes up to start leading and stop trailing r from t.
func stripRune(t string, r rune, start, stop int) string {
	for ; start > 0; start-- {
		c, n := utf8.DecodeRuneInString(t)
		if t == "" || c != r {
			break
		}
		t = t[n:]
	}
	for ; stop > 0; stop-- {
		c, n := utf8.DecodeLastRuneInString(t)
		if t == "" || c != r {
			break
		}
		t = t[:len(t)-n]
	}
	return t
}

// decodeChars decodes ids with the decoder steps of a character-level
// tokenizer.
func (t *Tokenizer) decodeChars(ids []int64) string {
	toks := make([]string, len(ids))
	for i, id := range ids {
		toks[i] = t.entries[id].token
	}
	for _, step := range t.decoder {
		toks = step(toks)
	}
	return strings.Join(toks, "")
}
