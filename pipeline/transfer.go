package pipeline

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	gt "gorgonia.org/tensor"

	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/stages"
	"mohawk/tensors"
)

// Student initialisations.
const (
	InitMohawk    = "mohawk"    // transfer MLP/norms/embedding/head; mixers per the paper
	InitAttention = "attention" // also q→C, k→B, v→x, dense→out_proj (MambaInLlama)
	InitScratch   = "scratch"   // nothing transferred (the from-scratch baseline)
)

// StudentConfigFor derives the pure student architecture from the teacher:
// same layers, width and vocabulary, heads = teacher heads, d_state = head
// dim, conv width 4, expand 1, unless the options override them.
// HybridConfigFor adds student.attention_layers.
func StudentConfigFor(t phi.Config, o StudentConfig) phimamba.Config {
	c := phimamba.Config{
		Vocab: t.Vocab, VocabRaw: t.Vocab, PadMult: 1, DModel: t.Hidden, Layers: t.Layers,
		DState: t.HeadDim(), VHeads: t.Heads, QKHeads: t.Heads, DConv: 4, ConvBias: true, Expand: 1,
		ChunkSize: 128, Activation: "identity", Inner: t.Intermediate, Eps: t.Eps,
	}
	if o.DState > 0 {
		c.DState = o.DState
	}
	if o.Heads > 0 {
		c.VHeads, c.QKHeads = o.Heads, o.Heads
	}
	if o.DConv > 0 {
		c.DConv = o.DConv
	}
	if o.ChunkSize > 0 {
		c.ChunkSize = o.ChunkSize
	}
	if o.Expand > 0 {
		c.Expand = o.Expand
	}
	return c
}

// HybridConfigFor is StudentConfigFor with the layers of
// student.attention_layers keeping the teacher's attention.
func HybridConfigFor(t phi.Config, o StudentConfig) (phimamba.Config, error) {
	c := StudentConfigFor(t, o)
	var err error
	c.Attn, err = hybridAttention(t, o)
	return c, err
}

// transferMap maps student parameter names to the teacher's.
func transferMap(c phimamba.Config) map[string]string {
	m := map[string]string{
		"backbone.embedding.weight":       "model.embed_tokens.weight",
		"backbone.final_layernorm.weight": "model.final_layernorm.weight",
		"backbone.final_layernorm.bias":   "model.final_layernorm.bias",
		"lm_head.weight":                  "lm_head.weight",
		"lm_head.bias":                    "lm_head.bias",
	}
	for i := 0; i < c.Layers; i++ {
		s, t := phimamba.LayerPrefix(i), phi.LayerPrefix(i)
		for _, n := range []string{"mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "input_layernorm.weight", "input_layernorm.bias"} {
			m[s+"."+n] = t + "." + n
		}
		if c.IsAttention(i) {
			for _, n := range c.AttentionParams(i) {
				m[n] = phimamba.TeacherAttentionName(i, strings.TrimPrefix(n, phimamba.AttentionName(i, "")))
			}
		}
	}
	return m
}

// GateBias opens the SiLU gate: SiLU(1.2785) ≈ 1 (the authors' value).
const GateBias = 1.2785

// NewStudent builds the student's initial weights. InitMohawk and
// InitAttention copy embedding, MLPs, norms and head from the teacher, and
// a hybrid student's attention layers bit for bit;
// mixers start with an identity conv (taps [0,…,0,1], bias 0), an open gate
// (z rows of in_proj zero, z_bias = GateBias), D = 1 and PyTorch's default
// uniform(±1/√fan_in) for the remaining projections. InitScratch draws
// every matrix from N(0, 0.02²) (biases 0, norms 1) and keeps the mixer
// conv/gate/D initialisation. Random draws are seeded per tensor name.
func NewStudent(t *stages.Teacher, c phimamba.Config, init string, seed uint64) (*stages.Student, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("student config: %w", err)
	}
	if init != InitScratch && c.DModel != t.Config.Hidden {
		return nil, fmt.Errorf("student d_model %d differs from the teacher's hidden size %d; weight transfer needs them equal", c.DModel, t.Config.Hidden)
	}
	if init != InitScratch && c.Vocab != t.Config.Vocab {
		return nil, fmt.Errorf("student vocabulary %d differs from the teacher's %d", c.Vocab, t.Config.Vocab)
	}
	w := stages.Weights{}
	for name, shape := range c.ParamShapes() {
		w[name] = initTensor(name, shape, init, seed)
	}
	if init != InitScratch {
		for s, tn := range transferMap(c) {
			tw, ok := t.Weights[tn]
			if !ok || !slices.Equal(tw.Shape, w[s].Shape) {
				return nil, fmt.Errorf("transfer %s → %s: teacher tensor missing or of another shape", tn, s)
			}
			w[s] = tw.Clone()
		}
	}
	for _, i := range c.SSMLayers() {
		openGate(c, i, w)
		if init == InitAttention {
			if err := attentionInit(t, c, i, w); err != nil {
				return nil, err
			}
		}
	}
	return &stages.Student{Config: c, Weights: w}, nil
}

