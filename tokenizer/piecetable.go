package tokenizer

import (
	"hash/maphash"
	"slices"
	"strings"
)

// pieceTable is a fork's private piece cache: an open-addressing hash table
// whose slots hold a piece of up to 16 bytes and its ids (up to 3) inline,
// so that a lookup reads one slot instead of a map entry, the key it points
// to and the ids slice it points to. Pieces that do not fit a slot (rare in
// text) are kept in a map. Not safe for concurrent use.
type pieceTable struct {
	seed  maphash.Seed
	slots []pieceSlot // a power of two long; at most half of them used
	used  int
	other map[string][]int64 // pieces longer than 16 bytes or of more than 3 ids
}

type pieceSlot struct {
	key  [16]byte
	klen uint8 // 0 marks an empty slot: the empty piece is never cached
	n    uint8
	ids  [3]int32
}

// Sizes of the slot table: it starts small, doubles when half full, and is
// emptied when half of maxPieceSlots are used (about 131,000 pieces, 8 MiB).
const (
	minPieceSlots = 1 << 12
	maxPieceSlots = 1 << 18
)

// appendCached appends the cached ids of w and reports whether w was cached.
func (t *pieceTable) appendCached(ids []int64, w string) ([]int64, bool) {
	if len(w) <= len(pieceSlot{}.key) && t.slots != nil {
		mask := uint64(len(t.slots) - 1)
		for i := maphash.String(t.seed, w) & mask; t.slots[i].klen != 0; i = (i + 1) & mask {
			s := &t.slots[i]
			if int(s.klen) == len(w) && string(s.key[:s.klen]) == w {
				for _, id := range s.ids[:s.n] {
					ids = append(ids, int64(id))
				}
				return ids, true
			}
		}
	}
	if len(t.other) == 0 {
		return ids, false
	}
	cached, ok := t.other[w]
	return append(ids, cached...), ok
}

// put caches the ids of w, which must not be cached yet.
func (t *pieceTable) put(w string, ids []int64) {
	if len(w) > len(pieceSlot{}.key) || len(w) == 0 || len(ids) > len(pieceSlot{}.ids) {
		if t.other == nil || len(t.other) >= maxPieceSlots/2 {
			t.other = make(map[string][]int64)
		}
		// Clone both: w may point into a large text, and ids into the
		// caller's result.
		t.other[strings.Clone(w)] = slices.Clone(ids)
		return
	}
	if t.slots == nil {
		t.seed = maphash.MakeSeed()
		t.slots = make([]pieceSlot, minPieceSlots)
	}
	if 2*(t.used+1) > len(t.slots) {
		if len(t.slots) < maxPieceSlots {
			t.grow()
		} else {
			clear(t.slots)
			t.used = 0
		}
	}
	s := pieceSlot{klen: uint8(len(w)), n: uint8(len(ids))}
	copy(s.key[:], w)
	for i, id := range ids {
		s.ids[i] = int32(id)
	}
	t.insert(s)
}

// insert places s in the first free slot of its probe sequence.
func (t *pieceTable) insert(s pieceSlot) {
	mask := uint64(len(t.slots) - 1)
	i := maphash.String(t.seed, string(s.key[:s.klen])) & mask
	for t.slots[i].klen != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
	t.used++
}

// grow doubles the slot table and re-inserts every piece.
func (t *pieceTable) grow() {
	old := t.slots
	t.slots = make([]pieceSlot, 2*len(old))
	t.used = 0
	for _, s := range old {
		if s.klen != 0 {
			t.insert(s)
		}
	}
}

// len is the number of cached pieces (tests).
func (t *pieceTable) len() int { return t.used + len(t.other) }
