package onnxpb_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
)

// FuzzModelProto decodes arbitrary bytes as an ONNX ModelProto (how tests
// and tools read exported models): decoding never panics, and a decoded
// model survives a Marshal/Unmarshal round trip unchanged.
func FuzzModelProto(f *testing.F) {
	tensor := &pb.TensorProto{Name: "w", Dims: []int64{2, 2}, DataType: 1, RawData: make([]byte, 16)}
	ext := &pb.TensorProto{Name: "e", Dims: []int64{4}, DataType: 1, DataLocation: pb.TensorProto_EXTERNAL,
		ExternalData: []*pb.StringStringEntryProto{{Key: "location", Value: "model.onnx.data"}, {Key: "offset", Value: "4096"}}}
	branch := &pb.GraphProto{Name: "b", Node: []*pb.NodeProto{{OpType: "Identity", Input: []string{"w"}, Output: []string{"o"}}}}
	m := &pb.ModelProto{IrVersion: 10, ProducerName: "mohawk", OpsetImport: []*pb.OperatorSetIdProto{{Version: 21}},
		MetadataProps: []*pb.StringStringEntryProto{{Key: "k", Value: "v"}},
		Graph: &pb.GraphProto{Name: "g", Initializer: []*pb.TensorProto{tensor, ext},
			Node: []*pb.NodeProto{{OpType: "If", Input: []string{"c"}, Output: []string{"y"}, Attribute: []*pb.AttributeProto{
				{Name: "then_branch", Type: pb.AttributeProto_GRAPH, G: branch},
				{Name: "axes", Type: pb.AttributeProto_INTS, Ints: []int64{0, -1}},
				{Name: "value", Type: pb.AttributeProto_TENSOR, T: tensor},
			}}}}}
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{b, b[:len(b)/2], {}, {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f}, {0x08, 0x80}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			return
		}
		out, err := proto.Marshal(&m)
		if err != nil {
			t.Fatalf("re-marshal a decoded model: %v", err)
		}
		var back pb.ModelProto
		if err := proto.Unmarshal(out, &back); err != nil {
			t.Fatalf("decode a re-marshalled model: %v", err)
		}
		if !proto.Equal(&m, &back) {
			t.Fatal("the model changed in a Marshal/Unmarshal round trip")
		}
	})
}
