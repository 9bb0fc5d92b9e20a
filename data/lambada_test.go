package data

import (
	"reflect"
	"strings"
	"testing"
)

func TestLastWordExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		docs     []string
		minWords int
		n        int
		want     []Completion
	}{
		{"sentence", []string{"The cat sat on the mat."}, 3, 0, []Completion{{"The cat sat on the", " mat"}}},
		{"trailing quote and space", []string{"  He said \"go home\".\n"}, 3, 0, []Completion{{"He said \"go", " home"}}},
		{"apostrophe and hyphen", []string{"we met the mother-in-law", "it isn't"}, 2, 0, []Completion{{"we met the", " mother-in-law"}, {"it", " isn't"}}},
		{"too short", []string{"one two.", "one two three"}, 3, 0, []Completion{{"one two", " three"}}},
		{"last word not a word", []string{"I have 42", "see x2 and 3x", "a b\nc", "only"}, 1, 0, nil},
		{"first n", []string{"a b", "c d", "e f"}, 2, 2, []Completion{{"a", " b"}, {"c", " d"}}},
		{"double space kept as lm-eval does", []string{"a  b"}, 2, 0, []Completion{{"a ", " b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := LastWordExamples(tt.docs, tt.minWords, tt.n); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadLambada(t *testing.T) {
	t.Parallel()
	content := `{"text": "In my palm is a clear stone, and inside it is a small ivory statuette. a guardian angel. \"figured if you're going to be out at night getting hit by cars, you might as well have some backup.\" i look at him, feeling stunned. like this is some sort of sign. but as i stare at harlin, his mouth curved in a confident grin, i don't care about signs"}
{"text": "single"}

{"text": "two  spaces"}
`
	got, err := LoadLambada(writeFile(t, "lambada_openai.jsonl", content))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Target != " signs" || !strings.HasSuffix(got[0].Context, "i don't care about") ||
		got[1] != (Completion{"", " single"}) || got[2] != (Completion{"two ", " spaces"}) {
		t.Fatalf("got %q", got)
	}
	for content, want := range map[string]string{
		`{"txt": "a b"}`:  `lambada_openai.jsonl:1: field "text" is missing; lambada_openai lines are {"text": "..."}`,
		`{"text": ["a"]}`: `lambada_openai.jsonl:1: field "text" is an array, not a string`,
		"":                "lambada_openai.jsonl has no examples",
	} {
		if _, err := LoadLambada(writeFile(t, "lambada_openai.jsonl", content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", content, err, want)
		}
	}
}
