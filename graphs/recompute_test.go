package graphs_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/tensors"
)

// recomputeChain is a residual chain of layers h ← h + sin(h·W_i) from
// h = tanh(x), each
// layer one recomputation segment, with loss Σ h² and the gradients with
// respect to x and every W_i as outputs.
func recomputeChain(on bool, layers int, rows, width int64) *graphs.Graph {
	g := graphs.New("chain")
	g.SetRecompute(on)
	x := g.Input("x", tensors.Float32, graphs.S(rows, width))
	var ws []*graphs.Value
	h := graphs.Tanh(x) // a computed value: segments recompute from those

	for i := 0; i < layers; i++ {
		w := g.Input("w"+string(rune('0'+i)), tensors.Float32, graphs.S(width, width))
		ws = append(ws, w)
		g.Recomputed(func() { h = graphs.Add(h, graphs.Sin(graphs.MatMul(h, w))) })
	}
	loss := graphs.ReduceSumAll(graphs.Mul(h, h))
	g.Output("loss", loss)
	for i, d := range graphs.Gradients(loss, append([]*graphs.Value{x}, ws...)...) {
		g.Output("grad"+string(rune('0'+i)), d)
	}
	return g
}

func countOps(g *graphs.Graph, op string) int {
	n := 0
	for _, nd := range g.Nodes() {
		if nd.Op == op {
			n++
		}
	}
	return n
}

// TestRecompute checks that recomputed layers give the gradients of the
// plain graph, that the backward pass no longer keeps the layers' inner
// values (the liveness peak falls), and that ONNX Runtime runs the
// recomputed nodes the backward pass reads: each layer's product h·w
// (Sin's gradient reads it) runs once more, none merged with its
// original. (The recomputed Sin itself feeds nothing, so export leaves it
// out: graphs.Graph.Live.)
func TestRecompute(t *testing.T) {
	const layers = 4
	dir := t.TempDir()
	cfg := runtime.Defaults()
	cfg.CPU.IntraOpThreads = 1
	cfg.ProfileDir = dir
	env, err := runtime.Open(cfg, os.Stderr)
	if err != nil {
		strict.Unavailable(t, "ONNX Runtime unavailable: %v", err)
	}
	defer env.Close()
	feeds := map[string]*tensors.Tensor{"x": rnd(1, -1, 1, 16, 32).Convert(tensors.Float32)}
	for i := 0; i < layers; i++ {
		feeds["w"+string(rune('0'+i))] = rnd(uint64(2+i), -0.3, 0.3, 32, 32).Convert(tensors.Float32)
	}
	results := map[bool]map[string]*tensors.Tensor{}
	for _, on := range []bool{false, true} {
		g := recomputeChain(on, layers, 16, 32)
		want := layers
		if on {
			want = 2 * layers
		}
		if got := countOps(g, "Sin"); got != want {
			t.Errorf("recompute %v: graph has %d Sin nodes, want %d", on, got, want)
		}
		s := graphtest.SessionOn(t, env, g)
		results[on] = graphtest.RunSession(t, s, g, feeds)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "chain*.json"))
		if len(files) != 1 {
			t.Fatalf("want one profile, have %v", files)
		}
		prof, err := runtime.SummarizeProfile(files[0], 0)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(files[0])
		ran := 0
		for _, o := range prof.Ops {
			if o.Op == "MatMul" || o.Op == "Gemm" || o.Op == "FusedMatMul" {
				ran += o.Calls
			}
		}
		products := 3 * layers // forward, and dh and dw backward
		if on {
			products += layers
		}
		if ran != products {
			t.Errorf("recompute %v: ONNX Runtime ran %d products, want %d (recomputed nodes merged with the originals?)", on, ran, products)
		}
	}
	for name, want := range results[false] {
		got := results[true][name].Convert(tensors.Float64).Float64s()
		for i, w := range want.Convert(tensors.Float64).Float64s() {
			if d := math.Abs(got[i] - w); !(d <= 1e-6*math.Max(math.Abs(w), 1e-3)) {
				t.Fatalf("%s[%d]: %g with recomputation, %g without", name, i, got[i], w)
			}
		}
	}
	// Wide layers: the inner values dominate, and only one layer's stay.
	plain := graphs.AnalyzeLiveness(recomputeChain(false, 8, 1024, 32)).PeakBytes
	re := graphs.AnalyzeLiveness(recomputeChain(true, 8, 1024, 32)).PeakBytes
	if !(re < plain*3/4) {
		t.Errorf("liveness peak %d bytes with recomputation, %d without: want at most 3/4", re, plain)
	}
}
