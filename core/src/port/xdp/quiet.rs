//! libxdp and libbpf print warnings on stderr ("No bpffs found", "skipping unrecognized
//! data section") that mean nothing to a user: with one program per interface the
//! dispatcher is not needed. Their print callbacks are replaced, once per process, by
//! ones that stay silent unless `VNET_LIBXDP_DEBUG` is set. Failures still reach the user
//! as errors: every libxdp/libbpf call's return code is checked.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Once;

extern "C" {
    // From the libbpf that libxdp-sys builds and links statically.
    fn libbpf_set_print(
        f: Option<unsafe extern "C" fn(c_int, *const c_char, *mut c_void) -> c_int>,
    ) -> Option<unsafe extern "C" fn(c_int, *const c_char, *mut c_void) -> c_int>;
}

unsafe extern "C" fn silent(_level: c_int, _fmt: *const c_char, _args: *mut c_void) -> c_int {
    0
}

unsafe extern "C" fn silent_xdp(
    _level: libxdp_sys::libxdp_print_level,
    _fmt: *const c_char,
    _args: *mut libxdp_sys::__va_list_tag,
) -> c_int {
    0
}

static ONCE: Once = Once::new();

/// Install the silent callbacks (idempotent).
pub fn quieten() {
    if std::env::var_os("VNET_LIBXDP_DEBUG").is_some() {
        return;
    }
    ONCE.call_once(|| {
        // SAFETY: both setters only store the function pointer. `silent` has the C
        // signature libbpf calls it with (level enum as int, format, va_list, which is
        // passed as a pointer on x86-64 and aarch64); `silent_xdp` has libxdp's exact
        // bound signature. Neither reads its arguments.
        unsafe {
            libbpf_set_print(Some(silent));
            libxdp_sys::libxdp_set_print(Some(silent_xdp));
        }
    });
}
