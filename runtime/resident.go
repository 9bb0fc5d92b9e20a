package runtime

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"unsafe"

	"mohawk/tensors"
)

// Resident is a tensor ONNX Runtime allocated in the memory of the
// session's device — GPU memory under the cuda and tensorrt providers, host
// memory owned by ORT under cpu — returned by RunResident and fed to later
// runs without crossing PCIe. Release it when it is no longer needed; the
// Env releases what is left when it closes.
type Resident struct {
	DType tensors.DType
	Shape []int64
	env   *Env
	v     unsafe.Pointer // OrtValue*; nil once released
}

// Bytes is the size of the tensor's data.
func (r *Resident) Bytes() int64 { return tensors.NumElements(r.Shape) * int64(r.DType.Size()) }

// Release frees the value. It is idempotent.
func (r *Resident) Release() {
	if r == nil {
		return
	}
	r.env.mu.Lock()
	v := r.v
	r.v = nil
	delete(r.env.residents, r)
	r.env.mu.Unlock()
	if v != nil {
		releaseValue(v)
	}
}

// Feed is one input of RunResident: a host tensor or a resident value.
type Feed struct {
	Host     *tensors.Tensor
	Resident *Resident
}

// RunResident is Run for values that should stay on the device: inputs may
// be resident values (bound where they are, no copy), and every output j
// with keep[j] is returned as a Resident in the provider's device memory
// while the others come back as host tensors. host[j] is nil where keep[j],
// dev[j] nil otherwise. The inputs stay valid; release them when done.
func (s *Session) RunResident(in []Feed, keep []bool) (host []*tensors.Tensor, dev []*Resident, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(format string, args ...any) ([]*tensors.Tensor, []*Resident, error) {
		return nil, nil, fmt.Errorf("session %q: run: "+format, append([]any{s.name}, args...)...)
	}
	if s.ort == nil {
		return fail("the session is closed")
	}
	if len(in) != len(s.inputs) || len(keep) != len(s.outputs) {
		return fail("got %d inputs and %d output flags, want %d (%s) and %d", len(in), len(keep), len(s.inputs),
			quoteList(s.InputNames()), len(s.outputs))
	}
	for i, f := range in {
		var err error
		switch {
		case f.Resident != nil:
			err = f.Resident.check(s.env, s.inputs[i])
		default:
			err = checkInput(s.inputs[i], f.Host)
		}
		if err != nil {
			return fail("input %q: %v", s.inputs[i].name, err)
		}
	}
	if err := loadAPI(s.env.lib); err != nil {
		return fail("%v", err)
	}
	sess, err := ortSessionPointer(s.ort)
	if err != nil {
		return fail("%v", err)
	}
	cpu, err := memoryInfo(ProviderCPU, 0)
	if err != nil {
		return fail("%v", err)
	}
	defer releaseMemoryInfo(cpu)
	devInfo, err := memoryInfo(s.env.provider, cfgDeviceID(s.env.cfg, s.env.provider))
	if err != nil {
		return fail("%v", err)
	}
	defer releaseMemoryInfo(devInfo)

	b, err := newBinding(sess)
	if err != nil {
		return fail("%v", err)
	}
	defer b.release()
	var pin goruntime.Pinner
	defer pin.Unpin()
	for i, f := range in {
		v := unsafe.Pointer(nil)
		if f.Resident != nil {
			v = f.Resident.v
		} else {
			hv, err := pinnedHostValue(&pin, cpu, f.Host)
			if err != nil {
				return fail("input %q: %v", s.inputs[i].name, err)
			}
			b.owned = append(b.owned, hv)
			v = hv
			s.env.hostIn.Add(int64(len(f.Host.Data)))
		}
		if err := b.bindInput(s.inputs[i].name, v); err != nil {
			return fail("bind input %q: %v", s.inputs[i].name, err)
		}
	}
	for j, o := range s.outputs {
		where := cpu
		if keep[j] {
			where = devInfo
		}
		if err := b.bindOutput(o.name, where); err != nil {
			return fail("bind output %q: %v", o.name, err)
		}
	}
	vals, err := b.run(len(s.outputs))
	goruntime.KeepAlive(in)
	if err != nil {
		return fail("%v", err)
	}
	host = make([]*tensors.Tensor, len(vals))
	dev = make([]*Resident, len(vals))
	var errs []error
	for j, v := range vals {
		if keep[j] {
			r, err := s.env.adopt(v)
			dev[j] = r
			if err != nil {
				errs = append(errs, fmt.Errorf("output %q: %v", s.outputs[j].name, err))
			}
			continue
		}
		host[j], err = hostCopy(v)
		releaseValue(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("output %q: %v", s.outputs[j].name, err))
			continue
		}
		s.env.hostOut.Add(int64(len(host[j].Data)))
	}
	if len(errs) > 0 {
		for _, r := range dev {
			r.Release()
		}
		return fail("%v", errors.Join(errs...))
	}
	return host, dev, nil
}

