package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/tensors"
)

// The tests export ../shared/reference/phimamba-tiny-en (student) and
// phi-tiny-en (teacher) once per set of options into a temporary folder
// shared by the whole test binary.
var (
	tmpRoot   string
	foldersMu sync.Mutex
	folders   = map[string]string{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if tmpRoot, err = os.MkdirTemp("", "mohawk-deploy-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The Example needs the reference models and ONNX Runtime; it cannot
	// skip itself.
	env, err := runtime.Open(testRuntime, nil)
	if ortErr = err; ortErr == nil {
		env.Close()
	}
	if (shareddata.Root() == "" || ortErr != nil) && strict.On() {
		fmt.Fprintf(os.Stderr, "deploy tests: a failure in strict mode (%s=1 or CI=true): ../shared present: %v, ONNX Runtime: %v\n", strict.Env, shareddata.Root() != "", ortErr)
		os.Exit(1)
	}
	if shareddata.Root() == "" || ortErr != nil {
		fmt.Fprintf(os.Stderr, "deploy tests: skipping the Example (../shared present: %v, ONNX Runtime: %v)\n", shareddata.Root() != "", ortErr)
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			flag.Set("test.skip", "^Example")
		}
	}
	code := m.Run()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// testRuntime is the runtime configuration Generators use in tests; ortErr
// is why it does not open on this machine, or nil.
var (
	testRuntime = runtime.Config{}
	ortErr      error
)

// needORT skips t (fails it in strict mode) when ONNX Runtime does not open.
func needORT(t testing.TB) {
	t.Helper()
	if ortErr != nil {
		strict.Unavailable(t, "needs ONNX Runtime: %v", ortErr)
	}
}

// refModel is a reference model and how to export it.
type refModel struct {
	kind   string
	ids    *tensors.Tensor // the reference input_ids [2, 48]
	logits *tensors.Tensor // the reference implementation's logits on ids
	export func(dir string, o Options) error
	// training builds the training-time graph's logits (no cache, no states).
	training func(g *graphs.Graph, ids *graphs.Value) *graphs.Value
}

// tinyStudent loads phimamba-tiny-en and returns its folder too.
func tinyStudent(t testing.TB) (phimamba.Config, map[string]*tensors.Tensor, string) {
	t.Helper()
	dir := shareddata.Path(t, "reference", "phimamba-tiny-en")
	c, err := phimamba.LoadConfig(dir, 0, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	return c, shareddata.Load(t, filepath.Join(dir, "model.safetensors")), dir
}

func studentRef(t testing.TB) refModel {
	t.Helper()
	c, w, dir := tinyStudent(t)
	ref := shareddata.Tensors(t, "reference", "phimamba-tiny-en", "reference.safetensors")
	return refModel{
		kind: KindStudent, ids: ref["input_ids"], logits: ref["logits"],
		export: func(out string, o Options) error {
			return ExportStudent(out, c, w, filepath.Join(dir, TokenizerFile), o)
		},
		training: func(g *graphs.Graph, ids *graphs.Value) *graphs.Value {
			p := &layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}
			return phimamba.Forward(p, c, ids, phimamba.Options{Form: phimamba.FormSSD}).Logits
		},
	}
}

func teacherRef(t testing.TB) refModel {
	t.Helper()
	dir := shareddata.Path(t, "reference", "phi-tiny-en")
	h, err := hfconfig.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := shareddata.Load(t, dir)
	ref := shareddata.Tensors(t, "reference", "phi-tiny-en", "reference.safetensors")
	return refModel{
		kind: KindTeacher, ids: ref["input_ids"], logits: ref["logits"],
		export: func(out string, o Options) error {
			return ExportTeacher(out, phimamba.NewTeacher(h), w, filepath.Join(dir, TokenizerFile), o)
		},
		training: func(g *graphs.Graph, ids *graphs.Value) *graphs.Value {
			p := &layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}
			return phi.Forward(p, phi.FromHF(h), ids, phi.Options{}).Logits
		},
	}
}

var (
	refsMu sync.Mutex
	refs   = map[string]refModel{}
)

// ref loads the reference student or teacher (once per test binary).
func ref(t testing.TB, kind string) refModel {
	t.Helper()
	refsMu.Lock()
	defer refsMu.Unlock()
	if m, ok := refs[kind]; ok {
		return m
	}
	m := map[string]func(testing.TB) refModel{KindStudent: studentRef, KindTeacher: teacherRef}[kind](t)
	refs[kind] = m
	return m
}

// refModels is the student and the teacher.
func refModels(t testing.TB) []refModel {
	t.Helper()
	return []refModel{ref(t, KindStudent), ref(t, KindTeacher)}
}

// folder returns a deployment folder of m exported with o, exporting it on
// first use.
func (m refModel) folder(t testing.TB, o Options) string {
	t.Helper()
	key := fmt.Sprintf("%s-fp16=%v-opset=%d-ext=%v", m.kind, o.FP16, o.Opset, o.External)
	foldersMu.Lock()
	defer foldersMu.Unlock()
	if dir, ok := folders[key]; ok {
		return dir
	}
	dir := filepath.Join(tmpRoot, key)
	if err := m.export(dir, o); err != nil {
		t.Fatal(err)
	}
	folders[key] = dir
	return dir
}

// trainingLogits runs the training-time graph on the reference ids.
func (m refModel) trainingLogits(t testing.TB) *tensors.Tensor {
	t.Helper()
	g := graphs.New(m.kind + "_training")
	ids := g.Input(InputIDs, tensors.Int64, graphs.S("batch", "seq"))
	if err := graphs.Try(func() { g.Output(Logits, m.training(g, ids)) }); err != nil {
		t.Fatal(err)
	}
	return graphtest.Run(t, g, map[string]*tensors.Tensor{InputIDs: m.ids})[Logits]
}

// open opens a Generator on dir, closed when t ends. Without ONNX Runtime
// t is skipped (see needORT); with it, a folder that does not open is an
// exporter bug and fails t.
func open(t testing.TB, dir string) *Generator {
	t.Helper()
	needORT(t)
	g, err := Open(dir, testRuntime)
	if err != nil {
		t.Fatalf("the exported folder does not open: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// rows splits ids [B, T] into per-sequence rows of positions from..to−1.
func rows(ids *tensors.Tensor, from, to int) [][]int64 {
	b, tl := int(ids.Shape[0]), int(ids.Shape[1])
	out := make([][]int64, b)
	for i := range out {
		out[i] = ids.Int64s()[i*tl+from : i*tl+to]
	}
	return out
}

// position is logits[:, pos, :] of logits [B, T, V], as [B, V].
func position(logits *tensors.Tensor, pos int) *tensors.Tensor {
	b, tl, v := logits.Shape[0], logits.Shape[1], logits.Shape[2]
	out := tensors.Zeros(tensors.Float32, b, v)
	for i := int64(0); i < b; i++ {
		copy(out.Float32s()[i*v:(i+1)*v], logits.Float32s()[(i*tl+int64(pos))*v:])
	}
	return out
}
