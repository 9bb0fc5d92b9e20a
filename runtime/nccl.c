// NCCL through dlopen, and the AllReduce op's reducers; see nccl.go.
#include "nccl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

typedef struct {
	char internal[MH_NCCL_ID_BYTES];
} mh_nccl_id; // ncclUniqueId

struct mh_nccl {
	void *h;
	int (*get_version)(int *);
	const char *(*error_string)(int);
	int (*get_unique_id)(mh_nccl_id *);
	int (*init_rank)(void **, int, mh_nccl_id, int);
	int (*all_reduce)(const void *, void *, size_t, int, int, void *, void *);
	int (*async_error)(void *, int *);
	int (*abort)(void *);
	int (*destroy)(void *);
};

char *mh_nccl_open(const char *path, mh_nccl **out) {
	char *err = NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return strdup(e ? e : "unknown dlopen error");
	}
	mh_nccl *lib = calloc(1, sizeof *lib);
	if (lib == NULL) {
		dlclose(h);
		return strdup("out of memory");
	}
	lib->h = h;
	struct {
		const char *name;
		void **fn;
	} syms[] = {
		{"ncclGetVersion", (void **)&lib->get_version},
		{"ncclGetErrorString", (void **)&lib->error_string},
		{"ncclGetUniqueId", (void **)&lib->get_unique_id},
		{"ncclCommInitRank", (void **)&lib->init_rank},
		{"ncclAllReduce", (void **)&lib->all_reduce},
		{"ncclCommGetAsyncError", (void **)&lib->async_error},
		{"ncclCommAbort", (void **)&lib->abort},
		{"ncclCommDestroy", (void **)&lib->destroy},
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		*syms[i].fn = dlsym(h, syms[i].name);
		if (*syms[i].fn == NULL) {
			size_t n = strlen(path) + strlen(syms[i].name) + 64;
			err = malloc(n);
			if (err) snprintf(err, n, "%s has no symbol %s", path, syms[i].name);
			free(lib);
			dlclose(h);
			return err ? err : strdup("out of memory");
		}
	}
	*out = lib; // loaded for the life of the process
	return NULL;
}

void mh_nccl_close(mh_nccl *lib) {
	dlclose(lib->h);
	free(lib);
}

int mh_nccl_version(mh_nccl *lib, int *v) { return lib->get_version(v); }

int mh_nccl_unique_id(mh_nccl *lib, void *id) {
	mh_nccl_id u;
	int rc = lib->get_unique_id(&u);
	if (rc == 0) memcpy(id, u.internal, sizeof u.internal);
	return rc;
}

int mh_nccl_init_rank(mh_nccl *lib, void **comm, int nranks, const void *id, int rank) {
	mh_nccl_id u;
	memcpy(u.internal, id, sizeof u.internal);
	return lib->init_rank(comm, nranks, u, rank);
}

int mh_nccl_async_error(mh_nccl *lib, void *comm, int *result) { return lib->async_error(comm, result); }
int mh_nccl_abort(mh_nccl *lib, void *comm) { return lib->abort(comm); }
int mh_nccl_destroy(mh_nccl *lib, void *comm) { return lib->destroy(comm); }

void mh_nccl_describe(mh_nccl *lib, int rc, char *buf, size_t len) {
	static const char *names[] = {"ncclSuccess",         "ncclUnhandledCudaError", "ncclSystemError",
	                              "ncclInternalError",   "ncclInvalidArgument",    "ncclInvalidUsage",
	                              "ncclRemoteError",     "ncclInProgress"};
	const char *name = rc >= 0 && rc < (int)(sizeof names / sizeof names[0]) ? names[rc] : "ncclResult";
	const char *s = lib->error_string(rc);
	snprintf(buf, len, "%s (%d): %s", name, rc, s ? s : "no description");
}

// ---- the CUDA runtime, for the device a communicator is made on ---------------

static struct {
	pthread_mutex_t mu;
	int tried;
	char err[300];
	int (*set_device)(int);
	const char *(*error_string)(int);
} rt = {.mu = PTHREAD_MUTEX_INITIALIZER};

