package torchpickle

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"mohawk/tensors"
)

// The tensors materialised from a file may total at most maxExpansion times
// the file's size plus expansionSlack bytes. Tied weights (two names, one
// storage) need 2×; a stride-0 expanded buffer needs more, but only a
// hostile file needs unboundedly more.
const (
	maxExpansion   = 4
	expansionSlack = 1 << 24
)

// Named is a tensor and its name: the state-dict key, or a dotted path for
// nested containers.
type Named struct {
	Name string
	T    *tensors.Tensor
}

// Load reads every tensor of the torch.save checkpoint at path, by name.
func Load(path string) (map[string]*tensors.Tensor, error) {
	named, err := LoadOrdered(path)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*tensors.Tensor, len(named))
	for _, n := range named {
		m[n.Name] = n.T
	}
	return m, nil
}

// LoadOrdered reads every tensor of the torch.save checkpoint at path in
// the order the file lists them (a state dict's insertion order). Names are
// unique.
func LoadOrdered(path string) ([]Named, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening torch checkpoint: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (mode %v); pass a torch.save checkpoint file", path, st.Mode())
	}
	return load(path, f, st.Size())
}

// load reads a checkpoint of size bytes from r; path names it in errors.
func load(path string, r io.ReaderAt, size int64) ([]Named, error) {
	a, err := openArchive(path, r, size)
	if err != nil {
		return nil, err
	}
	if err := a.checkByteOrder(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pklName := a.prefix + "data.pkl"
	pkl, err := a.readMember(pklName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	u := &unpickler{data: pkl, persistentLoad: a.persistentLoad}
	root, err := u.run()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, pklName, err)
	}
	fl := newFlattener(len(pkl))
	if err := fl.walk(root); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, pklName, err)
	}

	// Visit the tensors grouped by storage, so that a storage with strided
	// views is read once for all of them; the output keeps the file order.
	order := make([]int, len(fl.out))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return strings.Compare(fl.out[i].t.storage.member, fl.out[j].t.storage.member)
	})
	m := &materializer{a: a, budget: expansionSlack + maxExpansion*min(size, (math.MaxInt64-expansionSlack)/maxExpansion)}
	out := make([]Named, len(fl.out))
	for _, i := range order {
		ref := fl.out[i]
		t, err := m.materialize(ref.t)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q (zip member %s): %w", path, ref.name, ref.t.storage.member, err)
		}
		out[i] = Named{ref.name, t}
	}
	return out, nil
}

// persistentLoad resolves a BINPERSID id, ('storage', storage class, key,
// location, numel), to its zip member.
func (a *archive) persistentLoad(pid any) (any, error) {
	t, ok := pid.(pyTuple)
	if ok && len(t) == 5 {
		tag, _ := t[0].(string)
		ok = tag == "storage"
	}
	if !ok || len(t) != 5 {
		return nil, fmt.Errorf("a persistent id is a %s; torch.save writes ('storage', class, key, location, numel)", describeID(pid))
	}
	class, ok := t[1].(*global)
	if !ok || class.kind != kindStorage {
		return nil, fmt.Errorf("a persistent id names a %s as its storage class", typeName(t[1]))
	}
	key, ok := t[2].(string)
	if !ok || key == "" || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("a persistent id has the storage key %s; torch.save writes a plain name such as \"0\"", printableValue(t[2]))
	}
	if _, ok := t[3].(string); !ok {
		return nil, fmt.Errorf("storage %q has a %s as its location, not a str", key, typeName(t[3]))
	}
	numel, ok := t[4].(int64)
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %q has %s elements", key, printableValue(t[4]))
	}
	member := a.prefix + "data/" + key
	s, err := a.span(member)
	if err != nil {
		return nil, err
	}
	nbytes, ok := mul(numel, int64(class.dtype.Size()))
	if !ok || nbytes > s.n {
		return nil, fmt.Errorf("storage %q declares %d %s elements, more than the %d bytes of zip member %s hold", key, numel, class.dtype, s.n, member)
	}
	return &storageRef{member: member, class: class.name, dtype: class.dtype, nbytes: nbytes, data: s}, nil
}

func describeID(pid any) string {
	if t, ok := pid.(pyTuple); ok {
		if len(t) > 0 {
			return fmt.Sprintf("%d-tuple starting with %s", len(t), printableValue(t[0]))
		}
		return "empty tuple"
	}
	return typeName(pid)
}

