package pipeline

import (
	"fmt"
	"slices"

	"mohawk/data"
	"mohawk/stages"
)

// EvalReport holds an eval stage's measurements per model.
type EvalReport struct {
	Models map[string]*ModelEval `json:"models"`
}

// ModelEval is one model's results.
type ModelEval struct {
	Perplexity *stages.PerplexityResult      `json:"perplexity,omitempty"`
	LastWord   *stages.LastWordResult        `json:"last_word,omitempty"`
	Tasks      map[string]*stages.TaskResult `json:"tasks,omitempty"`
}

// evaluate runs the eval stage: held-out perplexity, LAMBADA-style
// last-word accuracy on held-out documents and the configured zero-shot
// tasks, for the teacher and the student.
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
	specs := slices.Clone(e.Tasks)
	for i := range specs {
		specs[i].Path = w.cfg.Resolve(specs[i].Path)
	}
	tasks, err := loadTasks(specs)
	if err != nil {
		return nil, err
	}
	enc, err := newHarnessEncoder(w.tok, w.cfg.TokenizerPath())
	if err != nil {
		return nil, err
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
			if me.Tasks, err = scoreTasks(sc, enc, m, specs, tasks, log); err != nil {
				sc.Close()
				return nil, err
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
