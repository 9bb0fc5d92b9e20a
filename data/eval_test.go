package data

import (
	"slices"
	"strings"
	"testing"
)

func TestEvalWindows(t *testing.T) {
	t.Parallel()
	s := tokenizeText(t, strings.Repeat("0123456789", 100)) // 1001 tokens
	tests := []struct {
		seqLen, n int
		want      string // error substring, "" for success
	}{
		{16, 62, ""},
		{16, 1, ""},
		{1000, 1, ""},
		{16, 63, "1001 tokens hold 62 windows of 16+1 tokens, not 63"},
		{1001, 1, "hold 0 windows"},
		{0, 1, "must both be at least 1"},
		{16, 0, "must both be at least 1"},
	}
	for _, tt := range tests {
		w, err := EvalWindows(s, tt.seqLen, tt.n)
		if tt.want != "" {
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), s.Name()) {
				t.Errorf("EvalWindows(%d, %d): error %v, want %q", tt.seqLen, tt.n, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w.Shape, []int64{int64(tt.n), int64(tt.seqLen + 1)}) {
			t.Fatalf("shape %v", w.Shape)
		}
		v := w.Int64s()
		for k := range tt.n {
			if !slices.Equal(v[k*(tt.seqLen+1):(k+1)*(tt.seqLen+1)], s.Window(k*tt.seqLen, tt.seqLen+1)) {
				t.Fatalf("EvalWindows(%d, %d): window %d is not tokens [%d, %d)", tt.seqLen, tt.n, k, k*tt.seqLen, (k+1)*tt.seqLen+1)
			}
		}
	}
}
