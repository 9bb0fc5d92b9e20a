package family

import (
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/tensors"
)

// TeacherSizes are the sizes of a teacher that the pipeline plans with and
// that deployment files state.
type TeacherSizes struct {
	Vocab, Hidden, Intermediate int64
	Layers                      int
	// Heads query heads of HeadDim; KVHeads key/value heads (= Heads
	// without grouped-query attention), the KV cache's.
	Heads, KVHeads, HeadDim int64
	MaxPositions            int
	Eps                     float32
	// BOS and EOS are config.json's token ids, -1 where absent.
	BOS, EOS int64
}

// StudentSizes are the sizes of a student: its mixers' (all families'
// students share the discrete Mamba-2 mixer) and a hybrid's attention.
type StudentSizes struct {
	Vocab, DModel, Inner int64
	Layers               int
	DState               int64 // N
	VHeads, QKHeads      int64 // value heads H; B/C heads
	HeadDim              int64 // P = DInner/VHeads
	DConv, ConvChannels  int64
	DInner, InProj       int64
	ChunkSize, Expand    int64
	// AttnLayers are a hybrid's attention layers (ascending), with
	// AttnHeads heads of AttnHeadDim in their KV cache.
	AttnLayers             []int
	AttnHeads, AttnHeadDim int64
}

// StudentChoices are pipeline.yaml's student overrides; zero keeps the
// family's derivation from the teacher.
type StudentChoices struct {
	DState, Heads, DConv, ChunkSize, Expand int64
	// AttentionLayers make a hybrid: these layers keep the teacher's
	// attention.
	AttentionLayers []int
}

// Arch is a teacher to pretrain from scratch, given by its sizes
// (pipeline.yaml's stage architecture).
type Arch struct {
	Vocab, Hidden, Layers, Heads, KVHeads, Intermediate int
	Rotary                                              float64 // the fraction of each head rotated (0: the family's default)
	EOS                                                 int64   // the tokenizer's end-of-text id
}

// Teacher is a teacher architecture, as parsed from its config.json.
type Teacher interface {
	// Family is the registered family's name.
	Family() string
	Sizes() TeacherSizes
	Validate() error
	NumParams() int64
	// ParamShapes lists every parameter under its Hugging Face name.
	ParamShapes() map[string]graphs.Shape
	// LayerPrefix is the name prefix of layer i ("model.layers.i").
	LayerPrefix(i int) string
	// Forward builds the teacher on token ids [B, T] (int64).
	Forward(p layers.Params, ids *graphs.Value, opt TeacherOptions) *TeacherOutputs
	// MarshalHF is the Hugging Face config.json, naming dtype as the
	// weights' torch_dtype.
	MarshalHF(dtype tensors.DType) ([]byte, error)
	// Student derives the student architecture from the teacher.
	Student(o StudentChoices) (Student, error)
	// TransferMap maps the student's parameters that the teacher supplies
	// unchanged (embedding, norms, MLPs, head, a hybrid's attention) to the
	// teacher's names; it refuses students whose sizes do not fit.
	TransferMap(s Student) (map[string]string, error)
	// AttentionInit overwrites, in student weights w, layer i's mixer
	// projections with their initialisation from the teacher's attention
	// (teacher weights tw): student.init "attention".
	AttentionInit(tw map[string]*tensors.Tensor, s Student, i int, w map[string]*tensors.Tensor) error
	// CheckAttentionInit reports whether AttentionInit can map the
	// teacher's attention onto student s (their sizes only).
	CheckAttentionInit(s Student) error
	// NoDecay reports whether weight decay skips a parameter when the
	// teacher itself is trained (pretrain): biases and norms.
	NoDecay(name string) bool
}

// Student is a student architecture.
type Student interface {
	// Family is the registered family's name.
	Family() string
	Sizes() StudentSizes
	Validate() error
	NumParams() int64
	ParamShapes() map[string][]int64
	// LayerPrefix is the name prefix of layer i; LayersKey the config.json
	// key of the layer count (both for messages about checkpoints).
	LayerPrefix(i int) string
	LayersKey() string
	// Marshal is the student's config.json.
	Marshal() ([]byte, error)
	// Forward builds the student on token ids [B, T].
	Forward(p layers.Params, ids *graphs.Value, opt StudentOptions) *StudentOutputs
	// Head is the final norm and LM head on the last layer's output h
	// [B, T, D] (any T: a chunk of positions gives that chunk's logits,
	// as losses.TimeChunked needs).
	Head(p layers.Params, h *graphs.Value) *graphs.Value
	// Mixer is layer i's mixer on its normed input u [B, T, D].
	Mixer(p layers.Params, i int, u *graphs.Value, form Form, st *State) MixerOut
	// MatrixParts is layer i's mixing matrix M = L∘S + diag(D) [B, H, T, T]
	// in parts (Stage 1's).
	MatrixParts(p layers.Params, i int, u *graphs.Value) layers.MatrixParts
	// MixerParams lists layer i's mixer parameters; matrixOnly keeps those
	// the mixing matrix depends on (Stage 1's).
	MixerParams(i int, matrixOnly bool) []string
	// IsAttention reports whether layer i is a hybrid's attention layer;
	// SSMLayers lists the others.
	IsAttention(i int) bool
	SSMLayers() []int
	// IsMixer reports whether a parameter belongs to a mixer,
	// IsAttentionParam whether to a hybrid's attention layer, NoDecay
	// whether weight decay skips it.
	IsMixer(name string) bool
	IsAttentionParam(name string) bool
	NoDecay(name string) bool
}

// Family is a registered model family: how to read its teachers and
// students.
type Family interface {
	Name() string
	// Architectures are the Hugging Face architectures and ModelTypes the
	// model_type values of config.json it reads as teachers.
	Architectures() []string
	ModelTypes() []string
	// ParseTeacher reads a teacher's config.json (source names it in
	// messages), reporting every unsupported value by key.
	ParseTeacher(data []byte, source string) (Teacher, error)
	// ScratchTeacher is a fresh teacher of the given sizes.
	ScratchTeacher(a Arch) (Teacher, error)
	// StudentLayout names the student's config layout; IsStudentConfig
	// recognises it from config.json's top-level keys.
	StudentLayout() string
	IsStudentConfig(keys map[string]bool) bool
	// ParseStudent reads a student's config.json; shapes are its weights'
	// (some layouts leave sizes to them) and eps the norm epsilon when the
	// layout has none.
	ParseStudent(data []byte, source string, shapes map[string][]int64, eps float32) (Student, error)
}
