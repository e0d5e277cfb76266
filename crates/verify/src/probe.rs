//! Connectivity probes run from inside a namespace, in Rust rather than through `ping` or `nc`:
//! ICMP echo over a raw socket, TCP connect, TCP and UDP echo round-trips against [`EchoServer`],
//! and reachability assertions whose errors say who could not reach whom.
//!
//! Every socket is created on a thread that entered the namespace ([`Netns::run`]); a socket
//! stays in the namespace it was created in, so the echo server's own threads need not enter it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto, socket,
};
use vethlab_runtime::Netns;

use crate::error::{ProbeError, ReachError};

/// How many echo requests [`ping`] sends within its timeout: the first may be lost while the
/// neighbour is being resolved.
const PING_SENDS: u32 = 3;
/// How often the echo server's threads look at their stop flag.
const SERVER_TICK: Duration = Duration::from_millis(50);

fn io_err(netns: &str, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProbeError {
    let (netns, what) = (netns.to_owned(), what.into());
    move |source| ProbeError::Io { netns, what, source }
}

/// Identifiers for concurrent pings in one process must differ: a raw socket sees every ICMP
/// packet of its namespace, and the kernel does not pick identifiers for raw sockets.
fn next_ident() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_mul(31).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 =
        data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(ident: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![8, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(b"vethlab-verify-probe");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// What an ICMP packet received on the raw socket means for our ping.
#[derive(Debug, PartialEq)]
enum Icmp {
    Reply {
        seq: u16,
    },
    /// Destination unreachable (type 3) about one of our requests, with its code.
    Unreachable {
        code: u8,
    },
    Other,
}

/// Parses an IPv4 packet holding ICMP, as a raw socket delivers it.
fn parse_icmp(packet: &[u8], ident: u16, dst: Ipv4Addr) -> Icmp {
    let ihl = |p: &[u8]| p.first().map(|b| usize::from(b & 0x0f) * 4);
    let Some(hl) = ihl(packet) else { return Icmp::Other };
    let Some(icmp) = packet.get(hl..) else { return Icmp::Other };
    if icmp.len() < 8 {
        return Icmp::Other;
    }
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    match icmp[0] {
        0 if id == ident && packet.get(12..16) == Some(&dst.octets()[..]) => Icmp::Reply { seq },
        3 => {
            // The error quotes our request: its IP header (destination at 16..20), then at least
            // 8 bytes of our ICMP header.
            let inner = &icmp[8..];
            let Some(ihl) = ihl(inner) else { return Icmp::Other };
            let quoted = inner.get(ihl..ihl + 8);
            let ours = inner.get(16..20) == Some(&dst.octets()[..])
                && quoted.is_some_and(|q| q[0] == 8 && u16::from_be_bytes([q[4], q[5]]) == ident);
            if ours { Icmp::Unreachable { code: icmp[1] } } else { Icmp::Other }
        }
        _ => Icmp::Other,
    }
}

/// `ping -c1 -W timeout DST` from inside `ns`: sends up to three ICMP echo requests spread over
/// `timeout` on a raw socket and returns the round-trip time of the first matching reply (same
/// identifier, one of our sequence numbers, sent by `dst`).
pub fn ping(ns: &Netns, dst: Ipv4Addr, timeout: Duration) -> Result<Duration, ProbeError> {
    let netns = ns.label().to_owned();
    ns.run(move || ping_here(&netns, dst, timeout))?
}

fn ping_here(netns: &str, dst: Ipv4Addr, timeout: Duration) -> Result<Duration, ProbeError> {
    let what = format!("ping {dst}");
    let sock: OwnedFd =
        socket(AddressFamily::Inet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::Icmp)
            .map_err(|e| io_err(netns, format!("{what}: open raw icmp socket"))(e.into()))?;
    let ident = next_ident();
    let to = SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
    let start = Instant::now();
    let deadline = start + timeout;
    let interval = timeout / PING_SENDS;
    let mut sent: Vec<Instant> = Vec::new();
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(ProbeError::Timeout { what: format!("echo reply from {dst}"), timeout });
        }
        let next_send = start + interval * sent.len() as u32;
        if sent.len() < PING_SENDS as usize && now >= next_send {
            let seq = sent.len() as u16;
            sendto(sock.as_raw_fd(), &echo_request(ident, seq), &to, MsgFlags::empty())
                .map_err(|e| io_err(netns, format!("{what}: send echo request"))(e.into()))?;
            sent.push(Instant::now());
            continue;
        }
        let wake = if sent.len() < PING_SENDS as usize { next_send.min(deadline) } else { deadline };
        let wait = wake.saturating_duration_since(now);
        // Round up so that we never spin on a sub-millisecond remainder.
        let ms = u16::try_from(wait.as_millis() + 1).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms))
            .map_err(|e| io_err(netns, format!("{what}: wait for reply"))(e.into()))?;
        if ready == 0 {
            continue;
        }
        let (len, _) = recvfrom::<SockaddrIn>(sock.as_raw_fd(), &mut buf)
            .map_err(|e| io_err(netns, format!("{what}: receive"))(e.into()))?;
        match parse_icmp(&buf[..len], ident, dst) {
            Icmp::Reply { seq } => {
                if let Some(at) = sent.get(usize::from(seq)) {
                    return Ok(at.elapsed());
                }
            }
            Icmp::Unreachable { code } => {
                let source = std::io::Error::from_raw_os_error(match code {
                    0 => libc::ENETUNREACH,
                    _ => libc::EHOSTUNREACH,
                });
                return Err(ProbeError::Io { netns: netns.to_owned(), what, source });
            }
            Icmp::Other => {}
        }
    }
}

