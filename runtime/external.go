package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX initializers may keep their bytes in "external data" files named by
// a location relative to the model file, and ONNX Runtime opens whatever
// the location names. A model from elsewhere could name ../../etc/shadow,
// an absolute path or a symlink pointing out of its folder, so every model
// file is checked before ONNX Runtime sees it: each location must be a
// plain relative path inside the model's directory, with no symlink on the
// way, naming a regular file.

// Field numbers from onnx.proto for the messages that can hold tensors.
const (
	fieldModelFunctions         = 25
	fieldFunctionNode           = 7
	fieldGraphNode              = 1
	fieldGraphInitializer       = 5
	fieldGraphSparseInitializer = 15
	fieldNodeAttribute          = 5
	fieldAttrT                  = 5
	fieldAttrG                  = 6
	fieldAttrTensors            = 10
	fieldAttrGraphs             = 11
	fieldAttrSparseTensor       = 22
	fieldAttrSparseTensors      = 23
	fieldSparseValues           = 1
	fieldSparseIndices          = 2
	fieldTensorName             = 8
	fieldTensorExternalData     = 13
	fieldEntryKey               = 1
	fieldEntryValue             = 2
)

// maxNesting bounds the depth of graphs inside attributes (If, Loop, Scan).
const maxNesting = 64

type pbKind int

const (
	kindModel pbKind = iota
	kindFunction
	kindGraph
	kindNode
	kindAttribute
	kindSparse
	kindTensor
)

// children says which fields of a message kind hold messages that may
// contain tensors.
func children(k pbKind, num protowire.Number) (pbKind, bool) {
	switch k {
	case kindModel:
		switch num {
		case fieldModelGraph:
			return kindGraph, true
		case fieldModelFunctions:
			return kindFunction, true
		}
	case kindFunction:
		if num == fieldFunctionNode {
			return kindNode, true
		}
	case kindGraph:
		switch num {
		case fieldGraphNode:
			return kindNode, true
		case fieldGraphInitializer:
			return kindTensor, true
		case fieldGraphSparseInitializer:
			return kindSparse, true
		}
	case kindNode:
		if num == fieldNodeAttribute {
			return kindAttribute, true
		}
	case kindAttribute:
		switch num {
		case fieldAttrT, fieldAttrTensors:
			return kindTensor, true
		case fieldAttrG, fieldAttrGraphs:
			return kindGraph, true
		case fieldAttrSparseTensor, fieldAttrSparseTensors:
			return kindSparse, true
		}
	case kindSparse:
		if num == fieldSparseValues || num == fieldSparseIndices {
			return kindTensor, true
		}
	}
	return 0, false
}

// ExternalDataError is a model's external-data reference that points
// outside its folder or at something that is not a regular file.
type ExternalDataError struct {
	Model    string // the model file
	Tensor   string // the initializer
	Location string
	Reason   string
}

func (e *ExternalDataError) Error() string {
	return fmt.Sprintf("%s: initializer %q: external data location %q %s; a model's external data must be regular files inside its folder",
		e.Model, e.Tensor, e.Location, e.Reason)
}

// CheckExternalData reads the ONNX model file at path (skipping weight
// bytes by seeking) and checks every external-data location of every
// tensor, in the graph, its subgraphs and its functions.
func CheckExternalData(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkExternalData(f, path)
}

// checkExternalData checks the model read from r, whose file is path.
func checkExternalData(r io.ReadSeeker, path string) error {
	s := &pbStream{src: r, br: bufio.NewReaderSize(r, 64<<10)}
	dir := filepath.Dir(path)
	err := s.walk(-1, kindModel, 0, func(tensor, loc string) error {
		if reason := badLocation(dir, loc); reason != "" {
			return &ExternalDataError{Model: path, Tensor: tensor, Location: loc, Reason: reason}
		}
		return nil
	})
	if err != nil {
		var ed *ExternalDataError
		if errors.As(err, &ed) {
			return err
		}
		return fmt.Errorf("%s: reading external data references: %w", path, err)
	}
	return nil
}

// walk reads the fields of a message of kind k up to end (-1: the end of
// the stream), descending into the fields that may hold tensors and calling
// check for every external-data location.
func (s *pbStream) walk(end int64, k pbKind, depth int, check func(tensor, loc string) error) error {
	if depth > maxNesting {
		return fmt.Errorf("messages nested deeper than %d", maxNesting)
	}
	var name string
	var locs []string
	for end < 0 || s.pos < end {
		num, typ, err := s.tag()
		if err == io.EOF && end < 0 {
			break
		}
		if err != nil {
			return unexpectedEOF(err)
		}
		if typ != protowire.BytesType {
			if err := s.skipField(typ); err != nil {
				return err
			}
			continue
		}
		if k == kindTensor && (num == fieldTensorName || num == fieldTensorExternalData) {
			b, err := s.lenBytes()
			if err != nil {
				return err
			}
			if num == fieldTensorName {
				name = string(b)
				continue
			}
			var key, val string
			err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if typ == protowire.BytesType && num == fieldEntryKey {
					key = string(v)
				} else if typ == protowire.BytesType && num == fieldEntryValue {
					val = string(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if key == "location" {
				locs = append(locs, val)
			}
			continue
		}
		child, ok := children(k, num)
		if !ok {
			if err := s.skipField(typ); err != nil {
				return err
			}
			continue
		}
		n, err := s.uvarint()
		if err != nil {
			return unexpectedEOF(err)
		}
		sub := s.pos + int64(n)
		if int64(n) < 0 || sub < s.pos || (end >= 0 && sub > end) {
			return errors.New("malformed length")
		}
		if err := s.walk(sub, child, depth+1, check); err != nil {
			return err
		}
	}
	if end >= 0 && s.pos != end {
		return errors.New("malformed message")
	}
	for _, l := range locs {
		if err := check(name, l); err != nil {
			return err
		}
	}
	return nil
}

// badLocation says what is wrong with an external-data location relative
// to the model directory dir, or "" when it is fine.
func badLocation(dir, loc string) string {
	switch {
	case loc == "":
		return "is empty"
	case strings.ContainsRune(loc, 0):
		return "contains a NUL byte"
	case filepath.IsAbs(loc):
		return "is an absolute path"
	case !filepath.IsLocal(loc):
		return "leaves the model's folder"
	}
	p := dir
	parts := strings.Split(filepath.Clean(loc), string(filepath.Separator))
	for i, part := range parts {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return "does not exist"
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "goes through a symbolic link (" + filepath.Join(parts[:i+1]...) + ")"
		}
		if i == len(parts)-1 && !fi.Mode().IsRegular() {
			return "is not a regular file"
		}
	}
	return ""
}
