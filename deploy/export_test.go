package deploy

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// fp16StudentTolerance bounds how far the student's logits move when its
// float32 checkpoint is stored as float16 (weights rounded to 11 bits, the
// computation in float32); logits of phimamba-tiny-en reach |15|.
const fp16StudentTolerance = 0.02

// TestFullPass runs the exported graphs over the reference input_ids in one
// call with empty states and compares the logits with the training-time
// graph (phimamba.Forward in the SSD form without states; phi.Forward
// without a cache) and with the reference implementation's logits.
func TestFullPass(t *testing.T) {
	for _, m := range refModels(t) {
		train := m.trainingLogits(t)
		for _, tc := range []struct {
			name string
			o    Options
			tol  float64
		}{
			{"fp32", Options{}, 1e-4},
			{"fp32-opset26-external", Options{Opset: 26, External: true}, 1e-4},
			// The teacher's checkpoint is float16: storing it so loses nothing.
			{"fp16", Options{FP16: true}, map[string]float64{KindStudent: fp16StudentTolerance, KindTeacher: 1e-4}[m.kind]},
		} {
			t.Run(m.kind+"/"+tc.name, func(t *testing.T) {
				g := open(t, m.folder(t, tc.o))
				got, err := g.Feed(rows(m.ids, 0, int(m.ids.Shape[1])))
				if err != nil {
					t.Fatal(err)
				}
				dTrain, dRef := shareddata.MaxAbsDiff(got, train), shareddata.MaxAbsDiff(got, m.logits)
				t.Logf("max |Δ logits|: %.3g against the training graph, %.3g against the reference implementation", dTrain, dRef)
				if !(dTrain <= tc.tol) || !(dRef <= tc.tol) {
					t.Errorf("logits differ by %.3g from the training graph and %.3g from the reference (tolerance %g)", dTrain, dRef, tc.tol)
				}
			})
		}
	}
}

// TestSplits feeds the reference input_ids (two different sequences in one
// batch) in two parts — a prefill of k tokens (k = 1 included), then either
// one Step per remaining token or one more multi-token call — and checks
// every position's logits against one full pass. It also checks that each
// sequence run alone gives the same logits as in the batch.
func TestSplits(t *testing.T) {
	for _, m := range refModels(t) {
		g := open(t, m.folder(t, Options{}))
		tl := int(m.ids.Shape[1])
		full, err := g.Feed(rows(m.ids, 0, tl))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			k     int
			steps bool // Step per token after the prefill, else one Feed
			chunk int  // Generator.Chunk (0: default)
		}{
			{k: 1, steps: true}, {k: 2, steps: true}, {k: 17, steps: true}, {k: 47, steps: true},
			{k: 1}, {k: 20}, {k: 48, chunk: 7},
		} {
			t.Run(fmt.Sprintf("%s/k=%d/steps=%v/chunk=%d", m.kind, tc.k, tc.steps, tc.chunk), func(t *testing.T) {
				g.Chunk = tc.chunk
				defer func() { g.Chunk = 0 }()
				worst := 0.0
				check := func(what string, got *tensors.Tensor, pos int) {
					t.Helper()
					d := shareddata.MaxAbsDiff(got, position(full, pos))
					if !(d <= 1e-4) {
						t.Errorf("%s: logits at position %d differ from the full pass by %.3g", what, pos, d)
					}
					worst = max(worst, d)
				}
				defer func() { t.Logf("max |Δ logits| against the full pass: %.3g", worst) }()
				last, err := g.Prefill(rows(m.ids, 0, tc.k))
				if err != nil {
					t.Fatal(err)
				}
				check("prefill", last, tc.k-1)
				switch {
				case tc.k == tl:
				case tc.steps:
					for pos := tc.k; pos < tl; pos++ {
						col := rows(m.ids, pos, pos+1)
						got, err := g.Step([]int64{col[0][0], col[1][0]})
						if err != nil {
							t.Fatal(err)
						}
						check("step", got, pos)
					}
				default:
					rest, err := g.Feed(rows(m.ids, tc.k, tl))
					if err != nil {
						t.Fatal(err)
					}
					for pos := tc.k; pos < tl; pos++ {
						check("second call", position(rest, pos-tc.k), pos)
					}
				}
				if g.Context() != tl {
					t.Errorf("context %d after feeding %d tokens", g.Context(), tl)
				}
			})
		}
		t.Run(m.kind+"/alone", func(t *testing.T) {
			for i := range 2 {
				last, err := g.Prefill(rows(m.ids, 0, tl)[i : i+1])
				if err != nil {
					t.Fatal(err)
				}
				want := position(full, tl-1)
				want = tensors.FromFloat32([]int64{1, want.Shape[1]}, want.Float32s()[int64(i)*want.Shape[1]:int64(i+1)*want.Shape[1]])
				shareddata.WantClose(t, fmt.Sprintf("sequence %d alone vs its batch row", i), last, want, 1e-4)
			}
		})
	}
}

// TestStateSizes checks the carried bytes: fixed for the student, growing
// by one position per token for the teacher.
func TestStateSizes(t *testing.T) {
	for _, m := range refModels(t) {
		t.Run(m.kind, func(t *testing.T) {
			g := open(t, m.folder(t, Options{}))
			sizes := map[int]int64{}
			for _, n := range []int{3, 10} {
				if _, err := g.Prefill(rows(m.ids, 0, n)); err != nil {
					t.Fatal(err)
				}
				sizes[n] = g.StateBytes()
				var want int64
				for _, s := range g.manifest.States {
					want += s.Bytes(2, n)
				}
				if sizes[n] != want {
					t.Errorf("after %d tokens the states hold %d bytes, the manifest implies %d", n, sizes[n], want)
				}
			}
			grows := sizes[10] > sizes[3]
			if grows != (m.kind == KindTeacher) {
				t.Errorf("state bytes %d after 3 tokens and %d after 10; only the teacher's should grow", sizes[3], sizes[10])
			}
		})
	}
}

// TestExportErrors checks that bad requests fail with messages that say
// what to change.
func TestExportErrors(t *testing.T) {
	s := ref(t, KindStudent)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"opset too low", Options{Opset: 17}, "uses ops that need opset 20; opset 17 was asked for"},
		{"opset too high", Options{Opset: 27}, "at most 26"},
		{"negative context", Options{ContextLength: -1}, "context length -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.export(t.TempDir(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	c, w, src := tinyStudent(t)
	partial := maps.Clone(w)
	delete(partial, "backbone.layers.3.mixer.D")
	for _, tc := range []struct {
		name      string
		w         map[string]*tensors.Tensor
		tokenizer string
		want      string
	}{
		{"missing weight", partial, filepath.Join(src, TokenizerFile), "missing weight backbone.layers.3.mixer.D"},
		{"missing tokenizer", w, filepath.Join(src, "nope.json"), "nope.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := ExportStudent(dir, c, tc.w, tc.tokenizer, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := ReadManifest(dir); err == nil {
				t.Errorf("a failed export left a %s behind", ManifestFile)
			}
		})
	}
}
