package phimamba_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// hybridConfig is a small student whose listed layers are attention.
func hybridConfig(layersN int, attn ...int) phimamba.Config {
	return phimamba.Config{Vocab: 64, VocabRaw: 64, PadMult: 8, DModel: 32, Layers: layersN, DState: 8, VHeads: 4, QKHeads: 4,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 8, Activation: "identity", Inner: 64, Eps: 1e-5,
		Attn: phimamba.Attention{Layers: attn, Heads: 4, RotaryDim: 4, RopeTheta: 10000}}
}

func randomIDs(seed uint64, b, t int64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	v := make([]int64, b*t)
	for i := range v {
		v[i] = rng.Int64N(64)
	}
	return tensors.FromInt64([]int64{b, t}, v)
}

// stepLogits feeds ids one token at a time through the step form, carrying
// every layer's state (conv/ssm or the KV cache) on the host.
func stepLogits(t *testing.T, c phimamba.Config, w map[string]*tensors.Tensor, ids *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	g := graphs.New("hybrid_step")
	in := g.Input("input_ids", tensors.Int64, graphs.S("batch", 1))
	b := ids.Shape[0]
	hd := c.AttnHeadDim()
	state := map[string]*tensors.Tensor{}
	if err := graphs.Try(func() {
		st := make([]phimamba.State, c.Layers)
		for i := range st {
			name := func(s string) string { return fmt.Sprintf("%s_%d", s, i) }
			if c.IsAttention(i) {
				st[i] = phimamba.State{Key: g.Input(name("key"), tensors.Float32, graphs.S("batch", c.Attn.Heads, "past", hd)),
					Value: g.Input(name("value"), tensors.Float32, graphs.S("batch", c.Attn.Heads, "past", hd))}
				state[name("key")] = tensors.Zeros(tensors.Float32, b, c.Attn.Heads, 0, hd)
				state[name("value")] = tensors.Zeros(tensors.Float32, b, c.Attn.Heads, 0, hd)
				continue
			}
			st[i] = phimamba.State{Conv: g.Input(name("conv"), tensors.Float32, graphs.S("batch", c.ConvChannels(), c.DConv-1)),
				SSM: g.Input(name("ssm"), tensors.Float32, graphs.S("batch", c.VHeads, c.DState, c.HeadDim()))}
			state[name("conv")] = tensors.Zeros(tensors.Float32, b, c.ConvChannels(), c.DConv-1)
			state[name("ssm")] = tensors.Zeros(tensors.Float32, b, c.VHeads, c.DState, c.HeadDim())
		}
		out := phimamba.Forward(&layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}, c, in, phimamba.Options{Form: phimamba.FormStep, States: st})
		g.Output("logits", out.Logits)
		for i, s := range out.States {
			if c.IsAttention(i) {
				g.Output(fmt.Sprintf("next_key_%d", i), s.Key)
				g.Output(fmt.Sprintf("next_value_%d", i), s.Value)
			} else {
				g.Output(fmt.Sprintf("next_conv_%d", i), s.Conv)
				g.Output(fmt.Sprintf("next_ssm_%d", i), s.SSM)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	s := graphtest.Session(t, g)
	tl := ids.Shape[1]
	v := c.Vocab
	out := tensors.Zeros(tensors.Float32, b, tl, v)
	for pos := int64(0); pos < tl; pos++ {
		tok := make([]int64, b)
		for bi := range tok {
			tok[bi] = ids.Int64s()[int64(bi)*tl+pos]
		}
		feeds := map[string]*tensors.Tensor{"input_ids": tensors.FromInt64([]int64{b, 1}, tok)}
		for k, x := range state {
			feeds[k] = x
		}
		r := graphtest.RunSession(t, s, g, feeds)
		for bi := int64(0); bi < b; bi++ {
			copy(out.Float32s()[(bi*tl+pos)*v:(bi*tl+pos+1)*v], r["logits"].Float32s()[bi*v:(bi+1)*v])
		}
		for k := range state {
			state[k] = r["next_"+k]
		}
	}
	return out
}

// TestHybridFormsAgree checks that the materialised, chunked and recurrent
// step forms of hybrid students give the same logits.
func TestHybridFormsAgree(t *testing.T) {
	for _, attn := range [][]int{{1}, {0, 2}, {0, 1, 2}} {
		t.Run(fmt.Sprint("attention ", attn), func(t *testing.T) {
			c := hybridConfig(3, attn...)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			w := randomWeights(c, 11)
			ids := randomIDs(3, 2, 13)
			matrix := studentLogits(t, c, w, ids, phimamba.FormMatrix)
			ssd := studentLogits(t, c, w, ids, phimamba.FormSSD)
			step := stepLogits(t, c, w, ids)
			compare(t, "ssd vs matrix logits", ssd, matrix, 1e-5)
			compare(t, "step vs matrix logits", step, matrix, 1e-5)
		})
	}
}

// TestAllAttentionIsTheTeacher builds a Phi teacher with random weights and
// the hybrid student that keeps every layer as attention, with the teacher's
// tensors under the student's names: their logits must be identical.
func TestAllAttentionIsTheTeacher(t *testing.T) {
	tc := phi.Config{Vocab: 64, Hidden: 32, Layers: 3, Heads: 4, Intermediate: 64, RotaryDim: 4, RopeTheta: 10000, Eps: 1e-5}
	rng := rand.New(rand.NewPCG(5, 6))
	tw := map[string]*tensors.Tensor{}
	for name, shape := range tc.ParamShapes() {
		tw[name] = graphtest.Random(rng, -0.3, 0.3, shape.Sizes()...).AsFloat32()
	}
	sc := hybridConfig(3, 0, 1, 2)
	sc.PadMult = 1
	// The student's names, written out independently of pipeline's transfer.
	rename := strings.NewReplacer("model.embed_tokens.", "backbone.embedding.", "model.final_layernorm.", "backbone.final_layernorm.",
		".self_attn.", ".mixer.self_attn.", "model.layers.", "backbone.layers.")
	sw := map[string]*tensors.Tensor{}
	for name, x := range tw {
		sw[rename.Replace(name)] = x
	}
	if !reflect.DeepEqual(graphtest.Shapes(sw), sc.ParamShapes()) {
		t.Fatalf("renamed teacher tensors %v differ from the student's parameters %v", graphtest.Shapes(sw), sc.ParamShapes())
	}
	ids := randomIDs(9, 2, 17)
	g := graphs.New("teacher")
	in := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
	if err := graphs.Try(func() {
		g.Output("logits", phi.Forward(&layers.Frozen{G: g, Tensors: tw, DType: tensors.Float32}, tc, in, phi.Options{}).Logits)
	}); err != nil {
		t.Fatal(err)
	}
	teacher := graphtest.Run(t, g, map[string]*tensors.Tensor{"input_ids": ids})["logits"]
	for _, form := range []phimamba.Form{phimamba.FormSSD, phimamba.FormMatrix} {
		shareddata.WantClose(t, fmt.Sprintf("all-attention student (%v form) vs teacher logits", form), studentLogits(t, sc, sw, ids, form), teacher, 0)
	}
}

// TestHybridConfigRoundTrip saves hybrid configs in the authors' block
// layout and reads them back.
func TestHybridConfigRoundTrip(t *testing.T) {
	for _, attn := range [][]int{nil, {0}, {1, 2}, {0, 2, 4}, {4}} {
		c := hybridConfig(5, attn...)
		if attn == nil {
			c.Attn = phimamba.Attention{}
		}
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := phimamba.ParseConfig(data, "config.json", c.Inner, c.Eps)
		if err != nil {
			t.Fatalf("%v: %v", attn, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Errorf("attention %v: round trip gave %+v, want %+v\n%s", attn, back, c, data)
		}
	}
	data, _ := hybridConfig(5, 1, 2).Marshal()
	if s := string(data); !strings.Contains(s, `"CoreType": "modules.mixers.phi_attention"`) || strings.Index(s, `"Block3"`) < strings.Index(s, `"Block2"`) {
		t.Errorf("hybrid config.json lacks the authors' attention block or orders blocks wrongly:\n%s", s)
	}
}

// TestHybridConfigErrors feeds broken hybrid configs.
func TestHybridConfigErrors(t *testing.T) {
	good, _ := hybridConfig(3, 1).Marshal()
	for _, tc := range []struct{ name, from, to, want string }{
		{"layer count", `"n_layer": 3`, `"n_layer": 4`, "add up to 3"},
		{"unknown core", `"modules.mixers.phi_attention"`, `"modules.mixers.llama_attention"`, "Block2.CoreType"},
		{"heads", `"num_attention_heads": 4`, `"num_attention_heads": 5`, "attention heads 5"},
		{"gap", `"Block3"`, `"Block4"`, "missing key Block3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("%q not found in %s", tc.from, good)
			}
			_, err := phimamba.ParseConfig([]byte(bad), "config.json", 64, 1e-5)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
	for _, attn := range [][]int{{3}, {1, 1}, {2, 1}, {-1}} {
		if err := hybridConfig(3, attn...).Validate(); err == nil {
			t.Errorf("attention layers %v of 3 validated", attn)
		}
	}
}

// TestBlockKernels checks a hybrid student's forward pass and every
// gradient with the blocks' fused kernels (graphs.Graph.UseBlockKernels:
// CausalConvSplit and SegsumExpMul in the mixer layer, Rotary in the
// attention layer, Residual in both) against the stock ops, to float32
// rounding, and that the kernels are there.
func TestBlockKernels(t *testing.T) {
	c := hybridConfig(2, 1)
	w := randomWeights(c, 9)
	ids := randomIDs(4, 2, 13)
	build := func(block graphs.BlockKernel) *graphs.Graph {
		g := graphs.New("block")
		g.UseBlockKernels(block)
		in := g.Input("input_ids", tensors.Int64, graphs.S(2, 13))
		var names []string
		var params []*graphs.Value
		get := layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
			v := g.Input(name, tensors.Float32, shape)
			names, params = append(names, name), append(params, v)
			return v
		})
		logits := phimamba.Forward(get, c, in, phimamba.Options{Form: phimamba.FormSSD}).Logits
		g.Output("logits", logits)
		loss := graphs.ReduceSumAll(graphs.Mul(logits, g.Input("r", tensors.Float32, logits.Shape)))
		for i, d := range graphs.Gradients(loss, params...) {
			g.Output("d_"+names[i], d)
		}
		return g
	}
	var stock, block *graphs.Graph
	if err := graphs.Try(func() { stock, block = build(0), build(graphs.AllBlockKernels) }); err != nil {
		t.Fatal(err)
	}
	// All of them, then each on its own (bench-stage --block-kernels=LIST).
	for _, c := range []struct {
		k    graphs.BlockKernel
		want map[string]int
	}{
		{graphs.AllBlockKernels, map[string]int{"Residual": 2, "Rotary": 2, "CausalConvGrad": 1}},
		{graphs.BlockResidual, map[string]int{"Residual": 2, "Rotary": 0}},
		{graphs.BlockRotary, map[string]int{"Residual": 0, "Rotary": 2}},
		{graphs.BlockConv | graphs.BlockDecay, map[string]int{"Residual": 0, "Rotary": 0, "CausalConvGrad": 1}},
	} {
		g := block
		if c.k != graphs.AllBlockKernels {
			if err := graphs.Try(func() { g = build(c.k) }); err != nil {
				t.Fatal(err)
			}
		}
		ops := map[string]int{}
		for _, n := range g.LiveNodes() {
			ops[n.Op]++
		}
		for op, want := range c.want {
			if ops[op] != want {
				t.Errorf("%d %s nodes with the blocks' kernels %s, want %d", ops[op], op, c.k, want)
			}
		}
	}
	feeds := map[string]*tensors.Tensor{"input_ids": ids}
	for name, v := range w {
		feeds[name] = v
	}
	outs, _ := stock.Outputs()
	feeds["r"] = graphtest.Random(rand.New(rand.NewPCG(3, 3)), -1, 1, outs[0].Shape.Sizes()...).AsFloat32()
	got, want := graphtest.Run(t, block, feeds), graphtest.Run(t, stock, feeds)
	for name, v := range want {
		shareddata.WantCloseRel(t, name+", blocks' kernels vs stock", got[name], v, 1e-5)
	}
}
