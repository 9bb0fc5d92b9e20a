package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"mohawk/atomicfile"
	"mohawk/export"
	"mohawk/graphs"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// Files of a deployment folder.
const (
	ModelFile       = export.ModelFile // the ONNX graph
	DataFile        = export.DataFile  // its external weights, when written
	ConfigFile      = "config.json"    // the model's own config (authors' or Hugging Face layout)
	TokenizerFile   = "tokenizer.json"
	GenAIConfigFile = "genai_config.json" // onnxruntime-genai's model description
	ManifestFile    = "mohawk.json"       // state shapes for Generator (written last)
)

// Graph input and output names (onnxruntime-genai's conventions, see
// ../shared/docs/onnx-ecosystem.md §4.2–4.3). The %d is the layer index.
const (
	InputIDs         = "input_ids"
	Logits           = "logits"
	PastConv         = "past_key_values.%d.conv_state"
	PastRecurrent    = "past_key_values.%d.recurrent_state"
	PresentConv      = "present.%d.conv_state"
	PresentRecurrent = "present.%d.recurrent_state"
	PastKey          = "past_key_values.%d.key"
	PastValue        = "past_key_values.%d.value"
	PresentKey       = "present.%d.key"
	PresentValue     = "present.%d.value"
	// NextToken is the graph's greedy choice after each sequence's last
	// position, [batch_size, 1] int64 (Manifest.NextToken).
	NextToken = "next_token"
)

// Symbolic dimension names of the graphs' inputs.
const (
	batchDim   = "batch_size"
	seqDim     = "sequence_length"
	pastSeqDim = "past_sequence_length"
)

// ExternalAbove is the weight size from which model.onnx.data is written
// even when Options.External is off (export.Save also switches on its own
// at protobuf's 2 GB limit).
const ExternalAbove = 512 << 20

// DefaultStudentContext is the student's context_length in
// genai_config.json when Options.ContextLength is 0: the recurrent student
// has no positional limit, so this only bounds genai's max_length.
const DefaultStudentContext = 16384

// Options control an export.
type Options struct {
	// FP16 stores the weights as float16; the graph casts them to float32
	// right after loading, so the computation (and the states) stay float32.
	// The files halve; at run time ONNX Runtime folds the casts, so the
	// weights take float32 memory (measured: the same resident set as the
	// float32 folder for phimamba-tiny-en).
	FP16 bool
	// Opset is the default-domain opset: 0 means the lowest the graph needs
	// (export.RequiredOpset, which keeps every node on ONNX Runtime's CUDA
	// kernels); at most export.MaxOpset (26, what ONNX Runtime 1.29 loads).
	Opset int
	// External writes the weights to model.onnx.data (4 KiB aligned) even
	// below ExternalAbove.
	External bool
	// ContextLength is genai_config.json's context_length; 0 means the
	// teacher's max_position_embeddings or DefaultStudentContext.
	ContextLength int
}

// opset is the opset g is written with.
func (o Options) opset(g *graphs.Graph) int {
	if o.Opset == 0 {
		return export.RequiredOpset(g)
	}
	return o.Opset
}

func (o Options) validate() error {
	if op := o.Opset; op != 0 && (op < export.MinOpset || op > export.MaxOpset) {
		return fmt.Errorf("opset %d: use 0 (the lowest the graph needs) or %d to %d (ONNX Runtime 1.29 loads at most %d)",
			op, export.MinOpset, export.MaxOpset, export.MaxOpset)
	}
	if o.ContextLength < 0 {
		return fmt.Errorf("context length %d is negative; use 0 for the default", o.ContextLength)
	}
	return nil
}

