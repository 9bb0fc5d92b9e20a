package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"mohawk/atomicfile"
	"mohawk/runtime"
)

// BenchOptions configure BenchGenerate.
type BenchOptions struct {
	// Student, Hybrid and Teacher are deployment folders; an empty one is
	// skipped. (A row's model is named from the folder itself: "hybrid" for
	// a student with a KV cache.)
	Student, Hybrid, Teacher string
	// Contexts are the context lengths prefilled before decoding (default
	// 2048, 16384).
	Contexts []int
	// DecodeTokens is the number of timed decode steps per context
	// (default 32), after benchWarmup untimed ones.
	DecodeTokens int
	// Runtime selects the library and provider (CPU or CUDA).
	Runtime runtime.Config
	// Batches are the numbers of sequences decoded side by side (default 1).
	Batches []int
	// Chunk is the prefill piece length (default DefaultChunk).
	Chunk int
	// HostLogits decodes with Step, fetching the logits and picking on the
	// host, instead of StepGreedy (the graph's next_token): for comparing
	// the two.
	HostLogits bool
	// Seed seeds the random context tokens.
	Seed uint64
	// Progress, if not nil, receives one line per measurement.
	Progress io.Writer
}

// benchWarmup is the number of untimed decode steps before the timed ones
// (the first calls of a decode shape allocate; on a GPU they also load
// kernels).
const benchWarmup = 2

// BenchRow is one model at one context length and batch size.
type BenchRow struct {
	Model    string // KindStudent, "hybrid" (a student with a KV cache) or KindTeacher
	Provider string
	Context  int
	Batch    int
	// Pick is where greedy decoding chose the next token: "graph" (the
	// next_token output; only token ids cross) or "host" (logits fetched).
	Pick string
	// PrefillSeconds is the time to first token: feeding Context tokens per
	// sequence and getting the logits after the last.
	PrefillSeconds float64
	DecodeTokens   int
	// DecodeMsPerToken is the mean time of one decode step (one token for
	// each sequence), picking the next token included.
	DecodeMsPerToken float64
	// DecodeTokensPerSecond counts the tokens of all sequences.
	DecodeTokensPerSecond float64
	// HostBytesPerStep is the mean traffic between host and runtime of one
	// timed decode step (runtime.Env.HostTraffic, both ways): the token ids
	// and what is fetched, never the carried states.
	HostBytesPerStep int64
	// StateBytes is the size of the carried states and KV caches after
	// decoding (Context + benchWarmup + DecodeTokens tokens).
	StateBytes int64
	// PeakRSSBytes is the process's resident-set high-water mark (VmHWM)
	// over this row, reset before it when BenchResult.PeakReset.
	PeakRSSBytes int64
}

// BenchResult holds every row of a BenchGenerate run.
type BenchResult struct {
	Rows []BenchRow
	// PeakReset tells whether the kernel let the high-water mark be reset
	// before each row; otherwise PeakRSSBytes is the peak of the process so
	// far.
	PeakReset bool
	// Notes qualify the numbers (e.g. contexts beyond a model's trained
	// length).
	Notes []string
}

func (o BenchOptions) withDefaults() BenchOptions {
	if len(o.Contexts) == 0 {
		o.Contexts = []int{2048, 16384}
	}
	if o.DecodeTokens == 0 {
		o.DecodeTokens = 32
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1}
	}
	return o
}

