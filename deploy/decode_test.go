package deploy

import (
	"fmt"
	"path/filepath"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/tensors"
)

// hostDecode is the decode loop with every state copied to the host and
// back on each call (plain Session.Run, the Generator's path before
// resident states): the reference the resident paths must equal.
type hostDecode struct {
	sess   *runtime.Session
	states []*tensors.Tensor
	width  int
}

func newHostDecode(t *testing.T, dir string, batch int) *hostDecode {
	t.Helper()
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := runtime.Open(testRuntime, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	ins, outs := []string{InputIDs}, []string{Logits}
	h := &hostDecode{width: int(m.NextTokenWidth)}
	for _, s := range m.States {
		ins, outs = append(ins, s.Input), append(outs, s.Output)
		dt, _ := tensors.ParseDType(s.DType)
		h.states = append(h.states, tensors.Zeros(dt, s.shape(batch, 0)...))
	}
	if h.sess, err = env.NewSessionFromFile("host-decode", filepath.Join(dir, ModelFile), ins, outs); err != nil {
		t.Fatal(err)
	}
	return h
}

// feed runs ids [batch][T] and returns the logits after each row's last
// token and each row's greedy pick.
func (h *hostDecode) feed(t *testing.T, ids [][]int64) (*tensors.Tensor, []int64) {
	t.Helper()
	b, n := len(ids), len(ids[0])
	var flat []int64
	for _, row := range ids {
		flat = append(flat, row...)
	}
	out, err := h.sess.Run(append([]*tensors.Tensor{tensors.FromInt64([]int64{int64(b), int64(n)}, flat)}, h.states...))
	if err != nil {
		t.Fatal(err)
	}
	h.states = out[1:]
	last := position(out[0], n-1)
	v := last.Shape[1]
	picks := make([]int64, b)
	for r := range picks {
		picks[r] = greedyPick(last.Float32s()[int64(r)*v : int64(r)*v+int64(h.width)])
	}
	return last, picks
}

// TestResidentDecode decodes greedily with states kept resident — Step
// (logits fetched) and StepGreedy (the graph's next_token fetched) — and
// checks both against the host-copy reference, token for token and logits
// within 1e-5, for the pure and hybrid students and the teacher. Each
// decode step must move only the token ids in and the logits (Step) or B
// int64 tokens (StepGreedy) out: the runtime's host-traffic accounting
// sees no state bytes. A folder from before next_token (manifest without
// it) still decodes, picking on the host.
func TestResidentDecode(t *testing.T) {
	const prompt, steps = 24, 12
	models := map[string]refModel{KindStudent: ref(t, KindStudent), "hybrid": hybridRef(t), KindTeacher: ref(t, KindTeacher)}
	for _, kind := range []string{KindStudent, "hybrid", KindTeacher} {
		t.Run(kind, func(t *testing.T) {
			m := models[kind]
			dir := m.folder(t, Options{})
			batch := int(m.ids.Shape[0])
			ids := rows(m.ids, 0, prompt)
			gl, gg := open(t, dir), open(t, dir)
			if !gg.GraphPicksGreedy() {
				t.Fatal("a new export's Generator does not take the next token from the graph")
			}
			h := newHostDecode(t, dir, batch)
			want, picks := h.feed(t, ids)
			for _, g := range []*Generator{gl, gg} {
				got, err := g.Prefill(ids)
				if err != nil {
					t.Fatal(err)
				}
				shareddata.WantClose(t, kind+" prefill logits, resident vs host states", got, want, 1e-5)
			}
			next := picks
			v := int64(gl.VocabSize())
			worst := 0.0
			for step := range steps {
				in0, out0 := gl.HostTraffic()
				logits, err := gl.Step(next)
				if err != nil {
					t.Fatal(err)
				}
				in1, out1 := gl.HostTraffic()
				if in1-in0 != int64(batch)*8 || out1-out0 != int64(batch)*v*4 {
					t.Errorf("step %d: Step moved %d bytes in and %d out; want the %d token bytes in and the %d logits bytes out, no state bytes",
						step, in1-in0, out1-out0, batch*8, int64(batch)*v*4)
				}
				in0, out0 = gg.HostTraffic()
				greedy, err := gg.StepGreedy(next)
				if err != nil {
					t.Fatal(err)
				}
				in1, out1 = gg.HostTraffic()
				if in1-in0 != int64(batch)*8 || out1-out0 != int64(batch)*8 {
					t.Errorf("step %d: StepGreedy moved %d bytes in and %d out; want the %d token bytes each way, no logits or state bytes",
						step, in1-in0, out1-out0, batch*8)
				}
				ref, refPicks := h.feed(t, column(next))
				worst = max(worst, shareddata.MaxAbsDiff(logits, ref))
				if fmt.Sprint(greedy) != fmt.Sprint(refPicks) {
					t.Fatalf("step %d: StepGreedy picks %v, the host-state decode %v", step, greedy, refPicks)
				}
				next = refPicks
			}
			t.Logf("%s: %d greedy steps equal token for token; max |Δ logits| resident vs host states %.3g", kind, steps, worst)
			if !(worst <= 1e-5) {
				t.Errorf("resident decode logits differ from the host-state decode by %.3g", worst)
			}
		})
	}
}

// TestStepGreedyWithoutNextToken opens a folder whose manifest predates
// next_token: StepGreedy then fetches the logits and picks on the host,
// giving the same tokens as the graph's pick.
func TestStepGreedyWithoutNextToken(t *testing.T) {
	m := ref(t, KindStudent)
	src := m.folder(t, Options{})
	dir := copyFolder(t, src)
	shareddata.EditJSON(t, filepath.Join(dir, ManifestFile), func(j map[string]any) {
		delete(j, "next_token")
		delete(j, "next_token_width")
	})
	old, cur := open(t, dir), open(t, src)
	if old.GraphPicksGreedy() {
		t.Fatal("a folder without next_token claims the graph picks")
	}
	ids := rows(m.ids, 0, 16)
	batch, v := int64(len(ids)), int64(old.VocabSize())
	next := make([]int64, batch)
	for _, g := range []*Generator{old, cur} {
		if _, err := g.Prefill(ids); err != nil {
			t.Fatal(err)
		}
	}
	for step := range 6 {
		in0, out0 := old.HostTraffic()
		a, err := old.StepGreedy(next)
		if err != nil {
			t.Fatal(err)
		}
		if in1, out1 := old.HostTraffic(); in1-in0 != batch*8 || out1-out0 != batch*v*4 {
			t.Errorf("step %d: moved %d bytes in and %d out; want %d and the %d logits bytes", step, in1-in0, out1-out0, batch*8, batch*v*4)
		}
		b, err := cur.StepGreedy(next)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("step %d: host pick %v, graph pick %v", step, a, b)
		}
		next = a
	}
}
