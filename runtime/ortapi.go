package runtime

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fused.h"

// The few entries of ORT's C API (struct OrtApi, a table of function
// pointers) that onnxruntime_go v1.27.0 does not wrap: binding outputs to a
// device's memory and feeding those values to later runs. Entries are
// addressed by their index in the table, which ORT only ever appends to;
// TestOrtAPIIndices checks every index against the header that ships with
// onnxruntime_go, whose ORT_API_VERSION is MH_ORT_API_VERSION (fused.h).
enum {
	mhGetErrorMessage = 2,
	mhCreateTensorWithDataAsOrtValue = 49,
	mhGetTensorMutableData = 51,
	mhGetTensorElementType = 60,
	mhGetDimensionsCount = 61,
	mhGetDimensions = 62,
	mhGetTensorTypeAndShape = 65,
	mhCreateMemoryInfo = 68,
	mhAllocatorFree = 76,
	mhGetAllocatorWithDefaultOptions = 78,
	mhReleaseStatus = 93,
	mhReleaseMemoryInfo = 94,
	mhReleaseValue = 96,
	mhReleaseTensorTypeAndShapeInfo = 99,
	mhRunWithBinding = 133,
	mhCreateIoBinding = 134,
	mhReleaseIoBinding = 135,
	mhBindInput = 136,
	mhBindOutputToDevice = 138,
	mhCreateAllocator = 131,
	mhReleaseAllocator = 132,
	mhGetBoundOutputValues = 140,
	mhSynchronizeBoundOutputs = 203,
	mhGetKeyValuePairs = 298,
	mhReleaseKeyValuePairs = 300,
};

typedef void *(*mh_get_api_fn)(uint32_t);
typedef struct { mh_get_api_fn get_api; void *get_version; } mh_api_base;
typedef mh_api_base *(*mh_get_api_base_fn)(void);

static void **mh_api;
static void *mh_api_table(void) { return (void *)mh_api; }
static void mh_forget(void) { mh_api = NULL; }

// mh_load finds the OrtApi table of the already loaded library lib.
static int mh_load(const char *lib, char *msg, size_t n) {
	void *h = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
	if (h == NULL) {
		strncpy(msg, "the ONNX Runtime library is not loaded", n - 1);
		return -1;
	}
	mh_get_api_base_fn base = (mh_get_api_base_fn)dlsym(h, "OrtGetApiBase");
	dlclose(h); // the library stays loaded: onnxruntime_go holds it
	if (base == NULL) {
		strncpy(msg, "the library has no OrtGetApiBase", n - 1);
		return -1;
	}
	mh_api = (void **)base()->get_api(MH_ORT_API_VERSION);
	if (mh_api == NULL) {
		snprintf(msg, n, "the library does not offer ORT API version %d", MH_ORT_API_VERSION);
		return -1;
	}
	return 0;
}

typedef void *status;

// mh_error turns a status into a malloc'd message (NULL for success).
static char *mh_error(status s) {
	if (s == NULL) return NULL;
	const char *m = ((const char *(*)(status))mh_api[mhGetErrorMessage])(s);
	char *out = strdup(m ? m : "unknown ORT error");
	((void (*)(status))mh_api[mhReleaseStatus])(s);
	return out;
}

// mh_allocator is the head of struct OrtAllocator up to GetStats, the
// member an allocator of version MH_ALLOCATOR_STATS_VERSION or later has
// (it may still be NULL); TestArenaAllocatorLayout checks it against the header.
typedef struct mh_allocator {
	uint32_t version;
	void *(*Alloc)(struct mh_allocator *, size_t);
	void (*Free)(struct mh_allocator *, void *);
	const void *(*Info)(const struct mh_allocator *);
	void *(*Reserve)(struct mh_allocator *, size_t);
	status (*GetStats)(const struct mh_allocator *, void **);
} mh_allocator;
#define MH_ALLOCATOR_STATS_VERSION 23

// mh_allocator_stats reads the statistics of the allocator session uses for
// the memory info into *pairs (an OrtKeyValuePairs the caller releases),
// or leaves *pairs NULL when that allocator keeps none.
static char *mh_allocator_stats(void *session, void *info, void **pairs) {
	*pairs = NULL;
	mh_allocator *a = NULL;
	char *err = mh_error(((status (*)(void *, void *, mh_allocator **))mh_api[mhCreateAllocator])(session, info, &a));
	if (err) return err;
	if (a->version >= MH_ALLOCATOR_STATS_VERSION && a->GetStats != NULL) err = mh_error(a->GetStats(a, pairs));
	((void (*)(mh_allocator *))mh_api[mhReleaseAllocator])(a);
	return err;
}

