package pipeline

import (
	"context"
	"strings"
	"testing"

	"mohawk/internal/hubtest"
	"mohawk/internal/shareddata"
)

// TestRunTeacherByID runs a pipeline whose teacher is a Hugging Face id:
// the sharded phi-tiny-en laid out in a hub cache as huggingface_hub does
// (blobs and snapshot links), with HF_HUB_OFFLINE so nothing may connect.
func TestRunTeacherByID(t *testing.T) {
	cache := t.TempDir()
	snap := hubtest.Layout(t, cache, "org/phi-tiny", shareddata.Path(t, "reference", "phi-tiny-en"))
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	tests := []struct {
		name, path string
		want       string // in the output, or in the error when fail
		fail       bool
	}{
		{"cached", "org/phi-tiny", "teacher: using Hugging Face cache snapshot " + snap + " (org/phi-tiny@main → " + hubtest.Commit + ")", false},
		{"by commit", "org/phi-tiny@" + hubtest.Commit, "teacher: using Hugging Face cache snapshot " + snap, false},
		{"not cached", "org/other", "HF_HUB_OFFLINE is set", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, path := tinyConfig(t, "  - {kind: eval}", "teacher: {path: "+tc.path+"}")
			var out strings.Builder
			_, err := Run(context.Background(), cfg, path, RunOptions{Out: &out})
			if tc.fail {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Run: %v; want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out.String())
			}
			if !strings.Contains(out.String(), "teacher perplexity") {
				t.Errorf("no teacher evaluation in the output:\n%s", out.String())
			}
		})
	}
}
