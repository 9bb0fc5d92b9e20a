package stages

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// Scorer computes next-token log-probabilities with one model.
type Scorer struct {
	g    *graphs.Graph
	sess Session
	ctx  context.Context // the Env's: its loops stop between session runs when it is done
}

// Model names for scoring.
const (
	ModelTeacher = "teacher"
	ModelStudent = "student"
)

// NewScorer builds the scoring graph of the teacher or the student: ids
// [B, S] → logp [B, S−1] (log-probability of each next token) and greedy
// [B, S−1] (whether that token is the argmax).
func (e *Env) NewScorer(model string) (*Scorer, error) {
	g, err := build("score_"+model, func(g *graphs.Graph) {
		ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
		var logits *graphs.Value
		switch model {
		case ModelTeacher:
			p := &layers.Frozen{G: g, Tensors: e.Teacher.Weights, DType: tensors.Float32}
			logits = e.Teacher.Config.Forward(p, ids, family.TeacherOptions{}).Logits
		case ModelStudent:
			p := &layers.Frozen{G: g, Tensors: e.Student.Weights, DType: tensors.Float32}
			logits = e.Student.Config.Forward(p, ids, family.StudentOptions{Form: family.FormSSD}).Logits
		default:
			panic(&graphs.Error{Op: "NewScorer", Msg: "unknown model " + model})
		}
		logp, greedy := TokenLogProbs(logits, ids)
		g.Output("logp", logp)
		g.Output("greedy", greedy)
	})
	if err != nil {
		return nil, err
	}
	s, err := e.session(g)
	if err != nil {
		return nil, err
	}
	ctx := e.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	return &Scorer{g: g, sess: s, ctx: ctx}, nil
}

// TokenLogProbs turns logits [B, S, V] for ids [B, S] into the
// log-probabilities of ids[:, 1:] and whether each is the greedy choice.
func TokenLogProbs(logits, ids *graphs.Value) (logp, greedy *graphs.Value) {
	lp := graphs.LogSoftmax(graphs.SliceAxis(logits, 1, 0, -1), -1)
	next := graphs.Unsqueeze(graphs.SliceAxis(ids, 1, 1, graphs.End), -1)
	picked := graphs.GatherElements(lp, next, -1)
	best := graphs.ReduceMax(lp, []int64{-1}, true)
	return graphs.Squeeze(picked, -1), graphs.Squeeze(graphs.GreaterOrEqual(picked, best), -1)
}

// Close releases the session.
func (s *Scorer) Close() { s.sess.Close() }

// Score runs ids [B, S] and returns logp and greedy [B, S−1]; it returns
// the context's error instead once the Env's context is done.
func (s *Scorer) Score(ids *tensors.Tensor) (logp, greedy *tensors.Tensor, err error) {
	if err := s.ctx.Err(); err != nil {
		return nil, nil, err
	}
	out, err := s.sess.Run([]*tensors.Tensor{ids})
	if err != nil {
		return nil, nil, err
	}
	return out[0], out[1], nil
}

// PerplexityResult is the held-out perplexity protocol's outcome.
type PerplexityResult struct {
	Perplexity float64 `json:"perplexity"`
	NLL        float64 `json:"nll"`
	Tokens     int64   `json:"tokens"`
	Windows    int     `json:"windows"`
}

// Perplexity scores windows [N, S+1] (each scores its last S tokens) in
// batches and returns exp(mean NLL).
func (s *Scorer) Perplexity(windows *tensors.Tensor, batch int, prog Progress) (PerplexityResult, error) {
	n := int(windows.Shape[0])
	tot, cnt := 0.0, int64(0)
	for i := 0; i < n; i += batch {
		b := sliceRows(windows, i, min(n, i+batch))
		logp, _, err := s.Score(b)
		if err != nil {
			return PerplexityResult{}, err
		}
		for _, v := range logp.Float32s() {
			tot -= float64(v)
			cnt++
		}
		if prog != nil {
			prog.Set(min(n, i+batch), fmt.Sprintf("ppl %.2f", math.Exp(tot/float64(cnt))))
		}
	}
	if cnt == 0 {
		return PerplexityResult{}, fmt.Errorf("no tokens to score")
	}
	return PerplexityResult{Perplexity: math.Exp(tot / float64(cnt)), NLL: tot / float64(cnt), Tokens: cnt, Windows: n}, nil
}

// Encoder turns text into token ids.
type Encoder interface{ Encode(string) []int64 }

// PrefixEncoder is an Encoder that also gives the token scored before a
// continuation whose context is empty, as lm-evaluation-harness puts its
// prefix token (BOS, else end-of-text) there, and encodes that
// continuation without special tokens, as the harness does. With a plain
// Encoder an empty context is an error.
type PrefixEncoder interface {
	Encoder
	Prefix() int64
	EncodeNoSpecial(string) []int64
}

