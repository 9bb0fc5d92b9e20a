package runtime

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "nccl.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"mohawk/tensors"
)

// NCCL is loaded at run time, never linked: a build of mohawk runs without
// it, and only data-parallel training on GPUs needs it. FindNCCL says where
// it is looked for.
const (
	// EnvNCCLLib names the NCCL library file to load, before any search.
	EnvNCCLLib = "NCCL_LIB"
	// NCCLLibraryName is the file (soname) of NCCL 2.
	NCCLLibraryName = "libnccl.so.2"
	// MinNCCLVersion is the oldest NCCL accepted, as ncclGetVersion codes
	// it (major·10000 + minor·100 + patch): 2.18.0.
	MinNCCLVersion = 21800
)

// ErrNCCLNotFound is returned (wrapped) when FindNCCL finds no library.
var ErrNCCLNotFound = errors.New("NCCL library not found")

// ncclInstall says how to get NCCL.
const ncclInstall = "install it with `pip install nvidia-nccl-cu13` (PyTorch's CUDA 13 wheels bring it along; " +
	"it is then found in the Python environment's site-packages) or with CUDA (the NCCL package of the CUDA " +
	"repository, libnccl2, or a CUDA container), and add its folder to LD_LIBRARY_PATH, or set $" + EnvNCCLLib +
	" to the file"

// ncclSearch is where FindNCCL looks: getenv reads the environment, root
// prefixes the absolute folders searched ("/"), and loadable asks the
// dynamic loader for a library by name (tryDlopen). Tests replace them.
type ncclSearch struct {
	getenv   func(string) string
	root     string
	loadable func(name string) error
}

var systemNCCLSearch = ncclSearch{getenv: os.Getenv, root: "/", loadable: tryDlopen}

// FindNCCL returns the NCCL library to load, without loading it: the file
// $NCCL_LIB names; else libnccl.so.2 where the dynamic loader finds it, the
// way the CUDA libraries the CUDA provider needs are found
// (LD_LIBRARY_PATH, the loader cache, system folders); else in a CUDA
// install (/usr/local/cuda*/lib64, /usr/local/cuda*/targets/x86_64-linux/
// lib); else in a Python environment's site-packages, where the
// nvidia-nccl-cu13 wheel puts it (nvidia/nccl/lib/libnccl.so.2 under
// $VIRTUAL_ENV, $CONDA_PREFIX, $PYTHONPATH, ~/.local, /usr/local, /usr).
// The error wraps ErrNCCLNotFound, lists every place looked in and says
// how to install NCCL.
func FindNCCL() (string, error) { return systemNCCLSearch.find() }

func (s ncclSearch) find() (string, error) {
	if p := s.getenv(EnvNCCLLib); p != "" {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("$%s is %q, but %w; fix or unset it", EnvNCCLLib, p, err)
		}
		if st.IsDir() {
			return "", fmt.Errorf("$%s is %q, a folder; it must name the library file (%s)", EnvNCCLLib, p, NCCLLibraryName)
		}
		return p, nil
	}
	loaderErr := s.loadable(NCCLLibraryName)
	if loaderErr == nil {
		return NCCLLibraryName, nil
	}
	patterns := s.patterns()
	for _, pat := range patterns {
		// The patterns are well formed; the newest CUDA or Python first.
		matches, _ := filepath.Glob(pat)
		sort.Sort(sort.Reverse(sort.StringSlice(matches)))
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && !st.IsDir() {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%w: $%s is unset, the dynamic loader cannot load %s (%v), and none of %s exists; to "+
		"train on several GPUs, %s", ErrNCCLNotFound, EnvNCCLLib, NCCLLibraryName, loaderErr,
		strings.Join(patterns, ", "), ncclInstall)
}

