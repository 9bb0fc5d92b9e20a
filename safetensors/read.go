package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"mohawk/tensors"
)

// maxRank bounds a tensor's number of dimensions: NumPy, which every
// safetensors writer goes through or mirrors, allows at most 64.
const maxRank = 64

// MaxHeaderSize is the largest JSON header accepted, in bytes: the
// reference implementation's limit.
const MaxHeaderSize = 100_000_000

// Error kinds, for errors.Is. The messages that wrap them name the file and
// the tensor.
var (
	// ErrFormat marks a file whose header or layout is invalid.
	ErrFormat = errors.New("invalid safetensors")
	// ErrTruncated marks a file shorter than its header says it is.
	ErrTruncated = errors.New("truncated")

	errUnsupportedDType = errors.New("unsupported dtype")
)

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	DType tensors.DType
	Shape []int64
	// Offset is where the tensor's bytes start, counted from the start of
	// the file (length prefix and header included), so it can be handed to
	// ReadAt directly.
	Offset int64
	// Size is the tensor's length in bytes.
	Size int64
}

// File is an open, validated safetensors file backed by a read-only memory
// mapping. Its methods are safe for concurrent use.
type File struct {
	path     string
	infos    map[string]TensorInfo
	names    []string
	metadata map[string]string

	mu     sync.RWMutex
	mapped []byte // the whole file; nil once closed
}

// Open memory-maps and validates the safetensors file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening safetensors file: %w", err)
	}
	defer f.Close()
	return openFile(path, f)
}

// openFile maps f, which was opened from path; the caller closes f.
func openFile(path string, f *os.File) (sf *File, err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %v); pass a .safetensors file", path, st.Mode())
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: %w: the file has %d bytes, less than the 8-byte header length; re-download or re-save the file", path, ErrTruncated, size)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes is too large to map on this platform", path, size)
	}
	mapped, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mapping the file into memory: %w", path, err)
	}
	defer func() {
		if err != nil {
			syscall.Munmap(mapped)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverFault(path, "reading the header", &err)
	return parse(path, mapped)
}

// recoverFault turns a memory fault raised while touching a mapping (the
// file shrank after it was mapped) into an error; other panics go on. It
// must be deferred directly, with debug.SetPanicOnFault(true) in effect.
func recoverFault(path, doing string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	if _, ok := r.(interface{ Addr() uintptr }); !ok {
		panic(r)
	}
	*err = fmt.Errorf("%s: %w: memory fault while %s: the file shrank on disk after it was opened; stop whatever rewrites it and reopen it", path, ErrTruncated, doing)
}

// span is a tensor's entry while the header is validated.
type span struct {
	name       string
	dt         tensors.DType
	shape      []int64
	begin, end uint64 // relative to the data buffer
}

// parse validates the complete file contents b, at least 8 bytes, which
// stay referenced by the returned File.
func parse(path string, b []byte) (*File, error) {
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%s: %w: header length %d exceeds the %d-byte limit; the file is corrupt or not a safetensors file", path, ErrFormat, n, MaxHeaderSize)
	}
	if rest := uint64(len(b) - 8); n > rest {
		return nil, fmt.Errorf("%s: %w: header length %d exceeds the %d bytes that follow it; re-download or re-save the file", path, ErrTruncated, n, rest)
	}
	header := b[8 : 8+n]
	dataLen := uint64(len(b)) - 8 - n
	if !utf8.Valid(header) {
		return nil, fmt.Errorf("%s: %w: the header is not valid UTF-8; the file is corrupt or not a safetensors file", path, ErrFormat)
	}

	var spans []span
	var metadata map[string]string
	err := eachMember(header, func(key string, val json.RawMessage) error {
		if key == "__metadata__" {
			m, err := parseMetadata(val)
			if err != nil {
				return fmt.Errorf("__metadata__: %w", err)
			}
			metadata = m
			return nil
		}
		s, err := parseSpan(key, val)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", key, err)
		}
		spans = append(spans, s)
		return nil
	})
	if err != nil {
		advice := "the file is corrupt or was written by a broken tool; re-save it"
		if errors.Is(err, errUnsupportedDType) {
			advice = "convert the checkpoint to a supported dtype"
		}
		return nil, fmt.Errorf("%s: %w: header: %w; %s", path, ErrFormat, err, advice)
	}
	if err := checkTiling(path, spans, dataLen); err != nil {
		return nil, err
	}

	f := &File{path: path, infos: make(map[string]TensorInfo, len(spans)), metadata: metadata, mapped: b}
	start := 8 + int64(n)
	for _, s := range spans {
		f.infos[s.name] = TensorInfo{DType: s.dt, Shape: s.shape, Offset: start + int64(s.begin), Size: int64(s.end - s.begin)}
		f.names = append(f.names, s.name)
	}
	slices.Sort(f.names)
	return f, nil
}

