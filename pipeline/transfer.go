package pipeline

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"mohawk/graphs/models/family"
	"mohawk/stages"
	"mohawk/tensors"
)

// Student initialisations.
const (
	InitMohawk    = "mohawk"    // transfer MLP/norms/embedding/head; mixers per the paper
	InitAttention = "attention" // also q→C, k→B, v→x, dense→out_proj (MambaInLlama)
	InitScratch   = "scratch"   // nothing transferred (the from-scratch baseline)
)

// StudentConfigFor derives the student architecture from the teacher
// (its family's derivation, e.g. same layers, width and vocabulary, heads =
// teacher heads, d_state = head dim), with the overrides of o and the
// layers of student.attention_layers keeping the teacher's attention.
func StudentConfigFor(t family.Teacher, o StudentConfig) (family.Student, error) {
	ch, err := studentChoices(t, o)
	if err != nil {
		return nil, err
	}
	return t.Student(ch)
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
func NewStudent(t *stages.Teacher, c family.Student, init string, seed uint64) (*stages.Student, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("student config: %w", err)
	}
	sz, ts := c.Sizes(), t.Config.Sizes()
	if init != InitScratch && sz.DModel != ts.Hidden {
		return nil, fmt.Errorf("student d_model %d differs from the teacher's hidden size %d; weight transfer needs them equal", sz.DModel, ts.Hidden)
	}
	if init != InitScratch && sz.Vocab != ts.Vocab {
		return nil, fmt.Errorf("student vocabulary %d differs from the teacher's %d", sz.Vocab, ts.Vocab)
	}
	w := stages.Weights{}
	for name, shape := range c.ParamShapes() {
		w[name] = initTensor(name, shape, init, seed)
	}
	if init != InitScratch {
		m, err := t.Config.TransferMap(c)
		if err != nil {
			return nil, err
		}
		for s, tn := range m {
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
			if err := t.Config.AttentionInit(t.Weights, c, i, w); err != nil {
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
	case strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, ".mixer.D"):
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
func openGate(c family.Student, i int, w stages.Weights) {
	ip := w[c.LayerPrefix(i)+".mixer.in_proj.weight"]
	sz := c.Sizes()
	d := sz.DModel
	v := ip.Float32s()
	start := sz.ConvChannels * d
	for j := start; j < start+sz.DInner*d; j++ {
		v[j] = 0
	}
}
