package runtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"mohawk/tensors"
)

// EnvSaveOnFailure names a folder; when ORT rejects a model given as bytes,
// the bytes are written there and the error says where.
const EnvSaveOnFailure = "MOHAWK_SAVE_ON_FAILURE"

// Session runs one ONNX model: inputs and outputs are host tensors in the
// order of the names given when it was created.
//
// A Session is meant to be used from one goroutine at a time. Run and Close
// lock it, so concurrent calls are safe but run one after another; create
// one Session per goroutine to run in parallel.
type Session struct {
	name    string
	env     *Env
	inputs  []tensorInfo // declared type of each input, in run order
	outputs []tensorInfo

	mu  sync.Mutex
	ort *ort.DynamicAdvancedSession // nil once closed
}

// NewSession creates a session from an in-memory ONNX model. name appears
// in every error of the session (e.g. "teacher-forward"); inputs and outputs
// name the graph inputs fed and outputs fetched by Run, in Run's order.
func (e *Env) NewSession(name string, model []byte, inputs, outputs []string) (*Session, error) {
	if len(model) == 0 {
		return nil, fmt.Errorf("session %q: create: the model is empty", name)
	}
	return e.newSession(name, inputs, outputs, func(opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
		if err != nil {
			return nil, fmt.Errorf("%v%s", err, saveOnFailure(name, model))
		}
		return s, nil
	}, func() (signature, error) {
		return readSignature(bytes.NewReader(model))
	})
}

