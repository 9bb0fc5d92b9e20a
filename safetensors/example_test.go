package safetensors_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"mohawk/safetensors"
	"mohawk/tensors"
)

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	err = safetensors.Write(path, []safetensors.Named{
		{Name: "embed.weight", T: tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})},
		{Name: "input_ids", T: tensors.FromInt64([]int64{1, 2}, []int64{0, 1})},
	}, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		fmt.Println(name, info.DType, info.Shape, info.Size, "bytes")
	}
	w, err := f.Tensor("embed.weight")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Float32s()[3:], f.Metadata()["format"])
	// Output:
	// embed.weight float32 [2 3] 24 bytes
	// input_ids int64 [1 2] 16 bytes
	// [4 5 6] pt
}
