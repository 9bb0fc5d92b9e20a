package graphs_test

import (
	"testing"

	"mohawk/graphs"
	"mohawk/tensors"
)

// TestLiveness checks the liveness model on a graph whose peak is worked
// out by hand (float32, 4 bytes an element): a = exp(x) [10] lives on
// through two Reshape labels until the last node; b = sin(x) [10] dies at
// c = [b, b] [20]; then s = c[0:10] and e = r + s.
//
//	node 0 a: 40        node 3 c: a 40 + b 40 + c 80 = 160 (peak, first)
//	node 2 b: 40 + 40   node 5 s: a 40 + c 80 + s 40 = 160
//	node 6 e: a 40 + s 40 + e 40 = 120
func TestLiveness(t *testing.T) {
	g := graphs.New("live")
	x := g.Input("x", tensors.Float32, graphs.S(10))
	a := graphs.Exp(x)
	r := graphs.Reshape(a, 2, 5)
	b := graphs.Sin(x)
	c := graphs.Concat(0, b, b)
	r2 := graphs.Reshape(r, -1)
	s := graphs.SliceAxis(c, 0, 0, 10)
	g.Output("e", graphs.Add(r2, s))
	l := graphs.AnalyzeLiveness(g)
	if l.PeakBytes != 160 || l.PeakIndex != 3 || l.InputBytes != 40 || l.Unsized != 0 {
		t.Fatalf("peak %d bytes at node %d, inputs %d, unsized %d; want 160 at 3, 40, 0", l.PeakBytes, l.PeakIndex, l.InputBytes, l.Unsized)
	}
	want := []*graphs.Value{c, a, b}
	if len(l.Live) != len(want) {
		t.Fatalf("live at the peak: %v, want %v", l.Live, want)
	}
	for i, v := range want {
		if l.Live[i] != v {
			t.Errorf("live[%d] = %v, want %v", i, l.Live[i], v)
		}
	}
}
