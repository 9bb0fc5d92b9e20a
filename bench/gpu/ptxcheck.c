// ptxcheck loads mohawk's fused-kernel PTX modules (runtime/fused.c) with
// the CUDA driver on the GPU machine and prints the driver's JIT error log
// and the kernels it finds: a check, in seconds and without ONNX Runtime,
// that the PTX compiles on that GPU before a phase depends on it.
//
// Build here (no CUDA needed; libcuda.so.1 is opened at run time):
//   gcc -O1 -o ptxcheck bench/gpu/ptxcheck.c runtime/fused.c -Iruntime -ldl -lm -lpthread
// and run ./ptxcheck on the GPU machine (exit status 1 if a module fails).
//
// ./ptxcheck --dump DIR writes each module to DIR/<name>.ptx instead, for
// NVIDIA's assembler where no GPU is at hand (bench/gpu/ptxas.sh).
#include <dlfcn.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>

extern const char mh_fused_ptx[], mh_matrix_ptx[], mh_loss_ptx[], mh_layer_ptx[], mh_gate_ptx[];

// fused.c's AllReduce calls into nccl.c, which needs cgo; ptxcheck never
// launches it.
const char *mh_allreduce_cuda(void *in, void *out, size_t n, int type, void *stream) {
	(void)in; (void)out; (void)n; (void)type; (void)stream;
	return "not in ptxcheck";
}
const char *mh_allreduce_host(void *in, void *out, size_t n, int type) {
	(void)in; (void)out; (void)n; (void)type;
	return "not in ptxcheck";
}

// dump writes the modules to dir/<name>.ptx.
static int dump(const char *dir, const char *const *ptx, const char *const *name, int n) {
	for (int m = 0; m < n; m++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s.ptx", dir, name[m]);
		FILE *f = fopen(path, "w");
		if (!f || fputs(ptx[m], f) < 0 || fclose(f) != 0) {
			printf("cannot write %s\n", path);
			return 1;
		}
		printf("%s\n", path);
	}
	return 0;
}

int main(int argc, char **argv) {
	const char *ptx[5] = {mh_fused_ptx, mh_matrix_ptx, mh_loss_ptx, mh_layer_ptx, mh_gate_ptx};
	const char *name[5] = {"mh_fused_ptx", "mh_matrix_ptx", "mh_loss_ptx", "mh_layer_ptx", "mh_gate_ptx"};
	if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], ptx, name, 5);
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	if (!h) {
		printf("cannot load libcuda.so.1: %s\n", dlerror());
		return 1;
	}
	int (*init)(unsigned) = (int (*)(unsigned))dlsym(h, "cuInit");
	int (*device)(int *, int) = (int (*)(int *, int))dlsym(h, "cuDeviceGet");
	int (*context)(void **, unsigned, int) = (int (*)(void **, unsigned, int))dlsym(h, "cuCtxCreate_v2");
	int (*load)(void **, const void *, unsigned, int *, void **) =
		(int (*)(void **, const void *, unsigned, int *, void **))dlsym(h, "cuModuleLoadDataEx");
	int (*function)(void **, void *, const char *) = (int (*)(void **, void *, const char *))dlsym(h, "cuModuleGetFunction");
	int dev, rc;
	void *ctx;
	if (!init || !device || !context || !load || !function) {
		printf("libcuda.so.1 lacks a driver entry ptxcheck needs\n");
		return 1;
	}
	if ((rc = init(0)) || (rc = device(&dev, 0)) || (rc = context(&ctx, 0, dev))) {
		printf("CUDA initialisation failed: %d\n", rc);
		return 1;
	}
	const char *kernels[5][2] = {{"mh_adamw_f32", "mh_copy_b16"}, {"mh_mdsc_bf16", "mh_csm_bf16"}, {"mh_sce_f_b", "mh_sceg_b_b"},
	                             {"mh_lng_bf16", "mh_rotary_bf16"}, {"mh_gateskip_f32", "mh_gateskipgrad_bf16"}};
	int failed = 0;
	for (int m = 0; m < 5; m++) {
		static char log[1 << 16];
		log[0] = 0;
		int opts[] = {5, 6}; // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
		void *vals[] = {log, (void *)(size_t)sizeof log};
		void *mod = NULL;
		rc = load(&mod, ptx[m], 2, opts, vals);
		printf("%s: cuModuleLoadDataEx %d%s%s\n", name[m], rc, log[0] ? "\n" : "", log);
		if (rc) {
			failed = 1;
			continue;
		}
		for (int k = 0; k < 2; k++) {
			void *f;
			rc = function(&f, mod, kernels[m][k]);
			printf("  %s: %d\n", kernels[m][k], rc);
			failed |= rc != 0;
		}
	}
	return failed;
}
