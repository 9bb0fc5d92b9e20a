package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/stages"
	"mohawk/tokenizer"
)

// zeroShotCase is one task of TestZeroShotReference: two hand-made rows in
// the dataset's layout and, written out by hand from lm-evaluation-harness's
// task definitions, the (context, continuation) requests of each row, the
// gold choice and the strings acc_norm divides by.
type zeroShotCase struct {
	task  string
	lines []string
	rows  []refRow
}

type refRow struct {
	requests [][2]string // context, continuation
	gold     int
	norm     []string // acc_norm's length strings (the choices; the contexts for winogrande)
}

var zeroShotCases = []zeroShotCase{
	{"winogrande", []string{
		`{"sentence": "Nina gave her old bike to Paul because _ had outgrown it.", "option1": "Nina", "option2": "Paul", "answer": "1"}`,
		`{"sentence": "The soup was colder than the tea, so _ went back on the stove.", "option1": "the soup", "option2": "the tea", "answer": "1"}`,
	}, []refRow{
		{[][2]string{{"Nina gave her old bike to Paul because Nina", " had outgrown it."}, {"Nina gave her old bike to Paul because Paul", " had outgrown it."}}, 0,
			[]string{"Nina gave her old bike to Paul because Nina", "Nina gave her old bike to Paul because Paul"}},
		{[][2]string{{"The soup was colder than the tea, so the soup", " went back on the stove."}, {"The soup was colder than the tea, so the tea", " went back on the stove."}}, 0,
			[]string{"The soup was colder than the tea, so the soup", "The soup was colder than the tea, so the tea"}},
	}},
	{"arc_easy", []string{
		`{"id": "r1", "question": "Which of these gives off its own light?", "choices": {"text": ["the sun", "a rock", "a spoon"], "label": ["A", "B", "C"]}, "answerKey": "A"}`,
		`{"id": "r2", "question": "What does a thermometer measure?", "choices": {"text": ["weight", "temperature", "length", "speed"], "label": ["1", "2", "3", "4"]}, "answerKey": "2"}`,
	}, []refRow{
		{[][2]string{{"Question: Which of these gives off its own light?\nAnswer:", " the sun"}, {"Question: Which of these gives off its own light?\nAnswer:", " a rock"},
			{"Question: Which of these gives off its own light?\nAnswer:", " a spoon"}}, 0, []string{"the sun", "a rock", "a spoon"}},
		{[][2]string{{"Question: What does a thermometer measure?\nAnswer:", " weight"}, {"Question: What does a thermometer measure?\nAnswer:", " temperature"},
			{"Question: What does a thermometer measure?\nAnswer:", " length"}, {"Question: What does a thermometer measure?\nAnswer:", " speed"}}, 1,
			[]string{"weight", "temperature", "length", "speed"}},
	}},
	{"arc_challenge", []string{
		`{"id": "r3", "question": "Why do puddles shrink on a warm afternoon?", "choices": {"text": ["The water evaporates.", "The water freezes."], "label": ["A", "B"]}, "answerKey": "A"}`,
		`{"id": "r4", "question": "Which tool is best for seeing very small cells?", "choices": {"text": ["a telescope", "a microscope", "a ruler"], "label": ["A", "B", "C"]}, "answerKey": "B"}`,
	}, []refRow{
		{[][2]string{{"Question: Why do puddles shrink on a warm afternoon?\nAnswer:", " The water evaporates."}, {"Question: Why do puddles shrink on a warm afternoon?\nAnswer:", " The water freezes."}}, 0,
			[]string{"The water evaporates.", "The water freezes."}},
		{[][2]string{{"Question: Which tool is best for seeing very small cells?\nAnswer:", " a telescope"}, {"Question: Which tool is best for seeing very small cells?\nAnswer:", " a microscope"},
			{"Question: Which tool is best for seeing very small cells?\nAnswer:", " a ruler"}}, 1, []string{"a telescope", "a microscope", "a ruler"}},
	}},
	{"piqa", []string{
		`{"goal": "Warm up cold hands.", "sol1": "Rub them together quickly.", "sol2": "Hold them under cold water.", "label": 0}`,
		`{"goal": "Stop a door from slamming.", "sol1": "Paint the door red.", "sol2": "Put a rubber wedge under it.", "label": 1}`,
	}, []refRow{
		{[][2]string{{"Question: Warm up cold hands.\nAnswer:", " Rub them together quickly."}, {"Question: Warm up cold hands.\nAnswer:", " Hold them under cold water."}}, 0,
			[]string{"Rub them together quickly.", "Hold them under cold water."}},
		{[][2]string{{"Question: Stop a door from slamming.\nAnswer:", " Paint the door red."}, {"Question: Stop a door from slamming.\nAnswer:", " Put a rubber wedge under it."}}, 1,
			[]string{"Paint the door red.", "Put a rubber wedge under it."}},
	}},
	{"hellaswag", []string{
		`{"activity_label": "Washing dishes", "ctx_a": "A man fills the sink with warm water.", "ctx_b": "he", "endings": ["adds soap and scrubs a plate.", "climbs onto the roof."], "label": "0"}`,
		`{"activity_label": "Food and Entertaining", "ctx_a": "[header] How to slice bread [title] Use a sharp knife.", "ctx_b": "[step] Hold THE loaf steady.", "endings": ["[substeps] Cut  with a gentle sawing motion.", "Throw the loaf at the wall."], "label": 0}`,
	}, []refRow{
		{[][2]string{{"Washing dishes: A man fills the sink with warm water. He", " adds soap and scrubs a plate."}, {"Washing dishes: A man fills the sink with warm water. He", " climbs onto the roof."}}, 0,
			[]string{"adds soap and scrubs a plate.", "climbs onto the roof."}},
		{[][2]string{{"Food and Entertaining: How to slice bread. Use a sharp knife. hold the loaf steady.", "  Cut with a gentle sawing motion."},
			{"Food and Entertaining: How to slice bread. Use a sharp knife. hold the loaf steady.", " Throw the loaf at the wall."}}, 0,
			[]string{" Cut with a gentle sawing motion.", "Throw the loaf at the wall."}},
	}},
	{"lambada_openai", []string{
		`{"text": "he opened the old wooden box and inside he found a small brass key"}`,
		`{"text": "the children ran across the field to fly their  kite"}`,
		`{"text": "hello"}`,
	}, []refRow{
		{[][2]string{{"he opened the old wooden box and inside he found a small brass", " key"}}, 0, nil},
		{[][2]string{{"the children ran across the field to fly their ", " kite"}}, 0, nil},
		{[][2]string{{"", " hello"}}, 0, nil},
	}},
}

