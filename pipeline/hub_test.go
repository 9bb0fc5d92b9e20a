package pipeline

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"mohawk/internal/hubtest"
	"mohawk/internal/shareddata"
)

// TestRunTeacherByID runs a pipeline whose teacher is a Hugging Face id:
// the sharded phi-tiny-en laid out in a hub cache as huggingface_hub does
// (blobs and snapshot links), or served by a fake Hub when not cached.
func TestRunTeacherByID(t *testing.T) {
	phiTiny := shareddata.Path(t, "reference", "phi-tiny-en")
	cached := t.TempDir()
	snap := hubtest.Layout(t, cached, "org/phi-tiny", phiTiny)
	files, lfs := hubtest.Files(t, phiTiny, "config.json", "tokenizer.json", "model.safetensors.index.json",
		"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors")
	hub := hubtest.NewHub(t, "org/phi-tiny", files, lfs...)
	empty := t.TempDir()
	tests := []struct {
		name, path  string
		cache       string
		offline     bool
		want        string // in the output, or in the error when fail
		fail        bool
		hubRequests bool
	}{
		{"cached", "org/phi-tiny", cached, true, "teacher: using Hugging Face cache snapshot " + snap + " (org/phi-tiny@main → " + hubtest.Commit + ")", false, false},
		{"by commit", "org/phi-tiny@" + hubtest.Commit, cached, true, "teacher: using Hugging Face cache snapshot " + snap, false, false},
		{"not cached, offline", "org/other", cached, true, "HF_HUB_OFFLINE is set", true, false},
		{"not cached: downloaded", "org/phi-tiny", empty, false, "teacher: using Hugging Face cache snapshot " + empty, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hubtest.Env(t, hub.URL, tc.cache, tc.offline)
			t.Setenv("MOHAWK_PREFLIGHT", "warn") // not under test; other helpers' tests share the memory
			before := len(hub.Log())
			cfg, path := tinyConfig(t, "  - {kind: eval}", "teacher: {path: "+tc.path+"}")
			var out strings.Builder
			_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
			if got := len(hub.Log()) > before; got != tc.hubRequests {
				t.Errorf("requests to the Hub: %v, want %v", got, tc.hubRequests)
			}
			if tc.fail {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Run: %v; want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out.String())
			}
			if !strings.Contains(out.String(), "teacher perplexity") {
				t.Errorf("no teacher evaluation in the output:\n%s", out.String())
			}
		})
	}
}

