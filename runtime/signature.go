package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"mohawk/tensors"
)

// The model's declared inputs and outputs are read straight from the ONNX
// protobuf (ModelProto.graph.input/output), because onnxruntime_go has no
// way to ask an existing session for them and its GetInputOutputInfo*
// helpers load the whole model into a second session. Only these few
// fields are decoded; everything else (nodes, initializers) is skipped, by
// seeking when the model is a file.

// Field numbers from the ONNX specification (onnx.proto).
const (
	fieldModelGraph       = 7
	fieldGraphInput       = 11
	fieldGraphOutput      = 12
	fieldValueInfoName    = 1
	fieldValueInfoType    = 2
	fieldTypeTensor       = 1
	fieldTypeSequence     = 4
	fieldTypeMap          = 5
	fieldTypeSparseTensor = 8
	fieldTypeOptional     = 9
	fieldTensorElemType   = 1
	fieldTensorShape      = 2
	fieldShapeDim         = 1
	fieldDimValue         = 1
	fieldDimParam         = 2
)

// dim is one declared dimension: a size (value >= 0), a symbolic name
// (param), or unknown (value < 0 and no param).
type dim struct {
	value int64
	param string
}

func (d dim) String() string {
	switch {
	case d.param != "":
		return d.param
	case d.value >= 0:
		return fmt.Sprint(d.value)
	}
	return "?"
}

// tensorInfo is a graph input or output as the model declares it.
type tensorInfo struct {
	name      string
	kind      string // "tensor", or "sequence", "map", ... for other types; "" if undeclared
	elem      tensors.DType
	rankKnown bool // the type has a shape; an empty shape is a 0-d scalar
	dims      []dim
}

func (t tensorInfo) shapeString() string {
	if !t.rankKnown {
		return "[unknown rank]"
	}
	s := make([]string, len(t.dims))
	for i, d := range t.dims {
		s[i] = d.String()
	}
	return "[" + strings.Join(s, ",") + "]"
}

// describe formats the declared type, e.g. float32[batch,3].
func (t tensorInfo) describe() string {
	if t.kind != "tensor" {
		return t.kind
	}
	return t.elem.String() + t.shapeString()
}

type signature struct {
	inputs, outputs []tensorInfo
}

func findInfo(infos []tensorInfo, name string) (tensorInfo, bool) {
	for _, t := range infos {
		if t.name == name {
			return t, true
		}
	}
	return tensorInfo{}, false
}

func infoNames(infos []tensorInfo) []string {
	n := make([]string, len(infos))
	for i, t := range infos {
		n[i] = t.name
	}
	return n
}

// readSignature reads the declared graph inputs and outputs of the ONNX
// model in r.
func readSignature(r io.ReadSeeker) (signature, error) {
	s := &pbStream{src: r, br: bufio.NewReaderSize(r, 64<<10)}
	var sig signature
	found := false
	for {
		num, typ, err := s.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sig, err
		}
		if num != fieldModelGraph || typ != protowire.BytesType {
			if err := s.skipField(typ); err != nil {
				return sig, err
			}
			continue
		}
		n, err := s.uvarint()
		if err != nil {
			return sig, err
		}
		if err := s.readGraph(s.pos+int64(n), &sig); err != nil {
			return sig, err
		}
		found = true
	}
	if !found {
		return sig, errors.New("the model has no graph")
	}
	return sig, nil
}

func (s *pbStream) readGraph(end int64, sig *signature) error {
	for s.pos < end {
		num, typ, err := s.tag()
		if err != nil {
			return unexpectedEOF(err)
		}
		if (num == fieldGraphInput || num == fieldGraphOutput) && typ == protowire.BytesType {
			b, err := s.lenBytes()
			if err != nil {
				return err
			}
			info, err := parseValueInfo(b)
			if err != nil {
				return err
			}
			if num == fieldGraphInput {
				sig.inputs = append(sig.inputs, info)
			} else {
				sig.outputs = append(sig.outputs, info)
			}
			continue
		}
		if err := s.skipField(typ); err != nil {
			return err
		}
	}
	if s.pos != end {
		return errors.New("malformed graph message")
	}
	return nil
}

