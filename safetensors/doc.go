// Package safetensors reads and writes checkpoints in the safetensors format:
// an 8-byte little-endian header length N, N bytes of UTF-8 JSON describing
// every tensor (dtype, shape and a [begin, end) byte range relative to the
// data buffer), then the data buffer itself.
//
// Reading memory-maps the file read-only and validates the header as
// strictly as the reference implementation: the header size is capped at
// MaxHeaderSize, sizes are computed with checked arithmetic, and the tensors
// must tile the data buffer exactly, with no gaps, overlaps or trailing
// bytes. Nothing is allocated from a declared size before that size has been
// checked against the real file. Tensor copies one tensor out of the mapping
// into aligned memory, so a model is never read whole.
//
// A Set is a checkpoint directory as Hugging Face saves it: one
// model.safetensors, or shards listed by model.safetensors.index.json. Shards
// are opened lazily and must lie inside the directory (symlinks included:
// one that resolves outside the directory is refused). The one exception is
// a snapshot of the Hugging Face hub cache,
// <cache>/models--org--name/snapshots/<commit>, whose files are links into
// that repository's own blobs folder: those links are followed, links out of
// the repository's folder are still refused.
//
// Write and WriteStream produce deterministic files (tensors in the order
// given, contiguous offsets, header padded with spaces to a multiple of 8)
// and replace the target atomically.
//
// Place in the dependency order: a leaf that imports only mohawk/tensors and
// the standard library; checkpoint loading, reference comparisons and export
// build on it.
//
// Errors: bad input never panics. Every error names the file and, where one
// is involved, the tensor, and says what to do; malformed files wrap
// ErrFormat and short files wrap ErrTruncated, so callers can test with
// errors.Is.
package safetensors
