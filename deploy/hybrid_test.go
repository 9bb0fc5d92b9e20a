package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"mohawk/export/onnxpb"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
	"mohawk/tensors"
)

// hybridRef is phimamba-tiny-en with layers 1 and 4 replaced by
// phi-tiny-en's attention (both models have the same width).
func hybridRef(t *testing.T) refModel {
	t.Helper()
	c, sw, dir := tinyStudent(t)
	tdir := shareddata.Path(t, "reference", "phi-tiny-en")
	h, err := hfconfig.Load(tdir)
	if err != nil {
		t.Fatal(err)
	}
	tc, tw := phi.FromHF(h), shareddata.Load(t, tdir)
	c.Attn = phimamba.Attention{Layers: []int{1, 4}, Heads: tc.Heads, RotaryDim: tc.RotaryDim, RopeTheta: tc.RopeTheta}
	w := map[string]*tensors.Tensor{}
	for name := range c.ParamShapes() {
		if x, ok := sw[name]; ok {
			w[name] = x
			continue
		}
		i, n := 1, strings.TrimPrefix(name, phimamba.AttentionName(1, ""))
		if strings.HasPrefix(name, phimamba.LayerPrefix(4)+".") {
			i, n = 4, strings.TrimPrefix(name, phimamba.AttentionName(4, ""))
		}
		w[name] = tw[phimamba.TeacherAttentionName(i, n)].AsFloat32()
	}
	ids := shareddata.Tensors(t, "reference", "phimamba-tiny-en", "reference.safetensors")["input_ids"]
	return refModel{
		kind: "hybrid", ids: ids,
		export: func(out string, o Options) error {
			return ExportStudent(out, c, w, filepath.Join(dir, TokenizerFile), o)
		},
		training: func(g *graphs.Graph, ids *graphs.Value) *graphs.Value {
			p := &layers.Frozen{G: g, Tensors: w, DType: tensors.Float32}
			return phimamba.Forward(p, c, ids, phimamba.Options{Form: phimamba.FormSSD}).Logits
		},
	}
}

// TestHybridExport exports a hybrid student as one graph whose attention
// layers carry a KV cache and whose mixer layers carry conv and recurrent
// states, checks the names and genai/mohawk configs, and compares a full
// pass, prefill + token-by-token decode and chunked prefill with the
// training graph's logits.
func TestHybridExport(t *testing.T) {
	m := hybridRef(t)
	dir := t.TempDir()
	if err := m.export(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	mf, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range mf.States {
		names = append(names, fmt.Sprintf("%s→%s/%d", s.Input, s.Output, s.SeqAxis))
	}
	for _, want := range []string{"past_key_values.0.conv_state→present.0.conv_state/-1", "past_key_values.0.recurrent_state→present.0.recurrent_state/-1",
		"past_key_values.1.key→present.1.key/2", "past_key_values.1.value→present.1.value/2", "past_key_values.2.conv_state→present.2.conv_state/-1",
		"past_key_values.4.key→present.4.key/2", "past_key_values.5.recurrent_state→present.5.recurrent_state/-1"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("manifest states %v lack %s", names, want)
		}
	}
	if len(names) != 12 {
		t.Errorf("%d states, want 2 per layer: %v", len(names), names)
	}
	var gc genaiConfig
	data, err := os.ReadFile(filepath.Join(dir, GenAIConfigFile))
	if err != nil || json.Unmarshal(data, &gc) != nil {
		t.Fatalf("genai_config.json: %v", err)
	}
	if d := gc.Model.Decoder; d.NumKeyValueHeads != 8 || d.HeadSize != 32 || d.NumHiddenLayers != 6 {
		t.Errorf("genai decoder %+v, want the attention layers' 8 heads of 32", d)
	}
	cfg, err := phimamba.ParseConfig(readFile(t, filepath.Join(dir, ConfigFile)), ConfigFile, 0, 1e-5)
	if err != nil || fmt.Sprint(cfg.Attn.Layers) != "[1 4]" {
		t.Errorf("config.json reads back with attention layers %v (%v)", cfg.Attn.Layers, err)
	}

	train := m.trainingLogits(t)
	g := open(t, dir)
	tl := int(m.ids.Shape[1])
	full, err := g.Feed(rows(m.ids, 0, tl))
	if err != nil {
		t.Fatal(err)
	}
	shareddata.WantClose(t, "hybrid export full pass vs training graph", full, train, 1e-4)
	for _, tc := range []struct{ k, chunk int }{{1, 0}, {17, 0}, {40, 7}} {
		t.Run(fmt.Sprintf("prefill %d chunk %d", tc.k, tc.chunk), func(t *testing.T) {
			g.Chunk = tc.chunk
			defer func() { g.Chunk = 0 }()
			worst := 0.0
			last, err := g.Prefill(rows(m.ids, 0, tc.k))
			if err != nil {
				t.Fatal(err)
			}
			worst = max(worst, shareddata.MaxAbsDiff(last, position(full, tc.k-1)))
			for pos := tc.k; pos < tl; pos++ {
				col := rows(m.ids, pos, pos+1)
				got, err := g.Step([]int64{col[0][0], col[1][0]})
				if err != nil {
					t.Fatal(err)
				}
				worst = max(worst, shareddata.MaxAbsDiff(got, position(full, pos)))
			}
			t.Logf("prefill %d (chunk %d) then decode: max |Δ logits| against the full pass %.3g", tc.k, tc.chunk, worst)
			if !(worst <= 1e-4) {
				t.Errorf("decode differs from the full pass by %.3g", worst)
			}
		})
	}
	// Rows of different lengths cannot share a KV cache without a mask.
	_, err = g.Prefill([][]int64{{1, 2, 3}, {4, 5}})
	if err == nil || !strings.Contains(err.Error(), "KV cache") {
		t.Errorf("ragged prefill of a hybrid: error %v, want one about the KV cache", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHybridStepAppendsInPlace checks that each KV cache the hybrid's
// decode step returns is the Concat that appends the new position, so ONNX
// Runtime writes it straight into the If's output. An op after it (the
// Reshape the step branch once ended with) copies the whole cache again on
// every step.
func TestHybridStepAppendsInPlace(t *testing.T) {
	dir := hybridRef(t).folder(t, Options{})
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	ops := stepOutputOps(t, dir)
	kv := 0
	for j, s := range m.States {
		if s.SeqAxis < 0 {
			continue
		}
		kv++
		if ops[1+j] != "Concat" {
			t.Errorf("the decode step's %s comes from a %s, want the Concat that appends to the cache", s.Output, ops[1+j])
		}
	}
	if kv != 4 {
		t.Errorf("%d KV states, want 4 (two attention layers)", kv)
	}
}

// stepOutputOps lists, for each output of the If's decode-step branch in
// dir's model.onnx, the op type of the node that produces it.
func stepOutputOps(t *testing.T, dir string) []string {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(readFile(t, filepath.Join(dir, ModelFile)), &mp); err != nil {
		t.Fatal(err)
	}
	for _, n := range mp.Graph.Node {
		if n.OpType != "If" {
			continue
		}
		for _, a := range n.Attribute {
			if a.Name != "then_branch" {
				continue
			}
			producer := map[string]string{}
			for _, bn := range a.G.Node {
				for _, o := range bn.Output {
					producer[o] = bn.OpType
				}
			}
			var ops []string
			for _, o := range a.G.Output {
				ops = append(ops, producer[o.Name])
			}
			return ops
		}
	}
	t.Fatalf("%s has no If with a then_branch", dir)
	return nil
}
