package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"mohawk/deploy"
	"mohawk/graphs/models/phimamba"
	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/safetensors"
	"mohawk/tensors"
)

// Export a trained student into a deployment folder, open it on the CPU
// (runtime.Config{Provider: "cuda"} runs the same folder on a GPU) and
// generate greedily, streaming the text.
func Example() {
	src := filepath.Join(shareddata.Root(), "reference", "phimamba-tiny-en")
	c, err := phimamba.LoadConfig(src, 0, 1e-5)
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := loadWeights(filepath.Join(src, "model.safetensors"))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "student-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	if err := deploy.ExportStudent(dir, c, w, filepath.Join(src, "tokenizer.json"), deploy.Options{}); err != nil {
		fmt.Println(err)
		return
	}

	g, err := deploy.Open(dir, runtime.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer g.Close()
	fmt.Print("Once upon a time")
	_, err = g.Generate(context.Background(), "Once upon a time", 12, deploy.SamplingOptions{}, func(text string) { fmt.Print(text) })
	fmt.Println()
	fmt.Println(g.Kind(), "on", g.Provider(), "carries", g.StateBytes(), "bytes of state, error:", err)
	// Output:
	// Once upon a time, the two of the two, and the other hand,
	// student on cpu carries 251904 bytes of state, error: <nil>
}

// loadWeights reads every tensor of a safetensors file.
func loadWeights(path string) (map[string]*tensors.Tensor, error) {
	set, err := safetensors.OpenFileOrDir(path)
	if err != nil {
		return nil, err
	}
	defer set.Close()
	w := map[string]*tensors.Tensor{}
	for _, name := range set.Names() {
		if w[name], err = set.Tensor(name); err != nil {
			return nil, err
		}
	}
	return w, nil
}
