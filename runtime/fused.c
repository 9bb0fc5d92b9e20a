// Fused kernels as ONNX Runtime custom ops; see fused.go.
//
// The host loops round every operation once, as the stock ops do: no FMA
// contraction (GCC's pragma; clang contracts only within one expression,
// and each operation below is its own statement).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "fused.h"
#include "nccl.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

// OrtApi members used here, by index (MH_ORT_API_VERSION, fused.h); TestOrtAPIIndices
// checks them against onnxruntime_go's header, as it does ortapi.go's.
enum {
	mhCreateStatus = 0,
	mhGetErrorMessage = 2,
	mhCreateCustomOpDomain = 26,
	mhCustomOpDomain_Add = 27,
	mhAddCustomOpDomain = 28,
	mhGetTensorMutableData = 51,
	mhCreateTensorTypeAndShapeInfo = 57,
	mhSetTensorElementType = 58,
	mhSetDimensions = 59,
	mhGetTensorElementType = 60,
	mhGetDimensionsCount = 61,
	mhGetDimensions = 62,
	mhGetSymbolicDimensions = 63,
	mhGetTensorShapeElementCount = 64,
	mhGetTensorTypeAndShape = 65,
	mhReleaseStatus = 93,
	mhKernelContext_GetInputCount = 88,
	mhKernelContext_GetOutputCount = 89,
	mhKernelContext_GetInput = 90,
	mhKernelContext_GetOutput = 91,
	mhReleaseTensorTypeAndShapeInfo = 99,
	mhReleaseCustomOpDomain = 101,
	mhKernelContext_GetGPUComputeStream = 193,
	mhShapeInferContext_GetInputCount = 267,
	mhShapeInferContext_GetInputTypeShape = 268,
	mhKernelContext_ParallelFor = 274,
	mhShapeInferContext_SetOutputTypeShape = 270,
	mhSetSymbolicDimensions = 271,
};

typedef void *status;
#define API(idx, type) ((type)api[idx])

// struct OrtCustomOp of MH_ORT_API_VERSION (fused.h), member for member
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

// A tensor's element type and shape.
typedef struct {
	int type;
	size_t rank;
	int64_t dims[8];
} mh_shape;
struct mh_op {
	mh_custom_op op;
	void **api;
	int cuda;
	const char *name;
	size_t n_in, n_out;
	// var_in: the last input is variadic; var_out: the only output is. The
	// op's parts (parts_of, from its inputs' ranks) are then that input's
	// or output's count.
	int var_in, var_out;
	size_t (*parts_of)(const mh_op *k, const size_t *rank);
	const size_t *like; // output j has the type and shape of input like[j], or
	// out_shape gives it (like NULL) from the inputs' types and dims.
	mh_shape (*out_shape)(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank);
	const int *types; // element types the kernel takes (0-terminated)
	// Elementwise ops (run = elementwise_run): the host loop, and the CUDA
	// kernels for float and bfloat16, which take the inputs, the outputs and
	// the element count.
	void (*host)(int type, size_t lo, size_t hi, void **in, void **out);
	int kernel_f32, kernel_bf16;
	// check validates the inputs' element types, counts and dims (msg
	// filled, nonzero on error); run computes, on the host or by launching
	// kernels.
	int (*check)(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
	             char *msg, size_t len);
	const char *(*run)(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
	                   int64_t (*dims)[8], const size_t *rank, void **in, void **out);
};

enum { typeFloat = 1, typeInt64 = 7, typeDouble = 11, typeBFloat16 = 16 };

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

// ---- host loops --------------------------------------------------------------
//
// Each host kernel works on a range of elements or rows, so that ORT's
// intra-op thread pool can run the ranges in parallel (KernelContext_
// ParallelFor). Loads and stores per element type:

#define LD_float(p, i) (((const float *)(p))[i])
#define LD_double(p, i) (((const double *)(p))[i])
#define LD_bf16(p, i) bf16_to_float(((const uint16_t *)(p))[i])
#define ST_float(p, i, v) (((float *)(p))[i] = (v))
#define ST_double(p, i, v) (((double *)(p))[i] = (v))
#define ST_bf16(p, i, v) (((uint16_t *)(p))[i] = float_to_bf16(v))

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
	                      T *mo, T *vo, size_t lo, size_t hi) {                               \
		if (c[7] == 0) {                                                                     \
			memmove(po + lo, p + lo, (hi - lo) * sizeof(T));                                 \
			memmove(mo + lo, m + lo, (hi - lo) * sizeof(T));                                 \
			memmove(vo + lo, v + lo, (hi - lo) * sizeof(T));                                 \
			return;                                                                          \
		}                                                                                    \
		const T b1 = c[0], a1 = c[1], b2 = c[2], a2 = c[3], decay = c[4], step = c[5], eps = c[6]; \
		for (size_t i = lo; i < hi; i++) {                                                   \
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

static void adamw_host(int type, size_t lo, size_t hi, void **in, void **out) {
	if (type == typeDouble) adamw_double(in[0], in[1], in[2], in[3], in[4], out[0], out[1], out[2], lo, hi);
	else adamw_float(in[0], in[1], in[2], in[3], in[4], out[0], out[1], out[2], lo, hi);
}

// ---- GeluGrad ---------------------------------------------------------------
//
// Inputs x and dy (one shape; float, double or bfloat16), output dx =
// dy·gelu'(x) for the tanh form gelu(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³))),
// written with s = σ(z), z = x(a + b·x²), a = 2√(2/π), b = 0.044715a:
//
//	gelu'(x) = s·(1 + x·σ(−z)·(a + 3b·x²))
//
// computed in float (double for double) from the inputs and rounded once
// to the output's type. The host takes one exponential, e^−|z|, for both
// σ(z) and σ(−z).

#define GELU_A 1.5957691216057308
#define GELU_B 0.07135481627260025
#define GELUGRAD(T, A, EXP, LD, ST)                                                      \
	static void gelugrad_##T(const void *xs, const void *dys, void *dxs, size_t lo, size_t hi) { \
		for (size_t i = lo; i < hi; i++) {                                               \
			A x = LD(xs, i), x2 = x * x;                                                 \
			A z = x * ((A)GELU_A + (A)GELU_B * x2);                                      \
			A e = EXP(z < 0 ? z : -z), big = (A)1 / ((A)1 + e), small = e * big;         \
			A s = z < 0 ? small : big, r = z < 0 ? big : small; /* σ(z), σ(−z) */       \
			A dz = (A)GELU_A + (A)(3 * GELU_B) * x2;                                     \
			ST(dxs, i, LD(dys, i) * (s * ((A)1 + x * r * dz)));                          \
		}                                                                                \
	}
GELUGRAD(float, float, expf, LD_float, ST_float)
GELUGRAD(double, double, exp, LD_double, ST_double)
GELUGRAD(bf16, float, expf, LD_bf16, ST_bf16)

static void gelugrad_host(int type, size_t lo, size_t hi, void **in, void **out) {
	switch (type) {
	case typeDouble: gelugrad_double(in[0], in[1], out[0], lo, hi); break;
	case typeBFloat16: gelugrad_bf16(in[0], in[1], out[0], lo, hi); break;
	default: gelugrad_float(in[0], in[1], out[0], lo, hi);
	}
}

// ---- SiluMul and SiluMulGrad ---------------------------------------------------
//
// The SiLU gate y·silu(z) = y·z·σ(z) of y and z (one shape; float, double
// or bfloat16), and its gradient from d: dy = d·z·σ(z) and dz =
// d·y·σ(z)·(1 + z·σ(−z)), computed in float (double for double) from the
// inputs and rounded once to the outputs' type. One exponential, e^−|z|,
// gives σ(z) and σ(−z).

#define SILU_SIG(A, EXP)                                                      \
	A e = EXP(z < 0 ? z : -z), big = (A)1 / ((A)1 + e), small = e * big; \
	A s = z < 0 ? small : big, r = z < 0 ? big : small; /* σ(z), σ(−z) */
// SILU_GRAD_ST stores SiluMulGrad's dy = d·z·σ(z) at i of dys and dz =
// d·y·σ(z)·(1 + z·σ(−z)) at i of dzs, from y, z, d and SILU_SIG's s and r.
#define SILU_GRAD_ST(A, ST, dys, dzs, i) \
	ST(dys, i, d * z * s);               \
	ST(dzs, i, d * y * s * ((A)1 + z * r));
#define SILUMUL(T, A, EXP, LD, ST)                                                                    \
	static void silumul_##T(const void *ys, const void *zs, void *outs, size_t lo, size_t hi) {      \
		for (size_t i = lo; i < hi; i++) {                                                        \
			A y = LD(ys, i), z = LD(zs, i);                                                       \
			SILU_SIG(A, EXP)                                                                      \
			(void)r;                                                                              \
			ST(outs, i, y * z * s);                                                               \
		}                                                                                         \
	}                                                                                             \
	static void silumulgrad_##T(const void *ys, const void *zs, const void *ds, void *dys, void *dzs, \
	                            size_t lo, size_t hi) {                                               \
		for (size_t i = lo; i < hi; i++) {                                                        \
			A y = LD(ys, i), z = LD(zs, i), d = LD(ds, i);                                        \
			SILU_SIG(A, EXP)                                                                      \
			SILU_GRAD_ST(A, ST, dys, dzs, i)                                                      \
		}                                                                                         \
	}
SILUMUL(float, float, expf, LD_float, ST_float)
SILUMUL(double, double, exp, LD_double, ST_double)
SILUMUL(bf16, float, expf, LD_bf16, ST_bf16)

static void silumul_host(int type, size_t lo, size_t hi, void **in, void **out) {
	switch (type) {
	case typeDouble: silumul_double(in[0], in[1], out[0], lo, hi); break;
	case typeBFloat16: silumul_bf16(in[0], in[1], out[0], lo, hi); break;
	default: silumul_float(in[0], in[1], out[0], lo, hi);
	}
}

static void silumulgrad_host(int type, size_t lo, size_t hi, void **in, void **out) {
	switch (type) {
	case typeDouble: silumulgrad_double(in[0], in[1], in[2], out[0], out[1], lo, hi); break;
	case typeBFloat16: silumulgrad_bf16(in[0], in[1], in[2], out[0], out[1], lo, hi); break;
	default: silumulgrad_float(in[0], in[1], in[2], out[0], out[1], lo, hi);
	}
}

// ---- CausalConv and CausalConvGrad --------------------------------------------
//
// The depthwise causal conv along T of the first C channels of x [B, T, Cx]
// with w [C, 1, K] and bias b [C], zero history, written as parts: x's
// channels are split into parts of the carrier's widths, a part within the
// first C channels is that part of the conv,
//
//	y[b,t,c] = b[c] + Σ_j w[c,j]·x[b, t−(K−1)+j, c]
//
// and a part after them is x's channels as they are. The gradient from the
// parts' dy writes dx [B, T, Cx] whole: dx[b,t,c] = Σ_j w[c,j]·dy[b,
// t+(K−1)−j, c] within the conv, dy itself after it; and dw, db as partial
// sums over convChunks chunks of the B·T rows (dwp [P, C, K], dbp [P, C];
// float, double for double) that the graph adds up. Sums run in j order
// in float (double for double), each operation rounded once, each output
// rounded once to its type.

enum { convChunks = 64 };

// conv_dims are a conv's sizes: T, the conv's channels C, K, the rows B·T
// and rows per chunk; x's channels Cx (its row stride); and one part's
// first channel and width.
typedef struct {
	size_t T, C, K, rows, per;
	size_t Cx, off, W;
} conv_dims;

#define CONV_HOST(T_, A, LD, ST)                                                                            \
	/* the part's y for rows [r0, r1) */                                                                  \
	static void conv_fwd_##T_(const void *x, const void *w, const void *b, void *y, conv_dims d, size_t r0, \
	                          size_t r1) {                                                                \
		for (size_t r = r0; r < r1; r++) {                                                                \
			size_t t = r % d.T;                                                                           \
			for (size_t c = 0; c < d.W; c++) {                                                            \
				size_t ch = d.off + c;                                                                    \
				A acc = LD(b, ch);                                                                        \
				for (size_t j = 0; j < d.K; j++) {                                                        \
					if (t + j < d.K - 1) continue;                                                        \
					A p = (A)LD(w, ch * d.K + j) * (A)LD(x, (r + j - (d.K - 1)) * d.Cx + ch);             \
					acc = acc + p;                                                                        \
				}                                                                                         \
				ST(y, r * d.W + c, acc);                                                                  \
			}                                                                                             \
		}                                                                                                 \
	}                                                                                                     \
	/* the part's channels of dx for rows [r0, r1) */                                                     \
	static void conv_dx_##T_(const void *w, const void *dy, void *dx, conv_dims d, size_t r0, size_t r1) { \
		for (size_t r = r0; r < r1; r++) {                                                                \
			size_t t = r % d.T;                                                                           \
			for (size_t c = 0; c < d.W; c++) {                                                            \
				size_t ch = d.off + c;                                                                    \
				A acc = 0;                                                                                \
				for (size_t j = 0; j < d.K; j++) {                                                        \
					size_t e = d.K - 1 - j;                                                               \
					if (t + e >= d.T) continue;                                                           \
					A p = (A)LD(w, ch * d.K + j) * (A)LD(dy, (r + e) * d.W + c);                          \
					acc = acc + p;                                                                        \
				}                                                                                         \
				ST(dx, r * d.Cx + ch, acc);                                                               \
			}                                                                                             \
		}                                                                                                 \
	}                                                                                                     \
	/* the partial sums of dw and db over chunk p for the part's channels */                              \
	static void conv_dw_##T_(const void *x, const void *dy, void *dwp, void *dbp, conv_dims d, size_t p) {   \
		A *dwo = (A *)dwp + p * d.C * d.K, *dbo = (A *)dbp + p * d.C;                                     \
		for (size_t c = 0; c < d.W; c++) {                                                                \
			size_t ch = d.off + c;                                                                        \
			A db = 0, dw[8] = {0};                                                                        \
			for (size_t r = p * d.per; r < (p + 1) * d.per && r < d.rows; r++) {                          \
				size_t t = r % d.T;                                                                       \
				A g = LD(dy, r * d.W + c);                                                                \
				db = db + g;                                                                              \
				for (size_t j = 0; j < d.K; j++) {                                                        \
					if (t + j < d.K - 1) continue;                                                        \
					A q = (A)LD(x, (r + j - (d.K - 1)) * d.Cx + ch) * g;                                  \
					dw[j] = dw[j] + q;                                                                    \
				}                                                                                         \
			}                                                                                             \
			dbo[ch] = db;                                                                                 \
			for (size_t j = 0; j < d.K; j++) dwo[ch * d.K + j] = dw[j];                                   \
		}                                                                                                 \
	}
CONV_HOST(float, float, LD_float, ST_float)
CONV_HOST(double, double, LD_double, ST_double)
CONV_HOST(bf16, float, LD_bf16, ST_bf16)

// copy_rows copies n elements of es bytes in each of rows [r0, r1) from src
// (a row every ss elements) to dst (a row every ds elements): a part of x
// after the conv, or its gradient into dx.
static void copy_rows(const void *src, size_t ss, void *dst, size_t ds, size_t n, size_t es, size_t r0, size_t r1) {
	for (size_t r = r0; r < r1; r++) memcpy((char *)dst + r * ds * es, (const char *)src + r * ss * es, n * es);
}

// ---- SegsumExp and SegsumExpGrad ---------------------------------------------
//
// cs [..., Q] (double) → l [..., Q, Q]: l[i,j] = exp(cs_i − cs_j) for j ≤ i,
// 0 above the diagonal, the exponential taken in double and rounded to l's
// type (bfloat16 through float); with a multiplicand m like l (not NULL),
// l[i,j] = m[i,j]·exp(cs_i − cs_j) below the diagonal, the product taken
// in double and rounded once. The gradient from dl: with g = l·dl (in l's
// type, float for bfloat16), dcs_k = Σ_j g[k,j] − Σ_i g[i,k], summed in
// double. One host range is one [Q, Q] tile.

#define SEGEXP_HOST(T_, A, LD, ST)                                                                         \
	static void segexp_##T_(const double *cs, const void *m, void *l, size_t q, size_t tile) {            \
		const double *c = cs + tile * q;                                                                  \
		size_t base = tile * q * q;                                                                       \
		for (size_t i = 0; i < q; i++)                                                                    \
			for (size_t j = 0; j < q; j++) {                                                              \
				size_t at = base + i * q + j;                                                             \
				double e = j <= i ? exp(c[i] - c[j]) : 0;                                                 \
				ST(l, at, m != NULL && j <= i ? (A)(e * (double)LD(m, at)) : (A)e);                       \
			}                                                                                             \
	}                                                                                                     \
	static void segexpgrad_##T_(const void *l, const void *dl, double *out, size_t q, size_t tile) {       \
		size_t base = tile * q * q;                                                                       \
		double *o = out + tile * q;                                                                       \
		for (size_t k = 0; k < q; k++) o[k] = 0;                                                          \
		for (size_t i = 0; i < q; i++) {                                                                  \
			double row = 0;                                                                               \
			for (size_t j = 0; j <= i; j++) {                                                             \
				A g = LD(l, base + i * q + j) * LD(dl, base + i * q + j);                                 \
				row += g;                                                                                 \
				o[j] -= g;                                                                                \
			}                                                                                             \
			o[i] += row;                                                                                  \
		}                                                                                                 \
	}
SEGEXP_HOST(float, float, LD_float, ST_float)
SEGEXP_HOST(double, double, LD_double, ST_double)
SEGEXP_HOST(bf16, float, LD_bf16, ST_bf16)

// ---- MaskedDiffSq and MaskedDiffSqGrad -----------------------------------------
//
// s [..., T, T] (float, double or bfloat16), cs [..., T] (double) and a
// like s (float for bfloat16 s): with L as SegsumExp's and K = s·L, rows_i
// = Σ_j (K_ij − a_ij)², summed in double and rounded to a's type. The
// gradient from dy [..., T]: dK = 2·dy_i·(K − a), ds = dK·L (in s's type),
// and with G = dK·K, dcs_k = Σ_j G_kj − Σ_i G_ik (double). L, K, dK and G
// are in a's type. One host range is one [T, T] tile.

#define MDS_HOST(T_, A, LDS, STS, LDA, STA)                                                            \
	static void mds_##T_(const void *s, const double *cs, const void *a, void *rows, size_t q, size_t tile) { \
		const double *c = cs + tile * q;                                                                  \
		for (size_t i = 0; i < q; i++) {                                                                  \
			double acc = 0;                                                                               \
			for (size_t j = 0; j < q; j++) {                                                              \
				size_t at = (tile * q + i) * q + j;                                                       \
				A k = j <= i ? LDS(s, at) * (A)exp(c[i] - c[j]) : (A)0;                                   \
				A e = k - LDA(a, at);                                                                     \
				acc += (double)e * e;                                                                     \
			}                                                                                             \
			STA(rows, tile * q + i, (A)acc);                                                              \
		}                                                                                                 \
	}                                                                                                     \
	static void mdsgrad_##T_(const void *s, const double *cs, const void *a, const void *dy, void *ds,      \
	                         double *dcs, size_t q, size_t tile) {                                           \
		const double *c = cs + tile * q;                                                                  \
		double *o = dcs + tile * q;                                                                       \
		for (size_t k = 0; k < q; k++) o[k] = 0;                                                          \
		for (size_t i = 0; i < q; i++) {                                                                  \
			A two_dy = 2 * LDA(dy, tile * q + i);                                                         \
			double row = 0;                                                                               \
			for (size_t j = 0; j < q; j++) {                                                              \
				size_t at = (tile * q + i) * q + j;                                                       \
				if (j > i) {                                                                              \
					STS(ds, at, (A)0);                                                                    \
					continue;                                                                             \
				}                                                                                         \
				A l = (A)exp(c[i] - c[j]);                                                                \
				A k = LDS(s, at) * l;                                                                     \
				A dk = two_dy * (k - LDA(a, at));                                                         \
				STS(ds, at, dk * l);                                                                      \
				A g = dk * k;                                                                             \
				row += g;                                                                                 \
				o[j] -= g;                                                                                \
			}                                                                                             \
			o[i] += row;                                                                                  \
		}                                                                                                 \
	}
MDS_HOST(float, float, LD_float, ST_float, LD_float, ST_float)
MDS_HOST(double, double, LD_double, ST_double, LD_double, ST_double)
MDS_HOST(bf16, float, LD_bf16, ST_bf16, LD_float, ST_float)

// ---- CausalSoftmax -----------------------------------------------------------
//
// x [..., Tq, Tk] (float, double or bfloat16) and scale [1] (float; double
// for double) → p like x in scale's type: the softmax over the keys j ≤ i +
// Tk − Tq of z = x·scale (z in scale's type; the maximum, the sum of
// exponentials and the quotient in double), 0 for the others. A NaN score
// makes its row NaN. One host range is one row.

#define CSM_HOST(T_, A, LDX, STP)                                                                      \
	static void csm_##T_(const void *x, const void *scale, void *p, size_t tk, size_t tq, size_t row) {   \
		A sc = ((const A *)scale)[0];                                                                     \
		size_t limit = row % tq + (tk - tq), base = row * tk;                                             \
		double m = -INFINITY, sum = 0;                                                                    \
		for (size_t j = 0; j <= limit; j++) {                                                             \
			double z = (A)(LDX(x, base + j) * sc);                                                        \
			if (z > m || z != z) m = z;                                                                   \
		}                                                                                                 \
		for (size_t j = 0; j <= limit; j++) sum += exp((double)(A)(LDX(x, base + j) * sc) - m);          \
		for (size_t j = 0; j < tk; j++)                                                                   \
			STP(p, base + j, j <= limit ? (A)(exp((double)(A)(LDX(x, base + j) * sc) - m) / sum) : (A)0); \
	}
CSM_HOST(float, float, LD_float, ST_float)
CSM_HOST(double, double, LD_double, ST_double)
CSM_HOST(bf16, float, LD_bf16, ST_float)

// ---- SoftCrossEntropy ---------------------------------------------------------
//
// s and t [..., V] (s float, double or bfloat16; t float or bfloat16, double
// with double s) and scale [1] (float; double for double s) → ce [...] and
// stats [..., 2] in scale's type. Per row, with z = scale·s and u =
// scale·t (each rounded to scale's type), stats = (logsumexp z, logsumexp
// u) and ce = −Σ_v softmax(u)_v·log softmax(z)_v, computed as log Σ e^(z −
// max z) − Σ e^(u − max u)·(z − max z) / Σ e^(u − max u): exponentials in
// scale's type, sums in double. A NaN logit makes its row NaN.
// SoftCrossEntropyGrad: ds = dce·scale·(e^(z − lse z) − e^(u − lse u)),
// like s. One host range is one row.

