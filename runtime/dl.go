package runtime

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// mohawk_try_dlopen loads and unloads a shared library; on failure it copies
// dlerror's message (thread-local) into msg and returns -1.
static int mohawk_try_dlopen(const char *path, char *msg, size_t n) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		strncpy(msg, e ? e : "unknown dlopen error", n - 1);
		msg[n - 1] = 0;
		return -1;
	}
	dlclose(h);
	return 0;
}
*/
import "C"

import (
	"errors"
	"unsafe"
)

// tryDlopen reports whether the dynamic loader can load name (a file path or
// a library name searched like any dependency: LD_LIBRARY_PATH, the cache,
// system folders). The error is the loader's message, which names the first
// library it could not find. The library is unloaded again.
func tryDlopen(name string) error {
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	var buf [1024]C.char
	if C.mohawk_try_dlopen(cName, &buf[0], C.size_t(len(buf))) != 0 {
		return errors.New(C.GoString(&buf[0]))
	}
	return nil
}
