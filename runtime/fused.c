// Fused kernels as ONNX Runtime custom ops; see fused.go.
//
// The host loops round every operation once, as the stock ops do: no FMA
// contraction (GCC's pragma; clang contracts only within one expression,
// and each operation below is its own statement).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "fused.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

// OrtApi members used here, by index (ORT_API_VERSION 24); TestOrtAPIIndices
// checks them against onnxruntime_go's header, as it does ortapi.go's.
enum {
	mhCreateStatus = 0,
	mhCreateCustomOpDomain = 26,
	mhCustomOpDomain_Add = 27,
	mhAddCustomOpDomain = 28,
	mhGetTensorMutableData = 51,
	mhGetTensorElementType = 60,
	mhGetDimensionsCount = 61,
	mhGetDimensions = 62,
	mhGetTensorShapeElementCount = 64,
	mhGetTensorTypeAndShape = 65,
	mhKernelContext_GetInput = 90,
	mhKernelContext_GetOutput = 91,
	mhReleaseTensorTypeAndShapeInfo = 99,
	mhKernelContext_GetGPUComputeStream = 193,
	mhShapeInferContext_GetInputTypeShape = 268,
	mhShapeInferContext_SetOutputTypeShape = 270,
};

typedef void *status;
#define API(idx, type) ((type)api[idx])

// struct OrtCustomOp of ORT_API_VERSION 24, member for member
// (TestCustomOpLayout compares the names and their order with the header).
typedef struct mh_custom_op {
	uint32_t version;
	void *(*CreateKernel)(const struct mh_custom_op *op, const void *api, const void *info);
	const char *(*GetName)(const struct mh_custom_op *op);
	const char *(*GetExecutionProviderType)(const struct mh_custom_op *op);
	int (*GetInputType)(const struct mh_custom_op *op, size_t index);
	size_t (*GetInputTypeCount)(const struct mh_custom_op *op);
	int (*GetOutputType)(const struct mh_custom_op *op, size_t index);
	size_t (*GetOutputTypeCount)(const struct mh_custom_op *op);
	void (*KernelCompute)(void *kernel, void *context);
	void (*KernelDestroy)(void *kernel);
	int (*GetInputCharacteristic)(const struct mh_custom_op *op, size_t index);
	int (*GetOutputCharacteristic)(const struct mh_custom_op *op, size_t index);
	int (*GetInputMemoryType)(const struct mh_custom_op *op, size_t index);
	int (*GetVariadicInputMinArity)(const struct mh_custom_op *op);
	int (*GetVariadicInputHomogeneity)(const struct mh_custom_op *op);
	int (*GetVariadicOutputMinArity)(const struct mh_custom_op *op);
	int (*GetVariadicOutputHomogeneity)(const struct mh_custom_op *op);
	status (*CreateKernelV2)(const struct mh_custom_op *op, const void *api, const void *info, void **kernel);
	status (*KernelComputeV2)(void *kernel, void *context);
	status (*InferOutputShapeFn)(const struct mh_custom_op *op, void *context);
	int (*GetStartVersion)(const struct mh_custom_op *op);
	int (*GetEndVersion)(const struct mh_custom_op *op);
	size_t (*GetMayInplace)(int **input_index, int **output_index);
	void (*ReleaseMayInplace)(int *input_index, int *output_index);
	size_t (*GetAliasMap)(int **input_index, int **output_index);
	void (*ReleaseAliasMap)(int *input_index, int *output_index);
} mh_custom_op;

// An op of the domain: the custom-op table ORT calls, the OrtApi table and
// whether its kernel runs on the CUDA provider's stream.
typedef struct {
	mh_custom_op op;
	void **api;
	int cuda;
} mh_op;

// ---- AdamW ----------------------------------------------------------------
//
// Inputs p, g, m, v (one shape, float or double) and coef [8] of the same
// type: b1, a1, b2, a2, decay, step, eps, finite. Outputs p', m', v':
//
//	m' = b1·m + a1·g,  v' = b2·v + a2·(g·g)
//	p' = p·decay − step·(m' / (√v' + eps))
//
// each operation rounded once, in this order: the same values, bit for bit,
// as the stock-op form of the update (graphs/train). finite = 0 copies p, m
// and v unchanged, whatever g holds.