// mh_pairs points keys and values at the n entries of an OrtKeyValuePairs.
static size_t mh_pairs(void *pairs, const char *const **keys, const char *const **values) {
	size_t n = 0;
	((void (*)(void *, const char *const **, const char *const **, size_t *))mh_api[mhGetKeyValuePairs])(pairs, keys, values, &n);
	return n;
}
static void mh_release_pairs(void *pairs) { ((void (*)(void *))mh_api[mhReleaseKeyValuePairs])(pairs); }

static char *mh_memory_info(const char *name, int device, void **out) {
	// OrtArenaAllocator = 1, OrtMemTypeDefault = 0
	return mh_error(((status (*)(const char *, int, int, int, void **))mh_api[mhCreateMemoryInfo])(name, 1, device, 0, out));
}
static void mh_release_memory_info(void *m) { ((void (*)(void *))mh_api[mhReleaseMemoryInfo])(m); }

static char *mh_host_value(void *info, void *data, size_t len, const int64_t *shape, size_t rank, int type, void **out) {
	return mh_error(((status (*)(void *, void *, size_t, const int64_t *, size_t, int, void **))
		mh_api[mhCreateTensorWithDataAsOrtValue])(info, data, len, shape, rank, type, out));
}
static void mh_release_value(void *v) { ((void (*)(void *))mh_api[mhReleaseValue])(v); }

// mh_describe reads a tensor value's element type, rank and dimensions
// (dims has room for 16).
static char *mh_describe(void *v, int *type, size_t *rank, int64_t *dims) {
	void *info = NULL;
	char *err = mh_error(((status (*)(void *, void **))mh_api[mhGetTensorTypeAndShape])(v, &info));
	if (err) return err;
	err = mh_error(((status (*)(void *, int *))mh_api[mhGetTensorElementType])(info, type));
	if (!err) err = mh_error(((status (*)(void *, size_t *))mh_api[mhGetDimensionsCount])(info, rank));
	if (!err && *rank > 16) err = strdup("tensor rank above 16");
	if (!err) err = mh_error(((status (*)(void *, int64_t *, size_t))mh_api[mhGetDimensions])(info, dims, *rank));
	((void (*)(void *))mh_api[mhReleaseTensorTypeAndShapeInfo])(info);
	return err;
}

static char *mh_data(void *v, void **out) {
	return mh_error(((status (*)(void *, void **))mh_api[mhGetTensorMutableData])(v, out));
}

static char *mh_binding(void *session, void **out) {
	return mh_error(((status (*)(void *, void **))mh_api[mhCreateIoBinding])(session, out));
}
static void mh_release_binding(void *b) { ((void (*)(void *))mh_api[mhReleaseIoBinding])(b); }

static char *mh_bind_input(void *b, const char *name, void *v) {
	return mh_error(((status (*)(void *, const char *, void *))mh_api[mhBindInput])(b, name, v));
}
static char *mh_bind_output(void *b, const char *name, void *info) {
	return mh_error(((status (*)(void *, const char *, void *))mh_api[mhBindOutputToDevice])(b, name, info));
}

// mh_run runs the session on the binding and hands back the bound outputs
// (count of them, in binding order) in out, which has room for n.
static char *mh_run(void *session, void *b, void **out, size_t n) {
	char *err = mh_error(((status (*)(void *, void *, void *))mh_api[mhRunWithBinding])(session, NULL, b));
	if (err) return err;
	err = mh_error(((status (*)(void *))mh_api[mhSynchronizeBoundOutputs])(b));
	if (err) return err;
	void *alloc = NULL;
	err = mh_error(((status (*)(void **))mh_api[mhGetAllocatorWithDefaultOptions])(&alloc));
	if (err) return err;
	void **vals = NULL;
	size_t count = 0;
	err = mh_error(((status (*)(void *, void *, void ***, size_t *))mh_api[mhGetBoundOutputValues])(b, alloc, &vals, &count));
	if (err) return err;
	for (size_t i = 0; i < count; i++) {
		if (i < n) out[i] = vals[i];
		else mh_release_value(vals[i]);
	}
	if (vals) ((status (*)(void *, void *))mh_api[mhAllocatorFree])(alloc, vals);
	if (count != n) return strdup("ORT returned a different number of bound outputs");
	return NULL;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	goruntime "runtime"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"mohawk/tensors"
)

