package layers_test

import (
	"fmt"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// TestWindowMask: with 4 queries over 4 keys and a window of 2, each query
// sees itself and the one key before it; with 2 queries after 2 cached
// positions, the queries are positions 2 and 3.
func TestWindowMask(t *testing.T) {
	for _, tc := range []struct {
		tq, tk int64
		want   string
	}{
		{4, 4, "1000 1100 0110 0011"},
		{2, 4, "0110 0011"},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.tq, tc.tk), func(t *testing.T) {
			g := graphs.New("window")
			q := g.Input("q", tensors.Float32, graphs.S("tq"))
			k := g.Input("k", tensors.Float32, graphs.S("tk"))
			g.Output("mask", layers.WindowMask(q, k, 0, 0, 2))
			got := graphtest.Run(t, g, map[string]*tensors.Tensor{
				"q": tensors.Zeros(tensors.Float32, tc.tq), "k": tensors.Zeros(tensors.Float32, tc.tk)})
			s := ""
			for i, b := range got["mask"].Bools() {
				if i > 0 && int64(i)%tc.tk == 0 {
					s += " "
				}
				if b {
					s += "1"
				} else {
					s += "0"
				}
			}
			if s != tc.want {
				t.Errorf("mask %s, want %s", s, tc.want)
			}
		})
	}
}

// TestRepeatHeads: heads [a, b] repeated twice in place are [a, a, b, b].
func TestRepeatHeads(t *testing.T) {
	g := graphs.New("repeat")
	x := g.Input("x", tensors.Float32, graphs.S(1, "t", 2, 1))
	g.Output("y", layers.RepeatHeads(x, 2))
	got := graphtest.Run(t, g, map[string]*tensors.Tensor{"x": tensors.FromFloat32([]int64{1, 2, 2, 1}, []float32{1, 2, 3, 4})})
	want := []float32{1, 1, 2, 2, 3, 3, 4, 4}
	if fmt.Sprint(got["y"].Float32s()) != fmt.Sprint(want) || fmt.Sprint(got["y"].Shape) != "[1 2 4 1]" {
		t.Errorf("y %v %v, want [1 2 4 1] %v", got["y"].Shape, got["y"].Float32s(), want)
	}
}
