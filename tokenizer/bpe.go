package tokenizer

import (
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// merge is what a pair of adjacent symbols becomes: the id of the joined
// token and the rank of the merge (its index in model.merges).
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// mergeTable maps a pair of adjacent symbols, keyed by pairKey, to their
// merge. It is an open-addressing hash table, at most half full, filled
// while parsing and read-only after, so forks share it; a lookup is one
// multiplication and usually one slot, against a map's hashing and group
// scan.
type mergeTable struct {
	slots []mergeSlot // a power of two long
	shift uint        // 64 - log2(len(slots))
}

type mergeSlot struct {
	key uint64 // noPair in an empty slot
	merge
}

// noPair is the key of an empty slot, pairKey(-1, -1): no symbol has id -1.
const noPair = ^uint64(0)

func newMergeTable(merges int) mergeTable {
	size := 16
	for size < 2*merges {
		size *= 2
	}
	t := mergeTable{slots: make([]mergeSlot, size), shift: uint(64 - bits.TrailingZeros(uint(size)))}
	for i := range t.slots {
		t.slots[i].key = noPair
	}
	return t
}

// slot returns the index of the slot of a's and b's pair, or of the empty
// slot where it would go.
func (t *mergeTable) slot(a, b int32) int {
	key := pairKey(a, b)
	mask := len(t.slots) - 1
	// Fibonacci hashing: the top bits of the key times 2^64 / golden ratio.
	i := int((key * 0x9e3779b97f4a7c15) >> t.shift)
	for t.slots[i].key != key && t.slots[i].key != noPair {
		i = (i + 1) & mask
	}
	return i
}

// get returns the merge of the pair a, b.
func (t *mergeTable) get(a, b int32) (merge, bool) {
	s := &t.slots[t.slot(a, b)]
	return s.merge, s.key != noPair
}

// set records the merge of the pair a, b, replacing an earlier one. The
// table must have been made for at least as many merges as are set.
func (t *mergeTable) set(a, b int32, mg merge) {
	t.slots[t.slot(a, b)] = mergeSlot{key: pairKey(a, b), merge: mg}
}

// bpeModel is the BPE model of a byte-level tokenizer, working on the raw
// bytes of a pre-tokenized piece: byte b starts as the symbols byteIDs[b]
// (the vocabulary id of byteChar[b], or its byte-fallback ids, or the unknown
// token, or nothing when the vocabulary has none of those, as Hugging Face
// does).
type bpeModel struct {
	byteIDs [256][]int32
	merges  *mergeTable
	unk     int32 // -1 without an unknown token
	fuseUnk bool
	// whole maps the raw bytes of every vocabulary token to its id when
	// model.ignore_merges is set: a piece found there is not merged.
	whole map[string]int32
	// chars, for a character-level (SentencePiece-style) model, gives the
	// first symbols of a word instead of byteIDs; nil for byte-level BPE.
	chars *charSymbols

	cache   wordCache
	scratch sync.Pool // *mergeScratch
}

// maxPieceBytes bounds the bytes that BPE merges at once, and so its
// working memory (about 24 bytes per byte of the piece). Hugging Face merges
// a pre-tokenized piece whole however long it is; a piece longer than this
// (a run of 64 KiB of letters, digits or punctuation with no space, which
// ordinary text never has) is merged in consecutive parts of at most
// maxPieceBytes, cut at character boundaries, and its ids may differ from
// Hugging Face's near the cuts. Without the bound, 50 MB of text without
// whitespace took 2.8 GB.
const maxPieceBytes = 64 << 10

// appendWord appends the ids of one pre-tokenized piece.
func (m *bpeModel) appendWord(ids []int64, w string) []int64 {
	for len(w) > maxPieceBytes {
		n := pieceCut(w)
		ids = m.appendWord(ids, w[:n])
		w = w[n:]
	}
	if m.whole != nil {
		if id, ok := m.whole[w]; ok {
			return append(ids, int64(id))
		}
	}
	start := len(ids)
	if c := &m.cache; c.private {
		if ids, ok := c.local.appendCached(ids, w); ok {
			return ids
		}
		ids = m.mergeWord(ids, w)
		if len(w) <= maxCachedPiece {
			c.local.put(w, ids[start:])
		}
		return ids
	}
	if cached, ok := m.cache.get(w); ok {
		return append(ids, cached...)
	}
	ids = m.mergeWord(ids, w)
	m.cache.put(w, ids[start:])
	return ids
}

// pieceCut returns where to cut the first part of a piece longer than
// maxPieceBytes: at maxPieceBytes, moved back to the start of a UTF-8
// character when that is at most 3 bytes back.
func pieceCut(w string) int {
	for n := maxPieceBytes; n > maxPieceBytes-utf8.UTFMax; n-- {
		if utf8.RuneStart(w[n]) {
			return n
		}
	}
	return maxPieceBytes
}

// symbol is one element of the doubly linked list of a word's symbols.
type symbol struct {
	id         int32
	prev, next int32 // indexes in the list, -1 at the ends
}

// candidate is a possible merge of symbol pos with its successor.
type candidate struct {
	rank, pos, id int32
}

type mergeScratch struct {
	syms []symbol
	heap []candidate
}

// mergeWord applies the merges to w the way Hugging Face's BPE does: the
// adjacent pair with the lowest rank is merged first, the leftmost one among
// equal ranks, until no adjacent pair has a merge.
func (m *bpeModel) mergeWord(ids []int64, w string) []int64 {
	sc, _ := m.scratch.Get().(*mergeScratch)
	if sc == nil {
		sc = new(mergeScratch)
	}
	defer m.scratch.Put(sc)
	syms := m.symbols(sc, w)
	if len(syms) <= shortWord {
		return m.mergeShort(ids, syms)
	}
	return m.mergeHeap(ids, syms, sc)
}

// symbols returns the symbols of w before merging, linked in order, in
// sc's buffer.
func (m *bpeModel) symbols(sc *mergeScratch, w string) []symbol {
	syms := sc.syms[:0]
	if m.chars != nil {
		syms = m.chars.appendSymbols(syms, w, m.unk, m.fuseUnk)
	} else {
		for i := range len(w) {
			for _, id := range m.byteIDs[w[i]] {
				if id == m.unk && m.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == m.unk {
					continue
				}
				n := int32(len(syms))
				syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
			}
		}
	}
	sc.syms = syms
	return syms
}

// mergeHeap is mergeWord for a word of any number of symbols (syms, linked
// in order): a heap of candidate merges yields the next one.
func (m *bpeModel) mergeHeap(ids []int64, syms []symbol, sc *mergeScratch) []int64 {
	syms[len(syms)-1].next = -1
	h := sc.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges.get(syms[i].id, syms[i+1].id); ok {
			h = pushCandidate(h, candidate{mg.rank, int32(i), mg.id})
		}
	}
	for len(h) > 0 {
		var top candidate
		top, h = popCandidate(h)
		s := &syms[top.pos]
		if s.id < 0 || s.next < 0 {
			continue // merged away, or last symbol
		}
		next := s.next
		// A stale candidate (one of its symbols has changed) no longer
		// yields the same token.
		if mg, ok := m.merges.get(s.id, syms[next].id); !ok || mg.id != top.id {
			continue
		}
		s.id = top.id
		s.next = syms[next].next
		syms[next].id = -1
		if s.next >= 0 {
			syms[s.next].prev = top.pos
			if mg, ok := m.merges.get(s.id, syms[s.next].id); ok {
				h = pushCandidate(h, candidate{mg.rank, top.pos, mg.id})
			}
		}
		if s.prev >= 0 {
			if mg, ok := m.merges.get(syms[s.prev].id, s.id); ok {
				h = pushCandidate(h, candidate{mg.rank, s.prev, mg.id})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		ids = append(ids, int64(syms[i].id))
	}
	sc.heap = h
	return ids
}

// shortWord is the most symbols that mergeShort merges; longer words go
// through the heap, whose cost grows as n log n rather than n².
const shortWord = 32

// noMerge is the rank of a pair without a merge in mergeShort.
const noMerge = math.MaxInt32

// mergeShort is mergeWord for a word of at most shortWord symbols (syms, in
// order; their links are not used). It keeps the merge of every adjacent
// pair in an array and scans it for the lowest rank, the leftmost among
// equal ones, which is the merge the heap would pop: for the short words
// of text, which are most, this is about twice as fast as the heap.
func (m *bpeModel) mergeShort(ids []int64, syms []symbol) []int64 {
	var id [shortWord]int32
	var pair [shortWord]merge // pair[i] joins id[i] and id[i+1]
	n := len(syms)
	for i, s := range syms {
		id[i] = s.id
	}
	for i := 0; i+1 < n; i++ {
		pair[i] = m.pairMerge(id[i], id[i+1])
	}
	for {
		best, rank := -1, int32(noMerge)
		for i := 0; i+1 < n; i++ {
			if pair[i].rank < rank {
				best, rank = i, pair[i].rank
			}
		}
		if best < 0 {
			break
		}
		// id[best+1] joins id[best]; the pairs after it move down.
		id[best] = pair[best].id
		copy(id[best+1:], id[best+2:n])
		if best+2 < n-1 {
			copy(pair[best+1:], pair[best+2:n-1])
		}
		n--
		if best > 0 {
			pair[best-1] = m.pairMerge(id[best-1], id[best])
		}
		if best+1 < n {
			pair[best] = m.pairMerge(id[best], id[best+1])
		}
	}
	for _, x := range id[:n] {
		ids = append(ids, int64(x))
	}
	return ids
}

// pairMerge returns the merge of a and b, or one of rank noMerge.
func (m *bpeModel) pairMerge(a, b int32) merge {
	if mg, ok := m.merges.get(a, b); ok {
		return mg
	}
	return merge{rank: noMerge}
}

func (c candidate) before(d candidate) bool {
	return c.rank < d.rank || c.rank == d.rank && c.pos < d.pos
}

// pushCandidate and popCandidate keep h a binary min-heap under before.
func pushCandidate(h []candidate, c candidate) []candidate {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return h
}

func popCandidate(h []candidate) (candidate, []candidate) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].before(h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].before(h[least]) {
			least = r
		}
		if least == i {
			return top, h
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// Bounds of the per-piece cache: pieces longer than maxCachedPiece bytes are
// not cached, and the shared cache is emptied when it holds maxCacheEntries
// pieces. A fork's private cache keeps every distinct piece of a large
// corpus (train.txt has about 98,000; see pieceTable).
const (
	maxCachedPiece  = 256
	maxCacheEntries = 1 << 16
)

// wordCache remembers the ids of recently encoded pieces. A shared cache is
// split into shards by a hash of the piece, each with its own read-write
// lock, so that goroutines encoding in parallel rarely wait for one another.
// A private cache (a Fork's) is a pieceTable without locks.
type wordCache struct {
	private bool
	local   pieceTable // the private cache

	seed   maphash.Seed
	once   sync.Once
	shards [cacheShards]cacheShard
}

const cacheShards = 32

type cacheShard struct {
	mu      sync.RWMutex
	entries map[string][]int64
}

func (c *wordCache) shard(w string) *cacheShard {
	c.once.Do(func() { c.seed = maphash.MakeSeed() })
	return &c.shards[maphash.String(c.seed, w)%cacheShards]
}

func (c *wordCache) get(w string) ([]int64, bool) {
	s := c.shard(w)
	s.mu.RLock()
	ids, ok := s.entries[w]
	s.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int64) {
	if len(w) > maxCachedPiece {
		return
	}
	// Clone both: w may point into a large text, and ids into the caller's
	// result.
	w, ids = strings.Clone(w), slices.Clone(ids)
	s := c.shard(w)
	s.mu.Lock()
	if s.entries == nil || len(s.entries) >= maxCacheEntries/cacheShards {
		s.entries = make(map[string][]int64, 64)
	}
	s.entries[w] = ids
	s.mu.Unlock()
}

// len is the number of cached pieces (tests).
func (c *wordCache) len() int {
	n := c.local.len()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}

// reset empties the cache (benchmarks of a cold cache).
func (c *wordCache) reset() {
	c.local = pieceTable{}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.entries = nil
		s.mu.Unlock()
	}
}
