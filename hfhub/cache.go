package hfhub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotCached is wrapped by the error of a lookup that finds no snapshot.
var ErrNotCached = errors.New("not in the Hugging Face cache")

// Cache is a hub cache folder in huggingface_hub's layout (see the
// package documentation).
type Cache struct{ Dir string }

func (c Cache) repoDir(id ID) string { return filepath.Join(c.Dir, id.folder()) }

func (c Cache) snapshotDir(id ID, commit string) string {
	return filepath.Join(c.repoDir(id), "snapshots", commit)
}

// Snapshot finds id's snapshot folder and the commit it holds: a commit
// hash names snapshots/<hash> directly, a branch or tag is looked up in
// refs/. The error wraps ErrNotCached when either is missing.
func (c Cache) Snapshot(id ID) (dir, commit string, err error) {
	commit = id.Rev()
	if !isCommit(commit) {
		ref := filepath.Join(c.repoDir(id), "refs", filepath.FromSlash(commit))
		b, err := os.ReadFile(ref)
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("%s: %w: no %s", id, ErrNotCached, ref)
		}
		if err != nil {
			return "", "", fmt.Errorf("%s: reading %s: %w", id, ref, err)
		}
		commit = strings.TrimSpace(string(b))
		if !isCommit(commit) {
			return "", "", fmt.Errorf("%s: %s holds %q, not a commit hash; delete it and fetch the model again", id, ref, commit)
		}
	}
	dir = c.snapshotDir(id, commit)
	switch st, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", fmt.Errorf("%s: %w: no %s", id, ErrNotCached, dir)
	case err != nil:
		return "", "", fmt.Errorf("%s: %w", id, err)
	case !st.IsDir():
		return "", "", fmt.Errorf("%s: %s is not a directory; delete it and fetch the model again", id, dir)
	}
	return dir, commit, nil
}
