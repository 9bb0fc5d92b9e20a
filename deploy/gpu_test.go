package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/runtime"
)

// TestCUDA runs the folders the CPU tests check on the CUDA provider,
// changing nothing but runtime.Config.Provider, and compares the logits of
// a full pass and of prefill + steps with the CPU's, and that a greedy step
// moves only its token ids across PCIe. Opt-in: set
// MOHAWK_TEST_CUDA=1 on a machine with CUDA 13 and the provider libraries
// beside the ORT library (../shared/docs/GPU.md).
func TestCUDA(t *testing.T) {
	if os.Getenv("MOHAWK_TEST_CUDA") != "1" {
		t.Skip("set MOHAWK_TEST_CUDA=1 on a machine with CUDA 13 and the provider libraries beside the ORT library")
	}
	rc := testRuntime
	rc.Provider = runtime.ProviderCUDA
	for _, m := range refModels(t) {
		t.Run(m.kind, func(t *testing.T) {
			dir := m.folder(t, Options{})
			tl := int(m.ids.Shape[1])
			want, err := open(t, dir).Feed(rows(m.ids, 0, tl))
			if err != nil {
				t.Fatal(err)
			}
			g, err := Open(dir, rc)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if g.Provider() != runtime.ProviderCUDA {
				t.Fatalf("runs on %s, want cuda", g.Provider())
			}
			got, err := g.Feed(rows(m.ids, 0, tl))
			if err != nil {
				t.Fatal(err)
			}
			// cuBLAS sums in another order than the CPU (TF32 stays off).
			const tol = 1e-3
			shareddata.WantClose(t, "full pass on CUDA vs the CPU", got, want, tol)
			last, err := g.Prefill(rows(m.ids, 0, 17))
			if err != nil {
				t.Fatal(err)
			}
			for pos := 17; ; pos++ {
				if d := shareddata.MaxAbsDiff(last, position(want, pos-1)); !(d <= tol) {
					t.Errorf("CUDA logits at position %d differ from the CPU's full pass by %.3g", pos-1, d)
				}
				if pos == tl {
					break
				}
				col := rows(m.ids, pos, pos+1)
				if last, err = g.Step([]int64{col[0][0], col[1][0]}); err != nil {
					t.Fatal(err)
				}
			}
			// Greedy steps on the GPU cross PCIe with 8 bytes per sequence
			// each way: the states stay in device memory.
			next := []int64{1, 2}
			for step := range 4 {
				in0, out0 := g.HostTraffic()
				if next, err = g.StepGreedy(next); err != nil {
					t.Fatal(err)
				}
				if in1, out1 := g.HostTraffic(); in1-in0 != 16 || out1-out0 != 16 {
					t.Errorf("greedy step %d on CUDA moved %d bytes in and %d out, want 16 and 16", step, in1-in0, out1-out0)
				}
			}
		})
	}
}

// TestBenchReport runs BenchGenerate at full size and writes bench.md and
// bench.png. Opt-in: MOHAWK_BENCH_OUT names the output folder;
// MOHAWK_BENCH_PROVIDER ("cpu" or "cuda", default cpu) and
// MOHAWK_BENCH_CONTEXTS (comma-separated, default 2048,16384) adjust
// it.
func TestBenchReport(t *testing.T) {
	out := os.Getenv("MOHAWK_BENCH_OUT")
	if out == "" {
		t.Skip("set MOHAWK_BENCH_OUT to a folder to run the full-size generation benchmark")
	}
	o := BenchOptions{
		Student: ref(t, KindStudent).folder(t, Options{}), Teacher: ref(t, KindTeacher).folder(t, Options{}),
		Runtime: testRuntime, Seed: 1, Progress: os.Stderr,
	}
	o.Runtime.Provider = os.Getenv("MOHAWK_BENCH_PROVIDER")
	if s := os.Getenv("MOHAWK_BENCH_CONTEXTS"); s != "" {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("MOHAWK_BENCH_CONTEXTS: %v", err)
			}
			o.Contexts = append(o.Contexts, n)
		}
	}
	res, err := BenchGenerate(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteBenchTable(filepath.Join(out, "bench.md")); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteBenchPlot(filepath.Join(out, "bench.png")); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "bench.md"))
	t.Logf("\n%s", md)
}