// check compares a resident input with what the model declares.
func (r *Resident) check(e *Env, info tensorInfo) error {
	if r.v == nil {
		return errors.New("the resident value was released")
	}
	if r.env != e {
		return errors.New("the resident value belongs to another runtime.Env")
	}
	return checkDeclared(info, r.DType, r.Shape)
}

// adopt registers an ORT value returned by a run as a Resident of e.
func (e *Env) adopt(v unsafe.Pointer) (*Resident, error) {
	dt, shape, err := describe(v)
	if err != nil {
		releaseValue(v)
		return nil, err
	}
	r := &Resident{DType: dt, Shape: shape, env: e, v: v}
	e.mu.Lock()
	e.residents[r] = struct{}{}
	e.mu.Unlock()
	return r, nil
}

// Fetch copies a resident value into a host tensor (through a one-node
// Identity session of the same provider, which ORT's copy machinery serves).
func (e *Env) Fetch(r *Resident) (*tensors.Tensor, error) {
	if r == nil || r.v == nil {
		return nil, errors.New("runtime: fetch: the resident value was released")
	}
	host, _, err := e.copyValue("fetch", r.DType, Feed{Resident: r}, false)
	if err != nil {
		return nil, err
	}
	return host, nil
}

// Upload copies a host tensor into a new resident value in the provider's
// device memory (through the same Identity session as Fetch: the output is
// a buffer of its own, never the host tensor's memory).
func (e *Env) Upload(t *tensors.Tensor) (*Resident, error) {
	if t == nil {
		return nil, errors.New("runtime: upload: no tensor")
	}
	_, dev, err := e.copyValue("upload", t.DType, Feed{Host: t}, true)
	if err != nil {
		return nil, err
	}
	return dev, nil
}

// copyValue runs in through the Identity session of dt, its result resident
// where keep, on the host otherwise; what names the operation in errors.
func (e *Env) copyValue(what string, dt tensors.DType, in Feed, keep bool) (*tensors.Tensor, *Resident, error) {
	s, err := e.identity(dt)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: %s: %v", what, err)
	}
	host, dev, err := s.RunResident([]Feed{in}, []bool{keep})
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: %s: %v", what, err)
	}
	return host[0], dev[0], nil
}

// identity returns e's cached y = Identity(x) session for dtype dt.
func (e *Env) identity(dt tensors.DType) (*Session, error) {
	e.mu.Lock()
	s := e.identities[dt]
	e.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := e.NewSession(fmt.Sprintf("identity-%v", dt), identityModel(uint64(dt), false), []string{"x"}, []string{"y"})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.identities[dt]; old != nil {
		s.Close()
		return old, nil
	}
	e.identities[dt] = s
	return s, nil
}

func cfgDeviceID(cfg Config, provider string) int {
	switch provider {
	case ProviderCUDA:
		return cfg.CUDA.DeviceID
	case ProviderTensorRT:
		return cfg.TensorRT.DeviceID
	}
	return 0
}