// ExportStudent writes a deployment folder for a student of any family
// with weights w (float32 or float16 tensors under its own names):
// model.onnx (+ model.onnx.data), the student's config.json, a
// copy of the tokenizer.json at tokenizerJSON, genai_config.json and
// mohawk.json.
//
// The graph takes input_ids [batch_size, sequence_length] and per layer i
// past_key_values.i.conv_state [batch_size, ConvChannels, DConv−1] and
// past_key_values.i.recurrent_state [batch_size, H, N, P] (zeros for an
// empty context), and returns logits [batch_size, sequence_length, vocab]
// and present.i.conv_state / present.i.recurrent_state. An If on
// sequence_length == 1 runs the recurrent step form for decoding and the
// chunked SSD form (with the incoming states) otherwise. A hybrid student's
// attention layer i carries past_key_values.i.key / .value [batch_size,
// heads, past_sequence_length, head_dim] → present.i.key / .value instead,
// as the teacher's do; genai_config.json then gives the attention heads.
func ExportStudent(dir string, c family.Student, w map[string]*tensors.Tensor, tokenizerJSON string, o Options) error {
	fail := func(err error) error { return fmt.Errorf("export student to %s: %w", dir, err) }
	if err := o.validate(); err != nil {
		return fail(err)
	}
	if err := c.Validate(); err != nil {
		return fail(fmt.Errorf("student config: %w", err))
	}
	tok, err := tokenizer.Load(tokenizerJSON)
	if err != nil {
		return fail(err)
	}
	sz := c.Sizes()
	if err := tok.CheckFits(sz.Vocab, "the student"); err != nil {
		return fail(err)
	}
	eot, _, err := tokenizer.EndOfText(tokenizerJSON, tok)
	if err != nil {
		return fail(fmt.Errorf("the student's end-of-text id: %w", err))
	}
	g, err := studentGraph(c, w, o.FP16, decodeIf)
	if err != nil {
		return fail(err)
	}
	width := min(sz.Vocab, int64(tok.VocabSize()))
	if err := addNextToken(g, width); err != nil {
		return fail(err)
	}
	cfg, err := c.Marshal()
	if err != nil {
		return fail(err)
	}
	ctx := o.ContextLength
	if ctx == 0 {
		ctx = DefaultStudentContext
	}
	dec := genaiDecoder{HiddenSize: sz.DModel, NumAttentionHeads: sz.VHeads, NumKeyValueHeads: sz.VHeads, HeadSize: sz.HeadDim, NumHiddenLayers: sz.Layers}
	decode := studentDecode
	if len(sz.AttnLayers) > 0 { // the KV cache's heads, as genai sizes it
		dec.NumAttentionHeads, dec.NumKeyValueHeads, dec.HeadSize = sz.AttnHeads, sz.AttnHeads, sz.AttnHeadDim
		decode = fmt.Sprintf("%s; attention layers %v: %s", studentDecode, sz.AttnLayers, teacherDecode)
	}
	f := folder{
		graph:  g,
		config: cfg,
		genai: newGenAIConfig(genaiModel{
			BOS: eot, EOS: eot, Pad: eot, VocabSize: sz.Vocab, ContextLength: ctx, Decoder: dec,
		}),
		manifest: Manifest{Kind: KindStudent, Decode: decode, States: studentStates(c), NextToken: NextToken, NextTokenWidth: width},
	}
	if err := f.write(dir, tokenizerJSON, o); err != nil {
		return fail(err)
	}
	return nil
}