// TestZeroShotReference scores hand-made rows of every task format with
// phi-tiny-en through ZeroShot (the files read, the requests built, the
// batched scorer) and checks acc, acc_norm and the LAMBADA perplexity
// against values derived here from requests written out by hand, scored by
// handScorer (the teacher's full-sequence logits, a float64 log-softmax),
// with argmax picked by hand.
func TestZeroShotReference(t *testing.T) {
	model := shareddata.Path(t, "reference", "phi-tiny-en")
	dir := t.TempDir()
	var specs []Task
	for _, c := range zeroShotCases {
		p := filepath.Join(dir, c.task+".jsonl")
		if err := os.WriteFile(p, []byte(strings.Join(c.lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		specs = append(specs, Task{Kind: c.task, Path: p})
	}
	got, err := ZeroShot(context.Background(), ZeroShotOptions{Model: model, Tasks: specs, Runtime: runtime.Defaults()})
	if err != nil {
		t.Fatal(err)
	}

	env, tok := referenceEvalEnv(t)
	hand := newHandScorer(t, env, tok)
	for _, c := range zeroShotCases {
		r := got[c.task]
		if r == nil || r.Task != c.task || r.Examples != len(c.rows) {
			t.Fatalf("%s: result %+v", c.task, r)
		}
		var acc, accNorm, nll float64
		for _, row := range c.rows {
			lls := make([]float64, len(row.requests))
			greedy := true
			for i, q := range row.requests {
				lls[i], greedy = hand.continuation(q[0], q[1])
			}
			if c.task == "lambada_openai" {
				nll -= lls[0]
				if greedy {
					acc++
				}
				continue
			}
			best, bestNorm := 0, 0
			for i := range lls {
				if lls[i] > lls[best] {
					best = i
				}
				if lls[i]/float64(utf8.RuneCountInString(row.norm[i])) > lls[bestNorm]/float64(utf8.RuneCountInString(row.norm[bestNorm])) {
					bestNorm = i
				}
			}
			if best == row.gold {
				acc++
			}
			if bestNorm == row.gold {
				accNorm++
			}
			t.Logf("%s: log-likelihoods %.4f, gold %d", c.task, lls, row.gold)
		}
		n := float64(len(c.rows))
		if r.Acc != acc/n {
			t.Errorf("%s: acc %v, want %v", c.task, r.Acc, acc/n)
		}
		if c.task == "lambada_openai" {
			want := math.Exp(nll / n)
			if r.Perplexity == nil || !(math.Abs(*r.Perplexity-want) <= 1e-3*want) {
				t.Errorf("%s: perplexity %s, want %v", c.task, metricsLine(r), want)
			}
			continue
		}
		if r.AccNorm == nil || *r.AccNorm != accNorm/n {
			t.Errorf("%s: %s, want acc_norm %v", c.task, metricsLine(r), accNorm/n)
		}
	}
}

// TestZeroShotTable checks the paper-layout table on made-up results: the
// paper's metric per column, percentages, the average only when all six
// tasks are there, and a task found by its benchmark whatever its label.
func TestZeroShotTable(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	full := map[string]*stages.TaskResult{
		"winogrande":     {Task: "winogrande", Acc: 0.6, AccNorm: f(0.1)},
		"my-arc-e":       {Task: "arc_easy", Acc: 0.7, AccNorm: f(0.1)},
		"arc_challenge":  {Task: "arc_challenge", Acc: 0.1, AccNorm: f(0.4)},
		"piqa":           {Task: "piqa", Acc: 0.75, AccNorm: f(0.1)},
		"piqa-mini":      {Task: "piqa", Acc: 0.05, AccNorm: f(0.05)},
		"hellaswag":      {Task: "hellaswag", Acc: 0.1, AccNorm: f(0.5)},
		"lambada_openai": {Task: "lambada_openai", Acc: 0.45, Perplexity: f(12.345)},
	}
	part := map[string]*stages.TaskResult{"piqa": {Task: "piqa", Acc: 0.5, AccNorm: f(0.9)}}
	got := ZeroShotTable([]string{"a", "b"}, map[string]map[string]*stages.TaskResult{"a": full, "b": part})
	// a: (60 + 70 + 40 + 75 + 50 + 45) / 6 = 340 / 6 = 56.67.
	want := `| model | WinoG acc | ARC-E acc | ARC-C acc_norm | PIQA acc | HellaS acc_norm | LAMB acc | LAMB ppl | Avg |
|---|---|---|---|---|---|---|---|---|
| a | 60.0 | 70.0 | 40.0 | 75.0 | 50.0 | 45.0 | 12.35 | 56.7 |
| b | | | | 50.0 | | | | |
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestTaskSpecs checks the command line's task settings.
func TestTaskSpecs(t *testing.T) {
	got, err := TaskSpecs("piqa, lambada_openai,arc_easy", "piqa=/p/piqa.parquet,arc_easy=/a", "/hub", 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []Task{{Kind: "piqa", Path: "/p/piqa.parquet", Limit: 5}, {Kind: "lambada_openai", Path: "/hub/EleutherAI/lambada_openai", Limit: 5}, {Kind: "arc_easy", Path: "/a", Limit: 5}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, tt := range []struct{ names, files, dir, want string }{
		{"piqa,arc-e", "piqa=x", "", `unknown zero-shot task "arc-e"`},
		{"piqa", "", "", "task piqa has no data; give piqa=PATH"},
		{"piqa", "piqa", "", `task data "piqa" is not name=path`},
		{"piqa", "piqa=x,hellaswag=y", "", "task data given for hellaswag, which is not among the tasks"},
		{"generic", "", "/hub", "task generic has no data; give generic=PATH, its JSONL or Parquet file"},
	} {
		if _, err := TaskSpecs(tt.names, tt.files, tt.dir, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %q %q: error %v, want %q", tt.names, tt.files, tt.dir, err, tt.want)
		}
	}
}

// TestHarnessEncoder: zero-shot requests are encoded as the harness's
// HFLM does by default. With the Llama-3 test tokenizer every encoding
// holds one <|begin_of_text|>, first (the template's, or the text's own
// when the text starts with it) and an empty context is scored after that
// BOS; with phi-tiny-en's tokenizer (no template) nothing is added and
// the prefix is <|endoftext|>.
func TestHarnessEncoder(t *testing.T) {
	llamaPath := filepath.Join("..", "tokenizer", "testdata", "hf", "llama3.json")
	llama, err := tokenizer.Load(llamaPath)
	if err != nil {
		t.Fatal(err)
	}
	phiPath := shareddata.Path(t, "reference", "phi-tiny-en", "tokenizer.json")
	phi, err := tokenizer.Load(phiPath)
	if err != nil {
		t.Fatal(err)
	}
	// A Qwen2 chat tokenizer: no BOS template, and tokenizer_config.json
	// names <|im_end|> (id 958 in the file's added_tokens) as eos_token.
	qwenPath := writeTokenizer(t, readBytes(t, filepath.Join("..", "tokenizer", "testdata", "hf", "qwen2.json")), `{"eos_token": "<|im_end|>"}`)
	qwen, err := tokenizer.Load(qwenPath)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := llama.SpecialID("<|begin_of_text|>")
	eot, _ := phi.SpecialID("<|endoftext|>")
	const q = "Question: what is it?\nAnswer:"
	for _, tc := range []struct {
		name   string
		tok    *tokenizer.Tokenizer
		path   string
		prefix int64
		text   string
		want   []int64
		bos    int // BOS tokens in the encoding
	}{
		{"llama3", llama, llamaPath, bos, q, append([]int64{bos}, llama.EncodeNoSpecial(q)...), 1},
		{"llama3, text starting with BOS", llama, llamaPath, bos, "<|begin_of_text|>" + q, append([]int64{bos}, llama.EncodeNoSpecial(q)...), 1},
		{"phi", phi, phiPath, eot, q, phi.Encode(q), 0},
		{"qwen2 chat", qwen, qwenPath, 958, q, qwen.Encode(q), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := newHarnessEncoder(tc.tok, tc.path)
			enc, ok := e.(stages.PrefixEncoder)
			if err != nil || !ok || enc.Prefix() != tc.prefix {
				t.Fatalf("encoder %T (error %v) is not a PrefixEncoder with prefix %d", e, err, tc.prefix)
			}
			got := enc.Encode(tc.text)
			n := 0
			for _, id := range got {
				if tc.tok == llama && id == bos {
					n++
				}
			}
			if !reflect.DeepEqual(got, tc.want) || n != tc.bos || tc.bos > 0 && got[0] != bos {
				t.Errorf("Encode(%q) = %v (%d BOS), want %v (%d BOS, first)", tc.text, got, n, tc.want, tc.bos)
			}
		})
	}
}

// TestHarnessEncoderConfig: the zero-shot prefix token reads
// tokenizer_config.json as runs, validate and perplexity evaluation do. A
// corrupt one, or one naming a token the tokenizer lacks, is an error
// naming the file, even for a tokenizer with a BOS; a tokenizer with no
// BOS and no end-of-text token at all gets a plain Encoder (no prefix).
func TestHarnessEncoderConfig(t *testing.T) {
	hf := func(name string) []byte {
		return readBytes(t, filepath.Join("..", "tokenizer", "testdata", "hf", name+".json"))
	}
	// qwen2.json less its <|endoftext|>: no BOS template, no end of text.
	var noEOT map[string]any
	if err := json.Unmarshal(hf("qwen2"), &noEOT); err != nil {
		t.Fatal(err)
	}
	added := noEOT["added_tokens"].([]any)
	noEOT["added_tokens"] = slices.DeleteFunc(slices.Clone(added), func(a any) bool {
		return a.(map[string]any)["content"] == tokenizer.DefaultEndOfText
	})
	if len(noEOT["added_tokens"].([]any)) != len(added)-1 {
		t.Fatalf("qwen2.json has no added token %s to remove", tokenizer.DefaultEndOfText)
	}
	noEOTRaw, err := json.Marshal(noEOT)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		raw     []byte
		config  string // "" writes no tokenizer_config.json
		wantErr string // "" wants no error
		prefix  bool   // a PrefixEncoder is wanted
	}{
		{"corrupt config", hf("qwen2"), `{"eos_token": `, "unexpected end of JSON input", false},
		{"corrupt config, BOS", hf("llama3"), `{"eos_token": `, "unexpected end of JSON input", false},
		{"unknown eos_token", hf("qwen2"), `{"eos_token": "<|nope|>"}`, `names eos_token "<|nope|>"`, false},
		{"eos_token not a string", hf("qwen2"), `{"eos_token": 5}`, "eos_token: want a string", false},
		{"no end of text", noEOTRaw, "", "", false},
		{"no end of text, config naming none", noEOTRaw, `{"eos_token": null}`, "", false},
		{"default end of text", hf("qwen2"), "", "", true},
		{"BOS without end of text", hf("llama3"), "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTokenizer(t, tc.raw, tc.config)
			tok, err := tokenizer.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := newHarnessEncoder(tok, path)
			if tc.wantErr != "" {
				cfg := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
				if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("encoder %T, error %v; want an error naming %s and saying %q", enc, err, cfg, tc.wantErr)
				}
				return
			}
			if _, ok := enc.(stages.PrefixEncoder); err != nil || ok != tc.prefix {
				t.Fatalf("encoder %T, error %v; want a PrefixEncoder: %v", enc, err, tc.prefix)
			}
		})
	}
}

// TestZeroShotCorruptTokenizerConfig: the stand-alone zero-shot
// evaluation refuses a model directory whose tokenizer_config.json is
// corrupt, naming the file, before it reads the tasks or the model.
func TestZeroShotCorruptTokenizerConfig(t *testing.T) {
	path := writeTokenizer(t, readBytes(t, shareddata.Path(t, "reference", "phi-tiny-en", "tokenizer.json")), `{"eos_token": "<|endoftext|>"`)
	cfg := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	_, err := ZeroShot(context.Background(), ZeroShotOptions{Model: filepath.Dir(path), Tasks: []Task{{Kind: "piqa", Path: filepath.Join(t.TempDir(), "missing.jsonl")}}, Runtime: runtime.Defaults()})
	if err == nil || !strings.Contains(err.Error(), cfg+": unexpected end of JSON input") {
		t.Fatalf("ZeroShot: %v; want the corrupt %s named", err, cfg)
	}
}

// writeTokenizer writes raw as tokenizer.json in a new directory, with
// config as the tokenizer_config.json beside it unless config is empty,
// and returns the tokenizer.json's path.
func writeTokenizer(t *testing.T, raw []byte, config string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}
