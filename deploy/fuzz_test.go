package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadManifest feeds arbitrary bytes to ReadManifest as mohawk.json.
// Nothing may panic, and the size of every state of an accepted manifest
// can be computed (Open then checks each shape against the model's).
func FuzzReadManifest(f *testing.F) {
	for _, seed := range []string{
		`{"format":"mohawk-deploy/1","kind":"student","weight_dtype":"float32","opset":20,"decode":"x","states":[{"input":"past_key_values.0.conv_state","output":"present.0.conv_state","dtype":"float32","shape":[-1,768,3],"seq_axis":-1}]}`,
		`{"format":"mohawk-deploy/1","kind":"teacher","weight_dtype":"float16","opset":20,"decode":"x","states":[{"input":"past_key_values.0.key","output":"present.0.key","dtype":"float32","shape":[-1,8,0,32],"seq_axis":2}]}`,
		// issue 22: a conv state edited to 4 TB of zeros per sequence.
		`{"format":"mohawk-deploy/1","kind":"student","weight_dtype":"float32","opset":20,"decode":"x","states":[{"input":"past_key_values.0.conv_state","output":"present.0.conv_state","dtype":"float32","shape":[-1,1000000,1000000],"seq_axis":-1}]}`,
		`{"format":"mohawk-deploy/1","kind":"student","states":[{"dtype":"float32","shape":[-1,9223372036854775807,2],"seq_axis":-1}]}`,
		`{"states":[{"shape":[-1],"seq_axis":5}]}`, `null`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return
		}
		for _, s := range m.States {
			_ = s.Bytes(1, 0)
		}
	})
}
