package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// byteChar maps each byte to the character that stands for it in byte-level
// token strings (GPT-2's bytes_to_unicode): printable bytes stand for
// themselves, the other 68 bytes take U+0100 upward in byte order.
var byteChar [256]rune

// charByte is the inverse of byteChar.
var charByte = make(map[rune]byte, 256)

func init() {
	next := rune(0x100)
	for b := range 256 {
		r := rune(b)
		if !printableByte(byte(b)) {
			r = next
			next++
		}
		byteChar[b] = r
		charByte[r] = byte(b)
	}
}

// printableByte reports whether GPT-2 keeps b as its own character: '!'..'~',
// '¡'..'¬' and '®'..'ÿ'.
func printableByte(b byte) bool {
	return '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b
}

// unmapByteLevel turns a byte-level token string back into the bytes it
// stands for. ok is false when some character is not in the table, in which
// case the ByteLevel decoder keeps the token's own UTF-8 bytes.
func unmapByteLevel(tok string) (b []byte, ok bool) {
	b = make([]byte, 0, len(tok))
	for _, r := range tok {
		c, found := charByte[r]
		if !found {
			return nil, false
		}
		b = append(b, c)
	}
	return b, true
}

// decodeToken is the ByteLevel decoder's view of one token string.
func decodeToken(tok string) string {
	if b, ok := unmapByteLevel(tok); ok {
		return string(b)
	}
	return tok
}

// Character classes of the GPT-2 pre-tokenizer pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
const (
	classOther  = iota // [^\s\p{L}\p{N}]
	classLetter        // \p{L}
	classNumber        // \p{N}
	classSpace         // \s: the Unicode White_Space property
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for c := range utf8.RuneSelf {
		asciiClass[c] = classOfRune(rune(c))
	}
}

func classOfRune(r rune) uint8 {
	switch {
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther
}

// classAt returns the class of the character starting s and its length in
// bytes. An invalid byte counts as one character of class other, like the
// U+FFFD it would decode to.
func classAt(s string) (class uint8, size int) {
	if c := s[0]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	return classAtSlow(s)
}

// classAtSlow is classAt for a character that is not ASCII, kept out of line
// so that classAt inlines.
func classAtSlow(s string) (class uint8, size int) {
	r, size := utf8.DecodeRuneInString(s)
	return classOfRune(r), size
}

// classRunEnd returns the end of the run of characters of class that
// starts at byte n of s, looping over ASCII bytes without decoding them.
func classRunEnd(s string, n int, class uint8) int {
	for n < len(s) {
		if c := s[n]; c < utf8.RuneSelf {
			if asciiClass[c] != class {
				break
			}
			n++
			continue
		}
		c, m := classAtSlow(s[n:])
		if c != class {
			break
		}
		n += m
	}
	return n
}

// gpt2Piece returns the length in bytes of the first piece that the GPT-2
// pattern cuts from the non-empty s. The alternatives are tried in the
// pattern's order; since every character matches some alternative, the pieces
// tile the text.
func gpt2Piece(s string) int {
	if s[0] == '\'' && len(s) > 1 {
		switch s[1] {
		case 's', 't', 'm', 'd':
			return 2
		case 'r', 'v':
			if len(s) > 2 && s[2] == 'e' {
				return 3
			}
		case 'l':
			if len(s) > 2 && s[2] == 'l' {
				return 3
			}
		}
	}
	class, n := classAt(s)
	if s[0] == ' ' && len(s) > 1 {
		// " ?X+": a space joins a following run of letters, numbers or
		// other characters.
		if c, m := classAt(s[1:]); c != classSpace {
			class, n = c, 1+m
		}
	}
	if class != classSpace {
		return classRunEnd(s, n, class)
	}
	// \s+(?!\S) takes the whole whitespace run when it reaches the end of the
	// text, and otherwise backs off one character so that the last
	// whitespace character stays with the following word; a single
	// whitespace character before a non-space falls through to \s+.
	lastStart := 0
	for n < len(s) {
		c, m := classAt(s[n:])
		if c != classSpace {
			if lastStart > 0 {
				return lastStart
			}
			return n
		}
		lastStart = n
		n += m
	}
	return n
}