#define SCE_HOST(NAME, A, LDS, STS, LDT, EXP)                                                            \
	static void sce_##NAME(const void *s, const void *t, const void *scale, void *ce, void *stats, size_t v, \
	                       size_t row) {                                                                     \
		A sc = ((const A *)scale)[0];                                                                       \
		size_t base = row * v;                                                                              \
		A mz = -INFINITY, mu = -INFINITY;                                                                   \
		double sz = 0, su = 0, w = 0;                                                                       \
		for (size_t j = 0; j < v; j++) {                                                                    \
			A z = LDS(s, base + j) * sc, u = LDT(t, base + j) * sc;                                         \
			if (z > mz || z != z) mz = z;                                                                   \
			if (u > mu || u != u) mu = u;                                                                   \
		}                                                                                                   \
		for (size_t j = 0; j < v; j++) {                                                                    \
			A z = LDS(s, base + j) * sc - mz, eu = EXP(LDT(t, base + j) * sc - mu);                         \
			sz += EXP(z);                                                                                   \
			su += eu;                                                                                       \
			w += (double)eu * z;                                                                            \
		}                                                                                                   \
		((A *)stats)[2 * row] = (A)(mz + log(sz));                                                          \
		((A *)stats)[2 * row + 1] = (A)(mu + log(su));                                                      \
		((A *)ce)[row] = (A)(log(sz) - w / su);                                                             \
	}                                                                                                       \
	static void sceg_##NAME(const void *s, const void *t, const void *scale, const void *stats, const void *dce, \
	                        void *ds, size_t v, size_t row) {                                                \
		A sc = ((const A *)scale)[0], lz = ((const A *)stats)[2 * row], lu = ((const A *)stats)[2 * row + 1]; \
		A g = ((const A *)dce)[row] * sc;                                                                   \
		size_t base = row * v;                                                                              \
		for (size_t j = 0; j < v; j++) {                                                                    \
			A z = LDS(s, base + j) * sc, u = LDT(t, base + j) * sc;                                         \
			STS(ds, base + j, g * (EXP(z - lz) - EXP(u - lu)));                                             \
		}                                                                                                   \
	}
SCE_HOST(f_f, float, LD_float, ST_float, LD_float, expf)
SCE_HOST(f_b, float, LD_float, ST_float, LD_bf16, expf)
SCE_HOST(b_f, float, LD_bf16, ST_bf16, LD_float, expf)
SCE_HOST(b_b, float, LD_bf16, ST_bf16, LD_bf16, expf)
SCE_HOST(d_d, double, LD_double, ST_double, LD_double, exp)

// ---- LayerNormGrad -------------------------------------------------------------
//
// x and dy [..., D] (float, double or bfloat16), gamma [D] of x's type, and
// ONNX LayerNormalization's mean and inverse standard deviation [..., 1]
// (float; double for double x) → dx like x and the partial sums over
// lnChunks chunks of the rows of γ's and β's gradients, dgp and dbp
// [lnChunks, D] of mean's type. With x̂ = (x − μ)·r and g = dy·γ (each
// rounded to mean's type), dx = r·(g − mean(g) − x̂·mean(g·x̂)) (the means
// summed in double on the host), dgp[p] = Σ_rows of chunk p dy·x̂ and
// dbp[p] = Σ dy. Host ranges: one row of dx, or one chunk of columns.

enum { lnChunks = 64 };

#define LNG_HOST(T_, A, LD, ST)                                                                          \
	static void lngdx_##T_(const void *x, const void *gamma, const void *mean, const void *invstd,     \
	                       const void *dy, void *dx, size_t d, size_t row) {                            \
		A mu = ((const A *)mean)[row], r = ((const A *)invstd)[row];                                    \
		size_t base = row * d;                                                                          \
		double s1 = 0, s2 = 0;                                                                          \
		for (size_t j = 0; j < d; j++) {                                                                \
			A xh = (A)((A)(LD(x, base + j) - mu) * r), g = (A)(LD(dy, base + j) * LD(gamma, j));        \
			s1 += g;                                                                                    \
			s2 += (double)g * xh;                                                                       \
		}                                                                                               \
		A m1 = (A)(s1 / (double)d), m2 = (A)(s2 / (double)d);                                           \
		for (size_t j = 0; j < d; j++) {                                                                \
			A xh = (A)((A)(LD(x, base + j) - mu) * r), g = (A)(LD(dy, base + j) * LD(gamma, j));        \
			ST(dx, base + j, (A)(r * (A)((A)(g - m1) - (A)(xh * m2))));                                 \
		}                                                                                               \
	}                                                                                                   \
	static void lngcols_##T_(const void *x, const void *mean, const void *invstd, const void *dy,      \
	                         void *dgp, void *dbp, size_t d, size_t rows, size_t per, size_t p) {       \
		A *dg = (A *)dgp + p * d, *db = (A *)dbp + p * d;                                               \
		for (size_t c = 0; c < d; c++) dg[c] = db[c] = 0;                                               \
		for (size_t row = p * per; row < (p + 1) * per && row < rows; row++) {                          \
			A mu = ((const A *)mean)[row], r = ((const A *)invstd)[row];                                \
			for (size_t c = 0; c < d; c++) {                                                            \
				A xh = (A)((A)(LD(x, row * d + c) - mu) * r), g = LD(dy, row * d + c);                  \
				dg[c] = dg[c] + g * xh;                                                                 \
				db[c] = db[c] + g;                                                                      \
			}                                                                                           \
		}                                                                                               \
	}
LNG_HOST(float, float, LD_float, ST_float)
LNG_HOST(double, double, LD_double, ST_double)
LNG_HOST(bf16, float, LD_bf16, ST_bf16)

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


// Loads and stores of one element at byte address %rd<addr> into/from f32
// register %f<reg>, for float (shift 2) and bfloat16 (shift 1).
#define LD_F32(f, a) "  ld.global.f32 " f ", [" a "];\n"
#define LD_BF16(f, a) "  ld.global.u16 %h1, [" a "];\n  cvt.u32.u16 %r20, %h1;\n  shl.b32 %r20, %r20, 16;\n  mov.b32 " f ", %r20;\n"
#define ST_F32(a, f) "  st.global.f32 [" a "], " f ";\n"
#define ST_BF16(a, f) "  cvt.rn.bf16.f32 %h2, " f ";\n  st.global.b16 [" a "], %h2;\n"

#define CONV_REGS                 \
	"  .reg .pred %p<6>;\n"       \
	"  .reg .b16 %h<4>;\n"        \
	"  .reg .b32 %r<32>;\n"       \
	"  .reg .b64 %rd<32>;\n"      \
	"  .reg .f32 %f<32>;\n"

// A grid-stride loop of i (%r5, stride %r6) over n (%r13) elements of rows
// of width %r10: each step has its column c (%r7) and row (%r8).
#define PTX_ROW_LOOP_HEAD \
	"  mov.u32 %r1, %ctaid.x;\n  mov.u32 %r2, %ntid.x;\n  mov.u32 %r3, %tid.x;\n  mov.u32 %r4, %nctaid.x;\n" \
	"  mad.lo.u32 %r5, %r1, %r2, %r3;\n"               /* i */ \
	"  mul.lo.u32 %r6, %r4, %r2;\n"                    /* stride */ \
	"LOOP:\n" \
	"  setp.ge.u32 %p1, %r5, %r13;\n  @%p1 bra DONE;\n" \
	"  rem.u32 %r7, %r5, %r10;\n"                      /* c */ \
	"  div.u32 %r8, %r5, %r10;\n"                      /* row */

// The element loop shared by the forward conv and dx over one part: params
// W (the part's width), T, K, n = B·T·W, Cx (x's channels) and off (the
// part's first channel) into %r10–%r13, %r21 and %r22, K−1 into %r14, i
// (%r5) grid-stride over n, and per element c (%r7), row b·T + t (%r8), t
// (%r9), the channel off + c (%r24) and its index row·Cx + off + c in x or
// dx (%r23); the tail stores %f1 at out[IDX] (%rd4) after the tap loop
// (JLOOP … JNEXT). (LD_BF16 takes %r20.)
#define PTX_CONV_ELEMENT_HEAD \
	"  ld.param.u32 %r10, [a_W];\n" \
	"  ld.param.u32 %r11, [a_T];\n" \
	"  ld.param.u32 %r12, [a_K];\n" \
	"  ld.param.u32 %r13, [a_n];\n" \
	"  ld.param.u32 %r21, [a_Cx];\n" \
	"  ld.param.u32 %r22, [a_off];\n" \
	"  sub.u32 %r14, %r12, 1;\n"                       /* K−1 */ \
	PTX_ROW_LOOP_HEAD \
	"  rem.u32 %r9, %r8, %r11;\n"                      /* t */ \
	"  add.u32 %r24, %r22, %r7;\n"                     /* off + c */ \
	"  mad.lo.u32 %r23, %r8, %r21, %r24;\n"            /* row·Cx + off + c */

#define PTX_CONV_ELEMENT_TAIL(SH, ST, IDX) \
	"JNEXT:\n  add.u32 %r15, %r15, 1;\n  bra JLOOP;\n" \
	"JDONE:\n" \
	"  mul.wide.u32 %rd13, " IDX ", " SH ";\n  add.u64 %rd13, %rd4, %rd13;\n" \
	ST("%rd13", "%f1") \
	"  add.u32 %r5, %r5, %r6;\n  bra LOOP;\n" \
	"DONE:\n  ret;\n}\n"

#define PTX_CONV_PART_PARAMS "  .param .u32 a_W, .param .u32 a_T, .param .u32 a_K, .param .u32 a_n, .param .u32 a_Cx, .param .u32 a_off)\n"

// One part of the forward conv, one element of y per thread step
// (grid-stride, 32-bit indices): params x, w, b, y and
// PTX_CONV_PART_PARAMS.
#define PTX_CONV_FWD(NAME, SH, LD, ST)                                                   \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_w, .param .u64 a_b, .param .u64 a_y,\n" \
	PTX_CONV_PART_PARAMS                                                                 \
	"{\n" CONV_REGS                                                                      \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                      \
	"  ld.param.u64 %rd2, [a_w]; cvta.to.global.u64 %rd2, %rd2;\n"                      \
	"  ld.param.u64 %rd3, [a_b]; cvta.to.global.u64 %rd3, %rd3;\n"                      \
	"  ld.param.u64 %rd4, [a_y]; cvta.to.global.u64 %rd4, %rd4;\n"                      \
	PTX_CONV_ELEMENT_HEAD                                                                \
	"  mul.wide.u32 %rd10, %r24, " SH ";\n  add.u64 %rd10, %rd3, %rd10;\n"               \
	LD("%f1", "%rd10")                                 /* acc = b[off + c] */            \
	"  mov.u32 %r15, 0;\n"                                                               \
	"JLOOP:\n"                                                                           \
	"  setp.ge.u32 %p2, %r15, %r12;\n  @%p2 bra JDONE;\n"                                \
	"  add.u32 %r16, %r9, %r15;\n"                                                       \
	"  setp.lt.u32 %p3, %r16, %r14;\n  @%p3 bra JNEXT;\n" /* t+j < K−1: before the start */ \
	"  mad.lo.u32 %r17, %r24, %r12, %r15;\n"           /* (off + c)·K + j */             \
	"  mul.wide.u32 %rd11, %r17, " SH ";\n  add.u64 %rd11, %rd2, %rd11;\n"               \
	LD("%f2", "%rd11")                                                                   \
	"  sub.u32 %r18, %r14, %r15;\n  mul.lo.u32 %r18, %r18, %r21;\n  sub.u32 %r18, %r23, %r18;\n" /* − (K−1−j)·Cx */ \
	"  mul.wide.u32 %rd12, %r18, " SH ";\n  add.u64 %rd12, %rd1, %rd12;\n"               \
	LD("%f3", "%rd12")                                                                   \
	"  fma.rn.f32 %f1, %f2, %f3, %f1;\n"                                                 \
	PTX_CONV_ELEMENT_TAIL(SH, ST, "%r5")

// One part's channels of dx: params w, dy (the part's gradient), dx and
// PTX_CONV_PART_PARAMS; dx[row·Cx + off + c] = Σ_j w[off + c, j]·dy[i +
// (K−1−j)·W] where t + K−1−j < T.
#define PTX_CONV_DX(NAME, SH, LD, ST)                                                    \
	".visible .entry " NAME "(.param .u64 a_w, .param .u64 a_dy, .param .u64 a_dx,\n"   \
	PTX_CONV_PART_PARAMS                                                                 \
	"{\n" CONV_REGS                                                                      \
	"  ld.param.u64 %rd2, [a_w]; cvta.to.global.u64 %rd2, %rd2;\n"                      \
	"  ld.param.u64 %rd1, [a_dy]; cvta.to.global.u64 %rd1, %rd1;\n"                     \
	"  ld.param.u64 %rd4, [a_dx]; cvta.to.global.u64 %rd4, %rd4;\n"                     \
	PTX_CONV_ELEMENT_HEAD                                                                \
	"  mov.f32 %f1, 0f00000000;\n"                                                       \
	"  mov.u32 %r15, 0;\n"                                                               \
	"JLOOP:\n"                                                                           \
	"  setp.ge.u32 %p2, %r15, %r12;\n  @%p2 bra JDONE;\n"                                \
	"  sub.u32 %r16, %r14, %r15;\n"                    /* e = K−1−j */                   \
	"  add.u32 %r17, %r9, %r16;\n"                                                       \
	"  setp.ge.u32 %p3, %r17, %r11;\n  @%p3 bra JNEXT;\n" /* t+e ≥ T: past the end */     \
	"  mad.lo.u32 %r18, %r24, %r12, %r15;\n"                                             \
	"  mul.wide.u32 %rd11, %r18, " SH ";\n  add.u64 %rd11, %rd2, %rd11;\n"               \
	LD("%f2", "%rd11")                                                                   \
	"  mad.lo.u32 %r19, %r16, %r10, %r5;\n"            /* i + e·W */                     \
	"  mul.wide.u32 %rd12, %r19, " SH ";\n  add.u64 %rd12, %rd1, %rd12;\n"               \
	LD("%f3", "%rd12")                                                                   \
	"  fma.rn.f32 %f1, %f2, %f3, %f1;\n"                                                 \
	PTX_CONV_ELEMENT_TAIL(SH, ST, "%r23")

// The partial sums of dw and db for K = 4 over one part: one thread per
// (channel of the part, chunk); grid (ceil(W/ntid), convChunks); params x,
// dy (the part's gradient), dwp, dbp, C (the conv's channels), T, rows,
// per (rows per chunk), Cx, off and W. dwp [P, C, 4] and dbp [P, C] are
// float.
#define PTX_CONV_DW(NAME, SH, LD)                                                        \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_dy, .param .u64 a_dwp, .param .u64 a_dbp,\n" \
	"  .param .u32 a_C, .param .u32 a_T, .param .u32 a_rows, .param .u32 a_per, .param .u32 a_Cx,\n" \
	"  .param .u32 a_off, .param .u32 a_W)\n"                                            \
	"{\n" CONV_REGS                                                                      \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                      \
	"  ld.param.u64 %rd2, [a_dy]; cvta.to.global.u64 %rd2, %rd2;\n"                     \
	"  ld.param.u64 %rd3, [a_dwp]; cvta.to.global.u64 %rd3, %rd3;\n"                    \
	"  ld.param.u64 %rd4, [a_dbp]; cvta.to.global.u64 %rd4, %rd4;\n"                    \
	"  ld.param.u32 %r10, [a_W];\n"                                                      \
	"  ld.param.u32 %r11, [a_T];\n"                                                      \
	"  ld.param.u32 %r12, [a_rows];\n"                                                   \
	"  ld.param.u32 %r13, [a_per];\n"                                                    \
	"  ld.param.u32 %r21, [a_Cx];\n"                                                     \
	"  ld.param.u32 %r22, [a_off];\n"                                                    \
	"  ld.param.u32 %r25, [a_C];\n"                                                      \
	"  mov.u32 %r1, %ctaid.x;\n  mov.u32 %r2, %ntid.x;\n  mov.u32 %r3, %tid.x;\n"        \
	"  mad.lo.u32 %r7, %r1, %r2, %r3;\n"               /* c */                           \
	"  setp.ge.u32 %p1, %r7, %r10;\n  @%p1 bra DONE;\n"                                  \
	"  add.u32 %r24, %r22, %r7;\n"                     /* off + c */                     \
	"  mov.u32 %r4, %ctaid.y;\n"                       /* chunk p */                     \
	"  mul.lo.u32 %r5, %r4, %r13;\n"                   /* r = p·per */                   \
	"  add.u32 %r6, %r5, %r13;\n  min.u32 %r6, %r6, %r12;\n" /* end */                   \
	"  mov.f32 %f10, 0f00000000;\n  mov.f32 %f11, 0f00000000;\n  mov.f32 %f12, 0f00000000;\n" \
	"  mov.f32 %f13, 0f00000000;\n  mov.f32 %f14, 0f00000000;\n"                         \
	"RLOOP:\n"                                                                           \
	"  setp.ge.u32 %p2, %r5, %r6;\n  @%p2 bra RDONE;\n"                                  \
	"  rem.u32 %r9, %r5, %r11;\n"                      /* t */                           \
	"  mad.lo.u32 %r14, %r5, %r10, %r7;\n"             /* r·W + c */                     \
	"  mul.wide.u32 %rd10, %r14, " SH ";\n  add.u64 %rd10, %rd2, %rd10;\n"               \
	LD("%f1", "%rd10")                                 /* g = dy[r, c] */                \
	"  add.rn.f32 %f14, %f14, %f1;\n"                  /* db */                          \
	"  mad.lo.u32 %r23, %r5, %r21, %r24;\n"            /* r·Cx + off + c */              \
	"  mul.wide.u32 %rd11, %r23, " SH ";\n  add.u64 %rd11, %rd1, %rd11;\n"               \
	LD("%f2", "%rd11")                                 /* x[r]: tap 3 */                 \
	"  fma.rn.f32 %f13, %f2, %f1, %f13;\n"                                               \
	"  setp.lt.u32 %p3, %r9, 1;\n  @%p3 bra RNEXT;\n"                                    \
	"  sub.u32 %r15, %r23, %r21;\n"                                                      \
	"  mul.wide.u32 %rd12, %r15, " SH ";\n  add.u64 %rd12, %rd1, %rd12;\n"               \
	LD("%f3", "%rd12")                                 /* x[r−1]: tap 2 */               \
	"  fma.rn.f32 %f12, %f3, %f1, %f12;\n"                                               \
	"  setp.lt.u32 %p3, %r9, 2;\n  @%p3 bra RNEXT;\n"                                    \
	"  sub.u32 %r15, %r15, %r21;\n"                                                      \
	"  mul.wide.u32 %rd12, %r15, " SH ";\n  add.u64 %rd12, %rd1, %rd12;\n"               \
	LD("%f4", "%rd12")                                 /* tap 1 */                       \
	"  fma.rn.f32 %f11, %f4, %f1, %f11;\n"                                               \
	"  setp.lt.u32 %p3, %r9, 3;\n  @%p3 bra RNEXT;\n"                                    \
	"  sub.u32 %r15, %r15, %r21;\n"                                                      \
	"  mul.wide.u32 %rd12, %r15, " SH ";\n  add.u64 %rd12, %rd1, %rd12;\n"               \
	LD("%f5", "%rd12")                                 /* tap 0 */                       \
	"  fma.rn.f32 %f10, %f5, %f1, %f10;\n"                                               \
	"RNEXT:\n  add.u32 %r5, %r5, 1;\n  bra RLOOP;\n"                                     \
	"RDONE:\n"                                                                           \
	"  mad.lo.u32 %r16, %r4, %r25, %r24;\n"            /* p·C + off + c */               \
	"  mul.wide.u32 %rd13, %r16, 4;\n  add.u64 %rd13, %rd4, %rd13;\n"                    \
	"  st.global.f32 [%rd13], %f14;\n"                                                   \
	"  mul.wide.u32 %rd14, %r16, 16;\n  add.u64 %rd14, %rd3, %rd14;\n"                   \
	"  st.global.f32 [%rd14], %f10;\n  st.global.f32 [%rd14+4], %f11;\n"                 \
	"  st.global.f32 [%rd14+8], %f12;\n  st.global.f32 [%rd14+12], %f13;\n"              \
	"DONE:\n  ret;\n}\n"

// A strided copy of rows: W elements of each of n/W rows from src (a row
// every ss elements) to dst (a row every ds elements), grid-stride over
// the n elements; MOV moves one element from [%rd10] to [%rd11]. The
// parts of CausalConv after the conv, and their gradients into dx.
#define PTX_COPY(NAME, SH, MOV)                                                          \
	".visible .entry " NAME "(.param .u64 a_src, .param .u64 a_dst, .param .u32 a_W, .param .u32 a_ss,\n" \
	"  .param .u32 a_ds, .param .u32 a_n)\n"                                             \
	"{\n" CONV_REGS                                                                      \
	"  ld.param.u64 %rd1, [a_src]; cvta.to.global.u64 %rd1, %rd1;\n"                    \
	"  ld.param.u64 %rd4, [a_dst]; cvta.to.global.u64 %rd4, %rd4;\n"                    \
	"  ld.param.u32 %r10, [a_W];\n"                                                      \
	"  ld.param.u32 %r21, [a_ss];\n"                                                     \
	"  ld.param.u32 %r22, [a_ds];\n"                                                     \
	"  ld.param.u32 %r13, [a_n];\n"                                                      \
	PTX_ROW_LOOP_HEAD                                                                    \
	"  mad.lo.u32 %r23, %r8, %r21, %r7;\n"             /* row·ss + c */                  \
	"  mad.lo.u32 %r24, %r8, %r22, %r7;\n"             /* row·ds + c */                  \
	"  mul.wide.u32 %rd10, %r23, " SH ";\n  add.u64 %rd10, %rd1, %rd10;\n"               \
	"  mul.wide.u32 %rd11, %r24, " SH ";\n  add.u64 %rd11, %rd4, %rd11;\n"               \
	MOV                                                                                  \
	"  add.u32 %r5, %r5, %r6;\n  bra LOOP;\n"                                            \
	"DONE:\n  ret;\n}\n"
#define MOV_B16 "  ld.global.u16 %h1, [%rd10];\n  st.global.u16 [%rd11], %h1;\n"
#define MOV_B32 "  ld.global.u32 %r25, [%rd10];\n  st.global.u32 [%rd11], %r25;\n"

#define SEGEXP_REGS           \
	"  .reg .pred %p<5>;\n"   \
	"  .reg .b16 %h<4>;\n"    \
	"  .reg .b32 %r<24>;\n"   \
	"  .reg .b64 %rd<24>;\n"  \
	"  .reg .f32 %f<16>;\n"   \
	"  .reg .f64 %fd<12>;\n"

// DST = exp(%fd1 − %fd2) in float: exp(d) = 2^f·2^n with y = d·log2 e =
// n + f, n an integer and |f| ≤ ½, taken in double up to f; 2^f by
// ex2.approx.f32 (a few units of float), 2^n built from its bits (0 below
// 2^−126, ∞ above 2^127). A NaN difference stays NaN (f is NaN). Uses
// %fd3–%fd6, %f1–%f3 and %r11.
#define PTX_EXP_DIFF(DST)                                                     \
	"  sub.rn.f64 %fd3, %fd1, %fd2;\n"                                        \
	"  mul.rn.f64 %fd4, %fd3, 0d3FF71547652B82FE;\n"   /* y = d·log2 e */     \
	"  cvt.rni.f64.f64 %fd5, %fd4;\n"                  /* n */                \
	"  sub.rn.f64 %fd6, %fd4, %fd5;\n"                 /* f */                \
	"  cvt.rn.f32.f64 %f1, %fd6;\n"                                           \
	"  ex2.approx.f32 %f2, %f1;\n"                                            \
	"  max.f64 %fd5, %fd5, 0dC060000000000000;\n"      /* n in [−128, 128] */ \
	"  min.f64 %fd5, %fd5, 0d4060000000000000;\n"                             \
	"  cvt.rzi.s32.f64 %r11, %fd5;\n"                                         \
	"  max.s32 %r11, %r11, -127;\n"                    /* −127: 0; 128: ∞ */  \
	"  add.s32 %r11, %r11, 127;\n  shl.b32 %r11, %r11, 23;\n  mov.b32 %f3, %r11;\n" \
	"  mul.rn.f32 " DST ", %f2, %f3;\n"

