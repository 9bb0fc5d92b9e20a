package tokenizer

import "strings"

// The Split patterns of Llama-3 (also OpenAI's cl100k) and Qwen2, as their
// tokenizer.json files spell them. They differ only in the digit groups.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitPatterns maps each supported Split regex to the scanner that cuts
// its first piece: the length in bytes of the first match in a non-empty
// string. Every character matches some alternative of these patterns, so
// the matches tile the text and Isolated splitting keeps them all.
var splitPatterns = map[string]func(string) int{
	gpt2Pattern:   gpt2Piece,
	llama3Pattern: func(s string) int { return llama3Piece(s, 3) },
	qwen2Pattern:  func(s string) int { return llama3Piece(s, 1) },
}

// splitPiece returns the scanner of a Split's regex, or an error naming it.
func (p parser) splitPiece(pattern, key string) (func(string) int, error) {
	if f, ok := splitPatterns[pattern]; ok {
		return f, nil
	}
	return nil, p.errorf(key, "the Split regex %q is not supported; supported are the GPT-2 pattern %q, the Llama-3 pattern %q and the Qwen2 pattern %q",
		pattern, gpt2Pattern, llama3Pattern, qwen2Pattern)
}

// llama3Piece returns the length in bytes of the first match of the Llama-3
// pattern (maxDigits 3) or the Qwen2 pattern (maxDigits 1) in the non-empty
// s, trying the alternatives in order as a backtracking engine does.
func llama3Piece(s string, maxDigits int) int {
	if n := contraction(s); n > 0 {
		return n
	}
	class, n := classAt(s)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if class == classLetter || !isCRLF(s[0]) && class != classNumber && n < len(s) && letterAt(s[n:]) {
		return classRunEnd(s, n, classLetter)
	}
	// \p{N}{1,3}
	if class == classNumber {
		return n + runOf(s[n:], classNumber, maxDigits-1)
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	start := 0
	if s[0] == ' ' && len(s) > 1 {
		if c, _ := classAt(s[1:]); c == classOther {
			start = 1
		}
	}
	if c, _ := classAt(s[start:]); c == classOther {
		end := classRunEnd(s, start, classOther)
		for end < len(s) && isCRLF(s[end]) {
			end++
		}
		return end
	}
	// s starts with whitespace. \s*[\r\n]+ takes the run up to its last
	// line break; \s+(?!\S) leaves the last character of a run that a
	// non-space follows, unless the run has only that one; \s+ takes it.
	run := classRunEnd(s, 0, classSpace)
	if i := strings.LastIndexAny(s[:run], "\r\n"); i >= 0 {
		return i + 1
	}
	if run == len(s) {
		return run
	}
	if last := lastRuneStart(s[:run]); last > 0 {
		return last
	}
	return run
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d), returning its length or 0.
func contraction(s string) int {
	if s[0] != '\'' || len(s) < 2 {
		return 0
	}
	lower := func(c byte) byte { return c | 0x20 }
	switch lower(s[1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if len(s) > 2 && lower(s[2]) == 'e' {
			return 3
		}
	case 'l':
		if len(s) > 2 && lower(s[2]) == 'l' {
			return 3
		}
	}
	return 0
}

func isCRLF(c byte) bool { return c == '\r' || c == '\n' }

func letterAt(s string) bool {
	c, _ := classAt(s)
	return c == classLetter
}

// runOf returns the length in bytes of the run of at most limit characters
// of class at the start of s.
func runOf(s string, class uint8, limit int) int {
	n := 0
	for ; limit > 0 && n < len(s); limit-- {
		c, m := classAt(s[n:])
		if c != class {
			break
		}
		n += m
	}
	return n
}

// lastRuneStart returns the byte offset of the last character of s.
func lastRuneStart(s string) int {
	i := len(s) - 1
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return i
}
