package graphs_test

import (
	"math"
	"strings"
	"testing"

	"mohawk/export"
	"mohawk/export/onnxpb"
	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/tensors"
)

// ifGraph returns x·2 when x has one element along axis 1 and x + w
// otherwise, for x [batch, n]; w is an initializer the branches read from
// the enclosing graph. The then branch works on a [batch, 1] view of x and
// reshapes its result back to x's symbolic shape.
func ifGraph() *graphs.Graph {
	g := graphs.New("if_test")
	x := g.Input("x", tensors.Float32, graphs.S("batch", "n"))
	w := g.Initializer("w", tensors.Scalar32(10))
	one := graphs.Equal(graphs.ShapeOf(x, 1, 2), g.Int64s(1))

	then := graphs.NewIfBranch(g, "single")
	xt := then.Capture(x)
	y := graphs.Mul(graphs.Reshape(xt, 0, 1), graphs.ScalarLike(x, 2)) // [batch, 1]
	then.Finish(graphs.ReshapeTo(y, x.Shape, xt), w)

	els := graphs.NewIfBranch(g, "many")
	els.Finish(graphs.Add(els.Capture(x), w), w)

	outs := graphs.If(one, then, els)
	g.Output("y", outs[0])
	g.Output("w_out", outs[1])
	return g
}

func TestIf(t *testing.T) {
	var g *graphs.Graph
	if err := graphs.Try(func() { g = ifGraph() }); err != nil {
		t.Fatal(err)
	}
	s := graphtest.Session(t, g)
	for _, tc := range []struct {
		name  string
		shape []int64
		in    []float32
		want  []float32
	}{
		{"then", []int64{2, 1}, []float32{1, 2}, []float32{2, 4}},
		{"else", []int64{1, 3}, []float32{1, 2, 3}, []float32{11, 12, 13}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := graphtest.RunSession(t, s, g, map[string]*tensors.Tensor{"x": tensors.FromFloat32(tc.shape, tc.in)})
			got := out["y"].Float32s()
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("y = %v, want %v", got, tc.want)
				}
			}
			if w := out["w_out"].Float32s()[0]; w != 10 {
				t.Errorf("w_out = %v, want 10 (an outer value returned by both branches)", w)
			}
		})
	}
}

// TestIfShapeRule checks what the shape rule refuses.
func TestIfShapeRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		build func(g *graphs.Graph, x, cond *graphs.Value)
		want  string
	}{
		{"unfinished branch", func(g *graphs.Graph, x, cond *graphs.Value) {
			a, b := graphs.NewIfBranch(g, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(x)
			graphs.If(cond, a, b)
		}, "not finished"},
		{"condition not bool", func(g *graphs.Graph, x, cond *graphs.Value) {
			a, b := graphs.NewIfBranch(g, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(x)
			b.Finish(x)
			graphs.If(x, a, b)
		}, "must be bool"},
		{"output counts", func(g *graphs.Graph, x, cond *graphs.Value) {
			a, b := graphs.NewIfBranch(g, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(x, x)
			b.Finish(x)
			graphs.If(cond, a, b)
		}, "returns 2 values"},
		{"shapes differ", func(g *graphs.Graph, x, cond *graphs.Value) {
			a, b := graphs.NewIfBranch(g, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(graphs.Reshape(a.Capture(x), 0, 1))
			b.Finish(x)
			graphs.If(cond, a, b)
		}, "output 0 differs"},
		{"dtypes differ", func(g *graphs.Graph, x, cond *graphs.Value) {
			a, b := graphs.NewIfBranch(g, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(graphs.Cast(a.Capture(x), tensors.Float64))
			b.Finish(x)
			graphs.If(cond, a, b)
		}, "output 0 differs"},
		{"finished twice", func(g *graphs.Graph, x, cond *graphs.Value) {
			a := graphs.NewIfBranch(g, "a")
			a.Finish(x)
			a.Finish(x)
		}, "already finished"},
		{"branch of another graph", func(g *graphs.Graph, x, cond *graphs.Value) {
			other := graphs.New("other")
			a, b := graphs.NewIfBranch(other, "a"), graphs.NewIfBranch(g, "b")
			a.Finish(other.Input("y", tensors.Float32, x.Shape))
			b.Finish(x)
			graphs.If(cond, a, b)
		}, "another graph"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := graphs.New("if_rule")
			x := g.Input("x", tensors.Float32, graphs.S("batch", 4))
			cond := g.Input("cond", tensors.Bool, graphs.S(1))
			err := graphs.Try(func() { tc.build(g, x, cond) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLive checks which nodes a graph's outputs depend on: a chain nothing
// reads is dead, and so is a node in an If branch whose value the branch
// does not return, while an outer value only a live branch reads stays
// live; export writes exactly the live nodes.
func TestLive(t *testing.T) {
	g := graphs.New("live")
	x := g.Input("x", tensors.Float32, graphs.S(3))
	dead := graphs.Exp(graphs.Neg(x)) // nothing reads it
	inner := graphs.Sqrt(x)           // only the then branch reads it
	cond := graphs.Less(graphs.ReduceSumAll(x), graphs.ScalarLike(x, 0))
	then := graphs.NewIfBranch(g, "then")
	unused := graphs.Sin(then.Capture(x)) // the branch computes it, returns something else
	then.Finish(graphs.Add(then.Capture(inner), graphs.ScalarLike(x, 1)))
	els := graphs.NewIfBranch(g, "else")
	els.Finish(graphs.Abs(els.Capture(x)))
	g.Output("y", graphs.If(cond, then, els)[0])
	live := g.Live()
	for _, c := range []struct {
		v    *graphs.Value
		want bool
	}{{dead, false}, {dead.Node().Inputs[0], false}, {unused, false}, {inner, true}, {cond, true}} {
		if got := live[c.v.Node()]; got != c.want {
			t.Errorf("%v (%s): live %v, want %v", c.v, c.v.Node().Op, got, c.want)
		}
	}
	if n, all := len(g.LiveNodes()), len(g.AllNodes()); n != all-4 {
		t.Errorf("%d live nodes of %d, want all but the Neg, the Exp, the Sin and the capture it reads", n, all)
	}
	m, err := export.Model(g, export.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	var walk func(gp *onnxpb.GraphProto)
	walk = func(gp *onnxpb.GraphProto) {
		for _, n := range gp.Node {
			ops[n.OpType] = true
			for _, a := range n.Attribute {
				if a.G != nil {
					walk(a.G)
				}
			}
		}
	}
	walk(m.Graph)
	if ops["Neg"] || ops["Exp"] || ops["Sin"] || !ops["Sqrt"] || !ops["If"] || !ops["Abs"] {
		t.Errorf("exported ops %v: want Sqrt, If and Abs and no Neg, Exp or Sin", ops)
	}
	got := graphtest.Run(t, g, map[string]*tensors.Tensor{"x": tensors.FromFloat32([]int64{3}, []float32{-4, 1, 2})})
	if v := got["y"].Float32s(); !math.IsNaN(float64(v[0])) || v[1] != 2 { // sqrt(x) + 1: the sum is negative
		t.Errorf("y = %v, want [NaN 2 2.414…]", v)
	}
}
