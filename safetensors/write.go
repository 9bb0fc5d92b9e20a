package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"mohawk/atomicfile"
	"mohawk/tensors"
)

// Named is a tensor and the name it is stored under.
type Named struct {
	Name string
	T    *tensors.Tensor
}

// NamedInfo declares a tensor for WriteStream before its data exists.
type NamedInfo struct {
	Name  string
	DType tensors.DType
	Shape []int64
}

// Write stores ts, in the order given, with the optional metadata, at path.
// The file is replaced atomically: it is written to a temporary file in the
// same directory, synced, renamed over path, and the directory is synced.
func Write(path string, ts []Named, metadata map[string]string) error {
	infos := make([]NamedInfo, len(ts))
	for i, n := range ts {
		if n.T == nil {
			return fmt.Errorf("%s: tensor %q is nil; pass a tensor for every name", path, n.Name)
		}
		if err := n.T.Check(); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, n.Name, err)
		}
		infos[i] = NamedInfo{Name: n.Name, DType: n.T.DType, Shape: n.T.Shape}
	}
	return WriteStream(path, infos, metadata, func(i int) (*tensors.Tensor, error) { return ts[i].T, nil })
}

// WriteStream is Write for tensors that need not all be in memory at once:
// the header is laid out from infos, then next(i) is called for each tensor
// in order, and its result must match infos[i]'s dtype and shape. It is
// written once and may be dropped right after. An error from next aborts the
// write and leaves any existing file at path untouched.
func WriteStream(path string, infos []NamedInfo, metadata map[string]string, next func(i int) (*tensors.Tensor, error)) error {
	header, sizes, err := encodeHeader(infos, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeAtomic(path, func(w io.Writer) error { return writeBody(w, header, infos, sizes, next) })
}

// writeBody writes the length prefix, the header and each tensor from next.
func writeBody(w io.Writer, header []byte, infos []NamedInfo, sizes []int64, next func(i int) (*tensors.Tensor, error)) error {
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for i, info := range infos {
		t, err := next(i)
		if err != nil {
			return fmt.Errorf("producing tensor %q: %w", info.Name, err)
		}
		if t == nil {
			return fmt.Errorf("tensor %q: the producer returned nil", info.Name)
		}
		if t.DType != info.DType || !slices.Equal(t.Shape, info.Shape) {
			return fmt.Errorf("tensor %q is %v%v but was declared %v%v; declare what the producer returns", info.Name, t.DType, t.Shape, info.DType, info.Shape)
		}
		if int64(len(t.Data)) != sizes[i] {
			return fmt.Errorf("tensor %q: %v%v needs %d bytes but holds %d", info.Name, t.DType, t.Shape, sizes[i], len(t.Data))
		}
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader lays out the JSON header, padded with spaces to a multiple of
// 8 bytes, and returns each tensor's byte size.
func encodeHeader(infos []NamedInfo, metadata map[string]string) ([]byte, []int64, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeString(&b, k); err != nil {
				return nil, nil, fmt.Errorf("metadata key %q: %w", k, err)
			}
			b.WriteByte(':')
			if err := writeString(&b, metadata[k]); err != nil {
				return nil, nil, fmt.Errorf("metadata value of %q: %w", k, err)
			}
		}
		b.WriteByte('}')
	}
	sizes := make([]int64, len(infos))
	seen := make(map[string]bool, len(infos))
	var offset int64
	for i, info := range infos {
		if info.Name == "__metadata__" {
			return nil, nil, fmt.Errorf("a tensor cannot be named __metadata__, which the format reserves; rename it")
		}
		if seen[info.Name] {
			return nil, nil, fmt.Errorf("tensor %q appears twice; names must be unique", info.Name)
		}
		seen[info.Name] = true
		dtName, err := dtypeName(info.DType)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", info.Name, err)
		}
		size := int64(info.DType.Size())
		for _, d := range info.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("tensor %q: negative dimension in shape %v", info.Name, info.Shape)
			}
			if d != 0 && size > math.MaxInt64/d {
				return nil, nil, fmt.Errorf("tensor %q: shape %v overflows a 64-bit byte size", info.Name, info.Shape)
			}
			size *= d
		}
		if offset > math.MaxInt64-size {
			return nil, nil, fmt.Errorf("tensor %q: the data section would exceed 2^63 bytes", info.Name)
		}
		sizes[i] = size

		if b.Len() > 1 {
			b.WriteByte(',')
		}
		if err := writeString(&b, info.Name); err != nil {
			return nil, nil, fmt.Errorf("tensor name %q: %w", info.Name, err)
		}
		b.WriteString(`:{"dtype":"` + dtName + `","shape":[`)
		for j, d := range info.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(d, 10))
		}
		b.WriteString(`],"data_offsets":[` + strconv.FormatInt(offset, 10) + "," + strconv.FormatInt(offset+size, 10) + "]}")
		offset += size
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("the header would be %d bytes, over the %d-byte limit readers accept; split the tensors over several files", b.Len(), MaxHeaderSize)
	}
	return b.Bytes(), sizes, nil
}

// writeString appends s as a JSON string, without HTML escaping.
func writeString(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// writeAtomic replaces path with what write produces, through a 1 MiB
// buffer, by atomicfile (temporary file, fsync, rename, directory fsync).
func writeAtomic(path string, write func(io.Writer) error) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}
