package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// module writes a module of one package per entry (name → test file).
func module(t *testing.T, pkgs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"go.mod": "module m\n\ngo 1.22\n"}
	for name, src := range pkgs {
		files[filepath.Join(name, name+"_test.go")] = "package " + name + "\n\nimport \"testing\"\n\n" + src
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	passing = "func TestOK(t *testing.T) {}\n"
	failing = "func TestBad(t *testing.T) { t.Fatal(\"wrong answer 41\") }\n"
	skipped = "func TestGPU(t *testing.T) { t.Skip(\"needs a GPU\") }\n" +
		"func TestSub(t *testing.T) { t.Run(\"cuda\", func(t *testing.T) { t.Log(\"before\"); t.Skipf(\"no %s\", \"device\") }) }\n"
	broken   = "func TestX(t *testing.T) { undefined() }\n"
	panicky  = "func TestPanic(t *testing.T) { panic(\"boom\") }\n"
	exitMain = "import \"os\"\n\nfunc TestMain(m *testing.M) { println(\"no runtime\"); os.Exit(1) }\nfunc TestY(t *testing.T) {}\n"
)

// TestRun runs go test on small modules and checks the exit status, the
// output a reader must see and the closing lines.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds small modules with go test")
	}
	t.Parallel()
	for _, c := range []struct {
		name   string
		pkgs   map[string]string
		status int
		shown  []string // in the output
		last   string   // the closing lines
	}{
		{"pass", map[string]string{"a": passing}, 0,
			[]string{"ok  \tm/a"},
			"tests: 1 passed, 0 failed, 0 skipped\nskipped: none\n"},
		{"fail", map[string]string{"a": passing, "b": failing}, 1,
			[]string{"--- FAIL: TestBad", "wrong answer 41", "FAIL\tm/b", "ok  \tm/a", "failed: m/b.TestBad\n"},
			"tests: 1 passed, 1 failed, 0 skipped\nskipped: none\n"},
		{"skip", map[string]string{"a": skipped}, 0,
			nil,
			"tests: 1 passed, 0 failed, 2 skipped\nskipped: m/a.TestGPU (needs a GPU), m/a.TestSub/cuda (no device)\n"},
		{"build error", map[string]string{"a": passing, "b": broken}, 1,
			[]string{"undefined: undefined", "m/b (the package failed without a failing test"},
			"tests: 1 passed, 1 failed, 0 skipped\nskipped: none\n"},
		{"panic", map[string]string{"a": panicky}, 1,
			[]string{"panic: boom"},
			"skipped: none\n"},
		{"TestMain exits", map[string]string{"a": exitMain}, 1,
			[]string{"no runtime", "m/a (the package failed"},
			"tests: 0 passed, 1 failed, 0 skipped\nskipped: none\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			status := run(module(t, c.pkgs), []string{"./..."}, &out)
			got := out.String()
			if status != c.status {
				t.Errorf("exit status %d, want %d\n%s", status, c.status, got)
			}
			for _, s := range c.shown {
				if !strings.Contains(got, s) {
					t.Errorf("output lacks %q:\n%s", s, got)
				}
			}
			if !strings.HasSuffix(got, c.last) {
				t.Errorf("output does not end with %q:\n%s", c.last, got)
			}
			if strings.Contains(got, "=== RUN") {
				t.Errorf("output shows -v lines:\n%s", got)
			}
		})
	}
}