#define ADAMW(T, SQRT)                                                                        \
	static void adamw_##T(const T *p, const T *g, const T *m, const T *v, const T *c, T *po, \
	                      T *mo, T *vo, size_t n) {                                           \
		if (c[7] == 0) {                                                                     \
			memmove(po, p, n * sizeof(T));                                                   \
			memmove(mo, m, n * sizeof(T));                                                   \
			memmove(vo, v, n * sizeof(T));                                                   \
			return;                                                                          \
		}                                                                                    \
		const T b1 = c[0], a1 = c[1], b2 = c[2], a2 = c[3], decay = c[4], step = c[5], eps = c[6]; \
		for (size_t i = 0; i < n; i++) {                                                     \
			T gi = g[i];                                                                     \
			T mi = b1 * m[i];                                                                \
			mi = mi + a1 * gi;                                                               \
			T sq = gi * gi;                                                                  \
			T vi = b2 * v[i];                                                                \
			vi = vi + a2 * sq;                                                               \
			T d = SQRT(vi);                                                                  \
			d = d + eps;                                                                     \
			T u = mi / d;                                                                    \
			u = step * u;                                                                    \
			T pi = p[i] * decay;                                                             \
			po[i] = pi - u;                                                                  \
			mo[i] = mi;                                                                      \
			vo[i] = vi;                                                                      \
		}                                                                                    \
	}
ADAMW(float, sqrtf)
ADAMW(double, sqrt)

void mh_adamw_host(int dtype, const void *p, const void *g, const void *m, const void *v, const void *coef,
                   void *po, void *mo, void *vo, size_t n) {
	if (dtype == 11) {
		adamw_double(p, g, m, v, coef, po, mo, vo, n);
	} else {
		adamw_float(p, g, m, v, coef, po, mo, vo, n);
	}
}

