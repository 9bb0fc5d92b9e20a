package pipeline

import (
	"fmt"

	"mohawk/data"
	"mohawk/stages"
)

// EvalReport holds an eval stage's measurements per model.
type EvalReport struct {
	Models map[string]*ModelEval `json:"models"`
}

// ModelEval is one model's results.
type ModelEval struct {
	Perplexity *stages.PerplexityResult        `json:"perplexity,omitempty"`
	LastWord   *stages.LastWordResult          `json:"last_word,omitempty"`
	Tasks      map[string]*stages.ChoiceResult `json:"tasks,omitempty"`
}

// evaluate runs the eval stage: held-out perplexity, LAMBADA-style
// last-word accuracy on held-out documents and the configured
// multiple-choice tasks, for the teacher and the student.
func (w *work) evaluate(env *stages.Env, log *runLog) (*EvalReport, error) {
	e := w.cfg.Eval
	models := e.Models
	if len(models) == 0 {
		models = []string{stages.ModelTeacher, stages.ModelStudent}
	}
	rep := &EvalReport{Models: map[string]*ModelEval{}}
	var lastWord []data.Completion
	if e.LastWord > 0 {
		docs, err := w.valDocuments()
		if err != nil {
			return nil, err
		}
		lastWord = data.LastWordExamples(docs, 8, e.LastWord)
	}
	tasks := map[string][]data.MultipleChoice{}
	for _, t := range e.Tasks {
		items, err := data.LoadMultipleChoice(w.cfg.Resolve(t.Path), t.Kind)
		if err != nil {
			return nil, err
		}
		if t.Limit > 0 && len(items) > t.Limit {
			items = items[:t.Limit]
		}
		tasks[t.Name] = items
	}
	for _, m := range models {
		me := &ModelEval{}
		ppl, err := w.perplexity(env, m, log)
		if err != nil {
			return nil, err
		}
		me.Perplexity = ppl
		if len(lastWord) > 0 || len(tasks) > 0 {
			sc, err := env.NewScorer(m)
			if err != nil {
				return nil, err
			}
			if len(lastWord) > 0 {
				r, err := sc.LastWord(w.tok, lastWord)
				if err != nil {
					sc.Close()
					return nil, fmt.Errorf("last-word eval (%s): %w", m, err)
				}
				me.LastWord = &r
				log.Printf("%s last-word accuracy: %.3f over %d examples", m, r.Accuracy, r.Examples)
			}
			me.Tasks = map[string]*stages.ChoiceResult{}
			for name, items := range tasks {
				prog := log.Progress(fmt.Sprintf("%s (%s)", name, m), len(items))
				r, err := sc.MultipleChoice(w.tok, items, prog)
				prog.Done()
				if err != nil {
					sc.Close()
					return nil, fmt.Errorf("task %s (%s): %w", name, m, err)
				}
				me.Tasks[name] = &r
				log.Printf("%s %s: acc %.3f acc_norm %.3f (%d)", m, name, r.Acc, r.AccNorm, r.Examples)
			}
			sc.Close()
		}
		rep.Models[m] = me
	}
	return rep, nil
}

// valDocuments returns the held-out documents as text.
func (w *work) valDocuments() ([]string, error) {
	if len(w.cfg.Data.Val) > 0 {
		var docs []string
		for _, s := range w.cfg.Data.Val {
			d, err := data.ReadDocuments(s.dataSource(w.cfg))
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
		return docs, nil
	}
	return nil, fmt.Errorf("eval.last_word needs data.val files (the held-out text); data.val_fraction splits tokens only")
}
