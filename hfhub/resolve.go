package hfhub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Request is what Resolve turns into a local directory.
type Request struct {
	Role     string    // who asks, starting the line Resolve writes: "teacher", "student", "--model"
	Path     string    // what the user wrote: a directory, or org/name[@revision]
	Local    string    // Path as a local path (e.g. relative to a config file); "" means Path
	Download bool      // fetch from the Hub what is not cached (never under HF_HUB_OFFLINE)
	Log      io.Writer // gets the line saying what was used, and download progress; nil: nothing
}

// Resolve returns the local directory a model path names. An existing
// local directory (or file) wins; otherwise a Path of the form
// org/name[@revision] is looked up in the hub cache (CacheDir) and, with
// Download, fetched from the Hub when absent (Client.FetchModel: the
// files a model needs, not the whole repository). Anything else is returned as
// Local unchanged, for the caller to report as missing. When Path could be
// an id, one line on Log says which was used.
func Resolve(ctx context.Context, r Request) (string, error) {
	local := r.Local
	if local == "" {
		local = r.Path
	}
	id, idErr := ParseID(r.Path)
	if _, err := os.Stat(local); err == nil || idErr != nil {
		if idErr == nil {
			logf(r.Log, "%s: using local directory %s\n", r.Role, local)
		}
		return local, nil
	}
	cache := Cache{Dir: CacheDir()}
	dir, commit, err := cache.Snapshot(id)
	if errors.Is(err, ErrNotCached) && r.Download && !Offline() {
		var c *Client
		if c, err = NewClient(r.Log); err == nil {
			logf(r.Log, "%s: %s is not in the Hugging Face cache %s; downloading it from %s\n", r.Role, id, cache.Dir, c.Endpoint)
			dir, commit, err = c.FetchModel(ctx, id)
		}
	}
	switch {
	case errors.Is(err, ErrNotCached):
		how := "fetch it with `pipeline fetch " + id.String() + "`"
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

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}