// SegsumExp: one block per row r = tile·Q + i (grid-stride over rows),
// its threads over j; PTX_EXP_DIFF for each j ≤ i, times m[r, j] where the
// multiplicand m is not NULL (%p4 otherwise; SegsumExpMul). Params cs, m,
// l, Q, rows.
#define PTX_SEGEXP(NAME, SH, LD, ST)                                                          \
	".visible .entry " NAME "(.param .u64 a_cs, .param .u64 a_m, .param .u64 a_l, .param .u32 a_q,\n" \
	"  .param .u32 a_rows)\n"                                                                 \
	"{\n" SEGEXP_REGS                                                                         \
	"  ld.param.u64 %rd1, [a_cs]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd7, [a_m];\n"                                                           \
	"  setp.eq.u64 %p4, %rd7, 0;\n  cvta.to.global.u64 %rd7, %rd7;\n" /* no multiplicand */ \
	"  ld.param.u64 %rd2, [a_l]; cvta.to.global.u64 %rd2, %rd2;\n"                           \
	"  ld.param.u32 %r1, [a_q];\n"                                                            \
	"  ld.param.u32 %r2, [a_rows];\n"                                                         \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %nctaid.x;\n"                                  \
	"  mov.u32 %r5, %tid.x;\n  mov.u32 %r6, %ntid.x;\n"                                      \
	"ROW:\n"                                                                                  \
	"  setp.ge.u32 %p1, %r3, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  rem.u32 %r7, %r3, %r1;\n"                       /* i */                                \
	"  sub.u32 %r8, %r3, %r7;\n"                       /* tile·Q */                           \
	"  mul.wide.u32 %rd3, %r3, 8;\n  add.u64 %rd3, %rd1, %rd3;\n"                            \
	"  ld.global.nc.f64 %fd1, [%rd3];\n"               /* cs_i */                             \
	"  mul.wide.u32 %rd4, %r3, %r1;\n"                 /* r·Q */                              \
	"  mov.u32 %r9, %r5;\n"                            /* j */                                \
	"COL:\n"                                                                                  \
	"  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra NEXT;\n"                                       \
	"  cvt.u64.u32 %rd6, %r9;\n  add.u64 %rd6, %rd4, %rd6;\n"                                \
	"  mul.lo.u64 %rd6, %rd6, " SH ";\n"               /* (r·Q + j) in bytes */               \
	"  mov.f32 %f6, 0f00000000;\n"                                                            \
	"  setp.gt.u32 %p3, %r9, %r7;\n  @%p3 bra STORE;\n"                                      \
	"  add.u32 %r10, %r8, %r9;\n"                                                             \
	"  mul.wide.u32 %rd5, %r10, 8;\n  add.u64 %rd5, %rd1, %rd5;\n"                           \
	"  ld.global.nc.f64 %fd2, [%rd5];\n"               /* cs_j */                             \
	PTX_EXP_DIFF("%f6")                                                                       \
	"  @%p4 bra STORE;\n"                                                                     \
	"  add.u64 %rd8, %rd7, %rd6;\n"                                                           \
	LD("%f7", "%rd8")                                   /* m[r, j] */                          \
	"  mul.rn.f32 %f6, %f6, %f7;\n"                                                           \
	"STORE:\n"                                                                                \
	"  add.u64 %rd6, %rd2, %rd6;\n"                                                           \
	ST("%rd6", "%f6")                                                                         \
	"  add.u32 %r9, %r9, %r6;\n  bra COL;\n"                                                 \
	"NEXT:\n"                                                                                 \
	"  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                                 \
	"DONE:\n  ret;\n}\n"

// SegsumExpGrad: thread k = ctaid.x·ntid + tid of tile ctaid.y (grid-stride
// over tiles) sums its row (j ≤ k) and its column (i ≥ k) of l·dl in float
// and stores row − col in double. Params l, dl, out, Q, tiles.
#define PTX_SEGEXPGRAD(NAME, SH, LD)                                                          \
	".visible .entry " NAME "(.param .u64 a_l, .param .u64 a_dl, .param .u64 a_out, .param .u32 a_q,\n" \
	"  .param .u32 a_tiles)\n"                                                                \
	"{\n" SEGEXP_REGS                                                                         \
	"  ld.param.u64 %rd1, [a_l]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_dl]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_out]; cvta.to.global.u64 %rd3, %rd3;\n"                         \
	"  ld.param.u32 %r1, [a_q];\n"                                                            \
	"  ld.param.u32 %r2, [a_tiles];\n"                                                        \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %ntid.x;\n  mov.u32 %r5, %tid.x;\n"            \
	"  mad.lo.u32 %r6, %r3, %r4, %r5;\n"               /* k */                                \
	"  setp.ge.u32 %p1, %r6, %r1;\n  @%p1 bra DONE;\n"                                       \
	"  mov.u32 %r7, %ctaid.y;\n  mov.u32 %r8, %nctaid.y;\n"                                  \
	"  mul.wide.u32 %rd4, %r1, %r1;\n"                 /* Q² */                               \
	"  mul.wide.u32 %rd5, %r6, %r1;\n"                 /* k·Q */                              \
	"  cvt.u64.u32 %rd6, %r6;\n"                                                              \
	"  mul.wide.u32 %rd7, %r1, " SH ";\n"              /* a column step in bytes */           \
	"  cvt.u64.u32 %rd16, %r1;\n"                                                             \
	"TILE:\n"                                                                                 \
	"  setp.ge.u32 %p1, %r7, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  cvt.u64.u32 %rd8, %r7;\n  mul.lo.u64 %rd8, %rd8, %rd4;\n" /* tile·Q² */                \
	"  add.u64 %rd9, %rd8, %rd5;\n  mul.lo.u64 %rd9, %rd9, " SH ";\n"                        \
	"  add.u64 %rd10, %rd1, %rd9;\n  add.u64 %rd11, %rd2, %rd9;\n" /* row k */               \
	"  mov.f32 %f1, 0f00000000;\n  mov.u32 %r9, 0;\n"                                        \
	"RLOOP:\n"                                                                                \
	"  setp.gt.u32 %p2, %r9, %r6;\n  @%p2 bra RDONE;\n"                                      \
	LD("%f2", "%rd10") LD("%f3", "%rd11")                                                     \
	"  mul.rn.f32 %f4, %f2, %f3;\n  add.rn.f32 %f1, %f1, %f4;\n"                             \
	"  add.u64 %rd10, %rd10, " SH ";\n  add.u64 %rd11, %rd11, " SH ";\n"                     \
	"  add.u32 %r9, %r9, 1;\n  bra RLOOP;\n"                                                 \
	"RDONE:\n"                                                                                \
	"  mul.lo.u64 %rd13, %rd6, " SH ";\n  add.u64 %rd12, %rd9, %rd13;\n" /* (k, k) */        \
	"  add.u64 %rd13, %rd1, %rd12;\n  add.u64 %rd14, %rd2, %rd12;\n"                         \
	"  mov.f32 %f5, 0f00000000;\n  mov.u32 %r9, %r6;\n"                                      \
	"CLOOP:\n"                                                                                \
	"  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra CDONE;\n"                                      \
	LD("%f2", "%rd13") LD("%f3", "%rd14")                                                     \
	"  mul.rn.f32 %f4, %f2, %f3;\n  add.rn.f32 %f5, %f5, %f4;\n"                             \
	"  add.u64 %rd13, %rd13, %rd7;\n  add.u64 %rd14, %rd14, %rd7;\n"                         \
	"  add.u32 %r9, %r9, 1;\n  bra CLOOP;\n"                                                 \
	"CDONE:\n"                                                                                \
	"  cvt.f64.f32 %fd1, %f1;\n  cvt.f64.f32 %fd2, %f5;\n  sub.rn.f64 %fd3, %fd1, %fd2;\n"   \
	"  cvt.u64.u32 %rd15, %r7;\n  mul.lo.u64 %rd15, %rd15, %rd16;\n  add.u64 %rd15, %rd15, %rd6;\n" \
	"  shl.b64 %rd15, %rd15, 3;\n  add.u64 %rd15, %rd3, %rd15;\n"                            \
	"  st.global.f64 [%rd15], %fd3;\n"                                                        \
	"  add.u32 %r7, %r7, %r8;\n  bra TILE;\n"                                                \
	"DONE:\n  ret;\n}\n"

// The registers and shared memory of the block-reduction kernels below
// (MaskedDiffSq, CausalSoftmax): red[0..31] takes the warps' partial
// results, red[32] a result broadcast to the block.
#define BLOCK_REGS            \
	"  .reg .pred %p<8>;\n"   \
	"  .reg .b16 %h<4>;\n"    \
	"  .reg .b32 %r<40>;\n"   \
	"  .reg .b64 %rd<40>;\n"  \
	"  .reg .f32 %f<40>;\n"   \
	"  .reg .f64 %fd<12>;\n"  \
	"  .shared .align 4 .f32 red[33];\n"

// One butterfly step and the five of a warp's reduction of ACC with OP.
#define PTX_BFLY(ACC, OP, K) "  shfl.sync.bfly.b32 %f30, " ACC ", " K ", 31, -1;\n  " OP " " ACC ", " ACC ", %f30;\n"
#define PTX_WARP_REDUCE(ACC, OP) \
	PTX_BFLY(ACC, OP, "16") PTX_BFLY(ACC, OP, "8") PTX_BFLY(ACC, OP, "4") PTX_BFLY(ACC, OP, "2") PTX_BFLY(ACC, OP, "1")

// The block's reduction of ACC with OP (identity IDENT) into ACC of
// thread 0 (every thread of the block takes part; tid in %r5, ntid a
// multiple of 32 in %r6): warps by shuffles, then warp 0 over red[]. The
// other threads branch to B<L>, which the caller places after thread 0's
// use of the result, with a barrier after it (so red[] may be used again).
// %rd30 holds red's address. L makes the labels unique.
#define PTX_BLOCK_TO_THREAD0(ACC, OP, IDENT, L)                                                \
	PTX_WARP_REDUCE(ACC, OP)                                                                   \
	"  and.b32 %r30, %r5, 31;\n  shr.u32 %r31, %r5, 5;\n  mov.u64 %rd30, red;\n"             \
	"  setp.ne.u32 %p5, %r30, 0;\n  @%p5 bra W" L ";\n"                                       \
	"  mul.wide.u32 %rd31, %r31, 4;\n  add.u64 %rd31, %rd30, %rd31;\n  st.shared.f32 [%rd31], " ACC ";\n" \
	"W" L ":\n  bar.sync 0;\n"                                                                 \
	"  setp.ge.u32 %p5, %r5, 32;\n  @%p5 bra B" L ";\n"                                       \
	"  shr.u32 %r32, %r6, 5;\n  mov.f32 " ACC ", " IDENT ";\n"                                \
	"  setp.ge.u32 %p6, %r5, %r32;\n  @%p6 bra V" L ";\n"                                     \
	"  mul.wide.u32 %rd31, %r5, 4;\n  add.u64 %rd31, %rd30, %rd31;\n  ld.shared.f32 " ACC ", [%rd31];\n" \
	"V" L ":\n"                                                                                \
	PTX_WARP_REDUCE(ACC, OP)                                                                   \
	"  setp.ne.u32 %p6, %r5, 0;\n  @%p6 bra B" L ";\n"

// The block's sum of ACC, which thread 0 then stores with STORE.
#define PTX_BLOCK_SUM(ACC, STORE, L) \
	PTX_BLOCK_TO_THREAD0(ACC, "add.rn.f32", "0f00000000", L) STORE "B" L ":\n  bar.sync 0;\n"

// The block's reduction of ACC with OP into ACC of every thread, thread 0
// broadcasting it through red[32].
#define PTX_BLOCK_ALL(ACC, OP, IDENT, L)                                      \
	PTX_BLOCK_TO_THREAD0(ACC, OP, IDENT, L)                                   \
	"  st.shared.f32 [%rd30+128], " ACC ";\n"                                 \
	"B" L ":\n  bar.sync 0;\n"                                                \
	"  ld.shared.f32 " ACC ", [%rd30+128];\n  bar.sync 0;\n"

// The row loop of the MaskedDiffSq kernels: one block per row r = tile·T +
// i (grid-stride), params s (%rd1), cs (%rd2), a (%rd3) loaded by the
// caller, T in %r1, rows in %r2; per row i (%r7), tile·T (%r8), cs_i
// (%fd1) and the row's first element r·T (%rd4), then SETUP; per element
// j (%r9) a (%f7) and, for j ≤ i, L (%f5), s (%f4) and K = s·L (%f6), 0
// above.
#define PTX_MDS_ROW_HEAD(LDS, SH, SETUP)                                                       \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %nctaid.x;\n"                                  \
	"  mov.u32 %r5, %tid.x;\n  mov.u32 %r6, %ntid.x;\n"                                      \
	"ROW:\n"                                                                                  \
	"  setp.ge.u32 %p1, %r3, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  rem.u32 %r7, %r3, %r1;\n  sub.u32 %r8, %r3, %r7;\n"                                   \
	"  mul.wide.u32 %rd5, %r3, 8;\n  add.u64 %rd5, %rd2, %rd5;\n  ld.global.nc.f64 %fd1, [%rd5];\n" \
	"  mul.wide.u32 %rd4, %r3, %r1;\n"                                                       \
	"  mov.f32 %f10, 0f00000000;\n"                                                           \
	"  mov.u32 %r9, %r5;\n"                                                                   \
	SETUP                                                                                     \
	"COL:\n"                                                                                  \
	"  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra RED;\n"                                        \
	"  cvt.u64.u32 %rd7, %r9;\n  add.u64 %rd7, %rd4, %rd7;\n"                                \
	"  shl.b64 %rd8, %rd7, 2;\n  add.u64 %rd8, %rd3, %rd8;\n  ld.global.nc.f32 %f7, [%rd8];\n" \
	"  mul.lo.u64 %rd10, %rd7, " SH ";\n"              /* s's and ds's byte offset */         \
	"  mov.f32 %f6, 0f00000000;\n  mov.f32 %f5, 0f00000000;\n"                               \
	"  setp.gt.u32 %p3, %r9, %r7;\n  @%p3 bra UPPER;\n"                                      \
	"  add.u32 %r10, %r8, %r9;\n  mul.wide.u32 %rd9, %r10, 8;\n  add.u64 %rd9, %rd2, %rd9;\n" \
	"  ld.global.nc.f64 %fd2, [%rd9];\n"                                                      \
	PTX_EXP_DIFF("%f5")                                                                       \
	"  add.u64 %rd11, %rd1, %rd10;\n"                                                         \
	LDS("%f4", "%rd11")                                                                       \
	"  mul.rn.f32 %f6, %f4, %f5;\n"                                                           \
	"UPPER:\n"

// MaskedDiffSq: rows[r] = Σ_j (K − a)². Params s, cs, a, out, T, rows.
#define PTX_MDS(NAME, SH, LDS)                                                                \
	".visible .entry " NAME "(.param .u64 a_s, .param .u64 a_cs, .param .u64 a_a, .param .u64 a_out,\n" \
	"  .param .u32 a_q, .param .u32 a_rows)\n"                                                \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_s]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_cs]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_a]; cvta.to.global.u64 %rd3, %rd3;\n"                           \
	"  ld.param.u64 %rd20, [a_out]; cvta.to.global.u64 %rd20, %rd20;\n"                      \
	"  ld.param.u32 %r1, [a_q];\n  ld.param.u32 %r2, [a_rows];\n"                            \
	PTX_MDS_ROW_HEAD(LDS, SH, "")                                                             \
	"  sub.rn.f32 %f8, %f6, %f7;\n  fma.rn.f32 %f10, %f8, %f8, %f10;\n"                      \
	"  add.u32 %r9, %r9, %r6;\n  bra COL;\n"                                                 \
	"RED:\n"                                                                                  \
	PTX_BLOCK_SUM("%f10", "  mul.wide.u32 %rd21, %r3, 4;\n  add.u64 %rd21, %rd20, %rd21;\n  st.global.f32 [%rd21], %f10;\n", "S") \
	"  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                                 \
	"DONE:\n  ret;\n}\n"

// MaskedDiffSqGrad, rows: ds = 2·dy_r·(K − a)·L (0 above the diagonal) and
// dcs[r] = Σ_j 2·dy_r·(K − a)·K. Params s, cs, a, dy, ds, dcs, T, rows.
#define PTX_MDSG(NAME, SH, LDS, STS)                                                          \
	".visible .entry " NAME "(.param .u64 a_s, .param .u64 a_cs, .param .u64 a_a, .param .u64 a_dy,\n" \
	"  .param .u64 a_ds, .param .u64 a_dcs, .param .u32 a_q, .param .u32 a_rows)\n"        \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_s]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_cs]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_a]; cvta.to.global.u64 %rd3, %rd3;\n"                           \
	"  ld.param.u64 %rd20, [a_dy]; cvta.to.global.u64 %rd20, %rd20;\n"                       \
	"  ld.param.u64 %rd22, [a_ds]; cvta.to.global.u64 %rd22, %rd22;\n"                       \
	"  ld.param.u64 %rd23, [a_dcs]; cvta.to.global.u64 %rd23, %rd23;\n"                      \
	"  ld.param.u32 %r1, [a_q];\n  ld.param.u32 %r2, [a_rows];\n"                            \
	PTX_MDS_ROW_HEAD(LDS, SH,                                                                 \
		"  mul.wide.u32 %rd21, %r3, 4;\n  add.u64 %rd21, %rd20, %rd21;\n  ld.global.nc.f32 %f11, [%rd21];\n" \
		"  add.rn.f32 %f11, %f11, %f11;\n")           /* 2·dy_r, once per row */             \
	"  sub.rn.f32 %f8, %f6, %f7;\n  mul.rn.f32 %f12, %f11, %f8;\n" /* dK */                  \
	"  mul.rn.f32 %f9, %f12, %f5;\n"                   /* ds (0 above: L = 0) */              \
	"  fma.rn.f32 %f10, %f12, %f6, %f10;\n"            /* G = dK·K (0 above: K = 0) */        \
	"  add.u64 %rd12, %rd22, %rd10;\n"                                                        \
	STS("%rd12", "%f9")                                                                       \
	"  add.u32 %r9, %r9, %r6;\n  bra COL;\n"                                                 \
	"RED:\n"                                                                                  \
	PTX_BLOCK_SUM("%f10", "  cvt.f64.f32 %fd7, %f10;\n  mul.wide.u32 %rd24, %r3, 8;\n  add.u64 %rd24, %rd23, %rd24;\n  st.global.f64 [%rd24], %fd7;\n", "S") \
	"  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                                 \
	"DONE:\n  ret;\n}\n"

// MaskedDiffSqGrad, columns: thread k = ctaid.x·ntid + tid of tile ctaid.y
// (grid-stride over tiles) subtracts Σ_{r ≥ k} 2·dy_r·(K_rk − a_rk)·K_rk
// from dcs[k] (which the row kernel wrote). Params s, cs, a, dy, dcs, T,
// tiles.
#define PTX_MDSC(NAME, SH, LDS)                                                               \
	".visible .entry " NAME "(.param .u64 a_s, .param .u64 a_cs, .param .u64 a_a, .param .u64 a_dy,\n" \
	"  .param .u64 a_dcs, .param .u32 a_q, .param .u32 a_tiles)\n"                          \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_s]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_cs]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_a]; cvta.to.global.u64 %rd3, %rd3;\n"                           \
	"  ld.param.u64 %rd20, [a_dy]; cvta.to.global.u64 %rd20, %rd20;\n"                       \
	"  ld.param.u64 %rd23, [a_dcs]; cvta.to.global.u64 %rd23, %rd23;\n"                      \
	"  ld.param.u32 %r1, [a_q];\n  ld.param.u32 %r2, [a_tiles];\n"                           \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %ntid.x;\n  mov.u32 %r5, %tid.x;\n"            \
	"  mad.lo.u32 %r6, %r3, %r4, %r5;\n"               /* k */                                \
	"  setp.ge.u32 %p1, %r6, %r1;\n  @%p1 bra DONE;\n"                                       \
	"  mov.u32 %r7, %ctaid.y;\n  mov.u32 %r8, %nctaid.y;\n"                                  \
	"TILE:\n"                                                                                 \
	"  setp.ge.u32 %p1, %r7, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  mul.lo.u32 %r12, %r7, %r1;\n"                   /* tile·T */                           \
	"  add.u32 %r13, %r12, %r6;\n"                     /* tile·T + k */                       \
	"  mul.wide.u32 %rd5, %r13, 8;\n  add.u64 %rd5, %rd2, %rd5;\n  ld.global.nc.f64 %fd2, [%rd5];\n" /* cs_k */ \
	"  mov.f32 %f10, 0f00000000;\n  mov.u32 %r9, %r6;\n"  /* r */                            \
	"CLOOP:\n"                                                                                \
	"  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra CDONE;\n"                                      \
	"  add.u32 %r14, %r12, %r9;\n"                     /* tile·T + r */                       \
	"  mul.wide.u32 %rd6, %r14, 8;\n  add.u64 %rd6, %rd2, %rd6;\n  ld.global.nc.f64 %fd1, [%rd6];\n" /* cs_r */ \
	PTX_EXP_DIFF("%f5")                                                                       \
	"  mul.wide.u32 %rd7, %r14, %r1;\n  cvt.u64.u32 %rd8, %r6;\n  add.u64 %rd7, %rd7, %rd8;\n" /* (tile·T + r)·T + k */ \
	"  mul.lo.u64 %rd9, %rd7, " SH ";\n  add.u64 %rd9, %rd1, %rd9;\n"                        \
	LDS("%f4", "%rd9")                                                                        \
	"  shl.b64 %rd10, %rd7, 2;\n  add.u64 %rd10, %rd3, %rd10;\n  ld.global.nc.f32 %f7, [%rd10];\n" \
	"  mul.wide.u32 %rd11, %r14, 4;\n  add.u64 %rd11, %rd20, %rd11;\n  ld.global.nc.f32 %f11, [%rd11];\n" \
	"  add.rn.f32 %f11, %f11, %f11;\n"                                                        \
	"  mul.rn.f32 %f6, %f4, %f5;\n  sub.rn.f32 %f8, %f6, %f7;\n  mul.rn.f32 %f12, %f11, %f8;\n" \
	"  fma.rn.f32 %f10, %f12, %f6, %f10;\n"                                                   \
	"  add.u32 %r9, %r9, 1;\n  bra CLOOP;\n"                                                 \
	"CDONE:\n"                                                                                \
	"  mul.wide.u32 %rd12, %r13, 8;\n  add.u64 %rd12, %rd23, %rd12;\n"                       \
	"  ld.global.f64 %fd7, [%rd12];\n  cvt.f64.f32 %fd8, %f10;\n  sub.rn.f64 %fd7, %fd7, %fd8;\n" \
	"  st.global.f64 [%rd12], %fd7;\n"                                                        \
	"  add.u32 %r7, %r7, %r8;\n  bra TILE;\n"                                                \
	"DONE:\n  ret;\n}\n"

