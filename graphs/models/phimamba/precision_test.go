package phimamba_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// TestMixerPrecision checks the SSD mixer under the bfloat16 precisions,
// for a sequence that fills its chunks (training) and one that does not:
// the native graph keeps the conv region ([.., ConvChannels] tensors) and
// the SSD's products in bfloat16 and is valid ONNX (the CPU provider,
// which has no bfloat16 kernels, refuses it only for a missing kernel);
// the emulated graph's output and gradients stay within bfloat16 rounding
// of float32 without equalling them.
func TestMixerPrecision(t *testing.T) {
	c := tinyConfig()
	for _, seq := range []int64{16, 13} {
		build := func(p graphs.MatMulPrecision) *graphs.Graph {
			return graphtest.GradStep("mixer_step", p, graphs.S(2, seq, c.DModel), func(get layers.Params, u *graphs.Value) *graphs.Value {
				return phimamba.Mixer(get, c, 0, u, phimamba.FormSSD, nil).Out
			})
		}
		native := build(graphs.MatMulBFloat16)
		conv, products := 0, 0
		for _, n := range native.Nodes() {
			out := n.Outputs[0]
			switch {
			case n.Op == "MatMul" || n.Op == "Gemm":
				products++
				if out.DType != tensors.BFloat16 {
					t.Errorf("T=%d: native %s → %v is %v, want bfloat16", seq, n.Op, out.Shape, out.DType)
				}
			case n.Op != "Cast" && out.Rank() == 3 && out.Shape[2].K == c.ConvChannels() && (seq%c.ChunkSize == 0 || n.Op != "Concat"):
				conv++
				if out.DType != tensors.BFloat16 {
					t.Errorf("T=%d: native %s node on the conv's [.., %d] tensor is %v, want bfloat16", seq, n.Op, c.ConvChannels(), out.DType)
				}
			}
		}
		if conv < 10 || products < 10 {
			t.Errorf("T=%d: %d conv nodes and %d products: the gradient chain is missing", seq, conv, products)
		}
		graphtest.WantMissingKernel(t, native)

		feeds := mixerFeeds(c, seq, 3)
		emulated := build(graphs.MatMulBFloat16Emulated)
		for _, v := range emulated.Inputs() {
			if feeds[v.Name()] == nil {
				t.Fatalf("no feed for %s", v.Name())
			}
		}
		graphtest.WantBF16Close(t, fmt.Sprintf("T=%d ", seq), graphtest.Run(t, emulated, feeds), graphtest.Run(t, build(graphs.MatMulFloat32), feeds))
	}
}

