//! The floor of the comparison: a byte relay on io_uring that knows nothing
//! of HTTP. Each client connection gets its own backend connection (round
//! robin over the backends) and bytes are copied both ways as they come, so
//! a keep-alive request costs it exactly what any io_uring proxy must spend
//! on it at least: two receives and two sends. `compare.sh --mode floor`
//! runs it beside ringgate, nginx and HAProxy, to show how much of a proxy's
//! CPU per request is the kernel's loopback TCP work that no proxy can skip.
//!
//! Two ways to receive, chosen with `--recv`:
//! - `plain`: one `IORING_OP_RECV` per read into the connection's own buffer,
//!   as monoio (and so ringgate) does;
//! - `multishot`: one multishot receive armed per socket, filling buffers from
//!   a ring registered with the kernel (`IORING_REGISTER_PBUF_RING`), and
//!   sockets used through registered file slots: the cheapest way io_uring
//!   offers to receive.
//!
//! The ring is set up as ringgate's workers set theirs up (single issuer,
//! deferred and cooperative task running).
//!
//! Usage: `relay --listen 127.0.0.1:18131 --backend 127.0.0.1:19101
//! [--backend ...] [--recv plain|multishot]`.

// io_uring hands the kernel raw pointers to buffers this program owns; each
// `unsafe` block below keeps those buffers alive and unmoved until the
// operation's completion arrives.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// Size of each receive buffer, both modes.
const BUF_SIZE: usize = 16 * 1024;
/// Buffers in the provided-buffer ring (a power of two, at most 32768).
const RING_BUFS: u16 = 4096;
const BUF_GROUP: u16 = 1;

const ACCEPT: u8 = 0;
const RECV: u8 = 1; // + side
const SEND: u8 = 3; // + side the bytes came from

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvMode {
    Plain,
    Multishot,
}

fn usage() -> ! {
    eprintln!("usage: relay --listen ADDR --backend ADDR [--backend ADDR]... [--recv plain|multishot]");
    std::process::exit(2)
}

/// One direction of a connection pair: bytes received on `side` waiting to be
/// sent to the other side, in order, one send in flight at a time.
#[derive(Debug, Default)]
struct Direction {
    /// (buffer id, start, end) in multishot mode; (0, start, end) of the
    /// pair's own buffer in plain mode.
    queue: VecDeque<(u16, usize, usize)>,
    sending: bool,
}

#[derive(Debug)]
struct Pair {
    /// 0: the client, 1: the backend.
    fds: [RawFd; 2],
    /// Plain mode's receive buffers, one per side.
    bufs: [Vec<u8>; 2],
    dirs: [Direction; 2],
    in_flight: u32,
    closing: bool,
}

/// The provided-buffer ring: `RING_BUFS` entries of `struct io_uring_buf`
/// shared with the kernel, plus the buffers they point at.
struct BufRing {
    entries: *mut u8,
    layout: std::alloc::Layout,
    bufs: Vec<u8>,
    tail: u16,
}

