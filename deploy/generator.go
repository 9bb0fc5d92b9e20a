package deploy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"mohawk/runtime"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// DefaultChunk is the most tokens Generator feeds the graph per call when
// Generator.Chunk is 0: longer inputs are fed in pieces, carrying the
// states, which bounds the memory of a long prefill (the teacher's
// attention scores grow with piece × context).
const DefaultChunk = 512

// Generator runs a deployment folder written by ExportStudent or
// ExportTeacher on ONNX Runtime: it feeds tokens, carries the states (the
// student's fixed-size conv and SSM states, the teacher's growing KV cache)
// from call to call, samples and streams text. Several sequences of equal
// length can run side by side (batch ≥ 1).
//
// A Generator is not safe for concurrent use.
type Generator struct {
	// Chunk is the most tokens fed per graph call (0: DefaultChunk).
	Chunk int

	dir      string
	manifest *Manifest
	genai    *genaiConfig
	env      *runtime.Env
	sess     *runtime.Session
	tok      *tokenizer.Tokenizer
	// states are the carried tensors in manifest order, nil without a
	// context: zeros on the host at the start, then kept resident where
	// the provider computed them (GPU memory under cuda), so a decode step
	// moves only its token ids and logits.
	states  []runtime.Feed
	batch   int
	context int // tokens per sequence in the context
	// next is whether the session fetches the graph's NextToken output
	// (output 1, the states following it) and it covers the ids greedy
	// decoding picks from.
	next bool
}