// ortAPIVersion is MH_ORT_API_VERSION (fused.h), the OrtApi version the
// shim and the fused kernels are written against, for TestOrtAPIIndices.
const ortAPIVersion = C.MH_ORT_API_VERSION

// ortAPI loads the OrtApi table once per library.
var ortAPI struct {
	mu  sync.Mutex
	lib string
	err error
}

func loadAPI(lib string) error {
	ortAPI.mu.Lock()
	defer ortAPI.mu.Unlock()
	if ortAPI.lib == lib && ortAPI.err == nil {
		return nil
	}
	cLib := C.CString(lib)
	defer C.free(unsafe.Pointer(cLib))
	var buf [256]C.char
	if C.mh_load(cLib, &buf[0], C.size_t(len(buf))) != 0 {
		return fmt.Errorf("runtime: ORT C API of %s: %s", lib, C.GoString(&buf[0]))
	}
	ortAPI.lib, ortAPI.err = lib, nil
	return nil
}

// forgetAPI drops the OrtApi table loadAPI found and the fused kernels'
// domain made with it. releaseEnvironment calls it before ORT's environment
// is destroyed, because onnxruntime_go then unloads the library: one loaded
// again may sit at another address, and the old table would point into
// unmapped memory (TestEnvReload).
func forgetAPI() {
	ortAPI.mu.Lock()
	defer ortAPI.mu.Unlock()
	C.mh_fused_forget()
	C.mh_forget()
	ortAPI.lib, ortAPI.err = "", nil
	firstCreate.done.Store(false) // a library loaded again has a fresh domain map
}

// apiTable is the OrtApi table loadAPI found.
func apiTable() unsafe.Pointer { return C.mh_api_table() }

// cErr converts a malloc'd message from the shim into an error.
func cErr(m *C.char) error {
	if m == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(m))
	return errors.New(C.GoString(m))
}

// ortSessionPointer is the OrtSession behind an onnxruntime_go session.
// onnxruntime_go keeps it unexported (DynamicAdvancedSession.s.ortSession
// in v1.27.0, which go.mod pins and Open checks: wrapperVersion);
// TestRunResident fails if the layout changes.
func ortSessionPointer(s *ort.DynamicAdvancedSession) (unsafe.Pointer, error) {
	adv := reflect.ValueOf(s).Elem().FieldByName("s")
	if !adv.IsValid() || adv.Kind() != reflect.Pointer || adv.IsNil() {
		return nil, errors.New("onnxruntime_go's DynamicAdvancedSession has no session field s")
	}
	p := adv.Elem().FieldByName("ortSession")
	if !p.IsValid() || p.Kind() != reflect.Pointer || p.IsNil() {
		return nil, errors.New("onnxruntime_go's AdvancedSession has no ortSession field")
	}
	return p.UnsafePointer(), nil
}

// memoryInfo names where a provider's resident values live.
func memoryInfo(provider string, device int) (unsafe.Pointer, error) {
	name := "Cpu"
	if provider == ProviderCUDA || provider == ProviderTensorRT {
		name = "Cuda"
	} else {
		device = 0
	}
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	var info unsafe.Pointer
	if err := cErr(C.mh_memory_info(cName, C.int(device), &info)); err != nil {
		return nil, fmt.Errorf("memory info %s:%d: %v", name, device, err)
	}
	return info, nil
}

// describe reads the dtype and shape of an ORT tensor value.
func describe(v unsafe.Pointer) (tensors.DType, []int64, error) {
	var typ C.int
	var rank C.size_t
	var dims [16]C.int64_t
	if err := cErr(C.mh_describe(v, &typ, &rank, &dims[0])); err != nil {
		return 0, nil, err
	}
	shape := make([]int64, int(rank))
	for i := range shape {
		shape[i] = int64(dims[i])
	}
	return tensors.DType(typ), shape, nil
}