impl BufRing {
    fn new(ring: &IoUring) -> io::Result<Self> {
        let layout = std::alloc::Layout::from_size_align(RING_BUFS as usize * 16, 4096)
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Safety: the layout has a non-zero size.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) };
        if entries.is_null() {
            return Err(io::Error::other("out of memory for the buffer ring"));
        }
        let mut br = BufRing { entries, layout, bufs: vec![0u8; BUF_SIZE * RING_BUFS as usize], tail: 0 };
        // Safety: `entries` stays allocated (and unmoved) for the ring's life.
        unsafe { ring.submitter().register_buf_ring(entries as u64, RING_BUFS, BUF_GROUP)? };
        for bid in 0..RING_BUFS {
            br.stage(bid);
        }
        br.publish();
        Ok(br)
    }

    fn buf(&self, bid: u16, start: usize, end: usize) -> &[u8] {
        &self.bufs[bid as usize * BUF_SIZE..][start..end]
    }

    /// Writes buffer `bid` into the next free entry; the kernel sees it after `publish`.
    fn stage(&mut self, bid: u16) {
        let idx = (self.tail & (RING_BUFS - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * BUF_SIZE as u64;
        // Safety: idx < RING_BUFS, so the 16-byte entry lies inside the allocation;
        // struct io_uring_buf is { u64 addr; u32 len; u16 bid; u16 resv }, and the
        // entry's `resv` (offset 14) is left alone because entry 0's holds the tail.
        unsafe {
            let e = self.entries.add(idx * 16);
            (e as *mut u64).write(addr);
            (e.add(8) as *mut u32).write(BUF_SIZE as u32);
            (e.add(12) as *mut u16).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // Safety: offset 14 of the ring is the shared tail, read by the kernel
        // with acquire semantics; it is 2-byte aligned.
        let tail = unsafe { &*(self.entries.add(14) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // Safety: allocated in `new` with this layout. The ring is unregistered
        // when the io_uring closes, which happens first (it is dropped first).
        unsafe { std::alloc::dealloc(self.entries, self.layout) };
    }
}

fn user_data(pair: usize, bid: u16, kind: u8) -> u64 {
    (pair as u64) << 32 | (bid as u64) << 8 | kind as u64
}

/// The registered slot of `side` of pair `p` (multishot mode).
fn slot(p: usize, side: usize) -> types::Fixed {
    types::Fixed((p * 2 + side) as u32)
}

fn push(ring: &mut IoUring, e: &squeue::Entry) {
    loop {
        // Safety: every entry refers to buffers and fds that outlive its completion.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return;
        }
        let _ = ring.submit();
    }
}

struct Relay {
    ring: IoUring,
    mode: RecvMode,
    bufring: Option<BufRing>,
    listener: TcpListener,
    backends: Vec<SocketAddr>,
    next_backend: usize,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    /// Registered file slots (multishot mode), two per connection pair.
    file_slots: u32,
}

impl Relay {
    fn arm_accept(&mut self) {
        let e = opcode::Accept::new(types::Fd(self.listener.as_raw_fd()), std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(user_data(0, 0, ACCEPT));
        push(&mut self.ring, &e);
    }

    fn arm_recv(&mut self, p: usize, side: usize) {
        let pair = self.pairs[p].as_mut().expect("live pair");
        let e = match self.mode {
            RecvMode::Plain => {
                let b = &mut pair.bufs[side];
                opcode::Recv::new(types::Fd(pair.fds[side]), b.as_mut_ptr(), b.len() as u32).build()
            }
            RecvMode::Multishot => opcode::RecvMulti::new(slot(p, side), BUF_GROUP).build(),
        };
        pair.in_flight += 1;
        push(&mut self.ring, &e.user_data(user_data(p, 0, RECV + side as u8)));
    }

    /// Starts the next send of direction `side` (bytes from `side` to the other side) if none is in flight.
    fn pump(&mut self, p: usize, side: usize) {
        let pair = self.pairs[p].as_mut().expect("live pair");
        let dir = &mut pair.dirs[side];
        if dir.sending || pair.closing {
            return;
        }
        let Some(&(bid, start, end)) = dir.queue.front() else { return };
        let data = match self.mode {
            RecvMode::Plain => &pair.bufs[side][start..end],
            RecvMode::Multishot => self.bufring.as_ref().expect("buffer ring").buf(bid, start, end),
        };
        let (ptr, len) = (data.as_ptr(), data.len() as u32);
        let e = match self.mode {
            RecvMode::Plain => opcode::Send::new(types::Fd(pair.fds[1 - side]), ptr, len),
            RecvMode::Multishot => opcode::Send::new(slot(p, 1 - side), ptr, len),
        }
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(p, bid, SEND + side as u8));
        dir.sending = true;
        pair.in_flight += 1;
        push(&mut self.ring, &e);
    }

    fn close(&mut self, p: usize) {
        let pair = self.pairs[p].as_mut().expect("live pair");
        if !pair.closing {
            pair.closing = true;
            for fd in pair.fds {
                // Wakes whatever is still pending on the sockets.
                // Safety: plain syscall on fds this pair owns.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
        if pair.in_flight == 0 {
            let pair = self.pairs[p].take().expect("live pair");
            if self.mode == RecvMode::Multishot {
                let _ = self.ring.submitter().register_files_update(p as u32 * 2, &[-1, -1]);
            }
            for fd in pair.fds {
                // Safety: no operation refers to the fd any more.
                unsafe { libc::close(fd) };
            }
            if let Some(br) = self.bufring.as_mut() {
                for dir in &pair.dirs {
                    for &(bid, _, _) in &dir.queue {
                        br.stage(bid);
                    }
                }
                br.publish();
            }
            self.free.push(p);
        }
    }

    fn on_accept(&mut self, res: i32) {
        self.arm_accept();
        if res < 0 {
            eprintln!("relay: accept: {}", io::Error::from_raw_os_error(-res));
            return;
        }
        let client = res;
        let addr = self.backends[self.next_backend % self.backends.len()];
        self.next_backend += 1;
        let backend = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("relay: connect {addr}: {e}");
                // Safety: the accepted fd is ours and unused.
                unsafe { libc::close(client) };
                return;
            }
        };
        let _ = backend.set_nodelay(true);
        let one: libc::c_int = 1;
        // Safety: setsockopt with a valid int option on our own fd.
        unsafe {
            libc::setsockopt(
                client,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let bufs = match self.mode {
            RecvMode::Plain => [vec![0u8; BUF_SIZE], vec![0u8; BUF_SIZE]],
            RecvMode::Multishot => [Vec::new(), Vec::new()],
        };
        let pair =
            Pair { fds: [client, backend.into_raw_fd()], bufs, dirs: Default::default(), in_flight: 0, closing: false };
        let p = match self.free.pop() {
            Some(p) => {
                self.pairs[p] = Some(pair);
                p
            }
            None => {
                self.pairs.push(Some(pair));
                self.pairs.len() - 1
            }
        };
        if self.mode == RecvMode::Multishot {
            let fds = self.pairs[p].as_ref().expect("live pair").fds;
            if p as u32 * 2 + 1 >= self.file_slots {
                eprintln!("relay: more than {} connections", self.file_slots / 2);
                self.pairs[p].as_mut().expect("live pair").closing = true;
                return self.close(p);
            }
            if let Err(e) = self.ring.submitter().register_files_update(p as u32 * 2, &fds) {
                eprintln!("relay: registering the sockets: {e}");
                self.pairs[p].as_mut().expect("live pair").closing = true;
                return self.close(p);
            }
        }
        self.arm_recv(p, 0);
        self.arm_recv(p, 1);
    }

    fn on_recv(&mut self, p: usize, side: usize, res: i32, flags: u32) {
        let more = self.mode == RecvMode::Multishot && cqueue::more(flags);
        let pair = self.pairs[p].as_mut().expect("live pair");
        if !more {
            pair.in_flight -= 1;
        }
        let bid = cqueue::buffer_select(flags);
        if pair.closing {
            if let (Some(bid), Some(br)) = (bid, self.bufring.as_mut()) {
                br.stage(bid);
                br.publish();
            }
            return self.close(p);
        }
        if res == -libc::ENOBUFS {
            // Every buffer is queued for sending; receive again once some return.
            return self.arm_recv(p, side);
        }
        if res <= 0 {
            return self.close(p);
        }
        pair.dirs[side].queue.push_back((bid.unwrap_or(0), 0, res as usize));
        self.pump(p, side);
        if self.mode == RecvMode::Multishot && !more {
            self.arm_recv(p, side);
        }
    }

    fn on_send(&mut self, p: usize, side: usize, res: i32) {
        let pair = self.pairs[p].as_mut().expect("live pair");
        pair.in_flight -= 1;
        pair.dirs[side].sending = false;
        if res <= 0 || pair.closing {
            return self.close(p);
        }
        let front = pair.dirs[side].queue.front_mut().expect("a send in flight has its bytes queued");
        front.1 += res as usize;
        if front.1 < front.2 {
            return self.pump(p, side);
        }
        let (bid, _, _) = pair.dirs[side].queue.pop_front().expect("front exists");
        match self.mode {
            // The buffer is free again: read the next bytes into it.
            RecvMode::Plain => self.arm_recv(p, side),
            RecvMode::Multishot => {
                let br = self.bufring.as_mut().expect("buffer ring");
                br.stage(bid);
                br.publish();
                self.pump(p, side);
            }
        }
    }

    fn run(&mut self) -> io::Result<()> {
        self.arm_accept();
        let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
            done.clear();
            done.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            for &(ud, res, flags) in &done {
                let p = (ud >> 32) as usize;
                let kind = (ud & 0xff) as u8;
                match kind {
                    ACCEPT => self.on_accept(res),
                    k if k == RECV || k == RECV + 1 => self.on_recv(p, (k - RECV) as usize, res, flags),
                    k => self.on_send(p, (k - SEND) as usize, res),
                }
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one (the registered file
/// table counts against it); returns the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // Safety: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

fn main() {
    let mut listen: Option<SocketAddr> = None;
    let mut backends = Vec::new();
    let mut mode = RecvMode::Plain;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(val().parse().unwrap_or_else(|_| usage())),
            "--backend" => backends.push(val().parse().unwrap_or_else(|_| usage())),
            "--recv" => {
                mode = match val().as_str() {
                    "plain" => RecvMode::Plain,
                    "multishot" => RecvMode::Multishot,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    let (Some(listen), false) = (listen, backends.is_empty()) else { usage() };
    let ring =
        IoUring::builder().setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun().build(1024).unwrap_or_else(
            |e| {
                eprintln!("relay: io_uring setup: {e}");
                std::process::exit(1)
            },
        );
    let file_slots = raise_fd_limit().min(32 * 1024) as u32;
    let bufring = match mode {
        RecvMode::Plain => None,
        RecvMode::Multishot => Some(
            ring.submitter().register_files_sparse(file_slots).and_then(|()| BufRing::new(&ring)).unwrap_or_else(|e| {
                eprintln!("relay: registering the file table or the buffer ring: {e}");
                std::process::exit(1)
            }),
        ),
    };
    let listener = TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("relay: bind {listen}: {e}");
        std::process::exit(1)
    });
    eprintln!("relay: listening on {listen}, {mode:?} receives");
    let mut relay = Relay {
        ring,
        mode,
        bufring,
        listener,
        backends,
        next_backend: 0,
        pairs: Vec::new(),
        free: Vec::new(),
        file_slots,
    };
    if let Err(e) = relay.run() {
        eprintln!("relay: {e}");
        std::process::exit(1);
    }
}
