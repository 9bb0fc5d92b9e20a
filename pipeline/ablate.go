package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mohawk/atomicfile"
)

// Recipe is one ablation arm: which MOHAWK stages run, on what share of
// the budget, at what learning rate (the split of paper Table 2's arms and
// of the PyTorch peer: Stage 1 10%, Stage 2 20%, Stage 3 70% of the budget).
type Recipe struct {
	Name, Label string
	Stages      []StageConfig
}

// RecipeLRs are the learning rates of the ablation arms.
type RecipeLRs struct {
	Align, Distill, Scratch float64 // Stages 1–2, Stage 3, from scratch
}

// PeerLRs are the PyTorch peer's: 1e-3 for Stages 1–2, 5e-4 for Stage 3,
// 1e-3 from scratch.
var PeerLRs = RecipeLRs{Align: 1e-3, Distill: 5e-4, Scratch: 1e-3}

// Recipes are the ablation arms: Stages 1–3, 2–3, 3 only, and a student
// trained from scratch with the language-model loss on the same budget.
func Recipes(lr RecipeLRs) []Recipe {
	s1 := func(f float64) StageConfig {
		return StageConfig{Name: "orient", Kind: KindOrient, Fraction: f, LR: lr.Align}
	}
	s2 := func(f float64) StageConfig {
		return StageConfig{Name: "align", Kind: KindAlign, Fraction: f, LR: lr.Align}
	}
	s3 := func(f float64) StageConfig {
		return StageConfig{Name: "distill", Kind: KindDistill, Fraction: f, LR: lr.Distill}
	}
	return []Recipe{
		{Name: "s123", Label: "Stages 1–3", Stages: []StageConfig{s1(0.1), s2(0.2), s3(0.7)}},
		{Name: "s23", Label: "Stages 2–3", Stages: []StageConfig{s2(0.3), s3(0.7)}},
		{Name: "s3", Label: "Stage 3 only", Stages: []StageConfig{s3(1)}},
		{Name: "scratch", Label: "from scratch (LM loss)", Stages: []StageConfig{{Name: "lm", Kind: KindPretrain, Model: "student", Scratch: true, Fraction: 1, LR: lr.Scratch}}},
	}
}

// AblationRow is one arm's outcome.
type AblationRow struct {
	Recipe      string
	Label       string
	StudentPPL  float64
	TeacherPPL  float64
	Seconds     float64
	StagesPPL   []string // perplexity after each training stage
	StageTokens []int64
}

// Ablate runs every recipe on the base config with a total token budget and
// writes a Table-2-style comparison (student/teacher held-out perplexity)
// to <output_dir>/<name>-ablation-<budget>.md. Each arm is an ordinary run
// (resumable, skipped when already complete).
func Ablate(ctx context.Context, base *Config, source string, budget int64, names []string, lr RecipeLRs, opt RunOptions) (string, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var rows []AblationRow
	for _, r := range Recipes(lr) {
		if len(want) > 0 && !want[r.Name] {
			continue
		}
		cfg := *base
		cfg.Name = fmt.Sprintf("%s-%s-%s", base.Name, r.Name, humanCount(budget))
		cfg.Budget = budget
		cfg.Stages = append(append([]StageConfig{}, r.Stages...), StageConfig{Name: "eval", Kind: KindEval})
		sum, err := Run(ctx, &cfg, source, opt)
		if err != nil {
			return "", fmt.Errorf("ablation %s: %w", r.Name, err)
		}
		row := AblationRow{Recipe: r.Name, Label: r.Label, TeacherPPL: sum.teacherPPL()}
		for _, st := range sum.Stages {
			row.Seconds += st.Seconds
			if st.StudentPPL != nil {
				row.StagesPPL = append(row.StagesPPL, fmt.Sprintf("%s %.2f", st.Name, st.StudentPPL.Perplexity))
				row.StageTokens = append(row.StageTokens, st.Tokens)
			}
			if st.Eval != nil && st.Eval.Models["student"] != nil && st.Eval.Models["student"].Perplexity != nil {
				row.StudentPPL = st.Eval.Models["student"].Perplexity.Perplexity
			}
		}
		rows = append(rows, row)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Ablation: %s, budget %s tokens\n\n", base.Name, humanCount(budget))
	fmt.Fprintf(&b, "Held-out perplexity over %d windows of %d tokens; student init %s; lr Stages 1–2 %g, Stage 3 %g, from scratch %g; generated %s.\n\n",
		base.Eval.Windows, base.Eval.SeqLen, base.Student.Init, lr.Align, lr.Distill, lr.Scratch, time.Now().UTC().Format(time.RFC3339))
	if a := base.Student.AttentionLayers; a.IsSet() {
		fmt.Fprintf(&b, "Hybrid student: attention layers %s kept from the teacher (train_attention %v).\n\n", a, base.Student.TrainAttention)
	}
	b.WriteString("| recipe | student ppl | teacher ppl | student/teacher | after each stage | wall |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := 0.0
		if r.TeacherPPL > 0 {
			ratio = r.StudentPPL / r.TeacherPPL
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.3f | %s | %s |\n", r.Label, r.StudentPPL, r.TeacherPPL, ratio,
			strings.Join(r.StagesPPL, "; "), time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))
	}
	out := filepath.Join(base.Resolve(base.OutputDir), fmt.Sprintf("%s-ablation-%s.md", base.Name, humanCount(budget)))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	return out, atomicfile.WriteBytes(out, []byte(b.String()))
}
