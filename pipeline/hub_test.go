package pipeline

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
			t.Setenv("HF_HUB_CACHE", tc.cache)
			t.Setenv("HF_ENDPOINT", hub.URL)
			t.Setenv("HF_TOKEN", "")
			t.Setenv("HF_HUB_OFFLINE", map[bool]string{true: "1", false: "0"}[tc.offline])
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

// TestResolveModelsKeepsLocalPaths: a teacher path written relative to a
// config file in another folder stays as written, so every later step
// resolves it against the config's folder once (before, ResolveModels
// stored the resolved path and the next resolution joined the folder
// again: "stat shared/reference/phi-tiny-en" for configs/phi-tiny-en.yaml
// run from the repository root).
func TestResolveModelsKeepsLocalPaths(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "models", "teacher"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, "configs", "run.yaml")
	if err := os.WriteFile(cfgPath, []byte("teacher: {path: ../models/teacher}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveModels(context.Background(), cfg, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if cfg.Teacher.Path != "../models/teacher" {
		t.Errorf("teacher.path became %q, want it as written", cfg.Teacher.Path)
	}
	if st, err := os.Stat(cfg.Resolve(cfg.Teacher.Path)); err != nil || !st.IsDir() {
		t.Errorf("resolving it again: %v", err)
	}
}
