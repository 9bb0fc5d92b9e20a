package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenAIFilenameStaysInFolder: the model file a deployment folder's
// genai_config.json names must be a regular file inside the folder: "..",
// absolute paths, symbolic links (to the file or a directory on the way)
// and directories are refused before anything is opened. (The external
// data the model itself names is checked by runtime.CheckExternalData when
// the session is created.)
func TestGenAIFilenameStaysInFolder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "export")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "model.onnx"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "outside.onnx"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(root, "outside.onnx"), filepath.Join(dir, "link.onnx"))
	os.Symlink(root, filepath.Join(dir, "up"))
	for _, c := range []struct {
		filename string
		ok       bool
	}{
		{"model.onnx", true},
		{"sub/model.onnx", true},
		{"../outside.onnx", false},
		{"/etc/passwd", false},
		{"link.onnx", false},
		{"up/outside.onnx", false},
		{"sub", false},
		{"", false},
	} {
		g := newGenAIConfig(genaiModel{VocabSize: 10, Decoder: genaiDecoder{Filename: c.filename}})
		b, _ := json.Marshal(g)
		os.WriteFile(filepath.Join(dir, GenAIConfigFile), b, 0o644)
		_, err := readGenAIConfig(dir)
		if c.ok != (err == nil) {
			t.Errorf("filename %q: got %v, want ok=%v", c.filename, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "inside the folder") {
			t.Errorf("filename %q: error does not say where the file must be: %v", c.filename, err)
		}
	}
}