// z = scale·x[j] into %f4 for element j (%r9) of the row at %rd4; %rd8 is
// its element index.
#define PTX_CSM_LOAD(SH, LDX)                                                                  \
	"  cvt.u64.u32 %rd8, %r9;\n  add.u64 %rd8, %rd4, %rd8;\n"                                \
	"  mul.lo.u64 %rd9, %rd8, " SH ";\n  add.u64 %rd9, %rd1, %rd9;\n"                        \
	LDX("%f4", "%rd9")                                                                        \
	"  mul.rn.f32 %f4, %f4, %f20;\n"

// CausalSoftmax: one block per row r (grid-stride), i = r mod Tq, keys j ≤
// i + Tk − Tq; three passes over the row (max, sum of exponentials by
// ex2.approx, quotient). Params x, scale, p, Tk, Tq, rows.
#define PTX_CSM(NAME, SH, LDX)                                                                \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_sc, .param .u64 a_p, .param .u32 a_tk,\n" \
	"  .param .u32 a_tq, .param .u32 a_rows)\n"                                               \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_sc]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_p]; cvta.to.global.u64 %rd3, %rd3;\n"                           \
	"  ld.param.u32 %r1, [a_tk];\n  ld.param.u32 %r13, [a_tq];\n  ld.param.u32 %r2, [a_rows];\n" \
	"  ld.global.nc.f32 %f20, [%rd2];\n"                                                     \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %nctaid.x;\n"                                  \
	"  mov.u32 %r5, %tid.x;\n  mov.u32 %r6, %ntid.x;\n"                                      \
	"  sub.u32 %r14, %r1, %r13;\n"                     /* Tk − Tq */                          \
	"ROW:\n"                                                                                  \
	"  setp.ge.u32 %p1, %r3, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  rem.u32 %r7, %r3, %r13;\n  add.u32 %r15, %r7, %r14;\n" /* the last key seen */        \
	"  mul.wide.u32 %rd4, %r3, %r1;\n"                                                       \
	"  mov.f32 %f10, 0fFF800000;\n  mov.u32 %r9, %r5;\n"                                     \
	"P1:\n  setp.gt.u32 %p2, %r9, %r15;\n  @%p2 bra P1D;\n"                                  \
	PTX_CSM_LOAD(SH, LDX)                                                                     \
	"  max.f32 %f10, %f10, %f4;\n  add.u32 %r9, %r9, %r6;\n  bra P1;\n"                      \
	"P1D:\n"                                                                                  \
	PTX_BLOCK_ALL("%f10", "max.f32", "0fFF800000", "1")                                       \
	"  mov.f32 %f11, 0f00000000;\n  mov.u32 %r9, %r5;\n"                                     \
	"P2:\n  setp.gt.u32 %p2, %r9, %r15;\n  @%p2 bra P2D;\n"                                  \
	PTX_CSM_LOAD(SH, LDX)                                                                     \
	"  sub.rn.f32 %f5, %f4, %f10;\n  mul.rn.f32 %f5, %f5, 0f3FB8AA3B;\n  ex2.approx.f32 %f5, %f5;\n" \
	"  add.rn.f32 %f11, %f11, %f5;\n  add.u32 %r9, %r9, %r6;\n  bra P2;\n"                   \
	"P2D:\n"                                                                                  \
	PTX_BLOCK_ALL("%f11", "add.rn.f32", "0f00000000", "2")                                    \
	"  rcp.rn.f32 %f12, %f11;\n  mov.u32 %r9, %r5;\n"                                       \
	"P3:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra P3D;\n"                                   \
	"  mov.f32 %f6, 0f00000000;\n"                                                            \
	"  cvt.u64.u32 %rd8, %r9;\n  add.u64 %rd8, %rd4, %rd8;\n"                                \
	"  setp.gt.u32 %p3, %r9, %r15;\n  @%p3 bra P3S;\n"                                       \
	PTX_CSM_LOAD(SH, LDX)                                                                     \
	"  sub.rn.f32 %f5, %f4, %f10;\n  mul.rn.f32 %f5, %f5, 0f3FB8AA3B;\n  ex2.approx.f32 %f5, %f5;\n" \
	"  mul.rn.f32 %f6, %f5, %f12;\n"                                                          \
	"P3S:\n"                                                                                  \
	"  shl.b64 %rd10, %rd8, 2;\n  add.u64 %rd10, %rd3, %rd10;\n  st.global.f32 [%rd10], %f6;\n" \
	"  add.u32 %r9, %r9, %r6;\n  bra P3;\n"                                                  \
	"P3D:\n"                                                                                  \
	"  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                                 \
	"DONE:\n  ret;\n}\n"

// z = scale·s[j] into %f4 and u = scale·t[j] into %f5 for element j (%r9)
// of the row at %rd4 (s at %rd1, t at %rd2, scale in %f20); %rd8 is its
// element index.
#define PTX_SCE_LOAD(SHS, LDS, SHT, LDT)                                                       \
	"  cvt.u64.u32 %rd8, %r9;\n  add.u64 %rd8, %rd4, %rd8;\n"                                \
	"  mul.lo.u64 %rd9, %rd8, " SHS ";\n  add.u64 %rd9, %rd1, %rd9;\n"                       \
	LDS("%f4", "%rd9")                                                                        \
	"  mul.lo.u64 %rd10, %rd8, " SHT ";\n  add.u64 %rd10, %rd2, %rd10;\n"                    \
	LDT("%f5", "%rd10")                                                                       \
	"  mul.rn.f32 %f4, %f4, %f20;\n  mul.rn.f32 %f5, %f5, %f20;\n"

// The rows' loop head of the SoftCrossEntropy kernels: one block per row r
// (%r3, grid-stride), V in %r1, rows in %r2, the row's first element r·V
// in %rd4.
#define PTX_SCE_ROW                                                                            \
	"  ld.global.nc.f32 %f20, [%rd3];\n"                                                     \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %nctaid.x;\n"                                  \
	"  mov.u32 %r5, %tid.x;\n  mov.u32 %r6, %ntid.x;\n"                                      \
	"ROW:\n"                                                                                  \
	"  setp.ge.u32 %p1, %r3, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  mul.wide.u32 %rd4, %r3, %r1;\n"

// 2^(x·log2 e) of %f-register X into D (ex2.approx, as CausalSoftmax).
#define PTX_EXP(D, X) "  mul.rn.f32 " D ", " X ", 0f3FB8AA3B;\n  ex2.approx.f32 " D ", " D ";\n"

// SoftCrossEntropy: one block per row; pass 1 the maxima of z and u, pass
// 2 Σ e^(z − mz), Σ e^(u − mu) and Σ e^(u − mu)·(z − mz); thread 0 stores
// ce and stats. Params s, t, scale, ce, stats, V, rows.
#define PTX_SCE(NAME, SHS, LDS, SHT, LDT)                                                     \
	".visible .entry " NAME "(.param .u64 a_s, .param .u64 a_t, .param .u64 a_sc, .param .u64 a_ce,\n" \
	"  .param .u64 a_st, .param .u32 a_v, .param .u32 a_rows)\n"                             \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_s]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_t]; cvta.to.global.u64 %rd2, %rd2;\n"                           \
	"  ld.param.u64 %rd3, [a_sc]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd20, [a_ce]; cvta.to.global.u64 %rd20, %rd20;\n"                       \
	"  ld.param.u64 %rd21, [a_st]; cvta.to.global.u64 %rd21, %rd21;\n"                       \
	"  ld.param.u32 %r1, [a_v];\n  ld.param.u32 %r2, [a_rows];\n"                            \
	PTX_SCE_ROW                                                                               \
	"  mov.f32 %f10, 0fFF800000;\n  mov.f32 %f11, 0fFF800000;\n  mov.u32 %r9, %r5;\n"        \
	"P1:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra P1D;\n"                                   \
	PTX_SCE_LOAD(SHS, LDS, SHT, LDT)                                                          \
	"  max.f32 %f10, %f10, %f4;\n  max.f32 %f11, %f11, %f5;\n"                               \
	"  add.u32 %r9, %r9, %r6;\n  bra P1;\n"                                                  \
	"P1D:\n"                                                                                  \
	PTX_BLOCK_ALL("%f10", "max.f32", "0fFF800000", "1")                                       \
	PTX_BLOCK_ALL("%f11", "max.f32", "0fFF800000", "2")                                       \
	"  mov.f32 %f12, 0f00000000;\n  mov.f32 %f13, 0f00000000;\n  mov.f32 %f14, 0f00000000;\n" \
	"  mov.u32 %r9, %r5;\n"                                                                   \
	"P2:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra P2D;\n"                                   \
	PTX_SCE_LOAD(SHS, LDS, SHT, LDT)                                                          \
	"  sub.rn.f32 %f6, %f4, %f10;\n" PTX_EXP("%f7", "%f6") "  add.rn.f32 %f12, %f12, %f7;\n"  \
	"  sub.rn.f32 %f8, %f5, %f11;\n" PTX_EXP("%f9", "%f8") "  add.rn.f32 %f13, %f13, %f9;\n"  \
	"  fma.rn.f32 %f14, %f9, %f6, %f14;\n"                                                    \
	"  add.u32 %r9, %r9, %r6;\n  bra P2;\n"                                                  \
	"P2D:\n"                                                                                  \
	PTX_BLOCK_ALL("%f12", "add.rn.f32", "0f00000000", "3")                                    \
	PTX_BLOCK_ALL("%f13", "add.rn.f32", "0f00000000", "4")                                    \
	PTX_BLOCK_SUM("%f14",                                                                     \
		"  lg2.approx.f32 %f15, %f12;\n  mul.rn.f32 %f15, %f15, 0f3F317218;\n" /* ln Σ e^(z − mz) */ \
		"  add.rn.f32 %f16, %f15, %f10;\n"                                     /* lse z */     \
		"  lg2.approx.f32 %f17, %f13;\n  mul.rn.f32 %f17, %f17, 0f3F317218;\n"               \
		"  add.rn.f32 %f17, %f17, %f11;\n"                                     /* lse u */     \
		"  div.rn.f32 %f18, %f14, %f13;\n  sub.rn.f32 %f19, %f15, %f18;\n"    /* ce */        \
		"  mul.wide.u32 %rd22, %r3, 4;\n  add.u64 %rd22, %rd20, %rd22;\n  st.global.f32 [%rd22], %f19;\n" \
		"  mul.wide.u32 %rd23, %r3, 8;\n  add.u64 %rd23, %rd21, %rd23;\n"                    \
		"  st.global.f32 [%rd23], %f16;\n  st.global.f32 [%rd23+4], %f17;\n", "5")            \
	"  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                                 \
	"DONE:\n  ret;\n}\n"

// SoftCrossEntropyGrad: one block per row; ds = dce·scale·(e^(z − lse z) −
// e^(u − lse u)). Params s, t, scale, stats, dce, ds, V, rows.
#define PTX_SCEG(NAME, SHS, LDS, STS, SHT, LDT)                                               \
	".visible .entry " NAME "(.param .u64 a_s, .param .u64 a_t, .param .u64 a_sc, .param .u64 a_st,\n" \
	"  .param .u64 a_dce, .param .u64 a_ds, .param .u32 a_v, .param .u32 a_rows)\n"         \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_s]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_t]; cvta.to.global.u64 %rd2, %rd2;\n"                           \
	"  ld.param.u64 %rd3, [a_sc]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd21, [a_st]; cvta.to.global.u64 %rd21, %rd21;\n"                       \
	"  ld.param.u64 %rd20, [a_dce]; cvta.to.global.u64 %rd20, %rd20;\n"                      \
	"  ld.param.u64 %rd24, [a_ds]; cvta.to.global.u64 %rd24, %rd24;\n"                       \
	"  ld.param.u32 %r1, [a_v];\n  ld.param.u32 %r2, [a_rows];\n"                            \
	PTX_SCE_ROW                                                                               \
	"  mul.wide.u32 %rd23, %r3, 8;\n  add.u64 %rd23, %rd21, %rd23;\n"                        \
	"  ld.global.nc.f32 %f10, [%rd23];\n  ld.global.nc.f32 %f11, [%rd23+4];\n"               \
	"  mul.wide.u32 %rd22, %r3, 4;\n  add.u64 %rd22, %rd20, %rd22;\n  ld.global.nc.f32 %f12, [%rd22];\n" \
	"  mul.rn.f32 %f12, %f12, %f20;\n"                 /* dce·scale */                        \
	"  mov.u32 %r9, %r5;\n"                                                                   \
	"COL:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra NEXT;\n"                                 \
	PTX_SCE_LOAD(SHS, LDS, SHT, LDT)                                                          \
	"  sub.rn.f32 %f6, %f4, %f10;\n" PTX_EXP("%f7", "%f6")                                    \
	"  sub.rn.f32 %f8, %f5, %f11;\n" PTX_EXP("%f9", "%f8")                                    \
	"  sub.rn.f32 %f13, %f7, %f9;\n  mul.rn.f32 %f13, %f13, %f12;\n"                         \
	"  mul.lo.u64 %rd11, %rd8, " SHS ";\n  add.u64 %rd11, %rd24, %rd11;\n"                   \
	STS("%rd11", "%f13")                                                                      \
	"  add.u32 %r9, %r9, %r6;\n  bra COL;\n"                                                 \
	"NEXT:\n  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                          \
	"DONE:\n  ret;\n}\n"

// x (%f4), γ (%f5) and dy (%f6) of element j (%r9) of the row at %rd4 (x
// at %rd1, γ at %rd2, dy at %rd5), x̂ = (x − μ)·r into %f7 (μ in %f20, r in
// %f21) and g = dy·γ into %f8; %rd8 is the element's index.
#define PTX_LNG_LOAD(SH, LD)                                                                   \
	"  cvt.u64.u32 %rd8, %r9;\n  add.u64 %rd8, %rd4, %rd8;\n"                                \
	"  mul.lo.u64 %rd9, %rd8, " SH ";\n  add.u64 %rd10, %rd1, %rd9;\n"                       \
	LD("%f4", "%rd10")                                                                        \
	"  add.u64 %rd10, %rd5, %rd9;\n"                                                          \
	LD("%f6", "%rd10")                                                                        \
	"  mul.wide.u32 %rd11, %r9, " SH ";\n  add.u64 %rd11, %rd2, %rd11;\n"                    \
	LD("%f5", "%rd11")                                                                        \
	"  sub.rn.f32 %f7, %f4, %f20;\n  mul.rn.f32 %f7, %f7, %f21;\n"                           \
	"  mul.rn.f32 %f8, %f6, %f5;\n"

// LayerNormGrad, rows: one block per row r (grid-stride); pass 1 the sums
// of g and g·x̂, pass 2 dx = r·(g − mean g − x̂·mean(g·x̂)). Params x, γ,
// mean, invstd, dy, dx, D, rows.
#define PTX_LNG(NAME, SH, LD, ST)                                                             \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_g, .param .u64 a_mu, .param .u64 a_r,\n" \
	"  .param .u64 a_dy, .param .u64 a_dx, .param .u32 a_d, .param .u32 a_rows)\n"          \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd2, [a_g]; cvta.to.global.u64 %rd2, %rd2;\n"                           \
	"  ld.param.u64 %rd3, [a_mu]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd7, [a_r]; cvta.to.global.u64 %rd7, %rd7;\n"                           \
	"  ld.param.u64 %rd5, [a_dy]; cvta.to.global.u64 %rd5, %rd5;\n"                          \
	"  ld.param.u64 %rd6, [a_dx]; cvta.to.global.u64 %rd6, %rd6;\n"                          \
	"  ld.param.u32 %r1, [a_d];\n  ld.param.u32 %r2, [a_rows];\n"                            \
	"  cvt.rn.f32.u32 %f22, %r1;\n"                                                           \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %nctaid.x;\n"                                  \
	"  mov.u32 %r5, %tid.x;\n  mov.u32 %r6, %ntid.x;\n"                                      \
	"ROW:\n"                                                                                  \
	"  setp.ge.u32 %p1, %r3, %r2;\n  @%p1 bra DONE;\n"                                       \
	"  mul.wide.u32 %rd4, %r3, %r1;\n"                                                       \
	"  mul.wide.u32 %rd12, %r3, 4;\n  add.u64 %rd13, %rd3, %rd12;\n  ld.global.nc.f32 %f20, [%rd13];\n" \
	"  add.u64 %rd13, %rd7, %rd12;\n  ld.global.nc.f32 %f21, [%rd13];\n"                     \
	"  mov.f32 %f10, 0f00000000;\n  mov.f32 %f11, 0f00000000;\n  mov.u32 %r9, %r5;\n"        \
	"P1:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra P1D;\n"                                   \
	PTX_LNG_LOAD(SH, LD)                                                                      \
	"  add.rn.f32 %f10, %f10, %f8;\n  fma.rn.f32 %f11, %f8, %f7, %f11;\n"                    \
	"  add.u32 %r9, %r9, %r6;\n  bra P1;\n"                                                  \
	"P1D:\n"                                                                                  \
	PTX_BLOCK_ALL("%f10", "add.rn.f32", "0f00000000", "1")                                    \
	PTX_BLOCK_ALL("%f11", "add.rn.f32", "0f00000000", "2")                                    \
	"  div.rn.f32 %f10, %f10, %f22;\n  div.rn.f32 %f11, %f11, %f22;\n"                       \
	"  mov.u32 %r9, %r5;\n"                                                                   \
	"P2:\n  setp.ge.u32 %p2, %r9, %r1;\n  @%p2 bra P2D;\n"                                   \
	PTX_LNG_LOAD(SH, LD)                                                                      \
	"  sub.rn.f32 %f9, %f8, %f10;\n  mul.rn.f32 %f13, %f7, %f11;\n  sub.rn.f32 %f9, %f9, %f13;\n" \
	"  mul.rn.f32 %f9, %f9, %f21;\n"                                                          \
	"  add.u64 %rd10, %rd6, %rd9;\n"                                                          \
	ST("%rd10", "%f9")                                                                        \
	"  add.u32 %r9, %r9, %r6;\n  bra P2;\n"                                                  \
	"P2D:\n  add.u32 %r3, %r3, %r4;\n  bra ROW;\n"                                           \
	"DONE:\n  ret;\n}\n"

// LayerNormGrad, columns: thread c = ctaid.x·ntid + tid of chunk p =
// ctaid.y sums dy·x̂ and dy over rows [p·per, (p+1)·per) into dgp and dbp
// [p, c]. Params x, mean, invstd, dy, dgp, dbp, D, rows, per.
#define PTX_LNGC(NAME, SH, LD)                                                                \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_mu, .param .u64 a_r, .param .u64 a_dy,\n" \
	"  .param .u64 a_dgp, .param .u64 a_dbp, .param .u32 a_d, .param .u32 a_rows, .param .u32 a_per)\n" \
	"{\n" BLOCK_REGS                                                                            \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                           \
	"  ld.param.u64 %rd3, [a_mu]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd7, [a_r]; cvta.to.global.u64 %rd7, %rd7;\n"                           \
	"  ld.param.u64 %rd5, [a_dy]; cvta.to.global.u64 %rd5, %rd5;\n"                          \
	"  ld.param.u64 %rd14, [a_dgp]; cvta.to.global.u64 %rd14, %rd14;\n"                      \
	"  ld.param.u64 %rd15, [a_dbp]; cvta.to.global.u64 %rd15, %rd15;\n"                      \
	"  ld.param.u32 %r1, [a_d];\n  ld.param.u32 %r2, [a_rows];\n  ld.param.u32 %r13, [a_per];\n" \
	"  mov.u32 %r3, %ctaid.x;\n  mov.u32 %r4, %ntid.x;\n  mov.u32 %r5, %tid.x;\n"            \
	"  mad.lo.u32 %r7, %r3, %r4, %r5;\n"               /* c */                                \
	"  setp.ge.u32 %p1, %r7, %r1;\n  @%p1 bra DONE;\n"                                       \
	"  mov.u32 %r8, %ctaid.y;\n"                       /* chunk p */                          \
	"  mul.lo.u32 %r10, %r8, %r13;\n"                  /* row = p·per */                      \
	"  add.u32 %r11, %r10, %r13;\n  min.u32 %r11, %r11, %r2;\n" /* end */                     \
	"  mov.f32 %f10, 0f00000000;\n  mov.f32 %f11, 0f00000000;\n"                             \
	"RLOOP:\n  setp.ge.u32 %p2, %r10, %r11;\n  @%p2 bra RDONE;\n"                            \
	"  mul.wide.u32 %rd12, %r10, 4;\n  add.u64 %rd13, %rd3, %rd12;\n  ld.global.nc.f32 %f20, [%rd13];\n" \
	"  add.u64 %rd13, %rd7, %rd12;\n  ld.global.nc.f32 %f21, [%rd13];\n"                     \
	"  mad.lo.u32 %r12, %r10, %r1, %r7;\n"             /* row·D + c */                        \
	"  mul.wide.u32 %rd9, %r12, " SH ";\n  add.u64 %rd10, %rd1, %rd9;\n"                     \
	LD("%f4", "%rd10")                                                                        \
	"  add.u64 %rd10, %rd5, %rd9;\n"                                                          \
	LD("%f6", "%rd10")                                                                        \
	"  sub.rn.f32 %f7, %f4, %f20;\n  mul.rn.f32 %f7, %f7, %f21;\n"                           \
	"  fma.rn.f32 %f10, %f6, %f7, %f10;\n  add.rn.f32 %f11, %f11, %f6;\n"                    \
	"  add.u32 %r10, %r10, 1;\n  bra RLOOP;\n"                                               \
	"RDONE:\n"                                                                                \
	"  mad.lo.u32 %r14, %r8, %r1, %r7;\n"              /* p·D + c */                          \
	"  mul.wide.u32 %rd16, %r14, 4;\n"                                                       \
	"  add.u64 %rd17, %rd14, %rd16;\n  st.global.f32 [%rd17], %f10;\n"                       \
	"  add.u64 %rd17, %rd15, %rd16;\n  st.global.f32 [%rd17], %f11;\n"                       \
	"DONE:\n  ret;\n}\n"

// σ(z) into %f5 and σ(−z) into %f6 for z in %f2, from e = 2^(−|z|·log2 e)
// (ex2.approx), as the host loop.
#define PTX_SILU_SIG                                                                         \
	"  abs.f32 %f3, %f2;\n  neg.f32 %f3, %f3;\n  mul.rn.f32 %f3, %f3, 0f3FB8AA3B;\n"        \
	"  ex2.approx.f32 %f3, %f3;\n"                                                          \
	"  add.rn.f32 %f4, %f3, 0f3F800000;\n  rcp.rn.f32 %f4, %f4;\n  mul.rn.f32 %f7, %f3, %f4;\n" \
	"  setp.lt.f32 %p2, %f2, 0f00000000;\n  selp.f32 %f5, %f7, %f4, %p2;\n  selp.f32 %f6, %f4, %f7, %p2;\n"