// The CUDA kernel, grid-stride over the elements. The .rn operations round
// once each, as the host loop above and the stock ops' kernels do (no FMA
// contraction).
const char mh_adamw_ptx[] =
	".version 7.0\n"
	".target sm_70\n"
	".address_size 64\n"
	".visible .entry mh_adamw_f32(.param .u64 a_p, .param .u64 a_g, .param .u64 a_m, .param .u64 a_v,\n"
	"  .param .u64 a_c, .param .u64 a_po, .param .u64 a_mo, .param .u64 a_vo, .param .u64 a_n)\n"
	"{\n"
	"  .reg .pred %p<3>;\n"
	"  .reg .b32 %r<5>;\n"
	"  .reg .b64 %rd<22>;\n"
	"  .reg .f32 %f<24>;\n"
	"  ld.param.u64 %rd1, [a_p];  cvta.to.global.u64 %rd1, %rd1;\n"
	"  ld.param.u64 %rd2, [a_g];  cvta.to.global.u64 %rd2, %rd2;\n"
	"  ld.param.u64 %rd3, [a_m];  cvta.to.global.u64 %rd3, %rd3;\n"
	"  ld.param.u64 %rd4, [a_v];  cvta.to.global.u64 %rd4, %rd4;\n"
	"  ld.param.u64 %rd5, [a_c];  cvta.to.global.u64 %rd5, %rd5;\n"
	"  ld.param.u64 %rd6, [a_po]; cvta.to.global.u64 %rd6, %rd6;\n"
	"  ld.param.u64 %rd7, [a_mo]; cvta.to.global.u64 %rd7, %rd7;\n"
	"  ld.param.u64 %rd8, [a_vo]; cvta.to.global.u64 %rd8, %rd8;\n"
	"  ld.param.u64 %rd9, [a_n];\n"
	"  ld.global.nc.f32 %f1, [%rd5];\n"
	"  ld.global.nc.f32 %f2, [%rd5+4];\n"
	"  ld.global.nc.f32 %f3, [%rd5+8];\n"
	"  ld.global.nc.f32 %f4, [%rd5+12];\n"
	"  ld.global.nc.f32 %f5, [%rd5+16];\n"
	"  ld.global.nc.f32 %f6, [%rd5+20];\n"
	"  ld.global.nc.f32 %f7, [%rd5+24];\n"
	"  ld.global.nc.f32 %f8, [%rd5+28];\n"
	"  setp.neu.f32 %p2, %f8, 0f00000000;\n"
	"  mov.u32 %r1, %ctaid.x;\n"
	"  mov.u32 %r2, %ntid.x;\n"
	"  mov.u32 %r3, %tid.x;\n"
	"  mov.u32 %r4, %nctaid.x;\n"
	"  mul.wide.u32 %rd10, %r1, %r2;\n"
	"  cvt.u64.u32 %rd11, %r3;\n"
	"  add.u64 %rd10, %rd10, %rd11;\n"
	"  mul.wide.u32 %rd12, %r4, %r2;\n"
	"LOOP:\n"
	"  setp.ge.u64 %p1, %rd10, %rd9;\n"
	"  @%p1 bra DONE;\n"
	"  shl.b64 %rd13, %rd10, 2;\n"
	"  add.u64 %rd14, %rd1, %rd13;\n"
	"  ld.global.f32 %f9, [%rd14];\n"
	"  add.u64 %rd15, %rd3, %rd13;\n"
	"  ld.global.f32 %f11, [%rd15];\n"
	"  add.u64 %rd16, %rd4, %rd13;\n"
	"  ld.global.f32 %f12, [%rd16];\n"
	"  @!%p2 bra STORE;\n"
	"  add.u64 %rd17, %rd2, %rd13;\n"
	"  ld.global.f32 %f10, [%rd17];\n"
	"  mul.rn.f32 %f13, %f1, %f11;\n"
	"  mul.rn.f32 %f14, %f2, %f10;\n"
	"  add.rn.f32 %f11, %f13, %f14;\n"
	"  mul.rn.f32 %f15, %f10, %f10;\n"
	"  mul.rn.f32 %f15, %f4, %f15;\n"
	"  mul.rn.f32 %f16, %f3, %f12;\n"
	"  add.rn.f32 %f12, %f16, %f15;\n"
	"  sqrt.rn.f32 %f17, %f12;\n"
	"  add.rn.f32 %f17, %f17, %f7;\n"
	"  div.rn.f32 %f18, %f11, %f17;\n"
	"  mul.rn.f32 %f18, %f6, %f18;\n"
	"  mul.rn.f32 %f19, %f9, %f5;\n"
	"  sub.rn.f32 %f9, %f19, %f18;\n"
	"STORE:\n"
	"  add.u64 %rd18, %rd6, %rd13;\n"
	"  st.global.f32 [%rd18], %f9;\n"
	"  add.u64 %rd19, %rd7, %rd13;\n"
	"  st.global.f32 [%rd19], %f11;\n"
	"  add.u64 %rd20, %rd8, %rd13;\n"
	"  st.global.f32 [%rd20], %f12;\n"
	"  add.u64 %rd10, %rd10, %rd12;\n"
	"  bra LOOP;\n"
	"DONE:\n"
	"  ret;\n"
	"}\n";

// ---- the CUDA driver, loaded on first use ----------------------------------

typedef int (*cu_init_fn)(unsigned);
typedef int (*cu_ctx_fn)(void **);
typedef int (*cu_load_fn)(void **, const void *);
typedef int (*cu_func_fn)(void **, void *, const char *);
typedef int (*cu_launch_fn)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void *,
                            void **, void **);
typedef int (*cu_errstr_fn)(int, const char **);

enum { maxContexts = 16 };
static struct {
	pthread_mutex_t mu;
	int tried;
	char err[256];
	cu_ctx_fn current;
	cu_load_fn load;
	cu_func_fn func;
	cu_launch_fn launch;
	cu_errstr_fn errstr;
	int n;
	void *ctx[maxContexts];
	void *fn[maxContexts];
} cu = {PTHREAD_MUTEX_INITIALIZER};