// checkTiling verifies that the spans cover [0, dataLen) exactly, in order
// of their offsets.
func checkTiling(path string, spans []span, dataLen uint64) error {
	sorted := slices.Clone(spans)
	slices.SortFunc(sorted, func(a, b span) int {
		if c := cmpU64(a.begin, b.begin); c != 0 {
			return c
		}
		if c := cmpU64(a.end, b.end); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.name), []byte(b.name))
	})
	var cursor uint64
	var prev *span
	for i := range sorted {
		s := &sorted[i]
		switch {
		case s.begin < cursor:
			return fmt.Errorf("%s: %w: tensor %q (bytes [%d,%d)) overlaps tensor %q (bytes [%d,%d)); tensors must not share bytes, re-save the file",
				path, ErrFormat, s.name, s.begin, s.end, prev.name, prev.begin, prev.end)
		case s.begin > cursor:
			return fmt.Errorf("%s: %w: bytes [%d,%d) of the data section belong to no tensor (gap before tensor %q); tensors must cover the data section contiguously, re-save the file",
				path, ErrFormat, cursor, s.begin, s.name)
		}
		if s.end > dataLen {
			return fmt.Errorf("%s: %w: tensor %s needs bytes [%d,%d) but the data section has %d bytes; re-download or re-save the file",
				path, ErrTruncated, s.name, s.begin, s.end, dataLen)
		}
		cursor, prev = s.end, s
	}
	if cursor < dataLen {
		return fmt.Errorf("%s: %w: %d trailing bytes after the last tensor (the data section has %d bytes, the tensors cover %d); re-save the file",
			path, ErrFormat, dataLen-cursor, dataLen, cursor)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// eachMember calls fn on each member of the JSON object raw, in order. It
// rejects anything but exactly one object, and duplicate keys.
func eachMember(raw []byte, fn func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("not JSON: object key %v is not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("not JSON: value of %q: %w", key, err)
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("not JSON after the object: %w", err)
		}
		return fmt.Errorf("unexpected %v after the JSON object", tok)
	}
	return nil
}

// jsonKind is a coarse description of a JSON value for error messages, and
// for checking a value's type before unmarshaling it (encoding/json accepts
// null for anything and quoted numbers for json.Number).
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "boolean"
	default:
		return "number"
	}
}

// withArticle is a jsonKind result for use in a sentence.
func withArticle(kind string) string {
	switch kind {
	case "null", "nothing":
		return kind
	case "object", "array":
		return "an " + kind
	}
	return "a " + kind
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if jsonKind(raw) == "null" {
		return nil, nil
	}
	m := make(map[string]string)
	err := eachMember(raw, func(key string, val json.RawMessage) error {
		if k := jsonKind(val); k != "string" {
			return fmt.Errorf("value of %q is %s, not a string", key, withArticle(k))
		}
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return fmt.Errorf("value of %q: %w", key, err)
		}
		m[key] = s
		return nil
	})
	return m, err
}