// SiluMulGrad's dy = d·z·σ(z) into %f10 and dz = d·y·σ(z)·(1 + z·σ(−z))
// into %f12, for y %f1, z %f2 and d %f9 after PTX_SILU_SIG.
#define PTX_SILU_GRAD                                                                        \
	"  mul.rn.f32 %f10, %f9, %f2;\n  mul.rn.f32 %f10, %f10, %f5;\n"                         \
	"  fma.rn.f32 %f11, %f2, %f6, 0f3F800000;\n"                                            \
	"  mul.rn.f32 %f12, %f9, %f1;\n  mul.rn.f32 %f12, %f12, %f5;\n  mul.rn.f32 %f12, %f12, %f11;\n"

// SiluMul: out = y·z·σ(z), grid-stride. Params y, z, out, n.
#define PTX_SILUMUL(NAME, SHIFT, LD, ST)                                                     \
	".visible .entry " NAME "(.param .u64 a_y, .param .u64 a_z, .param .u64 a_o, .param .u64 a_n)\n" \
	"{\n" BLOCK_REGS                                                                           \
	"  ld.param.u64 %rd1, [a_y]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd2, [a_z]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_o]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd9, [a_n];\n"                                                         \
	PTX_LOOP_HEAD                                                                            \
	"  shl.b64 %rd13, %rd10, " SHIFT ";\n"                                                  \
	"  add.u64 %rd14, %rd1, %rd13;\n" LD("%f1", "%rd14")                                    \
	"  add.u64 %rd15, %rd2, %rd13;\n" LD("%f2", "%rd15")                                    \
	PTX_SILU_SIG                                                                             \
	"  mul.rn.f32 %f8, %f1, %f2;\n  mul.rn.f32 %f8, %f8, %f5;\n"                            \
	"  add.u64 %rd16, %rd3, %rd13;\n" ST("%rd16", "%f8")                                    \
	PTX_LOOP_TAIL

// SiluMulGrad: dy = d·z·σ(z), dz = d·y·σ(z)·(1 + z·σ(−z)). Params y, z, d,
// dy, dz, n.
#define PTX_SILUMULGRAD(NAME, SHIFT, LD, ST)                                                 \
	".visible .entry " NAME "(.param .u64 a_y, .param .u64 a_z, .param .u64 a_d, .param .u64 a_dy,\n" \
	"  .param .u64 a_dz, .param .u64 a_n)\n"                                                \
	"{\n" BLOCK_REGS                                                                           \
	"  ld.param.u64 %rd1, [a_y]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd2, [a_z]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_d]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd4, [a_dy]; cvta.to.global.u64 %rd4, %rd4;\n"                         \
	"  ld.param.u64 %rd5, [a_dz]; cvta.to.global.u64 %rd5, %rd5;\n"                         \
	"  ld.param.u64 %rd9, [a_n];\n"                                                         \
	PTX_LOOP_HEAD                                                                            \
	"  shl.b64 %rd13, %rd10, " SHIFT ";\n"                                                  \
	"  add.u64 %rd14, %rd1, %rd13;\n" LD("%f1", "%rd14")                                    \
	"  add.u64 %rd15, %rd2, %rd13;\n" LD("%f2", "%rd15")                                    \
	"  add.u64 %rd16, %rd3, %rd13;\n" LD("%f9", "%rd16")                                    \
	PTX_SILU_SIG                                                                             \
	PTX_SILU_GRAD                                                                            \
	"  add.u64 %rd17, %rd4, %rd13;\n" ST("%rd17", "%f10")                                   \
	"  add.u64 %rd18, %rd5, %rd13;\n" ST("%rd18", "%f12")                                   \
	PTX_LOOP_TAIL

// GateSkip's operands at element i (%rd10) into %f1 = ROUND(y + ROUND(x·
// d[c/P])) and %f2 = ROUND(z + zb[c]), c = i mod C: pointers y %rd1, z
// %rd2, x %rd3, d %rd4, zb %rd5, C %rd20 and P %rd21; %rd13 the element's
// byte offset afterwards. ROUND is defined with Rotary's kernels below.
#define PTX_GATE_OPERANDS(SHIFT, LD, ROUND)                                                  \
	"  shl.b64 %rd13, %rd10, " SHIFT ";\n"                                                  \
	"  rem.u64 %rd22, %rd10, %rd20;\n  div.u64 %rd23, %rd22, %rd21;\n"  /* c, h */          \
	"  shl.b64 %rd22, %rd22, " SHIFT ";\n  shl.b64 %rd23, %rd23, " SHIFT ";\n"             \
	"  add.u64 %rd14, %rd1, %rd13;\n" LD("%f1", "%rd14")                /* y */             \
	"  add.u64 %rd15, %rd3, %rd13;\n" LD("%f8", "%rd15")                /* x */             \
	"  add.u64 %rd16, %rd4, %rd23;\n" LD("%f9", "%rd16")                /* d[h] */          \
	"  mul.rn.f32 %f8, %f8, %f9;\n" ROUND("%f8")                                            \
	"  add.rn.f32 %f1, %f1, %f8;\n" ROUND("%f1")                                            \
	"  add.u64 %rd14, %rd2, %rd13;\n" LD("%f2", "%rd14")                /* z */             \
	"  add.u64 %rd15, %rd5, %rd22;\n" LD("%f9", "%rd15")                /* zb[c] */         \
	"  add.rn.f32 %f2, %f2, %f9;\n" ROUND("%f2")

#define PTX_GATE_PARAMS                                                                      \
	"  ld.param.u64 %rd1, [a_y]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd2, [a_z]; cvta.to.global.u64 %rd2, %rd2;\n"                          \
	"  ld.param.u64 %rd3, [a_x]; cvta.to.global.u64 %rd3, %rd3;\n"                          \
	"  ld.param.u64 %rd4, [a_d]; cvta.to.global.u64 %rd4, %rd4;\n"                          \
	"  ld.param.u64 %rd5, [a_zb]; cvta.to.global.u64 %rd5, %rd5;\n"                         \
	"  ld.param.u64 %rd9, [a_n];\n"                                                         \
	"  ld.param.u32 %r5, [a_c];\n  cvt.u64.u32 %rd20, %r5;\n"                               \
	"  ld.param.u32 %r6, [a_p];\n  cvt.u64.u32 %rd21, %r6;\n"

// GateSkip: out = SiluMul(a, b) of PTX_GATE_OPERANDS. Params y, z, x, d,
// zb, out, n, C, P.
#define PTX_GATESKIP(NAME, SHIFT, LD, ST, ROUND)                                             \
	".visible .entry " NAME "(.param .u64 a_y, .param .u64 a_z, .param .u64 a_x, .param .u64 a_d,\n" \
	"  .param .u64 a_zb, .param .u64 a_o, .param .u64 a_n, .param .u32 a_c, .param .u32 a_p)\n" \
	"{\n" BLOCK_REGS PTX_GATE_PARAMS                                                          \
	"  ld.param.u64 %rd6, [a_o]; cvta.to.global.u64 %rd6, %rd6;\n"                          \
	PTX_LOOP_HEAD                                                                            \
	PTX_GATE_OPERANDS(SHIFT, LD, ROUND)                                                      \
	PTX_SILU_SIG                                                                             \
	"  mul.rn.f32 %f8, %f1, %f2;\n  mul.rn.f32 %f8, %f8, %f5;\n"                            \
	"  add.u64 %rd16, %rd6, %rd13;\n" ST("%rd16", "%f8")                                    \
	PTX_LOOP_TAIL

// GateSkipGrad: da and db of SiluMulGrad(a, b, g). Params y, z, x, d, zb,
// g, da, db, n, C, P.
#define PTX_GATESKIPGRAD(NAME, SHIFT, LD, ST, ROUND)                                         \
	".visible .entry " NAME "(.param .u64 a_y, .param .u64 a_z, .param .u64 a_x, .param .u64 a_d,\n" \
	"  .param .u64 a_zb, .param .u64 a_g, .param .u64 a_da, .param .u64 a_db, .param .u64 a_n,\n" \
	"  .param .u32 a_c, .param .u32 a_p)\n"                                                 \
	"{\n" BLOCK_REGS PTX_GATE_PARAMS                                                          \
	"  ld.param.u64 %rd6, [a_g]; cvta.to.global.u64 %rd6, %rd6;\n"                          \
	"  ld.param.u64 %rd7, [a_da]; cvta.to.global.u64 %rd7, %rd7;\n"                         \
	"  ld.param.u64 %rd8, [a_db]; cvta.to.global.u64 %rd8, %rd8;\n"                         \
	PTX_LOOP_HEAD                                                                            \
	PTX_GATE_OPERANDS(SHIFT, LD, ROUND)                                                      \
	"  add.u64 %rd16, %rd6, %rd13;\n" LD("%f9", "%rd16")                /* g */             \
	PTX_SILU_SIG                                                                             \
	PTX_SILU_GRAD                                                                            \
	"  add.u64 %rd17, %rd7, %rd13;\n" ST("%rd17", "%f10")                                   \
	"  add.u64 %rd18, %rd8, %rd13;\n" ST("%rd18", "%f12")                                   \
	PTX_LOOP_TAIL

// Rotary: one element per thread step over n = B·T·H·P (32-bit indices):
// c = i mod P, t = (i / P / H) mod T; below R, y = ROUND(ROUND(x_c·cos) +
// ROUND(r_c·sin)) with r the rotated half, each ROUND to the element type
// as the stock ops round; from R on, y = x. Params x, cos, sin, y, P, R,
// H, T, n.
#define ROUND_NONE(f) ""
#define ROUND_BF16(f) "  cvt.rn.bf16.f32 %h2, " f ";\n  cvt.u32.u16 %r20, %h2;\n  shl.b32 %r20, %r20, 16;\n  mov.b32 " f ", %r20;\n"
#define PTX_ROTARY(NAME, SH, LD, ST, ROUND)                                                  \
	".visible .entry " NAME "(.param .u64 a_x, .param .u64 a_cos, .param .u64 a_sin, .param .u64 a_y,\n" \
	"  .param .u32 a_P, .param .u32 a_R, .param .u32 a_H, .param .u32 a_T, .param .u32 a_n)\n" \
	"{\n" CONV_REGS                                                                          \
	"  ld.param.u64 %rd1, [a_x]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd2, [a_cos]; cvta.to.global.u64 %rd2, %rd2;\n"                        \
	"  ld.param.u64 %rd3, [a_sin]; cvta.to.global.u64 %rd3, %rd3;\n"                        \
	"  ld.param.u64 %rd4, [a_y]; cvta.to.global.u64 %rd4, %rd4;\n"                          \
	"  ld.param.u32 %r10, [a_P];\n"                                                         \
	"  ld.param.u32 %r11, [a_R];\n"                                                         \
	"  ld.param.u32 %r12, [a_H];\n"                                                         \
	"  ld.param.u32 %r14, [a_T];\n"                                                         \
	"  ld.param.u32 %r13, [a_n];\n"                                                         \
	"  shr.u32 %r15, %r11, 1;\n"                       /* R/2 */                            \
	PTX_ROW_LOOP_HEAD                                   /* c %r7, row %r8 */                 \
	"  mul.wide.u32 %rd10, %r5, " SH ";\n  add.u64 %rd11, %rd1, %rd10;\n"                  \
	LD("%f1", "%rd11")                                  /* x_c */                            \
	"  setp.ge.u32 %p2, %r7, %r11;\n  @%p2 bra STORE;\n" /* c ≥ R: x as it is */            \
	"  div.u32 %r9, %r8, %r12;\n  rem.u32 %r9, %r9, %r14;\n" /* t */                        \
	"  mad.lo.u32 %r16, %r9, %r11, %r7;\n"             /* t·R + c */                        \
	"  mul.wide.u32 %rd12, %r16, " SH ";\n"                                                  \
	"  add.u64 %rd13, %rd2, %rd12;\n" LD("%f2", "%rd13") /* cos */                          \
	"  add.u64 %rd13, %rd3, %rd12;\n" LD("%f3", "%rd13") /* sin */                          \
	"  setp.lt.u32 %p3, %r7, %r15;\n"                                                        \
	"  @%p3 add.u32 %r17, %r5, %r15;\n  @!%p3 sub.u32 %r17, %r5, %r15;\n" /* the partner */ \
	"  mul.wide.u32 %rd14, %r17, " SH ";\n  add.u64 %rd14, %rd1, %rd14;\n"                 \
	LD("%f4", "%rd14")                                                                       \
	"  @%p3 neg.f32 %f4, %f4;\n"                       /* r_c */                            \
	"  mul.rn.f32 %f5, %f1, %f2;\n" ROUND("%f5")                                            \
	"  mul.rn.f32 %f6, %f4, %f3;\n" ROUND("%f6")                                            \
	"  add.rn.f32 %f1, %f5, %f6;\n"                                                          \
	"STORE:\n"                                                                               \
	"  add.u64 %rd15, %rd4, %rd10;\n" ST("%rd15", "%f1")                                    \
	"  add.u32 %r5, %r5, %r6;\n  bra LOOP;\n"                                                \
	"DONE:\n  ret;\n}\n"

// Residual: out = (p0 [+ p1]) + h in float, each part float or bfloat16.
// Params h, p0, p1, out, n and flags: bit 0 p0 is bfloat16, bit 1 p1 is,
// bit 2 p1 is given. (The branches are uniform over the launch.)
#define PTX_RESIDUAL_PART(P, PTR, F, L)                                                      \
	"  @" P " bra " L "B;\n"                                                                  \
	"  add.u64 %rd15, " PTR ", %rd13;\n" LD_F32(F, "%rd15") "  bra " L "D;\n"               \
	L "B:\n  add.u64 %rd15, " PTR ", %rd14;\n" LD_BF16(F, "%rd15")                           \
	L "D:\n"
#define PTX_RESIDUAL(NAME)                                                                   \
	".visible .entry " NAME "(.param .u64 a_h, .param .u64 a_p0, .param .u64 a_p1, .param .u64 a_o,\n" \
	"  .param .u64 a_n, .param .u32 a_flags)\n"                                               \
	"{\n" BLOCK_REGS                                                                           \
	"  ld.param.u64 %rd1, [a_h]; cvta.to.global.u64 %rd1, %rd1;\n"                          \
	"  ld.param.u64 %rd2, [a_p0]; cvta.to.global.u64 %rd2, %rd2;\n"                         \
	"  ld.param.u64 %rd3, [a_p1]; cvta.to.global.u64 %rd3, %rd3;\n"                         \
	"  ld.param.u64 %rd4, [a_o]; cvta.to.global.u64 %rd4, %rd4;\n"                          \
	"  ld.param.u64 %rd9, [a_n];\n"                                                         \
	"  ld.param.u32 %r5, [a_flags];\n"                                                      \
	"  and.b32 %r6, %r5, 1;\n  setp.ne.u32 %p2, %r6, 0;\n"    /* p0 bfloat16 */             \
	"  and.b32 %r6, %r5, 2;\n  setp.ne.u32 %p3, %r6, 0;\n"    /* p1 bfloat16 */             \
	"  and.b32 %r6, %r5, 4;\n  setp.eq.u32 %p4, %r6, 0;\n"    /* no p1 */                   \
	PTX_LOOP_HEAD                                                                            \
	"  shl.b64 %rd13, %rd10, 2;\n  shl.b64 %rd14, %rd10, 1;\n" /* float and bfloat16 offsets */ \
	PTX_RESIDUAL_PART("%p2", "%rd2", "%f1", "P0")                                            \
	"  @%p4 bra SUM;\n"                                                                      \
	PTX_RESIDUAL_PART("%p3", "%rd3", "%f2", "P1")                                            \
	"  add.rn.f32 %f1, %f1, %f2;\n"                                                          \
	"SUM:\n"                                                                                 \
	"  add.u64 %rd16, %rd1, %rd13;\n" LD_F32("%f3", "%rd16")                                \
	"  add.rn.f32 %f1, %f1, %f3;\n"                                                          \
	"  add.u64 %rd16, %rd4, %rd13;\n" ST_F32("%rd16", "%f1")                                \
	PTX_LOOP_TAIL

// The head of each PTX module: PTX 7.0 for sm_80 (bfloat16 conversions)
// and later, 64-bit addresses.
#define PTX_MODULE_HEAD ".version 7.0\n.target sm_80\n.address_size 64\n"

const char mh_fused_ptx[] =
	PTX_MODULE_HEAD
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
	PTX_LOOP_TAIL
	PTX_CONV_FWD("mh_conv_f32", "4", LD_F32, ST_F32)
	PTX_CONV_FWD("mh_conv_bf16", "2", LD_BF16, ST_BF16)
	PTX_CONV_DX("mh_convdx_f32", "4", LD_F32, ST_F32)
	PTX_CONV_DX("mh_convdx_bf16", "2", LD_BF16, ST_BF16)
	PTX_CONV_DW("mh_convdw_f32", "4", LD_F32)
	PTX_CONV_DW("mh_convdw_bf16", "2", LD_BF16)
	PTX_COPY("mh_copy_b32", "4", MOV_B32)
	PTX_COPY("mh_copy_b16", "2", MOV_B16)
	PTX_SEGEXP("mh_segexp_f32", "4", LD_F32, ST_F32)
	PTX_SEGEXP("mh_segexp_bf16", "2", LD_BF16, ST_BF16)
	PTX_SEGEXPGRAD("mh_segexpgrad_f32", "4", LD_F32)
	PTX_SEGEXPGRAD("mh_segexpgrad_bf16", "2", LD_BF16);

// Stage 1's [T, T] kernels (MaskedDiffSq and its gradient, CausalSoftmax),
// a module of their own: a module that the driver cannot compile fails all
// its kernels, and these need not take the others with them.
const char mh_matrix_ptx[] =
	PTX_MODULE_HEAD
	PTX_MDS("mh_mds_f32", "4", LD_F32)
	PTX_MDS("mh_mds_bf16", "2", LD_BF16)
	PTX_MDSG("mh_mdsg_f32", "4", LD_F32, ST_F32)
	PTX_MDSG("mh_mdsg_bf16", "2", LD_BF16, ST_BF16)
	PTX_MDSC("mh_mdsc_f32", "4", LD_F32)
	PTX_MDSC("mh_mdsc_bf16", "2", LD_BF16)
	PTX_CSM("mh_csm_f32", "4", LD_F32)
	PTX_CSM("mh_csm_bf16", "2", LD_BF16);

// Stage 3's soft cross-entropy kernels (SoftCrossEntropy and its
// gradient), a module of their own for the same reason.
const char mh_loss_ptx[] =
	PTX_MODULE_HEAD
	PTX_SCE("mh_sce_f_f", "4", LD_F32, "4", LD_F32)
	PTX_SCE("mh_sce_f_b", "4", LD_F32, "2", LD_BF16)
	PTX_SCE("mh_sce_b_f", "2", LD_BF16, "4", LD_F32)
	PTX_SCE("mh_sce_b_b", "2", LD_BF16, "2", LD_BF16)
	PTX_SCEG("mh_sceg_f_f", "4", LD_F32, ST_F32, "4", LD_F32)
	PTX_SCEG("mh_sceg_f_b", "4", LD_F32, ST_F32, "2", LD_BF16)
	PTX_SCEG("mh_sceg_b_f", "2", LD_BF16, ST_BF16, "4", LD_F32)
	PTX_SCEG("mh_sceg_b_b", "2", LD_BF16, ST_BF16, "2", LD_BF16);

// The layers' kernels (LayerNormalization's gradient, the SiLU gate and
// its gradient, the residual update, the rotary embedding), a module of
// their own.
const char mh_layer_ptx[] =
	PTX_MODULE_HEAD
	PTX_LNG("mh_lng_f32", "4", LD_F32, ST_F32)
	PTX_LNG("mh_lng_bf16", "2", LD_BF16, ST_BF16)
	PTX_LNGC("mh_lngc_f32", "4", LD_F32)
	PTX_LNGC("mh_lngc_bf16", "2", LD_BF16)
	PTX_SILUMUL("mh_silumul_f32", "2", LD_F32, ST_F32)
	PTX_SILUMUL("mh_silumul_bf16", "1", LD_BF16, ST_BF16)
	PTX_SILUMULGRAD("mh_silumulgrad_f32", "2", LD_F32, ST_F32)
	PTX_SILUMULGRAD("mh_silumulgrad_bf16", "1", LD_BF16, ST_BF16)
	PTX_RESIDUAL("mh_residual")
	PTX_ROTARY("mh_rotary_f32", "4", LD_F32, ST_F32, ROUND_NONE)
	PTX_ROTARY("mh_rotary_bf16", "2", LD_BF16, ST_BF16, ROUND_BF16);

// The gate with its skip and bias (GateSkip, GateSkipGrad), a module of its
// own until its CUDA tests have run: a module the driver refused would
// take only these kernels with it.
const char mh_gate_ptx[] =
	PTX_MODULE_HEAD
	PTX_GATESKIP("mh_gateskip_f32", "2", LD_F32, ST_F32, ROUND_NONE)
	PTX_GATESKIP("mh_gateskip_bf16", "1", LD_BF16, ST_BF16, ROUND_BF16)
	PTX_GATESKIPGRAD("mh_gateskipgrad_f32", "2", LD_F32, ST_F32, ROUND_NONE)
	PTX_GATESKIPGRAD("mh_gateskipgrad_bf16", "1", LD_BF16, ST_BF16, ROUND_BF16);

// The modules' kernels, by index: mh_fused_ptx's, from kMdsF32 on
// mh_matrix_ptx's, from kSceFF on mh_loss_ptx's, from kLngF32 on
// mh_layer_ptx's, from kGateSkipF32 on mh_gate_ptx's.
enum { kAdamW, kGeluGradF32, kGeluGradBF16, kConvF32, kConvBF16, kConvDxF32, kConvDxBF16, kConvDwF32, kConvDwBF16, kCopyB32, kCopyB16, kSegExpF32, kSegExpBF16,
       kSegExpGradF32, kSegExpGradBF16, kMdsF32, kMdsBF16, kMdsgF32, kMdsgBF16, kMdscF32, kMdscBF16, kCsmF32, kCsmBF16,
       kSceFF, kSceFB, kSceBF, kSceBB, kScegFF, kScegFB, kScegBF, kScegBB,
       kLngF32, kLngBF16, kLngcF32, kLngcBF16, kSiluMulF32, kSiluMulBF16, kSiluMulGradF32, kSiluMulGradBF16, kResidual, kRotaryF32, kRotaryBF16, kGateSkipF32, kGateSkipBF16, kGateSkipGradF32, kGateSkipGradBF16, nKernels };
