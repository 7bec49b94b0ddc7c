//! This process's TCP sockets as the kernel sees them: for tests that check a socket option on
//! every connection a running network holds (`tests/nodelay.rs`), whoever opened it.
//!
//! Linux only: the sockets are found through `/proc/self/fd` and `/proc/self/net/tcp{,6}`, and
//! the option is read back with `getsockopt`, so nothing depends on which code path made the
//! socket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// One established TCP connection of this process.
#[derive(Debug, Clone)]
pub struct TcpSocket {
    /// The file descriptor.
    pub fd: RawFd,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address.
    pub remote: SocketAddr,
    /// Whether `TCP_NODELAY` is set.
    pub nodelay: bool,
}

/// TCP state "ESTABLISHED" in `/proc/net/tcp`.
const ESTABLISHED: &str = "01";

/// Every established TCP socket this process holds now.
pub fn established_tcp_sockets() -> std::io::Result<Vec<TcpSocket>> {
    let mut by_inode: HashMap<u64, (SocketAddr, SocketAddr)> = HashMap::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            // No IPv6 in this kernel: nothing to list there.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || fields[3] != ESTABLISHED {
                continue;
            }
            let (Some(local), Some(remote), Ok(inode)) = (
                parse_address(fields[1]),
                parse_address(fields[2]),
                fields[9].parse::<u64>(),
            ) else {
                continue;
            };
            by_inode.insert(inode, (local, remote));
        }
    }
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed while listing
        };
        let target = target.to_string_lossy();
        let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(&(local, remote)) = by_inode.get(&inode) else {
            continue;
        };
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        let Some(nodelay) = nodelay(fd) else {
            continue; // closed and maybe reused while listing
        };
        sockets.push(TcpSocket {
            fd,
            local,
            remote,
            nodelay,
        });
    }
    Ok(sockets)
}

fn nodelay(fd: RawFd) -> Option<bool> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given; a stale or reused fd
    // at worst makes getsockopt fail, which is handled.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value != 0)
}

/// "0100007F:1F90" (IPv4, each 32-bit word in host order) or the 32-hex-digit IPv6 form.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip, 16).ok()?.to_ne_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (word, chunk) in ip.as_bytes().chunks(8).enumerate() {
                let value = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
                bytes[word * 4..word * 4 + 4].copy_from_slice(&value.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_address_forms_parse() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_address("0100007F:1F90"),
                Some("127.0.0.1:8080".parse().unwrap())
            );
            assert_eq!(
                parse_address("00000000000000000000000001000000:0050"),
                Some("[::1]:80".parse().unwrap())
            );
        }
        assert_eq!(parse_address("zz:1"), None);
    }

    #[test]
    fn a_socket_with_and_without_nodelay_is_told_apart() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dialled = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nodelay(true).unwrap();
        let sockets = established_tcp_sockets().unwrap();
        let find = |local: SocketAddr| sockets.iter().find(|s| s.local == local).cloned();
        let dialled_seen = find(dialled.local_addr().unwrap()).expect("dialled socket listed");
        let accepted_seen = find(accepted.local_addr().unwrap()).expect("accepted socket listed");
        assert!(!dialled_seen.nodelay);
        assert!(accepted_seen.nodelay);
        assert_eq!(dialled_seen.remote, accepted.local_addr().unwrap());
    }
}