// ExportTeacher writes a deployment folder for teacher t of any family
// with weights w: the graph takes input_ids and per layer
// past_key_values.i.key / .value [batch_size, key/value heads,
// past_sequence_length, head_dim] (length 0 for an empty context) and
// returns logits and present.i.key / .value with the new positions
// appended. Rotary positions continue from past_sequence_length.
func ExportTeacher(dir string, t family.Teacher, w map[string]*tensors.Tensor, tokenizerJSON string, o Options) error {
	fail := func(err error) error { return fmt.Errorf("export teacher to %s: %w", dir, err) }
	if err := o.validate(); err != nil {
		return fail(err)
	}
	cfg, err := t.MarshalHF(tensors.Float32)
	if err != nil {
		return fail(err)
	}
	tok, err := tokenizer.Load(tokenizerJSON)
	if err != nil {
		return fail(err)
	}
	sz := t.Sizes()
	if err := tok.CheckFits(sz.Vocab, "the teacher (config.json vocab_size)"); err != nil {
		return fail(err)
	}
	bos, eos := sz.BOS, sz.EOS
	if bos < 0 || eos < 0 { // config.json lacks one: the tokenizer's end of text stands in
		eot, _, err := tokenizer.EndOfText(tokenizerJSON, tok)
		if err != nil {
			return fail(fmt.Errorf("config.json has no bos/eos token id (set bos_token_id and eos_token_id) and %w", err))
		}
		if bos < 0 {
			bos = eot
		}
		if eos < 0 {
			eos = eot
		}
	}
	g, err := teacherGraph(t, w, o.FP16)
	if err != nil {
		return fail(err)
	}
	width := min(sz.Vocab, int64(tok.VocabSize()))
	if err := addNextToken(g, width); err != nil {
		return fail(err)
	}
	ctx := o.ContextLength
	if ctx == 0 {
		ctx = sz.MaxPositions
	}
	f := folder{
		graph:  g,
		config: cfg,
		genai: newGenAIConfig(genaiModel{
			BOS: bos, EOS: eos, Pad: eos, VocabSize: sz.Vocab, ContextLength: ctx,
			Decoder: genaiDecoder{
				HiddenSize: sz.Hidden, NumAttentionHeads: sz.Heads, NumKeyValueHeads: sz.KVHeads,
				HeadSize: sz.HeadDim, NumHiddenLayers: sz.Layers,
			},
		}),
		manifest: Manifest{Kind: KindTeacher, Decode: teacherDecode, States: teacherStates(t), NextToken: NextToken, NextTokenWidth: width},
	}
	if err := f.write(dir, tokenizerJSON, o); err != nil {
		return fail(err)
	}
	return nil
}

// folder is everything a deployment folder holds, before writing.
type folder struct {
	graph    *graphs.Graph
	config   []byte
	genai    genaiConfig
	manifest Manifest
}

// write stores the folder: the model first, the manifest last, so a folder
// with a mohawk.json is complete.
func (f folder) write(dir, tokenizerJSON string, o Options) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A manifest left from an earlier export would vouch for a half-written folder.
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	var weightBytes int64
	for _, v := range f.graph.Initializers() {
		weightBytes += int64(len(v.Data().Data))
	}
	meta := map[string]string{"mohawk.kind": f.manifest.Kind, "mohawk.decode": f.manifest.Decode}
	err := export.Save(f.graph, dir, export.SaveOptions{
		Options:  export.Options{Opset: o.opset(f.graph), Metadata: meta, DocString: "mohawk " + f.manifest.Kind + " decoder: " + f.manifest.Decode},
		External: o.External || weightBytes >= ExternalAbove,
		Portable: true,
	})
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(tokenizerJSON)
	if err != nil {
		return err
	}
	f.genai.Model.Decoder.Filename = ModelFile
	f.manifest.Format, f.manifest.Opset = ManifestFormat, o.opset(f.graph)
	f.manifest.WeightDType = tensors.Float32.String()
	if o.FP16 {
		f.manifest.WeightDType = tensors.Float16.String()
	}
	genai, err := json.MarshalIndent(f.genai, "", "  ")
	if err != nil {
		return err
	}
	manifest, err := json.MarshalIndent(f.manifest, "", "  ")
	if err != nil {
		return err
	}
	for _, file := range []struct {
		name string
		data []byte
	}{{ConfigFile, f.config}, {TokenizerFile, tok}, {GenAIConfigFile, genai}, {ManifestFile, manifest}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, file.name), file.data); err != nil {
			return err
		}
	}
	return nil
}