// NewSessionFromFile creates a session from an ONNX file, e.g. one whose
// weights are in external data files next to it.
func (e *Env) NewSessionFromFile(name, path string, inputs, outputs []string) (*Session, error) {
	return e.newSession(name, inputs, outputs, func(opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		if err := CheckExternalData(path); err != nil { // before ORT opens what the model names
			return nil, err
		}
		s, err := ort.NewDynamicAdvancedSession(path, inputs, outputs, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return s, nil
	}, func() (signature, error) {
		f, err := os.Open(path)
		if err != nil {
			return signature{}, err
		}
		defer f.Close()
		return readSignature(f)
	})
}

func (e *Env) newSession(name string, inputs, outputs []string,
	create func(*ort.SessionOptions) (*ort.DynamicAdvancedSession, error),
	readSig func() (signature, error)) (*Session, error) {
	fail := func(format string, args ...any) (*Session, error) {
		return nil, fmt.Errorf("session %q: create: "+format, append([]any{name}, args...)...)
	}
	if e.isClosed() {
		return fail("the runtime.Env is closed")
	}
	// onnxruntime_go indexes the first name, so empty lists would panic.
	if len(inputs) == 0 || len(outputs) == 0 {
		return fail("need at least one input and one output name, got inputs %q and outputs %q", inputs, outputs)
	}
	opts, err := newSessionOptions(e.cfg, e.provider, false)
	if err != nil {
		return fail("%v", err)
	}
	defer opts.Destroy()
	if err := addFused(opts, e.lib); err != nil {
		return fail("%v", err)
	}
	if e.cfg.ProfileDir != "" {
		if err := opts.EnableProfiling(profilePrefix(e.cfg.ProfileDir, name)); err != nil {
			return fail("enable profiling: %v", err)
		}
	}
	s, err := createOnce(create, opts)
	if err != nil {
		return fail("%v", err)
	}
	sess := &Session{name: name, env: e, ort: s}
	sig, err := readSig()
	if err == nil {
		sess.inputs, sess.outputs, err = bindSignature(sig, inputs, outputs)
	} else {
		err = fmt.Errorf("read the model's inputs and outputs: %v", err)
	}
	if err != nil {
		s.Destroy()
		return fail("%v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		s.Destroy()
		return fail("the runtime.Env was closed meanwhile")
	}
	e.sessions[sess] = struct{}{}
	return sess, nil
}

// firstCreate serialises session creation until one session has been
// created in the process: ONNX Runtime adds the FusedDomain to its
// process-wide map of domain versions while it creates the first session
// that registers it, and two such creations at once can both try to add it
// (one then fails with "Trying to add a domain to DomainToVersion map, but
// the domain is already exist"). Later creations find the domain there and
// run in parallel.
var firstCreate struct {
	sync.Mutex
	done atomic.Bool
}

// createOnce runs create, alone while no session has been created yet.
func createOnce(create func(*ort.SessionOptions) (*ort.DynamicAdvancedSession, error), opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
	if firstCreate.done.Load() {
		return create(opts)
	}
	firstCreate.Lock()
	defer firstCreate.Unlock()
	s, err := create(opts)
	if err == nil {
		firstCreate.done.Store(true)
	}
	return s, err
}

func (e *Env) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// bindSignature picks the declared type of each requested name and checks
// that runtime can feed and fetch it.
func bindSignature(sig signature, inputs, outputs []string) ([]tensorInfo, []tensorInfo, error) {
	pick := func(what string, names []string, declared []tensorInfo) ([]tensorInfo, error) {
		out := make([]tensorInfo, len(names))
		for i, n := range names {
			if slices.Index(names, n) != i {
				return nil, fmt.Errorf("%s %q is listed twice", what, n)
			}
			t, ok := findInfo(declared, n)
			if !ok {
				return nil, fmt.Errorf("the model has no %s %q; its %ss are %s", what, n, what, quoteList(infoNames(declared)))
			}
			if t.kind != "tensor" {
				return nil, fmt.Errorf("%s %q is a %s; runtime handles tensors only", what, n, cmpOr(t.kind, "value of undeclared type"))
			}
			if !t.elem.Valid() {
				return nil, fmt.Errorf("%s %q has element type %v, which mohawk/tensors does not support", what, n, t.elem)
			}
			out[i] = t
		}
		return out, nil
	}
	in, err := pick("input", inputs, sig.inputs)
	if err != nil {
		return nil, nil, err
	}
	out, err := pick("output", outputs, sig.outputs)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range out {
		if err := checkFetchable(o, in); err != nil {
			return nil, nil, err
		}
	}
	return in, out, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Pre-allocation of outputs. onnxruntime_go v1.27.0 cannot wrap two kinds of
// ORT-allocated outputs: 0-d ones ("The shape has no dimensions") and
// float16/bfloat16 ones (it copies one byte per element). Run hands ORT a
// buffer for those instead, so their shape must be known before the run:
// static, or dimensions named (dim_param) like an input dimension.

func isHalf(dt tensors.DType) bool { return dt == tensors.Float16 || dt == tensors.BFloat16 }

func needsPrealloc(o tensorInfo) bool {
	return isHalf(o.elem) || (o.rankKnown && len(o.dims) == 0)
}

func checkFetchable(o tensorInfo, inputs []tensorInfo) error {
	if !needsPrealloc(o) {
		return nil
	}
	why := fmt.Sprintf("output %q (%s): onnxruntime_go v1.27.0 cannot read ORT-allocated %s outputs, so runtime pre-allocates them",
		o.name, o.describe(), o.elem)
	if isHalf(o.elem) && o.rankKnown && len(o.dims) == 0 {
		return fmt.Errorf("%s, but it cannot create 0-d %s values either; give the output shape [1]", why, o.elem)
	}
	if !o.rankKnown {
		return fmt.Errorf("%s and needs its rank and dimensions declared; declare them or Cast it to float32", why)
	}
	for _, d := range o.dims {
		if d.param == "" && d.value >= 0 {
			continue
		}
		if _, _, ok := inputDim(inputs, d.param); d.param == "" || !ok {
			return fmt.Errorf("%s and needs every dimension static or named like an input dimension, but dimension %s is not; "+
				"Cast it to float32 in the graph or declare its shape", why, d)
		}
	}
	return nil
}

// inputDim finds an input dimension declared with the name param.
func inputDim(inputs []tensorInfo, param string) (input, axis int, ok bool) {
	for i, in := range inputs {
		for k, d := range in.dims {
			if param != "" && d.param == param {
				return i, k, true
			}
		}
	}
	return 0, 0, false
}

// saveOnFailure writes a rejected model to $MOHAWK_SAVE_ON_FAILURE and
// returns a sentence for the error message ("" when the variable is unset).
func saveOnFailure(name string, model []byte) string {
	dir := os.Getenv(EnvSaveOnFailure)
	if dir == "" {
		return ""
	}
	sum := sha256.Sum256(model)
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, name)
	path := filepath.Join(dir, safe+"-"+hex.EncodeToString(sum[:4])+".onnx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Sprintf(" (saving the model for $%s failed: %v)", EnvSaveOnFailure, err)
	}
	if err := os.WriteFile(path, model, 0o644); err != nil {
		return fmt.Sprintf(" (saving the model for $%s failed: %v)", EnvSaveOnFailure, err)
	}
	return fmt.Sprintf(" (model saved to %s)", path)
}

// Name is the name given to NewSession.
func (s *Session) Name() string { return s.name }

// InputNames are the names of Run's inputs, in order.
func (s *Session) InputNames() []string { return infoNames(s.inputs) }

// OutputNames are the names of Run's outputs, in order.
func (s *Session) OutputNames() []string { return infoNames(s.outputs) }

// Declared is the element type and shape that the model declares for the
// input or output name of this session, with -1 for a dimension that is
// symbolic or unknown; ok is false when the session does not feed or fetch
// name or the model does not declare its rank.
func (s *Session) Declared(name string) (dt tensors.DType, shape []int64, ok bool) {
	t, found := findInfo(s.inputs, name)
	if !found {
		t, found = findInfo(s.outputs, name)
	}
	if !found || !t.rankKnown {
		return 0, nil, false
	}
	shape = make([]int64, len(t.dims))
	for k, d := range t.dims {
		shape[k] = -1
		if d.param == "" && d.value >= 0 {
			shape[k] = d.value
		}
	}
	return t.elem, shape, true
}

// Close destroys the ORT session, first reading its arena statistics for
// Env.ArenaStats. It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	o := s.ort
	s.ort = nil
	s.mu.Unlock()
	if o == nil {
		return nil
	}
	a, err := s.readArena(o)
	s.env.mu.Lock()
	delete(s.env.sessions, s)
	s.env.arenas = append(s.env.arenas, SessionArena{Session: s.name, Stats: a, Err: err})
	if n := len(s.env.arenas); n > maxClosedArenas { // a long run closes many sessions
		s.env.arenas = slices.Delete(s.env.arenas, 0, n-maxClosedArenas)
	}
	s.env.mu.Unlock()
	if err := o.Destroy(); err != nil {
		return fmt.Errorf("session %q: close: %v", s.name, err)
	}
	return nil
}

// Run feeds inputs (in InputNames order) and returns new tensors in
// OutputNames order. Inputs are checked against the model's declared dtype,
// rank and static dimensions first. Their data is handed to ORT without
// copying and must not change during the call.
func (s *Session) Run(inputs []*tensors.Tensor) ([]*tensors.Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(format string, args ...any) ([]*tensors.Tensor, error) {
		return nil, fmt.Errorf("session %q: run: "+format, append([]any{s.name}, args...)...)
	}
	if s.ort == nil {
		return fail("the session is closed")
	}
	if len(inputs) != len(s.inputs) {
		return fail("got %d inputs, want %d (%s)", len(inputs), len(s.inputs), quoteList(s.InputNames()))
	}
	for i, t := range inputs {
		if err := checkInput(s.inputs[i], t); err != nil {
			return fail("input %q: %v", s.inputs[i].name, err)
		}
	}

	in := make([]ort.Value, len(inputs))
	out := make([]ort.Value, len(s.outputs))
	defer destroyValues(in)
	defer destroyValues(out)
	for i, t := range inputs {
		v, err := inputValue(t)
		if err != nil {
			return fail("input %q: %v", s.inputs[i].name, err)
		}
		in[i] = v
	}
	pre := make([]*tensors.Tensor, len(s.outputs))
	for j, o := range s.outputs {
		if !needsPrealloc(o) {
			continue // ORT allocates it
		}
		v, t, err := preallocOutput(o, s.inputs, inputs)
		if err != nil {
			return fail("output %q: %v", o.name, err)
		}
		out[j], pre[j] = v, t
	}
	err := s.ort.Run(in, out)
	goruntime.KeepAlive(inputs) // ORT read their Data in place
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "shape has no dimensions") {
			hint = " (an output came back 0-d but the model does not declare it so; declare its shape as a scalar)"
		}
		return fail("%v%s", err, hint)
	}
	res := make([]*tensors.Tensor, len(out))
	var sent, got int64
	for _, t := range inputs {
		sent += int64(len(t.Data))
	}
	for j, v := range out {
		t, err := outputTensor(v, pre[j])
		if err != nil {
			return fail("output %q: %v", s.outputs[j].name, err)
		}
		res[j] = t
		got += int64(len(t.Data))
	}
	s.env.hostIn.Add(sent)
	s.env.hostOut.Add(got)
	return res, nil
}

