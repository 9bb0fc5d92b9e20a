package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"mohawk/internal/hubtest"
	"mohawk/internal/shareddata"
)

// stderrOf runs the command line through run with stderr captured.
func stderrOf(t *testing.T, args ...string) (int, string) {
	t.Helper()
	rc, _, stderr := outputOf(t, args...)
	return rc, stderr
}

// outputOf runs the command line through run with stdout and stderr
// captured.
func outputOf(t *testing.T, args ...string) (rc int, stdout, stderr string) {
	t.Helper()
	var files [2]*os.File
	var got [2]chan string
	for i, f := range []**os.File{&os.Stdout, &os.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		files[i], *f = *f, w
		got[i] = make(chan string)
		go func() { b, _ := io.ReadAll(r); r.Close(); got[i] <- string(b) }()
	}
	rc = run(args)
	for i, f := range []**os.File{&os.Stdout, &os.Stderr} {
		(*f).Close()
		*f = files[i]
	}
	return rc, <-got[0], <-got[1]
}

// TestCommandsTakeHubIDs runs eval and export with --model given as a
// Hugging Face id of the sharded phi-tiny-en laid out in a hub cache (blob
// links included), offline, eval with a zero-shot task's data given as a
// dataset id in that cache, and fetch refusing to connect offline.
func TestCommandsTakeHubIDs(t *testing.T) {
	cache := t.TempDir()
	snap := hubtest.Layout(t, cache, "org/phi-tiny", shareddata.Path(t, "reference", "phi-tiny-en"))
	arc := hubtest.Layout(t, cache, "datasets/allenai/ai2_arc", filepath.Join("..", "..", "testdata", "tasks", "allenai", "ai2_arc"))
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	out := filepath.Join(t.TempDir(), "export")
	val := shareddata.Path(t, "data", "en", "val.txt")
	used := "--model: using Hugging Face cache snapshot " + snap + " (org/phi-tiny@main → " + hubtest.Commit + ")"
	tests := []struct {
		name string
		args []string
		rc   int
		want string // in stderr
	}{
		{"eval", []string{"eval", "--model", "org/phi-tiny", "--data", val, "--windows", "2", "--seq-len", "32", "--threads", "1"}, 0, used},
		{"export", []string{"export", "--model", "org/phi-tiny", "--out", out}, 0, used},
		{"eval of an id not cached", []string{"eval", "--model", "org/absent@v2", "--data", val}, 1, "pipeline fetch org/absent@v2"},
		{"eval of a task by dataset id", []string{"eval", "--model", "org/phi-tiny", "--tasks", "arc_easy", "--task-data", "arc_easy=allenai/ai2_arc", "--threads", "1"}, 0,
			"task arc_easy: using Hugging Face cache snapshot " + arc + " (allenai/ai2_arc@main → " + hubtest.Commit + ")"},
		{"eval of a task whose dataset is not cached", []string{"eval", "--model", "org/phi-tiny", "--tasks", "piqa", "--task-data", "piqa=ybisk/piqa"}, 1,
			"pipeline fetch --repo-type dataset ybisk/piqa --include 'plain_text/validation-*.parquet' --include 'plain_text/validation/*.parquet'"},
		{"fetch offline", []string{"fetch", "org/absent", "--include", "*.json"}, 1, "HF_HUB_OFFLINE is set"},
		{"fetch of a non-id", []string{"fetch", "../x"}, 1, "not a Hugging Face id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, stderr := stderrOf(t, tc.args...)
			if rc != tc.rc || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", rc, stderr, tc.rc, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "model.onnx")); err != nil {
		t.Errorf("export wrote no model: %v", err)
	}
}

// TestFetchCommand downloads from a fake Hub with `pipeline fetch`, and
// is refused a gated model with a message saying to set HF_TOKEN.
func TestFetchCommand(t *testing.T) {
	files, lfs := hubtest.Files(t, shareddata.Path(t, "reference", "phi-tiny-en"), "config.json", "model.safetensors.index.json",
		"model-00003-of-00003.safetensors")
	hub := hubtest.NewHub(t, "org/phi-tiny", files, lfs...)
	cache := t.TempDir()
	hubtest.Env(t, hub.URL, cache, false)
	snap := filepath.Join(cache, "models--org--phi-tiny", "snapshots", hubtest.Commit)
	tests := []struct {
		name  string
		gated string
		args  []string
		rc    int
		want  string   // in stderr
		files []string // in the snapshot afterwards
	}{
		{"include", "", []string{"fetch", "org/phi-tiny", "--include", "*.json"}, 0, "org/phi-tiny@main is commit " + hubtest.Commit,
			[]string{"config.json", "model.safetensors.index.json"}},
		{"gated", "hf_secret", []string{"fetch", "org/phi-tiny@v1.0"}, 1, "Set HF_TOKEN to a token with read access", nil},
		{"all", "", []string{"fetch", "org/phi-tiny"}, 0, "model-00003-of-00003.safetensors 100%", []string{"model-00003-of-00003.safetensors"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hub.With(func(h *hubtest.Hub) { h.Gated = tc.gated })
			rc, stderr := stderrOf(t, tc.args...)
			if rc != tc.rc || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", rc, stderr, tc.rc, tc.want)
			}
			for _, f := range tc.files {
				got, err := os.ReadFile(filepath.Join(snap, f))
				if err != nil || string(got) != string(files[f]) {
					t.Errorf("snapshot file %s: %v, or its content differs", f, err)
				}
			}
		})
	}
}

