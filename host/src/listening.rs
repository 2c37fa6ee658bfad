//! The server's socket, and what accepting many connections at once asks of the system.
//!
//! - Open files: every connection is a descriptor, and the soft limit a process starts with
//!   is usually 1,024 whatever the hard limit allows; with ~1,000 idle connections other
//!   clients waited seconds. The soft limit is raised to the hard one at start (as nginx and
//!   most servers do), and both are logged.
//! - The listen backlog: the runtime's default is 128, so a burst of connects waited on SYN
//!   retransmits; the socket listens with the system's `net.core.somaxconn` instead.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Used when `/proc/sys/net/core/somaxconn` cannot be read (the kernel's default since 5.4).
const DEFAULT_BACKLOG: u32 = 4096;

/// The soft and hard limits of open files, after raising the soft one to the hard one.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// The backlog the kernel allows a listening socket (`net.core.somaxconn`).
fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .filter(|backlog| *backlog > 0)
        .unwrap_or(DEFAULT_BACKLOG)
}

/// Listens on `address` with the system's backlog; the listener and that backlog.
pub fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, u32)> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As the runtime's own bind does: a restarted server rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    let backlog = system_backlog();
    Ok((socket.listen(backlog)?, backlog))
}