/// Opens a TCP connection to `addr` from inside `ns` and returns how long the handshake took.
pub fn tcp_connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<Duration, ProbeError> {
    let netns = ns.label().to_owned();
    ns.run(move || {
        let start = Instant::now();
        let stream = connect(&netns, addr, timeout)?;
        let rtt = start.elapsed();
        drop(stream);
        Ok(rtt)
    })?
}

fn connect(netns: &str, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProbeError> {
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut {
            ProbeError::Timeout { what: format!("tcp connection to {addr}"), timeout }
        } else {
            io_err(netns, format!("tcp connect to {addr}"))(e)
        }
    })
}

/// Sends `payload` over TCP to an echo server at `addr` from inside `ns`, half-closes, and
/// checks the same bytes come back; returns the time from connect to the echo's end.
pub fn tcp_echo(
    ns: &Netns,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let netns = ns.label().to_owned();
    let payload = payload.to_vec();
    ns.run(move || {
        let what = format!("tcp echo from {addr}");
        let start = Instant::now();
        let mut stream = connect(&netns, addr, timeout)?;
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
        let timed_out = |e: std::io::Error| {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                ProbeError::Timeout { what: what.clone(), timeout }
            } else {
                io_err(&netns, what.clone())(e)
            }
        };
        stream.set_read_timeout(Some(left)).map_err(timed_out)?;
        stream.set_write_timeout(Some(left)).map_err(timed_out)?;
        stream.write_all(&payload).map_err(timed_out)?;
        stream.shutdown(Shutdown::Write).map_err(timed_out)?;
        let mut got = Vec::new();
        stream.read_to_end(&mut got).map_err(timed_out)?;
        if got != payload {
            return Err(ProbeError::Mismatch { what, sent: payload.len(), got: got.len() });
        }
        Ok(start.elapsed())
    })?
}

/// Sends `payload` in a UDP datagram to an echo server at `addr` from inside `ns` and waits for
/// the same bytes to come back, resending up to twice within `timeout`; returns the round trip
/// of the datagram that was answered first.
pub fn udp_echo(
    ns: &Netns,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let netns = ns.label().to_owned();
    let payload = payload.to_vec();
    ns.run(move || {
        let what = format!("udp echo from {addr}");
        let err = |e| io_err(&netns, what.clone())(e);
        let bind: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let sock = UdpSocket::bind(bind).map_err(err)?;
        sock.connect(addr).map_err(err)?;
        let start = Instant::now();
        let deadline = start + timeout;
        let interval = timeout / PING_SENDS;
        let mut buf = vec![0u8; payload.len() + 1];
        for attempt in 0..PING_SENDS {
            let sent_at = Instant::now();
            sock.send(&payload).map_err(err)?;
            let until = if attempt + 1 == PING_SENDS { deadline } else { (sent_at + interval).min(deadline) };
            let wait = until.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                continue;
            }
            sock.set_read_timeout(Some(wait)).map_err(err)?;
            match sock.recv(&mut buf) {
                // Any echo of our payload counts; measure from the first send, which is
                // conservative when an earlier datagram's echo arrives late.
                Ok(n) if buf[..n] == payload[..] => return Ok(start.elapsed()),
                Ok(n) => return Err(ProbeError::Mismatch { what, sent: payload.len(), got: n }),
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Err(ProbeError::Timeout { what, timeout })
    })?
}

/// Which transport an [`EchoServer`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// An echo server whose socket lives in a namespace. It records the source address of every
/// client (a TCP connection or a UDP datagram), which shows whether traffic was masqueraded,
/// and stops when dropped.
#[derive(Debug)]
pub struct EchoServer {
    local: SocketAddr,
    proto: Proto,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `bind` (port 0 picks one; see [`EchoServer::local_addr`]) inside `ns` and serves.
    pub fn start(ns: &Netns, proto: Proto, bind: SocketAddr) -> Result<EchoServer, ProbeError> {
        let netns = ns.label().to_owned();
        let what = format!("{proto:?} echo server on {bind}").to_lowercase();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peers.clone(), stop.clone());
        let err = |e| io_err(&netns, what.clone())(e);
        let (local, thread) = match proto {
            Proto::Tcp => {
                let listener = ns.run(move || TcpListener::bind(bind))?.map_err(err)?;
                listener.set_nonblocking(true).map_err(err)?;
                let local = listener.local_addr().map_err(err)?;
                (local, std::thread::spawn(move || serve_tcp(listener, p, s)))
            }
            Proto::Udp => {
                let sock = ns.run(move || UdpSocket::bind(bind))?.map_err(err)?;
                sock.set_read_timeout(Some(SERVER_TICK)).map_err(err)?;
                let local = sock.local_addr().map_err(err)?;
                (local, std::thread::spawn(move || serve_udp(sock, p, s)))
            }
        };
        Ok(EchoServer { local, proto, peers, stop, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// Source addresses seen so far, in arrival order (one per TCP connection or UDP datagram).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The serving threads notice the flag within SERVER_TICK; a panic there has already
            // been reported on stderr and must not turn into a second panic here.
            let _ = thread.join();
        }
    }
}

fn record(peers: &Mutex<Vec<SocketAddr>>, peer: SocketAddr) {
    match peers.lock() {
        Ok(mut p) => p.push(peer),
        Err(e) => e.into_inner().push(peer),
    }
}

fn serve_tcp(listener: TcpListener, peers: Arc<Mutex<Vec<SocketAddr>>>, stop: Arc<AtomicBool>) {
    let mut clients = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                record(&peers, peer);
                let stop = stop.clone();
                clients.push(std::thread::spawn(move || echo_tcp(stream, &stop)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                let tick = PollTimeout::from(SERVER_TICK.as_millis() as u16);
                // An error here (EINTR) just means we look at the flag and poll again.
                let _ = poll(&mut fds, tick);
            }
            // A connection that was reset before we accepted it is the client's problem.
            Err(_) => {}
        }
    }
    for client in clients {
        let _ = client.join();
    }
}

