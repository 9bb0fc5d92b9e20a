package torchpickle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// Error kinds, for errors.Is. The messages that wrap them name the file,
// the zip member and the tensor.
var (
	// ErrFormat marks a file that is malformed, truncated or hostile.
	ErrFormat = errors.New("invalid torch checkpoint")
	// ErrRefused marks a pickle that names a global outside the allow-list.
	ErrRefused = errors.New("forbidden global")
	// ErrUnsupported marks a well-formed feature this reader does not
	// implement.
	ErrUnsupported = errors.New("unsupported")
)

// span locates a stored zip member's bytes in the file.
type span struct {
	off, n int64
	crc    uint32
}

// archive is a validated torch.save zip: every member name is relative and
// unique, and exactly one <prefix>/data.pkl exists.
type archive struct {
	path    string // for messages
	r       io.ReaderAt
	size    int64
	prefix  string // the archive's top directory, with its slash
	members map[string]*zip.File
	spans   map[string]span
}

func openArchive(path string, r io.ReaderAt, size int64) (*archive, error) {
	zr, err := zip.NewReader(r, size)
	// ErrInsecurePath comes with a usable reader; the names are checked
	// below either way.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		var head [9]byte
		n, _ := r.ReadAt(head[:], 0)
		switch {
		case n >= 1 && head[0] == opProto:
			return nil, fmt.Errorf("%s: %w: this is a pickle, not a zip: the legacy torch.save format of PyTorch before 1.6; re-save it with a current PyTorch (torch.save(torch.load(path), path))", path, ErrUnsupported)
		case n == 9 && head[8] == '{':
			return nil, fmt.Errorf("%s: %w: this looks like a safetensors file, not a torch.save zip; read it with mohawk/safetensors", path, ErrFormat)
		}
		return nil, fmt.Errorf("%s: %w: not a zip archive (%v); torch.save writes zip files since PyTorch 1.6", path, ErrFormat, err)
	}
	a := &archive{path: path, r: r, size: size, members: map[string]*zip.File{}, spans: map[string]span{}}
	var pickles []string
	for _, f := range zr.File {
		if !safeName(f.Name) {
			return nil, fmt.Errorf("%s: %w: zip member %q has an absolute or parent-relative name, which torch.save never writes; refusing the archive", path, ErrFormat, f.Name)
		}
		if _, dup := a.members[f.Name]; dup {
			return nil, fmt.Errorf("%s: %w: zip member %q appears twice; refusing the ambiguous archive", path, ErrFormat, f.Name)
		}
		a.members[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && dir != "" && !strings.Contains(dir, "/") {
			pickles = append(pickles, f.Name)
		}
	}
	switch len(pickles) {
	case 0:
		return nil, fmt.Errorf("%s: %w: the zip has no <archive>/data.pkl member; it is not a torch.save checkpoint", path, ErrFormat)
	case 1:
		a.prefix = strings.TrimSuffix(pickles[0], "data.pkl")
	default:
		return nil, fmt.Errorf("%s: %w: the zip has %d data.pkl members (%q, ...); a torch.save checkpoint has one", path, ErrFormat, len(pickles), pickles[0])
	}
	return a, nil
}

// safeName reports whether a zip member name is relative and free of ".."
// components, in either slash direction.
func safeName(name string) bool {
	if name == "" || name[0] == '/' || name[0] == '\\' || strings.ContainsRune(name, 0) {
		return false
	}
	if len(name) >= 2 && name[1] == ':' {
		return false // a Windows drive letter
	}
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return false
		}
	}
	return true
}

// span locates member name, which must be stored uncompressed and
// unencrypted and lie inside the file.
func (a *archive) span(name string) (span, error) {
	if s, ok := a.spans[name]; ok {
		return s, nil
	}
	f, ok := a.members[name]
	if !ok {
		return span{}, fmt.Errorf("%w: zip member %s is missing", ErrFormat, name)
	}
	if f.Flags&1 != 0 {
		return span{}, fmt.Errorf("%w: zip member %s is encrypted, which torch.save never does", ErrUnsupported, name)
	}
	if f.Method != zip.Store {
		return span{}, fmt.Errorf("%w: zip member %s is compressed (method %d); torch.save stores members uncompressed, so re-save the checkpoint with torch.save rather than re-zipping it", ErrUnsupported, name, f.Method)
	}
	if f.CompressedSize64 != f.UncompressedSize64 {
		return span{}, fmt.Errorf("%w: stored zip member %s claims %d bytes compressed but %d uncompressed", ErrFormat, name, f.CompressedSize64, f.UncompressedSize64)
	}
	off, err := f.DataOffset()
	if err != nil {
		return span{}, fmt.Errorf("%w: zip member %s: %w", ErrFormat, name, err)
	}
	if n := f.UncompressedSize64; off < 0 || off > a.size || n > uint64(a.size-off) {
		return span{}, fmt.Errorf("%w: zip member %s claims %d bytes at offset %d, past the end of the %d-byte file; re-download it", ErrFormat, name, n, off, a.size)
	}
	s := span{off: off, n: int64(f.UncompressedSize64), crc: f.CRC32}
	a.spans[name] = s
	return s, nil
}

// readAt fills dst from byte off of the member at s. When dst is the whole
// member it also verifies the member's CRC-32.
func (a *archive) readAt(dst []byte, s span, off int64, member string) error {
	if n, err := a.r.ReadAt(dst, s.off+off); n < len(dst) {
		return fmt.Errorf("%w: reading zip member %s: %v; the file is truncated or changed while it was read", ErrFormat, member, err)
	}
	if off == 0 && int64(len(dst)) == s.n && crc32.ChecksumIEEE(dst) != s.crc {
		return fmt.Errorf("%w: zip member %s fails its CRC-32 check; the file is corrupt, re-download it", ErrFormat, member)
	}
	return nil
}

// readMember reads the whole member name.
func (a *archive) readMember(name string) ([]byte, error) {
	s, err := a.span(name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, s.n)
	return b, a.readAt(b, s, 0, name)
}

// checkByteOrder refuses big-endian checkpoints. Writers before the
// byteorder record existed were little-endian in practice.
func (a *archive) checkByteOrder() error {
	name := a.prefix + "byteorder"
	f, ok := a.members[name]
	if !ok {
		return nil
	}
	if f.UncompressedSize64 > 16 {
		return fmt.Errorf("%w: zip member %s has %d bytes; it should say little or big", ErrFormat, name, f.UncompressedSize64)
	}
	b, err := a.readMember(name)
	if err != nil {
		return err
	}
	switch string(bytes.TrimSpace(b)) {
	case "little":
		return nil
	case "big":
		return fmt.Errorf("%w: zip member %s says the storages are big-endian; re-save the checkpoint on a little-endian machine", ErrUnsupported, name)
	}
	return fmt.Errorf("%w: zip member %s says %q; it should say little or big", ErrFormat, name, b)
}
