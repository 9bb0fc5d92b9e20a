package tokenizer

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	content    string
	id         int64
	special    bool
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
}

// addedMatcher finds added tokens in text, leftmost-longest like the
// Aho-Corasick automaton of Hugging Face's AddedVocabulary.
type addedMatcher struct {
	// byFirst holds, for each first byte, the tokens starting with it,
	// longest first.
	byFirst [256][]*addedToken
	// first is the first byte of every token when they all share one (as
	// "<|endoftext|>" alone does), -1 otherwise: next then jumps to it with
	// strings.IndexByte instead of looking at every byte.
	first int
}

func newAddedMatcher(tokens []*addedToken) *addedMatcher {
	m := &addedMatcher{first: int(tokens[0].content[0])}
	for _, a := range tokens {
		m.byFirst[a.content[0]] = append(m.byFirst[a.content[0]], a)
		if int(a.content[0]) != m.first {
			m.first = -1
		}
	}
	for _, list := range m.byFirst {
		slices.SortStableFunc(list, func(a, b *addedToken) int { return cmp.Compare(len(b.content), len(a.content)) })
	}
	return m
}

// split appends to ids the ids of s: the added tokens m finds, and between
// them (and around them) what between appends for the other text.
func (m *addedMatcher) split(ids []int64, s string, between func([]int64, string) []int64) []int64 {
	off := 0
	for {
		start, end, id, ok := m.next(s, off)
		if !ok {
			return between(ids, s[off:])
		}
		ids = append(between(ids, s[off:start]), id)
		off = end
	}
}

// next finds the first added token in s at or after byte from, where from is
// the end of the previous match. It returns the span that the token takes,
// widened by lstrip (never before from) and rstrip, and the token's id.
// Like Hugging Face, a match that single_word rejects is skipped as a whole.
// A nil matcher finds nothing.
func (m *addedMatcher) next(s string, from int) (start, end int, id int64, ok bool) {
	if m == nil {
		return 0, 0, 0, false
	}
	for i := from; i < len(s); i++ {
		if m.first >= 0 {
			j := strings.IndexByte(s[i:], byte(m.first))
			if j < 0 {
				return 0, 0, 0, false
			}
			i += j
		}
		var tok *addedToken
		for _, a := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], a.content) {
				tok = a
				break
			}
		}
		if tok == nil {
			continue
		}
		start, end = i, i+len(tok.content)
		if tok.singleWord && (endsWithWord(s[:start]) || startsWithWord(s[end:])) {
			i = end - 1
			continue
		}
		if tok.lstrip {
			start = max(len(strings.TrimRightFunc(s[:start], unicode.IsSpace)), from)
		}
		if tok.rstrip {
			end = len(s) - len(strings.TrimLeftFunc(s[end:], unicode.IsSpace))
		}
		return start, end, tok.id, true
	}
	return 0, 0, 0, false
}

// isWordRune is Rust's char::is_alphanumeric: the Alphabetic property (letters,
// letter numbers and Other_Alphabetic marks) or a number.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Other_Alphabetic, r)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}
