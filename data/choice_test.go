package data

import (
	"reflect"
	"strings"
	"testing"
)

// Hand-written lines in the layouts of the Hugging Face datasets (and AI2's
// original ARC files).
const (
	hellaswagLine    = `{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "label": "3", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}`
	hellaswagWikiHow = `{"activity_label": "Home and Garden", "ctx_a": "[header] How to clean a grill [title] Scrub the grates.", "ctx_b": "[step] Use A wire BRUSH.", "endings": ["[substeps] Rinse  well [title] Dry.", " Let it dry. "], "label": 0}`
	hellaswagCtxOnly = `{"ctx": "A dog runs.", "endings": ["It stops.", "It flies."], "label": 1}`
	piqaLine         = `{"goal": "When boiling butter, when it's ready, you can", "sol1": "Pour it onto a plate", "sol2": "Pour it into a jar", "label": 1}`
	arcFlatLine      = `{"id": "Mercury_7175875", "question": "Which is the most likely effect of this increase in rotation?", "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.", "Planetary days will become shorter."], "label": ["A", "B", "C"]}, "answerKey": "C"}`
	arcNestedLine    = `{"id": "x", "question": {"stem": "Which gas is lighter than air?", "choices": [{"text": "radon", "label": "1"}, {"text": "helium", "label": "2"}]}, "answerKey": "2"}`
	winograndeLine   = `{"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.", "option1": "Sarah", "option2": "Maria", "answer": "1"}`
	genericLine      = `{"context": "2+2=", "choices": ["4", "5", "22"], "gold": 0}`
)

func TestLoadMultipleChoice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		task, content string
		want          []MultipleChoice
		requests      []Request // of the first question
	}{
		{"hellaswag", hellaswagLine + "\n\n" + hellaswagWikiHow + "\n" + hellaswagCtxOnly + "\n", []MultipleChoice{
			{Context: "Roof shingle removal: A man is sitting on a roof. He", Gold: 3, Choices: []string{
				"is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."}},
			{Context: "Home and Garden: How to clean a grill. Scrub the grates. use a wire brush.", Gold: 0, Choices: []string{" Rinse well. Dry.", "Let it dry."}},
			{Context: "A dog runs.", Gold: 1, Choices: []string{"It stops.", "It flies."}},
		}, []Request{
			{"Roof shingle removal: A man is sitting on a roof. He", " is using wrap to wrap a pair of skis."},
			{"Roof shingle removal: A man is sitting on a roof. He", " is ripping level tiles off."},
			{"Roof shingle removal: A man is sitting on a roof. He", " is holding a rubik's cube."},
			{"Roof shingle removal: A man is sitting on a roof. He", " starts pulling up roofing on a roof."},
		}},
		{"piqa", piqaLine + "\r\n", []MultipleChoice{
			{Context: "Question: When boiling butter, when it's ready, you can\nAnswer:", Gold: 1, Choices: []string{"Pour it onto a plate", "Pour it into a jar"}},
		}, []Request{
			{"Question: When boiling butter, when it's ready, you can\nAnswer:", " Pour it onto a plate"},
			{"Question: When boiling butter, when it's ready, you can\nAnswer:", " Pour it into a jar"},
		}},
		{"arc_easy", arcFlatLine + "\n" + arcNestedLine, []MultipleChoice{
			{Context: "Question: Which is the most likely effect of this increase in rotation?\nAnswer:", Gold: 2, Choices: []string{
				"Planetary density will decrease.", "Planetary years will become longer.", "Planetary days will become shorter."}},
			{Context: "Question: Which gas is lighter than air?\nAnswer:", Gold: 1, Choices: []string{"radon", "helium"}},
		}, nil},
		{"winogrande", winograndeLine, []MultipleChoice{{
			Choices:      []string{"Sarah", "Maria"},
			Contexts:     []string{"Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria"},
			Continuation: " always got the harder cases.",
			Gold:         0,
		}}, []Request{
			{"Sarah was a much better surgeon than Maria so Sarah", " always got the harder cases."},
			{"Sarah was a much better surgeon than Maria so Maria", " always got the harder cases."},
		}},
		{"generic", genericLine, []MultipleChoice{{Context: "2+2=", Choices: []string{"4", "5", "22"}, Gold: 0}},
			[]Request{{"2+2=", " 4"}, {"2+2=", " 5"}, {"2+2=", " 22"}}},
	}
	for _, tt := range tests {
		t.Run(tt.task, func(t *testing.T) {
			t.Parallel()
			got, err := LoadMultipleChoice(writeFile(t, tt.task+".jsonl", tt.content), tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
			if tt.requests != nil {
				if r := got[0].Requests(); !reflect.DeepEqual(r, tt.requests) {
					t.Fatalf("requests %q, want %q", r, tt.requests)
				}
			}
		})
	}
}

func TestLoadMultipleChoiceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, task, content string
		want                string
	}{
		{"unknown task", "mmlu", genericLine, `unknown multiple-choice task "mmlu"; use one of arc, arc_challenge, arc_easy, generic, hellaswag, piqa, winogrande`},
		{"no questions", "piqa", "\n \n", "t.jsonl has no questions"},
		{"line number after blank lines", "hellaswag", hellaswagLine + "\n\n" + `{"ctx": "x", "label": 0}`,
			`t.jsonl:3: field "endings" is missing; HellaSwag lines need "ctx" (or "ctx_a" and "ctx_b"), "endings" and "label"`},
		{"hellaswag ctx_b missing", "hellaswag", `{"ctx_a": "x", "endings": ["a", "b"], "label": 0}`, `t.jsonl:1: field "ctx_b" is missing`},
		{"hellaswag test label", "hellaswag", `{"ctx": "x", "endings": ["a", "b"], "label": ""}`, `field "label" is empty (test splits have no labels`},
		{"hellaswag label out of range", "hellaswag", `{"ctx": "x", "endings": ["a", "b"], "label": 7}`, `t.jsonl:1: the answer is choice 7, outside the 2 choices`},
		{"hellaswag ending not a string", "hellaswag", `{"ctx": "x", "endings": ["a", 2], "label": 0}`, `field "endings[1]" is a number, not a string`},
		{"piqa sol2 not a string", "piqa", `{"goal": "g", "sol1": "a", "sol2": 5, "label": 0}`, `field "sol2" is a number, not a string; PIQA lines need`},
		{"piqa label fractional", "piqa", `{"goal": "g", "sol1": "a", "sol2": "b", "label": 0.5}`, `field "label" is 0.5, not a whole number`},
		{"piqa label boolean", "piqa", `{"goal": "g", "sol1": "a", "sol2": "b", "label": true}`, `field "label" is a boolean, not a whole number`},
		{"arc unknown answer", "arc", `{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}`,
			`field "answerKey" is "E", which is none of the choice labels ["A" "B"]`},
		{"arc unpaired", "arc", `{"question": "q", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"}`, `"choices" has 2 texts but 1 labels`},
		{"arc nested label missing", "arc_challenge", `{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b"}]}, "answerKey": "A"}`,
			`field "question.choices[1].label" is missing`},
		{"arc nested choices not objects", "arc", `{"question": {"stem": "q", "choices": ["a"]}, "answerKey": "A"}`, `field "question.choices[0]" is a string, not an object`},
		{"winogrande no blank", "winogrande", `{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}`, `field "sentence" has no "_" blank`},
		{"winogrande bad answer", "winogrande", `{"sentence": "_ x", "option1": "a", "option2": "b", "answer": "3"}`, `field "answer" is 3, not 1 or 2`},
		{"generic one choice", "generic", `{"context": "c", "choices": ["a"], "gold": 0}`, `t.jsonl:1: the question has 1 choice(s), it needs at least 2`},
		{"generic choices not an array", "generic", `{"context": "c", "choices": "a", "gold": 0}`, `field "choices" is a string, not an array of strings`},
		{"not JSON", "generic", `{"context": "c",`, `t.jsonl:1: invalid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadMultipleChoice(writeFile(t, "t.jsonl", tt.content), tt.task)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := LoadMultipleChoice("/nonexistent/piqa.jsonl", "piqa"); err == nil || !strings.Contains(err.Error(), "/nonexistent/piqa.jsonl") {
		t.Errorf("missing file: error %v", err)
	}
}

func TestHellaswagPreprocess(t *testing.T) {
	t.Parallel()
	// Expected values computed with lm-evaluation-harness's preprocess in
	// Python.
	tests := []struct{ in, want string }{
		{"  plain text ", "plain text"},
		{"a [title] b", "a. b"},
		{"[header] How to x [title] Do y.", " How to x. Do y."},
		{"a [x]\n[y] b [z\n] c    d", "a \n b [z\n] c  d"},
		{"[unclosed tag", "[unclosed tag"},
	}
	for _, tt := range tests {
		if got := hellaswagPreprocess(tt.in); got != tt.want {
			t.Errorf("preprocess(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{"he": "He", "[step] Use A": "[step] use a", "": "", "éCOLE": "École"} {
		if got := capitalize(in); got != want {
			t.Errorf("capitalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// jsonlRecords gives the lines of data as the records of a file "f.jsonl".
func jsonlRecords(data []byte) func(fn func(object) error) error {
	return func(fn func(object) error) error { return eachObject("f.jsonl", data, fn) }
}

// FuzzJSONL feeds arbitrary bytes to every JSONL reader: none may panic,
// and whatever they accept must be consistent.
func FuzzJSONL(f *testing.F) {
	for _, s := range []string{hellaswagLine, hellaswagWikiHow, hellaswagCtxOnly, piqaLine, arcFlatLine, arcNestedLine, winograndeLine, genericLine,
		`{"text": "the last word"}`, "\xef\xbb\xbf{\"text\": \"a\"}\r\n\n{}", `{"label": "-1", "endings": [], "ctx": ""}`, `[]`, `null`, `{"answer": 1e400}`} {
		f.Add([]byte(s))
	}
	tasks := []string{"hellaswag", "piqa", "arc", "winogrande", "generic"}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, task := range tasks {
			qs, err := readMultipleChoice("f.jsonl", task, jsonlRecords(data))
			if err != nil {
				if !strings.HasPrefix(err.Error(), "f.jsonl") {
					t.Fatalf("%s: error %q does not name the file", task, err)
				}
				continue
			}
			for _, q := range qs {
				if len(q.Choices) < 2 || q.Gold < 0 || q.Gold >= len(q.Choices) || (q.Contexts != nil && len(q.Contexts) != len(q.Choices)) {
					t.Fatalf("%s: inconsistent question %#v", task, q)
				}
				if len(q.Requests()) != len(q.Choices) {
					t.Fatalf("%s: %d requests for %d choices", task, len(q.Requests()), len(q.Choices))
				}
				q.Score(make([]float64, len(q.Choices)))
			}
		}
		if cs, err := readLambada("f.jsonl", jsonlRecords(data)); err == nil {
			for _, c := range cs {
				if !strings.HasPrefix(c.Target, " ") {
					t.Fatalf("target %q does not start with a space", c.Target)
				}
			}
		}
		Source{Field: "text"}.split(shard{path: "f.jsonl", format: "jsonl"}, data)
	})
}
