package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hubSnapshot moves the checkpoint in src into the Hugging Face hub-cache
// layout under cache: models--org--name/blobs/<hash> holding the bytes,
// snapshots/<commit>/<file> a relative link to ../../blobs/<hash>. It
// returns the snapshot directory.
func hubSnapshot(t *testing.T, cache, src string) string {
	t.Helper()
	repo := filepath.Join(cache, "models--org--name")
	snap := filepath.Join(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567")
	for _, d := range []string{filepath.Join(repo, "blobs"), snap} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		blob := filepath.Join(repo, "blobs", strings.Repeat(string(rune('a'+i)), 40))
		if err := os.Rename(filepath.Join(src, e.Name()), blob); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", filepath.Base(blob)), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

func TestHubCacheSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, snap string) // changes the snapshot
		want  string                          // "" = opens and reads
	}{
		{"shards linked into the repository's blobs", func(*testing.T, string) {}, ""},
		{"shard linked into another repository's blobs", func(t *testing.T, snap string) {
			other := filepath.Join(snap, "..", "..", "..", "models--evil--repo", "blobs")
			relink(t, snap, shard2, other)
		}, "models--evil--repo"},
		{"shard linked to the repository's refs folder", func(t *testing.T, snap string) {
			relink(t, snap, shard2, filepath.Join(snap, "..", "..", "refs"))
		}, "refs"},
		{"shard linked outside the cache", func(t *testing.T, snap string) {
			relink(t, snap, shard2, t.TempDir())
		}, "outside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, want := checkpoint(t)
			snap := hubSnapshot(t, t.TempDir(), dir)
			tc.setup(t, snap)
			s, err := OpenDir(snap)
			if tc.want != "" {
				if err == nil {
					s.Close()
					t.Fatal("OpenDir accepted a shard linked out of the repository")
				}
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "resolves to") {
					t.Fatalf("error %q: want ErrFormat naming %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for name, w := range want {
				got, err := s.Tensor(name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Data, w.Data) {
					t.Errorf("tensor %s differs", name)
				}
			}
		})
	}
}

// relink moves the blob shard links to into folder and points shard there.
func relink(t *testing.T, snap, shard, folder string) {
	t.Helper()
	link := filepath.Join(snap, shard)
	blob, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(folder, filepath.Base(blob))
	if err := os.Rename(blob, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, link); err != nil {
		t.Fatal(err)
	}
}