static const char *kernel_names[nKernels] = {"mh_adamw_f32", "mh_gelugrad_f32", "mh_gelugrad_bf16",
	"mh_conv_f32", "mh_conv_bf16", "mh_convdx_f32", "mh_convdx_bf16", "mh_convdw_f32", "mh_convdw_bf16", "mh_copy_b32", "mh_copy_b16", "mh_segexp_f32",
	"mh_segexp_bf16", "mh_segexpgrad_f32", "mh_segexpgrad_bf16", "mh_mds_f32", "mh_mds_bf16", "mh_mdsg_f32",
	"mh_mdsg_bf16", "mh_mdsc_f32", "mh_mdsc_bf16", "mh_csm_f32", "mh_csm_bf16", "mh_sce_f_f", "mh_sce_f_b", "mh_sce_b_f",
	"mh_sce_b_b", "mh_sceg_f_f", "mh_sceg_f_b", "mh_sceg_b_f", "mh_sceg_b_b", "mh_lng_f32", "mh_lng_bf16", "mh_lngc_f32",
	"mh_lngc_bf16", "mh_silumul_f32", "mh_silumul_bf16", "mh_silumulgrad_f32", "mh_silumulgrad_bf16", "mh_residual", "mh_rotary_f32", "mh_rotary_bf16", "mh_gateskip_f32", "mh_gateskip_bf16", "mh_gateskipgrad_f32",
	"mh_gateskipgrad_bf16"};

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
	int loaded[maxContexts][5]; // whether each module's kernels are in fn
} cu = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *const module_ptx[5] = {mh_fused_ptx, mh_matrix_ptx, mh_loss_ptx, mh_layer_ptx, mh_gate_ptx};
static const char *const module_name[5] = {"fused kernels'", "Stage 1 matrix kernels'", "soft cross-entropy kernels'",
                                           "layer kernels'", "gate kernels'"};
static int module_of(int id) { return id >= kGateSkipF32 ? 4 : id >= kLngF32 ? 3 : id >= kSceFF ? 2 : id >= kMdsF32; }

static const char *cu_error(int rc) {
	const char *s = NULL;
	if (cu.errstr) cu.errstr(rc, &s);
	return s ? s : "unknown CUDA driver error";
}

// cu_kernel returns kernel id in the calling thread's current CUDA context
// (the one the CUDA provider runs in), loading its PTX module once per
// context; NULL with msg filled on failure (a module that failed is tried
// again on the next call).
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
	int c = 0;
	while (c < cu.n && cu.ctx[c] != ctx) c++;
	if (c == cu.n) {
		if (cu.n == maxContexts) {
			snprintf(msg, len, "more than %d CUDA contexts", maxContexts);
			goto out;
		}
		cu.ctx[cu.n++] = ctx;
	}
	int m = module_of(id);
	if (!cu.loaded[c][m]) {
		void *mod = NULL;
		if ((rc = cu.load(&mod, module_ptx[m])) != 0) {
			snprintf(msg, len, "loading the %s PTX: %s", module_name[m], cu_error(rc));
			goto out;
		}
		for (int k = 0; k < nKernels; k++) {
			if (module_of(k) != m) continue;
			if ((rc = cu.func(&cu.fn[c][k], mod, kernel_names[k])) != 0) {
				snprintf(msg, len, "kernel %s: %s", kernel_names[k], cu_error(rc));
				goto out;
			}
		}
		cu.loaded[c][m] = 1;
	}
	fn = cu.fn[c][id];
out:
	pthread_mutex_unlock(&cu.mu);
	return fn;
}

// launch_blocks runs kernel id on a grid of gx × gy blocks of threads
// threads on stream; NULL or a message.
static const char *launch_blocks(int id, void *stream, size_t gx, size_t gy, unsigned threads, void **args) {
	static __thread char msg[320];
	void *fn = cu_kernel(id, msg, sizeof msg);
	if (fn == NULL) return msg;
	int rc = cu.launch(fn, (unsigned)gx, (unsigned)gy, 1, threads, 1, 1, 0, stream, args, NULL);
	if (rc != 0) {
		snprintf(msg, sizeof msg, "launching %s: %s", kernel_names[id], cu_error(rc));
		return msg;
	}
	return NULL;
}

// launch_grid runs kernel id on a grid of gx × gy blocks of 256 threads.
static const char *launch_grid(int id, void *stream, size_t gx, size_t gy, void **args) {
	return launch_blocks(id, stream, gx, gy, 256, args);
}

// launch runs kernel id grid-stride over n elements on stream.
static const char *launch(int id, void *stream, size_t n, void **args) {
	if (n == 0) return NULL;
	size_t blocks = (n + 255) / 256;
	return launch_grid(id, stream, blocks > 8192 ? 8192 : blocks, 1, args);
}

// ---- the ops ----------------------------------------------------------------

enum { maxInputs = 11, maxOutputs = 8 };

// same_as_first checks that inputs 1 … n−1 have input 0's element type and
// count.
static int same_as_first(const mh_op *k, const int *type, const size_t *count, size_t n, char *msg, size_t len) {
	for (size_t i = 1; i < n; i++) {
		if (type[i] != type[0] || count[i] != count[0]) {
			snprintf(msg, len, "%s: input %zu has element type %d and %zu elements; want input 0's type %d and %zu",
			         k->name, i, type[i], count[i], type[0], count[0]);
			return 1;
		}
	}
	return 0;
}

static int adamw_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                       char *msg, size_t len) {
	(void)dims; (void)rank;
	if (same_as_first(k, type, count, 4, msg, len)) return 1;
	if (type[4] != type[0] || count[4] != 8) {
		snprintf(msg, len, "AdamW: coef has element type %d and %zu elements; want type %d and 8", type[4], count[4],
		         type[0]);
		return 1;
	}
	return 0;
}

static int gelugrad_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                          char *msg, size_t len) {
	(void)dims; (void)rank;
	return same_as_first(k, type, count, 2, msg, len);
}

static int silumulgrad_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                             const size_t *rank, char *msg, size_t len) {
	(void)dims; (void)rank;
	return same_as_first(k, type, count, 3, msg, len);
}

// A host job: one host kernel over ranges of elements or rows, which ORT's
// intra-op thread pool runs in parallel (KernelContext_ParallelFor).
typedef struct host_job {
	void (*range)(const struct host_job *j, size_t i); // runs the i-th range
	const mh_op *op;
	int type; // the element type (SoftCrossEntropy: its (s, t) variant, sce_variant)
	void **in, **out;
	size_t n; // elementwise: the element count
	conv_dims d;
	const int64_t *widths; // CausalConv: its parts' widths
	size_t parts;          // CausalConv, Residual: the parts
	const int *types;      // Residual: the inputs' element types
	size_t dims4[4];       // Rotary: P, R, H, T
	size_t q, tq; // SegsumExp, MaskedDiffSq: the tile size Q; CausalSoftmax: Tk and Tq; SoftCrossEntropy: V;
	              // LayerNormGrad: D and the rows per chunk (n: the rows)
} host_job;

enum { elementsPerRange = 1 << 16 };

static void job_range(void *data, size_t i) {
	const host_job *j = data;
	j->range(j, i);
}

// par_for runs ranges 0 … total−1 of j; NULL or a message.
static const char *par_for(void **api, void *ctx, size_t total, host_job *j) {
	static __thread char msg[320];
	if (total == 0) return NULL;
	status s = API(mhKernelContext_ParallelFor, status (*)(void *, void (*)(void *, size_t), size_t, size_t, void *))(
		ctx, job_range, total, 0, j);
	if (s == NULL) return NULL;
	snprintf(msg, sizeof msg, "%s", API(mhGetErrorMessage, const char *(*)(status))(s));
	API(mhReleaseStatus, void (*)(status))(s);
	return msg;
}

static void elementwise_range(const host_job *j, size_t i) {
	size_t lo = i * elementsPerRange, hi = lo + elementsPerRange < j->n ? lo + elementsPerRange : j->n;
	j->op->host(j->type, lo, hi, j->in, j->out);
}

// elementwise_run is the host loop, or the op's CUDA kernel for the element
// type over the inputs, the outputs and the element count.
static const char *elementwise_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                                   int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)dims; (void)rank;
	if (!k->cuda) {
		host_job j = {.range = elementwise_range, .op = k, .type = type[0], .in = in, .out = out, .n = count[0]};
		return par_for(k->api, ctx, (count[0] + elementsPerRange - 1) / elementsPerRange, &j);
	}
	unsigned long long n = count[0];
	void *args[maxInputs + maxOutputs + 1];
	size_t a = 0;
	for (size_t i = 0; i < k->n_in; i++) args[a++] = &in[i];
	for (size_t j = 0; j < k->n_out; j++) args[a++] = &out[j];
	args[a] = &n;
	return launch(type[0] == typeBFloat16 ? k->kernel_bf16 : k->kernel_f32, stream, count[0], args);
}

// adamw_inplace_run is AdamW's host loop or kernel with p, m and v as its
// outputs too (AdamWInPlace): each element is read before it is written,
// by the same thread, so the update needs no second buffer.
static const char *adamw_inplace_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                                     int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)out;
	mh_op a = *k;
	a.n_out = 3;
	void *pmv[3] = {in[0], in[2], in[3]};
	return elementwise_run(&a, ctx, stream, n_in, type, count, dims, rank, in, pmv);
}

// empty_like_first is AdamWInPlace's output: [0] of input 0's type.
static mh_shape empty_like_first(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	(void)j; (void)dims; (void)rank;
	mh_shape s = {.type = type[0], .rank = 1, .dims = {0}};
	return s;
}

// conv_parts checks a CausalConv carrier (int64, [0, widths…]) against x's
// channels Cx and the conv's C: widths ≥ 1 that sum to Cx, a prefix of
// them summing to C (msg filled, nonzero on error).
static int conv_parts(const mh_op *k, int type, const int64_t *dims, size_t rank, int64_t Cx, int64_t C, char *msg,
                      size_t len) {
	int64_t sum = 0;
	int prefix = C == 0;
	for (size_t p = 1; p < rank; p++) {
		if (dims[p] < 1) break;
		sum += dims[p];
		prefix |= sum == C;
	}
	if (type != typeInt64 || rank < 2 || dims[0] != 0 || sum != Cx || !prefix) {
		snprintf(msg, len,
		         "%s: want the parts' carrier int64 [0, widths…] whose widths sum to x's %lld channels, the first "
		         "ones to the conv's %lld",
		         k->name, (long long)Cx, (long long)C);
		return 1;
	}
	return 0;
}

// CausalConv: x [B, T, Cx], w [C, 1, K ≤ 8], b [C] of one element type and
// the carrier. CausalConvGrad: x, w, the carrier and each part's dy [B, T,
// width] of x's type (op_compute has checked their number).
static int conv_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                      char *msg, size_t len) {
	int grad = k->var_in;
	size_t carrier = grad ? 2 : 3;
	if (rank[0] != 3 || rank[1] != 3 || dims[1][0] > dims[0][2] || dims[1][1] != 1 || dims[1][2] < 1 ||
	    dims[1][2] > 8 || type[1] != type[0] || (!grad && (type[2] != type[0] || rank[2] != 1 || dims[2][0] != dims[1][0]))) {
		snprintf(msg, len, "%s: want x [B, T, Cx], w [C ≤ Cx, 1, K ≤ 8]%s of one element type", k->name,
		         grad ? "" : " and b [C]");
		return 1;
	}
	if (conv_parts(k, type[carrier], dims[carrier], rank[carrier], dims[0][2], dims[1][0], msg, len)) return 1;
	for (size_t p = 0; grad && p + 1 < rank[carrier]; p++) {
		size_t i = 3 + p;
		if (type[i] != type[0] || rank[i] != 3 || dims[i][0] != dims[0][0] || dims[i][1] != dims[0][1] ||
		    dims[i][2] != dims[carrier][1 + p]) {
			snprintf(msg, len, "%s: part %zu's dy must be [B, T, %lld] of x's element type", k->name, p,
			         (long long)dims[carrier][1 + p]);
			return 1;
		}
	}
	if (k->cuda && (count[0] >= 0xffffffffu || (grad && dims[1][2] != 4))) {
		snprintf(msg, len, "%s: the CUDA kernel takes fewer than 2^32 elements%s", k->name, grad ? " and K = 4" : "");
		return 1;
	}
	return 0;
}

// conv_parts_of is the number of parts a CausalConv carrier lists (the op's
// variadic outputs or, for its gradient, dy inputs).
static size_t conv_parts_of(const mh_op *k, const size_t *rank) {
	size_t r = rank[k->var_in ? 2 : 3];
	return r >= 1 ? r - 1 : 0;
}

// CausalConv's outputs: part j [B, T, width j] of x's type. The widths are
// the carrier's dims.
static mh_shape conv_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	mh_shape o = {.type = type[0], .rank = 3};
	o.dims[0] = rank[0] == 3 ? dims[0][0] : -1;
	o.dims[1] = rank[0] == 3 ? dims[0][1] : -1;
	o.dims[2] = j + 1 < rank[3] ? dims[3][j + 1] : -1;
	return o;
}

// CausalConvGrad's outputs: dx like x, dwp [P, C, K] and dbp [P, C] in
// float (double for double); C and K unknown (−1) where w is not [C, 1, K]
// (the kernel then refuses the inputs).
static mh_shape conv_grad_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	mh_shape o = {.type = type[0], .rank = rank[0]};
	if (j == 0) {
		memcpy(o.dims, dims[0], rank[0] * sizeof(int64_t));
		return o;
	}
	o.type = type[0] == typeDouble ? typeDouble : typeFloat;
	o.dims[0] = convChunks;
	o.dims[1] = rank[1] == 3 ? dims[1][0] : -1;
	o.dims[2] = rank[1] == 3 ? dims[1][2] : -1;
	o.rank = j == 1 ? 3 : 2;
	return o;
}

// elem_size is the bytes of one element of the fused kernels' types.
static size_t elem_size(int type) { return type == typeDouble ? 8 : type == typeBFloat16 ? 2 : 4; }

// The conv's host ranges: rows [i·per, (i+1)·per) of every part for y and
// dx, and chunk i of the partial sums. j->d holds the conv's sizes and
// j->widths the parts' widths.
static void conv_fwd_range(const host_job *j, size_t i) {
	size_t r0 = i * j->d.per, r1 = r0 + j->d.per < j->d.rows ? r0 + j->d.per : j->d.rows;
	void **in = j->in;
	conv_dims d = j->d;
	size_t es = elem_size(j->type);
	for (size_t p = 0; p < j->parts; p++, d.off += d.W) {
		d.W = j->widths[p];
		if (d.off >= d.C) {
			copy_rows((const char *)in[0] + d.off * es, d.Cx, j->out[p], d.W, d.W, es, r0, r1);
			continue;
		}
		switch (j->type) {
		case typeDouble: conv_fwd_double(in[0], in[1], in[2], j->out[p], d, r0, r1); break;
		case typeBFloat16: conv_fwd_bf16(in[0], in[1], in[2], j->out[p], d, r0, r1); break;
		default: conv_fwd_float(in[0], in[1], in[2], j->out[p], d, r0, r1);
		}
	}
}

static void conv_grad_range(const host_job *j, size_t i) {
	size_t r0 = i * j->d.per, r1 = r0 + j->d.per < j->d.rows ? r0 + j->d.per : j->d.rows;
	void **in = j->in, **out = j->out;
	conv_dims d = j->d;
	size_t es = elem_size(j->type);
	for (size_t p = 0; p < j->parts; p++, d.off += d.W) {
		const void *dy = in[3 + p];
		d.W = j->widths[p];
		if (d.off >= d.C) {
			copy_rows(dy, d.W, (char *)out[0] + d.off * es, d.Cx, d.W, es, r0, r1);
			continue;
		}
		switch (j->type) {
		case typeDouble:
			conv_dx_double(in[1], dy, out[0], d, r0, r1);
			conv_dw_double(in[0], dy, out[1], out[2], d, i);
			break;
		case typeBFloat16:
			conv_dx_bf16(in[1], dy, out[0], d, r0, r1);
			conv_dw_bf16(in[0], dy, out[1], out[2], d, i);
			break;
		default:
			conv_dx_float(in[1], dy, out[0], d, r0, r1);
			conv_dw_float(in[0], dy, out[1], out[2], d, i);
		}
	}
}

static conv_dims conv_sizes(int64_t (*dims)[8]) {
	size_t rows = dims[0][0] * dims[0][1];
	return (conv_dims){.T = dims[0][1], .C = dims[1][0], .K = dims[1][2], .rows = rows,
	                   .per = (rows + convChunks - 1) / convChunks, .Cx = dims[0][2]};
}

// launch_copy runs the strided row copy of w-element rows (rows of them)
// from src (a row every ss elements) to dst (every ds).
static const char *launch_copy(int type, void *stream, const void *src, size_t ss, void *dst, size_t ds, size_t w,
                               size_t rows) {
	unsigned uw = w, uss = ss, uds = ds, un = rows * w;
	void *args[6] = {&src, &dst, &uw, &uss, &uds, &un};
	return launch(type == typeBFloat16 ? kCopyB16 : kCopyB32, stream, un, args);
}

static const char *conv_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                            int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)count;
	conv_dims d = conv_sizes(dims);
	size_t parts = conv_parts_of(k, rank);
	if (!k->cuda) {
		host_job j = {.range = conv_fwd_range, .op = k, .type = type[0], .in = in, .out = out, .d = d,
		              .widths = dims[3] + 1, .parts = parts};
		return par_for(k->api, ctx, convChunks, &j);
	}
	size_t es = elem_size(type[0]);
	for (size_t p = 0; p < parts; p++, d.off += d.W) {
		d.W = dims[3][1 + p];
		const char *err;
		if (d.off >= d.C) {
			err = launch_copy(type[0], stream, (const char *)in[0] + d.off * es, d.Cx, out[p], d.W, d.W, d.rows);
		} else {
			unsigned uw = d.W, ut = d.T, uk = d.K, un = d.rows * d.W, ucx = d.Cx, uoff = d.off;
			void *args[10] = {&in[0], &in[1], &in[2], &out[p], &uw, &ut, &uk, &un, &ucx, &uoff};
			err = launch(type[0] == typeBFloat16 ? kConvBF16 : kConvF32, stream, un, args);
		}
		if (err) return err;
	}
	return NULL;
}

// Each host range computes dx for its rows and the partial sums of its
// chunk: the same rows (per rows each, convChunks ranges).
static const char *conv_grad_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                                 int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)count;
	conv_dims d = conv_sizes(dims);
	size_t parts = conv_parts_of(k, rank);
	if (!k->cuda) {
		host_job j = {.range = conv_grad_range, .op = k, .type = type[0], .in = in, .out = out, .d = d,
		              .widths = dims[2] + 1, .parts = parts};
		return par_for(k->api, ctx, convChunks, &j);
	}
	int bf = type[0] == typeBFloat16;
	size_t es = elem_size(type[0]);
	for (size_t p = 0; p < parts; p++, d.off += d.W) {
		d.W = dims[2][1 + p];
		void *dy = in[3 + p];
		const char *err;
		if (d.off >= d.C) {
			err = launch_copy(type[0], stream, dy, d.W, (char *)out[0] + d.off * es, d.Cx, d.W, d.rows);
			if (err) return err;
			continue;
		}
		unsigned uw = d.W, ut = d.T, uk = d.K, un = d.rows * d.W, ucx = d.Cx, uoff = d.off, uc = d.C,
		         rows = d.rows, per = d.per;
		void *dx[9] = {&in[1], &dy, &out[0], &uw, &ut, &uk, &un, &ucx, &uoff};
		if ((err = launch(bf ? kConvDxBF16 : kConvDxF32, stream, un, dx)) != NULL) return err;
		void *dw[11] = {&in[0], &dy, &out[1], &out[2], &uc, &ut, &rows, &per, &ucx, &uoff, &uw};
		if ((err = launch_grid(bf ? kConvDwBF16 : kConvDwF32, stream, (d.W + 255) / 256, convChunks, dw)) != NULL)
			return err;
	}
	return NULL;
}

// cuda_too_big refuses 2^32 − 1 or more elements for a CUDA kernel,
// whose indices are 32-bit (msg filled, nonzero).
static int cuda_too_big(const mh_op *k, size_t n, char *msg, size_t len) {
	if (!k->cuda || n < 0xffffffffu) return 0;
	snprintf(msg, len, "%s: the CUDA kernel takes fewer than 2^32 elements", k->name);
	return 1;
}

// ---- SegsumExp -------------------------------------------------------------------
//
// cs [..., Q] (double) and an empty carrier of l's element type, or a
// multiplicand m [..., Q, Q] of it (SegsumExpMul), → l [..., Q, Q]; l and
// dl [..., Q, Q] → dcs [..., Q] (double).

// segexp_mul reports whether SegsumExp's second input is a multiplicand
// rather than the empty carrier.
static int segexp_mul(const size_t *rank) { return rank[1] != 1; }

static int segexp_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                        char *msg, size_t len) {
	size_t r = rank[0];
	int ok = type[0] == typeDouble && r >= 1 && r <= 7 &&
	         (type[1] == typeFloat || type[1] == typeBFloat16 || (!k->cuda && type[1] == typeDouble));
	if (ok && !segexp_mul(rank)) ok = dims[1][0] == 0;
	if (ok && segexp_mul(rank))
		ok = rank[1] == r + 1 && memcmp(dims[0], dims[1], r * sizeof(int64_t)) == 0 && dims[1][r] == dims[0][r - 1];
	if (!ok) {
		snprintf(msg, len,
		         "SegsumExp: want cs [..., Q] of doubles (rank 1 to 7) and an empty carrier or a multiplicand "
		         "[..., Q, Q] of float%s",
		         k->cuda ? " or bfloat16" : ", double or bfloat16");
		return 1;
	}
	return cuda_too_big(k, count[0] * (size_t)dims[0][r - 1], msg, len); // L's elements
}

static int segexpgrad_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                            const size_t *rank, char *msg, size_t len) {
	size_t r = rank[0];
	if (r < 2 || rank[1] != r || type[1] != type[0] || memcmp(dims[0], dims[1], r * sizeof(int64_t)) != 0 ||
	    dims[0][r - 1] != dims[0][r - 2]) {
		snprintf(msg, len, "SegsumExpGrad: want l and dl [..., Q, Q] of one shape and element type");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

// segexp_shape is SegsumExp's output: cs's dims and Q again, of the
// carrier's type.
static mh_shape segexp_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	(void)j;
	mh_shape o = {.type = type[1], .rank = rank[0] < 8 ? rank[0] + 1 : 8};
	memcpy(o.dims, dims[0], (o.rank - 1) * sizeof(int64_t));
	o.dims[o.rank - 1] = rank[0] >= 1 ? dims[0][rank[0] - 1] : -1;
	return o;
}

// segexpgrad_shape is SegsumExpGrad's output: l's dims but the last, double.
static mh_shape segexpgrad_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	(void)j; (void)type;
	mh_shape o = {.type = typeDouble, .rank = rank[0] >= 1 ? rank[0] - 1 : 0};
	memcpy(o.dims, dims[0], o.rank * sizeof(int64_t));
	return o;
}

static void segexp_range(const host_job *j, size_t i) {
	switch (j->type) {
	case typeDouble: segexp_double(j->in[0], j->in[1], j->out[0], j->q, i); break;
	case typeBFloat16: segexp_bf16(j->in[0], j->in[1], j->out[0], j->q, i); break;
	default: segexp_float(j->in[0], j->in[1], j->out[0], j->q, i);
	}
}

static void segexpgrad_range(const host_job *j, size_t i) {
	switch (j->type) {
	case typeDouble: segexpgrad_double(j->in[0], j->in[1], j->out[0], j->q, i); break;
	case typeBFloat16: segexpgrad_bf16(j->in[0], j->in[1], j->out[0], j->q, i); break;
	default: segexpgrad_float(j->in[0], j->in[1], j->out[0], j->q, i);
	}
}

