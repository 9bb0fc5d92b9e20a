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

// reduceChunk is the number of float32 values per AllReduce frame.
const reduceChunk = 1 << 22

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

// encodeReduce is a reduce frame's payload.
func encodeReduce(seq uint64, x []float32) []byte {
	b := make([]byte, 8+4*len(x))
	binary.LittleEndian.PutUint64(b, seq)
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[8+4*i:], math.Float32bits(v))
	}
	return b
}

func decodeReduce(b []byte) (uint64, []float32, error) {
	if len(b) < 8 || (len(b)-8)%4 != 0 {
		return 0, nil, fmt.Errorf("malformed reduce frame of %d bytes", len(b))
	}
	x := make([]float32, (len(b)-8)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return binary.LittleEndian.Uint64(b), x, nil
}

func netJoin(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
