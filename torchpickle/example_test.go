package torchpickle_test

import (
	"fmt"
	"log"

	"mohawk/torchpickle"
)

func Example() {
	// tiny.pt holds a state dict as torch.save writes it; lm_head.weight
	// shares embed.weight's storage and proj.weight is a transposed view.
	named, err := torchpickle.LoadOrdered("testdata/tiny.pt")
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range named {
		fmt.Println(n.Name, n.T.DType, n.T.Shape, n.T.AsFloat32().Float32s())
	}

	byName, err := torchpickle.Load("testdata/tiny.pt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(byName), "tensors; proj.weight:", byName["proj.weight"].Float32s())
	// Output:
	// embed.weight float32 [3 2] [0 1 2 3 4 5]
	// proj.weight float32 [2 2] [1 3 2 4]
	// norm.bias float16 [2] [0.5 -1]
	// lm_head.weight float32 [3 2] [0 1 2 3 4 5]
	// 4 tensors; proj.weight: [1 3 2 4]
}