// threads_for is a block size for rows of q: q rounded up to a warp, at
// most 256.
static unsigned threads_for(size_t q) { return q >= 256 ? 256 : (unsigned)((q + 31) / 32 * 32); }

static const char *segexp_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                              int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t q = dims[0][rank[0] - 1], rows = count[0];
	if (rows == 0 || q == 0) return NULL;
	void *ins[2] = {in[0], segexp_mul(rank) ? in[1] : NULL};
	if (!k->cuda) {
		host_job j = {.range = segexp_range, .op = k, .type = type[1], .in = ins, .out = out, .q = q};
		return par_for(k->api, ctx, rows / q, &j);
	}
	unsigned uq = q, ur = rows;
	void *args[5] = {&ins[0], &ins[1], &out[0], &uq, &ur};
	return launch_blocks(type[1] == typeBFloat16 ? kSegExpBF16 : kSegExpF32, stream, rows < (1u << 20) ? rows : (1u << 20),
	                     1, threads_for(q), args);
}

static const char *segexpgrad_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                                  int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t q = dims[0][rank[0] - 1];
	if (count[0] == 0) return NULL;
	size_t tiles = count[0] / (q * q);
	if (!k->cuda) {
		host_job j = {.range = segexpgrad_range, .op = k, .type = type[0], .in = in, .out = out, .q = q};
		return par_for(k->api, ctx, tiles, &j);
	}
	unsigned uq = q, ut = tiles, threads = threads_for(q);
	void *args[5] = {&in[0], &in[1], &out[0], &uq, &ut};
	return launch_blocks(type[0] == typeBFloat16 ? kSegExpGradBF16 : kSegExpGradF32, stream, (q + threads - 1) / threads,
	                     tiles < 65535 ? tiles : 65535, threads, args);
}

// ---- MaskedDiffSq ---------------------------------------------------------------

static int mds_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                     char *msg, size_t len) {
	size_t r = rank[0];
	int want = type[0] == typeBFloat16 ? typeFloat : type[0];
	int grad = k->n_in == 4;
	if (r < 2 || r > 7 || dims[0][r - 1] != dims[0][r - 2] || type[1] != typeDouble || rank[1] != r - 1 ||
	    memcmp(dims[1], dims[0], (r - 1) * sizeof(int64_t)) != 0 || type[2] != want || rank[2] != r ||
	    memcmp(dims[2], dims[0], r * sizeof(int64_t)) != 0 ||
	    (grad && (type[3] != want || rank[3] != r - 1 || memcmp(dims[3], dims[1], (r - 1) * sizeof(int64_t)) != 0))) {
		snprintf(msg, len, "%s: want s [..., T, T], cs [..., T] of doubles, a like s%s (float for bfloat16 s)", k->name,
		         grad ? " and dy [..., T] of a's type" : "");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

// mds_shape: MaskedDiffSq's rows like cs in a's type; MaskedDiffSqGrad's ds
// like s and dcs like cs.
static mh_shape mds_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	(void)j;
	mh_shape o = {.type = type[2], .rank = rank[1]};
	memcpy(o.dims, dims[1], rank[1] * sizeof(int64_t));
	return o;
}

static mh_shape mdsgrad_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	size_t from = j == 0 ? 0 : 1;
	mh_shape o = {.type = j == 0 ? type[0] : typeDouble, .rank = rank[from]};
	memcpy(o.dims, dims[from], rank[from] * sizeof(int64_t));
	return o;
}

static void mds_range(const host_job *j, size_t i) {
	void **in = j->in;
	switch (j->type) {
	case typeDouble: mds_double(in[0], in[1], in[2], j->out[0], j->q, i); break;
	case typeBFloat16: mds_bf16(in[0], in[1], in[2], j->out[0], j->q, i); break;
	default: mds_float(in[0], in[1], in[2], j->out[0], j->q, i);
	}
}

static void mdsgrad_range(const host_job *j, size_t i) {
	void **in = j->in, **out = j->out;
	switch (j->type) {
	case typeDouble: mdsgrad_double(in[0], in[1], in[2], in[3], out[0], out[1], j->q, i); break;
	case typeBFloat16: mdsgrad_bf16(in[0], in[1], in[2], in[3], out[0], out[1], j->q, i); break;
	default: mdsgrad_float(in[0], in[1], in[2], in[3], out[0], out[1], j->q, i);
	}
}

static const char *mds_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                           int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t q = dims[0][rank[0] - 1], rows = count[1];
	if (count[0] == 0) return NULL;
	if (!k->cuda) {
		host_job j = {.range = mds_range, .op = k, .type = type[0], .in = in, .out = out, .q = q};
		return par_for(k->api, ctx, rows / q, &j);
	}
	unsigned uq = q, ur = rows;
	void *args[6] = {&in[0], &in[1], &in[2], &out[0], &uq, &ur};
	return launch_blocks(type[0] == typeBFloat16 ? kMdsBF16 : kMdsF32, stream, rows < (1u << 20) ? rows : (1u << 20), 1,
	                     threads_for(q), args);
}

// The gradient's CUDA form is two kernels on the stream: the rows (ds, and
// the row sums into dcs), then the columns (subtracted from dcs).
static const char *mdsgrad_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                               int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t q = dims[0][rank[0] - 1], rows = count[1];
	if (count[0] == 0) return NULL;
	if (!k->cuda) {
		host_job j = {.range = mdsgrad_range, .op = k, .type = type[0], .in = in, .out = out, .q = q};
		return par_for(k->api, ctx, rows / q, &j);
	}
	int bf = type[0] == typeBFloat16;
	unsigned uq = q, ur = rows, tiles = rows / q, threads = threads_for(q);
	void *ra[8] = {&in[0], &in[1], &in[2], &in[3], &out[0], &out[1], &uq, &ur};
	const char *err = launch_blocks(bf ? kMdsgBF16 : kMdsgF32, stream, rows < (1u << 20) ? rows : (1u << 20), 1, threads, ra);
	if (err) return err;
	void *ca[7] = {&in[0], &in[1], &in[2], &in[3], &out[1], &uq, &tiles};
	return launch_blocks(bf ? kMdscBF16 : kMdscF32, stream, (q + threads - 1) / threads, tiles < 65535 ? tiles : 65535,
	                     threads, ca);
}

// ---- CausalSoftmax --------------------------------------------------------------

static int csm_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                     char *msg, size_t len) {
	size_t r = rank[0];
	int want = type[0] == typeBFloat16 ? typeFloat : type[0];
	if (r < 2 || dims[0][r - 2] > dims[0][r - 1] || dims[0][r - 2] < 1 || type[1] != want || count[1] != 1) {
		snprintf(msg, len, "CausalSoftmax: want x [..., Tq, Tk] with 1 ≤ Tq ≤ Tk and scale [1] (float; double for double x)");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

// csm_shape: p like x in scale's type.
static mh_shape csm_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	(void)j;
	mh_shape o = {.type = type[1], .rank = rank[0]};
	memcpy(o.dims, dims[0], rank[0] * sizeof(int64_t));
	return o;
}

static void csm_range(const host_job *j, size_t i) {
	void **in = j->in;
	switch (j->type) {
	case typeDouble: csm_double(in[0], in[1], j->out[0], j->q, j->tq, i); break;
	case typeBFloat16: csm_bf16(in[0], in[1], j->out[0], j->q, j->tq, i); break;
	default: csm_float(in[0], in[1], j->out[0], j->q, j->tq, i);
	}
}

static const char *csm_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                           int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t tk = dims[0][rank[0] - 1], tq = dims[0][rank[0] - 2];
	if (count[0] == 0) return NULL;
	size_t rows = count[0] / tk;
	if (!k->cuda) {
		host_job j = {.range = csm_range, .op = k, .type = type[0], .in = in, .out = out, .q = tk, .tq = tq};
		return par_for(k->api, ctx, rows, &j);
	}
	unsigned utk = tk, utq = tq, ur = rows;
	void *args[6] = {&in[0], &in[1], &out[0], &utk, &utq, &ur};
	return launch_blocks(type[0] == typeBFloat16 ? kCsmBF16 : kCsmF32, stream, rows < (1u << 20) ? rows : (1u << 20), 1,
	                     threads_for(tk), args);
}

// ---- SoftCrossEntropy ----------------------------------------------------------

// sce_check checks s, t, scale and (the gradient) stats and dce.
static int sce_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                     char *msg, size_t len) {
	size_t r = rank[0];
	int dbl = type[0] == typeDouble, want = dbl ? typeDouble : typeFloat, grad = k->n_in == 5;
	int bad = r < 1 || r > 7 || dims[0][r - 1] < 1 || rank[1] != r || memcmp(dims[1], dims[0], r * sizeof(int64_t)) != 0 ||
	          (dbl ? type[1] != typeDouble : type[1] != typeFloat && type[1] != typeBFloat16) || type[2] != want ||
	          count[2] != 1;
	if (!bad && grad)
		bad = type[3] != want || rank[3] != r || memcmp(dims[3], dims[0], (r - 1) * sizeof(int64_t)) != 0 ||
		      dims[3][r - 1] != 2 || type[4] != want || rank[4] != r - 1 ||
		      memcmp(dims[4], dims[0], (r - 1) * sizeof(int64_t)) != 0;
	if (bad) {
		snprintf(msg, len,
		         "%s: want s and t [..., V] (t float or bfloat16; double for double s) and scale [1] (float; double for "
		         "double s)%s",
		         k->name, grad ? ", stats [..., 2] and dce [...] of scale's type" : "");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

// sce_shape: ce is s's dims but the last, stats s's dims with a last of 2,
// both of scale's type.
static mh_shape sce_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	size_t r = rank[0] >= 1 ? rank[0] : 1;
	mh_shape o = {.type = type[2], .rank = j == 0 ? r - 1 : r};
	memcpy(o.dims, dims[0], (r - 1) * sizeof(int64_t));
	if (j == 1) o.dims[r - 1] = 2;
	return o;
}

// sce_variant is the index (0 … 3) of the (s, t) pair of float and
// bfloat16 among the kernels, 4 for double.
static int sce_variant(const int *type) {
	if (type[0] == typeDouble) return 4;
	return 2 * (type[0] == typeBFloat16) + (type[1] == typeBFloat16);
}

static void sce_range(const host_job *j, size_t i) {
	void **in = j->in, **out = j->out;
	void (*f[5])(const void *, const void *, const void *, void *, void *, size_t, size_t) = {
		sce_f_f, sce_f_b, sce_b_f, sce_b_b, sce_d_d};
	f[j->type](in[0], in[1], in[2], out[0], out[1], j->q, i);
}

static void sceg_range(const host_job *j, size_t i) {
	void **in = j->in;
	void (*f[5])(const void *, const void *, const void *, const void *, const void *, void *, size_t, size_t) = {
		sceg_f_f, sceg_f_b, sceg_b_f, sceg_b_b, sceg_d_d};
	f[j->type](in[0], in[1], in[2], in[3], in[4], j->out[0], j->q, i);
}

// sce_run runs SoftCrossEntropy (k->n_in 3) or its gradient (5): host
// ranges or one kernel, a block per row.
static const char *sce_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                           int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t v = dims[0][rank[0] - 1];
	if (count[0] == 0) return NULL;
	size_t rows = count[0] / v;
	int grad = k->n_in == 5, variant = sce_variant(type);
	if (!k->cuda) {
		host_job j = {.range = grad ? sceg_range : sce_range, .op = k, .type = variant, .in = in, .out = out, .q = v};
		return par_for(k->api, ctx, rows, &j);
	}
	unsigned uv = v, ur = rows, blocks = rows < (1u << 20) ? rows : (1u << 20);
	if (grad) {
		void *args[8] = {&in[0], &in[1], &in[2], &in[3], &in[4], &out[0], &uv, &ur};
		return launch_blocks(kScegFF + variant, stream, blocks, 1, threads_for(v), args);
	}
	void *args[7] = {&in[0], &in[1], &in[2], &out[0], &out[1], &uv, &ur};
	return launch_blocks(kSceFF + variant, stream, blocks, 1, threads_for(v), args);
}

// ---- LayerNormGrad --------------------------------------------------------------

static int lng_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8], const size_t *rank,
                     char *msg, size_t len) {
	size_t r = rank[0];
	int want = type[0] == typeDouble ? typeDouble : typeFloat;
	int bad = r < 1 || r > 7 || dims[0][r - 1] < 1 || type[1] != type[0] || rank[1] != 1 || dims[1][0] != dims[0][r - 1] ||
	          type[4] != type[0] || rank[4] != r || memcmp(dims[4], dims[0], r * sizeof(int64_t)) != 0;
	for (int i = 2; i <= 3 && !bad; i++)
		bad = type[i] != want || rank[i] != r || memcmp(dims[i], dims[0], (r - 1) * sizeof(int64_t)) != 0 ||
		      dims[i][r - 1] != 1;
	if (bad) {
		snprintf(msg, len,
		         "LayerNormGrad: want x and dy [..., D], gamma [D] of x's type, and mean and invstd [..., 1] (float; double for "
		         "double x)");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

// lng_shape: dx like x; dgp and dbp [lnChunks, D] of mean's type.
static mh_shape lng_shape(size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	if (j == 0) {
		mh_shape o = {.type = type[0], .rank = rank[0]};
		memcpy(o.dims, dims[0], rank[0] * sizeof(int64_t));
		return o;
	}
	mh_shape o = {.type = type[2], .rank = 2, .dims = {lnChunks, rank[0] >= 1 ? dims[0][rank[0] - 1] : -1}};
	return o;
}

static void lngdx_range(const host_job *j, size_t i) {
	void **in = j->in;
	switch (j->type) {
	case typeDouble: lngdx_double(in[0], in[1], in[2], in[3], in[4], j->out[0], j->q, i); break;
	case typeBFloat16: lngdx_bf16(in[0], in[1], in[2], in[3], in[4], j->out[0], j->q, i); break;
	default: lngdx_float(in[0], in[1], in[2], in[3], in[4], j->out[0], j->q, i);
	}
}

static void lngcols_range(const host_job *j, size_t i) {
	void **in = j->in, **out = j->out;
	switch (j->type) {
	case typeDouble: lngcols_double(in[0], in[2], in[3], in[4], out[1], out[2], j->q, j->n, j->tq, i); break;
	case typeBFloat16: lngcols_bf16(in[0], in[2], in[3], in[4], out[1], out[2], j->q, j->n, j->tq, i); break;
	default: lngcols_float(in[0], in[2], in[3], in[4], out[1], out[2], j->q, j->n, j->tq, i);
	}
}

// lng_run: dx by rows, then the column sums by chunks of rows (on CUDA two
// kernels on the stream).
static const char *lng_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                           int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t d = dims[0][rank[0] - 1], rows = count[0] / d, per = (rows + lnChunks - 1) / lnChunks;
	if (!k->cuda) {
		host_job j = {.range = lngdx_range, .op = k, .type = type[0], .in = in, .out = out, .q = d, .n = rows, .tq = per};
		const char *err = par_for(k->api, ctx, rows, &j);
		if (err) return err;
		j.range = lngcols_range;
		return par_for(k->api, ctx, lnChunks, &j);
	}
	int bf = type[0] == typeBFloat16;
	unsigned ud = d, ur = rows, up = per;
	if (rows > 0) {
		void *ra[8] = {&in[0], &in[1], &in[2], &in[3], &in[4], &out[0], &ud, &ur};
		const char *err = launch_blocks(bf ? kLngBF16 : kLngF32, stream, rows < (1u << 20) ? rows : (1u << 20), 1,
		                                threads_for(d), ra);
		if (err) return err;
	}
	void *ca[9] = {&in[0], &in[2], &in[3], &in[4], &out[1], &out[2], &ud, &ur, &up};
	return launch_grid(bf ? kLngcBF16 : kLngcF32, stream, (d + 255) / 256, lnChunks, ca);
}

// ---- AllReduce -----------------------------------------------------------------
//
// x of any shape (float, double or bfloat16 on the host; float or bfloat16
// on CUDA) → its element-wise mean over the ranks of this process's group
// (nccl.c: NCCL on the CUDA provider's stream, the Go host reducer on the
// CPU).

static int allreduce_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                           const size_t *rank, char *msg, size_t len) {
	(void)k; (void)type; (void)count; (void)dims; (void)rank; (void)msg; (void)len;
	return 0;
}

static const char *allreduce_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type, const size_t *count,
                                 int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)ctx; (void)dims; (void)rank;
	if (count[0] == 0) return NULL;
	if (k->cuda) return mh_allreduce_cuda(in[0], out[0], count[0], type[0], stream);
	return mh_allreduce_host(in[0], out[0], count[0], type[0]);
}

// ---- Rotary -----------------------------------------------------------------------
//
// x [B, T, H, P] and tables cos, sin [T, 1, R] of its type: below channel
// R, y_c = x_c·cos_c + r_c·sin_c (r the rotated half), each product and the
// sum rounded to the type; from R on, y = x. One host range is a block of
// rows of P.

#define ROTARY_HOST(T_, A, LD, ST, ROUND)                                                               \
	static void rotary_##T_(const void *x, const void *cs, const void *sn, void *y, size_t P, size_t R,      \
	                        size_t H, size_t T, size_t r0, size_t r1) {                                   \
		size_t h = R / 2;                                                                               \
		for (size_t r = r0; r < r1; r++) {                                                              \
			size_t t = r / H % T, base = r * P;                                                         \
			for (size_t c = 0; c < P; c++) {                                                            \
				A v = LD(x, base + c);                                                                  \
				if (c < R) {                                                                            \
					A rc = c < h ? -(A)LD(x, base + c + h) : (A)LD(x, base + c - h);                    \
					A a = ROUND(v * (A)LD(cs, t * R + c)), b = ROUND(rc * (A)LD(sn, t * R + c));        \
					v = a + b;                                                                          \
				}                                                                                       \
				ST(y, base + c, v);                                                                     \
			}                                                                                           \
		}                                                                                               \
	}
#define ROUND_SAME(v) (v)
#define ROUND_TO_BF16(v) bf16_to_float(float_to_bf16(v))
ROTARY_HOST(float, float, LD_float, ST_float, ROUND_SAME)
ROTARY_HOST(double, double, LD_double, ST_double, ROUND_SAME)
ROTARY_HOST(bf16, float, LD_bf16, ST_bf16, ROUND_TO_BF16)

enum { rowsPerRange = 1024 };

static void rotary_range(const host_job *j, size_t i) {
	size_t r0 = i * rowsPerRange, r1 = r0 + rowsPerRange < j->n ? r0 + rowsPerRange : j->n;
	const size_t *d = j->dims4; // P, R, H, T
	void **in = j->in;
	switch (j->type) {
	case typeDouble: rotary_double(in[0], in[1], in[2], j->out[0], d[0], d[1], d[2], d[3], r0, r1); break;
	case typeBFloat16: rotary_bf16(in[0], in[1], in[2], j->out[0], d[0], d[1], d[2], d[3], r0, r1); break;
	default: rotary_float(in[0], in[1], in[2], j->out[0], d[0], d[1], d[2], d[3], r0, r1);
	}
}

static int rotary_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                        const size_t *rank, char *msg, size_t len) {
	(void)n_in;
	if (rank[0] != 4 || rank[1] != 3 || rank[2] != 3 || type[1] != type[0] || type[2] != type[0] ||
	    memcmp(dims[1], dims[2], 3 * sizeof(int64_t)) != 0 || dims[1][0] != dims[0][1] || dims[1][1] != 1 ||
	    dims[1][2] < 2 || dims[1][2] % 2 != 0 || dims[1][2] > dims[0][3]) {
		snprintf(msg, len, "Rotary: want x [B, T, H, P] and tables cos, sin [T, 1, R] of its element type, R even and at most P");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

static const char *rotary_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type,
                              const size_t *count, int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)n_in; (void)rank;
	size_t P = dims[0][3], R = dims[1][2], H = dims[0][2], T = dims[0][1], rows = P ? count[0] / P : 0;
	if (rows == 0) return NULL;
	if (!k->cuda) {
		host_job j = {.range = rotary_range, .op = k, .type = type[0], .in = in, .out = out, .n = rows,
		              .dims4 = {P, R, H, T}};
		return par_for(k->api, ctx, (rows + rowsPerRange - 1) / rowsPerRange, &j);
	}
	unsigned up = P, ur = R, uh = H, ut = T, un = count[0];
	void *args[9] = {&in[0], &in[1], &in[2], &out[0], &up, &ur, &uh, &ut, &un};
	return launch(type[0] == typeBFloat16 ? kRotaryBF16 : kRotaryF32, stream, count[0], args);
}

// ---- Residual ---------------------------------------------------------------------
//
// h + p0 or (p0 + p1) + h, h float (or double on the host) and each part
// h's type or bfloat16 (widened exactly): each addition rounded once in
// that order, as the stock Adds of the residual stream.

static double residual_ld(const void *p, int type, size_t i) {
	return type == typeDouble ? LD_double(p, i) : type == typeBFloat16 ? LD_bf16(p, i) : LD_float(p, i);
}

static void residual_range(const host_job *j, size_t r) {
	size_t lo = r * elementsPerRange, hi = lo + elementsPerRange < j->n ? lo + elementsPerRange : j->n;
	void **in = j->in;
	for (size_t i = lo; i < hi; i++) {
		if (j->type == typeDouble) {
			double v = LD_double(in[1], i);
			if (j->parts == 2) v = v + LD_double(in[2], i);
			ST_double(j->out[0], i, v + LD_double(in[0], i));
			continue;
		}
		float v = (float)residual_ld(in[1], j->types[1], i);
		if (j->parts == 2) v = v + (float)residual_ld(in[2], j->types[2], i);
		ST_float(j->out[0], i, v + LD_float(in[0], i));
	}
}

static int residual_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                          const size_t *rank, char *msg, size_t len) {
	int ok = (n_in == 2 || n_in == 3) && (!k->cuda || type[0] == typeFloat); // CUDA's kernel: float h
	for (size_t i = 1; ok && i < n_in; i++)
		ok = count[i] == count[0] && rank[i] == rank[0] && memcmp(dims[i], dims[0], rank[0] * sizeof(int64_t)) == 0 &&
		     (type[i] == type[0] || (type[0] == typeFloat && type[i] == typeBFloat16));
	if (!ok) {
		snprintf(msg, len, "Residual: want h and one or two parts of h's shape, each of h's element type or bfloat16");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

static const char *residual_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type,
                                const size_t *count, int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	(void)dims; (void)rank;
	if (!k->cuda) {
		host_job j = {.range = residual_range, .op = k, .type = type[0], .in = in, .out = out, .n = count[0],
		              .types = type, .parts = n_in - 1};
		return par_for(k->api, ctx, (count[0] + elementsPerRange - 1) / elementsPerRange, &j);
	}
	unsigned long long n = count[0];
	unsigned flags = (type[1] == typeBFloat16) | (n_in == 3 && type[2] == typeBFloat16) << 1 | (n_in == 3) << 2;
	void *p1 = n_in == 3 ? in[2] : in[1];
	void *args[6] = {&in[0], &in[1], &p1, &out[0], &n, &flags};
	return launch(kResidual, stream, count[0], args);
}

// ---- GateSkip and GateSkipGrad ---------------------------------------------------
//
// The SSM mixer's output gate with its skip and bias: a = y + x·d[c/P],
// b = z + zb[c] (each product and sum rounded to the element type, as the
// stock ops round them), then SiluMul(a, b), or SiluMulGrad's da and db
// from g. y, z, x (and g) [..., C], d [H] with P = C/H, zb [C].

#define GATESKIP_HOST(T_, A, EXP, LD, ST, ROUND)                                                         \
	static void gateskip_##T_(void **in, void **out, int grad, size_t C, size_t P, size_t lo, size_t hi) { \
		for (size_t i = lo; i < hi; i++) {                                                              \
			size_t c = i % C;                                                                           \
			A y = ROUND((A)LD(in[0], i) + ROUND((A)LD(in[2], i) * (A)LD(in[3], c / P)));                \
			A z = ROUND((A)LD(in[1], i) + (A)LD(in[4], c));                                             \
			SILU_SIG(A, EXP)                                                                            \
			if (!grad) {                                                                                \
				(void)r;                                                                                \
				ST(out[0], i, y * z * s);                                                               \
				continue;                                                                               \
			}                                                                                           \
			A d = LD(in[5], i);                                                                         \
			SILU_GRAD_ST(A, ST, out[0], out[1], i)                                                      \
		}                                                                                               \
	}
