package torchpickle

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/tiny.pt")

// tinyCheckpoint is testdata/tiny.pt, which the Example reads: a state dict
// with tied weights, a transposed view and a float16 tensor, laid out as
// torch.save lays it out.
func tinyCheckpoint(t testing.TB) []byte {
	embed := persid{"FloatStorage", "0", 6}
	return checkpoint(t, pickle(odict{
		{key: "embed.weight", val: tensor{st: embed, size: []int64{3, 2}}},
		{key: "proj.weight", val: tensor{st: persid{"FloatStorage", "1", 4}, size: []int64{2, 2}, stride: []int64{1, 2}}},
		{key: "norm.bias", val: tensor{st: persid{"HalfStorage", "2", 2}, size: []int64{2}}},
		{key: "lm_head.weight", val: tensor{st: embed, size: []int64{3, 2}}},
	}), map[string][]byte{
		"0": f32(seq(6)...),
		"1": f32(1, 2, 3, 4),
		"2": le([]uint16{0x3800, 0xbc00}), // 0.5, -1
	})
}

func TestTinyTestdata(t *testing.T) {
	t.Parallel()
	want := tinyCheckpoint(t)
	if *update {
		if err := os.WriteFile("testdata/tiny.pt", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("testdata/tiny.pt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("testdata/tiny.pt is stale; rewrite it with go test -run TestTinyTestdata -update")
	}
}
