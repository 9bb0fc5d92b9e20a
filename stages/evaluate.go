package stages

import (
	"context"
	"fmt"
	"math"

	"mohawk/data"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
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
			logits = phi.Forward(p, e.Teacher.Config, ids, phi.Options{}).Logits
		case ModelStudent:
			p := &layers.Frozen{G: g, Tensors: e.Student.Weights, DType: tensors.Float32}
			logits = phimamba.Forward(p, e.Student.Config, ids, phimamba.Options{Form: phimamba.FormSSD}).Logits
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

// continuation scores cont after ctx: the summed log-likelihood of the
// continuation's tokens and whether all of them are greedy. As in
// lm-evaluation-harness, the pair is encoded whole and the context's
// encoding length decides where the continuation starts.
func (s *Scorer) continuation(enc Encoder, ctx, cont string) (ll float64, greedy bool, n int, err error) {
	whole := enc.Encode(ctx + cont)
	nc := len(enc.Encode(ctx))
	if nc >= len(whole) || nc == 0 {
		return 0, false, 0, fmt.Errorf("continuation %q adds no tokens after its context", cont)
	}
	ids := tensors.FromInt64([]int64{1, int64(len(whole))}, whole)
	logp, gr, err := s.Score(ids)
	if err != nil {
		return 0, false, 0, err
	}
	greedy = true
	lp, g := logp.Float32s(), gr.Bools()
	for t := nc - 1; t < len(whole)-1; t++ {
		ll += float64(lp[t])
		greedy = greedy && g[t]
	}
	return ll, greedy, len(whole) - nc, nil
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
	hits, tot, toks := 0, 0.0, 0
	for _, c := range ex {
		ll, greedy, n, err := s.continuation(enc, c.Context, c.Target)
		if err != nil {
			return LastWordResult{}, err
		}
		if greedy {
			hits++
		}
		tot += ll
		toks += n
	}
	if len(ex) == 0 {
		return LastWordResult{}, fmt.Errorf("no last-word examples")
	}
	return LastWordResult{Accuracy: float64(hits) / float64(len(ex)), Perplexity: math.Exp(-tot / float64(len(ex))), Examples: len(ex)}, nil
}

// ChoiceResult is zero-shot multiple-choice accuracy.
type ChoiceResult struct {
	Acc      float64 `json:"acc"`
	AccNorm  float64 `json:"acc_norm"`
	Examples int     `json:"examples"`
}

// MultipleChoice scores each choice's log-likelihood after its context and
// reports acc (argmax) and acc_norm (argmax per character of the choice),
// as lm-evaluation-harness does.
func (s *Scorer) MultipleChoice(enc Encoder, items []data.MultipleChoice, prog Progress) (ChoiceResult, error) {
	var acc, accNorm float64
	for i, it := range items {
		reqs := it.Requests()
		lls := make([]float64, len(reqs))
		for j, r := range reqs {
			ll, _, _, err := s.continuation(enc, r.Context, r.Continuation)
			if err != nil {
				return ChoiceResult{}, fmt.Errorf("item %d choice %d: %w", i, j, err)
			}
			lls[j] = ll
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
		return ChoiceResult{}, fmt.Errorf("no multiple-choice items")
	}
	return ChoiceResult{Acc: acc / n, AccNorm: accNorm / n, Examples: len(items)}, nil
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