const char *mh_cuda_set_device(int device) {
	static __thread char msg[400];
	pthread_mutex_lock(&rt.mu);
	if (!rt.tried) {
		rt.tried = 1;
		void *h = dlopen("libcudart.so.13", RTLD_NOW | RTLD_GLOBAL);
		if (h == NULL) {
			const char *e = dlerror();
			snprintf(rt.err, sizeof rt.err, "cannot load the CUDA runtime: %s", e ? e : "unknown dlopen error");
		} else {
			rt.set_device = (int (*)(int))dlsym(h, "cudaSetDevice");
			rt.error_string = (const char *(*)(int))dlsym(h, "cudaGetErrorString");
			if (!rt.set_device || !rt.error_string)
				snprintf(rt.err, sizeof rt.err, "libcudart.so.13 has no cudaSetDevice or cudaGetErrorString");
		}
	}
	pthread_mutex_unlock(&rt.mu);
	if (rt.err[0]) {
		snprintf(msg, sizeof msg, "%s", rt.err);
		return msg;
	}
	int rc = rt.set_device(device);
	if (rc != 0) {
		snprintf(msg, sizeof msg, "cudaSetDevice(%d): %s (error %d)", device, rt.error_string(rc), rc);
		return msg;
	}
	return NULL;
}

// ---- AllReduce ---------------------------------------------------------------

enum { typeFloat = 1, typeDouble = 11, typeBFloat16 = 16 };           // ONNX element types
enum { ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9, ncclAvg = 4 }; // nccl.h

// The communicator the CUDA kernel uses. The lock is held while a kernel
// enqueues, so that it is never destroyed under a kernel.
static struct {
	pthread_mutex_t mu;
	mh_nccl *lib;
	void *comm;
} group = {.mu = PTHREAD_MUTEX_INITIALIZER};

void mh_allreduce_use(mh_nccl *lib, void *comm) {
	pthread_mutex_lock(&group.mu);
	group.lib = lib;
	group.comm = comm;
	pthread_mutex_unlock(&group.mu);
}

void mh_allreduce_forget(void *comm) {
	pthread_mutex_lock(&group.mu);
	if (group.comm == comm) {
		group.lib = NULL;
		group.comm = NULL;
	}
	pthread_mutex_unlock(&group.mu);
}

const char *mh_allreduce_cuda(const void *in, void *out, size_t count, int type, void *stream) {
	static __thread char msg[400];
	int dt = type == typeBFloat16 ? ncclBfloat16 : type == typeDouble ? ncclFloat64 : ncclFloat32;
	const char *err = NULL;
	pthread_mutex_lock(&group.mu);
	mh_nccl *lib = group.lib;
	if (lib == NULL) {
		err = "no NCCL communicator is registered in this process (runtime.NCCLComm.Use)";
		goto out;
	}
	int rc = lib->all_reduce(in, out, count, dt, ncclAvg, group.comm, stream);
	const char *call = "ncclAllReduce";
	if (rc == 0) {
		int async = 0;
		rc = lib->async_error(group.comm, &async);
		call = "ncclCommGetAsyncError";
		if (rc == 0 && async != 0) {
			rc = async;
			call = "the communicator (asynchronous error)";
		}
	}
	if (rc != 0) {
		char what[300];
		mh_nccl_describe(lib, rc, what, sizeof what);
		snprintf(msg, sizeof msg, "%s: %s", call, what);
		err = msg;
	}
out:
	pthread_mutex_unlock(&group.mu);
	return err;
}

const char *mh_allreduce_host(const void *in, void *out, size_t count, int type) {
	static __thread char msg[400];
	size_t size = type == typeDouble ? 8 : type == typeBFloat16 ? 2 : 4;
	if (count == 0) return NULL;
	if (out != in) memmove(out, in, count * size);
	char *err = mhHostReduce(type, out, count);
	if (err == NULL) return NULL;
	snprintf(msg, sizeof msg, "%s", err);
	free(err);
	return msg;
}
