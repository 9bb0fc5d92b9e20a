package dist

import (
	"bytes"
	"context"
	"fmt"
	"strings"
)

// maxGather bounds the bytes one rank contributes to AllGather: lengths
// travel as float32 and must stay exact.
const maxGather = 1 << 24

// AllGather gives every rank every rank's b, by rank, through two
// AllReduces: a slot of zeros per rank, filled by its owner, sums to the
// owner's values exactly (bytes and lengths are small integers).
func AllGather(ctx context.Context, c Comm, b []byte) ([][]byte, error) {
	if len(b) > maxGather {
		return nil, fmt.Errorf("all-gather of %d bytes exceeds %d", len(b), maxGather)
	}
	n := c.Size()
	lens := make([]float32, n)
	lens[c.Rank()] = float32(len(b))
	if err := c.AllReduce(ctx, lens); err != nil {
		return nil, err
	}
	off := make([]int, n+1)
	for r, l := range lens {
		off[r+1] = off[r] + int(l)
	}
	buf := make([]float32, off[n])
	for i, v := range b {
		buf[off[c.Rank()]+i] = float32(v)
	}
	if err := c.AllReduce(ctx, buf); err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	for r := range out {
		out[r] = make([]byte, off[r+1]-off[r])
		for i := range out[r] {
			out[r][i] = byte(buf[off[r]+i])
		}
	}
	return out, nil
}

// VerifyIdentical checks that every rank holds the same sum (a checksum of
// what), and names the ranks that differ from rank 0. Every rank gets the
// same answer.
func VerifyIdentical(ctx context.Context, c Comm, what string, sum []byte) error {
	all, err := AllGather(ctx, c, sum)
	if err != nil {
		return fmt.Errorf("compare %s across ranks: %w", what, err)
	}
	var diff []string
	for r, s := range all[1:] {
		if !bytes.Equal(s, all[0]) {
			diff = append(diff, fmt.Sprintf("rank %d has %s", r+1, short(fmt.Sprintf("%x", s))))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("ranks differ in %s: rank 0 has %s, %s; the ranks have diverged (different data, settings or nondeterministic kernels)",
			what, short(fmt.Sprintf("%x", all[0])), strings.Join(diff, ", "))
	}
	return nil
}