// TestFusedMixer checks that the mixer's output and every gradient agree,
// to float32 rounding, between the stock ops (exported graphs) and the
// fused kernels of training graphs: CausalConv, SegsumExp for the chunks'
// and the scan's decays and SiluMul for the gate, and with the blocks'
// kernels (block) CausalConvSplit for in_proj's split, the conv and its
// split, and SegsumExpMul for the chunks' decay-weighted scores and their
// gradient; at a T that is a multiple of the chunk size and one that is
// not, and without the conv's SiLU and bias; and likewise Stage 1's masked
// kernel K = L∘(C·Bᵀ) [B, H, T, T] (MatrixParts).
func TestFusedMixer(t *testing.T) {
	c := tinyConfig()
	// Phi-Mamba's identity after the conv (tinyConfig has a SiLU, applied
	// to each part the fused conv writes), no conv bias, and B and C
	// shared by two value heads each, as in Llamba.
	plain := c
	plain.Activation, plain.ConvBias, plain.QKHeads = "identity", false, 2
	ssd := func(conf phimamba.Config) func(layers.Params, *graphs.Value) *graphs.Value {
		return func(get layers.Params, u *graphs.Value) *graphs.Value {
			return phimamba.Mixer(get, conf, 0, u, phimamba.FormSSD, nil).Out
		}
	}
	parts := func(get layers.Params, u *graphs.Value) *graphs.Value {
		return phimamba.MatrixParts(get, c, 0, u).Kernel()
	}
	mixer := map[string]int{"CausalConv": 1, "CausalConv parts": 1, "CausalConvGrad": 1, "SegsumExp": 2, "SegsumExpGrad": 2, "SiluMul": 1, "SiluMulGrad": 1}
	// With the blocks' kernels the conv writes x, B, C, z and a_raw, one
	// SegsumExp is the scores' product and one more its gradient for C·Bᵀ.
	mixerBlock := map[string]int{"CausalConv": 1, "CausalConv parts": 5, "CausalConvGrad": 1, "SegsumExp": 3, "SegsumExpGrad": 2, "SiluMul": 1, "SiluMulGrad": 1}
	for _, tc := range []struct {
		name  string
		conf  phimamba.Config
		seq   int64
		block graphs.BlockKernel // the blocks' kernels used
		f     func(layers.Params, *graphs.Value) *graphs.Value
		want  map[string]int // fused nodes by op
	}{
		{"ssd/T=16", c, 16, 0, ssd(c), mixer},
		{"ssd/T=13", c, 13, 0, ssd(c), mixer},
		{"ssd-block/T=16", c, 16, graphs.AllBlockKernels, ssd(c), mixerBlock},
		{"ssd-block/T=13", c, 13, graphs.AllBlockKernels, ssd(c), mixerBlock},
		{"ssd-block-plain/T=16", plain, 16, graphs.AllBlockKernels, ssd(plain), mixerBlock},
		// One kernel at a time (bench-stage --block-kernels=LIST).
		{"ssd-conv/T=16", c, 16, graphs.BlockConv, ssd(c), map[string]int{"CausalConv": 1, "CausalConv parts": 5, "CausalConvGrad": 1, "SegsumExp": 2, "SegsumExpGrad": 2, "SiluMul": 1, "SiluMulGrad": 1}},
		{"ssd-gate/T=13", c, 13, graphs.AllBlockKernels | graphs.BlockGate, ssd(c), map[string]int{"CausalConv": 1, "CausalConv parts": 5, "CausalConvGrad": 1, "GateSkip": 1, "GateSkipGrad": 1, "SegsumExp": 3, "SegsumExpGrad": 2}},
		{"ssd-decay/T=16", c, 16, graphs.BlockDecay, ssd(c), map[string]int{"CausalConv": 1, "CausalConv parts": 1, "CausalConvGrad": 1, "SegsumExp": 3, "SegsumExpGrad": 2, "SiluMul": 1, "SiluMulGrad": 1}},
		{"matrix-parts/T=21", c, 21, 0, parts, map[string]int{"CausalConv": 1, "CausalConv parts": 1, "CausalConvGrad": 1, "SegsumExp": 1, "SegsumExpGrad": 1}},
		{"matrix-parts-block/T=21", c, 21, graphs.AllBlockKernels, parts, map[string]int{"CausalConv": 1, "CausalConv parts": 5, "CausalConvGrad": 1, "SegsumExp": 2, "SegsumExpGrad": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := func(fused bool) *graphs.Graph {
				return graphtest.GradStep("mixer_step", graphs.MatMulFloat32, graphs.S(2, tc.seq, tc.conf.DModel), func(get layers.Params, u *graphs.Value) *graphs.Value {
					switch {
					case fused && tc.block != 0:
						u.Graph().UseBlockKernels(tc.block)
					case fused:
						u.Graph().UseFusedKernels()
					}
					return tc.f(get, u)
				})
			}
			fused := build(true)
			ops := map[string]int{}
			for _, n := range fused.AllNodes() {
				if n.Def().Domain == graphs.FusedDomain {
					ops[n.Op]++
				}
				if n.Op == "CausalConv" {
					ops["CausalConv parts"] += len(n.Outputs)
				}
			}
			if fmt.Sprint(ops) != fmt.Sprint(tc.want) {
				t.Fatalf("fused nodes by op %v, want %v", ops, tc.want)
			}
			feeds := mixerFeeds(tc.conf, tc.seq, 5)
			stock := build(false)
			outs, _ := stock.Outputs()
			r := outs[0].Shape.Sizes()
			feeds["r"] = graphtest.Random(rand.New(rand.NewPCG(uint64(tc.seq), 11)), -1, 1, r...).AsFloat32()
			got, want := graphtest.Run(t, fused, feeds), graphtest.Run(t, stock, feeds)
			for name, w := range want {
				shareddata.WantCloseRel(t, name+", fused vs stock", got[name], w, 1e-5)
			}
		})
	}
}

// mixerFeeds are float32 feeds for a graphtest.GradStep over layer 0's
// mixer: input x and cotangent r [2, seq, DModel], and random mixer weights.
func mixerFeeds(c phimamba.Config, seq int64, seed uint64) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(uint64(seq), seed))
	feeds := map[string]*tensors.Tensor{
		"x": graphtest.Random(rng, -1, 1, 2, seq, c.DModel).AsFloat32(),
		"r": graphtest.Random(rng, -1, 1, 2, seq, c.DModel).AsFloat32(),
	}
	for name, w := range randomWeights(c, 7) {
		if phimamba.IsMixer(name) {
			feeds[name] = w.AsFloat32()
		}
	}
	return feeds
}
