package runtime_test

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/runtime"
	"mohawk/tensors"
)

// addModel builds the ONNX model c = a + b for float32 [2,3] tensors; in
// mohawk the export package writes such bytes from a graphs.Graph.
func addModel() []byte {
	tensor := func(name string) *pb.ValueInfoProto {
		dim := func(v int64) *pb.TensorShapeProto_Dimension {
			return &pb.TensorShapeProto_Dimension{Value: &pb.TensorShapeProto_Dimension_DimValue{DimValue: v}}
		}
		return &pb.ValueInfoProto{Name: name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{TensorType: &pb.TypeProto_Tensor{
			ElemType: int32(tensors.Float32),
			Shape:    &pb.TensorShapeProto{Dim: []*pb.TensorShapeProto_Dimension{dim(2), dim(3)}},
		}}}}
	}
	b, err := proto.Marshal(&pb.ModelProto{
		IrVersion:   10,
		OpsetImport: []*pb.OperatorSetIdProto{{Version: 21}},
		Graph: &pb.GraphProto{
			Name:   "add",
			Node:   []*pb.NodeProto{{OpType: "Add", Input: []string{"a", "b"}, Output: []string{"c"}}},
			Input:  []*pb.ValueInfoProto{tensor("a"), tensor("b")},
			Output: []*pb.ValueInfoProto{tensor("c")},
		},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func Example() {
	// The zero Config: CPU provider, library from $ORT_LIB or the cache,
	// installed there with npm if missing (progress to stderr).
	env, err := runtime.Open(runtime.Config{}, os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()

	s, err := env.NewSession("add", addModel(), []string{"a", "b"}, []string{"c"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	a := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	b := tensors.FromFloat32([]int64{2, 3}, []float32{10, 20, 30, 40, 50, 60})
	out, err := s.Run([]*tensors.Tensor{a, b})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env.Provider(), out[0].DType, out[0].Shape, out[0].Float32s())

	// Inputs are checked against the model before ORT sees them.
	_, err = s.Run([]*tensors.Tensor{a, tensors.Zeros(tensors.Float32, 3, 2)})
	fmt.Println(err)
	// Output:
	// cpu float32 [2 3] [11 22 33 44 55 66]
	// session "add": run: input "b": has shape [3 2], the model declares float32[2,3] (dimension 0 must be 2)
}

// A value kept resident by one run feeds the next without a copy (on a GPU
// provider it stays in device memory); Fetch brings it to the host.
func ExampleSession_RunResident() {
	env, err := runtime.Open(runtime.Config{}, os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer env.Close()
	s, err := env.NewSession("add", addModel(), []string{"a", "b"}, []string{"c"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	one := tensors.FromFloat32([]int64{2, 3}, []float32{1, 1, 1, 1, 1, 1})
	acc := tensors.FromFloat32([]int64{2, 3}, []float32{0, 1, 2, 3, 4, 5})
	feed := runtime.Feed{Host: acc}
	var kept *runtime.Resident
	for i := 0; i < 3; i++ { // acc ← acc + 1, three times, never leaving ORT
		_, dev, err := s.RunResident([]runtime.Feed{feed, {Host: one}}, []bool{true})
		if err != nil {
			fmt.Println(err)
			return
		}
		kept.Release() // the previous run's value (Release of nil is a no-op)
		kept = dev[0]
		feed = runtime.Feed{Resident: kept}
	}
	got, err := env.Fetch(kept)
	if err != nil {
		fmt.Println(err)
		return
	}
	kept.Release()
	fmt.Println(got.Shape, got.Float32s())
	// Output:
	// [2 3] [3 4 5 6 7 8]
}
