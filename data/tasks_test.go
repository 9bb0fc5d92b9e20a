package data

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

var update = flag.Bool("update", false, "rewrite the zero-shot task fixtures under ../testdata/tasks")

// taskFixtures is ../testdata/tasks: a few made-up rows per task, laid out
// as the Hugging Face datasets publish them, with the column types of their
// Parquet files (every column nullable, as the Hub's pyarrow writes them).
const taskFixtures = "../testdata/tasks"

// The rows of the fixtures, in the datasets' schemas. The sentences are
// written for these tests, not taken from the datasets.
type (
	winograndeRow struct {
		Sentence *string `parquet:"sentence,optional"`
		Option1  *string `parquet:"option1,optional"`
		Option2  *string `parquet:"option2,optional"`
		Answer   *string `parquet:"answer,optional"`
	}
	arcChoicesRow struct {
		Text  []string `parquet:"text,list"`
		Label []string `parquet:"label,list"`
	}
	arcRow struct {
		ID        *string       `parquet:"id,optional"`
		Question  *string       `parquet:"question,optional"`
		Choices   arcChoicesRow `parquet:"choices"`
		AnswerKey *string       `parquet:"answerKey,optional"`
	}
	piqaRow struct {
		Goal  *string `parquet:"goal,optional"`
		Sol1  *string `parquet:"sol1,optional"`
		Sol2  *string `parquet:"sol2,optional"`
		Label *int64  `parquet:"label,optional"`
	}
	hellaswagRow struct {
		Ind           *int32   `parquet:"ind,optional"`
		ActivityLabel *string  `parquet:"activity_label,optional"`
		CtxA          *string  `parquet:"ctx_a,optional"`
		CtxB          *string  `parquet:"ctx_b,optional"`
		Ctx           *string  `parquet:"ctx,optional"`
		Endings       []string `parquet:"endings,list"`
		SourceID      *string  `parquet:"source_id,optional"`
		Split         *string  `parquet:"split,optional"`
		SplitType     *string  `parquet:"split_type,optional"`
		Label         *string  `parquet:"label,optional"`
	}
)

func p[T any](v T) *T { return &v }

