package hfhub

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mohawk/internal/hubtest"
)

// datasetFiles is a dataset as the Hub lays out one pushed as Parquet:
// shards of each split under data/, and a card.
func datasetFiles() (files map[string][]byte, lfs []string) {
	files = map[string][]byte{
		"README.md":                          []byte("# a dataset\n"),
		"data/train-00000-of-00002.parquet":  []byte("PAR1 first train shard PAR1"),
		"data/train-00001-of-00002.parquet":  []byte("PAR1 second train shard PAR1"),
		"data/test-00000-of-00001.parquet":   []byte("PAR1 test shard PAR1"),
		"ARC-Easy/test-00000-of-00001.jsonl": []byte(`{"text": "a"}` + "\n"),
	}
	for name := range files {
		if strings.HasSuffix(name, ".parquet") {
			lfs = append(lfs, name)
		}
	}
	return files, lfs
}

// TestFetchDataset downloads dataset files through the datasets API and
// URLs into datasets--org--name, and refuses a dataset asked for as a
// model (and the reverse).
func TestFetchDataset(t *testing.T) {
	files, lfs := datasetFiles()
	hub := newFakeHub(t, "datasets/org/d", files, lfs...)
	var waits []time.Duration
	c := hubClient(t, hub, &waits)
	id := ID{Repo: "org/d", Type: Dataset}
	dir, commit, err := c.FetchFirst(context.Background(), id, []string{"nowhere/*.parquet", "data/train-*.parquet", "data/*.parquet"})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Cache.Dir, "datasets--org--d", "snapshots", hub.Commit); dir != want || commit != hub.Commit {
		t.Fatalf("FetchFirst = %s, %s; want %s", dir, commit, want)
	}
	train := map[string][]byte{}
	for _, n := range []string{"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"} {
		train[n] = files[n]
	}
	checkSnapshot(t, dir, train, hub.LFS)
	if _, err := os.Lstat(filepath.Join(dir, "data", "test-00000-of-00001.parquet")); err == nil {
		t.Error("the test split was fetched too; only the first matching pattern's files should be")
	}
	ref, err := os.ReadFile(filepath.Join(c.Cache.Dir, "datasets--org--d", "refs", "main"))
	if err != nil || string(ref) != hub.Commit {
		t.Errorf("refs/main = %q, %v; want %s", ref, err, hub.Commit)
	}
	log := hub.Log()
	if !slices.Contains(log, "GET /api/datasets/org/d/revision/main") || !slices.Contains(log, "HEAD /datasets/org/d/resolve/"+hub.Commit+"/data/train-00000-of-00002.parquet") {
		t.Errorf("requests %q lack the datasets API listing or resolve URL", log)
	}

	for _, tc := range []struct {
		name string
		id   ID
		pats []string
		want string
	}{
		{"a dataset asked for as a model", ID{Repo: "org/d"}, nil, "names a model, not a dataset"},
		{"no file matches", id, []string{"data/validation-*.parquet"}, "no file matches data/validation-*.parquet (the repository lists 5 files)"},
		{"bad pattern", id, []string{"data/["}, `file pattern "data/["`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.id.Type == Dataset {
				_, _, err = c.FetchFirst(context.Background(), tc.id, tc.pats)
			} else {
				_, _, err = c.FetchModel(context.Background(), tc.id)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	hub.With(func(h *fakeHub) { h.Gated = "hf_secret" })
	_, _, err = hubClient(t, hub, &waits).FetchFirst(context.Background(), id, []string{"data/test-*.parquet"})
	if err == nil || !strings.Contains(err.Error(), "the dataset is gated or private") || !strings.Contains(err.Error(), "accept its terms at "+hub.URL+"/datasets/org/d") {
		t.Errorf("a gated dataset: %v", err)
	}
	model := newFakeHub(t, "org/d", files, lfs...)
	_, _, err = hubClient(t, model, &waits).FetchFirst(context.Background(), id, []string{"data/*.parquet"})
	if err == nil || !strings.Contains(err.Error(), "dataset org/d: repository or revision \"main\" not found") || !strings.Contains(err.Error(), "that it names a dataset") {
		t.Errorf("a model asked for as a dataset: %v", err)
	}
}

// TestFetchLinksShardsTogether: when one shard of a set fails its
// checksum, none of the set is linked into the snapshot, so a later lookup
// never finds part of the shards and takes it for the whole.
func TestFetchLinksShardsTogether(t *testing.T) {
	files, lfs := datasetFiles()
	hub := newFakeHub(t, "datasets/org/d", files, lfs...)
	hub.With(func(h *fakeHub) { h.Corrupt["data/train-00001-of-00002.parquet"] = true })
	var waits []time.Duration
	c := hubClient(t, hub, &waits)
	id := ID{Repo: "org/d", Type: Dataset}
	if _, _, err := c.Fetch(context.Background(), id, []string{"data/train-*"}); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Fetch of a corrupt shard: %v", err)
	}
	snap := filepath.Join(c.Cache.Dir, "datasets--org--d", "snapshots", hub.Commit)
	if m, _ := filepath.Glob(filepath.Join(snap, "data", "*")); len(m) != 0 {
		t.Fatalf("the snapshot holds %v after a failed fetch", m)
	}
	hub.With(func(h *fakeHub) { h.Corrupt["data/train-00001-of-00002.parquet"] = false })
	before := len(hub.CDNGets())
	if _, _, err := c.Fetch(context.Background(), id, []string{"data/train-*"}); err != nil {
		t.Fatal(err)
	}
	// The good shard's blob was kept: only the bad one is downloaded again.
	if got := hub.CDNGets()[before:]; len(got) != 1 || !strings.Contains(got[0], hubtest.SHA256(files["data/train-00001-of-00002.parquet"])) {
		t.Errorf("second fetch downloaded %q, want only the corrupt shard", got)
	}
}

// TestResolveDataset resolves a dataset id with file patterns: a cache
// laid out by huggingface_hub (blob links in subfolders), a snapshot that
// lacks the split asked for, and a download from the fake Hub.
func TestResolveDataset(t *testing.T) {
	files, lfs := datasetFiles()
	hub := newFakeHub(t, "datasets/org/d", files, lfs...)
	src := t.TempDir()
	for _, n := range []string{"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"} {
		os.MkdirAll(filepath.Join(src, "data"), 0o755)
		os.WriteFile(filepath.Join(src, filepath.FromSlash(n)), files[n], 0o644)
	}
	laidOut := t.TempDir()
	cachedSnap := hubtest.Layout(t, laidOut, "datasets/org/d", src)
	checkSnapshot(t, cachedSnap, map[string][]byte{"data/train-00000-of-00002.parquet": files["data/train-00000-of-00002.parquet"]}, hub.LFS)
	empty := t.TempDir()
	tests := []struct {
		name     string
		cache    string
		path     string
		files    []string
		download bool
		offline  bool
		want     string // the directory; "" = an error
		line     string // in the log, or the error
		requests bool
	}{
		{"cached, offline", laidOut, "org/d", []string{"data/train-*.parquet"}, false, true, cachedSnap, "data: using Hugging Face cache snapshot " + cachedSnap + " (org/d@main → " + hubtest.Commit + ")", false},
		{"split not cached, offline", laidOut, "org/d", []string{"data/test-*.parquet"}, true, true, "",
			"holds no file matching data/test-*.parquet; HF_HUB_OFFLINE is set, so nothing is downloaded: unset it and fetch it with `pipeline fetch --repo-type dataset org/d --include 'data/test-*.parquet'`", false},
		{"not cached, no download", empty, "org/d@v1.0", []string{"data/train-*.parquet"}, false, false, "", "pipeline fetch --repo-type dataset org/d@v1.0 --include 'data/train-*.parquet'", false},
		{"no pattern", empty, "org/d", nil, true, false, "", "no file pattern given", false},
		{"downloaded", empty, "org/d", []string{"validation/*.parquet", "data/test-*.parquet"}, true, false, filepath.Join(empty, "datasets--org--d", "snapshots", hubtest.Commit), "data: dataset org/d: not in the Hugging Face cache: no " + filepath.Join(empty, "datasets--org--d", "refs", "main") + "; downloading from " + hub.URL, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hubtest.Env(t, hub.URL, tc.cache, tc.offline)
			before := len(hub.Log())
			var log strings.Builder
			got, err := Resolve(context.Background(), Request{Role: "data", Path: tc.path, Local: filepath.Join(t.TempDir(), tc.path), Type: Dataset, Files: tc.files, Download: tc.download, Log: &log})
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.line) {
					t.Fatalf("Resolve = %s, %v; want an error with %q", got, err, tc.line)
				}
			} else if err != nil || got != tc.want || !strings.Contains(log.String(), tc.line) {
				t.Fatalf("Resolve = %s, %v, log %q; want %s and %q", got, err, log.String(), tc.want, tc.line)
			}
			if requests := len(hub.Log()) > before; requests != tc.requests {
				t.Errorf("requests to the Hub: %v, want %v", requests, tc.requests)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(empty, "datasets--org--d", "snapshots", hubtest.Commit, "data", "test-00000-of-00001.parquet")); err != nil || string(b) != string(files["data/test-00000-of-00001.parquet"]) {
		t.Errorf("the downloaded test shard: %v", err)
	}
}