// hostCopy copies a host-memory ORT tensor value into a new tensor.
func hostCopy(v unsafe.Pointer) (*tensors.Tensor, error) {
	dt, shape, err := describe(v)
	if err != nil {
		return nil, err
	}
	t := tensors.Zeros(dt, shape...)
	if len(t.Data) == 0 {
		return t, nil
	}
	var p unsafe.Pointer
	if err := cErr(C.mh_data(v, &p)); err != nil {
		return nil, err
	}
	copy(t.Data, unsafe.Slice((*byte)(p), len(t.Data)))
	return t, nil
}

// pinnedHostValue wraps t's bytes (pinned by pin until the run ends) as an
// ORT tensor value in host memory.
func pinnedHostValue(pin *goruntime.Pinner, cpu unsafe.Pointer, t *tensors.Tensor) (unsafe.Pointer, error) {
	data := t.Data
	if len(data) == 0 || uintptr(unsafe.Pointer(&data[0]))%uintptr(t.DType.Size()) != 0 {
		data = append(make([]byte, 0, max(8, len(data))), data...) // aligned, non-empty backing
		data = data[:cap(data)]
	}
	pin.Pin(&data[0])
	shape := make([]C.int64_t, max(1, len(t.Shape)))
	for i, d := range t.Shape {
		shape[i] = C.int64_t(d)
	}
	pin.Pin(&shape[0])
	var v unsafe.Pointer
	err := cErr(C.mh_host_value(cpu, unsafe.Pointer(&data[0]), C.size_t(len(t.Data)), &shape[0], C.size_t(len(t.Shape)),
		C.int(t.DType), &v))
	return v, err
}

// allocatorStats reads the statistics that the allocator session uses for
// the memory info keeps, as key → value; ok is false when it keeps none.
func allocatorStats(session, info unsafe.Pointer) (stats map[string]string, ok bool, err error) {
	var pairs unsafe.Pointer
	if err := cErr(C.mh_allocator_stats(session, info, &pairs)); err != nil {
		return nil, false, err
	}
	if pairs == nil {
		return nil, false, nil
	}
	defer C.mh_release_pairs(pairs)
	var keys, values **C.char
	n := int(C.mh_pairs(pairs, &keys, &values))
	stats = make(map[string]string, n)
	if n > 0 {
		ks, vs := unsafe.Slice(keys, n), unsafe.Slice(values, n)
		for i := range n {
			if ks[i] != nil && vs[i] != nil {
				stats[C.GoString(ks[i])] = C.GoString(vs[i])
			}
		}
	}
	return stats, true, nil
}

func releaseValue(v unsafe.Pointer)      { C.mh_release_value(v) }
func releaseMemoryInfo(m unsafe.Pointer) { C.mh_release_memory_info(m) }

// binding is an OrtIoBinding with the host input values it owns.
type binding struct {
	session unsafe.Pointer
	b       unsafe.Pointer
	owned   []unsafe.Pointer
}

func newBinding(session unsafe.Pointer) (*binding, error) {
	b := &binding{session: session}
	if err := cErr(C.mh_binding(session, &b.b)); err != nil {
		return nil, fmt.Errorf("create I/O binding: %v", err)
	}
	return b, nil
}

func (b *binding) release() {
	for _, v := range b.owned {
		releaseValue(v)
	}
	C.mh_release_binding(b.b)
}

func (b *binding) bindInput(name string, v unsafe.Pointer) error {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	return cErr(C.mh_bind_input(b.b, cName, v))
}

func (b *binding) bindOutput(name string, info unsafe.Pointer) error {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	return cErr(C.mh_bind_output(b.b, cName, info))
}

// run runs the session and returns its n bound outputs, which the caller
// owns.
func (b *binding) run(n int) ([]unsafe.Pointer, error) {
	out := make([]unsafe.Pointer, n)
	if n == 0 {
		return out, cErr(C.mh_run(b.session, b.b, nil, 0))
	}
	cOut := (*unsafe.Pointer)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))))
	defer C.free(unsafe.Pointer(cOut))
	err := cErr(C.mh_run(b.session, b.b, cOut, C.size_t(n)))
	copy(out, unsafe.Slice(cOut, n))
	if err != nil {
		for _, v := range out {
			if v != nil {
				releaseValue(v)
			}
		}
		return nil, err
	}
	return out, nil
}