// printableValue shows a scalar for a message, briefly.
func printableValue(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 64 {
			v = v[:64] + "..."
		}
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return "a " + typeName(v)
}

type namedRef struct {
	name string
	t    *tensorRef
}

// flattener collects the tensors of the unpickled object under dotted
// names. A hostile pickle can share containers (a memo reference costs two
// bytes) so that the walk, the names or the entries grow much faster than
// the file; each is capped relative to data.pkl's size, far above what a
// real checkpoint needs.
type flattener struct {
	out      []namedRef
	names    map[string]bool
	open     map[any]bool // the containers being walked, to catch cycles
	path     []string     // the keys leading to the value being walked
	pathLen  int          // len(strings.Join(path, "."))
	visits   int
	nameLen  int // total length of the names so far
	pklBytes int
}

func newFlattener(pklBytes int) *flattener {
	return &flattener{names: map[string]bool{}, open: map[any]bool{}, pklBytes: pklBytes}
}

func (f *flattener) walk(v any) error {
	if len(f.path) > maxMarks {
		return fmt.Errorf("%w: containers are nested more than %d deep", ErrFormat, maxMarks)
	}
	switch v := v.(type) {
	case *tensorRef:
		if len(f.out) >= f.pklBytes/4+64 {
			return fmt.Errorf("%w: more than %d tensors in a %d-byte data.pkl", ErrFormat, len(f.out), f.pklBytes)
		}
		if f.nameLen += f.pathLen; f.nameLen > 4*f.pklBytes+1<<20 {
			return fmt.Errorf("%w: the tensor names total more than %d bytes, out of proportion to the %d-byte data.pkl", ErrFormat, f.nameLen, f.pklBytes)
		}
		name := strings.Join(f.path, ".")
		if f.names[name] {
			return fmt.Errorf("%w: two tensors are named %q", ErrFormat, name)
		}
		f.names[name] = true
		f.out = append(f.out, namedRef{name, v})
	case *pyDict:
		if f.open[v] {
			return fmt.Errorf("%w: the dict at %q contains itself", ErrFormat, strings.Join(f.path, "."))
		}
		f.open[v] = true
		defer delete(f.open, v)
		for _, k := range v.keys {
			if err := f.child(k, v.vals[k]); err != nil {
				return err
			}
		}
	case *pyList:
		if f.open[v] {
			return fmt.Errorf("%w: the list at %q contains itself", ErrFormat, strings.Join(f.path, "."))
		}
		f.open[v] = true
		defer delete(f.open, v)
		for i, item := range v.items {
			if err := f.child(int64(i), item); err != nil {
				return err
			}
		}
	case pyTuple:
		for i, item := range v {
			if err := f.child(int64(i), item); err != nil {
				return err
			}
		}
	}
	return nil
}

// child walks the item under key of the container being walked. It counts
// every item, walked or not, so that shared containers cannot multiply the
// work unnoticed.
func (f *flattener) child(key, item any) error {
	if f.visits++; f.visits > 2*f.pklBytes+16 {
		return fmt.Errorf("%w: its containers share each other so often that listing them visits more than %d values", ErrFormat, 2*f.pklBytes+16)
	}
	switch item.(type) {
	case *tensorRef, *pyDict, *pyList, pyTuple:
	default:
		return nil // a scalar, a set or a storage: no tensors in it
	}
	k := keyString(key)
	sep := 0
	if len(f.path) > 0 {
		sep = 1
	}
	f.path = append(f.path, k)
	f.pathLen += sep + len(k)
	err := f.walk(item)
	f.path = f.path[:len(f.path)-1]
	f.pathLen -= sep + len(k)
	return err
}

// keyString spells a dict key as part of a name.
func keyString(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case pyBytes:
		return string(k)
	case int64:
		return strconv.FormatInt(k, 10)
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64)
	case bool:
		if k {
			return "True"
		}
		return "False"
	}
	return "None"
}

// materializer copies tensors out of the file. A contiguous view is read
// straight into its tensor; a strided one is gathered from its storage's
// member, which is read whole once and kept while the next tensors view the
// same storage.
type materializer struct {
	a      *archive
	budget int64  // bytes the tensors may still take
	member string // the member cached holds
	cached []byte
}