// Open loads the folder dir on a runtime opened with rc: the same folder
// runs on the CPU or, with rc.Provider "cuda", on a GPU. Close releases
// both.
func Open(dir string, rc runtime.Config) (*Generator, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	gc, err := readGenAIConfig(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return nil, err
	}
	if err := tok.CheckFits(gc.Model.VocabSize, "the model in "+dir+" ("+GenAIConfigFile+" vocab_size)"); err != nil {
		return nil, err
	}
	env, err := runtime.Open(rc, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	ins := []string{gc.Model.Decoder.Inputs["input_ids"]}
	outs := []string{gc.Model.Decoder.Outputs["logits"]}
	if m.NextToken != "" {
		outs = append(outs, m.NextToken)
	}
	for _, s := range m.States {
		ins, outs = append(ins, s.Input), append(outs, s.Output)
	}
	sess, err := env.NewSessionFromFile(m.Kind, filepath.Join(dir, gc.Model.Decoder.Filename), ins, outs)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := checkSignature(dir, m, gc, sess); err != nil {
		sess.Close()
		env.Close()
		return nil, err
	}
	g := &Generator{dir: dir, manifest: m, genai: gc, env: env, sess: sess, tok: tok}
	g.next = m.NextToken != "" && m.NextTokenWidth == int64(g.greedyWidth())
	return g, nil
}

// greedyWidth is the number of ids sampling picks from: the logits' ids
// the tokenizer has (ids past it are padding rows).
func (g *Generator) greedyWidth() int { return min(g.VocabSize(), g.tok.VocabSize()) }

// GraphPicksGreedy reports whether StepGreedy takes the next token from
// the graph (the folder has a NextToken output) rather than from logits
// fetched to the host.
func (g *Generator) GraphPicksGreedy() bool { return g.next }

// HostTraffic is the bytes the Generator's runtime has fed from and
// returned to the host since Open (runtime.Env.HostTraffic): on a GPU what
// crossed PCIe. The carried states never count: they stay resident.
func (g *Generator) HostTraffic() (in, out int64) { return g.env.HostTraffic() }

// Close releases the states, the session and the runtime.
func (g *Generator) Close() error {
	g.Reset()
	return errors.Join(g.sess.Close(), g.env.Close())
}

// Kind is KindStudent or KindTeacher.
func (g *Generator) Kind() string { return g.manifest.Kind }

// Provider is the execution provider in use ("cpu", "cuda", ...).
func (g *Generator) Provider() string { return g.env.Provider() }

// Tokenizer is the folder's tokenizer.
func (g *Generator) Tokenizer() *tokenizer.Tokenizer { return g.tok }

// EOS is the end-of-text token id.
func (g *Generator) EOS() int64 { return g.genai.Model.EOS }

// VocabSize is the width of the logits.
func (g *Generator) VocabSize() int { return int(g.genai.Model.VocabSize) }

// ContextLength is genai_config.json's context_length: the teacher's
// max_position_embeddings (the positions it was trained on; its rotary
// embeddings run past them mechanically, on positions it never saw), or for
// the recurrent student, which has no positional limit, a bound for
// onnxruntime-genai's max_length.
func (g *Generator) ContextLength() int { return g.genai.Model.ContextLength }

// Context is the number of tokens per sequence fed since the last Prefill
// or Reset.
func (g *Generator) Context() int { return g.context }

// StateBytes is the size of the tensors carried between calls now (the
// student's states are fixed; the teacher's KV cache grows with Context).
func (g *Generator) StateBytes() int64 {
	var n int64
	for _, s := range g.states {
		if s.Resident != nil {
			n += s.Resident.Bytes()
		} else {
			n += int64(len(s.Host.Data))
		}
	}
	return n
}

// Reset drops the context.
func (g *Generator) Reset() {
	for _, s := range g.states {
		s.Resident.Release()
	}
	g.states, g.batch, g.context = nil, 0, 0
}

// Prefill starts a new context with one row of token ids per sequence and
// returns the logits after each row's last token, [batch, vocab]. The
// teacher needs rows of one length (its graph has no attention mask). The
// student also takes rows of different lengths: each is prefilled alone and
// their fixed-size states are stacked into one batch, exactly as if each
// sequence ran by itself, and Step then advances all of them together
// (Context is then the longest row's count).
func (g *Generator) Prefill(ids [][]int64) (*tensors.Tensor, error) {
	g.Reset()
	if g.manifest.Kind == KindStudent && !g.manifest.growing() && ragged(ids) {
		return g.prefillRagged(ids)
	}
	logits, _, err := g.feed(ids, wantLast)
	return logits, err
}

// ragged reports whether the rows of ids differ in length.
func ragged(ids [][]int64) bool {
	for _, row := range ids {
		if len(row) != len(ids[0]) {
			return true
		}
	}
	return false
}

// prefillRagged prefills each row alone and stacks the states (student
// only: its states do not depend on the sequence length).
func (g *Generator) prefillRagged(ids [][]int64) (*tensors.Tensor, error) {
	v := int64(g.VocabSize())
	logits := tensors.Zeros(tensors.Float32, int64(len(ids)), v)
	parts := make([][]*tensors.Tensor, len(g.manifest.States))
	longest := 0
	for i, row := range ids {
		g.Reset()
		l, _, err := g.feed([][]int64{row}, wantLast)
		if err != nil {
			return nil, fmt.Errorf("sequence %d: %w", i, err)
		}
		copy(logits.Float32s()[int64(i)*v:], l.Float32s())
		for j, s := range g.states {
			t := s.Host
			if s.Resident != nil {
				if t, err = g.env.Fetch(s.Resident); err != nil {
					g.Reset()
					return nil, fmt.Errorf("%s: %w", g.dir, err)
				}
			}
			parts[j] = append(parts[j], t)
		}
		longest = max(longest, len(row))
	}
	g.Reset()
	g.states = make([]runtime.Feed, len(parts))
	for j, p := range parts {
		g.states[j] = runtime.Feed{Host: tensors.Join(append([]int64{int64(len(p))}, p[0].Shape[1:]...), p...)}
	}
	g.batch, g.context = len(ids), longest
	return logits, nil
}

// Step appends one token per sequence to the context and returns the next
// logits, [batch, vocab].
func (g *Generator) Step(tokens []int64) (*tensors.Tensor, error) {
	if g.states == nil {
		return nil, fmt.Errorf("%s: step before prefill; call Prefill with the prompt first", g.dir)
	}
	logits, _, err := g.feed(column(tokens), wantLast)
	return logits, err
}

// StepGreedy is Step for greedy decoding: it appends one token per
// sequence and returns each sequence's most likely next token (the first
// on ties, as the greedy Sampler picks). When the graph computes that
// choice (GraphPicksGreedy), the logits stay where the provider computed
// them and only the token ids cross between host and device.
func (g *Generator) StepGreedy(tokens []int64) ([]int64, error) {
	if g.states == nil {
		return nil, fmt.Errorf("%s: step before prefill; call Prefill with the prompt first", g.dir)
	}
	_, next, err := g.feed(column(tokens), wantNext)
	return next, err
}

// column is one row of one token per sequence.
func column(tokens []int64) [][]int64 {
	ids := make([][]int64, len(tokens))
	for i, t := range tokens {
		ids[i] = []int64{t}
	}
	return ids
}

// Feed appends ids (one row per sequence, all of one length ≥ 1) to the
// context, starting one if there is none, and returns the logits of every
// new position, [batch, length, vocab].
func (g *Generator) Feed(ids [][]int64) (*tensors.Tensor, error) {
	logits, _, err := g.feed(ids, wantAll)
	return logits, err
}

// want is what feed returns.
type want int

const (
	wantLast want = iota // the logits after each row's last token, [batch, vocab]
	wantAll              // the logits of every new position, [batch, length, vocab]
	wantNext             // each row's greedy next token
)

// feed runs ids in pieces of at most Chunk tokens and returns what w asks
// for. Outputs the host does not need (the logits of all but the last
// piece, the logits or the graph's next token when the other serves) are
// kept where the provider computed them and released.
func (g *Generator) feed(ids [][]int64, w want) (*tensors.Tensor, []int64, error) {
	b, t, err := g.checkIDs(ids)
	if err != nil {
		return nil, nil, err
	}
	if g.states == nil {
		g.start(b)
	}
	chunk := g.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	v := int64(g.VocabSize())
	first := 1 // index of the first state output
	if g.manifest.NextToken != "" {
		first = 2
	}
	var out *tensors.Tensor
	var next []int64
	if w == wantAll {
		out = tensors.Zeros(tensors.Float32, int64(b), int64(t), v)
	}
	for start := 0; start < t; start += chunk {
		end := min(start+chunk, t)
		n := int64(end - start)
		flat := make([]int64, 0, int64(b)*n)
		for _, row := range ids {
			flat = append(flat, row[start:end]...)
		}
		in := append([]runtime.Feed{{Host: tensors.FromInt64([]int64{int64(b), n}, flat)}}, g.states...)
		graphNext := w == wantNext && end == t && g.next
		hostLogits := w == wantAll || (end == t && !graphNext)
		keep := make([]bool, first+len(g.states))
		for i := range keep {
			keep[i] = true // the states stay where they are
		}
		keep[0] = !hostLogits
		if first == 2 {
			keep[1] = !graphNext
		}
		host, dev, err := g.sess.RunResident(in, keep)
		if err != nil {
			g.Reset() // start again rather than continue from unknown states
			return nil, nil, fmt.Errorf("%s: %w", g.dir, err)
		}
		for _, r := range dev[:first] {
			r.Release()
		}
		for i, r := range dev[first:] {
			g.states[i].Resident.Release()
			g.states[i] = runtime.Feed{Resident: r}
		}
		g.context += int(n)
		switch {
		case w == wantAll:
			logits, dst := host[0].Float32s(), out.Float32s()
			for r := int64(0); r < int64(b); r++ {
				copy(dst[(r*int64(t)+int64(start))*v:], logits[r*n*v:(r+1)*n*v])
			}
		case graphNext:
			next = host[1].Int64s()
		case end == t:
			logits := host[0].Float32s()
			out = tensors.Zeros(tensors.Float32, int64(b), v)
			for r := int64(0); r < int64(b); r++ {
				copy(out.Float32s()[r*v:(r+1)*v], logits[((r+1)*n-1)*v:(r+1)*n*v])
			}
			if w == wantNext { // an older folder: pick on the host
				next = make([]int64, b)
				for r := range next {
					next[r] = greedyPick(out.Float32s()[int64(r)*v : int64(r)*v+int64(g.greedyWidth())])
				}
				out = nil
			}
		}
	}
	return out, next, nil
}

// checkIDs checks that ids is a batch of equal, non-empty rows of valid
// token ids that fits the current context, and returns its size.
func (g *Generator) checkIDs(ids [][]int64) (batch, length int, err error) {
	if len(ids) == 0 || len(ids[0]) == 0 {
		return 0, 0, fmt.Errorf("%s: no tokens to feed; pass at least one token per sequence", g.dir)
	}
	if g.states != nil && len(ids) != g.batch {
		return 0, 0, fmt.Errorf("%s: %d sequences given, the context holds %d; call Prefill to start a new batch", g.dir, len(ids), g.batch)
	}
	v := int64(g.VocabSize())
	for i, row := range ids {
		if len(row) != len(ids[0]) {
			hint := "sequences fed together must have equal lengths"
			if g.manifest.growing() {
				hint = "a graph with a KV cache (the teacher's, a hybrid student's) has no attention mask, so its sequences must have equal lengths (a pure student's Prefill takes different lengths)"
			} else if g.manifest.Kind == KindTeacher {
				hint = "the teacher's graph has no attention mask, so its sequences must have equal lengths (a student's Prefill takes different lengths)"
			}
			return 0, 0, fmt.Errorf("%s: sequence %d has %d tokens, sequence 0 has %d; %s", g.dir, i, len(row), len(ids[0]), hint)
		}
		for j, id := range row {
			if id < 0 || id >= v {
				return 0, 0, fmt.Errorf("%s: token %d of sequence %d is %d, outside the vocabulary [0, %d)", g.dir, j, i, id, v)
			}
		}
	}
	return len(ids), len(ids[0]), nil
}

// start makes the states of an empty context for batch sequences.
func (g *Generator) start(batch int) {
	g.states = make([]runtime.Feed, len(g.manifest.States))
	for i, s := range g.manifest.States {
		dt, _ := tensors.ParseDType(s.DType) // checked by ReadManifest
		g.states[i] = runtime.Feed{Host: tensors.Zeros(dt, s.shape(batch, 0)...)}
	}
	g.batch, g.context = batch, 0
}

// Generate continues prompt by up to maxNew tokens, one sequence, sampling
// with o, and returns the generated text. It stops early at the end-of-text
// token (not included) and when ctx is done (returning ctx's error with the
// text so far). onToken, if not nil, receives the text as it is generated:
// a character whose UTF-8 bytes span several tokens is passed once complete.
// An empty prompt starts from the beginning-of-text token.
func (g *Generator) Generate(ctx context.Context, prompt string, maxNew int, o SamplingOptions, onToken func(text string)) (string, error) {
	if maxNew < 0 {
		return "", fmt.Errorf("generate: %d new tokens asked for; pass 0 or more", maxNew)
	}
	s, err := NewSampler(o)
	if err != nil {
		return "", err
	}
	ids := g.tok.Encode(prompt)
	if len(ids) == 0 {
		ids = []int64{g.genai.Model.BOS}
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	logits, err := g.Prefill([][]int64{ids})
	if err != nil {
		return "", err
	}
	// Ids past the tokenizer's vocabulary (padding rows) are never sampled.
	width := min(g.VocabSize(), g.tok.VocabSize())
	var out strings.Builder
	emit := func(text string) {
		if text != "" {
			out.WriteString(text)
			if onToken != nil {
				onToken(text)
			}
		}
	}
	stream := textStream{tok: g.tok}
	next := s.Sample(logits.Float32s()[:width])
	for n := 0; n < maxNew; n++ {
		if err := ctx.Err(); err != nil {
			emit(stream.flush())
			return out.String(), err
		}
		if next == g.EOS() {
			break
		}
		text, err := stream.add(next)
		if err != nil {
			return out.String(), err
		}
		emit(text)
		if n+1 == maxNew {
			break
		}
		if o.Temperature == 0 { // greedy: the graph may pick, keeping the logits on the device
			picked, err := g.StepGreedy([]int64{next})
			if err != nil {
				return out.String(), err
			}
			next = picked[0]
			continue
		}
		if logits, err = g.Step([]int64{next}); err != nil {
			return out.String(), err
		}
		next = s.Sample(logits.Float32s()[:width])
	}
	emit(stream.flush())
	return out.String(), nil
}
