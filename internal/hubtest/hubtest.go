// Package hubtest lays a model or dataset directory out in a Hugging Face
// hub cache the way huggingface_hub does, and serves one from a fake Hub,
// for tests of code that loads repositories by id.
package hubtest

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Commit is the commit hash every Layout records for refs/main.
const Commit = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"

// Layout copies the files of src, subfolders included, into cache as
// repository repo at Commit: blobs/<sha256> for .safetensors and .parquet
// files (as Git LFS stores them), blobs/<git blob sha1> for the others, and
// snapshots/<Commit>/<file> relative links to ../../blobs/<hash> (one more
// ../ per subfolder), with refs/main naming the commit. repo is the model
// "org/name" (in models--org--name) or the dataset "datasets/org/name" (in
// datasets--org--name). It returns the snapshot directory.
func Layout(t testing.TB, cache, repo, src string) string {
	t.Helper()
	typ, name := split(repo)
	root := filepath.Join(cache, typ+"s--"+strings.ReplaceAll(name, "/", "--"))
	snap := filepath.Join(root, "snapshots", Commit)
	for _, d := range []string{filepath.Join(root, "blobs"), filepath.Join(root, "refs"), snap} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "refs", "main"), []byte(Commit), 0o644); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		digest := GitBlobSHA1(b)
		if isLFS(rel) {
			digest = SHA256(b)
		}
		if err := os.WriteFile(filepath.Join(root, "blobs", digest), b, 0o644); err != nil {
			return err
		}
		link := filepath.Join(snap, rel)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		up := strings.Repeat(".."+string(filepath.Separator), strings.Count(rel, string(filepath.Separator)))
		return os.Symlink(filepath.Join(up+"..", "..", "blobs", digest), link)
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// split reads "org/name" as a model and "datasets/org/name" as a dataset.
func split(repo string) (typ, name string) {
	if name, ok := strings.CutPrefix(repo, "datasets/"); ok {
		return "dataset", name
	}
	return "model", repo
}

// isLFS tells the files the Hub stores with Git LFS, by their names.
func isLFS(name string) bool {
	return strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".parquet")
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
// is given; names may be paths into subfolders) for a Hub to serve, and
// lists the .safetensors and .parquet ones, which the Hub stores with Git
// LFS.
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
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
		if isLFS(n) {
			lfs = append(lfs, n)
		}
	}
	return files, lfs
}

// Env points huggingface_hub's settings, for the rest of the test, at
// cache and endpoint (a Hub's URL; "" leaves HF_ENDPOINT unset), with no
// token and HF_HUB_OFFLINE set as offline says.
func Env(t testing.TB, endpoint, cache string, offline bool) {
	t.Helper()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_ENDPOINT", endpoint)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(cache, "no-token"))
	t.Setenv("TRANSFORMERS_OFFLINE", "")
	t.Setenv("HF_HUB_OFFLINE", map[bool]string{true: "1", false: ""}[offline])
}
