package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPieceTable checks the private cache against a map: pieces of 1 to 40
// bytes with 0 to 5 ids (inline, in the spill array, in the map of long
// pieces), through the table's filling and past the point where it is
// emptied.
func TestPieceTable(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var tab pieceTable
	want := map[string][]int64{}
	for i := range 3 * maxPieces {
		w := fmt.Sprintf("%x", i)
		if n := r.IntN(40) + 1; n > len(w) {
			w += string(make([]byte, n-len(w)))
		}
		ids := make([]int64, r.IntN(6))
		for j := range ids {
			ids[j] = r.Int64N(1 << 31)
		}
		if _, ok := tab.appendCached(nil, w); ok {
			t.Fatalf("piece %d (%q) is cached before it was put", i, w)
		}
		before, used, other := tab.len(), tab.used, len(tab.long)
		tab.put(w, ids)
		if tab.len() <= before {
			// The slots or the overflow map were emptied to make room,
			// which they may be only when full: forget what the reference
			// holds there too.
			if used < maxPieces && other < maxPieces {
				t.Fatalf("put %d emptied the table early: %d pieces in slots, %d in the map", i, used, other)
			}
			clear(want)
		}
		want[w] = ids
		if i%16411 == 0 || i == 3*maxPieces-1 {
			for k, v := range want {
				got, ok := tab.appendCached([]int64{-1}, k)
				if !ok || !slices.Equal(got, append([]int64{-1}, v...)) {
					t.Fatalf("after %d puts, %q gives %v (cached %v), want %v", i+1, k, got, ok, v)
				}
			}
		}
	}
	if tab.used > maxPieces || len(tab.slots) != pieceSlots {
		t.Errorf("%d slots used of %d, want at most %d of %d", tab.used, len(tab.slots), maxPieces, pieceSlots)
	}
}
