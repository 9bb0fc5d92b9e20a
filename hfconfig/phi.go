package hfconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults of transformers' PhiConfig for the optional keys.
const (
	DefaultLayerNormEps          = 1e-5
	DefaultRopeTheta             = 10000.0
	DefaultPartialRotaryFactor   = 0.5
	DefaultMaxPositionEmbeddings = 2048
	DefaultHiddenAct             = "gelu_new"
	DefaultRopeType              = "default"
	DefaultBosTokenID            = 1
	DefaultEosTokenID            = 2
)

// FileName is the name of a model directory's config file.
const FileName = "config.json"

// maxFileSize bounds what Load reads; real configs are a few kilobytes.
const maxFileSize = 16 << 20

// Phi holds the hyperparameters of a Phi model.
type Phi struct {
	ModelType             string // "phi" for a supported config
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int     // NumAttentionHeads when the key is absent or null
	HeadDim               int     // HiddenSize / NumAttentionHeads
	PartialRotaryFactor   float64 // fraction of each head's dimensions that are rotated
	RopeTheta             float64
	RopeType              string // "default" is the only supported kind
	LayerNormEps          float64
	HiddenAct             string
	MaxPositionEmbeddings int
	TieWordEmbeddings     bool
	QKLayerNorm           bool
	BosTokenID            int    // -1 when the config says null
	EosTokenID            int    // -1 when the config says null
	TorchDType            string // "dtype" or "torch_dtype"; "" when neither is given

	source  string          // the file, for messages
	notes   []Problem       // found while decoding; reported by Validate
	missing map[string]bool // required keys the file lacks
	bad     map[string]bool // keys of the wrong JSON type, reported by parse
}

// Problem is one thing wrong with a config.
type Problem struct {
	Key string // the config key, dotted when nested: "rope_parameters.rope_type"
	Msg string // what is wrong and what to do
}

// Error lists every problem found in one config.
type Error struct {
	Source   string // the file, or "" for a config built in code
	Problems []Problem
}

func (e *Error) Error() string {
	src := e.Source
	if src == "" {
		src = "phi config"
	}
	if len(e.Problems) == 1 {
		return fmt.Sprintf("%s: %s %s", src, e.Problems[0].Key, e.Problems[0].Msg)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", src, len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n\t%s %s", p.Key, p.Msg)
	}
	return b.String()
}

// Load reads the config.json at path, or inside path if it is a directory,
// and validates it. The error, if any, lists every problem at once.
func Load(path string) (*Phi, error) {
	data, path, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseValid(data, path)
}

// ParseValid is Parse and Validate in one report: decoding problems and
// unsupported values together.
func ParseValid(data []byte, source string) (*Phi, error) {
	p, probs, err := parse(data, source)
	if err != nil {
		return nil, err
	}
	if probs = append(probs, p.problems()...); len(probs) > 0 {
		return nil, &Error{Source: source, Problems: probs}
	}
	return p, nil
}

// ReadFile reads the config.json at path, or inside path if it is a
// directory, refusing files too large to be one; it returns the bytes and
// the file's path.
func ReadFile(path string) ([]byte, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("loading model config: %w", err)
	}
	if st.IsDir() {
		path = filepath.Join(path, FileName)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("loading model config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("loading model config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, "", fmt.Errorf("%s: larger than %d bytes, too large for a config.json; pass the model's config file or its directory", path, maxFileSize)
	}
	return data, path, nil
}

// Parse decodes a config.json read from source (used in messages), filling
// optional keys with PhiConfig's defaults. It fails on input that is not a
// JSON object and on keys of the wrong JSON type, listing all of them; it
// does not check that mohawk supports the model: call Validate for that.
func Parse(data []byte, source string) (*Phi, error) {
	p, probs, err := parse(data, source)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, &Error{Source: source, Problems: probs}
	}
	return p, nil
}