// materialize checks t's view against its storage and copies it into a
// dense tensor.
func (m *materializer) materialize(t *tensorRef) (*tensors.Tensor, error) {
	st := t.storage
	es := int64(t.dtype.Size())
	if t.offset < 0 {
		return nil, fmt.Errorf("%w: negative storage offset %d", ErrFormat, t.offset)
	}
	numel := int64(1)
	for i, d := range t.shape {
		if d < 0 || t.stride[i] < 0 {
			return nil, fmt.Errorf("%w: size %v or stride %v is negative", ErrFormat, t.shape, t.stride)
		}
		var ok bool
		if numel, ok = mul(numel, d); !ok {
			return nil, fmt.Errorf("%w: size %v has more elements than fit in 64 bits", ErrFormat, t.shape)
		}
	}
	if numel == 0 {
		return tensors.Zeros(t.dtype, t.shape...), nil
	}
	// The view addresses elements offset ... last of the storage.
	last, ok := t.offset, true
	for i, d := range t.shape {
		var step int64
		if step, ok = mul(d-1, t.stride[i]); !ok {
			break
		}
		if last, ok = add(last, step); !ok {
			break
		}
	}
	var end int64
	if ok {
		if end, ok = add(last, 1); ok {
			end, ok = mul(end, es)
		}
	}
	if !ok || end > st.nbytes {
		return nil, fmt.Errorf("%w: size %v, stride %v and offset %d reach past the %d bytes of its %s (%s)", ErrFormat, t.shape, t.stride, t.offset, st.nbytes, st.class, t.dtype)
	}
	size, ok := mul(numel, es)
	if !ok || size > m.budget {
		return nil, fmt.Errorf("%w: %v%v needs more bytes than the %d left to this file (which may expand to %d× its size); a stride-0 (expanded) tensor this large is not a weight", ErrFormat, t.dtype, t.shape, m.budget, maxExpansion)
	}
	m.budget -= size
	out := tensors.Zeros(t.dtype, t.shape...)
	start := t.offset * es
	if contiguous(t.shape, t.stride) {
		if err := m.a.readAt(out.Data, st.data, start, st.member); err != nil {
			return nil, err
		}
	} else {
		if m.member != st.member {
			m.member, m.cached = "", nil // let the previous storage go first
			b := make([]byte, st.data.n)
			if err := m.a.readAt(b, st.data, 0, st.member); err != nil {
				return nil, err
			}
			m.member, m.cached = st.member, b
		}
		gather(out.Data, m.cached[start:end], t.shape, t.stride, es)
	}
	if t.dtype == tensors.Bool {
		for _, b := range out.Data {
			if b > 1 {
				return nil, fmt.Errorf("%w: a bool element holds the byte %d, not 0 or 1", ErrFormat, b)
			}
		}
	}
	return out, nil
}

// contiguous reports whether stride is the row-major stride of shape,
// ignoring dimensions of size 1, whose stride never matters.
func contiguous(shape, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

// gather copies the strided view (shape, stride, in elements of es bytes,
// starting at src[0]) densely into dst. Every index has been checked.
func gather(dst, src []byte, shape, stride []int64, es int64) {
	rank := len(shape)
	inner, innerStride := shape[rank-1], stride[rank-1]
	idx := make([]int64, rank-1)
	var base int64 // element index in src of the current row
	for d := int64(0); d < int64(len(dst)); {
		if innerStride == 1 {
			d += int64(copy(dst[d:d+inner*es], src[base*es:(base+inner)*es]))
		} else {
			for j, p := int64(0), base; j < inner; j, p = j+1, p+innerStride {
				d += int64(copy(dst[d:d+es], src[p*es:(p+1)*es]))
			}
		}
		for k := rank - 2; k >= 0; k-- {
			idx[k]++
			base += stride[k]
			if idx[k] < shape[k] {
				break
			}
			base -= stride[k] * shape[k]
			idx[k] = 0
		}
	}
}

// mul multiplies non-negative a and b, reporting overflow.
func mul(a, b int64) (int64, bool) {
	if a != 0 && b > math.MaxInt64/a {
		return 0, false
	}
	return a * b, true
}

// add adds non-negative a and b, reporting overflow.
func add(a, b int64) (int64, bool) {
	if a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}