static const char *cu_error(int rc) {
	const char *s = NULL;
	if (cu.errstr) cu.errstr(rc, &s);
	return s ? s : "unknown CUDA driver error";
}

// cu_kernel returns the AdamW kernel in the calling thread's current CUDA
// context (the one the CUDA provider runs in), loading the PTX module once
// per context; NULL with msg filled on failure.
static void *cu_kernel(char *msg, size_t len) {
	void *fn = NULL;
	pthread_mutex_lock(&cu.mu);
	if (!cu.tried) {
		cu.tried = 1;
		void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
		if (h == NULL) {
			snprintf(cu.err, sizeof cu.err, "cannot load the CUDA driver libcuda.so.1: %s", dlerror());
		} else {
			cu_init_fn init = (cu_init_fn)dlsym(h, "cuInit");
			cu.current = (cu_ctx_fn)dlsym(h, "cuCtxGetCurrent");
			cu.load = (cu_load_fn)dlsym(h, "cuModuleLoadData");
			cu.func = (cu_func_fn)dlsym(h, "cuModuleGetFunction");
			cu.launch = (cu_launch_fn)dlsym(h, "cuLaunchKernel");
			cu.errstr = (cu_errstr_fn)dlsym(h, "cuGetErrorString");
			if (!init || !cu.current || !cu.load || !cu.func || !cu.launch) {
				snprintf(cu.err, sizeof cu.err, "libcuda.so.1 lacks the driver API entries it needs");
			} else if (init(0) != 0) {
				snprintf(cu.err, sizeof cu.err, "cuInit failed");
			}
		}
	}
	if (cu.err[0]) {
		snprintf(msg, len, "%s", cu.err);
		goto out;
	}
	void *ctx = NULL;
	int rc = cu.current(&ctx);
	if (rc != 0 || ctx == NULL) {
		snprintf(msg, len, "no current CUDA context on the provider's thread (%s)", rc ? cu_error(rc) : "none");
		goto out;
	}
	for (int i = 0; i < cu.n; i++) {
		if (cu.ctx[i] == ctx) {
			fn = cu.fn[i];
			goto out;
		}
	}
	if (cu.n == maxContexts) {
		snprintf(msg, len, "more than %d CUDA contexts", maxContexts);
		goto out;
	}
	void *mod = NULL;
	if ((rc = cu.load(&mod, mh_adamw_ptx)) != 0 || (rc = cu.func(&fn, mod, "mh_adamw_f32")) != 0) {
		snprintf(msg, len, "loading the AdamW kernel: %s", cu_error(rc));
		fn = NULL;
		goto out;
	}
	cu.ctx[cu.n] = ctx;
	cu.fn[cu.n] = fn;
	cu.n++;
out:
	pthread_mutex_unlock(&cu.mu);
	return fn;
}

// ---- the custom-op table -------------------------------------------------

static const char *adamw_name(const mh_custom_op *op) { (void)op; return "AdamW"; }
static const char *cpu_ep(const mh_custom_op *op) { (void)op; return "CPUExecutionProvider"; }
static const char *cuda_ep(const mh_custom_op *op) { (void)op; return "CUDAExecutionProvider"; }
static int any_type(const mh_custom_op *op, size_t i) { (void)op; (void)i; return 0; }   // ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
static int float_type(const mh_custom_op *op, size_t i) { (void)op; (void)i; return 1; } // FLOAT
static size_t five(const mh_custom_op *op) { (void)op; return 5; }
static size_t three(const mh_custom_op *op) { (void)op; return 3; }
static int required(const mh_custom_op *op, size_t i) { (void)op; (void)i; return 0; } // INPUT_OUTPUT_REQUIRED
static int default_mem(const mh_custom_op *op, size_t i) { (void)op; (void)i; return 0; } // OrtMemTypeDefault
static int one(const mh_custom_op *op) { (void)op; return 1; }
static int zero(const mh_custom_op *op) { (void)op; return 0; }
static int last_version(const mh_custom_op *op) { (void)op; return INT_MAX; }
static size_t no_pairs(int **in, int **out) { *in = NULL; *out = NULL; return 0; }
static void release_pairs(int *in, int *out) { (void)in; (void)out; }
static void destroy(void *kernel) { (void)kernel; }

