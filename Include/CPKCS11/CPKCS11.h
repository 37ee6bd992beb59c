// The one place where C meets hsmd. PKCS#11 types come from the system's own header
// (Debian's libsofthsm2-dev installs /usr/include/softhsm/cryptoki.h); this file only adds what
// Swift cannot import from it: constants defined through casts, and the dlopen dance.
#ifndef HSMD_CPKCS11_H
#define HSMD_CPKCS11_H

#include <softhsm/cryptoki.h>
#include <dlfcn.h>
#include <stddef.h>

// Swift drops macros that contain casts; re-state the ones hsmd needs as typed constants.
static const CK_ULONG hsmd_CK_UNAVAILABLE_INFORMATION = (CK_ULONG)-1L;
static const CK_ULONG hsmd_CKA_UNWRAP_TEMPLATE = CKA_UNWRAP_TEMPLATE;
static const CK_ULONG hsmd_CKA_WRAP_TEMPLATE = CKA_WRAP_TEMPLATE;

/// Loads a PKCS#11 module with dlopen and asks it for its function list.
/// On failure returns NULL and leaves a static, human-readable reason in *error.
static inline void *hsmd_p11_load(const char *path, CK_FUNCTION_LIST_PTR *functions, const char **error) {
    *functions = NULL;
    *error = NULL;
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        *error = dlerror();
        return NULL;
    }
    CK_C_GetFunctionList getFunctionList = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    if (getFunctionList == NULL) {
        *error = "the library exports no C_GetFunctionList: not a PKCS#11 module";
        dlclose(library);
        return NULL;
    }
    if (getFunctionList(functions) != CKR_OK || *functions == NULL) {
        *error = "C_GetFunctionList failed";
        dlclose(library);
        return NULL;
    }
    return library;
}

static inline void hsmd_p11_unload(void *library) {
    if (library != NULL) {
        dlclose(library);
    }
}

#endif
