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

// An op of the domain: the custom-op table ORT calls, the OrtApi table,
// whether its kernel runs on the CUDA provider's stream, and what the op is.
typedef struct mh_op mh_op;
struct mh_op {
	mh_custom_op op;
	void **api;
	int cuda;
	const char *name;
	size_t n_in, n_out;
	const size_t *like; // output j has the type and shape of input like[j]
	int float_only;     // GetInputType: float (1) rather than any (0)
	// check validates the inputs' element types and counts (msg filled,
	// nonzero on error); run computes, on the host or by launching kernels.
	int (*check)(const mh_op *k, const int *type, const size_t *count, char *msg, size_t len);
	const char *(*run)(const mh_op *k, void *stream, int type, size_t n, void **in, void **out);
};

enum { typeFloat = 1, typeFloat16 = 10, typeDouble = 11, typeBFloat16 = 16 };

// ---- bfloat16 on the host ----------------------------------------------------

static float bf16_to_float(uint16_t h) {
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint16_t float_to_bf16(float f) { // round to nearest even; NaN stays NaN
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

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

// ---- GeluGrad ---------------------------------------------------------------
//
// Inputs x and dy (one shape; float, double or bfloat16), output dx =
// dy·gelu'(x) for the tanh form gelu(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))),
// written with s = σ(z), z = x(a + b·x²), a = 2√(2/π), b = 0.044715a:
//
//	gelu'(x) = s·(1 + x·σ(−z)·(a + 3b·x²))
//
// computed in float (double for double) from the inputs and rounded once
// to the output's type.

#define GELU_A 1.5957691216057308
#define GELU_B 0.07135481627260025
#define GELUGRAD(T, EXP)                                                    \
	static T gelugrad_##T(T x, T dy) {                                       \
		T x2 = x * x;                                                        \
		T z = x * ((T)GELU_A + (T)GELU_B * x2);                              \
		T s = (T)1 / ((T)1 + EXP(-z));                                       \
		T r = (T)1 / ((T)1 + EXP(z));                                        \
		T dz = (T)GELU_A + (T)(3 * GELU_B) * x2;                             \
		return dy * (s * ((T)1 + x * r * dz));                               \
	}
GELUGRAD(float, expf)
GELUGRAD(double, exp)

static void gelugrad_host(int type, const void *x, const void *dy, void *dx, size_t n) {
	for (size_t i = 0; i < n; i++) {
		switch (type) {
		case typeDouble:
			((double *)dx)[i] = gelugrad_double(((const double *)x)[i], ((const double *)dy)[i]);
			break;
		case typeBFloat16:
			((uint16_t *)dx)[i] = float_to_bf16(
				gelugrad_float(bf16_to_float(((const uint16_t *)x)[i]), bf16_to_float(((const uint16_t *)dy)[i])));
			break;
		default:
			((float *)dx)[i] = gelugrad_float(((const float *)x)[i], ((const float *)dy)[i]);
		}
	}
}

// ---- the CUDA kernels (PTX) -------------------------------------------------
//
// One module, grid-stride loops over the elements. AdamW's .rn operations
// round once each, as the host loop above and the stock ops' kernels do (no
// FMA contraction). GeluGrad loads float or bfloat16 (a bfloat16 is the top
// half of a float), computes in float with ex2 for the exponentials, and
// stores with one rounding.

#define PTX_LOOP_HEAD                              \
	"  mov.u32 %r1, %ctaid.x;\n"                   \
	"  mov.u32 %r2, %ntid.x;\n"                    \
	"  mov.u32 %r3, %tid.x;\n"                     \
	"  mov.u32 %r4, %nctaid.x;\n"                  \
	"  mul.wide.u32 %rd10, %r1, %r2;\n"            \
	"  cvt.u64.u32 %rd11, %r3;\n"                  \
	"  add.u64 %rd10, %rd10, %rd11;\n"             \
	"  mul.wide.u32 %rd12, %r4, %r2;\n"            \
	"LOOP:\n"                                      \
	"  setp.ge.u64 %p1, %rd10, %rd9;\n"            \
	"  @%p1 bra DONE;\n"

#define PTX_LOOP_TAIL                              \
	"  add.u64 %rd10, %rd10, %rd12;\n"             \
	"  bra LOOP;\n"                                \
	"DONE:\n"                                      \
	"  ret;\n"                                     \
	"}\n"

#define PTX_REGS                                   \
	"  .reg .pred %p<3>;\n"                        \
	"  .reg .b16 %h<4>;\n"                         \
	"  .reg .b32 %r<8>;\n"                         \
	"  .reg .b64 %rd<22>;\n"                       \
	"  .reg .f32 %f<32>;\n"

// gelu'(x)·dy from %f1 = x, %f2 = dy into %f20.
#define PTX_GELUGRAD_MATH                                                 \
	"  mul.rn.f32 %f3, %f1, %f1;\n"                    /* x² */          \
	"  fma.rn.f32 %f4, %f3, 0f3D922279, 0f3FCC422A;\n" /* a + b·x² */    \
	"  mul.rn.f32 %f5, %f1, %f4;\n"                    /* z */           \
	"  mul.rn.f32 %f6, %f5, 0fBFB8AA3B;\n"             /* −z·log2 e */   \
	"  ex2.approx.f32 %f7, %f6;\n"                     /* e^−z */        \
	"  add.rn.f32 %f7, %f7, 0f3F800000;\n"                               \
	"  rcp.rn.f32 %f8, %f7;\n"                         /* s = σ(z) */    \
	"  mul.rn.f32 %f9, %f5, 0f3FB8AA3B;\n"             /* z·log2 e */    \
	"  ex2.approx.f32 %f10, %f9;\n"                    /* e^z */         \
	"  add.rn.f32 %f10, %f10, 0f3F800000;\n"                             \
	"  rcp.rn.f32 %f11, %f10;\n"                       /* σ(−z) */       \
	"  fma.rn.f32 %f12, %f3, 0f3E5B33B6, 0f3FCC422A;\n" /* a + 3b·x² */  \
	"  mul.rn.f32 %f13, %f1, %f11;\n"                                    \
	"  fma.rn.f32 %f14, %f13, %f12, 0f3F800000;\n"     /* 1 + x·σ(−z)·dz */ \
	"  mul.rn.f32 %f15, %f8, %f14;\n"                                    \
	"  mul.rn.f32 %f20, %f2, %f15;\n"

#define PTX_PARAMS3 "(.param .u64 a_x, .param .u64 a_dy, .param .u64 a_dx, .param .u64 a_n)\n"
#define PTX_PARAMS3_LOAD                                              \
	"  ld.param.u64 %rd1, [a_x];  cvta.to.global.u64 %rd1, %rd1;\n"   \
	"  ld.param.u64 %rd2, [a_dy]; cvta.to.global.u64 %rd2, %rd2;\n"   \
	"  ld.param.u64 %rd3, [a_dx]; cvta.to.global.u64 %rd3, %rd3;\n"   \
	"  ld.param.u64 %rd9, [a_n];\n"

const char mh_fused_ptx[] =
	".version 7.0\n"
	".target sm_80\n"
	".address_size 64\n"
	".visible .entry mh_adamw_f32(.param .u64 a_p, .param .u64 a_g, .param .u64 a_m, .param .u64 a_v,\n"
	"  .param .u64 a_c, .param .u64 a_po, .param .u64 a_mo, .param .u64 a_vo, .param .u64 a_n)\n"
	"{\n" PTX_REGS
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
	PTX_LOOP_HEAD
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
	PTX_LOOP_TAIL
	".visible .entry mh_gelugrad_f32" PTX_PARAMS3
	"{\n" PTX_REGS PTX_PARAMS3_LOAD PTX_LOOP_HEAD
	"  shl.b64 %rd13, %rd10, 2;\n"
	"  add.u64 %rd14, %rd1, %rd13;\n"
	"  ld.global.f32 %f1, [%rd14];\n"
	"  add.u64 %rd15, %rd2, %rd13;\n"
	"  ld.global.f32 %f2, [%rd15];\n"
	PTX_GELUGRAD_MATH
	"  add.u64 %rd16, %rd3, %rd13;\n"
	"  st.global.f32 [%rd16], %f20;\n"
	PTX_LOOP_TAIL
	".visible .entry mh_gelugrad_bf16" PTX_PARAMS3
	"{\n" PTX_REGS PTX_PARAMS3_LOAD PTX_LOOP_HEAD
	"  shl.b64 %rd13, %rd10, 1;\n"
	"  add.u64 %rd14, %rd1, %rd13;\n"
	"  ld.global.u16 %h1, [%rd14];\n"
	"  cvt.u32.u16 %r5, %h1;\n"
	"  shl.b32 %r5, %r5, 16;\n"
	"  mov.b32 %f1, %r5;\n"
	"  add.u64 %rd15, %rd2, %rd13;\n"
	"  ld.global.u16 %h2, [%rd15];\n"
	"  cvt.u32.u16 %r6, %h2;\n"
	"  shl.b32 %r6, %r6, 16;\n"
	"  mov.b32 %f2, %r6;\n"
	PTX_GELUGRAD_MATH
	"  cvt.rn.bf16.f32 %h3, %f20;\n"
	"  add.u64 %rd16, %rd3, %rd13;\n"
	"  st.global.b16 [%rd16], %h3;\n"
	PTX_LOOP_TAIL;

// The module's kernels, by index.
enum { kAdamW, kGeluGradF32, kGeluGradBF16, nKernels };
static const char *kernel_names[nKernels] = {"mh_adamw_f32", "mh_gelugrad_f32", "mh_gelugrad_bf16"};

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
	void *fn[maxContexts][nKernels];
} cu = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *cu_error(int rc) {
	const char *s = NULL;
	if (cu.errstr) cu.errstr(rc, &s);
	return s ? s : "unknown CUDA driver error";
}