static status create_kernel(const mh_custom_op *op, const void *api, const void *info, void **kernel) {
	(void)api; (void)info;
	*kernel = (void *)op; // the kernel needs only its op: api and provider
	return NULL;
}

static status fail(void **api, const char *msg) {
	return API(mhCreateStatus, status (*)(int, const char *))(1, msg); // ORT_FAIL
}

// describe reads a value's element type, element count and dimensions
// (dims has room for 8).
static status describe(void **api, const void *v, int *type, size_t *count, int64_t *dims, size_t *rank) {
	void *info = NULL;
	status s = API(mhGetTensorTypeAndShape, status (*)(const void *, void **))(v, &info);
	if (s) return s;
	s = API(mhGetTensorElementType, status (*)(void *, int *))(info, type);
	if (!s) s = API(mhGetTensorShapeElementCount, status (*)(void *, size_t *))(info, count);
	if (!s) s = API(mhGetDimensionsCount, status (*)(void *, size_t *))(info, rank);
	if (!s && *rank > 8) s = fail(api, "AdamW: tensor rank above 8");
	if (!s) s = API(mhGetDimensions, status (*)(void *, int64_t *, size_t))(info, dims, *rank);
	API(mhReleaseTensorTypeAndShapeInfo, void (*)(void *))(info);
	return s;
}

static status adamw_compute(void *kernel, void *ctx) {
	mh_op *k = kernel;
	void **api = k->api;
	const void *in[5];
	void *data[8];
	int type[5];
	size_t count[5], rank = 0, r;
	int64_t dims[8], d[8];
	for (int i = 0; i < 5; i++) {
		status s = API(mhKernelContext_GetInput, status (*)(void *, size_t, const void **))(ctx, i, &in[i]);
		if (!s) s = describe(api, in[i], &type[i], &count[i], i == 0 ? dims : d, i == 0 ? &rank : &r);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(in[i], &data[i]);
		if (s) return s;
	}
	char msg[320];
	for (int i = 1; i < 5; i++) {
		if (type[i] != type[0] || (i < 4 && count[i] != count[0]) || (i == 4 && count[i] != 8)) {
			snprintf(msg, sizeof msg, "AdamW: input %d has element type %d and %zu elements; want type %d and %zu", i,
			         type[i], count[i], type[0], i == 4 ? (size_t)8 : count[0]);
			return fail(api, msg);
		}
	}
	if (type[0] != 1 && (k->cuda || type[0] != 11)) {
		snprintf(msg, sizeof msg, "AdamW: element type %d is not supported on this provider", type[0]);
		return fail(api, msg);
	}
	for (int j = 0; j < 3; j++) {
		void *out = NULL;
		status s = API(mhKernelContext_GetOutput, status (*)(void *, size_t, const int64_t *, size_t, void **))(
			ctx, j, dims, rank, &out);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(out, &data[5 + j]);
		if (s) return s;
	}
	size_t n = count[0];
	if (!k->cuda) {
		mh_adamw_host(type[0], data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7], n);
		return NULL;
	}
	if (n == 0) return NULL;
	void *stream = NULL;
	status s = API(mhKernelContext_GetGPUComputeStream, status (*)(void *, void **))(ctx, &stream);
	if (s) return s;
	void *fn = cu_kernel(msg, sizeof msg);
	if (fn == NULL) return fail(api, msg);
	unsigned long long nn = n;
	void *args[9] = {&data[0], &data[1], &data[2], &data[3], &data[4], &data[5], &data[6], &data[7], &nn};
	size_t blocks = (n + 255) / 256;
	if (blocks > 8192) blocks = 8192;
	int rc = cu.launch(fn, (unsigned)blocks, 1, 1, 256, 1, 1, 0, stream, args, NULL);
	if (rc != 0) {
		snprintf(msg, sizeof msg, "AdamW: launching the CUDA kernel: %s", cu_error(rc));
		return fail(api, msg);
	}
	return NULL;
}

