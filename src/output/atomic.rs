//! Temporary files and the commit that renames a whole set of them into place.
//!
//! Every file a build writes starts as `.specc-<pid>-<random>.tmp` in the directory of its
//! final path, locked (`flock`) by the build for as long as it lives. Three things keep a
//! failed or interrupted build from leaving anything behind:
//!
//! * a temporary file that is dropped before its commit is unlinked;
//! * a catchable terminating signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM,
//!   SIGVTALRM, SIGPROF, SIGXCPU, SIGABRT, SIGBUS, the real-time signals, ...) unlinks every
//!   live temporary file, then takes the signal's default action, so the exit status says
//!   which signal it was; a signal that was ignored when specc started stays ignored;
//! * SIGKILL cannot be caught: the next build into the same directory removes temporary
//!   files of dead builds ([`remove_stale`]: nobody holds their lock, their pid is gone).
//!
//! [`commit`] renames a set of temporary files (a shard set and its index) under an
//! exclusive lock on the directory, with signals deferred until the last rename, so
//! readers see the old set or the new set: never a mix of two builds.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime};

/// Prefix and suffix of temporary files (also how [`remove_stale`] recognizes them).
const PREFIX: &str = ".specc-";
const SUFFIX: &str = ".tmp";

/// An unlocked temporary file whose writer may be alive is left alone for this long: the
/// instant between creating a file and locking it.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// One registered temporary path; nodes are never freed, so a signal handler can walk
/// the list at any time (a few bytes per temporary file for the life of the process).
struct Node {
    path: *mut libc::c_char,
    live: AtomicBool,
    next: *mut Node,
}

static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
static INSTALL: Once = Once::new();

/// Nothing special is happening.
const IDLE: u8 = 0;
/// A commit is renaming files: a signal is remembered and acted on after it.
const COMMITTING: u8 = 1;
/// A signal is being acted on: the process is about to die.
const DYING: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(IDLE);
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Unlinks every live temporary file (async-signal-safe: atomics and `unlink` only).
fn unlink_all() {
    let mut n = HEAD.load(Ordering::SeqCst);
    while !n.is_null() {
        // SAFETY: nodes are leaked boxes, never freed; their paths are leaked CStrings.
        let node = unsafe { &*n };
        if node.live.swap(false, Ordering::SeqCst) {
            unsafe { libc::unlink(node.path) };
        }
        n = node.next;
    }
}

/// Removes the temporary files, then dies by `sig`'s default action.
fn die(sig: libc::c_int) {
    unlink_all();
    // SAFETY: signal and raise are async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    match STATE.compare_exchange(IDLE, DYING, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => die(sig),
        // Mid-commit: finish the renames first (the commit acts on it afterwards).
        Err(COMMITTING) => PENDING.store(sig, Ordering::SeqCst),
        // Another thread is already on its way out.
        Err(_) => {}
    }
}

/// The signals whose default action ends the process and that a handler can catch.
fn terminating_signals() -> Vec<libc::c_int> {
    let mut v = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGXCPU,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGSYS,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        v.extend([libc::SIGSTKFLT, libc::SIGIO, libc::SIGPWR]);
        v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    }
    v
}

fn install_handlers() {
    INSTALL.call_once(|| {
        // Past RLIMIT_FSIZE the kernel would kill us with SIGXFSZ; ignored, the write fails
        // with EFBIG and the normal error path cleans up.
        // SAFETY: setting a signal to be ignored.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        for sig in terminating_signals() {
            // SAFETY: sigaction with a zeroed struct we own; the handler only uses
            // async-signal-safe calls.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, ptr::null(), &mut old) != 0 {
                    continue;
                }
                // Keep what the caller chose: `nohup` ignores SIGHUP, a shell may ignore SIGINT.
                if old.sa_sigaction != libc::SIG_DFL {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, ptr::null_mut());
            }
        }
    });
}

fn register(path: &Path) -> &'static Node {
    install_handlers();
    let c = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let node: &'static mut Node = Box::leak(Box::new(Node {
        path: c.into_raw(),
        live: AtomicBool::new(true),
        next: ptr::null_mut(),
    }));
    let mut head = HEAD.load(Ordering::SeqCst);
    loop {
        node.next = head;
        match HEAD.compare_exchange(head, node, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return node,
            Err(h) => head = h,
        }
    }
}

/// A temporary file beside its final path, removed unless committed.
pub struct Temp {
    path: PathBuf,
    file: File,
    node: &'static Node,
}

