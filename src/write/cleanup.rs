//! Removing the temporary output when SIGINT or SIGTERM arrives mid-write.
//!
//! The handler only calls async-signal-safe functions: `unlink` on a path stored before
//! the write began, then the default action of the signal (so the exit status says which).

use std::ffi::CString;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

static TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(ptr::null_mut());
static INSTALL: Once = Once::new();

extern "C" fn on_signal(sig: libc::c_int) {
    let p = TEMP.swap(ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: unlink, signal and raise are async-signal-safe; p is a leaked CString or null.
    unsafe {
        if !p.is_null() {
            libc::unlink(p);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// While alive, SIGINT/SIGTERM delete `path` before the process dies.
pub struct Guard(());

impl Guard {
    /// Registers `path` as the file to remove on a signal.
    pub fn new(path: &Path) -> Guard {
        INSTALL.call_once(|| {
            // Past RLIMIT_FSIZE the kernel would kill us with SIGXFSZ, leaving the temporary
            // file; ignored, the write fails with EFBIG and the normal error path cleans up.
            // SAFETY: setting a signal to be ignored.
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: installing a handler that only uses async-signal-safe calls.
                unsafe {
                    libc::signal(sig, on_signal as *const () as libc::sighandler_t);
                }
            }
        });
        use std::os::unix::ffi::OsStrExt;
        if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
            let old = TEMP.swap(c.into_raw(), Ordering::SeqCst);
            free(old);
        }
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        free(TEMP.swap(ptr::null_mut(), Ordering::SeqCst));
    }
}

fn free(p: *mut libc::c_char) {
    if !p.is_null() {
        // SAFETY: every non-null pointer stored in TEMP came from CString::into_raw.
        drop(unsafe { CString::from_raw(p) });
    }
}