// cu_kernel returns kernel id in the calling thread's current CUDA context
// (the one the CUDA provider runs in), loading the PTX module once per
// context; NULL with msg filled on failure.
static void *cu_kernel(int id, char *msg, size_t len) {
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
			fn = cu.fn[i][id];
			goto out;
		}
	}
	if (cu.n == maxContexts) {
		snprintf(msg, len, "more than %d CUDA contexts", maxContexts);
		goto out;
	}
	void *mod = NULL;
	if ((rc = cu.load(&mod, mh_fused_ptx)) != 0) {
		snprintf(msg, len, "loading the fused kernels' PTX: %s", cu_error(rc));
		goto out;
	}
	for (int k = 0; k < nKernels; k++) {
		if ((rc = cu.func(&cu.fn[cu.n][k], mod, kernel_names[k])) != 0) {
			snprintf(msg, len, "kernel %s: %s", kernel_names[k], cu_error(rc));
			goto out;
		}
	}
	cu.ctx[cu.n] = ctx;
	fn = cu.fn[cu.n][id];
	cu.n++;
out:
	pthread_mutex_unlock(&cu.mu);
	return fn;
}

// launch runs kernel id over n elements on stream; NULL or a message.
static const char *launch(int id, void *stream, size_t n, void **args) {
	static __thread char msg[320];
	if (n == 0) return NULL;
	void *fn = cu_kernel(id, msg, sizeof msg);
	if (fn == NULL) return msg;
	size_t blocks = (n + 255) / 256;
	if (blocks > 8192) blocks = 8192;
	int rc = cu.launch(fn, (unsigned)blocks, 1, 1, 256, 1, 1, 0, stream, args, NULL);
	if (rc != 0) {
		snprintf(msg, sizeof msg, "launching %s: %s", kernel_names[id], cu_error(rc));
		return msg;
	}
	return NULL;
}