impl Temp {
    /// Creates a new temporary file in `dir` with the mode a new output gets (0666 less
    /// the umask), registered for signal cleanup before it exists, and locked.
    pub fn create(dir: &Path) -> io::Result<Temp> {
        let mut node = None;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .suffix(SUFFIX)
            .make_in(dir, |p| {
                let n = register(p);
                let opened = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(p);
                if opened.is_err() {
                    n.live.store(false, Ordering::SeqCst);
                } else {
                    node = Some(n);
                }
                opened
            })?;
        let node = node.expect("make_in opened a file through the closure");
        // keep() hands the file to us: our Drop removes it, not tempfile's.
        let (file, path) = tmp.keep().map_err(|e| e.error)?;
        let temp = Temp { path, file, node };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(temp.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            // Filesystems without flock (some network mounts): the age rule still protects it.
            let e = io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::ENOLCK | libc::EINVAL | libc::ENOTSUP)
            ) {
                return Err(e);
            }
        }
        Ok(temp)
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.node.live.swap(false, Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether finished files are flushed to the device before they are renamed into place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Rename once written (as `cp`, `dd` and `safetensors.save_file` do): the files are
    /// whole or absent whatever the process does, and the OS writes them back in its own time.
    #[default]
    Written,
    /// `fsync` each file before the renames and the directory after, so the new files are
    /// on the device when the build returns, and survive a power loss.
    Synced,
}

/// An exclusive `flock` on a directory, released when the descriptor closes on drop.
struct DirLock(#[allow(dead_code)] Option<File>);

impl DirLock {
    fn take(dir: &Path) -> io::Result<DirLock> {
        let f = File::open(dir)?;
        // SAFETY: flock on a descriptor we own; blocks until a racing build's commit ends.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = io::Error::last_os_error();
            // No flock here (some network filesystems): commit without it.
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOLCK | libc::EINVAL | libc::ENOTSUP)
            ) {
                return Ok(DirLock(None));
            }
            return Err(e);
        }
        Ok(DirLock(Some(f)))
    }
}

/// Defers signals while renames are in flight; acts on a deferred one when dropped.
struct Critical;

impl Critical {
    fn enter() -> io::Result<Critical> {
        install_handlers();
        loop {
            match STATE.compare_exchange(IDLE, COMMITTING, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(Critical),
                // A signal handler is removing our files: the process is about to end.
                Err(DYING) => return Err(io::Error::other("interrupted by a signal")),
                // Another thread of this process is committing: wait for it.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        STATE.store(IDLE, Ordering::SeqCst);
        let sig = PENDING.swap(0, Ordering::SeqCst);
        if sig != 0
            && STATE
                .compare_exchange(IDLE, DYING, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            die(sig);
        }
    }
}

/// What a commit did besides renaming.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Files the new set superseded, removed.
    pub removed: Vec<PathBuf>,
}

/// Renames each temporary file to its final path, then removes what `supersedes` names
/// (called with the directory locked, after the renames), as one step that a racing build
/// or a signal cannot split. With [`Durability::Synced`] the files are flushed first and
/// the directory after.
pub fn commit(
    dir: &Path,
    files: Vec<(Temp, PathBuf)>,
    durability: Durability,
    supersedes: &dyn Fn() -> Vec<PathBuf>,
) -> io::Result<Committed> {
    let synced = durability == Durability::Synced;
    if synced {
        for (t, _) in &files {
            t.file.sync_all()?;
        }
    }
    let _lock = DirLock::take(dir)?;
    let removed = {
        let _critical = Critical::enter()?;
        for (t, dest) in &files {
            std::fs::rename(&t.path, dest).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot rename into `{}`: {e}", dest.display()),
                )
            })?;
            t.node.live.store(false, Ordering::SeqCst);
        }
        let mut removed = Vec::new();
        for p in supersedes() {
            if std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
        removed
    };
    drop(files);
    if synced {
        File::open(dir)?.sync_all()?;
    }
    Ok(Committed { removed })
}

/// Whether the process that named a temporary file `.specc-<pid>-…` may still be running.
fn writer_may_live(name: &str) -> bool {
    let pid = name[PREFIX.len()..]
        .split('-')
        .next()
        .and_then(|p| p.parse::<libc::pid_t>().ok());
    match pid {
        // SAFETY: signal 0 only asks whether the process exists.
        Some(pid) if pid > 0 => {
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            alive || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
        _ => true,
    }
}

/// Removes temporary files of builds that died without cleaning up (SIGKILL, a power
/// loss): `.specc-*.tmp` files in `dir` that no process holds a lock on, and whose writer
/// (the pid in the name) is not running or that are over a minute old. A live build holds
/// its temporary file's lock from the instant after creating it; the pid and age rules
/// cover that instant. Best effort: what cannot be removed is left.
pub fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !meta.is_file() || (!old && writer_may_live(&name)) {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new().read(true).open(&path) else {
            continue;
        };
        // SAFETY: flock on a descriptor we own; a live build holds its temporary's lock.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0
            && std::fs::remove_file(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed
}