// parse decodes data. Keys of the wrong JSON type are returned as problems
// and left at their zero value in p, which skips further checks of them.
func parse(data []byte, source string) (*Phi, []Problem, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		if err == nil {
			err = fmt.Errorf("the file holds null")
		}
		return nil, nil, fmt.Errorf("%s: not a JSON object: %w; fix the file or re-download it", source, err)
	}
	p := &Phi{
		source:                source,
		PartialRotaryFactor:   DefaultPartialRotaryFactor,
		RopeTheta:             DefaultRopeTheta,
		RopeType:              DefaultRopeType,
		LayerNormEps:          DefaultLayerNormEps,
		HiddenAct:             DefaultHiddenAct,
		MaxPositionEmbeddings: DefaultMaxPositionEmbeddings,
		BosTokenID:            DefaultBosTokenID,
		EosTokenID:            DefaultEosTokenID,
		missing:               make(map[string]bool),
		bad:                   make(map[string]bool),
	}
	var problems []Problem
	d := &decoder{raw: raw, problems: &problems}

	d.str("model_type", &p.ModelType)
	for _, f := range []struct {
		key string
		dst *int
	}{
		{"vocab_size", &p.VocabSize},
		{"hidden_size", &p.HiddenSize},
		{"intermediate_size", &p.IntermediateSize},
		{"num_hidden_layers", &p.NumHiddenLayers},
		{"num_attention_heads", &p.NumAttentionHeads},
	} {
		if d.int(f.key, f.dst) == absent {
			p.missing[f.key] = true
		}
	}
	if d.int("num_key_value_heads", &p.NumKeyValueHeads) == absent {
		p.NumKeyValueHeads = p.NumAttentionHeads
	}
	if p.NumAttentionHeads > 0 {
		p.HeadDim = p.HiddenSize / p.NumAttentionHeads
	}
	var headDim int
	if d.int("head_dim", &headDim) == present && p.NumAttentionHeads > 0 && headDim != p.HeadDim {
		p.notes = append(p.notes, Problem{"head_dim", fmt.Sprintf("is %d but hidden_size / num_attention_heads is %d; Phi heads split the hidden size evenly, so remove head_dim or fix it", headDim, p.HeadDim)})
	}

	// transformers 4 keeps the rope settings at the top level, 5 under
	// rope_parameters; where both are given, rope_parameters wins and they
	// must agree.
	if scaling := d.get("rope_scaling"); scaling != nil {
		p.notes = append(p.notes, Problem{"rope_scaling", fmt.Sprintf("is %s; RoPE scaling is not supported, set it to null or use a checkpoint without it", snippet(scaling))})
	}
	var params map[string]json.RawMessage
	d.object("rope_parameters", &params)
	rp := &decoder{raw: params, prefix: "rope_parameters.", problems: &problems}
	for _, f := range []struct {
		key string
		dst *float64
	}{{"rope_theta", &p.RopeTheta}, {"partial_rotary_factor", &p.PartialRotaryFactor}} {
		var top, nested float64
		topState, nestedState := d.float(f.key, &top), rp.float(f.key, &nested)
		switch {
		case nestedState == present:
			*f.dst = nested
			if topState == present && top != nested {
				p.notes = append(p.notes, Problem{"rope_parameters." + f.key, fmt.Sprintf("is %v but the top-level %s is %v; make them agree (transformers 5 reads rope_parameters)", nested, f.key, top)})
			}
		case topState == present:
			*f.dst = top
		}
	}
	rp.str("rope_type", &p.RopeType)

	d.float("layer_norm_eps", &p.LayerNormEps)
	d.str("hidden_act", &p.HiddenAct)
	d.int("max_position_embeddings", &p.MaxPositionEmbeddings)
	d.bool("tie_word_embeddings", &p.TieWordEmbeddings)
	d.bool("qk_layernorm", &p.QKLayerNorm)
	for _, f := range []struct {
		key string
		dst *int
	}{{"bos_token_id", &p.BosTokenID}, {"eos_token_id", &p.EosTokenID}} {
		if _, given := raw[f.key]; d.int(f.key, f.dst) == absent && given {
			*f.dst = -1 // null: no such token
		}
	}
	if d.str("dtype", &p.TorchDType) == absent {
		d.str("torch_dtype", &p.TorchDType)
	}
	for _, pr := range problems {
		p.bad[pr.Key] = true
	}
	return p, problems, nil
}

// Validate reports every reason mohawk cannot use this config, at once, as
// an *Error; nil means the config is supported.
func (p *Phi) Validate() error {
	if probs := p.problems(); len(probs) > 0 {
		return &Error{Source: p.source, Problems: probs}
	}
	return nil
}