// writeTaskFixtures writes the fixture files under dir.
func writeTaskFixtures(t *testing.T, dir string) {
	t.Helper()
	write := func(rel string, rows any) {
		path := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch r := rows.(type) {
		case []winograndeRow:
			err = parquet.WriteFile(path, r)
		case []arcRow:
			err = parquet.WriteFile(path, r)
		case []piqaRow:
			err = parquet.WriteFile(path, r)
		case []hellaswagRow:
			err = parquet.WriteFile(path, r)
		case string:
			err = os.WriteFile(path, []byte(r), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write("allenai/winogrande/winogrande_xl/validation-00000-of-00001.parquet", []winograndeRow{
		{p("The kettle was hotter than the mug because _ sat on the stove."), p("kettle"), p("mug"), p("1")},
		{p("Lena lent her umbrella to Omar since _ was about to walk home in the rain."), p("Lena"), p("Omar"), p("2")},
	})
	write("allenai/ai2_arc/ARC-Easy/test-00000-of-00001.parquet", []arcRow{
		{p("fx_1"), p("Which object is most likely to float on water?"), arcChoicesRow{
			[]string{"a dry cork", "an iron nail", "a glass marble"}, []string{"A", "B", "C"}}, p("A")},
		{p("fx_2"), p("What do plants take in from the air to make food?"), arcChoicesRow{
			[]string{"oxygen", "carbon dioxide", "helium", "smoke"}, []string{"1", "2", "3", "4"}}, p("2")},
	})
	write("allenai/ai2_arc/ARC-Challenge/test-00000-of-00001.parquet", []arcRow{
		{p("fx_3"), p("A student heats a beaker of ice. What happens to the ice first?"), arcChoicesRow{
			[]string{"It melts into liquid water.", "It turns straight into steam.", "It becomes heavier."}, []string{"A", "B", "C"}}, p("A")},
	})
	write("ybisk/piqa/plain_text/validation/0000.parquet", []piqaRow{
		{p("Keep bread fresh for longer."), p("Store it in a sealed bag in a cool place."), p("Leave it open on a sunny windowsill."), p(int64(0))},
		{p("Loosen a tight jar lid."), p("Put the jar in the freezer overnight."), p("Run the lid under hot water for a minute."), p(int64(1))},
	})
	write("Rowan/hellaswag/default/validation/0000.parquet", []hellaswagRow{
		{p(int32(7)), p("Making tea"), p("A woman fills a kettle at the sink."), p("she"), p("A woman fills a kettle at the sink. she"),
			[]string{"sets it on the stove and waits.", "throws the kettle out of the window.", "paints the sink bright green."},
			p("fx~1"), p("val"), p("zeroshot"), p("0")},
		{p(int32(8)), p("Home and Garden"), p("[header] How to water a fern [title] Check the soil."), p("[step] Press A finger INTO it."),
			p("[header] How to water a fern [title] Check the soil. [step] press a finger into it."),
			[]string{"[substeps] If it feels dry, water  it slowly.", "Fold the fern into a paper boat."},
			p("fx~2"), p("val"), p("indomain"), p("0")},
	})
	write("EleutherAI/lambada_openai/data/lambada_test.jsonl",
		`{"text": "the baker pulled the tray from the oven and set the warm loaves on the rack to cool before slicing the bread"}`+"\n"+
			`{"text": "she folded the letter twice , sealed the envelope and walked down the hill to post the letter"}`+"\n")
}

// TestTaskFixtures reads every benchmark from the directory layout of its
// dataset and checks the questions lm-evaluation-harness would build. With
// -update it first rewrites the fixtures.
func TestTaskFixtures(t *testing.T) {
	if *update {
		writeTaskFixtures(t, taskFixtures)
	}
	want := map[string]struct {
		file      string
		questions []MultipleChoice
		completes []Completion
	}{
		"winogrande": {"winogrande_xl/validation-00000-of-00001.parquet", []MultipleChoice{
			{Choices: []string{"kettle", "mug"}, Contexts: []string{"The kettle was hotter than the mug because kettle", "The kettle was hotter than the mug because mug"},
				Continuation: " sat on the stove.", Gold: 0},
			{Choices: []string{"Lena", "Omar"}, Contexts: []string{"Lena lent her umbrella to Omar since Lena", "Lena lent her umbrella to Omar since Omar"},
				Continuation: " was about to walk home in the rain.", Gold: 1},
		}, nil},
		"arc_easy": {"ARC-Easy/test-00000-of-00001.parquet", []MultipleChoice{
			{Context: "Question: Which object is most likely to float on water?\nAnswer:", Choices: []string{"a dry cork", "an iron nail", "a glass marble"}, Gold: 0},
			{Context: "Question: What do plants take in from the air to make food?\nAnswer:", Choices: []string{"oxygen", "carbon dioxide", "helium", "smoke"}, Gold: 1},
		}, nil},
		"arc_challenge": {"ARC-Challenge/test-00000-of-00001.parquet", []MultipleChoice{
			{Context: "Question: A student heats a beaker of ice. What happens to the ice first?\nAnswer:",
				Choices: []string{"It melts into liquid water.", "It turns straight into steam.", "It becomes heavier."}, Gold: 0},
		}, nil},
		"piqa": {"plain_text/validation/0000.parquet", []MultipleChoice{
			{Context: "Question: Keep bread fresh for longer.\nAnswer:", Choices: []string{"Store it in a sealed bag in a cool place.", "Leave it open on a sunny windowsill."}, Gold: 0},
			{Context: "Question: Loosen a tight jar lid.\nAnswer:", Choices: []string{"Put the jar in the freezer overnight.", "Run the lid under hot water for a minute."}, Gold: 1},
		}, nil},
		"hellaswag": {"default/validation/0000.parquet", []MultipleChoice{
			{Context: "Making tea: A woman fills a kettle at the sink. She", Choices: []string{
				"sets it on the stove and waits.", "throws the kettle out of the window.", "paints the sink bright green."}, Gold: 0},
			{Context: "Home and Garden: How to water a fern. Check the soil. press a finger into it.", Choices: []string{
				" If it feels dry, water it slowly.", "Fold the fern into a paper boat."}, Gold: 0},
		}, nil},
		"lambada_openai": {"data/lambada_test.jsonl", nil, []Completion{
			{"the baker pulled the tray from the oven and set the warm loaves on the rack to cool before slicing the", " bread"},
			{"she folded the letter twice , sealed the envelope and walked down the hill to post the", " letter"},
		}},
	}
	if len(want) != len(Benchmarks) {
		t.Fatalf("%d benchmarks, %d expectations", len(Benchmarks), len(want))
	}
	for _, b := range Benchmarks {
		t.Run(b.Name, func(t *testing.T) {
			w := want[b.Name]
			dir := filepath.Join(taskFixtures, filepath.FromSlash(b.Dataset))
			task, err := LoadBenchmark(b, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(task.Paths) != 1 || task.Paths[0] != filepath.Join(dir, filepath.FromSlash(w.file)) {
				t.Errorf("read %q, want %s", task.Paths, w.file)
			}
			if !reflect.DeepEqual(task.Questions, w.questions) || !reflect.DeepEqual(task.Completions, w.completes) {
				t.Errorf("got  %#v %#v\nwant %#v %#v", task.Questions, task.Completions, w.questions, w.completes)
			}
			// The file itself reads the same.
			again, err := LoadBenchmark(b, task.Paths[0])
			if err != nil || !reflect.DeepEqual(again.Questions, task.Questions) || !reflect.DeepEqual(again.Completions, task.Completions) {
				t.Errorf("reading %s directly: %v", task.Paths[0], err)
			}
		})
	}
}

// TestLoadBenchmarkErrors checks that bad paths and rows are reported with
// the file, the row and what to do.
func TestLoadBenchmarkErrors(t *testing.T) {
	t.Parallel()
	arcE, _ := LookupBenchmark("arc_easy")
	piqa, _ := LookupBenchmark("piqa")
	dir := t.TempDir()
	badRow := filepath.Join(dir, "bad.parquet")
	if err := parquet.WriteFile(badRow, []piqaRow{{p("g"), p("a"), p("b"), p(int64(0))}, {p("g"), p("a"), nil, p(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	notParquet := writeFile(t, "x.parquet", "PAR1 not really")
	for _, tt := range []struct {
		b    Benchmark
		path string
		want string
	}{
		{arcE, filepath.Join(dir, "missing"), "arc_easy data: stat " + filepath.Join(dir, "missing")},
		{arcE, dir, dir + ": no arc_easy files of allenai/ai2_arc (test split) here; looked for ARC-Easy/test-*.parquet,"},
		{piqa, badRow, badRow + `: row 2: field "sol2" is null; PIQA lines need`},
		{piqa, notParquet, notParquet + ": not a readable Parquet file"},
	} {
		if _, err := LoadBenchmark(tt.b, tt.path); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: error %v, want %q", tt.b.Name, tt.path, err, tt.want)
		}
	}
	if _, err := LookupBenchmark("arc-e"); err == nil || !strings.Contains(err.Error(), `"arc-e"; use one of winogrande,arc_easy,arc_challenge,piqa,hellaswag,lambada_openai (or arc, generic)`) {
		t.Errorf("LookupBenchmark(arc-e): %v", err)
	}
	generic, err := LookupBenchmark("generic")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBenchmark(generic, dir); err == nil || !strings.Contains(err.Error(), "generic tasks are read from one JSONL or Parquet file") {
		t.Errorf("generic task from a directory: %v", err)
	}
}
