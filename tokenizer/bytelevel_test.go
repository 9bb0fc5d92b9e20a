package tokenizer

import (
	"slices"
	"testing"
	"unicode/utf8"
)

func TestByteChar(t *testing.T) {
	t.Parallel()
	tests := []struct {
		b    byte
		want rune
	}{
		{'!', '!'},
		{'A', 'A'},
		{'~', '~'},
		{0x00, 'Ā'},      // U+0100: the first non-printable byte
		{'\t', 'ĉ'},      // U+0109
		{'\n', 'Ċ'},      // U+010A
		{' ', 'Ġ'},       // U+0120: GPT-2's well-known space marker
		{0x7F, 'ġ'},      // U+0121
		{0xA0, 'ł'},      // U+0142
		{0xA1, '¡'},      // printable Latin-1 stands for itself
		{0xAD, 'Ń'},      // U+0143: soft hyphen, the 68th and last remapped byte
		{0xFF, 'ÿ'},      // printable
		{0xE2, 'â'},      // UTF-8 lead bytes are printable Latin-1
		{0x80, 'Ģ'},      // U+0122
		{0x1F, '\u011f'}, // U+011F
	}
	for _, tt := range tests {
		t.Run(string(tt.want), func(t *testing.T) {
			t.Parallel()
			if got := byteChar[tt.b]; got != tt.want {
				t.Errorf("byteChar[%#x] = %U, want %U", tt.b, got, tt.want)
			}
			if got, ok := charByte[tt.want]; !ok || got != tt.b {
				t.Errorf("charByte[%U] = %#x, %v, want %#x", tt.want, got, ok, tt.b)
			}
		})
	}
	remapped := 0
	for b := range 256 {
		if byteChar[b] >= 0x100 {
			remapped++
		}
	}
	if remapped != 68 || len(charByte) != 256 {
		t.Errorf("%d bytes remapped and %d distinct characters, want 68 and 256", remapped, len(charByte))
	}
}

// gpt2Split cuts s into the pieces of the GPT-2 pre-tokenizer pattern.
func gpt2Split(s string) []string {
	var pieces []string
	for s != "" {
		n := gpt2Piece(s)
		pieces = append(pieces, s[:n])
		s = s[n:]
	}
	return pieces
}

func TestGPT2Split(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"words", "Hello world", []string{"Hello", " world"}},
		{"contractions", "I'm you're we've they'll he'd it's don't",
			[]string{"I", "'m", " you", "'re", " we", "'ve", " they", "'ll", " he", "'d", " it", "'s", " don", "'t"}},
		// The contractions are case-sensitive: "'S" is punctuation then a word.
		{"upper-case contraction", "HE'S", []string{"HE", "'", "S"}},
		{"chained contractions", "'ll've", []string{"'ll", "'ve"}},
		// 'l alone and 'r without e are not contractions.
		{"near contractions", "'l 'r 'x", []string{"'", "l", " '", "r", " '", "x"}},
		{"quote before contraction", "''s", []string{"''", "s"}},
		{"space quote", "say 'so'", []string{"say", " '", "so", "'"}},
		{"lone quote at end", "'", []string{"'"}},
		{"digits", "abc123def 456 7.89", []string{"abc", "123", "def", " 456", " 7", ".", "89"}},
		{"thousands", "1,000,000", []string{"1", ",", "000", ",", "000"}},
		{"punctuation runs", "Hello!!! ...? (x)", []string{"Hello", "!!!", " ...?", " (", "x", ")"}},
		{"punctuation swallows a quote", "?'s", []string{"?'", "s"}},
		{"spaces before a word", "a   b", []string{"a", "  ", " b"}},
		{"spaces before punctuation", "x  !", []string{"x", " ", " !"}},
		{"trailing spaces", "a   ", []string{"a", "   "}},
		{"only spaces", "   ", []string{"   "}},
		{"one space", " ", []string{" "}},
		{"leading space", " a", []string{" a"}},
		{"newline", "a\nb", []string{"a", "\n", "b"}},
		{"blank line", "a\n\nb", []string{"a", "\n", "\n", "b"}},
		{"newlines at end", "a\n\n", []string{"a", "\n\n"}},
		{"crlf", "a\r\nb", []string{"a", "\r", "\n", "b"}},
		{"space newline space", "a \n b", []string{"a", " \n", " b"}},
		{"tab indent", "\tif x:\n\t\treturn", []string{"\t", "if", " x", ":", "\n\t", "\t", "return"}},
		{"no-break space", "a\u00a0b", []string{"a", "\u00a0", "b"}},
		{"no-break space before space", "a\u00a0 b", []string{"a", "\u00a0", " b"}},
		{"ideographic space", "a\u3000\u3000b", []string{"a", "\u3000", "\u3000", "b"}},
		{"latin letters", "naïve café", []string{"naïve", " café"}},
		{"cyrillic", "Привет мир", []string{"Привет", " мир"}},
		{"cjk", "日本語テキスト", []string{"日本語テキスト"}},
		{"cjk digits", "東京2020年", []string{"東京", "2020", "年"}},
		// A combining mark (Mn) is neither a letter nor a number.
		{"combining mark", "e\u0301t\u00e9", []string{"e", "\u0301", "t\u00e9"}},
		{"other numbers", "½² Ⅻ", []string{"½²", " Ⅻ"}},
		// ❤ is a symbol (So) and U+FE0F a mark: one punctuation-class run.
		{"emoji", "I ❤️ 🦀s", []string{"I", " ❤️", " 🦀", "s"}},
		{"emoji run", "🎉🎉!", []string{"🎉🎉!"}},
		{"flag", "🇰🇷", []string{"🇰🇷"}},
		{"invalid byte", "a\xffb", []string{"a", "\xff", "b"}},
		{"space invalid byte", " \xff\xfe", []string{" \xff\xfe"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := gpt2Split(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("gpt2Split(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLossyUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"valid", "a😀b", "a😀b"},
		{"lone continuation", "\x80", "\ufffd"},
		{"two bad bytes", "\xff\xfe", "\ufffd\ufffd"},
		{"truncated three-byte", "\xe2\x82", "\ufffd"},
		{"truncated three-byte then ascii", "\xe2\x82A", "\ufffdA"},
		{"truncated four-byte", "\xf0\x9f\x98", "\ufffd"},
		{"truncated four-byte then ascii", "\xf0\x9f\x98A", "\ufffdA"},
		{"surrogate", "\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"overlong", "\xc0\xaf", "\ufffd\ufffd"},
		{"overlong three-byte", "\xe0\x80\x80", "\ufffd\ufffd\ufffd"},
		{"above U+10FFFF", "\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"invalid lead", "\xf5\x80", "\ufffd\ufffd"},
		{"lead at end", "ok\xc3", "ok\ufffd"},
		{"two truncated", "\xe2\x82\xe2\x82", "\ufffd\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := lossyUTF8([]byte(tt.in))
			if got != tt.want {
				t.Errorf("lossyUTF8(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("lossyUTF8(%q) = %q is not valid UTF-8", tt.in, got)
			}
		})
	}
}
