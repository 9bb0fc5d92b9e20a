package stages

import (
	"errors"
	"fmt"

	"mohawk/runtime"
	"mohawk/tensors"
)

// Runtime is what stages need of an inference engine: sessions for the
// graphs they build, values kept resident on the device between runs, and
// the provider's name (to pick how bfloat16 products are computed). ORT
// adapts ONNX Runtime (*runtime.Env) to it; the package's tests use a fake.
type Runtime interface {
	// NewSession opens a session for a serialized model whose inputs and
	// outputs are named in the order runs feed and return them.
	NewSession(name string, model []byte, inputs, outputs []string) (Session, error)
	// NewSessionFromFile is NewSession for a model.onnx on disk (with its
	// external data beside it).
	NewSessionFromFile(name, path string, inputs, outputs []string) (Session, error)
	// Fetch copies a resident value into host memory.
	Fetch(r Resident) (*tensors.Tensor, error)
	// Upload copies a host tensor into a new resident value.
	Upload(t *tensors.Tensor) (Resident, error)
	// Provider is the execution provider's name (runtime.ProviderCPU, ...).
	Provider() string
}

// Session runs one graph.
type Session interface {
	// Run feeds host tensors and returns every output in host memory.
	Run(in []*tensors.Tensor) ([]*tensors.Tensor, error)
	// RunResident is Run whose inputs may be resident values and whose
	// outputs j with keep[j] stay resident (dev[j]; host[j] is nil) while
	// the others come back (host[j]; dev[j] is nil).
	RunResident(in []Feed, keep []bool) (host []*tensors.Tensor, dev []Resident, err error)
	Close() error
}

// Resident is a value a Session left in the device's memory.
type Resident interface {
	// Release frees it; it is idempotent.
	Release()
}

// Feed is one input of Session.RunResident: a host tensor or a resident
// value.
type Feed struct {
	Host     *tensors.Tensor
	Resident Resident
}

// ORT adapts ONNX Runtime to Runtime. Go has no covariant results, so
// *runtime.Env (whose sessions are *runtime.Session) needs this thin
// wrapper; it adds no behaviour.
func ORT(rt *runtime.Env) Runtime { return ortRuntime{rt} }

type ortRuntime struct{ env *runtime.Env }

func (o ortRuntime) NewSession(name string, model []byte, inputs, outputs []string) (Session, error) {
	return ortSessionOf(o.env.NewSession(name, model, inputs, outputs))
}

func (o ortRuntime) NewSessionFromFile(name, path string, inputs, outputs []string) (Session, error) {
	return ortSessionOf(o.env.NewSessionFromFile(name, path, inputs, outputs))
}

func (o ortRuntime) Fetch(r Resident) (*tensors.Tensor, error) {
	v, err := ortResident(r)
	if err != nil {
		return nil, err
	}
	return o.env.Fetch(v)
}

func (o ortRuntime) Upload(t *tensors.Tensor) (Resident, error) {
	r, err := o.env.Upload(t)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (o ortRuntime) Provider() string { return o.env.Provider() }

// ortSessionOf keeps a failed open a nil Session (not a typed nil).
func ortSessionOf(s *runtime.Session, err error) (Session, error) {
	if err != nil {
		return nil, err
	}
	return ortSession{s}, nil
}

// ortSession is a *runtime.Session whose RunResident speaks Feed and
// Resident.
type ortSession struct{ *runtime.Session }

func (s ortSession) RunResident(in []Feed, keep []bool) ([]*tensors.Tensor, []Resident, error) {
	feeds := make([]runtime.Feed, len(in))
	for i, f := range in {
		feeds[i].Host = f.Host
		if f.Resident != nil {
			v, err := ortResident(f.Resident)
			if err != nil {
				return nil, nil, fmt.Errorf("session %q: input %d: %w", s.Name(), i, err)
			}
			feeds[i].Resident = v
		}
	}
	host, dev, err := s.Session.RunResident(feeds, keep)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Resident, len(dev))
	for j, r := range dev {
		if r != nil {
			out[j] = r
		}
	}
	return host, out, nil
}

// ortResident is the ONNX Runtime value behind r.
func ortResident(r Resident) (*runtime.Resident, error) {
	v, ok := r.(*runtime.Resident)
	if !ok {
		return nil, errors.New("a resident value from another runtime was given to ONNX Runtime")
	}
	return v, nil
}
