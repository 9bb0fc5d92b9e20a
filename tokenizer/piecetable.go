package tokenizer

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
)

// pieceTable is a fork's private piece cache: an open-addressing hash table
// whose slots hold a piece of up to 16 bytes, packed into two words, and its
// ids, so that a lookup hashes two words and reads one slot instead of
// hashing a string and following a map entry to its key and to its ids.
// Pieces of more than 16 bytes (rare in text) are kept in a map. Not safe
// for concurrent use.
type pieceTable struct {
	seed  uint64
	slots []pieceSlot // pieceSlots long; at most maxPieces of them used
	used  int
	spill []int32            // ids of the short pieces with more than len(pieceSlot{}.ids)
	long  map[string][]int64 // pieces longer than 16 bytes
}

// pieceSlot is one piece of at most 16 bytes: its packed bytes (see
// packPiece) and its ids, inline when there are at most 3 of them, else
// ids[0] is where they start in spill.
type pieceSlot struct {
	a, b uint64
	klen uint8 // 0 marks an empty slot: the empty piece is never cached
	n    uint8
	ids  [3]int32
}

// maxSlotPiece is the longest piece a slot holds.
const maxSlotPiece = 16

// pieceSlots is the length of the slot table (4 MiB), made whole at the
// first put; the table is emptied when it holds maxPieces pieces (98,304,
// as many as train.txt has). Memory is what a fork's encoding waits on
// most, on a 2-core VM where every first touch of a page of fresh memory
// takes about 11 µs: growing the table by steps cost more than the merges
// of the pieces it cached, and a table of 8 MiB filled to half at most
// encoded 1.37 times slower than this one filled to three quarters
// (BenchmarkEncodeFork).
const (
	pieceSlots = 1 << 17
	maxPieces  = pieceSlots / 4 * 3
)

// packPiece packs a piece of 1 to 16 bytes into two words that, with its
// length, identify it: its first and last 8 bytes (which overlap when it is
// shorter than 16), its first and last 4 when it has 4 to 7, and its
// first, middle and last byte when it has 1 to 3.
func packPiece(w string) (a, b uint64) {
	switch n := len(w); {
	case n >= 8:
		return load64(w), load64(w[n-8:])
	case n >= 4:
		return uint64(load32(w)) | uint64(load32(w[n-4:]))<<32, 0
	default:
		return uint64(w[0]) | uint64(w[n/2])<<8 | uint64(w[n-1])<<16, 0
	}
}

func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func load32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// slot returns the first slot of the probe sequence of a packed piece of n
// bytes: a multiply-fold hash of its words, mixed with the table's random
// seed so that no text can be made to collide on purpose.
func (t *pieceTable) slot(a, b uint64, n int) uint64 {
	hi, lo := bits.Mul64(a^t.seed, b^uint64(n)^0x9e3779b97f4a7c15)
	return (hi ^ lo) & uint64(len(t.slots)-1)
}

// appendCached appends the cached ids of w and reports whether w was cached.
func (t *pieceTable) appendCached(ids []int64, w string) ([]int64, bool) {
	if len(w) > maxSlotPiece || len(w) == 0 {
		cached, ok := t.long[w]
		return append(ids, cached...), ok
	}
	if t.slots == nil {
		return ids, false
	}
	a, b := packPiece(w)
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(a, b, len(w)); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.klen == 0 {
			return ids, false
		}
		if s.a != a || s.b != b || int(s.klen) != len(w) {
			continue
		}
		if s.n == 1 {
			return append(ids, int64(s.ids[0])), true
		}
		if int(s.n) > len(s.ids) {
			for _, id := range t.spill[s.ids[0] : int(s.ids[0])+int(s.n)] {
				ids = append(ids, int64(id))
			}
			return ids, true
		}
		for _, id := range s.ids[:s.n] {
			ids = append(ids, int64(id))
		}
		return ids, true
	}
}

// put caches the ids of w, which must not be cached yet.
func (t *pieceTable) put(w string, ids []int64) {
	if len(w) > maxSlotPiece || len(w) == 0 || len(ids) > 255 {
		if t.long == nil || len(t.long) >= maxPieces {
			t.long = make(map[string][]int64)
		}
		// Clone both: w may point into a large text, and ids into the
		// caller's result.
		t.long[strings.Clone(w)] = slices.Clone(ids)
		return
	}
	if t.slots == nil {
		t.seed = rand.Uint64()
		t.slots = make([]pieceSlot, pieceSlots)
	}
	if t.used >= maxPieces {
		clear(t.slots)
		t.used = 0
		t.spill = t.spill[:0]
	}
	s := pieceSlot{klen: uint8(len(w)), n: uint8(len(ids))}
	s.a, s.b = packPiece(w)
	if len(ids) > len(s.ids) {
		s.ids[0] = int32(len(t.spill))
		for _, id := range ids {
			t.spill = append(t.spill, int32(id))
		}
	} else {
		for i, id := range ids {
			s.ids[i] = int32(id)
		}
	}
	t.insert(s)
}

// insert places s in the first free slot of its probe sequence.
func (t *pieceTable) insert(s pieceSlot) {
	mask := uint64(len(t.slots) - 1)
	i := t.slot(s.a, s.b, int(s.klen))
	for t.slots[i].klen != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
	t.used++
}

// len is the number of cached pieces (tests).
func (t *pieceTable) len() int { return t.used + len(t.long) }