// A hub-cache snapshot's link fingerprints like the file it points to, so
// a large blob is sampled rather than read whole.
func TestFingerprintFollowsLinks(t *testing.T) {
	plain, linked, blobs := t.TempDir(), t.TempDir(), t.TempDir()
	data := []byte("weights of a model")
	for _, p := range []string{filepath.Join(plain, "model.safetensors"), filepath.Join(blobs, "abc")} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(blobs, "abc"), filepath.Join(linked, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	a, err := Fingerprint(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fingerprint(linked)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("a linked file fingerprints as %s, the same file in place as %s", b, a)
	}
}

// TestResolveHubKeepsLocalPaths: a teacher path (or a dataset found as a
// local folder) written relative to a config file in another folder stays
// as written, so every later step resolves it against the config's folder
// once (before, ResolveModels, as ResolveHub was called, stored the resolved path and the next resolution joined the folder
// again: "stat shared/reference/phi-tiny-en" for configs/phi-tiny-en.yaml
// run from the repository root).
func TestResolveHubKeepsLocalPaths(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "models", "teacher"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "configs", "org", "corpus", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "configs", "org", "corpus", "data", "train.jsonl"), []byte(`{"text": "a"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, "configs", "run.yaml")
	if err := os.WriteFile(cfgPath, []byte("teacher: {path: ../models/teacher}\ndata: {train: [{dataset: org/corpus, files: \"data/*.jsonl\"}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveHub(context.Background(), cfg, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if cfg.Teacher.Path != "../models/teacher" {
		t.Errorf("teacher.path became %q, want it as written", cfg.Teacher.Path)
	}
	if st, err := os.Stat(cfg.Resolve(cfg.Teacher.Path)); err != nil || !st.IsDir() {
		t.Errorf("resolving it again: %v", err)
	}
	// So does a dataset found as a local folder of its name.
	if src := cfg.Data.Train[0]; src.Path != filepath.Join("org", "corpus", "data", "*.jsonl") || src.Dataset != "" {
		t.Errorf("data.train[0] became %+v, want path org/corpus/data/*.jsonl", src)
	}
	if m, _ := filepath.Glob(cfg.Resolve(cfg.Data.Train[0].Path)); len(m) != 1 {
		t.Errorf("resolving it again matches %v", m)
	}
}

// corpusDataset writes the demo corpus as a dataset pushed as Parquet:
// data/train-0000{0,1}-of-00002.parquet and
// data/validation-00000-of-00001.parquet, a "text" column of documents.
func corpusDataset(t *testing.T) string {
	t.Helper()
	type row struct {
		Text string `parquet:"text"`
	}
	docs := func(name string) []row {
		raw, err := os.ReadFile(filepath.Join(demoDir(t), name))
		if err != nil {
			t.Fatal(err)
		}
		var rows []row
		for _, d := range strings.Split(string(raw), "\n\n") {
			rows = append(rows, row{d})
		}
		return rows
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	train := docs("train.txt")
	for name, rows := range map[string][]row{
		"train-00000-of-00002.parquet":      train[:len(train)/2],
		"train-00001-of-00002.parquet":      train[len(train)/2:],
		"validation-00000-of-00001.parquet": docs("val.txt"),
	} {
		if err := parquet.WriteFile(filepath.Join(dir, "data", name), rows); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// perplexityLine is the line of a run's output that gives the teacher's
// held-out perplexity.
func perplexityLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "teacher perplexity") {
			return l
		}
	}
	t.Fatalf("no teacher perplexity in the output:\n%s", out)
	return ""
}

// TestRunDataFromDataset runs a pipeline whose training and held-out text
// are a Hugging Face dataset's Parquet shards, named by id and file
// pattern: laid out in a hub cache as huggingface_hub does, or served by a
// fake Hub when not cached. Both give the same held-out perplexity as the
// shards read from a local glob. A zero-shot task's path is a dataset id
// too.
func TestRunDataFromDataset(t *testing.T) {
	src := corpusDataset(t)
	cached := t.TempDir()
	snap := hubtest.Layout(t, cached, "datasets/org/corpus", src)
	hubtest.Layout(t, cached, "datasets/allenai/ai2_arc", filepath.Join("..", "testdata", "tasks", "allenai", "ai2_arc"))
	files, lfs := hubtest.Files(t, src, "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "data/validation-00000-of-00001.parquet")
	hub := hubtest.NewHub(t, "datasets/org/corpus", files, lfs...)
	empty := t.TempDir()
	run := func(t *testing.T, cache string, offline bool, data string, eval ...string) (string, error) {
		hubtest.Env(t, hub.URL, cache, offline)
		t.Setenv("MOHAWK_PREFLIGHT", "warn")
		dir := t.TempDir()
		y := tinyYAML(t, dir, filepath.Join(dir, "cache"), "  - {kind: eval}", eval...)
		start, end := strings.Index(y, "\ndata:\n"), strings.Index(y, "\ntraining:")
		path := filepath.Join(dir, "pipeline.yaml")
		if err := os.WriteFile(path, []byte(y[:start]+"\ndata: "+data+y[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			return "", err
		}
		var out strings.Builder
		_, err = Run(context.Background(), cfg, path, RunOptions{Out: &out})
		return out.String(), err
	}
	byID := `{train: [{dataset: org/corpus, files: "data/train-*.parquet"}], val: [{dataset: org/corpus, files: "data/validation-*.parquet", column: text}]}`
	local, err := run(t, empty, true, `{train: [{path: "`+src+`/data/train-*.parquet"}], val: [{path: "`+src+`/data/validation-*.parquet"}]}`)
	if err != nil {
		t.Fatalf("the local glob: %v", err)
	}
	want := perplexityLine(t, local)
	tests := []struct {
		name     string
		cache    string
		offline  bool
		data     string
		eval     []string
		line     string // in the output, or in the error when fail
		fail     bool
		requests bool
	}{
		{"cached, offline", cached, true, byID, []string{"eval: {windows: 4, seq_len: 32, tasks: [{kind: arc_easy, path: allenai/ai2_arc}]}"},
			"data.train[0]: using Hugging Face cache snapshot " + snap + " (org/corpus@main → " + hubtest.Commit + ")", false, false},
		{"not cached, downloaded", empty, false, byID, nil, "data.val[0]: dataset org/corpus: not in the Hugging Face cache: snapshot " + filepath.Join(empty, "datasets--org--corpus", "snapshots", hubtest.Commit) + " holds no file matching data/validation-*.parquet; downloading from ", false, true},
		{"not cached, offline", t.TempDir(), true, byID, nil, "pipeline fetch --repo-type dataset org/corpus --include 'data/train-*.parquet'", true, false},
		{"files missing", cached, true, `{train: [{dataset: org/corpus}], val_fraction: 0.1}`, nil, "data.train[0].dataset org/corpus needs data.train[0].files", true, false},
		{"path and dataset", cached, true, `{train: [{path: a.txt, dataset: org/corpus, files: "*.parquet"}], val_fraction: 0.1}`, nil, "set data.train[0].path (a local file or glob) or data.train[0].dataset (a Hugging Face dataset id), not both", true, false},
		{"files without dataset", cached, true, `{train: [{path: a.txt}], val: [{files: "*.parquet"}]}`, nil, "data.val[0].files applies to dataset sources only", true, false},
		{"not an id", cached, true, `{train: [{dataset: ../corpus, files: "*.parquet"}], val_fraction: 0.1}`, nil, "data.train[0].dataset: \"../corpus\" is not a Hugging Face id", true, false},
		{"files outside", cached, true, `{train: [{dataset: org/corpus, files: "../*.parquet"}], val_fraction: 0.1}`, nil, "data.train[0].files \"../*.parquet\" is not a pattern of files inside the dataset", true, false},
		{"misspelt key", cached, true, `{train: [{dataset: org/corpus, file: "data/*.parquet"}], val_fraction: 0.1}`, nil, "unknown key(s) file", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(hub.Log())
			out, err := run(t, tc.cache, tc.offline, tc.data, tc.eval...)
			if got := len(hub.Log()) > before; got != tc.requests {
				t.Errorf("requests to the Hub: %v, want %v", got, tc.requests)
			}
			if tc.fail {
				if err == nil || !strings.Contains(err.Error(), tc.line) {
					t.Fatalf("Run: %v; want an error with %q", err, tc.line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tc.line) {
				t.Errorf("output lacks %q:\n%s", tc.line, out)
			}
			if got := perplexityLine(t, out); got != want {
				t.Errorf("held-out perplexity %q, from the local glob %q", got, want)
			}
			if len(tc.eval) > 0 && !strings.Contains(out, "teacher arc_easy: acc") {
				t.Errorf("no arc_easy score in the output:\n%s", out)
			}
		})
	}
}