// ---- the ops ----------------------------------------------------------------

static int want_types(const mh_op *k, int type, const int *allowed, char *msg, size_t len) {
	for (; *allowed; allowed++) {
		if (*allowed == type) return 0;
	}
	snprintf(msg, len, "%s: element type %d is not supported on the %s provider", k->name, type, k->cuda ? "CUDA" : "CPU");
	return 1;
}

static int adamw_check(const mh_op *k, const int *type, const size_t *count, char *msg, size_t len) {
	for (int i = 1; i < 5; i++) {
		size_t want = i == 4 ? 8 : count[0];
		if (type[i] != type[0] || count[i] != want) {
			snprintf(msg, len, "AdamW: input %d has element type %d and %zu elements; want type %d and %zu", i,
			         type[i], count[i], type[0], want);
			return 1;
		}
	}
	static const int cpu[] = {typeFloat, typeDouble, 0}, gpu[] = {typeFloat, 0};
	return want_types(k, type[0], k->cuda ? gpu : cpu, msg, len);
}

static const char *adamw_run(const mh_op *k, void *stream, int type, size_t n, void **in, void **out) {
	if (!k->cuda) {
		if (type == typeDouble) adamw_double(in[0], in[1], in[2], in[3], in[4], out[0], out[1], out[2], n);
		else adamw_float(in[0], in[1], in[2], in[3], in[4], out[0], out[1], out[2], n);
		return NULL;
	}
	unsigned long long nn = n;
	void *args[9] = {&in[0], &in[1], &in[2], &in[3], &in[4], &out[0], &out[1], &out[2], &nn};
	return launch(kAdamW, stream, n, args);
}

