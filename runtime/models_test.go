package runtime

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// Tiny ONNX models for the tests, built with the generated protobuf types.

// vi declares a tensor graph input/output. Each dim is an int (static), a
// string (dim_param) or nil for an unknown dimension; scalar() gives a 0-d
// shape and noShape an undeclared rank.
func vi(name string, dt tensors.DType, dims ...any) *pb.ValueInfoProto {
	shape := &pb.TensorShapeProto{}
	for _, d := range dims {
		dd := &pb.TensorShapeProto_Dimension{}
		switch v := d.(type) {
		case int:
			dd.Value = &pb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}
		case string:
			dd.Value = &pb.TensorShapeProto_Dimension_DimParam{DimParam: v}
		}
		shape.Dim = append(shape.Dim, dd)
	}
	return &pb.ValueInfoProto{Name: name, Type: &pb.TypeProto{Value: &pb.TypeProto_TensorType{
		TensorType: &pb.TypeProto_Tensor{ElemType: int32(dt), Shape: shape}}}}
}

// noShape declares a tensor of unknown rank.
func noShape(name string, dt tensors.DType) *pb.ValueInfoProto {
	v := vi(name, dt)
	v.GetType().GetTensorType().Shape = nil
	return v
}

func node(op string, in, out []string, attrs ...*pb.AttributeProto) *pb.NodeProto {
	return &pb.NodeProto{OpType: op, Input: in, Output: out, Attribute: attrs}
}

func intAttr(name string, v int64) *pb.AttributeProto {
	return &pb.AttributeProto{Name: name, I: v, Type: pb.AttributeProto_INT}
}

func modelBytes(t testing.TB, nodes []*pb.NodeProto, in, out []*pb.ValueInfoProto, inits ...*pb.TensorProto) []byte {
	t.Helper()
	m := &pb.ModelProto{
		IrVersion:    10,
		ProducerName: "mohawk-runtime-test",
		OpsetImport:  []*pb.OperatorSetIdProto{{Version: 21}},
		Graph:        &pb.GraphProto{Name: "test", Node: nodes, Input: in, Output: out, Initializer: inits},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal model: %v", err)
	}
	return b
}

// addModel: c = a + b, float32 [2,3].
func addModel(t testing.TB) []byte {
	return modelBytes(t, []*pb.NodeProto{node("Add", []string{"a", "b"}, []string{"c"})},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, 2, 3), vi("b", tensors.Float32, 2, 3)},
		[]*pb.ValueInfoProto{vi("c", tensors.Float32, 2, 3)})
}

// binaryModel: c = op(a, b) for one dtype and shape.
func binaryModel(t testing.TB, op string, dt tensors.DType, aDims, bDims, cDims []any) []byte {
	return modelBytes(t, []*pb.NodeProto{node(op, []string{"a", "b"}, []string{"c"})},
		[]*pb.ValueInfoProto{vi("a", dt, aDims...), vi("b", dt, bDims...)},
		[]*pb.ValueInfoProto{vi("c", dt, cDims...)})
}

// reduceSumModel: s = ReduceSum(x) over all axes, keepdims=0: a 0-d output.
func reduceSumModel(t testing.TB, dt tensors.DType, outDeclared *pb.ValueInfoProto) []byte {
	if outDeclared == nil {
		outDeclared = vi("s", dt)
	}
	return modelBytes(t, []*pb.NodeProto{node("ReduceSum", []string{"x"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("x", dt, "n", 3)},
		[]*pb.ValueInfoProto{outDeclared})
}