// patterns lists the files FindNCCL globs for after the loader's search.
func (s ncclSearch) patterns() []string {
	abs := func(p string) string { return filepath.Join(s.root, p) }
	pats := []string{
		abs("/usr/local/cuda/lib64/" + NCCLLibraryName),
		abs("/usr/local/cuda/targets/x86_64-linux/lib/" + NCCLLibraryName),
		abs("/usr/local/cuda-*/lib64/" + NCCLLibraryName),
		abs("/usr/local/cuda-*/targets/x86_64-linux/lib/" + NCCLLibraryName),
	}
	wheel := filepath.Join("nvidia", "nccl", "lib", NCCLLibraryName)
	for _, dir := range filepath.SplitList(s.getenv("PYTHONPATH")) {
		if dir != "" {
			pats = append(pats, filepath.Join(dir, wheel))
		}
	}
	var prefixes []string
	for _, env := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := s.getenv(env); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	if home := s.getenv("HOME"); home != "" {
		prefixes = append(prefixes, filepath.Join(home, ".local"))
	}
	prefixes = append(prefixes, abs("/usr/local"), abs("/usr"))
	for _, p := range prefixes {
		for _, sub := range []string{"site-packages", "dist-packages"} {
			pats = append(pats, filepath.Join(p, "lib", "python3*", sub, wheel))
		}
	}
	return pats
}

// NCCL is a loaded NCCL library. It stays loaded for the life of the
// process.
type NCCL struct {
	lib     *C.mh_nccl
	path    string
	version int
}

// ncclLibs holds the libraries loaded, by path.
var ncclLibs struct {
	sync.Mutex
	byPath map[string]*NCCL
}

// LoadNCCL loads the library FindNCCL finds (once per process).
func LoadNCCL() (*NCCL, error) {
	path, err := FindNCCL()
	if err != nil {
		return nil, err
	}
	return OpenNCCL(path)
}

// OpenNCCL loads the NCCL library at path (a file, or a name the dynamic
// loader searches for), once per path, and checks that its version is at
// least MinNCCLVersion.
func OpenNCCL(path string) (*NCCL, error) {
	ncclLibs.Lock()
	defer ncclLibs.Unlock()
	if n := ncclLibs.byPath[path]; n != nil {
		return n, nil
	}
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	var lib *C.mh_nccl
	if err := cErr(C.mh_nccl_open(cPath, &lib)); err != nil {
		return nil, fmt.Errorf("load NCCL %s: %v; %s", path, err, ncclInstall)
	}
	n := &NCCL{lib: lib, path: path}
	var v C.int
	if err := n.check("ncclGetVersion", C.mh_nccl_version(lib, &v)); err != nil {
		C.mh_nccl_close(lib)
		return nil, err
	}
	n.version = int(v)
	if n.version < MinNCCLVersion {
		C.mh_nccl_close(lib)
		return nil, fmt.Errorf("NCCL %s is version %s; mohawk needs %s or newer: %s", path, ncclVersion(n.version),
			ncclVersion(MinNCCLVersion), ncclInstall)
	}
	if ncclLibs.byPath == nil {
		ncclLibs.byPath = map[string]*NCCL{}
	}
	ncclLibs.byPath[path] = n
	return n, nil
}

// ncclVersion formats a version code, 22803 as "2.28.3".
func ncclVersion(code int) string {
	return fmt.Sprintf("%d.%d.%d", code/10000, code/100%100, code%100)
}

// Path is the file (or loader name) the library was loaded from.
func (n *NCCL) Path() string { return n.path }

// Version is the library's version, e.g. "2.28.3".
func (n *NCCL) Version() string { return ncclVersion(n.version) }

// NCCLError is a failed NCCL call.
type NCCLError struct {
	Call string // the NCCL function, e.g. "ncclCommInitRank"
	Code int    // its ncclResult_t
	Text string // its name, code and ncclGetErrorString's text
}

func (e *NCCLError) Error() string { return e.Call + ": " + e.Text }

