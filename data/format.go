package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// A file's format is found from its first bytes, whatever its name: a
// Parquet, gzip or zstd file is read as such, and any other binary file this
// table knows is refused with its name instead of being read as text.
var magics = []struct {
	prefix string
	kind   string // what the file is, for messages; "parquet", "gzip" and "zstd" are read
}{
	{"PAR1", "parquet"},
	{"\x1f\x8b", "gzip"},
	{"\x28\xb5\x2f\xfd", "zstd"},
	{"PK\x03\x04", "a zip archive"},
	{"PK\x05\x06", "a zip archive"},
	{"\x7fELF", "an ELF executable"},
	{"\xcf\xfa\xed\xfe", "a Mach-O executable"},
	{"\xfe\xed\xfa\xcf", "a Mach-O executable"},
	{"\xfd7zXZ\x00", "an xz archive"},
	{"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"},
	{"\x89PNG\r\n\x1a\n", "a PNG image"},
	{"\xff\xd8\xff", "a JPEG image"},
	{"%PDF-", "a PDF document"},
	{"\x93NUMPY", "a NumPy array"},
	{"ARROW1", "an Arrow IPC file"},
	{"MHWKTOKS", "a mohawk token cache"},
}

// sniff names what the bytes at the start of a file are: one of the kinds
// of magics, or "" for anything else (text, JSONL, or a binary file that the
// UTF-8 and NUL checks of checkText refuse).
func sniff(head []byte) string {
	for _, m := range magics {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			return m.kind
		}
	}
	return ""
}

// shard is one file of a source, with the format its content and name gave.
type shard struct {
	path   string
	format string // text, jsonl or parquet
	codec  string // "gzip", "zstd" or "" for a file stored as it is
}

// openShard finds the format of the file at path, given the source's
// normalized format ("" to detect it).
func openShard(ctx context.Context, path, format string) (shard, error) {
	head, err := abandonable(ctx, path, func() ([]byte, error) { return readHead(path) })
	if err != nil {
		return shard{}, err
	}
	sh := shard{path: path, format: format}
	switch kind := sniff(head); kind {
	case "parquet":
		if format != "" && format != "parquet" {
			return sh, fmt.Errorf("%s is a Parquet file (it starts with PAR1), but its format is set to %q; set data.format to parquet or leave it empty", path, format)
		}
		sh.format = "parquet"
		return sh, nil
	case "gzip", "zstd":
		if format == "parquet" {
			return sh, fmt.Errorf("%s is %s-compressed, not a Parquet file; Parquet files compress their pages themselves: give the .parquet file", path, kind)
		}
		sh.codec = kind
	case "":
	default:
		return sh, fmt.Errorf("%s is %s (by its first bytes), not text, JSONL or Parquet; point data.path (or --data) at the corpus", path, kind)
	}
	if format == "parquet" {
		return sh, fmt.Errorf("%s is not a Parquet file: it does not start with PAR1; set data.format to text or jsonl, or leave it empty", path)
	}
	if sh.format == "" {
		sh.format = "text"
		name := strings.ToLower(path)
		for _, ext := range []string{".gz", ".gzip", ".zst", ".zstd"} {
			name = strings.TrimSuffix(name, ext)
		}
		switch filepath.Ext(name) {
		case ".jsonl", ".ndjson":
			sh.format = "jsonl"
		}
	}
	return sh, nil
}

// readHead returns the first 16 bytes of the file at path (fewer if it is
// shorter).
func readHead(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w; check data.path", err)
	}
	defer f.Close()
	head := make([]byte, 16)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return head[:n], nil
}

// readText returns the bytes of a text or JSONL shard, decompressed, after
// checking that they are text: valid UTF-8 without NUL bytes. A compressed
// file must not hold a binary file either.
func (sh shard) readText(ctx context.Context) ([]byte, error) {
	raw, err := readFile(ctx, sh.path, sh.codec == "")
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w; check data.path", err)
	}
	where := ""
	switch sh.codec {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			raw, err = io.ReadAll(zr)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt gzip data: %v; check the file (gzip -t)", sh.path, err)
		}
		where = " of the decompressed data"
	case "zstd":
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sh.path, err)
		}
		raw, err = zr.DecodeAll(raw, nil)
		zr.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt zstd data: %v; check the file (zstd -t)", sh.path, err)
		}
		where = " of the decompressed data"
	}
	if sh.codec != "" {
		if kind := sniff(raw); kind != "" {
			return nil, fmt.Errorf("%s decompresses to %s, not text or JSONL; give text or JSONL compressed with gzip or zstd", sh.path, kind)
		}
	}
	if err := checkText(raw, 0); err != nil {
		return nil, sh.badText(err, where)
	}
	return raw, nil
}

// badText is the error for a text check of the shard's data that failed;
// where names the data when it is not the file's bytes as stored.
func (sh shard) badText(err error, where string) error {
	return fmt.Errorf("%s: %v%s; %s data must be UTF-8 text (is this a binary file?)", sh.path, err, where, sh.format)
}

// checkText reports the first NUL byte or invalid UTF-8 sequence of b, with
// its byte offset plus base (the offset of b in the file).
func checkText(b []byte, base int) error {
	nul := bytes.IndexByte(b, 0)
	valid := b
	if nul >= 0 {
		valid = b[:nul]
	}
	if !utf8.Valid(valid) {
		for i := 0; i < len(valid); {
			r, n := utf8.DecodeRune(valid[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("invalid UTF-8 at byte %d (0x%02x)", base+i, valid[i])
			}
			i += n
		}
	}
	if nul >= 0 {
		return fmt.Errorf("NUL byte at byte %d", base+nul)
	}
	return nil
}
