package data

import (
	"fmt"
	"strings"
	"unicode"
)

// Completion is a context and the continuation a model is scored on, as in
// lm-evaluation-harness's LAMBADA: the continuation starts with the space
// that separates it from the context.
type Completion struct {
	Context string
	Target  string
}

// splitLastWord cuts text as lm-evaluation-harness's lambada_openai does:
// the context is " ".join(text.split(" ")[:-1]) and the target is
// " " + text.split(" ")[-1].
func splitLastWord(text string) Completion {
	i := strings.LastIndexByte(text, ' ')
	if i < 0 {
		return Completion{Context: "", Target: " " + text}
	}
	return Completion{Context: text[:i], Target: text[i:]}
}

// LastWordExamples makes LAMBADA-style examples from held-out documents
// (paragraphs), in document order, at most n of them (all when n ≤ 0). For
// each document: surrounding white space and trailing punctuation and
// symbols are removed; the document is kept if it then has at least minWords
// white-space separated words and its last space-separated word is a word
// (a letter, then letters, digits, apostrophes or hyphens); it is cut as
// lambada_openai cuts its texts: the context is the text before the last
// space, the target is " " + the last word.
func LastWordExamples(docs []string, minWords, n int) []Completion {
	var out []Completion
	for _, d := range docs {
		if n > 0 && len(out) == n {
			break
		}
		t := strings.TrimRightFunc(strings.TrimSpace(d), func(r rune) bool {
			return unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
		})
		c := splitLastWord(t)
		if c.Context == "" || !isWord(c.Target[1:]) || len(strings.Fields(t)) < minWords {
			continue
		}
		out = append(out, c)
	}
	return out
}

// isWord reports whether w is a letter followed by letters, digits,
// apostrophes and hyphens.
func isWord(w string) bool {
	for i, r := range w {
		switch {
		case unicode.IsLetter(r):
		case i > 0 && (unicode.IsDigit(r) || r == '\'' || r == '’' || r == '-'):
		default:
			return false
		}
	}
	return w != ""
}

// LoadLambada reads a lambada_openai file, one {"text": ...} object per
// JSONL line or Parquet row (a file whose name ends in ".parquet"), and cuts
// every text as lm-evaluation-harness does (see Completion).
func LoadLambada(path string) ([]Completion, error) {
	return readLambada(path, func(fn func(object) error) error { return eachRecord(path, "LAMBADA", fn) })
}

// readLambada cuts the texts of the records each gives from file.
func readLambada(file string, each func(fn func(object) error) error) ([]Completion, error) {
	var out []Completion
	err := each(func(o object) error {
		text, err := o.str("text", `lambada_openai lines are {"text": "..."}`)
		if err != nil {
			return err
		}
		out = append(out, splitLastWord(text))
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%s has no examples; check the LAMBADA file path", file)
	}
	return out, err
}