// check turns an ncclResult_t into nil or an *NCCLError.
func (n *NCCL) check(call string, rc C.int) error {
	if rc == 0 {
		return nil
	}
	var buf [320]C.char
	C.mh_nccl_describe(n.lib, rc, &buf[0], C.size_t(len(buf)))
	return &NCCLError{Call: call, Code: int(rc), Text: C.GoString(&buf[0])}
}

// NCCLID is an ncclUniqueId: rank 0 makes it and sends it to the other
// ranks (over the launcher's rendezvous), which all pass it to NewComm.
type NCCLID [C.MH_NCCL_ID_BYTES]byte

// ParseNCCLID is the NCCLID whose bytes are b (such as the launcher's
// rendezvous blob, made from rank 0's id[:]).
func ParseNCCLID(b []byte) (NCCLID, error) {
	var id NCCLID
	if len(b) != len(id) {
		return id, fmt.Errorf("NCCL unique id of %d bytes; want %d (rank 0's NCCL.UniqueID)", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// UniqueID makes a new NCCLID (ncclGetUniqueId).
func (n *NCCL) UniqueID() (NCCLID, error) {
	var id NCCLID
	err := n.check("ncclGetUniqueId", C.mh_nccl_unique_id(n.lib, unsafe.Pointer(&id[0])))
	return id, err
}

// NCCLComm is one rank's NCCL communicator.
type NCCLComm struct {
	nccl        *NCCL
	mu          sync.Mutex
	comm        unsafe.Pointer // nil once closed or aborted
	rank, ranks int
}

// NewComm joins the communicator id of ranks ranks as rank on CUDA device
// device (ncclCommInitRank; it blocks until every rank has joined). device
// must be the device the rank's sessions run on (runtime.cuda.device_id).
func (n *NCCL) NewComm(id NCCLID, rank, ranks, device int) (*NCCLComm, error) {
	if ranks < 1 || rank < 0 || rank >= ranks {
		return nil, fmt.Errorf("NCCL communicator: rank %d of %d ranks; want 0 ≤ rank < ranks", rank, ranks)
	}
	// The device is per thread: set it on the thread that makes the
	// communicator.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if msg := C.mh_cuda_set_device(C.int(device)); msg != nil {
		return nil, fmt.Errorf("NCCL communicator on CUDA device %d: %s", device, C.GoString(msg))
	}
	var comm unsafe.Pointer
	if err := n.check("ncclCommInitRank", C.mh_nccl_init_rank(n.lib, &comm, C.int(ranks), unsafe.Pointer(&id[0]),
		C.int(rank))); err != nil {
		return nil, fmt.Errorf("NCCL communicator, rank %d of %d on CUDA device %d: %w", rank, ranks, device, err)
	}
	return &NCCLComm{nccl: n, comm: comm, rank: rank, ranks: ranks}, nil
}

// Rank is this process's rank; Size is the world size (as in dist.Comm).
func (c *NCCLComm) Rank() int { return c.rank }
func (c *NCCLComm) Size() int { return c.ranks }

// Use makes c the communicator the AllReduce op's CUDA kernel reduces over,
// in every session of this process, until Close, Abort or another Use.
func (c *NCCLComm) Use() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm == nil {
		return errors.New("NCCL communicator: Use after Close or Abort")
	}
	C.mh_allreduce_use(c.nccl.lib, c.comm)
	return nil
}

// AsyncError reports an error NCCL met while running enqueued work
// (ncclCommGetAsyncError), such as a peer that went away.
func (c *NCCLComm) AsyncError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm == nil {
		return nil
	}
	var async C.int
	if err := c.nccl.check("ncclCommGetAsyncError", C.mh_nccl_async_error(c.nccl.lib, c.comm, &async)); err != nil {
		return err
	}
	return c.nccl.check("NCCL communicator (asynchronous error)", async)
}

// Abort stops the communicator's pending work and frees it
// (ncclCommAbort): the way out after an error or a peer lost, where Close
// could wait for ever.
func (c *NCCLComm) Abort() error { return c.release(true) }

