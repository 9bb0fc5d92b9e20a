package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"mohawk/atomicfile"
	"mohawk/data"
	"mohawk/stages"
)

// Summary is summary.json: the run's outcome.
type Summary struct {
	Name     string        `json:"name"`
	RunDir   string        `json:"run_dir"`
	Provider string        `json:"provider"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Stages   []StageRecord `json:"stages"`
}

func writeSummary(s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(s.RunDir, "summary.json"), b)
}

// teacherPPL finds the teacher's held-out perplexity in the stage records.
func (s *Summary) teacherPPL() float64 {
	for _, r := range s.Stages {
		if r.Eval != nil {
			if m := r.Eval.Models["teacher"]; m != nil && m.Perplexity != nil {
				return m.Perplexity.Perplexity
			}
		}
		if r.TeacherPPL != nil {
			return r.TeacherPPL.Perplexity
		}
	}
	return 0
}

// zeroShotSection is the paper-style zero-shot table of an eval stage, or
// "" when it scored none of the paper's tasks.
func zeroShotSection(stage string, ev *EvalReport) string {
	var models []string
	results := map[string]map[string]*stages.TaskResult{}
	for _, m := range []string{stages.ModelTeacher, stages.ModelStudent} {
		me := ev.Models[m]
		if me == nil {
			continue
		}
		for _, bm := range data.Benchmarks {
			if findTask(me.Tasks, bm.Name) != nil {
				models = append(models, m)
				results[m] = me.Tasks
				break
			}
		}
	}
	if len(models) == 0 {
		return ""
	}
	return fmt.Sprintf("\n### %s: zero-shot tasks (the paper's Table 1 layout)\n\n", stage) +
		"Percentages; acc_norm for ARC-C and HellaSwag, acc elsewhere, as the paper reports; Avg is the mean of the six columns, " +
		"shown when all six were scored (docs/zero-shot.md).\n\n" + ZeroShotTable(models, results)
}

// WriteReport writes report.md and the loss-curve PNGs into the run dir.
func WriteReport(dir string, s *Summary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# mohawk run %s\n\n", s.Name)
	var wall float64
	for _, r := range s.Stages {
		wall += r.Seconds
	}
	fmt.Fprintf(&b, "Provider: %s. Stage wall time %s in all (stages done by an earlier invocation keep their own time); this report written %s.\n\n",
		s.Provider, time.Duration(wall*float64(time.Second)).Round(time.Second), s.Finished.Format(time.RFC3339))
	tp := s.teacherPPL()
	b.WriteString("## Stages\n\n| stage | kind | tokens | steps | first loss | last loss | held-out loss | student ppl | teacher ppl | student/teacher | wall |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range s.Stages {
		sp, tpp := "", ""
		if r.StudentPPL != nil {
			sp = fmt.Sprintf("%.2f", r.StudentPPL.Perplexity)
		}
		if r.TeacherPPL != nil {
			tpp = fmt.Sprintf("%.2f", r.TeacherPPL.Perplexity)
		} else if tp > 0 {
			tpp = fmt.Sprintf("%.2f", tp)
		}
		ratio := ""
		if r.StudentPPL != nil && tp > 0 {
			ratio = fmt.Sprintf("%.3f", r.StudentPPL.Perplexity/tp)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.Name, r.Kind, humanCount(r.Tokens), r.Steps,
			num(r.FirstLoss), num(r.LastLoss), num(r.ValLoss), sp, tpp, ratio, (time.Duration(r.Seconds * float64(time.Second))).Round(time.Second))
	}
	for _, r := range s.Stages {
		if len(r.LayerBefore) > 0 && len(r.LayerAfter) == len(r.LayerBefore) {
			metric := "L2 distance to the teacher's attention output"
			if r.Kind == KindOrient {
				metric = "Frobenius distance to the teacher's attention matrix"
			}
			fmt.Fprintf(&b, "\n### %s: per-layer %s (held-out)\n\n| layer | before | after |\n|---|---|---|\n", r.Name, metric)
			for i := range r.LayerBefore {
				fmt.Fprintf(&b, "| %d | %.4g | %.4g |\n", i, r.LayerBefore[i], r.LayerAfter[i])
			}
		}
		if r.Eval != nil {
			fmt.Fprintf(&b, "\n### %s: evaluation\n\n| model | perplexity | tokens | last-word acc | tasks |\n|---|---|---|---|---|\n", r.Name)
			for _, m := range sortedNames(r.Eval.Models) {
				me := r.Eval.Models[m]
				ppl, toks, lw, tasks := "", "", "", ""
				if me.Perplexity != nil {
					ppl, toks = fmt.Sprintf("%.3f", me.Perplexity.Perplexity), fmt.Sprint(me.Perplexity.Tokens)
				}
				if me.LastWord != nil {
					lw = fmt.Sprintf("%.3f (%d)", me.LastWord.Accuracy, me.LastWord.Examples)
				}
				for _, t := range sortedNames(me.Tasks) {
					tasks += fmt.Sprintf("%s %s (%d); ", t, metricsLine(me.Tasks[t]), me.Tasks[t].Examples)
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m, ppl, toks, lw, strings.TrimSuffix(tasks, "; "))
			}
			b.WriteString(zeroShotSection(r.Name, r.Eval))
		}
		if r.Export != "" {
			fmt.Fprintf(&b, "\nExported to `%s`.\n", r.Export)
		}
	}
	curves, err := readCurves(filepath.Join(dir, metricsLog))
	if err != nil {
		return err
	}
	if len(curves) > 0 {
		b.WriteString("\n## Loss curves\n\n")
		for _, name := range sortedNames(curves) {
			png := "loss-" + name + ".png"
			if err := plotCurve(filepath.Join(dir, png), name, curves[name]); err != nil {
				return err
			}
			fmt.Fprintf(&b, "![%s](%s)\n", name, png)
		}
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "report.md"), []byte(b.String()))
}

func num(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprintf("%.4g", f)
}

type curve struct{ train, val plotter.XYs }

// readCurves reads metrics.jsonl; for steps logged twice (a resumed run
// redoing steps after its last checkpoint) the last line wins.
func readCurves(path string) (map[string]*curve, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	type key struct {
		stage string
		step  int
	}
	train, val := map[key]float64{}, map[key]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Stage   string   `json:"stage"`
			Step    int      `json:"step"`
			Loss    *float64 `json:"loss"`
			ValLoss *float64 `json:"val_loss"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Stage == "" {
			continue
		}
		if m.Loss != nil {
			train[key{m.Stage, m.Step}] = *m.Loss
		}
		if m.ValLoss != nil {
			val[key{m.Stage, m.Step}] = *m.ValLoss
		}
	}
	out := map[string]*curve{}
	add := func(src map[key]float64, pick func(c *curve) *plotter.XYs) {
		keys := make([]key, 0, len(src))
		for k := range src {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].step < keys[j].step })
		for _, k := range keys {
			c := out[k.stage]
			if c == nil {
				c = &curve{}
				out[k.stage] = c
			}
			xy := pick(c)
			*xy = append(*xy, plotter.XY{X: float64(k.step), Y: src[k]})
		}
	}
	add(train, func(c *curve) *plotter.XYs { return &c.train })
	add(val, func(c *curve) *plotter.XYs { return &c.val })
	return out, sc.Err()
}

func plotCurve(path, name string, c *curve) error {
	p := plot.New()
	p.Title.Text = "stage " + name
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	var args []any
	if len(c.train) > 0 {
		args = append(args, "train", c.train)
	}
	if len(c.val) > 0 {
		args = append(args, "held-out", c.val)
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return err
	}
	tmp := path + ".tmp.png"
	if err := p.Save(6*vg.Inch, 3.5*vg.Inch, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