// TestFetchDatasetCommand downloads a split of a dataset from a fake Hub
// with `pipeline fetch --repo-type dataset`, as huggingface-cli is told.
func TestFetchDatasetCommand(t *testing.T) {
	files := map[string][]byte{
		"README.md":                         []byte("# card\n"),
		"data/train-00000-of-00001.parquet": []byte("PAR1 train PAR1"),
		"data/test-00000-of-00001.parquet":  []byte("PAR1 test PAR1"),
	}
	hub := hubtest.NewHub(t, "datasets/org/d", files, "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet")
	cache := t.TempDir()
	hubtest.Env(t, hub.URL, cache, false)
	snap := filepath.Join(cache, "datasets--org--d", "snapshots", hubtest.Commit)
	tests := []struct {
		name  string
		args  []string
		rc    int
		want  string // in stderr
		files []string
	}{
		{"train split", []string{"fetch", "--repo-type", "dataset", "org/d", "--include", "data/train-*"}, 0, "dataset org/d@main is commit " + hubtest.Commit,
			[]string{"data/train-00000-of-00001.parquet"}},
		{"as a model", []string{"fetch", "org/d"}, 1, "names a model, not a dataset", nil},
		{"unknown type", []string{"fetch", "--repo-type", "space", "org/d"}, 1, `--repo-type: repository type "space": want model or dataset`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, stderr := stderrOf(t, tc.args...)
			if rc != tc.rc || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", rc, stderr, tc.rc, tc.want)
			}
			for _, f := range tc.files {
				if got, err := os.ReadFile(filepath.Join(snap, f)); err != nil || string(got) != string(files[f]) {
					t.Errorf("snapshot file %s: %v, or its content differs", f, err)
				}
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(snap, "data", "test-00000-of-00001.parquet")); err == nil {
		t.Error("the test split was downloaded although --include named the train split")
	}
}

// TestEvalDataset scores held-out perplexity of the same documents read
// from a local text file, a local Parquet glob, a local JSONL file with
// another key (--field) and a Hugging Face dataset's validation shard
// (beside a train shard) laid out in a hub cache as huggingface_hub does
// (--dataset, --files): all give the same result. eval never downloads a dataset (the fake Hub gets
// no request), and wrong combinations of flags are refused.
func TestEvalDataset(t *testing.T) {
	raw, err := os.ReadFile(shareddata.Path(t, "data", "en", "val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(raw), "\n\n")[:12]
	dir := t.TempDir()
	text := filepath.Join(dir, "val.txt")
	if err := os.WriteFile(text, []byte(strings.Join(docs, "\n\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Text string `parquet:"text"`
	}
	var rows []row
	var jsonl []byte
	for _, d := range docs {
		rows = append(rows, row{d})
		line, err := json.Marshal(map[string]string{"body": d})
		if err != nil {
			t.Fatal(err)
		}
		jsonl = append(append(jsonl, line...), '\n')
	}
	ds := filepath.Join(dir, "corpus")
	if err := os.MkdirAll(filepath.Join(ds, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, rows := range map[string][]row{"validation-00000-of-00001.parquet": rows, "train-00000-of-00001.parquet": rows[1:]} {
		if err := parquet.WriteFile(filepath.Join(ds, "data", name), rows); err != nil {
			t.Fatal(err)
		}
	}
	jsonlPath := filepath.Join(dir, "val.jsonl")
	if err := os.WriteFile(jsonlPath, jsonl, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	snap := hubtest.Layout(t, cache, "datasets/org/corpus", ds)
	hub := hubtest.NewHub(t, "datasets/org/absent", map[string][]byte{"data/validation-00000-of-00001.parquet": []byte("PAR1")})
	hubtest.Env(t, hub.URL, cache, false)

	eval := func(args ...string) []string {
		return append([]string{"eval", "--model", shareddata.Path(t, "reference", "phi-tiny-en"), "--windows", "40", "--seq-len", "32", "--threads", "1", "--json"}, args...)
	}
	rc, want, stderr := outputOf(t, eval("--data", text)...)
	if rc != 0 || !strings.Contains(want, `"perplexity"`) {
		t.Fatalf("eval of the text file: exit %d, stdout %q, stderr:\n%s", rc, want, stderr)
	}
	tests := []struct {
		name string
		args []string
		rc   int
		want string // in stderr; with rc 0, stdout must be the text file's
	}{
		{"local Parquet glob", []string{"--data", filepath.Join(ds, "data", "validation-*.parquet")}, 0, ""},
		{"local JSONL, --field", []string{"--data", jsonlPath, "--field", "body"}, 0, ""},
		{"dataset in the cache", []string{"--dataset", "org/corpus", "--files", "data/validation-*.parquet", "--column", "text"}, 0,
			"--dataset: using Hugging Face cache snapshot " + snap + " (org/corpus@main → " + hubtest.Commit + ")"},
		{"dataset at a commit", []string{"--dataset", "org/corpus@" + hubtest.Commit, "--files", "data/validation-*"}, 0, "--dataset: using Hugging Face cache snapshot " + snap},
		{"--data and --dataset", []string{"--data", text, "--dataset", "org/corpus", "--files", "data/*.parquet"}, 1,
			"set --data (a local file or glob) or --dataset (a Hugging Face dataset id), not both"},
		{"neither", nil, 2, "usage: pipeline eval --model DIR (--data FILE | --dataset ID --files PATTERN | --tasks LIST)"},
		{"--files missing", []string{"--dataset", "org/corpus"}, 1, "--dataset org/corpus needs --files, the pattern of the files to read"},
		{"--files without --dataset", []string{"--files", "data/*.parquet"}, 1, "--files applies to dataset sources only; put the file or glob in --data"},
		{"not an id", []string{"--dataset", "../corpus", "--files", "data/*.parquet"}, 1, `--dataset: "../corpus" is not a Hugging Face id`},
		{"not cached", []string{"--dataset", "org/absent", "--files", "data/validation-*.parquet"}, 1,
			"fetch it with `pipeline fetch --repo-type dataset org/absent --include 'data/validation-*.parquet'`"},
		{"no file matches in the cache", []string{"--dataset", "org/corpus", "--files", "data/test-*.parquet"}, 1,
			"snapshot " + snap + " holds no file matching data/test-*.parquet; fetch it with `pipeline fetch --repo-type dataset org/corpus"},
		{"no file matches --data", []string{"--data", filepath.Join(ds, "data", "test-*.parquet")}, 1, "test-*.parquet matches no file"},
		{"a column the files lack", []string{"--dataset", "org/corpus", "--files", "data/*.parquet", "--column", "body"}, 1, `has no column "body" (it has text)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, stdout, stderr := outputOf(t, eval(tc.args...)...)
			if rc != tc.rc || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and %q", rc, stderr, tc.rc, tc.want)
			}
			if rc == 0 && stdout != want {
				t.Errorf("stdout %s\nthe text file gave %s", stdout, want)
			}
		})
	}
	if log := hub.Log(); len(log) > 0 {
		t.Errorf("eval asked the Hub %v; it must only read the cache", log)
	}
}