func parseSpan(name string, raw json.RawMessage) (span, error) {
	s := span{name: name}
	var dtype, shape, offsets json.RawMessage
	err := eachMember(raw, func(key string, val json.RawMessage) error {
		switch key {
		case "dtype":
			dtype = val
		case "shape":
			shape = val
		case "data_offsets":
			offsets = val
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	for _, f := range []struct {
		key string
		val json.RawMessage
	}{{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}} {
		if f.val == nil {
			return s, fmt.Errorf("%s is missing", f.key)
		}
	}

	if k := jsonKind(dtype); k != "string" {
		return s, fmt.Errorf("dtype is %s, not a string", withArticle(k))
	}
	var dtName string
	if err := json.Unmarshal(dtype, &dtName); err != nil {
		return s, fmt.Errorf("dtype: %w", err)
	}
	dt, ok := dtypeNames[dtName]
	if !ok {
		return s, fmt.Errorf("%w %q (supported: %s)", errUnsupportedDType, dtName, supportedDTypes)
	}
	s.dt = dt

	dims, err := integers(shape, maxRank)
	if err != nil {
		return s, fmt.Errorf("shape: %w", err)
	}
	size := uint64(dt.Size())
	for i, d := range dims {
		if d > math.MaxInt64 {
			return s, fmt.Errorf("shape %s: dimension %d is out of range", shape, i)
		}
		if d != 0 && size > math.MaxInt64/d {
			return s, fmt.Errorf("shape %s × %d bytes per element overflows a 64-bit size", shape, dt.Size())
		}
		size *= d
		s.shape = append(s.shape, int64(d))
	}
	if s.shape == nil {
		s.shape = []int64{}
	}

	offs, err := integers(offsets, 2)
	if err != nil {
		return s, fmt.Errorf("data_offsets: %w", err)
	}
	if len(offs) != 2 {
		return s, fmt.Errorf("data_offsets has %d entries, want [begin, end]", len(offs))
	}
	s.begin, s.end = offs[0], offs[1]
	if s.begin > s.end {
		return s, fmt.Errorf("data_offsets [%d,%d] ends before it begins", s.begin, s.end)
	}
	if got := s.end - s.begin; got != size {
		return s, fmt.Errorf("data_offsets [%d,%d] span %d bytes but %s%v needs %d", s.begin, s.end, got, dtName, s.shape, size)
	}
	return s, nil
}

// integers decodes a JSON array of at most limit non-negative integers,
// reading no further than entry limit+1.
func integers(raw json.RawMessage, limit int) ([]uint64, error) {
	if k := jsonKind(raw); k != "array" {
		return nil, fmt.Errorf("is %s, not an array of integers", withArticle(k))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var out []uint64
	for i := 0; dec.More(); i++ {
		if i == limit {
			return nil, fmt.Errorf("has more than %d entries", limit)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("entry %d is %s, not an integer", i, describeToken(tok))
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			if strings.HasPrefix(string(num), "-") && !strings.ContainsAny(string(num), ".eE") {
				return nil, fmt.Errorf("entry %d (%s) is negative", i, num)
			}
			return nil, fmt.Errorf("entry %d (%s) is not an integer in [0, 2^64)", i, num)
		}
		out = append(out, v)
	}
	return out, nil
}

// describeToken names a non-number JSON token for a message.
func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "the string " + strconv.Quote(v)
	case bool:
		return "a boolean"
	}
	return "null"
}

// Names lists the tensors, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info describes the named tensor; ok is false if there is none.
func (f *File) Info(name string) (info TensorInfo, ok bool) {
	info, ok = f.infos[name]
	info.Shape = slices.Clone(info.Shape)
	return info, ok
}

// Metadata returns a copy of the header's __metadata__ (nil if absent).
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Tensor copies the named tensor out of the file into aligned memory, in
// its stored dtype.
func (f *File) Tensor(name string) (t *tensors.Tensor, err error) {
	info, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q; see Names for what the file holds", f.path, name)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.mapped == nil {
		return nil, fmt.Errorf("%s: reading tensor %q: the file is closed", f.path, name)
	}
	t = tensors.Zeros(info.DType, info.Shape...)
	err = f.copyOut(name, t.Data, info.Offset)
	if err != nil {
		return nil, err
	}
	if info.DType == tensors.Bool {
		for i, c := range t.Data {
			if c > 1 {
				return nil, fmt.Errorf("%s: %w: tensor %q: element %d is byte %d, not a boolean 0 or 1; re-save the file", f.path, ErrFormat, name, i, c)
			}
		}
	}
	return t, nil
}

// copyOut copies the mapped bytes at off into dst, turning a fault into an
// error.
func (f *File) copyOut(name string, dst []byte, off int64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverFault(f.path, "reading tensor "+strconv.Quote(name), &err)
	copy(dst, f.mapped[off:])
	return nil
}

// Close unmaps the file. Tensors already returned stay valid; later calls
// to Tensor fail. Closing twice is harmless.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mapped == nil {
		return nil
	}
	err := syscall.Munmap(f.mapped)
	f.mapped = nil
	if err != nil {
		return fmt.Errorf("%s: unmapping: %w", f.path, err)
	}
	return nil
}
