package export_test

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"mohawk/export"
	"mohawk/export/onnxpb"
	"mohawk/graphs"
	"mohawk/tensors"
)

// Marshal a graph to ONNX bytes (for an in-memory ONNX Runtime session) and
// read them back with the generated protobuf types.
func ExampleMarshal() {
	g := graphs.New("gelu")
	x := g.Input("x", tensors.Float32, graphs.S("batch", 4))
	g.Output("y", graphs.Gelu(x, true))
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		panic(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		panic(err)
	}
	n := m.Graph.Node[0]
	fmt.Println(m.OpsetImport[0].Version, n.OpType, n.Attribute[0].Name, string(n.Attribute[0].S))
	fmt.Println(m.Graph.Input[0].Name, m.Graph.Input[0].Type.GetTensorType().Shape.Dim[0].GetDimParam())
	// Output:
	// 20 Gelu approximate tanh
	// x batch
}
