//! Makes sure tracefs is mounted: classic tracepoints (process exit) are attached through it.

use std::io;
use std::path::Path;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Returns the tracefs mount point, mounting it if needed.
pub fn ensure_tracefs() -> io::Result<&'static str> {
    for dir in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(dir);
        }
    }
    // Mounted but unreadable: tracefs is mode 0700 root.
    if let Err(err) = std::fs::read_dir(TRACEFS) {
        if err.kind() == io::ErrorKind::PermissionDenied {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{TRACEFS} is not readable: run as root, or add CAP_DAC_READ_SEARCH"),
            ));
        }
    }
    mount_tracefs()?;
    if Path::new(TRACEFS).join("events").is_dir() {
        Ok(TRACEFS)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "tracefs mounted but has no events directory",
        ))
    }
}

fn mount_tracefs() -> io::Result<()> {
    let source = c"nodev";
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        tracing::info!("mounted tracefs on {TRACEFS}");
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