GATESKIP_HOST(float, float, expf, LD_float, ST_float, ROUND_SAME)
GATESKIP_HOST(double, double, exp, LD_double, ST_double, ROUND_SAME)
GATESKIP_HOST(bf16, float, expf, LD_bf16, ST_bf16, ROUND_TO_BF16)

static void gateskip_range(const host_job *j, size_t r) {
	size_t lo = r * elementsPerRange, hi = lo + elementsPerRange < j->n ? lo + elementsPerRange : j->n;
	int grad = j->op->n_in == 6;
	switch (j->type) {
	case typeDouble: gateskip_double(j->in, j->out, grad, j->dims4[0], j->dims4[1], lo, hi); break;
	case typeBFloat16: gateskip_bf16(j->in, j->out, grad, j->dims4[0], j->dims4[1], lo, hi); break;
	default: gateskip_float(j->in, j->out, grad, j->dims4[0], j->dims4[1], lo, hi);
	}
}

static int gateskip_check(const mh_op *k, size_t n_in, const int *type, const size_t *count, int64_t (*dims)[8],
                          const size_t *rank, char *msg, size_t len) {
	size_t r = rank[0];
	int64_t C = r ? dims[0][r - 1] : 0;
	int ok = r >= 1 && C > 0 && rank[3] == 1 && dims[3][0] > 0 && C % dims[3][0] == 0 && rank[4] == 1 && dims[4][0] == C;
	for (size_t i = 1; ok && i < n_in; i++) {
		ok = type[i] == type[0];
		if (ok && i != 3 && i != 4) ok = count[i] == count[0] && rank[i] == r && memcmp(dims[i], dims[0], r * sizeof(int64_t)) == 0;
	}
	if (!ok) {
		snprintf(msg, len, "%s: want y, z, x%s [..., C], d [H] with H dividing C and zb [C], of one element type", k->name,
		         n_in == 6 ? " and g" : "");
		return 1;
	}
	return cuda_too_big(k, count[0], msg, len);
}

static const char *gateskip_run(const mh_op *k, void *ctx, void *stream, size_t n_in, const int *type,
                                const size_t *count, int64_t (*dims)[8], const size_t *rank, void **in, void **out) {
	size_t C = dims[0][rank[0] - 1], P = C / dims[3][0];
	if (count[0] == 0) return NULL;
	if (!k->cuda) {
		host_job j = {.range = gateskip_range, .op = k, .type = type[0], .in = in, .out = out, .n = count[0],
		              .dims4 = {C, P}};
		return par_for(k->api, ctx, (count[0] + elementsPerRange - 1) / elementsPerRange, &j);
	}
	unsigned long long n = count[0];
	unsigned uc = C, up = P;
	int bf = type[0] == typeBFloat16;
	if (n_in == 5) {
		void *args[9] = {&in[0], &in[1], &in[2], &in[3], &in[4], &out[0], &n, &uc, &up};
		return launch(bf ? kGateSkipBF16 : kGateSkipF32, stream, count[0], args);
	}
	void *args[11] = {&in[0], &in[1], &in[2], &in[3], &in[4], &in[5], &out[0], &out[1], &n, &uc, &up};
	return launch(bf ? kGateSkipGradBF16 : kGateSkipGradF32, stream, count[0], args);
}

// ---- the custom-op table -------------------------------------------------

static const mh_op *self(const mh_custom_op *op) { return (const mh_op *)op; }
static const char *op_name(const mh_custom_op *op) { return self(op)->name; }
static const char *op_ep(const mh_custom_op *op) {
	return self(op)->cuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
}
// op_type is the element type ORT is told the op takes: float where the
// kernel takes only float, otherwise any (the kernel checks).
static int op_type(const mh_custom_op *op, size_t i) {
	(void)i;
	const int *t = self(op)->types;
	return t[0] == typeFloat && t[1] == 0 ? typeFloat : 0;
}
static size_t op_inputs(const mh_custom_op *op) { return self(op)->n_in; }
static size_t op_outputs(const mh_custom_op *op) { return self(op)->n_out; }
// An input's or output's characteristic: INPUT_OUTPUT_VARIADIC (2) for
// the last of a variadic op's, else INPUT_OUTPUT_REQUIRED (0).
static int in_kind(const mh_custom_op *op, size_t i) { return self(op)->var_in && i + 1 == self(op)->n_in ? 2 : 0; }
static int out_kind(const mh_custom_op *op, size_t i) {
	return self(op)->var_out && i + 1 == self(op)->n_out ? 2 : 0;
}
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

// read_info reads a type-and-shape info's element type, rank and
// dimensions (dims has room for 8).
static status read_info(void **api, void *info, int *type, int64_t *dims, size_t *rank) {
	status s = API(mhGetTensorElementType, status (*)(void *, int *))(info, type);
	if (!s) s = API(mhGetDimensionsCount, status (*)(void *, size_t *))(info, rank);
	if (!s && *rank > 8) s = fail(api, "fused op: tensor rank above 8");
	if (!s) s = API(mhGetDimensions, status (*)(void *, int64_t *, size_t))(info, dims, *rank);
	return s;
}

// describe reads a value's element type, element count and dimensions
// (dims has room for 8).
static status describe(void **api, const void *v, int *type, size_t *count, int64_t *dims, size_t *rank) {
	void *info = NULL;
	status s = API(mhGetTensorTypeAndShape, status (*)(const void *, void **))(v, &info);
	if (s) return s;
	s = read_info(api, info, type, dims, rank);
	if (!s) s = API(mhGetTensorShapeElementCount, status (*)(void *, size_t *))(info, count);
	API(mhReleaseTensorTypeAndShapeInfo, void (*)(void *))(info);
	return s;
}

// out_shape is output j's element type and shape.
static mh_shape out_shape(const mh_op *k, size_t j, const int *type, int64_t (*dims)[8], const size_t *rank) {
	if (k->like == NULL) return k->out_shape(j, type, dims, rank);
	size_t from = k->like[j];
	mh_shape o = {.type = type[from], .rank = rank[from]};
	memcpy(o.dims, dims[from], rank[from] * sizeof(int64_t));
	return o;
}

static status op_compute(void *kernel, void *ctx) {
	const mh_op *k = kernel;
	void **api = k->api;
	void *in[maxInputs], *out[maxOutputs];
	int type[maxInputs];
	size_t count[maxInputs], rank[maxInputs];
	int64_t dims[maxInputs][8];
	char msg[320];
	size_t n_in = k->n_in, n_out = k->n_out;
	if (k->var_in) {
		status s = API(mhKernelContext_GetInputCount, status (*)(void *, size_t *))(ctx, &n_in);
		if (s) return s;
	}
	if (k->var_out) {
		status s = API(mhKernelContext_GetOutputCount, status (*)(void *, size_t *))(ctx, &n_out);
		if (s) return s;
	}
	if (n_in > maxInputs || n_out > maxOutputs) {
		snprintf(msg, sizeof msg, "%s: %zu inputs and %zu outputs; at most %d and %d", k->name, n_in, n_out,
		         maxInputs, maxOutputs);
		return fail(api, msg);
	}
	for (size_t i = 0; i < n_in; i++) {
		const void *v = NULL;
		status s = API(mhKernelContext_GetInput, status (*)(void *, size_t, const void **))(ctx, i, &v);
		if (!s) s = describe(api, v, &type[i], &count[i], dims[i], &rank[i]);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(v, &in[i]);
		if (s) return s;
	}
	if (k->parts_of != NULL) {
		size_t parts = k->parts_of(k, rank);
		if (parts < 1 || n_in != (k->var_in ? k->n_in - 1 + parts : k->n_in) || n_out != (k->var_out ? parts : k->n_out)) {
			snprintf(msg, sizeof msg, "%s: the node has %zu inputs and %zu outputs where its inputs list %zu parts",
			         k->name, n_in, n_out, parts);
			return fail(api, msg);
		}
	}
	if (k->check(k, n_in, type, count, dims, rank, msg, sizeof msg)) return fail(api, msg);
	int supported = 0;
	for (const int *t = k->types; *t; t++) supported |= *t == type[0];
	if (!supported) {
		snprintf(msg, sizeof msg, "%s: element type %d is not supported on the %s provider", k->name, type[0],
		         k->cuda ? "CUDA" : "CPU");
		return fail(api, msg);
	}
	for (size_t j = 0; j < n_out; j++) {
		mh_shape o = out_shape(k, j, type, dims, rank);
		void *v = NULL;
		status s = API(mhKernelContext_GetOutput, status (*)(void *, size_t, const int64_t *, size_t, void **))(
			ctx, j, o.dims, o.rank, &v);
		if (!s) s = API(mhGetTensorMutableData, status (*)(const void *, void **))(v, &out[j]);
		if (s) return s;
	}
	void *stream = NULL;
	if (k->cuda) {
		status s = API(mhKernelContext_GetGPUComputeStream, status (*)(void *, void **))(ctx, &stream);
		if (s) return s;
	}
	const char *err = k->run(k, ctx, stream, n_in, type, count, dims, rank, in, out);
	if (err) {
		snprintf(msg, sizeof msg, "%s: %s", k->name, err);
		return fail(api, msg);
	}
	return NULL;
}

// op_shapes gives each output its type and shape from the inputs'. An
// input's unknown dims (−1, symbolic or not) are passed to out_shape as
// codes −(symCode + 8·input + axis), so that an output dim copied from one
// keeps its symbolic name: ORT would take a plain −1 for a dim value.
enum { symCode = 100 };
static status op_shapes(const mh_custom_op *op, void *ctx) {
	const mh_op *k = self(op);
	void **api = k->api;
	int type[maxInputs];
	int64_t dims[maxInputs][8];
	size_t rank[maxInputs];
	const char *sym[maxInputs][8];
	size_t n_in = k->n_in, n_out = k->n_out;
	if (k->var_in) {
		status s = API(mhShapeInferContext_GetInputCount, status (*)(void *, size_t *))(ctx, &n_in);
		if (s) return s;
		if (n_in > maxInputs) return fail(api, "fused op: too many inputs");
	}
	for (size_t i = 0; i < n_in; i++) {
		// The context owns info (ORT keeps the inputs' infos and hands out
		// pointers to them, and to their dims' names).
		void *info = NULL;
		status s = API(mhShapeInferContext_GetInputTypeShape, status (*)(void *, size_t, void **))(ctx, i, &info);
		if (!s) s = read_info(api, info, &type[i], dims[i], &rank[i]);
		if (!s) s = API(mhGetSymbolicDimensions, status (*)(void *, const char **, size_t))(info, sym[i], rank[i]);
		if (s) return s;
		for (size_t a = 0; a < rank[i]; a++)
			if (dims[i][a] < 0) dims[i][a] = -(int64_t)(symCode + 8 * i + a);
	}
	if (k->var_out) n_out = k->parts_of(k, rank);
	if (n_out > maxOutputs) return fail(api, "fused op: too many outputs");
	for (size_t j = 0; j < n_out; j++) {
		mh_shape o = out_shape(k, j, type, dims, rank);
		const char *names[8];
		char made[8][32];
		int symbolic = 0;
		for (size_t a = 0; a < o.rank; a++) {
			names[a] = "";
			if (o.dims[a] >= 0) continue;
			int64_t c = -o.dims[a] - symCode;
			symbolic = 1;
			if (c >= 0 && c < 8 * (int64_t)n_in && sym[c / 8][c % 8] != NULL && sym[c / 8][c % 8][0] != 0) {
				names[a] = sym[c / 8][c % 8];
			} else { // unnamed: a name of its own
				snprintf(made[a], sizeof made[a], "mohawk_%s_%zu_%zu", k->name, j, a);
				names[a] = made[a];
			}
			o.dims[a] = -1;
		}
		void *info = NULL;
		status s = API(mhCreateTensorTypeAndShapeInfo, status (*)(void **))(&info);
		if (s) return s;
		s = API(mhSetTensorElementType, status (*)(void *, int))(info, o.type);
		if (!s) s = API(mhSetDimensions, status (*)(void *, const int64_t *, size_t))(info, o.dims, o.rank);
		if (!s && symbolic)
			s = API(mhSetSymbolicDimensions, status (*)(void *, const char **, size_t))(info, names, o.rank);
		if (!s) s = API(mhShapeInferContext_SetOutputTypeShape, status (*)(void *, size_t, void *))(ctx, j, info);
		API(mhReleaseTensorTypeAndShapeInfo, void (*)(void *))(info);
		if (s) return s;
	}
	return NULL;
}

static void op_init(mh_op *o, void **api, int cuda) {
	o->api = api;
	o->cuda = cuda;
	mh_custom_op *op = &o->op;
	memset(op, 0, sizeof *op);
	op->version = MH_ORT_API_VERSION;
	op->GetName = op_name;
	op->GetExecutionProviderType = op_ep;
	op->GetInputType = op_type;
	op->GetInputTypeCount = op_inputs;
	op->GetOutputType = op_type;
	op->GetOutputTypeCount = op_outputs;
	op->KernelDestroy = destroy;
	op->GetInputCharacteristic = in_kind;
	op->GetOutputCharacteristic = out_kind;
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

static const size_t adamw_like[] = {0, 2, 3}, gelugrad_like[] = {0}, allreduce_like[] = {0},
                    sceg_like[] = {0}, silumulgrad_like[] = {0, 0}, residual_like[] = {0};
static const int hostTypes[] = {typeFloat, typeDouble, typeBFloat16, 0}, cudaTypes[] = {typeFloat, typeBFloat16, 0};
static const int hostFloats[] = {typeFloat, typeDouble, 0}, cudaFloats[] = {typeFloat, 0};
static const int doubles[] = {typeDouble, 0}; // SegsumExp's cs (segexp_check checks the carrier's type)

// The domain's ops, each for the CPU and the CUDA provider.
#define ADAMW_OP                                                                                   \
	.name = "AdamW", .n_in = 5, .n_out = 3, .like = adamw_like, .check = adamw_check, .run = elementwise_run, \
	.host = adamw_host, .kernel_f32 = kAdamW, .kernel_bf16 = kAdamW
#define ADAMW_INPLACE_OP                                                                       \
	.name = "AdamWInPlace", .n_in = 5, .n_out = 1, .out_shape = empty_like_first, .check = adamw_check, \
	.run = adamw_inplace_run, .host = adamw_host, .kernel_f32 = kAdamW, .kernel_bf16 = kAdamW
#define GELUGRAD_OP                                                                                        \
	.name = "GeluGrad", .n_in = 2, .n_out = 1, .like = gelugrad_like, .check = gelugrad_check,          \
	.run = elementwise_run, .host = gelugrad_host, .kernel_f32 = kGeluGradF32, .kernel_bf16 = kGeluGradBF16
#define CONV_OP                                                                                                 \
	.name = "CausalConv", .n_in = 4, .n_out = 1, .var_out = 1, .parts_of = conv_parts_of, .out_shape = conv_shape, \
	.check = conv_check, .run = conv_run
#define CONVGRAD_OP                                                                                             \
	.name = "CausalConvGrad", .n_in = 4, .n_out = 3, .var_in = 1, .parts_of = conv_parts_of,                  \
	.out_shape = conv_grad_shape, .check = conv_check, .run = conv_grad_run
#define SEGEXP_OP \
	.name = "SegsumExp", .n_in = 2, .n_out = 1, .out_shape = segexp_shape, .check = segexp_check, .run = segexp_run
#define SEGEXPGRAD_OP                                                                                          \
	.name = "SegsumExpGrad", .n_in = 2, .n_out = 1, .out_shape = segexpgrad_shape, .check = segexpgrad_check, \
	.run = segexpgrad_run
#define MDS_OP \
	.name = "MaskedDiffSq", .n_in = 3, .n_out = 1, .out_shape = mds_shape, .check = mds_check, .run = mds_run
#define MDSGRAD_OP                                                                                           \
	.name = "MaskedDiffSqGrad", .n_in = 4, .n_out = 2, .out_shape = mdsgrad_shape, .check = mds_check, \
	.run = mdsgrad_run
#define CSM_OP \
	.name = "CausalSoftmax", .n_in = 2, .n_out = 1, .out_shape = csm_shape, .check = csm_check, .run = csm_run
#define SCE_OP \
	.name = "SoftCrossEntropy", .n_in = 3, .n_out = 2, .out_shape = sce_shape, .check = sce_check, .run = sce_run
#define SCEGRAD_OP                                                                                 \
	.name = "SoftCrossEntropyGrad", .n_in = 5, .n_out = 1, .like = sceg_like, .check = sce_check, \
	.run = sce_run
#define SILUMUL_OP                                                                                      \
	.name = "SiluMul", .n_in = 2, .n_out = 1, .like = gelugrad_like, .check = gelugrad_check, .run = elementwise_run, \
	.host = silumul_host, .kernel_f32 = kSiluMulF32, .kernel_bf16 = kSiluMulBF16
#define SILUMULGRAD_OP                                                                                     \
	.name = "SiluMulGrad", .n_in = 3, .n_out = 2, .like = silumulgrad_like, .check = silumulgrad_check,  \
	.run = elementwise_run, .host = silumulgrad_host, .kernel_f32 = kSiluMulGradF32, .kernel_bf16 = kSiluMulGradBF16
#define LNG_OP \
	.name = "LayerNormGrad", .n_in = 5, .n_out = 3, .out_shape = lng_shape, .check = lng_check, .run = lng_run
#define RESIDUAL_OP                                                                                         \
	.name = "Residual", .n_in = 2, .n_out = 1, .var_in = 1, .like = residual_like, .check = residual_check,   \
	.run = residual_run
#define ROTARY_OP \
	.name = "Rotary", .n_in = 3, .n_out = 1, .like = residual_like, .check = rotary_check, .run = rotary_run
#define GATESKIP_OP \
	.name = "GateSkip", .n_in = 5, .n_out = 1, .like = residual_like, .check = gateskip_check, .run = gateskip_run
#define GATESKIPGRAD_OP                                                                                     \
	.name = "GateSkipGrad", .n_in = 6, .n_out = 2, .like = silumulgrad_like, .check = gateskip_check,      \
	.run = gateskip_run
#define ALLREDUCE_OP \
	.name = "AllReduce", .n_in = 1, .n_out = 1, .like = allreduce_like, .check = allreduce_check, .run = allreduce_run
enum { nOps = 40 };
static mh_op ops[nOps] = {
	{ADAMW_OP, .types = hostFloats},
	{ADAMW_OP, .types = cudaFloats, .cuda = 1},
	{ADAMW_INPLACE_OP, .types = hostFloats},
	{ADAMW_INPLACE_OP, .types = cudaFloats, .cuda = 1},
	{GELUGRAD_OP, .types = hostTypes},
	{GELUGRAD_OP, .types = cudaTypes, .cuda = 1},
	{CONV_OP, .types = hostTypes},
	{CONV_OP, .types = cudaTypes, .cuda = 1},
	{CONVGRAD_OP, .types = hostTypes},
	{CONVGRAD_OP, .types = cudaTypes, .cuda = 1},
	{SEGEXP_OP, .types = doubles},
	{SEGEXP_OP, .types = doubles, .cuda = 1},
	{SEGEXPGRAD_OP, .types = hostTypes},
	{SEGEXPGRAD_OP, .types = cudaTypes, .cuda = 1},
	{MDS_OP, .types = hostTypes},
	{MDS_OP, .types = cudaTypes, .cuda = 1},
	{MDSGRAD_OP, .types = hostTypes},
	{MDSGRAD_OP, .types = cudaTypes, .cuda = 1},
	{CSM_OP, .types = hostTypes},
	{CSM_OP, .types = cudaTypes, .cuda = 1},
	{SCE_OP, .types = hostTypes},
	{SCE_OP, .types = cudaTypes, .cuda = 1},
	{SCEGRAD_OP, .types = hostTypes},
	{SCEGRAD_OP, .types = cudaTypes, .cuda = 1},
	{LNG_OP, .types = hostTypes},
	{LNG_OP, .types = cudaTypes, .cuda = 1},
	{SILUMUL_OP, .types = hostTypes},
	{SILUMUL_OP, .types = cudaTypes, .cuda = 1},
	{SILUMULGRAD_OP, .types = hostTypes},
	{SILUMULGRAD_OP, .types = cudaTypes, .cuda = 1},
	{RESIDUAL_OP, .types = hostFloats},
	{RESIDUAL_OP, .types = cudaTypes, .cuda = 1}, // any declared type: the parts may be bfloat16 (checked)
	{ROTARY_OP, .types = hostTypes},
	{ROTARY_OP, .types = cudaTypes, .cuda = 1},
	{GATESKIP_OP, .types = hostTypes},
	{GATESKIP_OP, .types = cudaTypes, .cuda = 1},
	{GATESKIPGRAD_OP, .types = hostTypes},
	{GATESKIPGRAD_OP, .types = cudaTypes, .cuda = 1},
	{ALLREDUCE_OP, .types = hostTypes},
	{ALLREDUCE_OP, .types = cudaTypes, .cuda = 1},
};

// ---- the domain ------------------------------------------------------------

static struct {
	pthread_mutex_t mu;
	void **api;
	void *domain;
} dom = {.mu = PTHREAD_MUTEX_INITIALIZER};

static char *status_message(void **api, status s) {
	const char *m = API(mhGetErrorMessage, const char *(*)(status))(s);
	char *out = strdup(m ? m : "unknown ORT error");
	API(mhReleaseStatus, void (*)(status))(s);
	return out;
}

// mh_fused_forget releases the domain before its library is unloaded (the
// last runtime.Env closing destroys ORT's environment, and onnxruntime_go
// unloads the library): a library loaded again later may sit at another
// address, so its OrtApi table and a new domain are taken afresh.
void mh_fused_forget(void) {
	pthread_mutex_lock(&dom.mu);
	if (dom.domain != NULL) {
		void **api = dom.api;
		API(mhReleaseCustomOpDomain, void (*)(void *))(dom.domain);
		dom.domain = NULL;
		dom.api = NULL;
	}
	pthread_mutex_unlock(&dom.mu);
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
