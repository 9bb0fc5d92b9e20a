// Package hubtest lays a model directory out in a Hugging Face hub cache
// the way huggingface_hub does, for tests of code that loads models by id.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Commit is the commit hash every Layout records for refs/main.
const Commit = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"

// Layout copies the files of src into cache as repository repo
// ("org/name") at Commit: blobs/<sha256> for .safetensors files (as Git
// LFS stores them), blobs/<git blob sha1> for the others, and
// snapshots/<Commit>/<file> relative links to ../../blobs/<hash>, with
// refs/main naming the commit. It returns the snapshot directory.
func Layout(t testing.TB, cache, repo, src string) string {
	t.Helper()
	root := filepath.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"))
	snap := filepath.Join(root, "snapshots", Commit)
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, "refs"), snap} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "refs", "main"), []byte(Commit), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		digest := GitBlobSHA1(b)
		if strings.HasSuffix(e.Name(), ".safetensors") {
			digest = SHA256(b)
		}
		if err := os.WriteFile(filepath.Join(root, "blobs", digest), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", digest), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// SHA256 is the hex sha256 of b: the name of a Git LFS file's blob.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// GitBlobSHA1 is git's object id of b, sha1("blob <len>\x00" + b): the
// name of a small file's blob.
func GitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Files reads the named files of dir (all its regular files when no name
// is given) for a Hub to serve, and lists the .safetensors ones, which the
// Hub stores with Git LFS.
func Files(t testing.TB, dir string, names ...string) (files map[string][]byte, lfs []string) {
	t.Helper()
	if len(names) == 0 {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				names = append(names, e.Name())
			}
		}
	}
	files = map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
		if strings.HasSuffix(n, ".safetensors") {
			lfs = append(lfs, n)
		}
	}
	return files, lfs
}