// BenchGenerate measures generation speed and memory: for each model,
// batch size and context length it prefills random tokens (time to first
// token), then times greedy decode steps. The teacher's rotary embeddings
// extrapolate mechanically past its max_position_embeddings, so longer
// contexts are fine for timing (the numbers say nothing of quality there);
// the result notes it.
func BenchGenerate(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	o = o.withDefaults()
	if o.Student == "" && o.Hybrid == "" && o.Teacher == "" {
		return nil, fmt.Errorf("bench: no deployment folder; set BenchOptions.Student, Hybrid and/or Teacher")
	}
	if o.DecodeTokens < 1 {
		return nil, fmt.Errorf("bench: DecodeTokens %d must be positive", o.DecodeTokens)
	}
	for _, b := range o.Batches {
		if b < 1 {
			return nil, fmt.Errorf("bench: batch size %d must be positive", b)
		}
	}
	for _, c := range o.Contexts {
		if c < 1 {
			return nil, fmt.Errorf("bench: context length %d must be positive", c)
		}
	}
	res := &BenchResult{PeakReset: resetPeakRSS()}
	for _, dir := range []string{o.Student, o.Hybrid, o.Teacher} {
		if dir == "" {
			continue
		}
		if err := benchFolder(ctx, dir, o, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// benchModel names a folder's model in the rows.
func benchModel(g *Generator) string {
	if g.Kind() == KindStudent && g.manifest.growing() {
		return "hybrid"
	}
	return g.Kind()
}

// benchFolder adds the rows of one deployment folder to res.
func benchFolder(ctx context.Context, dir string, o BenchOptions, res *BenchResult) error {
	g, err := Open(dir, o.Runtime)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer g.Close()
	g.Chunk = o.Chunk
	if limit := g.genai.Model.ContextLength; g.Kind() == KindTeacher && slices.Max(o.Contexts)+benchWarmup+o.DecodeTokens > limit {
		res.Notes = append(res.Notes, fmt.Sprintf("teacher: contexts beyond its %d trained positions (max_position_embeddings) run on mechanically extrapolated rotary embeddings; fine for timing, says nothing of quality", limit))
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	width := g.greedyWidth()
	pick := "host"
	if g.GraphPicksGreedy() && !o.HostLogits {
		pick = "graph"
	}
	// step advances every sequence by its token in next and puts the
	// greedy picks there.
	step := func(next []int64) error {
		if pick == "graph" {
			picked, err := g.StepGreedy(next)
			copy(next, picked)
			return err
		}
		logits, err := g.Step(next)
		if err != nil {
			return err
		}
		for i := range next {
			next[i] = greedyPick(logits.Float32s()[i*g.VocabSize() : i*g.VocabSize()+width])
		}
		return nil
	}
	for _, batch := range o.Batches {
		for _, n := range o.Contexts {
			g.Reset()
			goruntime.GC()
			debug.FreeOSMemory()
			resetPeakRSS()
			ids := make([][]int64, batch)
			for i := range ids {
				for range n {
					id := rng.Int64N(int64(width))
					if id == g.EOS() {
						id = (id + 1) % int64(width)
					}
					ids[i] = append(ids[i], id)
				}
			}
			start := time.Now()
			logits, err := g.Prefill(ids)
			if err != nil {
				return fmt.Errorf("bench %s, context %d, batch %d: %w", dir, n, batch, err)
			}
			prefill := time.Since(start)
			next := make([]int64, batch)
			for i := range next {
				next[i] = greedyPick(logits.Float32s()[i*g.VocabSize() : i*g.VocabSize()+width])
			}
			var in0, out0 int64
			for k := range benchWarmup + o.DecodeTokens {
				if err := ctx.Err(); err != nil {
					return err
				}
				if k == benchWarmup {
					in0, out0 = g.HostTraffic()
					start = time.Now()
				}
				if err := step(next); err != nil {
					return fmt.Errorf("bench %s, context %d, batch %d: %w", dir, n, batch, err)
				}
			}
			decode := time.Since(start)
			in1, out1 := g.HostTraffic()
			row := BenchRow{
				Model: benchModel(g), Provider: g.Provider(), Context: n, Batch: batch, Pick: pick,
				PrefillSeconds: prefill.Seconds(), DecodeTokens: o.DecodeTokens,
				DecodeMsPerToken:      decode.Seconds() * 1e3 / float64(o.DecodeTokens),
				DecodeTokensPerSecond: float64(batch*o.DecodeTokens) / decode.Seconds(),
				HostBytesPerStep:      (in1 - in0 + out1 - out0) / int64(o.DecodeTokens),
				StateBytes:            g.StateBytes(), PeakRSSBytes: peakRSS(),
			}
			res.Rows = append(res.Rows, row)
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "bench %s context %d batch %d: prefill %.3f s, decode %.2f ms/step (%.1f tokens/s, %d host bytes/step), state %.1f MiB, peak RSS %.0f MiB\n",
					row.Model, n, batch, row.PrefillSeconds, row.DecodeMsPerToken, row.DecodeTokensPerSecond, row.HostBytesPerStep, mib(row.StateBytes), mib(row.PeakRSSBytes))
			}
		}
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// resetPeakRSS asks Linux to reset VmHWM to the current RSS and reports
// whether it could.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is VmHWM from /proc/self/status in bytes (0 where unavailable).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// WriteBenchTable writes the rows as a Markdown table, with the notes.
func (r *BenchResult) WriteBenchTable(path string) error {
	var b strings.Builder
	b.WriteString("| model | provider | context | batch | pick | time to first token (s) | decode ms/step | decode tokens/s | host bytes/step | state/KV (MiB) | peak RSS (MiB) |\n")
	b.WriteString("|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %.3f | %.2f | %.1f | %d | %.2f | %.0f |\n",
			x.Model, x.Provider, x.Context, x.Batch, x.Pick, x.PrefillSeconds, x.DecodeMsPerToken, x.DecodeTokensPerSecond, x.HostBytesPerStep, mib(x.StateBytes), mib(x.PeakRSSBytes))
	}
	b.WriteString("\n")
	if !r.PeakReset {
		b.WriteString("- Peak RSS could not be reset between rows: each value is the process's peak so far.\n")
	}
	for _, n := range r.Notes {
		b.WriteString("- " + n + "\n")
	}
	return atomicfile.WriteBytes(path, []byte(b.String()))
}

// WriteBenchPlot draws decode ms/token against the context length, one
// line per model, as a PNG.
func (r *BenchResult) WriteBenchPlot(path string) error {
	p := plot.New()
	p.Title.Text = "decode cost per step"
	p.X.Label.Text = "context length (tokens)"
	p.Y.Label.Text = "ms per step (one token per sequence)"
	p.X.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, x := range r.Rows {
		if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == float64(x.Context) }) {
			ticks = append(ticks, plot.Tick{Value: float64(x.Context), Label: strconv.Itoa(x.Context)})
		}
	}
	p.X.Tick.Marker = ticks
	p.Legend.Top, p.Legend.Left = true, true
	var lines []any
	var names []string
	byName := map[string]plotter.XYs{}
	for _, x := range r.Rows {
		name := fmt.Sprintf("%s, batch %d", x.Model, x.Batch)
		if _, ok := byName[name]; !ok {
			names = append(names, name)
		}
		byName[name] = append(byName[name], plotter.XY{X: float64(x.Context), Y: x.DecodeMsPerToken})
	}
	for _, name := range names {
		lines = append(lines, name, byName[name])
	}
	if len(lines) == 0 {
		return fmt.Errorf("bench plot %s: no rows to draw", path)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return fmt.Errorf("bench plot %s: %w", path, err)
	}
	p.Y.Min = 0
	w, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("bench plot %s: %w", path, err)
	}
	return atomicfile.Write(path, func(f io.Writer) error { _, err := w.WriteTo(f); return err })
}