func rngFor(name string, seed uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// initTensor is the fresh value of one parameter.
func initTensor(name string, shape []int64, init string, seed uint64) *tensors.Tensor {
	t := tensors.Zeros(tensors.Float32, shape...)
	v := t.Float32s()
	rng := rngFor(name, seed)
	switch {
	case strings.HasSuffix(name, ".conv1d.weight"):
		k := shape[2]
		for c := int64(0); c < shape[0]; c++ {
			v[c*k+k-1] = 1 // identity: the current input only
		}
	case strings.HasSuffix(name, ".conv1d.bias") || strings.HasSuffix(name, ".bias"):
	case strings.HasSuffix(name, "layernorm.weight") || strings.HasSuffix(name, ".mixer.D"):
		for i := range v {
			v[i] = 1
		}
	case strings.HasSuffix(name, ".mixer.z_bias"):
		for i := range v {
			v[i] = GateBias
		}
	case init == InitScratch:
		for i := range v {
			v[i] = float32(0.02 * rng.NormFloat64())
		}
	default: // nn.Linear's default: kaiming_uniform(a=√5) = U(±1/√fan_in)
		b := 1 / math.Sqrt(float64(shape[len(shape)-1]))
		for i := range v {
			v[i] = float32(b * (2*rng.Float64() - 1))
		}
	}
	return t
}

// openGate zeroes the z rows of layer i's in_proj so the gate is SiLU(z_bias).
func openGate(c phimamba.Config, i int, w stages.Weights) {
	ip := w[phimamba.LayerPrefix(i)+".mixer.in_proj.weight"]
	d := c.DModel
	v := ip.Float32s()
	start := c.ConvChannels() * d
	for j := start; j < start+c.DInner()*d; j++ {
		v[j] = 0
	}
}

// attentionInit copies layer i's attention projections into the mixer:
// x ← v_proj, B ← k_proj, C ← q_proj (row blocks of in_proj, in that
// order), out_proj ← dense. The teacher's q/k/v biases have no counterpart
// and are dropped.
func attentionInit(t *stages.Teacher, c phimamba.Config, i int, w stages.Weights) error {
	if c.DInner() != t.Config.Hidden || c.VHeads*c.DState != t.Config.Hidden {
		return fmt.Errorf("student.init %q needs d_inner = heads·d_state = the teacher hidden size %d", InitAttention, t.Config.Hidden)
	}
	tp := phi.LayerPrefix(i) + ".self_attn."
	dense := func(n string) *gt.Dense {
		x := t.Weights[tp+n+".weight"]
		return gt.New(gt.WithShape(int(x.Shape[0]), int(x.Shape[1])), gt.WithBacking(append([]float32(nil), x.Float32s()...)))
	}
	ipName := phimamba.LayerPrefix(i) + ".mixer.in_proj.weight"
	ip := w[ipName]
	rows := int(ip.Shape[0])
	cur := gt.New(gt.WithShape(rows, int(ip.Shape[1])), gt.WithBacking(append([]float32(nil), ip.Float32s()...)))
	hd := int(t.Config.Hidden)
	tail, err := cur.Slice(gt.S(3*hd, rows))
	if err != nil {
		return fmt.Errorf("attention init, layer %d: %w", i, err)
	}
	tailD := tail.(*gt.Dense).Materialize().(*gt.Dense)
	joined, err := gt.Concat(0, dense("v_proj"), dense("k_proj"), dense("q_proj"), tailD)
	if err != nil {
		return fmt.Errorf("attention init, layer %d: %w", i, err)
	}
	w[ipName] = tensors.FromFloat32(ip.Shape, joined.Data().([]float32))
	out := t.Weights[tp+"dense.weight"]
	w[phimamba.LayerPrefix(i)+".mixer.out_proj.weight"] = out.Clone()
	return nil
}
