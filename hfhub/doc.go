// Package hfhub finds Hugging Face models and datasets by id ("org/name"
// or "org/name@revision") in the hub cache that huggingface_hub keeps, and
// downloads them into that same cache, so a repository fetched with Python
// is used as is and one fetched here is usable from Python. (The Arrow
// cache of the datasets library, $HF_DATASETS_CACHE, is not read: a
// dataset is the repository's own files, e.g. its Parquet shards.)
//
// The cache is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub. A model lives in models--org--name/, a dataset
// in datasets--org--name/:
// refs/<branch or tag> holds a commit hash, snapshots/<commit>/<file> is a
// relative symbolic link to ../../blobs/<etag>, and blobs/<etag> holds the
// bytes, named by the Hub's ETag: the sha256 of the content for files
// stored with Git LFS, the git blob sha1 for small files. A download in
// progress is blobs/<etag>.incomplete and is resumed with an HTTP Range
// request; concurrent downloads of one blob (other goroutines or processes)
// wait on an flock of .locks/models--org--name/<etag>.lock. A fetch links
// its files into the snapshot only once all of them are downloaded.
//
// Downloads go through the Hub's HTTP API at $HF_ENDPOINT (default
// https://huggingface.co): GET /api/models/{repo}/revision/{rev} lists the
// files and the commit; HEAD /{repo}/resolve/{commit}/{file} gives the
// file's ETag and size (X-Linked-Etag and X-Linked-Size for LFS files) and,
// for LFS files, a redirect to a CDN, which is then fetched. The token is
// $HF_TOKEN, else the file $HF_TOKEN_PATH, else $HF_HOME/token; it is sent
// only to the endpoint's host. HTTP 429 and 503 are retried after their
// Retry-After delay (bounded), a cut connection is resumed, and every blob
// is checked against its ETag (size and sha256 or git sha1) before it is
// linked into the snapshot. A dataset's URLs are /api/datasets/{repo}/…
// and /datasets/{repo}/resolve/…. $HF_HUB_OFFLINE=1 forbids any
// connection.
//
// Resolve is the one entry point the rest of mohawk uses: it turns what a
// user wrote (a directory or an id, with file patterns for a dataset) into
// a local directory, preferring an existing local directory of that name,
// and says on one line which it used.
//
// Place in the dependency order: a leaf over the standard library and
// progressbar; cmd/pipeline and pipeline call it, nothing in it knows
// about models.
//
// Errors name the repository, revision and file, and say what to do: set
// HF_TOKEN for a gated repository, check the id for a missing one, run
// `pipeline fetch` (with --repo-type dataset for a dataset) for one that is
// not cached.
package hfhub
