package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/stages"
)

// demoDir is the repository's small teacher and text.
func demoDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.Abs("../testdata/demo")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mohawkStudent is the student StudentConfigFor derives from teacher with
// o, initialised by InitMohawk from seed.
func mohawkStudent(t testing.TB, teacher *stages.Teacher, o StudentConfig, seed uint64) *stages.Student {
	t.Helper()
	c, err := StudentConfigFor(teacher.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStudent(teacher, c, InitMohawk, seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tinyYAML is a pipeline over the demo teacher with budgets of a few
// optimizer steps, run directories under dir and the token cache in cache.
// Each line of replace ("training: {...}") replaces the top-level section of
// that name, or adds it when the template has none.
func tinyYAML(t testing.TB, dir, cache, stagesYAML string, replace ...string) string {
	t.Helper()
	demo := demoDir(t)
	y := `name: tiny
output_dir: ` + filepath.Join(dir, "runs") + `
seed: 5
teacher: {path: ` + filepath.Join(demo, "teacher") + `}
student: {chunk_size: 16}
data:
  train: [{path: ` + filepath.Join(demo, "train.txt") + `}]
  val: [{path: ` + filepath.Join(demo, "val.txt") + `}]
  cache_dir: ` + cache + `
training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 2}
eval: {windows: 4, seq_len: 32}
runtime: {cpu: {intra_op_threads: 1}}
stages:
` + stagesYAML + "\n"
	for _, r := range replace {
		key, _, _ := strings.Cut(r, ":")
		var lines []string
		found := false
		for _, l := range strings.Split(y, "\n") {
			if strings.HasPrefix(l, key+":") {
				l, found = r, true
			}
			lines = append(lines, l)
		}
		if !found { // a section the template lacks is added
			lines = append(lines, r)
		}
		y = strings.Join(lines, "\n")
	}
	return y
}

// tinyConfig writes tinyYAML to a temporary directory and loads it.
func tinyConfig(t testing.TB, stagesYAML string, replace ...string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(tinyYAML(t, dir, filepath.Join(dir, "cache"), stagesYAML, replace...)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}