// adamw_shapes gives output j the type and shape of input 0, 2, 3 (p, m, v).
static status adamw_shapes(const mh_custom_op *op, void *ctx) {
	void **api = ((const mh_op *)op)->api;
	static const size_t from[3] = {0, 2, 3};
	for (size_t j = 0; j < 3; j++) {
		void *info = NULL;
		status s = API(mhShapeInferContext_GetInputTypeShape, status (*)(void *, size_t, void **))(ctx, from[j], &info);
		if (s) return s;
		// The context owns info (ORT keeps the inputs' infos and hands out
		// pointers to them).
		s = API(mhShapeInferContext_SetOutputTypeShape, status (*)(void *, size_t, void *))(ctx, j, info);
		if (s) return s;
	}
	return NULL;
}

static void adamw_init(mh_op *o, void **api, int cuda) {
	memset(o, 0, sizeof *o);
	o->api = api;
	o->cuda = cuda;
	mh_custom_op *op = &o->op;
	op->version = 24;
	op->GetName = adamw_name;
	op->GetExecutionProviderType = cuda ? cuda_ep : cpu_ep;
	op->GetInputType = cuda ? float_type : any_type;
	op->GetInputTypeCount = five;
	op->GetOutputType = cuda ? float_type : any_type;
	op->GetOutputTypeCount = three;
	op->KernelDestroy = destroy;
	op->GetInputCharacteristic = required;
	op->GetOutputCharacteristic = required;
	op->GetInputMemoryType = default_mem;
	op->GetVariadicInputMinArity = one;
	op->GetVariadicInputHomogeneity = zero;
	op->GetVariadicOutputMinArity = one;
	op->GetVariadicOutputHomogeneity = zero;
	op->CreateKernelV2 = create_kernel;
	op->KernelComputeV2 = adamw_compute;
	op->InferOutputShapeFn = adamw_shapes;
	op->GetStartVersion = one;
	op->GetEndVersion = last_version;
	op->GetMayInplace = no_pairs;
	op->ReleaseMayInplace = release_pairs;
	op->GetAliasMap = no_pairs;
	op->ReleaseAliasMap = release_pairs;
}

// ---- the domain ------------------------------------------------------------

static struct {
	pthread_mutex_t mu;
	void **api;
	void *domain;
	mh_op cpu, cuda;
} dom = {PTHREAD_MUTEX_INITIALIZER};

static char *status_message(void **api, status s) {
	enum { mhGetErrorMessage = 2, mhReleaseStatus = 93 };
	const char *m = API(mhGetErrorMessage, const char *(*)(status))(s);
	char *out = strdup(m ? m : "unknown ORT error");
	API(mhReleaseStatus, void (*)(status))(s);
	return out;
}

char *mh_fused_add(void **api, void *opts) {
	char *err = NULL;
	pthread_mutex_lock(&dom.mu);
	if (dom.domain != NULL && dom.api != api) {
		err = strdup("a second ONNX Runtime library in one process");
		goto out;
	}
	if (dom.domain == NULL) {
		void *d = NULL;
		status s = API(mhCreateCustomOpDomain, status (*)(const char *, void **))("mohawk.fused", &d);
		if (!s) {
			adamw_init(&dom.cpu, api, 0);
			adamw_init(&dom.cuda, api, 1);
			s = API(mhCustomOpDomain_Add, status (*)(void *, const void *))(d, &dom.cpu);
		}
		if (!s) s = API(mhCustomOpDomain_Add, status (*)(void *, const void *))(d, &dom.cuda);
		if (s) {
			err = status_message(api, s);
			goto out;
		}
		// The domain lives as long as the process: sessions keep using it.
		dom.domain = d;
		dom.api = api;
	}
	status s = API(mhAddCustomOpDomain, status (*)(void *, void *))(opts, dom.domain);
	if (s) err = status_message(api, s);
out:
	pthread_mutex_unlock(&dom.mu);
	return err;
}
