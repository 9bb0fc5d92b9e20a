package tokenizer

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// randomLetters returns n bytes of lower-case letters with no whitespace: one
// pre-tokenized piece as long as the text.
func randomLetters(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return string(b)
}

// TestLongPieceMemory encodes 20 MB of text without whitespace, one piece
// for the pre-tokenizer (issue 22, item 10: 50 MB took 2.8 GB, 56 bytes per
// input byte). Into a result slice with room for every id, Encode's working
// memory must stay within a fixed bound whatever the length of the piece.
func TestLongPieceMemory(t *testing.T) {
	tok := referenceTokenizer(t).Fork()
	text := randomLetters(20<<20, 7)
	ids := make([]int64, 0, len(text)) // at most one id per byte
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ids = tok.raw.split(ids, text, func(ids []int64, s string) []int64 { return tok.appendNormalized(ids, s, true) })
	runtime.ReadMemStats(&after)
	working := after.TotalAlloc - before.TotalAlloc
	const limit = 16 << 20
	t.Logf("%d bytes → %d ids; working memory allocated: %.2f MB", len(text), len(ids), float64(working)/1e6)
	if !(working <= limit) {
		t.Errorf("encoding %d bytes without whitespace allocated %d bytes besides its result, more than %d", len(text), working, limit)
	}
	if got, err := tok.Decode(ids); err != nil || got != text {
		t.Errorf("the ids of the long piece do not decode to the text (err %v)", err)
	}
}

// TestLongPieceParts checks how a piece longer than maxPieceBytes is cut:
// into parts of at most maxPieceBytes ending at character boundaries, each
// merged on its own, so its ids are those of the parts encoded one by one.
func TestLongPieceParts(t *testing.T) {
	tok := referenceTokenizer(t)
	// Letters of 1 and 2 bytes: one piece for the pre-tokenizer, whose cuts
	// at maxPieceBytes may fall inside a character.
	r := rand.New(rand.NewPCG(5, 1))
	var b strings.Builder
	for b.Len() < 3*maxPieceBytes {
		b.WriteString([]string{"a", "e", "n", "é", "ß", "ü"}[r.IntN(6)])
	}
	mixed := b.String()
	cases := []struct {
		name string
		text string
	}{
		{"at the limit", randomLetters(maxPieceBytes, 3)},
		{"ascii", randomLetters(2*maxPieceBytes+10, 3)},
		{"two-byte letters", mixed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Cut independently of pieceCut: at the last character start
			// at or before maxPieceBytes.
			var want []int64
			cuts := 0
			for s := c.text; s != ""; cuts++ {
				n := len(s)
				if n > maxPieceBytes {
					n = maxPieceBytes
					for !utf8.RuneStart(s[n]) {
						n--
					}
				}
				want = tok.model.mergeWord(want, s[:n])
				s = s[n:]
			}
			if got := tok.Encode(c.text); !slices.Equal(got, want) {
				t.Errorf("got %d ids, want %d (%d parts merged one by one)", len(got), len(want), cuts)
			}
		})
	}
}

// TestMergeShort merges every piece of val.txt of at most shortWord bytes,
// and random strings of its letters, with mergeShort and with mergeHeap,
// for the reference tokenizer and each kind of testdata/hf: the same ids.
func TestMergeShort(t *testing.T) {
	t.Parallel()
	val := string(readShared(t, "data", "en", "val.txt"))
	toks := map[string]*Tokenizer{"phi": referenceTokenizer(t)}
	for _, name := range hfKinds {
		toks[name] = loadHF(t, name)
	}
	var words []string
	for s := val; s != ""; {
		n := gpt2Piece(s)
		if n <= shortWord {
			words = append(words, s[:n])
		}
		s = s[n:]
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b := make([]byte, 1+r.IntN(shortWord))
		for i := range b {
			b[i] = "aeinst th"[r.IntN(9)]
		}
		words = append(words, string(b))
	}
	for name, tok := range toks {
		m, sc := tok.model, new(mergeScratch)
		checked := 0
		for _, w := range words {
			syms := m.symbols(sc, w)
			if len(syms) == 0 || len(syms) > shortWord {
				continue
			}
			short := m.mergeShort(nil, syms)
			heap := m.mergeHeap(nil, syms, sc)
			if !slices.Equal(short, heap) {
				t.Fatalf("%s: %q: mergeShort %v, mergeHeap %v", name, w, short, heap)
			}
			checked++
		}
		if checked < len(words)/2 {
			t.Errorf("%s: only %d of %d words checked", name, checked, len(words))
		}
	}
}
