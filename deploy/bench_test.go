package deploy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/export"
	"mohawk/graphs/models/phimamba"
	"mohawk/runtime"
	"mohawk/tensors"
)

// TestBenchGenerate runs the benchmark machinery at small contexts and
// writes its table and plot. The log shows the decode cost per token:
// about flat for the student, growing with the context for the teacher
// (whose KV cache is copied in and out on every call and attended over).
func TestBenchGenerate(t *testing.T) {
	o := BenchOptions{
		Student: ref(t, KindStudent).folder(t, Options{}), Teacher: ref(t, KindTeacher).folder(t, Options{}),
		Contexts: []int{64, 256, 1024}, Batches: []int{1, 2}, DecodeTokens: 24, Runtime: testRuntime, Seed: 1,
	}
	needORT(t)
	res, err := BenchGenerate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(o.Batches) * len(o.Contexts); len(res.Rows) != want {
		t.Fatalf("%d rows, want %d", len(res.Rows), want)
	}
	state := map[string][]int64{}
	for _, r := range res.Rows {
		if !(r.PrefillSeconds > 0 && r.DecodeMsPerToken > 0 && r.DecodeTokensPerSecond > 0 && r.StateBytes > 0) {
			t.Errorf("row %+v has a non-positive measurement", r)
		}
		// Each step sends one int64 token per sequence and fetches one.
		if r.Pick != "graph" || r.HostBytesPerStep != int64(16*r.Batch) {
			t.Errorf("%s batch %d: pick %q, %d host bytes per step; want the graph's pick and %d", r.Model, r.Batch, r.Pick, r.HostBytesPerStep, 16*r.Batch)
		}
		state[fmt.Sprint(r.Model, r.Batch)] = append(state[fmt.Sprint(r.Model, r.Batch)], r.StateBytes)
	}
	// Student: 6 layers × (768·3 + 8·32·32) floats; teacher: 6 × 2 × 8·32 floats per token.
	for _, b := range o.Batches {
		for i, n := range o.Contexts {
			if got, want := state[fmt.Sprint(KindStudent, b)][i], int64(b*6*(768*3+8*32*32)*4); got != want {
				t.Errorf("student state after context %d, batch %d: %d bytes, want %d", n, b, got, want)
			}
			if got, want := state[fmt.Sprint(KindTeacher, b)][i], int64(b*6*2*8*32*4*(n+benchWarmup+o.DecodeTokens)); got != want {
				t.Errorf("teacher KV cache after context %d, batch %d: %d bytes, want %d", n, b, got, want)
			}
		}
	}
	// Picking on the host fetches the logits: 8192 floats per sequence.
	host, err := BenchGenerate(context.Background(), BenchOptions{Student: o.Student, Contexts: []int{64}, DecodeTokens: 4, Runtime: testRuntime, HostLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := host.Rows[0]; r.Pick != "host" || r.HostBytesPerStep != 8+8192*4 {
		t.Errorf("host pick: pick %q, %d host bytes per step; want %d", r.Pick, r.HostBytesPerStep, 8+8192*4)
	}
	dir := t.TempDir()
	table, png := filepath.Join(dir, "bench.md"), filepath.Join(dir, "bench.png")
	if err := res.WriteBenchTable(table); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteBenchPlot(png); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 1000 {
		t.Errorf("plot %s: %v", png, err)
	}
	t.Logf("CPU decode cost (this machine, load from other jobs adds noise):\n%s", md)
	if !strings.Contains(string(md), "| student | cpu | 1024 | 2 | graph |") {
		t.Errorf("table lacks the student's 1024-token row:\n%s", md)
	}
}

// BenchmarkDecode times one decode step of each model after a 256-token
// context on the CPU.
func BenchmarkDecode(b *testing.B) {
	for _, m := range refModels(b) {
		b.Run(m.kind, func(b *testing.B) {
			g := open(b, m.folder(b, Options{}))
			ids := make([]int64, 256)
			for i := range ids {
				ids[i] = int64(1 + i%1000)
			}
			if _, err := g.Prefill([][]int64{ids}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := g.Step([]int64{42}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(g.StateBytes()), "state-bytes")
		})
	}
}

// BenchmarkDecodeForms measures the decode design: the shipped If graph
// (recurrent step for T = 1) against the chunked SSD form for every call
// (T = 1 padded to a chunk) and a step-only graph (what a second, decode-only
// graph would cost). "tiny" is phimamba-tiny-en; "wide" has Phi-Mamba-1.5B's
// layer width (d_model 2048, 32 heads, N = P = 64, chunk 128) with 2 random
// layers.
func BenchmarkDecodeForms(b *testing.B) {
	tc, tw, _ := tinyStudent(b)
	wide := phimamba.Config{Vocab: 8192, VocabRaw: 8192, PadMult: 8, DModel: 2048, Layers: 2, DState: 64, VHeads: 32, QKHeads: 32,
		DConv: 4, ConvBias: true, Expand: 1, ChunkSize: 128, Activation: "identity", Inner: 8192, Eps: 1e-5}
	for _, cfg := range []struct {
		name string
		c    phimamba.Config
		w    map[string]*tensors.Tensor
	}{{"tiny", tc, tw}, {"wide", wide, randomStudent(wide)}} {
		for _, f := range []struct {
			name string
			form decodeForm
		}{{"if", decodeIf}, {"ssd", decodeSSD}, {"step-only", decodeStep}} {
			b.Run(cfg.name+"/"+f.name, func(b *testing.B) {
				s := formSession(b, cfg.c, cfg.w, f.form)
				feeds := []*tensors.Tensor{tensors.FromInt64([]int64{1, 1}, []int64{42})}
				for _, st := range studentStates(cfg.c) {
					feeds = append(feeds, tensors.Zeros(tensors.Float32, st.shape(1, 0)...))
				}
				for b.Loop() {
					if _, err := s.Run(feeds); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// formSession opens a session on the student graph of one decode form.
func formSession(b *testing.B, c phimamba.Config, w map[string]*tensors.Tensor, form decodeForm) *runtime.Session {
	g, err := studentGraph(c, w, false, form)
	if err != nil {
		b.Fatal(err)
	}
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		b.Fatal(err)
	}
	needORT(b)
	env, err := runtime.Open(testRuntime, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { env.Close() })
	ins, outs := []string{InputIDs}, []string{Logits}
	for _, st := range studentStates(c) {
		ins, outs = append(ins, st.Input), append(outs, st.Output)
	}
	s, err := env.NewSession(fmt.Sprint("decode-form-", form), data, ins, outs)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// randomStudent draws small uniform weights for c.
func randomStudent(c phimamba.Config) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	w := map[string]*tensors.Tensor{}
	for name, shape := range c.ParamShapes() {
		x := tensors.Zeros(tensors.Float32, shape...)
		f := x.Float32s()
		scale := 1 / float32(shape[len(shape)-1])
		for i := range f {
			f[i] = (rng.Float32()*2 - 1) * scale
		}
		w[name] = x
	}
	return w
}
