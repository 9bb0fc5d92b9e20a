package hfhub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Request is what Resolve turns into a local directory.
type Request struct {
	Role  string   // who asks, starting the line Resolve writes: "teacher", "student", "--model", "data.train[0]"
	Path  string   // what the user wrote: a directory, or org/name[@revision]
	Local string   // Path as a local path (e.g. relative to a config file); "" means Path
	Type  RepoType // the repository Path names: Model ("" too) or Dataset
	// Files are the file patterns (path.Match syntax, relative to the
	// repository) a dataset is read through; the first that matches any
	// file counts. A cached snapshot with no match of any is treated as not
	// cached, and a download fetches the files of the first pattern that
	// matches on the Hub. Required for a dataset; unused for a model.
	Files    []string
	Download bool      // fetch from the Hub what is not cached (never under HF_HUB_OFFLINE)
	Log      io.Writer // gets the line saying what was used, and download progress; nil: nothing
}

// Resolve returns the local directory a model or dataset path names. An
// existing local directory (or file) wins; otherwise a Path of the form
// org/name[@revision] is looked up in the hub cache (CacheDir) and, with
// Download, fetched from the Hub when absent (a model's files with
// Client.FetchModel, not the whole repository; a dataset's with
// Client.FetchFirst of Files). Anything else is returned as Local
// unchanged, for the caller to report as missing. When Path could be an
// id, one line on Log says which was used.
func Resolve(ctx context.Context, r Request) (string, error) {
	local := r.Local
	if local == "" {
		local = r.Path
	}
	id, idErr := ParseID(r.Path)
	id.Type = r.Type
	if _, err := os.Stat(local); err == nil || idErr != nil {
		if idErr == nil {
			logf(r.Log, "%s: using local directory %s\n", r.Role, local)
		}
		return local, nil
	}
	if id.kind() == Dataset && len(r.Files) == 0 {
		return "", fmt.Errorf("%s: %s: no file pattern given; say which files of the dataset to read (e.g. data/train-*.parquet)", r.Role, id)
	}
	cache := Cache{Dir: CacheDir()}
	dir, commit, err := cache.Snapshot(id)
	if err == nil && id.kind() == Dataset && !holdsAny(dir, r.Files) {
		err = fmt.Errorf("%s: %w: snapshot %s holds no file matching %s", id, ErrNotCached, dir, strings.Join(r.Files, " or "))
	}
	if errors.Is(err, ErrNotCached) && r.Download && !Offline() {
		missing := err
		var c *Client
		if c, err = NewClient(r.Log); err == nil {
			logf(r.Log, "%s: %v; downloading from %s into %s\n", r.Role, missing, c.Endpoint, cache.Dir)
			if id.kind() == Dataset {
				dir, commit, err = c.FetchFirst(ctx, id, r.Files)
			} else {
				dir, commit, err = c.FetchModel(ctx, id)
			}
		}
	}
	switch {
	case errors.Is(err, ErrNotCached):
		var include []string
		if id.kind() == Dataset {
			include = r.Files
		}
		how := "fetch it with `" + id.fetchCommand(include) + "`"
		if Offline() {
			how = "HF_HUB_OFFLINE is set, so nothing is downloaded: unset it and " + how
		}
		return "", fmt.Errorf("%s: no local directory %s, and %v; %s (or with huggingface_hub), or set HF_HUB_CACHE to the cache that holds it", r.Role, local, err, how)
	case err != nil:
		return "", fmt.Errorf("%s %s: %w", r.Role, r.Path, err)
	}
	logf(r.Log, "%s: using Hugging Face cache snapshot %s (%s@%s → %s)\n", r.Role, dir, id.Repo, id.Rev(), commit)
	return dir, nil
}

// holdsAny reports whether a file of dir matches one of the patterns.
func holdsAny(dir string, patterns []string) bool {
	for _, p := range patterns {
		if m, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(p))); len(m) > 0 {
			return true
		}
	}
	return false
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}