static int gelugrad_check(const mh_op *k, const int *type, const size_t *count, char *msg, size_t len) {
	if (type[1] != type[0] || count[1] != count[0]) {
		snprintf(msg, len, "GeluGrad: dy has element type %d and %zu elements; want x's %d and %zu", type[1],
		         count[1], type[0], count[0]);
		return 1;
	}
	static const int cpu[] = {typeFloat, typeDouble, typeBFloat16, 0}, gpu[] = {typeFloat, typeBFloat16, 0};
	return want_types(k, type[0], k->cuda ? gpu : cpu, msg, len);
}

static const char *gelugrad_run(const mh_op *k, void *stream, int type, size_t n, void **in, void **out) {
	if (!k->cuda) {
		gelugrad_host(type, in[0], in[1], out[0], n);
		return NULL;
	}
	unsigned long long nn = n;
	void *args[4] = {&in[0], &in[1], &out[0], &nn};
	return launch(type == typeBFloat16 ? kGeluGradBF16 : kGeluGradF32, stream, n, args);
}

// ---- the custom-op table -------------------------------------------------

static const mh_op *self(const mh_custom_op *op) { return (const mh_op *)op; }
static const char *op_name(const mh_custom_op *op) { return self(op)->name; }
static const char *op_ep(const mh_custom_op *op) {
	return self(op)->cuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
}
static int op_type(const mh_custom_op *op, size_t i) { (void)i; return self(op)->float_only ? typeFloat : 0; }
static size_t op_inputs(const mh_custom_op *op) { return self(op)->n_in; }
static size_t op_outputs(const mh_custom_op *op) { return self(op)->n_out; }
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
	*kernel = (void *)op; // the kernel needs only its op
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
	if (!s && *rank > 8) s = fail(api, "fused op: tensor rank above 8");
	if (!s) s = API(mhGetDimensions, status (*)(void *, int64_t *, size_t))(info, dims, *rank);
	API(mhReleaseTensorTypeAndShapeInfo, void (*)(void *))(info);
	return s;
}

enum { maxInputs = 5, maxOutputs = 3 };

