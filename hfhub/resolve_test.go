package hfhub

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/internal/hubtest"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{"microsoft/phi-1_5", ID{Repo: "microsoft/phi-1_5"}, true},
		{"org/name@main", ID{Repo: "org/name", Revision: "main"}, true},
		{"org/name@refs/pr/1", ID{Repo: "org/name", Revision: "refs/pr/1"}, true},
		{"org/name@0123456789abcdef0123456789abcdef01234567", ID{Repo: "org/name", Revision: "0123456789abcdef0123456789abcdef01234567"}, true},
		{"name", ID{}, false},
		{"a/b/c", ID{}, false},
		{"./teacher", ID{}, false},
		{"../phi", ID{}, false},
		{"/abs/path", ID{}, false},
		{"org/na--me", ID{}, false},
		{"org/name.", ID{}, false},
		{"org/name@", ID{}, false},
		{"org/name@../../etc", ID{}, false},
		{"org/name@/abs", ID{}, false},
		{"org/" + strings.Repeat("x", 97), ID{}, false},
	}
	for _, tc := range tests {
		got, err := ParseID(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCacheDirAndToken(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name      string
		env       map[string]string
		cache     string
		token     string
		tokenFile string // written before the lookup, relative to home
	}{
		{"defaults", nil, filepath.Join(home, ".cache", "huggingface", "hub"), "hf_file", ".cache/huggingface/token"},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": filepath.Join(home, "xdg")}, filepath.Join(home, "xdg", "huggingface", "hub"), "", ""},
		{"HF_HOME", map[string]string{"HF_HOME": "~/hf"}, filepath.Join(home, "hf", "hub"), "hf_home", "hf/token"},
		{"HF_HUB_CACHE wins", map[string]string{"HF_HOME": "/x", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HUB_CACHE": "$HOME/c"}, filepath.Join(home, "c"), "", ""},
		{"legacy HUGGINGFACE_HUB_CACHE", map[string]string{"HUGGINGFACE_HUB_CACHE": "/legacy"}, "/legacy", "", ""},
		{"HF_TOKEN_PATH", map[string]string{"HF_TOKEN_PATH": filepath.Join(home, "tok")}, filepath.Join(home, ".cache", "huggingface", "hub"), "hf_path", "tok"},
		{"HF_TOKEN wins", map[string]string{"HF_TOKEN": " hf_env\n"}, filepath.Join(home, ".cache", "huggingface", "hub"), "hf_env", ".cache/huggingface/token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"HF_HOME", "XDG_CACHE_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HF_TOKEN_PATH"} {
				t.Setenv(k, tc.env[k])
			}
			t.Setenv("HOME", home)
			os.RemoveAll(filepath.Join(home, ".cache"))
			if tc.tokenFile != "" {
				p := filepath.Join(home, tc.tokenFile)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if tc.token == "hf_env" {
					os.WriteFile(p, []byte("hf_file\n"), 0o600)
				} else {
					os.WriteFile(p, []byte(tc.token+"\n"), 0o600)
				}
			}
			if got := CacheDir(); got != tc.cache {
				t.Errorf("CacheDir = %s, want %s", got, tc.cache)
			}
			if got, err := Token(); err != nil || got != tc.token {
				t.Errorf("Token = %q, %v; want %q", got, err, tc.token)
			}
		})
	}
}

func TestOfflineValues(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "on": true, "YES": true, "True": true, "0": false, "": false, "no": false} {
		t.Setenv("HF_HUB_OFFLINE", v)
		t.Setenv("TRANSFORMERS_OFFLINE", "")
		if got := Offline(); got != want {
			t.Errorf("HF_HUB_OFFLINE=%q: Offline = %v, want %v", v, got, want)
		}
	}
}

// TestResolve goes through the one resolver with a cache made by Fetch
// and a fake Hub behind HF_ENDPOINT.
func TestResolve(t *testing.T) {
	files := map[string][]byte{"config.json": []byte(`{"a": 1}`), "model.safetensors": []byte("weights")}
	hub := newFakeHub(t, "org/m", files, "model.safetensors")
	cacheDir := t.TempDir()
	local := t.TempDir()
	os.MkdirAll(filepath.Join(local, "org", "here"), 0o755)
	snap := filepath.Join(cacheDir, "models--org--m", "snapshots", hub.Commit)
	tests := []struct {
		name     string
		path     string
		download bool
		offline  bool
		want     string // the directory; "" = an error
		line     string // what the one line (or the error) says
	}{
		{"not an id, missing: left to the caller", "no/such/dir", false, false, filepath.Join(local, "no/such/dir"), ""},
		{"local directory wins", "org/here", false, false, filepath.Join(local, "org", "here"), "teacher: using local directory " + filepath.Join(local, "org", "here")},
		{"not cached, no download", "org/m", false, false, "", "pipeline fetch org/m"},
		{"not cached, offline", "org/m", true, true, "", "HF_HUB_OFFLINE is set"},
		{"downloaded", "org/m", true, false, snap, "teacher: using Hugging Face cache snapshot " + snap + " (org/m@main → " + hub.Commit + ")"},
		{"cached branch, offline", "org/m@main", false, true, snap, "(org/m@main → " + hub.Commit + ")"},
		{"cached commit", "org/m@" + hub.Commit, false, false, snap, "(org/m@" + hub.Commit + " → " + hub.Commit + ")"},
		{"unknown branch offline", "org/m@dev", false, true, "", "refs/dev"},
	}
	for _, tc := range tests { // in order: the download fills the cache for the rest
		t.Run(tc.name, func(t *testing.T) {
			hubtest.Env(t, hub.URL, cacheDir, tc.offline)
			before := len(hub.Log())
			var log strings.Builder
			got, err := Resolve(context.Background(), Request{Role: "teacher", Path: tc.path, Local: filepath.Join(local, tc.path), Download: tc.download, Log: &log})
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.line) {
					t.Fatalf("Resolve = %s, %v; want an error with %q", got, err, tc.line)
				}
			} else if err != nil || got != tc.want || !strings.Contains(log.String(), tc.line) {
				t.Fatalf("Resolve = %s, %v, log %q; want %s and %q", got, err, log.String(), tc.want, tc.line)
			}
			if tc.offline && len(hub.Log()) != before {
				t.Errorf("offline, yet %d requests reached the Hub", len(hub.Log())-before)
			}
		})
	}
}
