package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// gpt2Pattern is the pre-tokenizer pattern that gpt2Piece implements.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// The JSON shapes of the parts of tokenizer.json that are read.
type (
	fileJSON struct {
		AddedTokens   json.RawMessage `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor json.RawMessage `json:"post_processor"`
		Decoder       json.RawMessage `json:"decoder"`
		Model         json.RawMessage `json:"model"`
	}
	addedJSON struct {
		ID         *int64  `json:"id"`
		Content    *string `json:"content"`
		SingleWord bool    `json:"single_word"`
		LStrip     bool    `json:"lstrip"`
		RStrip     bool    `json:"rstrip"`
		Normalized *bool   `json:"normalized"`
		Special    bool    `json:"special"`
	}
	// componentJSON holds the fields of the normalizer, pre-tokenizer,
	// post-processor and decoder objects that matter here.
	componentJSON struct {
		Type           string            `json:"type"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
		Pattern        *struct {
			Regex  *string `json:"Regex"`
			String *string `json:"String"`
		} `json:"pattern"`
		Behavior      string  `json:"behavior"`
		Invert        bool    `json:"invert"`
		Replacement   *string `json:"replacement"`
		PrependScheme *string `json:"prepend_scheme"`
		Split         *bool   `json:"split"`
	}
	modelJSON struct {
		Type                    string            `json:"type"`
		Dropout                 *float64          `json:"dropout"`
		UnkToken                *string           `json:"unk_token"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		FuseUnk                 bool              `json:"fuse_unk"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Vocab                   map[string]int64  `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
	}
)

// parser carries the name of the file for error messages.
type parser struct{ source string }

func (p parser) errorf(key, format string, args ...any) error {
	return fmt.Errorf("tokenizer: %s: %s: %s", p.source, key, fmt.Sprintf(format, args...))
}

// decode unmarshals the value of key; a missing value or null leaves v as is.
func (p parser) decode(raw json.RawMessage, key string, v any) error {
	if isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return p.errorf(key, "%v", err)
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// Parse builds a Tokenizer from the contents of a tokenizer.json; source
// names the file in error messages. Only byte-level BPE tokenizers are
// accepted: model.type BPE, normalizer null, a ByteLevel pre-tokenizer
// (alone, or in a Sequence after Splits with the GPT-2 pattern) and a
// ByteLevel decoder.
func Parse(data []byte, source string) (*Tokenizer, error) {
	p := parser{source: source}
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: not a tokenizer.json object: %v (pass a Hugging Face tokenizer.json)", source, err)
	}
	t := &Tokenizer{source: source}
	var err error
	if t.norm, err = p.normalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.pre, err = p.preTokenizer(f.PreTokenizer, "pre_tokenizer", true); err != nil {
		return nil, err
	}
	if t.pre.byteLevel {
		err = p.checkByteLevel(f.Decoder, "decoder", false)
	} else {
		t.decoder, err = p.charDecoder(f.Decoder, "decoder")
	}
	if err != nil {
		return nil, err
	}
	var m modelJSON
	if isNull(f.Model) {
		return nil, p.errorf("model", "missing; a tokenizer.json needs a BPE model")
	}
	if err := p.decode(f.Model, "model", &m); err != nil {
		return nil, err
	}
	var added []addedJSON
	if err := p.decode(f.AddedTokens, "added_tokens", &added); err != nil {
		return nil, err
	}
	if err := p.vocabulary(t, &m, added); err != nil {
		return nil, err
	}
	if t.model, err = p.bpe(t, &m); err != nil {
		return nil, err
	}
	if t.post, err = p.postProcessor(f.PostProcessor, "post_processor", len(t.entries)); err != nil {
		return nil, err
	}
	return t, nil
}

// checkByteLevel accepts a ByteLevel component, or null where nullOK.
func (p parser) checkByteLevel(raw json.RawMessage, key string, nullOK bool) error {
	if isNull(raw) {
		if nullOK {
			return nil
		}
		return p.errorf(key, "missing; byte-level BPE needs a ByteLevel %s", key)
	}
	var c componentJSON
	if err := p.decode(raw, key, &c); err != nil {
		return err
	}
	if c.Type != "ByteLevel" {
		return p.errorf(key+".type", "%q is not supported; only ByteLevel is (this package handles byte-level BPE tokenizers only)", c.Type)
	}
	return nil
}

// preTokenizer reads a ByteLevel pre-tokenizer, or a Sequence of Splits with
// the GPT-2 pattern ending with a ByteLevel. top is false inside a Sequence.
func (p parser) preTokenizer(raw json.RawMessage, key string, top bool) (preTokenizer, error) {
	if isNull(raw) && top {
		return preTokenizer{}, nil // a character-level tokenizer without pre-tokenizer
	}
	var c componentJSON
	if err := p.decode(raw, key, &c); err != nil {
		return preTokenizer{}, err
	}
	switch c.Type {
	case "Metaspace":
		if !top {
			break
		}
		ms, err := p.metaspace(&c.Replacement, c.PrependScheme, c.AddPrefixSpace, c.Split, key)
		return preTokenizer{metaspace: ms}, err
	case "ByteLevel":
		// Hugging Face's defaults for fields absent from older files.
		pre := preTokenizer{byteLevel: true, addPrefixSpace: true, useRegex: true}
		if c.AddPrefixSpace != nil {
			pre.addPrefixSpace = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			pre.useRegex = *c.UseRegex
		}
		return pre, nil
	case "Sequence":
		if !top {
			break
		}
		if len(c.PreTokenizers) == 0 {
			return preTokenizer{}, p.errorf(key+".pretokenizers", "empty; it needs a ByteLevel pre-tokenizer")
		}
		last := len(c.PreTokenizers) - 1
		if last > 1 {
			return preTokenizer{}, p.errorf(key+".pretokenizers", "has %d entries; only one Split followed by ByteLevel is supported", last+1)
		}
		var split func(string) int
		if last == 1 {
			var err error
			if split, err = p.split(c.PreTokenizers[0], key+".pretokenizers[0]"); err != nil {
				return preTokenizer{}, err
			}
		}
		pre, err := p.preTokenizer(c.PreTokenizers[last], fmt.Sprintf("%s.pretokenizers[%d]", key, last), false)
		pre.split = split
		return pre, err
	}
	return preTokenizer{}, p.errorf(key+".type", "%q is not supported; use ByteLevel, a Sequence of a Split (GPT-2, Llama-3 or Qwen2 pattern) and ByteLevel, Metaspace, or null", c.Type)
}

// split reads a Split pre-tokenizer and returns the scanner of its pattern.
func (p parser) split(raw json.RawMessage, key string) (func(string) int, error) {
	var c componentJSON
	if err := p.decode(raw, key, &c); err != nil {
		return nil, err
	}
	if c.Type != "Split" {
		return nil, p.errorf(key+".type", "%q is not supported before the ByteLevel pre-tokenizer; only a Split is", c.Type)
	}
	if c.Pattern == nil || c.Pattern.Regex == nil {
		return nil, p.errorf(key+".pattern", "missing a Regex; only the GPT-2, Llama-3 and Qwen2 regexes are supported")
	}
	if c.Behavior != "Isolated" || c.Invert {
		return nil, p.errorf(key+".behavior", "%q with invert %v is not supported; only Isolated without invert is", c.Behavior, c.Invert)
	}
	return p.splitPiece(*c.Pattern.Regex, key+".pattern.Regex")
}

// vocabulary fills t.entries, t.ids, t.special and the added-token matchers
// from model.vocab and added_tokens.
func (p parser) vocabulary(t *Tokenizer, m *modelJSON, added []addedJSON) error {
	if m.Type != "BPE" && (m.Type != "" || m.Merges == nil) {
		return p.errorf("model.type", "%q is not supported; only BPE is", m.Type)
	}
	if len(m.Vocab) == 0 {
		return p.errorf("model.vocab", "missing or empty; a BPE model needs its vocabulary")
	}
	count, maxID := len(m.Vocab), int64(-1)
	for tok, id := range m.Vocab {
		if id < 0 || id > math.MaxInt32 {
			return p.errorf("model.vocab", "token %q has id %d outside [0, %d]", tok, id, math.MaxInt32)
		}
		maxID = max(maxID, id)
	}
	for i, a := range added {
		key := fmt.Sprintf("added_tokens[%d]", i)
		switch {
		case a.ID == nil:
			return p.errorf(key+".id", "missing")
		case *a.ID < 0 || *a.ID > math.MaxInt32:
			return p.errorf(key+".id", "%d is outside [0, %d]", *a.ID, math.MaxInt32)
		case a.Content == nil || *a.Content == "":
			return p.errorf(key+".content", "missing or empty")
		}
		count++
		maxID = max(maxID, *a.ID)
	}
	// Ids index a dense table; refuse files that would make it huge.
	if maxID >= 2*int64(count)+1024 {
		return p.errorf("model.vocab", "ids are too sparse: the largest is %d for %d tokens", maxID, count)
	}
	t.entries = make([]entry, maxID+1)
	t.ids = make(map[string]int64, count)
	dupID := int64(-1)
	var dupPair [2]string
	for tok, id := range m.Vocab {
		if e := &t.entries[id]; e.ok {
			if dupID < 0 || id < dupID {
				dupID, dupPair = id, [2]string{min(e.token, tok), max(e.token, tok)}
			}
			continue
		}
		t.entries[id] = entry{token: tok, text: decodeToken(tok), ok: true}
		t.ids[tok] = id
	}
	if dupID >= 0 {
		return p.errorf("model.vocab", "tokens %q and %q share id %d; each id must name one token", dupPair[0], dupPair[1], dupID)
	}

	t.special = make(map[string]int64)
	var raw, normalized []*addedToken
	seen := make(map[string]bool, len(added))
	for i, a := range added {
		key := fmt.Sprintf("added_tokens[%d]", i)
		content, id := *a.Content, *a.ID
		if vid, ok := t.ids[content]; ok && vid != id {
			if seen[content] {
				return p.errorf(key, "token %q appears twice, with ids %d and %d", content, vid, id)
			}
			return p.errorf(key, "token %q has id %d but model.vocab gives it id %d; the ids must agree", content, id, vid)
		}
		if e := t.entries[id]; e.ok && e.token != content {
			return p.errorf(key, "id %d of %q is already taken by %q; each id must name one token", id, content, e.token)
		}
		if seen[content] {
			continue // the same token listed twice
		}
		seen[content] = true
		t.entries[id] = entry{token: content, text: decodeToken(content), ok: true}
		t.ids[content] = id
		tok := &addedToken{
			content:    content,
			id:         id,
			special:    a.Special,
			singleWord: a.SingleWord,
			lstrip:     a.LStrip,
			rstrip:     a.RStrip,
			normalized: !a.Special, // Hugging Face's default
		}
		if a.Normalized != nil {
			tok.normalized = *a.Normalized
		}
		if tok.special {
			t.special[content] = id
		}
		if tok.normalized {
			normalized = append(normalized, tok)
		} else {
			raw = append(raw, tok)
		}
	}
	if len(raw) > 0 {
		t.raw = newAddedMatcher(raw)
	}
	if normalized = t.norm.addedTokens(normalized); len(normalized) > 0 {
		t.normalized = newAddedMatcher(normalized)
	}
	return nil
}

// bpe builds the BPE model from model: its merges, byte symbols and options.
func (p parser) bpe(t *Tokenizer, m *modelJSON) (*bpeModel, error) {
	switch {
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, p.errorf("model.dropout", "%v is not supported; dropout makes encoding random, set it to null", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, p.errorf("model.continuing_subword_prefix", "%q is not supported by byte-level BPE; set it to null", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, p.errorf("model.end_of_word_suffix", "%q is not supported by byte-level BPE; set it to null", *m.EndOfWordSuffix)
	}
	vocabID := func(tok string) (int32, bool) {
		id, ok := m.Vocab[tok]
		return int32(id), ok
	}
	merges := newMergeTable(len(m.Merges))
	b := &bpeModel{unk: -1, fuseUnk: m.FuseUnk, merges: &merges}
	if m.UnkToken != nil {
		id, ok := vocabID(*m.UnkToken)
		if !ok {
			return nil, p.errorf("model.unk_token", "%q is not in model.vocab; add it or set unk_token to null", *m.UnkToken)
		}
		b.unk = id
	}
	for i, raw := range m.Merges {
		key := fmt.Sprintf("model.merges[%d]", i)
		left, right, err := p.mergePair(raw, key)
		if err != nil {
			return nil, err
		}
		a, okA := vocabID(left)
		c, okC := vocabID(right)
		joined, okJ := vocabID(left + right)
		switch {
		case !okA:
			return nil, p.errorf(key, "token %q is not in model.vocab; the merges do not match the vocabulary", left)
		case !okC:
			return nil, p.errorf(key, "token %q is not in model.vocab; the merges do not match the vocabulary", right)
		case !okJ:
			return nil, p.errorf(key, "merged token %q is not in model.vocab; the merges do not match the vocabulary", left+right)
		}
		// A repeated pair keeps its last rank, as in Hugging Face.
		b.merges.set(a, c, merge{rank: int32(i), id: joined})
	}
	for c := range 256 {
		ch := string(byteChar[c])
		if id, ok := vocabID(ch); ok {
			b.byteIDs[c] = []int32{id}
			continue
		}
		if m.ByteFallback {
			ids := make([]int32, 0, len(ch))
			for i := range len(ch) {
				if id, ok := vocabID(fmt.Sprintf("<0x%02X>", ch[i])); ok {
					ids = append(ids, id)
				}
			}
			if len(ids) == len(ch) {
				b.byteIDs[c] = ids
				continue
			}
		}
		if b.unk >= 0 {
			b.byteIDs[c] = []int32{b.unk}
		}
	}
	if !t.pre.byteLevel {
		b.chars = newCharSymbols(m)
	}
	if m.IgnoreMerges {
		b.whole = make(map[string]int32, len(m.Vocab))
		for tok, id := range m.Vocab {
			word := tok // character-level models see tokens as they are
			if t.pre.byteLevel {
				raw, ok := unmapByteLevel(tok)
				if !ok {
					continue
				}
				word = string(raw)
			}
			b.whole[word] = int32(id)
		}
	}
	return b, nil
}

// mergePair reads one merge: a two-element array, or the older "left right"
// string.
func (p parser) mergePair(raw json.RawMessage, key string) (left, right string, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := p.decode(raw, key, &s); err != nil {
			return "", "", err
		}
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return "", "", p.errorf(key, "%q is not two tokens separated by one space", s)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := p.decode(raw, key, &pair); err != nil {
		return "", "", err
	}
	if len(pair) != 2 {
		return "", "", p.errorf(key, "has %d elements; a merge is a pair of tokens", len(pair))
	}
	return pair[0], pair[1], nil
}