static status op_compute(void *kernel, void *ctx) {
	const mh_op *k = kernel;
	void **api = k->api;
	void *in[maxInputs], *out[maxOutputs];
	int type[maxInputs];
	size_t count[maxInputs], rank[maxInputs];
	int64_t dims[maxInputs][8];
	for (size_t i = 0; i < k->n_in; i++) {
		const void *v = NULL;
		status s = API(mhKernelContext_GetInput, status (*)(void *, size_t, const void **))(ctx, i, &v);
		if (!s) s = describe(api, v, &type[i], &count[i], dims[i], &rank[i]);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(v, &in[i]);
		if (s) return s;
	}
	char msg[320];
	if (k->check(k, type, count, msg, sizeof msg)) return fail(api, msg);
	for (size_t j = 0; j < k->n_out; j++) {
		size_t from = k->like[j];
		void *v = NULL;
		status s = API(mhKernelContext_GetOutput, status (*)(void *, size_t, const int64_t *, size_t, void **))(
			ctx, j, dims[from], rank[from], &v);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(v, &out[j]);
		if (s) return s;
	}
	void *stream = NULL;
	if (k->cuda) {
		status s = API(mhKernelContext_GetGPUComputeStream, status (*)(void *, void **))(ctx, &stream);
		if (s) return s;
	}
	const char *err = k->run(k, stream, type[0], count[0], in, out);
	if (err) {
		snprintf(msg, sizeof msg, "%s: %s", k->name, err);
		return fail(api, msg);
	}
	return NULL;
}

// op_shapes gives output j the type and shape of input like[j].
static status op_shapes(const mh_custom_op *op, void *ctx) {
	const mh_op *k = self(op);
	void **api = k->api;
	for (size_t j = 0; j < k->n_out; j++) {
		void *info = NULL;
		status s = API(mhShapeInferContext_GetInputTypeShape, status (*)(void *, size_t, void **))(ctx, k->like[j], &info);
		if (s) return s;
		// The context owns info (ORT keeps the inputs' infos and hands out
		// pointers to them).
		s = API(mhShapeInferContext_SetOutputTypeShape, status (*)(void *, size_t, void *))(ctx, j, info);
		if (s) return s;
	}
	return NULL;
}

static void op_init(mh_op *o, void **api, int cuda) {
	o->api = api;
	o->cuda = cuda;
	mh_custom_op *op = &o->op;
	memset(op, 0, sizeof *op);
	op->version = 24;
	op->GetName = op_name;
	op->GetExecutionProviderType = op_ep;
	op->GetInputType = op_type;
	op->GetInputTypeCount = op_inputs;
	op->GetOutputType = op_type;
	op->GetOutputTypeCount = op_outputs;
	op->KernelDestroy = destroy;
	op->GetInputCharacteristic = required;
	op->GetOutputCharacteristic = required;
	op->GetInputMemoryType = default_mem;
	op->GetVariadicInputMinArity = one;
	op->GetVariadicInputHomogeneity = zero;
	op->GetVariadicOutputMinArity = one;
	op->GetVariadicOutputHomogeneity = zero;
	op->CreateKernelV2 = create_kernel;
	op->KernelComputeV2 = op_compute;
	op->InferOutputShapeFn = op_shapes;
	op->GetStartVersion = one;
	op->GetEndVersion = last_version;
	op->GetMayInplace = no_pairs;
	op->ReleaseMayInplace = release_pairs;
	op->GetAliasMap = no_pairs;
	op->ReleaseAliasMap = release_pairs;
}

static const size_t adamw_like[] = {0, 2, 3}, gelugrad_like[] = {0};

// The domain's ops, each for the CPU and the CUDA provider.
enum { nOps = 4 };
static mh_op ops[nOps] = {
	{.name = "AdamW", .n_in = 5, .n_out = 3, .like = adamw_like, .check = adamw_check, .run = adamw_run},
	{.name = "AdamW", .n_in = 5, .n_out = 3, .like = adamw_like, .float_only = 1, .check = adamw_check, .run = adamw_run, .cuda = 1},
	{.name = "GeluGrad", .n_in = 2, .n_out = 1, .like = gelugrad_like, .check = gelugrad_check, .run = gelugrad_run},
	{.name = "GeluGrad", .n_in = 2, .n_out = 1, .like = gelugrad_like, .check = gelugrad_check, .run = gelugrad_run, .cuda = 1},
};

// ---- the domain ------------------------------------------------------------

static struct {
	pthread_mutex_t mu;
	void **api;
	void *domain;
} dom = {.mu = PTHREAD_MUTEX_INITIALIZER};

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
		for (int i = 0; !s && i < nOps; i++) {
			op_init(&ops[i], api, ops[i].cuda);
			s = API(mhCustomOpDomain_Add, status (*)(void *, const void *))(d, &ops[i]);
		}
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
