package dist

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
)

// Frame types of the rendezvous protocol. A frame is its type (1 byte),
// the payload length (4 bytes, big-endian) and the payload.
const (
	frameHello   byte = iota + 1 // JSON hello, rank → 0
	frameWelcome                 // JSON welcome, 0 → rank
	frameReject                  // UTF-8 reason, 0 → rank: the job cannot start
	frameBeat                    // empty: I am alive
	frameReduce                  // 8-byte sequence number + float32 values (little-endian)
	frameAbort                   // JSON RankError: stop now
	frameBye                     // empty: closing normally
)

// maxFrame bounds a payload; AllReduce sends larger buffers in chunks.
const maxFrame = 1 << 28

// chunkValues is the number of float32 values per AllReduce frame.
const chunkValues = 1 << 22

// protocolVersion changes whenever frames change meaning.
const protocolVersion = 1

type hello struct {
	Version int    `json:"version"`
	Rank    int    `json:"rank"`
	Size    int    `json:"size"`
	Plan    string `json:"plan"`
	Binary  string `json:"binary"`
}

type welcome struct {
	Blob []byte `json:"blob"`
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), maxFrame)
	}
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d: not a mohawk rank", n, maxFrame)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[0], p, err
}

func writeJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

// encodeReduce is a reduce frame's payload: the sequence number, the
// element width (4 or 8) and the values.
func encodeReduce[T float32 | float64](seq uint64, x []T) []byte {
	w := width[T]()
	b := make([]byte, 9+w*len(x))
	binary.LittleEndian.PutUint64(b, seq)
	b[8] = byte(w)
	for i, v := range x {
		if w == 4 {
			binary.LittleEndian.PutUint32(b[9+4*i:], math.Float32bits(float32(v)))
		} else {
			binary.LittleEndian.PutUint64(b[9+8*i:], math.Float64bits(float64(v)))
		}
	}
	return b
}

func decodeReduce[T float32 | float64](b []byte) (uint64, []T, error) {
	w := width[T]()
	if len(b) < 9 || (len(b)-9)%w != 0 {
		return 0, nil, fmt.Errorf("sent a malformed reduce frame of %d bytes", len(b))
	}
	if int(b[8]) != w {
		return 0, nil, fmt.Errorf("sent %d-byte values where this rank reduces %d-byte ones: the ranks ran different work", b[8], w)
	}
	x := make([]T, (len(b)-9)/w)
	for i := range x {
		if w == 4 {
			x[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(b[9+4*i:])))
		} else {
			x[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(b[9+8*i:])))
		}
	}
	return binary.LittleEndian.Uint64(b), x, nil
}

// width is the size of T in bytes.
func width[T float32 | float64]() int {
	var z T
	if _, ok := any(z).(float32); ok {
		return 4
	}
	return 8
}

func netJoin(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