// destroyValues destroys every value. A failed output conversion in
// onnxruntime_go leaves a typed nil pointer in its slot, hence reflect.
func destroyValues(vs []ort.Value) {
	for _, v := range vs {
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

func checkInput(info tensorInfo, t *tensors.Tensor) error {
	if t == nil {
		return fmt.Errorf("is nil")
	}
	if err := t.Check(); err != nil {
		return err
	}
	return checkDeclared(info, t.DType, t.Shape)
}

// checkDeclared compares a dtype and shape with what the model declares.
func checkDeclared(info tensorInfo, dt tensors.DType, shape []int64) error {
	if dt != info.elem {
		return fmt.Errorf("has dtype %v, the model declares %s", dt, info.describe())
	}
	if !info.rankKnown {
		return nil
	}
	if len(shape) != len(info.dims) {
		return fmt.Errorf("has shape %v (rank %d), the model declares %s (rank %d)", shape, len(shape), info.describe(), len(info.dims))
	}
	for k, d := range info.dims {
		if d.param == "" && d.value >= 0 && shape[k] != d.value {
			return fmt.Errorf("has shape %v, the model declares %s (dimension %d must be %d)", shape, info.describe(), k, d.value)
		}
	}
	return nil
}

// inputValue wraps t's bytes as an ORT value without copying them (0-d
// tensors, which onnxruntime_go can only create as a Scalar, are copied).
func inputValue(t *tensors.Tensor) (ort.Value, error) {
	if len(t.Shape) == 0 {
		return scalarValue(t)
	}
	data := t.Data
	switch {
	case len(data) == 0:
		// A zero-element tensor: onnxruntime_go wants some backing bytes.
		data = make([]byte, 8)
	case uintptr(unsafe.Pointer(&data[0]))%uintptr(t.DType.Size()) != 0:
		// Misaligned (e.g. a slice of a file): ORT kernels expect alignment.
		data = t.Clone().Data
	}
	v, err := ort.NewCustomDataTensor(ort.Shape(slices.Clone(t.Shape)), data, ort.TensorElementDataType(t.DType))
	if err != nil {
		return nil, err
	}
	return v, nil
}

func scalarValue(t *tensors.Tensor) (ort.Value, error) {
	mk := func(v ort.Value, err error) (ort.Value, error) {
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	switch t.DType {
	case tensors.Float32:
		return mk(ort.NewScalar(t.Float32s()[0]))
	case tensors.Float64:
		return mk(ort.NewScalar(t.Float64s()[0]))
	case tensors.Int64:
		return mk(ort.NewScalar(t.Int64s()[0]))
	case tensors.Int32:
		return mk(ort.NewScalar(t.Int32s()[0]))
	case tensors.Uint8:
		return mk(ort.NewScalar(t.Data[0]))
	case tensors.Int8:
		return mk(ort.NewScalar(int8(t.Data[0])))
	case tensors.Bool:
		return mk(ort.NewScalar(t.Data[0] != 0))
	}
	return nil, fmt.Errorf("0-d %v inputs cannot be created with onnxruntime_go v1.27.0; give the input shape [1]", t.DType)
}

// preallocOutput makes the ORT value Run writes output o into, with its
// shape resolved from the actual inputs, and the tensor that shares its
// memory (nil for 0-d outputs, read back from the Scalar).
func preallocOutput(o tensorInfo, infos []tensorInfo, inputs []*tensors.Tensor) (ort.Value, *tensors.Tensor, error) {
	if len(o.dims) == 0 {
		v, err := emptyScalar(o.elem)
		return v, nil, err
	}
	shape := make([]int64, len(o.dims))
	for k, d := range o.dims {
		if d.param == "" {
			shape[k] = d.value
			continue
		}
		i, axis, _ := inputDim(infos, d.param) // checked at creation
		shape[k] = inputs[i].Shape[axis]
	}
	t := tensors.Zeros(o.elem, shape...)
	data := t.Data
	if len(data) == 0 {
		data = make([]byte, 8)
	}
	v, err := ort.NewCustomDataTensor(ort.Shape(shape), data, ort.TensorElementDataType(o.elem))
	if err != nil {
		return nil, nil, err
	}
	return v, t, nil
}

func emptyScalar(dt tensors.DType) (ort.Value, error) {
	mk := func(v ort.Value, err error) (ort.Value, error) {
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	switch dt {
	case tensors.Float32:
		return mk(ort.NewEmptyScalar[float32]())
	case tensors.Float64:
		return mk(ort.NewEmptyScalar[float64]())
	case tensors.Int64:
		return mk(ort.NewEmptyScalar[int64]())
	case tensors.Int32:
		return mk(ort.NewEmptyScalar[int32]())
	case tensors.Uint8:
		return mk(ort.NewEmptyScalar[uint8]())
	case tensors.Int8:
		return mk(ort.NewEmptyScalar[int8]())
	case tensors.Bool:
		return mk(ort.NewEmptyScalar[bool]())
	}
	return nil, fmt.Errorf("0-d %v outputs are not supported", dt)
}

// outputTensor converts an output value into a tensor. Values ORT allocated
// were already copied into Go memory by onnxruntime_go; the tensor takes
// that memory over, so nothing is copied again.
func outputTensor(v ort.Value, pre *tensors.Tensor) (*tensors.Tensor, error) {
	switch x := v.(type) {
	case *ort.CustomDataTensor:
		if pre == nil {
			return nil, fmt.Errorf("ORT returned an unexpected %v value", x.GetShape())
		}
		return pre, nil
	case *ort.Tensor[float32]:
		return fromGo(tensors.Float32, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[float64]:
		return fromGo(tensors.Float64, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[int64]:
		return fromGo(tensors.Int64, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[int32]:
		return fromGo(tensors.Int32, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[uint8]:
		return fromGo(tensors.Uint8, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[int8]:
		return fromGo(tensors.Int8, x.GetShape(), x.GetData()), nil
	case *ort.Tensor[bool]:
		return fromGo(tensors.Bool, x.GetShape(), x.GetData()), nil
	case *ort.Scalar[float32]:
		return scalarTensor(tensors.Float32, x.GetData()), nil
	case *ort.Scalar[float64]:
		return scalarTensor(tensors.Float64, x.GetData()), nil
	case *ort.Scalar[int64]:
		return scalarTensor(tensors.Int64, x.GetData()), nil
	case *ort.Scalar[int32]:
		return scalarTensor(tensors.Int32, x.GetData()), nil
	case *ort.Scalar[uint8]:
		return scalarTensor(tensors.Uint8, x.GetData()), nil
	case *ort.Scalar[int8]:
		return scalarTensor(tensors.Int8, x.GetData()), nil
	case *ort.Scalar[bool]:
		return scalarTensor(tensors.Bool, x.GetData()), nil
	case nil:
		return nil, fmt.Errorf("ORT returned no value")
	}
	return nil, fmt.Errorf("ORT returned a %T, which runtime does not convert", v)
}

// fromGo makes a tensor whose Data is the memory of d.
func fromGo[T any](dt tensors.DType, shape ort.Shape, d []T) *tensors.Tensor {
	b := []byte{}
	if len(d) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), len(d)*int(unsafe.Sizeof(d[0])))
	}
	return &tensors.Tensor{DType: dt, Shape: []int64(shape.Clone()), Data: b}
}

func scalarTensor[T any](dt tensors.DType, v T) *tensors.Tensor {
	t := tensors.Zeros(dt)
	*(*T)(unsafe.Pointer(&t.Data[0])) = v
	return t
}