// pbStream reads protobuf wire format from a seekable stream, skipping
// large fields by seeking.
type pbStream struct {
	src io.ReadSeeker
	br  *bufio.Reader
	pos int64
}

func (s *pbStream) uvarint() (uint64, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		b, err := s.br.ReadByte()
		if err != nil {
			if i > 0 || err != io.EOF {
				return 0, unexpectedEOF(err)
			}
			return 0, err
		}
		s.pos++
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, errors.New("malformed varint")
}

// tag returns io.EOF only at a clean end of the stream.
func (s *pbStream) tag() (protowire.Number, protowire.Type, error) {
	v, err := s.uvarint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, errors.New("malformed field tag")
	}
	return num, typ, nil
}

func (s *pbStream) skip(n int64) error {
	if n < 0 {
		return errors.New("malformed length")
	}
	if b := int64(s.br.Buffered()); n > b {
		s.br.Discard(int(b))
		if _, err := s.src.Seek(n-b, io.SeekCurrent); err != nil {
			return err
		}
		s.br.Reset(s.src)
	} else if _, err := s.br.Discard(int(n)); err != nil {
		return unexpectedEOF(err)
	}
	s.pos += n
	return nil
}

func (s *pbStream) skipField(typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := s.uvarint()
		return unexpectedEOF(err)
	case protowire.Fixed64Type:
		return s.skip(8)
	case protowire.Fixed32Type:
		return s.skip(4)
	case protowire.BytesType:
		n, err := s.uvarint()
		if err != nil {
			return unexpectedEOF(err)
		}
		return s.skip(int64(n))
	}
	return fmt.Errorf("unsupported protobuf wire type %d", typ)
}

// lenBytes reads one length-delimited field value (a ValueInfoProto, small).
func (s *pbStream) lenBytes() ([]byte, error) {
	n, err := s.uvarint()
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	if n > 1<<26 {
		return nil, fmt.Errorf("value info of %d bytes is implausibly large", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.br, b); err != nil {
		return nil, unexpectedEOF(err)
	}
	s.pos += int64(n)
	return b, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// eachField calls f for every field of the protobuf message b, with the
// field's value bytes for length-delimited fields and its varint otherwise.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func parseValueInfo(b []byte) (tensorInfo, error) {
	var t tensorInfo
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldValueInfoName && typ == protowire.BytesType:
			t.name = string(v)
		case num == fieldValueInfoType && typ == protowire.BytesType:
			return parseType(v, &t)
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("read value info %q: %w", t.name, err)
	}
	return t, nil
}

func parseType(b []byte, t *tensorInfo) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldTypeTensor:
			t.kind = "tensor"
			return parseTensorType(v, t)
		case fieldTypeSequence:
			t.kind = "sequence"
		case fieldTypeMap:
			t.kind = "map"
		case fieldTypeSparseTensor:
			t.kind = "sparse tensor"
		case fieldTypeOptional:
			t.kind = "optional"
		}
		return nil
	})
}

func parseTensorType(b []byte, t *tensorInfo) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == fieldTensorElemType && typ == protowire.VarintType:
			t.elem = tensors.DType(int32(x))
		case num == fieldTensorShape && typ == protowire.BytesType:
			t.rankKnown = true
			t.dims = []dim{}
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != fieldShapeDim || typ != protowire.BytesType {
					return nil
				}
				d := dim{value: -1}
				err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == fieldDimValue && typ == protowire.VarintType:
						d.value = int64(x)
					case num == fieldDimParam && typ == protowire.BytesType:
						d.param = string(v)
					}
					return nil
				})
				t.dims = append(t.dims, d)
				return err
			})
		}
		return nil
	})
}
