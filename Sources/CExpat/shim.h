#ifndef STOX_CEXPAT_SHIM_H
#define STOX_CEXPAT_SHIM_H
// No _GNU_SOURCE here: a feature macro changes how glibc's headers define their types (with it,
// <sys/select.h> names fd_set's member fds_bits), and this module would then disagree with the
// Glibc module Swift imports. A Swift file that sees both (any module above XMLCore that
// imports Glibc or Synchronization) fails to build. RTLD_DEFAULT, a GNU extension, is spelled
// out instead: glibc defines it as the null handle.
#include <expat.h>
#include <dlfcn.h>
#include <stddef.h>
#ifndef RTLD_DEFAULT
#define RTLD_DEFAULT ((void *) 0)
#endif

/// Turns off expat's reparse deferral (CVE-2023-52425, expat 2.6.0, backported by Debian to
/// 2.5.0-1+deb12u3 and later) on `parser`. With deferral on, a token split across two reads is
/// not retried until "enough" new bytes arrive, so a stanza or `</stream:stream>` whose last byte
/// came in its own TCP segment sits unparsed until the peer sends more: a liveness bug for a
/// streaming protocol. The quadratic re-parse that deferral guards against is bounded here by the
/// stream parser's element-size cap.
///
/// The symbol is looked up at run time, not named at link time, because the version number does
/// not tell a backport apart (Debian's fixed 2.5.0 still says 2.5.0) and because the shared
/// library can be upgraded under a binary built against an older header.
///
/// Returns 1 if deferral was turned off, 0 if this expat has no deferral to turn off.
static inline int stox_expat_disable_reparse_deferral(XML_Parser parser) {
    typedef XML_Bool (*stox_set_deferral_fn)(XML_Parser, XML_Bool);
    // Looked up once per process; threads that race store the same value.
    static void *cached = NULL;
    static int looked_up = 0;
    void *symbol;
    if (__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
        symbol = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    } else {
        symbol = dlsym(RTLD_DEFAULT, "XML_SetReparseDeferralEnabled");
        __atomic_store_n(&cached, symbol, __ATOMIC_RELAXED);
        __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
    }
    if (symbol == NULL) return 0;
    return ((stox_set_deferral_fn)symbol)(parser, XML_FALSE) == XML_TRUE ? 1 : 0;
}

#endif