// Close frees the communicator once its pending work is done
// (ncclCommDestroy).
func (c *NCCLComm) Close() error { return c.release(false) }

// release unregisters the communicator from the AllReduce op, then aborts
// or destroys it.
func (c *NCCLComm) release(abort bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.comm == nil {
		return nil
	}
	C.mh_allreduce_forget(c.comm)
	var err error
	if abort {
		err = c.nccl.check("ncclCommAbort", C.mh_nccl_abort(c.nccl.lib, c.comm))
	} else {
		err = c.nccl.check("ncclCommDestroy", C.mh_nccl_destroy(c.nccl.lib, c.comm))
	}
	c.comm = nil
	return err
}

// HostReducer is what the AllReduce op's CPU kernel reduces over: a process
// group whose ranks talk over the host. Its methods are those of the
// launcher's dist.Comm, which therefore is one.
type HostReducer interface {
	// Size is the number of ranks, this one included.
	Size() int
	// AllReduce replaces buf, on every rank, by the element-wise sum of buf
	// over the ranks, the same bits on every rank; all ranks pass buffers
	// of one length.
	AllReduce(ctx context.Context, buf []float32) error
}

// SingleRank is the HostReducer of a world of one: the AllReduce op is then
// the identity, bit for bit.
type SingleRank struct{}

func (SingleRank) Size() int                                  { return 1 }
func (SingleRank) AllReduce(context.Context, []float32) error { return nil }

var hostGroup struct {
	sync.Mutex
	r HostReducer
}

// SetHostReducer makes r what the AllReduce op's CPU kernel reduces over,
// in every session of this process (nil: nothing, and the op fails).
func SetHostReducer(r HostReducer) {
	hostGroup.Lock()
	hostGroup.r = r
	hostGroup.Unlock()
}

// hostReduce replaces the n elements of ONNX element type typ at p with
// their mean over the registered HostReducer's ranks: the float32 sum,
// divided by the rank count and rounded once to the element type. A
// float32 sum would round float64 values, so float64 takes only a group of
// one, where the op is the identity.
func hostReduce(typ int, p unsafe.Pointer, n int) error {
	hostGroup.Lock()
	r := hostGroup.r
	hostGroup.Unlock()
	if r == nil {
		return errors.New("no host reducer is registered in this process (runtime.SetHostReducer; " +
			"runtime.SingleRank for one process)")
	}
	ranks := r.Size()
	if ranks < 1 {
		return fmt.Errorf("the host reducer has %d ranks", ranks)
	}
	var x []float32
	switch tensors.DType(typ) {
	case tensors.Float32:
		x = unsafe.Slice((*float32)(p), n) // reduced in place
	case tensors.BFloat16:
		x = make([]float32, n)
		for i, v := range unsafe.Slice((*uint16)(p), n) {
			x[i] = tensors.BFloat16ToFloat32(v)
		}
	case tensors.Float64:
		if ranks == 1 {
			return nil
		}
		return fmt.Errorf("float64 over %d ranks: the host reducer sums float32; train in float32", ranks)
	default:
		return fmt.Errorf("element type %d is not float32 or bfloat16", typ)
	}
	if err := r.AllReduce(context.Background(), x); err != nil {
		return fmt.Errorf("host all-reduce of %d elements: %w", n, err)
	}
	scale := float32(ranks)
	if tensors.DType(typ) == tensors.BFloat16 {
		out := unsafe.Slice((*uint16)(p), n)
		for i, v := range x {
			out[i] = tensors.Float32ToBFloat16(v / scale)
		}
		return nil
	}
	if ranks > 1 {
		for i := range x {
			x[i] /= scale
		}
	}
	return nil
}

//export mhHostReduce
func mhHostReduce(typ C.int, p unsafe.Pointer, n C.size_t) *C.char {
	if err := hostReduce(int(typ), p, int(n)); err != nil {
		return C.CString(err.Error())
	}
	return nil
}
