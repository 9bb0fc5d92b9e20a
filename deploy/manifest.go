package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"mohawk/graphs/models/family"
	"mohawk/runtime"
	"mohawk/tensors"
)

// ManifestFormat identifies the layout of mohawk.json.
const ManifestFormat = "mohawk-deploy/1"

// Kinds of deployed model.
const (
	KindStudent = "student" // Phi-Mamba or Llamba: fixed-size recurrent states
	KindTeacher = "teacher" // a Transformer: a KV cache that grows with the context
)

// How each kind computes a call (recorded in mohawk.json and the model's
// metadata).
const (
	studentDecode = "If(sequence_length == 1): recurrent step form; else: chunked SSD form with the incoming states"
	teacherDecode = "attention over the KV cache with the new positions appended"
)

// Manifest is mohawk.json: what a Generator needs beyond genai_config.json,
// chiefly the carried tensors.
type Manifest struct {
	Format      string      `json:"format"`       // ManifestFormat
	Kind        string      `json:"kind"`         // KindStudent or KindTeacher
	WeightDType string      `json:"weight_dtype"` // storage dtype of the weights; compute is float32
	Opset       int         `json:"opset"`
	Decode      string      `json:"decode"` // how the graph computes a call
	States      []StateSpec `json:"states"` // in graph input order, after input_ids
	// NextToken names the graph's greedy output (NextToken; "" in folders
	// exported before it existed): the id of the largest logit at each
	// sequence's last position among ids [0, NextTokenWidth), the
	// tokenizer's ids, as [batch_size, 1] int64.
	NextToken      string `json:"next_token,omitempty"`
	NextTokenWidth int64  `json:"next_token_width,omitempty"`
}

// StateSpec is one carried tensor: fed as Input, returned as Output and fed
// back on the next call.
type StateSpec struct {
	Input  string `json:"input"`
	Output string `json:"output"`
	DType  string `json:"dtype"`
	// Shape is the tensor's shape in an empty context, with -1 for the
	// batch axis (axis 0).
	Shape []int64 `json:"shape"`
	// SeqAxis is the axis that grows by the number of tokens of each call
	// (the KV cache's past_sequence_length, 0 long when empty), or -1 for a
	// fixed-size state.
	SeqAxis int `json:"seq_axis"`
}

// Bytes is the size of the tensor for batch sequences holding context
// tokens.
func (s StateSpec) Bytes(batch, context int) int64 {
	dt, _ := tensors.ParseDType(s.DType) // checked by ReadManifest
	n := int64(dt.Size())
	for _, d := range s.shape(batch, context) {
		n *= d
	}
	return n
}

// shape is the concrete shape for batch sequences holding context tokens.
func (s StateSpec) shape(batch, context int) []int64 {
	out := append([]int64(nil), s.Shape...)
	out[0] = int64(batch)
	if s.SeqAxis >= 0 {
		out[s.SeqAxis] = int64(context)
	}
	return out
}

// studentStates lists per layer the conv and recurrent state of a mixer,
// or the KV cache of a hybrid's attention layer (past_key_values.i.key /
// .value with i the layer's own index, as onnxruntime-genai names hybrid
// models' caches).
func studentStates(c family.Student) []StateSpec {
	var out []StateSpec
	sz := c.Sizes()
	for i := 0; i < sz.Layers; i++ {
		if c.IsAttention(i) {
			out = append(out, kvStates(i, sz.AttnHeads, sz.AttnHeadDim)...)
			continue
		}
		out = append(out,
			StateSpec{Input: fmt.Sprintf(PastConv, i), Output: fmt.Sprintf(PresentConv, i), DType: "float32",
				Shape: []int64{-1, sz.ConvChannels, sz.DConv - 1}, SeqAxis: -1},
			StateSpec{Input: fmt.Sprintf(PastRecurrent, i), Output: fmt.Sprintf(PresentRecurrent, i), DType: "float32",
				Shape: []int64{-1, sz.VHeads, sz.DState, sz.HeadDim}, SeqAxis: -1})
	}
	return out
}

// teacherStates lists per layer the KV cache, of the teacher's key/value
// heads (grouped-query attention keeps fewer than the query heads).
func teacherStates(c family.Teacher) []StateSpec {
	var out []StateSpec
	sz := c.Sizes()
	for i := 0; i < sz.Layers; i++ {
		out = append(out, kvStates(i, sz.KVHeads, sz.HeadDim)...)
	}
	return out
}

// kvStates is attention layer i's KV cache.
func kvStates(i int, heads, headDim int64) []StateSpec {
	var out []StateSpec
	for _, kv := range [][2]string{{PastKey, PresentKey}, {PastValue, PresentValue}} {
		out = append(out, StateSpec{Input: fmt.Sprintf(kv[0], i), Output: fmt.Sprintf(kv[1], i), DType: "float32",
			Shape: []int64{-1, heads, 0, headDim}, SeqAxis: 2})
	}
	return out
}