// problems lists what Validate reports, leaving out keys whose value could
// not be decoded (those are reported already).
func (p *Phi) problems() []Problem {
	var probs []Problem
	add := func(key, format string, args ...any) {
		if !p.bad[key] {
			probs = append(probs, Problem{key, fmt.Sprintf(format, args...)})
		}
	}
	for _, n := range p.notes {
		add(n.Key, "%s", n.Msg)
	}

	switch p.ModelType {
	case "phi":
	case "":
		add("model_type", `is missing; only "phi" (PhiForCausalLM) configs are supported, so add "model_type": "phi" if this is one`)
	default:
		add("model_type", `is %q; only "phi" (PhiForCausalLM) checkpoints are supported`, p.ModelType)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vocab_size", p.VocabSize},
		{"hidden_size", p.HiddenSize},
		{"intermediate_size", p.IntermediateSize},
		{"num_hidden_layers", p.NumHiddenLayers},
		{"num_attention_heads", p.NumAttentionHeads},
		{"max_position_embeddings", p.MaxPositionEmbeddings},
	} {
		switch {
		case p.missing[f.key]:
			add(f.key, "is missing; copy it from the model's original config.json")
		case f.v <= 0:
			add(f.key, "is %d; it must be a positive integer", f.v)
		}
	}
	heads := p.NumAttentionHeads
	if heads > 0 && p.HiddenSize > 0 {
		if p.HiddenSize%heads != 0 {
			add("hidden_size", "%d is not divisible by num_attention_heads %d; the heads must split the hidden size evenly", p.HiddenSize, heads)
		} else if p.HeadDim != p.HiddenSize/heads {
			add("head_dim", "is %d but hidden_size / num_attention_heads is %d; set HeadDim to that", p.HeadDim, p.HiddenSize/heads)
		}
	}
	if heads > 0 && p.NumKeyValueHeads != heads {
		add("num_key_value_heads", "is %d but num_attention_heads is %d; grouped-query attention is not supported, use a checkpoint whose head counts are equal", p.NumKeyValueHeads, heads)
	}
	if p.HiddenAct != "gelu_new" && p.HiddenAct != "gelu_pytorch_tanh" {
		add("hidden_act", `is %q; only "gelu_new" and "gelu_pytorch_tanh" (GELU with the tanh approximation) are supported`, p.HiddenAct)
	}
	if p.RopeType != DefaultRopeType {
		add("rope_parameters.rope_type", `is %q; only "default" RoPE is supported, use a checkpoint without RoPE scaling`, p.RopeType)
	}
	if !(p.RopeTheta > 0) || math.IsInf(p.RopeTheta, 0) {
		add("rope_theta", "is %v; it must be a positive number (PhiConfig's default is %v)", p.RopeTheta, DefaultRopeTheta)
	}
	if !(p.PartialRotaryFactor > 0 && p.PartialRotaryFactor <= 1) {
		add("partial_rotary_factor", "is %v; it must be in (0, 1] (PhiConfig's default is %v)", p.PartialRotaryFactor, DefaultPartialRotaryFactor)
	} else if p.HeadDim > 0 && (p.RotaryDim() <= 0 || p.RotaryDim()%2 != 0) {
		add("partial_rotary_factor", "%v of head_dim %d gives %d rotary dimensions; RoPE needs a positive even number, so pick a factor that gives one", p.PartialRotaryFactor, p.HeadDim, p.RotaryDim())
	}
	if !(p.LayerNormEps > 0) || math.IsInf(p.LayerNormEps, 0) {
		add("layer_norm_eps", "is %v; it must be a small positive number such as %v", p.LayerNormEps, DefaultLayerNormEps)
	}
	if p.QKLayerNorm {
		add("qk_layernorm", "is true; layer norms on queries and keys are not supported, use a checkpoint without them")
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"bos_token_id", p.BosTokenID}, {"eos_token_id", p.EosTokenID}} {
		if f.v < -1 || (p.VocabSize > 0 && f.v >= p.VocabSize) {
			add(f.key, "is %d, outside the vocabulary of %d tokens; fix the token id", f.v, p.VocabSize)
		}
	}
	return probs
}

// RotaryDim is the number of dimensions of each head that rotary position
// embeddings rotate: int(PartialRotaryFactor × HeadDim), as transformers
// computes it.
func (p *Phi) RotaryDim() int { return int(p.PartialRotaryFactor * float64(p.HeadDim)) }

// Marshal writes the config in transformers 5's layout (rope settings under
// rope_parameters), with keys sorted and two-space indentation as
// transformers writes them. It fails if Validate does.
func (p *Phi) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	tokenID := func(id int) any {
		if id < 0 {
			return nil
		}
		return id
	}
	m := map[string]any{
		"architectures":           []string{"PhiForCausalLM"},
		"attention_dropout":       pyFloat(0),
		"bos_token_id":            tokenID(p.BosTokenID),
		"embd_pdrop":              pyFloat(0),
		"eos_token_id":            tokenID(p.EosTokenID),
		"hidden_act":              p.HiddenAct,
		"hidden_size":             p.HiddenSize,
		"initializer_range":       pyFloat(0.02),
		"intermediate_size":       p.IntermediateSize,
		"layer_norm_eps":          pyFloat(p.LayerNormEps),
		"max_position_embeddings": p.MaxPositionEmbeddings,
		"model_type":              "phi",
		"num_attention_heads":     p.NumAttentionHeads,
		"num_hidden_layers":       p.NumHiddenLayers,
		"num_key_value_heads":     p.NumKeyValueHeads,
		"pad_token_id":            nil,
		"partial_rotary_factor":   pyFloat(p.PartialRotaryFactor),
		"qk_layernorm":            p.QKLayerNorm,
		"resid_pdrop":             pyFloat(0),
		"rope_parameters": map[string]any{
			"partial_rotary_factor": pyFloat(p.PartialRotaryFactor),
			"rope_theta":            pyFloat(p.RopeTheta),
			"rope_type":             p.RopeType,
		},
		"tie_word_embeddings": p.TieWordEmbeddings,
		"use_cache":           true,
		"vocab_size":          p.VocabSize,
	}
	if p.TorchDType != "" {
		m["dtype"] = p.TorchDType
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding phi config: %w", err)
	}
	return append(b, '\n'), nil
}

// pyFloat spells f as Python's repr does (10000.0, 0.5, 1e-05), so floats
// stay floats for the Python side.
func pyFloat(f float64) json.Number {
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return json.Number(e)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return json.Number(s)
}

// snippet shortens a raw JSON value for a message.
func snippet(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
