package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"mohawk/atomicfile"
)

// A token cache file is a 96-byte header followed by a body, all
// little-endian:
//
//	offset size
//	0      8    magic "MHWKTOKS"
//	8      4    version (1)
//	12     4    bytes per token: 2 or 4
//	16     32   cache key (see cacheKey)
//	48     8    token count n
//	56     8    document count d
//	64     32   SHA-256 of the body
//	96          body: d+1 uint64 document offsets, then n tokens
//
// readCache accepts a file only if every header field is as expected, the
// size is exact, the checksum matches and the offsets and tokens are
// consistent, so every byte of the file is checked.
const (
	cacheMagic   = "MHWKTOKS"
	cacheVersion = 1
	cacheHeader  = 96
)

// cacheKey hashes everything the tokens depend on: the bytes of every shard
// as stored, with the format it is read in and the setting that applies to
// it (the separator of text, the field or column of JSONL and Parquet), and
// the tokenizer. Each
// variable-length part is preceded by its length so that no two inputs
// share a key. The shards are hashed as they are read, one at a time.
func cacheKey(ctx context.Context, shards []shard, src Source, tokenizerID string, vocab int, eos int64) ([32]byte, error) {
	h := sha256.New()
	part := func(b []byte) {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	var key [32]byte
	part([]byte(cacheMagic))
	part(binary.LittleEndian.AppendUint64(nil, uint64(len(shards))))
	for _, sh := range shards {
		if err := ctx.Err(); err != nil {
			return key, err
		}
		part([]byte(sh.format))
		if sh.format == "text" {
			part([]byte(src.Separator))
		} else {
			part([]byte(src.Field))
		}
		if err := hashFile(h, sh.path); err != nil {
			return key, err
		}
	}
	part([]byte(tokenizerID))
	part(binary.LittleEndian.AppendUint64(nil, uint64(vocab)))
	part(binary.LittleEndian.AppendUint64(nil, uint64(eos)))
	h.Sum(key[:0])
	return key, nil
}

// hashFile writes the length of the file at path, then its bytes, to h.
func hashFile(h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w; check data.path", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(st.Size())))
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n != st.Size() {
		return fmt.Errorf("%s changed while it was read (%d bytes, then %d); do not modify the corpus during a run", path, st.Size(), n)
	}
	return nil
}

// cacheFile is the path of the cache file for key.
func cacheFile(dir string, key [32]byte) string {
	return filepath.Join(dir, "tokens-"+hex.EncodeToString(key[:])+".bin")
}

// readCache loads and validates a cache file.
func readCache(path string, key [32]byte, vocab int, eos int64) (*Stream, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeCache(b, key, vocab, eos)
}

// writeCache atomically writes s as the cache file for key.
func writeCache(path string, key [32]byte, s *Stream) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	return atomicfile.WriteBytes(path, encodeCache(key, s))
}

// encodeCache serializes s in the cache file layout.
func encodeCache(key [32]byte, s *Stream) []byte {
	width := 2
	if s.wide {
		width = 4
	}
	b := make([]byte, cacheHeader, cacheHeader+8*len(s.docs)+width*s.Len())
	copy(b, cacheMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], cacheVersion)
	le.PutUint32(b[12:], uint32(width))
	copy(b[16:48], key[:])
	le.PutUint64(b[48:], uint64(s.Len()))
	le.PutUint64(b[56:], uint64(s.NumDocs()))
	for _, o := range s.docs {
		b = le.AppendUint64(b, uint64(o))
	}
	if s.wide {
		for _, t := range s.u32 {
			b = le.AppendUint32(b, t)
		}
	} else {
		for _, t := range s.u16 {
			b = le.AppendUint16(b, t)
		}
	}
	sum := sha256.Sum256(b[cacheHeader:])
	copy(b[64:96], sum[:])
	return b
}

// decodeCache parses a cache file written for key, a vocabulary of vocab ids
// and end-of-text id eos. It returns an error, never a stream, for a file
// that differs from what encodeCache wrote in any byte.
func decodeCache(b []byte, key [32]byte, vocab int, eos int64) (*Stream, error) {
	if len(b) < cacheHeader {
		return nil, fmt.Errorf("truncated: %d bytes, shorter than the %d-byte header", len(b), cacheHeader)
	}
	le := binary.LittleEndian
	if string(b[:8]) != cacheMagic {
		return nil, errors.New("not a token cache file (bad magic)")
	}
	if v := le.Uint32(b[8:]); v != cacheVersion {
		return nil, fmt.Errorf("format version %d, this program reads version %d", v, cacheVersion)
	}
	wide := wideVocab(vocab)
	width := uint64(le.Uint32(b[12:]))
	want := uint64(2)
	if wide {
		want = 4
	}
	if width != want {
		return nil, fmt.Errorf("%d bytes per token, want %d for a vocabulary of %d", width, want, vocab)
	}
	if !bytes.Equal(b[16:48], key[:]) {
		return nil, errors.New("written for other inputs (key mismatch)")
	}
	ntok, ndocs := le.Uint64(b[48:]), le.Uint64(b[56:])
	avail := uint64(len(b) - cacheHeader)
	if ndocs == 0 || ndocs >= avail/8 || ntok > avail/width || (ndocs+1)*8+ntok*width != avail {
		return nil, fmt.Errorf("truncated or padded: %d body bytes do not hold %d documents and %d tokens", avail, ndocs, ntok)
	}
	body := b[cacheHeader:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[64:96]) {
		return nil, errors.New("checksum mismatch")
	}
	s := &Stream{wide: wide, eos: eos, vocab: vocab, docs: make([]int, ndocs+1)}
	toks := body[(ndocs+1)*8:]
	at := func(i uint64) uint64 {
		if wide {
			return uint64(le.Uint32(toks[4*i:]))
		}
		return uint64(le.Uint16(toks[2*i:]))
	}
	prev := uint64(0)
	for i := range s.docs {
		o := le.Uint64(body[8*i:])
		switch {
		case i == 0 && o != 0:
			return nil, fmt.Errorf("document offsets start at %d, not 0", o)
		case i > 0 && (o <= prev || o > ntok):
			return nil, fmt.Errorf("document %d ends at token %d, after %d and within %d tokens expected", i-1, o, prev, ntok)
		case i > 0 && at(o-1) != uint64(eos):
			return nil, fmt.Errorf("document %d does not end with the end-of-text id %d", i-1, eos)
		}
		s.docs[i], prev = int(o), o
	}
	if prev != ntok {
		return nil, fmt.Errorf("documents end at token %d, the file has %d tokens", prev, ntok)
	}
	if wide {
		s.u32 = make([]uint32, ntok)
	} else {
		s.u16 = make([]uint16, ntok)
	}
	for i := range ntok {
		t := at(i)
		if t >= uint64(vocab) {
			return nil, fmt.Errorf("token %d is id %d, outside the vocabulary of %d", i, t, vocab)
		}
		if wide {
			s.u32[i] = uint32(t)
		} else {
			s.u16[i] = uint16(t)
		}
	}
	return s, nil
}
