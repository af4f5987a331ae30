//! What hooktel asks of the system about itself: who runs it and on which host. The calls into
//! libc that need `unsafe`, each with why it is sound.

/// The user this process runs as, from the password database (`$USER` is unset under systemd and
/// in many containers), else `$USER`.
pub(crate) fn user_name() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` and `buf` outlive the call; getpwuid_r writes within `buf.len()` bytes and sets
    // `found` to `&pwd` or null; `pw_name` then points into `buf`, NUL-terminated.
    let from_db = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::getuid(), &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
            std::ffi::CStr::from_ptr(pwd.pw_name).to_str().ok().map(str::to_owned)
        } else {
            None
        }
    };
    from_db.filter(|u| !u.is_empty()).or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// The machine's host name (`gethostname`).
pub(crate) fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|s| !s.is_empty())
}
