package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mohawk/data"
	"mohawk/deploy"
	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tensors"
)

// tinyLlamaConfig is the config.json of a small Llama-family teacher over
// the demo tokenizer's 8192 ids: hidden 32, 2 layers, 4 query heads
// sharing 2 key/value heads of 8 (grouped-query attention). modelType
// "llama" adds llama3 rope scaling, "qwen2" has Qwen2's q/k/v biases.
func tinyLlamaConfig(modelType string) map[string]any {
	arch := map[string]string{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}[modelType]
	cfg := map[string]any{
		"architectures": []string{arch}, "model_type": modelType, "vocab_size": 8192, "hidden_size": 32,
		"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
		"tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32",
	}
	if modelType == "llama" {
		cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
			"high_freq_factor": 4.0, "original_max_position_embeddings": 64}
	}
	return cfg
}

// writeLlamaTeacher writes a teacher directory of cfg with random weights
// (graphtest.RandomParams) and the demo tokenizer, and returns it.
func writeLlamaTeacher(t testing.TB, cfg map[string]any, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	c, err := family.ParseTeacher(b, "tiny llama")
	if err != nil {
		t.Fatal(err)
	}
	w := graphtest.RandomParams(rand.New(rand.NewPCG(seed, 3)), c.ParamShapes(), 0.3)
	var named []safetensors.Named
	for _, n := range sortedNames(w) {
		named = append(named, safetensors.Named{Name: n, T: w[n]})
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), named, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(demoDir(t), "teacher", "tokenizer.json"), filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLlamaEndToEnd distils tiny random Llama (GQA, llama3 rope) and
// Qwen2 (q/k/v biases) teachers through Stages 1–3, evaluation and export
// with init mohawk and attention: every stage's loss falls, the exported
// student and teacher (GQA KV cache of 2 heads) give the training graphs'
// logits, and decoding step by step gives the full pass's.
func TestLlamaEndToEnd(t *testing.T) {
	for _, c := range []struct{ modelType, init string }{{"llama", InitMohawk}, {"qwen2", InitAttention}} {
		t.Run(c.modelType+"-"+c.init, func(t *testing.T) {
			dir := writeLlamaTeacher(t, tinyLlamaConfig(c.modelType), 1)
			stagesYAML := "  - {kind: orient, tokens: 1024, lr: 0.003}\n  - {kind: align, tokens: 1024, lr: 0.003}\n" +
				"  - {kind: distill, tokens: 1024, lr: 0.003}\n  - {kind: eval}\n  - {kind: export, teacher: true}"
			cfg, path := tinyConfig(t, stagesYAML, "teacher: {path: "+dir+"}", "student: {chunk_size: 16, init: "+c.init+"}")
			sum, err := Run(context.Background(), cfg, path, RunOptions{Out: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range sum.Stages[:3] {
				if !(r.LastLoss < r.FirstLoss) {
					t.Errorf("%s: loss %g → %g does not fall", r.Kind, r.FirstLoss, r.LastLoss)
				}
				t.Logf("%s: loss %g → %g", r.Kind, r.FirstLoss, r.LastLoss)
			}
			for _, m := range []string{stages.ModelTeacher, stages.ModelStudent} {
				var ppl float64
				if e := sum.Stages[3].Eval; e != nil && e.Models[m] != nil && e.Models[m].Perplexity != nil {
					ppl = e.Models[m].Perplexity.Perplexity
				}
				if !(ppl > 1) {
					t.Errorf("eval: %s perplexity %g", m, ppl)
				}
				t.Logf("eval: %s perplexity %g", m, ppl)
			}
			teacher, err := LoadTeacher(dir)
			if err != nil {
				t.Fatal(err)
			}
			student, err := LoadStudent(filepath.Join(sum.RunDir, "stages", "02-distill", outputDir), teacher.Config.Sizes().Eps)
			if err != nil {
				t.Fatal(err)
			}
			out := sum.Stages[4].Export
			checkExport(t, filepath.Join(out, "student"), studentLogits(t, student), 0)
			checkExport(t, filepath.Join(out, "teacher"), teacherLogits(t, teacher), 2)
		})
	}
}

// llamaIDs are the ids the export checks feed.
var llamaIDs = []int64{5, 9, 2, 44, 7, 1, 300, 8000}

// studentLogits and teacherLogits build a model's training-form logits
// graph (the student's chunked SSD form, the teacher without a cache) and
// return its logits on llamaIDs.
func studentLogits(t *testing.T, s *stages.Student) *tensors.Tensor {
	return runLogits(t, func(g *graphs.Graph, ids *graphs.Value) *graphs.Value {
		return s.Config.Forward(&layers.Frozen{G: g, Tensors: s.Weights, DType: tensors.Float32}, ids, family.StudentOptions{Form: family.FormSSD}).Logits
	})
}

func teacherLogits(t *testing.T, tc *stages.Teacher) *tensors.Tensor {
	return runLogits(t, func(g *graphs.Graph, ids *graphs.Value) *graphs.Value {
		return tc.Config.Forward(&layers.Frozen{G: g, Tensors: tc.Weights, DType: tensors.Float32}, ids, family.TeacherOptions{}).Logits
	})
}

func runLogits(t *testing.T, build func(g *graphs.Graph, ids *graphs.Value) *graphs.Value) *tensors.Tensor {
	t.Helper()
	g := graphs.New("logits")
	if err := graphs.Try(func() {
		g.Output("logits", build(g, g.Input("input_ids", tensors.Int64, graphs.S(1, "seq"))))
	}); err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.Open(runtime.Defaults(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	env := &stages.Env{Ctx: context.Background(), Runtime: stages.ORT(rt), Dir: t.TempDir()}
	out, err := env.RunGraph(g, map[string]*tensors.Tensor{"input_ids": tensors.FromInt64([]int64{1, int64(len(llamaIDs))}, llamaIDs)})
	if err != nil {
		t.Fatal(err)
	}
	return out["logits"]
}

// checkExport opens a deployment folder: a full pass over llamaIDs gives
// want (the training graph's logits), prefill then one token at a time
// gives the full pass's last logits, and a teacher's KV cache has kvHeads
// heads (0: a student, no cache).
func checkExport(t *testing.T, dir string, want *tensors.Tensor, kvHeads int64) {
	t.Helper()
	g, err := deploy.Open(dir, runtime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	full, err := g.Feed([][]int64{llamaIDs})
	if err != nil {
		t.Fatal(err)
	}
	shareddata.WantClose(t, dir+": export vs training graph", full, want, 1e-4)
	g.Reset()
	if _, err := g.Prefill([][]int64{llamaIDs[:3]}); err != nil {
		t.Fatal(err)
	}
	var last *tensors.Tensor
	for _, id := range llamaIDs[3:] {
		if last, err = g.Step([]int64{id}); err != nil {
			t.Fatal(err)
		}
	}
	v := full.Shape[2]
	n := int64(len(llamaIDs))
	shareddata.WantClose(t, dir+": step decode vs full pass", last, tensors.FromFloat32([]int64{1, v}, full.Float32s()[(n-1)*v:]), 1e-4)
	m, err := deploy.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range m.States {
		if kvHeads > 0 && (!strings.HasPrefix(s.Input, "past_key_values.") || s.Shape[1] != kvHeads || s.SeqAxis != 2) {
			t.Errorf("%s: teacher state %s %v, want past_key_values.i.key/value of %d heads", dir, s.Input, s.Shape, kvHeads)
		}
	}
	if kvHeads > 0 && !slices.ContainsFunc(m.States, func(s deploy.StateSpec) bool { return s.Input == "past_key_values.1.value" }) {
		t.Errorf("%s: no past_key_values.1.value among %v", dir, m.States)
	}
}

// TestValidateLlamaTeachers: pipeline validate names what the Llama
// family cannot run, by key, before any heavy work (no weights are read
// for the config's problems), and accepts the tiny teacher as it is.
func TestValidateLlamaTeachers(t *testing.T) {
	for _, c := range []struct {
		name    string
		edit    func(cfg map[string]any)
		student string
		want    []string // "" nothing
	}{
		{name: "valid", edit: func(map[string]any) {}},
		{name: "unknown rope_type", edit: func(cfg map[string]any) {
			cfg["rope_scaling"] = map[string]any{"rope_type": "dynamic", "factor": 2.0}
		}, want: []string{"rope_type", `"dynamic"`, "supported"}},
		{name: "llama3 without its band", edit: func(cfg map[string]any) {
			cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0}
		}, want: []string{"high_freq_factor", "original_max_position_embeddings"}},
		{name: "sliding window on some layers only", edit: func(cfg map[string]any) {
			cfg["model_type"], cfg["architectures"] = "qwen2", []string{"Qwen2ForCausalLM"}
			cfg["use_sliding_window"], cfg["sliding_window"], cfg["max_window_layers"] = true, 16, 1
			delete(cfg, "rope_scaling")
		}, want: []string{"max_window_layers", "sliding window on only some layers"}},
		{name: "gelu MLP", edit: func(cfg map[string]any) { cfg["hidden_act"] = "gelu" }, want: []string{"hidden_act", "SwiGLU"}},
		{name: "unsupported architecture", edit: func(cfg map[string]any) {
			cfg["architectures"], cfg["model_type"] = []string{"GPT2LMHeadModel"}, "gpt2"
		}, want: []string{"GPT2LMHeadModel", "LlamaForCausalLM", "PhiForCausalLM"}},
		{name: "hybrid student", edit: func(map[string]any) {}, student: "attention_layers: [1]"},
		{name: "student of other heads for attention init", edit: func(map[string]any) {}, student: "init: attention, heads: 2",
			want: []string{"attention init needs n_v_heads = n_qk_heads = the teacher's 4 heads"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyLlamaConfig("llama")
			dir := writeLlamaTeacher(t, cfg, 1)
			c.edit(cfg)
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			student := "student: {chunk_size: 16}"
			if c.student != "" {
				student = "student: {chunk_size: 16, " + c.student + "}"
			}
			cfgRun, path := tinyConfig(t, "  - {kind: distill, tokens: 256}", "teacher: {path: "+dir+"}", student)
			err = Validate(cfgRun, path)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not name %s", err, w)
				}
			}
		})
	}
}

// TestDemoLlamaConfig: the Llama example validates as shipped, and its
// teacher is a grouped-query Llama the registry reads as the llama family.
func TestDemoLlamaConfig(t *testing.T) {
	cfg, err := Load("../configs/demo-llama.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg, "configs/demo-llama.yaml"); err != nil {
		t.Fatal(err)
	}
	teacher, err := LoadTeacher(cfg.Resolve(cfg.Teacher.Path))
	if err != nil {
		t.Fatal(err)
	}
	if s := teacher.Config.Sizes(); teacher.Config.Family() != "llama" || s.Heads != 4 || s.KVHeads != 2 {
		t.Errorf("demo-llama teacher: family %s, sizes %+v; want llama with 4 query and 2 key/value heads", teacher.Config.Family(), s)
	}
}

// TestLlama3EndOfText: a run whose tokenizer is Llama-3-style (no
// <|endoftext|>; tokenizer_config.json names <|end_of_text|>) validates,
// and every document of its streams ends with that token's id, 8191 in
// bench/torch/llama-tiny-en/tokens.json (written by llama_tokens.js with
// Hugging Face's tokenizers).
func TestLlama3EndOfText(t *testing.T) {
	if testing.Short() {
		t.Skip("tokenizes the demo text")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "teacher")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for dst, src := range map[string]string{
		"config.json":       "../testdata/demo-llama/teacher/config.json",
		"model.safetensors": "../testdata/demo-llama/teacher/model.safetensors",
		"tokenizer.json":    "../bench/torch/llama-tiny-en/tokenizer.json",
	} {
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Load("../configs/demo-llama.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Teacher.Path = dir
	cfg.Data.CacheDir = filepath.Join(t.TempDir(), "cache")
	if err := Validate(cfg, "demo-llama with a Llama-3 tokenizer"); err == nil || !strings.Contains(err.Error(), "has no special token <|endoftext|>") {
		t.Fatalf("without tokenizer_config.json: %v; want the missing <|endoftext|> named", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg, "demo-llama with a Llama-3 tokenizer"); err != nil {
		t.Fatal(err)
	}
	w, err := prepare(context.Background(), cfg, io.Discard, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	const eos = 8191
	for _, s := range []*data.Stream{w.train, w.val} {
		docs := s.Docs()
		if s.EOS() != eos || len(docs) < 2 {
			t.Fatalf("%s: eos %d over %d documents; want %d", s.Name(), s.EOS(), len(docs)-1, eos)
		}
		for i := 1; i < len(docs); i++ {
			if got := s.At(docs[i] - 1); got != eos {
				t.Fatalf("%s: document %d ends with %d, want %d", s.Name(), i-1, got, eos)
			}
		}
	}
}

// TestLlamaReferencePerplexity: the evaluation path (the family registry's
// teacher, the scoring graph, Scorer.Perplexity) gives, on each Llama-family
// reference's ids, the perplexity exp(loss) of transformers' own mean
// next-token loss stored beside them (bench/torch/make_llama_refs.py), to
// 0.05%.
func TestLlamaReferencePerplexity(t *testing.T) {
	dirs, err := filepath.Glob("../graphs/models/llama/testdata/*/reference.safetensors")
	if err != nil || len(dirs) < 5 {
		t.Fatalf("Llama references: %v, %v; want the five of graphs/models/llama/testdata", dirs, err)
	}
	for _, ref := range dirs {
		dir := filepath.Dir(ref)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			f, err := safetensors.Open(ref)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ids, err := f.Tensor("input_ids")
			if err != nil {
				t.Fatal(err)
			}
			loss, err := f.Tensor("loss")
			if err != nil {
				t.Fatal(err)
			}
			env, model, _, err := modelEnv(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			sc, done, err := openScorer(env, model, runtime.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer done()
			r, err := sc.Perplexity(ids, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := math.Exp(float64(loss.Float32s()[0]))
			if d := math.Abs(r.Perplexity/want - 1); !(d <= 5e-4) {
				t.Errorf("perplexity %.6f over %d tokens, transformers' %.6f: relative difference %.2g, want within 0.05%%", r.Perplexity, r.Tokens, want, d)
			}
		})
	}
}