fn echo_tcp(mut stream: TcpStream, stop: &AtomicBool) {
    // The accepted socket may inherit non-blocking mode; echo with blocking reads that wake up
    // every tick to look at the stop flag.
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(SERVER_TICK)).is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn serve_udp(sock: UdpSocket, peers: Arc<Mutex<Vec<SocketAddr>>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            record(&peers, peer);
            // A lost echo is what the client's retry is for.
            let _ = sock.send_to(&buf[..n], peer);
        }
    }
}

/// Pings `to` from the namespace `from` (labelled for messages); an error names both ends.
pub fn assert_reachable(
    from: (&str, &Netns),
    to: Ipv4Addr,
    timeout: Duration,
) -> Result<Duration, ReachError> {
    let (label, ns) = from;
    ping(ns, to, timeout).map_err(|source| {
        let (from, netns, to) = (label.to_owned(), ns.label().to_owned(), to.to_string());
        if source.is_no_answer() {
            ReachError::Unreachable { from, netns, to, source: Box::new(source) }
        } else {
            ReachError::Probe { from, netns, to, source: Box::new(source) }
        }
    })
}

/// Pings `to` from `from` and succeeds only if no reply comes within `timeout` (or the network
/// reports it unreachable); a probe that cannot run at all is an error too.
pub fn assert_unreachable(from: (&str, &Netns), to: Ipv4Addr, timeout: Duration) -> Result<(), ReachError> {
    let (label, ns) = from;
    let (from, netns, to_s) = (label.to_owned(), ns.label().to_owned(), to.to_string());
    match ping(ns, to, timeout) {
        Ok(rtt) => Err(ReachError::UnexpectedlyReachable { from, netns, to: to_s, rtt }),
        Err(e) if e.is_no_answer() => Ok(()),
        Err(source) => Err(ReachError::Probe { from, netns, to: to_s, source: Box::new(source) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies_to_zero() {
        let packet = echo_request(0x1234, 7);
        assert_eq!(checksum(&packet), 0);
    }

    #[test]
    fn replies_are_matched_by_identifier_and_source() {
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut reply = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1];
        let mut icmp = echo_request(0x1234, 2);
        icmp[0] = 0;
        reply.extend_from_slice(&icmp);
        assert_eq!(parse_icmp(&reply, 0x1234, dst), Icmp::Reply { seq: 2 });
        assert_eq!(parse_icmp(&reply, 0x1235, dst), Icmp::Other);
        assert_eq!(parse_icmp(&reply, 0x1234, Ipv4Addr::new(10, 0, 0, 3)), Icmp::Other);
        assert_eq!(parse_icmp(&reply[..22], 0x1234, dst), Icmp::Other);
    }

    #[test]
    fn unreachable_errors_quoting_our_request_are_recognised() {
        let dst = Ipv4Addr::new(10, 0, 0, 9);
        let ip = |src: [u8; 4], d: [u8; 4]| {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
            h.extend_from_slice(&src);
            h.extend_from_slice(&d);
            h
        };
        let mut packet = ip([10, 0, 0, 1], [10, 0, 0, 1]);
        packet.extend_from_slice(&[3, 1, 0, 0, 0, 0, 0, 0]);
        packet.extend(ip([10, 0, 0, 1], dst.octets()));
        packet.extend_from_slice(&echo_request(0x4242, 0)[..8]);
        assert_eq!(parse_icmp(&packet, 0x4242, dst), Icmp::Unreachable { code: 1 });
        assert_eq!(parse_icmp(&packet, 0x4243, dst), Icmp::Other);
    }
}