// growing reports whether a state grows with the context (a KV cache).
func (m *Manifest) growing() bool {
	for _, s := range m.States {
		if s.SeqAxis >= 0 {
			return true
		}
	}
	return false
}

// ReadManifest reads and checks dir/mohawk.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a complete mohawk deployment folder: %s is missing (write one with deploy.ExportStudent or deploy.ExportTeacher)", dir, ManifestFile)
		}
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
	}
	if m.Format != ManifestFormat {
		bad("format %q, this version reads %q", m.Format, ManifestFormat)
	}
	if m.Kind != KindStudent && m.Kind != KindTeacher {
		bad("kind %q is not %q or %q", m.Kind, KindStudent, KindTeacher)
	}
	if len(m.States) == 0 {
		bad("lists no states")
	}
	if (m.NextToken == "") != (m.NextTokenWidth == 0) || m.NextTokenWidth < 0 {
		bad("next_token %q with next_token_width %d: give both (a positive width) or neither", m.NextToken, m.NextTokenWidth)
	}
	for _, s := range m.States {
		if dt, err := tensors.ParseDType(s.DType); err != nil || !dt.IsFloat() {
			bad("state %s: dtype %q is not a float dtype", s.Input, s.DType)
		}
		if len(s.Shape) < 2 || s.Shape[0] != -1 || s.SeqAxis == 0 || s.SeqAxis >= len(s.Shape) || s.SeqAxis < -1 {
			bad("state %s: shape %v with seq_axis %d; want -1 for the batch axis and a seq_axis of -1 or a later axis", s.Input, s.Shape, s.SeqAxis)
			continue
		}
		for k, d := range s.Shape[1:] {
			if d < 0 || (d == 0) != (k+1 == s.SeqAxis) {
				bad("state %s: dimension %d of %v must be positive (or 0 on seq_axis)", s.Input, k+1, s.Shape)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkSignature compares the sizes mohawk.json and genai_config.json give
// with what the model file declares, before anything is allocated from
// them: every state's dtype and every axis but batch and seq_axis must be
// the model's (static) dimension, and vocab_size the width of the logits.
// A tampered figure would otherwise size the zero states or the logits
// buffers (a 10^6 × 10^6 conv state is 4 TB).
func checkSignature(dir string, m *Manifest, gc *genaiConfig, sess *runtime.Session) error {
	manifest, genai := filepath.Join(dir, ManifestFile), filepath.Join(dir, GenAIConfigFile)
	model := filepath.Join(dir, gc.Model.Decoder.Filename)
	var errs []error
	for _, s := range m.States {
		dt, shape, ok := sess.Declared(s.Input)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: input %s declares no shape, so the size of state %s cannot be checked; export the folder again", model, s.Input, s.Input))
			continue
		}
		want := s.shape(1, 0)
		if st, _ := tensors.ParseDType(s.DType); st != dt || len(shape) != len(want) {
			errs = append(errs, fmt.Errorf("%s: state %s is %s%v, but %s declares %v%v; the folder was edited or mixed up: export it again",
				manifest, s.Input, s.DType, s.Shape, model, dt, shape))
			continue
		}
		for k := 1; k < len(want); k++ {
			if k == s.SeqAxis {
				continue
			}
			if shape[k] < 0 || shape[k] != want[k] {
				errs = append(errs, fmt.Errorf("%s: state %s has shape %v, but %s declares dimension %d as %s; the folder was edited or mixed up: export it again",
					manifest, s.Input, s.Shape, model, k, dimString(shape[k])))
				break
			}
		}
	}
	if m.NextToken != "" {
		if dt, shape, ok := sess.Declared(m.NextToken); !ok || dt != tensors.Int64 || len(shape) != 2 {
			errs = append(errs, fmt.Errorf("%s: next_token %s must be an int64 [batch_size, 1] output of %s, which declares %v%v; the folder was edited or mixed up: export it again",
				manifest, m.NextToken, model, dt, shape))
		}
	}
	logits := gc.Model.Decoder.Outputs["logits"]
	if _, shape, ok := sess.Declared(logits); !ok || len(shape) == 0 || shape[len(shape)-1] != gc.Model.VocabSize {
		errs = append(errs, fmt.Errorf("%s: model.vocab_size is %d, but %s declares output %s as %v; the folder was edited or mixed up: export it again",
			genai, gc.Model.VocabSize, model, logits, shape))
	}
	return errors.Join(errs...)
}

// dimString spells a declared dimension, -1 being a symbolic one.
func dimString(d int64) string {
	if d < 0 {
		return "symbolic (not fixed)"
	}
	return fmt.Sprint(d)
}

// genaiConfig is the part of onnxruntime-genai's genai_config.json that a
// decoder-only model needs (src/config.h of onnxruntime-genai).
type genaiConfig struct {
	Model  genaiModel  `json:"model"`
	Search genaiSearch `json:"search"`
}

type genaiModel struct {
	BOS           int64        `json:"bos_token_id"`
	EOS           int64        `json:"eos_token_id"`
	Pad           int64        `json:"pad_token_id"`
	ContextLength int          `json:"context_length"`
	Decoder       genaiDecoder `json:"decoder"`
	Type          string       `json:"type"`
	VocabSize     int64        `json:"vocab_size"`
}

type genaiDecoder struct {
	SessionOptions    genaiSessionOptions `json:"session_options"`
	Filename          string              `json:"filename"`
	HeadSize          int64               `json:"head_size"`
	HiddenSize        int64               `json:"hidden_size"`
	Inputs            map[string]string   `json:"inputs"`
	Outputs           map[string]string   `json:"outputs"`
	NumAttentionHeads int64               `json:"num_attention_heads"`
	NumHiddenLayers   int                 `json:"num_hidden_layers"`
	NumKeyValueHeads  int64               `json:"num_key_value_heads"`
}

type genaiSessionOptions struct {
	LogID           string           `json:"log_id"`
	ProviderOptions []map[string]any `json:"provider_options"`
}

type genaiSearch struct {
	DiversityPenalty       float64 `json:"diversity_penalty"`
	DoSample               bool    `json:"do_sample"`
	EarlyStopping          bool    `json:"early_stopping"`
	LengthPenalty          float64 `json:"length_penalty"`
	MaxLength              int     `json:"max_length"`
	MinLength              int     `json:"min_length"`
	NoRepeatNgramSize      int     `json:"no_repeat_ngram_size"`
	NumBeams               int     `json:"num_beams"`
	NumReturnSequences     int     `json:"num_return_sequences"`
	PastPresentShareBuffer bool    `json:"past_present_share_buffer"`
	RepetitionPenalty      float64 `json:"repetition_penalty"`
	Temperature            float64 `json:"temperature"`
	TopK                   int     `json:"top_k"`
	TopP                   float64 `json:"top_p"`
}

// newGenAIConfig completes m with the fields both kinds share. genai finds
// a student's states from past_key_names: it derives
// past_key_values.%d.conv_state / .recurrent_state and present.%d.* from
// it and skips the KV cache when no past_key_values.%d.key input exists.
// The present tensors are new buffers each call (the teacher's grow), so
// past_present_share_buffer is off; search defaults to greedy.
func newGenAIConfig(m genaiModel) genaiConfig {
	m.Type = "decoder"
	m.Decoder.SessionOptions = genaiSessionOptions{LogID: "onnxruntime-genai", ProviderOptions: []map[string]any{}}
	m.Decoder.Inputs = map[string]string{
		"input_ids":        InputIDs,
		"past_key_names":   PastKey,
		"past_value_names": PastValue,
	}
	m.Decoder.Outputs = map[string]string{
		"logits":              Logits,
		"present_key_names":   PresentKey,
		"present_value_names": PresentValue,
	}
	return genaiConfig{Model: m, Search: genaiSearch{
		MaxLength: m.ContextLength, NumBeams: 1, NumReturnSequences: 1, LengthPenalty: 1,
		RepetitionPenalty: 1, Temperature: 1, TopK: 50, TopP: 1,
	}}
}

// readGenAIConfig reads the fields Generator uses from dir/genai_config.json.
func readGenAIConfig(dir string) (*genaiConfig, error) {
	path := filepath.Join(dir, GenAIConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the deployment's genai config: %w", err)
	}
	var c genaiConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d := c.Model.Decoder
	if c.Model.VocabSize <= 0 || d.Inputs["input_ids"] == "" || d.Outputs["logits"] == "" {
		return nil, fmt.Errorf("%s: model.vocab_size, model.decoder.inputs.input_ids and model.decoder.outputs.logits must be set", path)
	}
	if !filepath.IsLocal(d.Filename) {
		return nil, fmt.Errorf("%s: model.decoder.filename %q must name a file inside the folder", path, d.Filename)
	}
	model := filepath.Join(dir, d.Filename)
	real, err1 := filepath.EvalSymlinks(model)
	base, err2 := filepath.EvalSymlinks(dir)
	fi, err3 := os.Lstat(model)
	if err1 == nil && err2 == nil && err3 == nil && (real != filepath.Join(base, filepath.Clean(d.Filename)) || !fi.Mode().IsRegular()) {
		return nil, fmt.Errorf("%s: model.decoder.filename %q must name a regular file inside the folder, not a symbolic link or a directory", path, d.Filename)
	}
	return &c, nil
}