// loglikelihoods scores requests in one batch: for each, the summed
// log-likelihood of the continuation's tokens and whether all of them are
// greedy. As in lm-evaluation-harness, white space ending the context moves
// to the start of the continuation, the pair is encoded whole and the
// context's encoding length decides where the continuation starts. An
// empty context is PrefixEncoder's prefix token, unless the continuation,
// encoded without special tokens, starts with that token. Shorter
// rows are padded at the end with their last token, which changes nothing
// before it: the models are causal.
func (s *Scorer) loglikelihoods(enc Encoder, reqs []data.Request) (ll []float64, greedy []bool, err error) {
	rows := make([][]int64, len(reqs))
	starts := make([]int, len(reqs))
	width := 0
	for i, r := range reqs {
		ctx, cont := r.Context, r.Continuation
		if trimmed := strings.TrimRightFunc(ctx, unicode.IsSpace); len(trimmed) < len(ctx) {
			ctx, cont = trimmed, ctx[len(trimmed):]+cont
		}
		rows[i], starts[i] = enc.Encode(ctx+cont), len(enc.Encode(ctx))
		if r.Context == "" || starts[i] == 0 {
			pe, ok := enc.(PrefixEncoder)
			if !ok {
				return nil, nil, fmt.Errorf("request %d: continuation %q has an empty context and the tokenizer no end-of-text token to put there", i, cont)
			}
			rows[i], starts[i] = pe.EncodeNoSpecial(cont), 1
			if len(rows[i]) == 0 || rows[i][0] != pe.Prefix() {
				rows[i] = append([]int64{pe.Prefix()}, rows[i]...)
			}
		}
		if starts[i] >= len(rows[i]) {
			return nil, nil, fmt.Errorf("request %d: continuation %q adds no tokens after its context", i, cont)
		}
		width = max(width, len(rows[i]))
	}
	ids := make([]int64, len(rows)*width)
	for i, row := range rows {
		copy(ids[i*width:], row)
		for j := len(row); j < width; j++ {
			ids[i*width+j] = row[len(row)-1]
		}
	}
	logp, gr, err := s.Score(tensors.FromInt64([]int64{int64(len(rows)), int64(width)}, ids))
	if err != nil {
		return nil, nil, err
	}
	lp, g := logp.Float32s(), gr.Bools()
	ll, greedy = make([]float64, len(rows)), make([]bool, len(rows))
	for i, row := range rows {
		base := i * (width - 1)
		greedy[i] = true
		for t := starts[i] - 1; t < len(row)-1; t++ {
			ll[i] += float64(lp[base+t])
			greedy[i] = greedy[i] && g[base+t]
		}
	}
	return ll, greedy, nil
}

// LastWordResult is LAMBADA-style accuracy: the target word must be the
// greedy continuation.
type LastWordResult struct {
	Accuracy   float64 `json:"acc"`
	Perplexity float64 `json:"ppl"`
	Examples   int     `json:"examples"`
}

// LastWord scores completions (context → final word).
func (s *Scorer) LastWord(enc Encoder, ex []data.Completion) (LastWordResult, error) {
	hits, tot := 0, 0.0
	for _, c := range ex {
		ll, greedy, err := s.loglikelihoods(enc, []data.Request{{Context: c.Context, Continuation: c.Target}})
		if err != nil {
			return LastWordResult{}, err
		}
		if greedy[0] {
			hits++
		}
		tot += ll[0]
	}
	if len(ex) == 0 {
		return LastWordResult{}, fmt.Errorf("no last-word examples")
	}
	return LastWordResult{Accuracy: float64(hits) / float64(len(ex)), Perplexity: math.Exp(-tot / float64(len(ex))), Examples: len(ex)}, nil
}

// TaskResult is a zero-shot task's scores under lm-evaluation-harness's
// metric names.
type TaskResult struct {
	Task       string   `json:"task"` // the benchmark (data.Benchmark.Name)
	Acc        float64  `json:"acc"`
	AccNorm    *float64 `json:"acc_norm,omitempty"`   // multiple-choice tasks only
	Perplexity *float64 `json:"perplexity,omitempty"` // lambada_openai only
	Examples   int      `json:"examples"`
}

// Task scores a benchmark's examples: multiple-choice questions for acc and
// acc_norm (MultipleChoice), lambada_openai completions for acc and
// perplexity (LastWord).
func (s *Scorer) Task(enc Encoder, t *data.Task, prog Progress) (TaskResult, error) {
	if len(t.Completions) > 0 {
		r, err := s.LastWord(enc, t.Completions)
		return TaskResult{Task: t.Name, Acc: r.Accuracy, Perplexity: &r.Perplexity, Examples: r.Examples}, err
	}
	r, err := s.MultipleChoice(enc, t.Questions, prog)
	r.Task = t.Name
	return r, err
}

// MultipleChoice scores each choice's log-likelihood after its context (the
// choices of a question in one batch) and reports acc (argmax) and
// acc_norm (argmax per character of the choice), as lm-evaluation-harness
// does.
func (s *Scorer) MultipleChoice(enc Encoder, items []data.MultipleChoice, prog Progress) (TaskResult, error) {
	var acc, accNorm float64
	for i, it := range items {
		lls, _, err := s.loglikelihoods(enc, it.Requests())
		if err != nil {
			return TaskResult{}, fmt.Errorf("item %d: %w", i, err)
		}
		a, an := it.Score(lls)
		if a {
			acc++
		}
		if an {
			accNorm++
		}
		if prog != nil {
			prog.Set(i+1, fmt.Sprintf("acc %.3f", acc/float64(i+1)))
		}
	}
	n := float64(len(items))
	if n == 0 {
		return TaskResult{}, fmt.Errorf("no multiple-choice items")
	}
	accNorm /= n
	return TaskResult{Acc: acc / n, AccNorm: &accNorm, Examples: len(items)}, nil
}

// evalBatches cuts the first n held-out windows into batches of mb.
func evalBatches(val *data.Stream, seqLen, n, mb int) ([]*tensors.Tensor, error) {
	all, err := data.EvalWindows(val, seqLen, n)
	if err != nil {
		return nil, err
	}
	var out []*tensors.Tensor
	for i := 0; i < n; i += mb {
		out = append(out, sliceRows(all, i, min(n, i+mb)))
	}
	return out, nil
}
