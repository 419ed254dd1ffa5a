//! Tests of the multishot receive path that `vendor/monoio` adds to monoio's
//! `TcpStream` and that every worker socket uses (see
//! `vendor/monoio/RINGGATE.md`): bytes arrive complete and in order whatever
//! the reader's buffer sizes, a reader that falls behind loses nothing (its
//! receive is cancelled and re-armed), many such readers at once drain the
//! buffer ring and fall back to plain receives without loss, a bulk transfer
//! switches to plain receives and back, and the end of a stream reads as 0
//! bytes.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;

fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().enable_timer().build().expect("io_uring runtime")
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

/// A listener whose accepted connections are each sent `payload(k)` (k the
/// connection's index), after `delay`, then closed.
fn sender(conns: usize, delay: Duration, payload: fn(usize) -> Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for k in 0..conns {
            let (s, _) = l.accept().expect("accept");
            held.push((k, s));
        }
        std::thread::sleep(delay);
        let writers: Vec<_> = held
            .into_iter()
            .map(|(k, mut s)| {
                std::thread::spawn(move || {
                    let data = payload(k);
                    // Uneven writes, so the reader sees many segment sizes.
                    let mut off = 0;
                    let mut step = 1;
                    while off < data.len() {
                        let end = (off + step).min(data.len());
                        s.write_all(&data[off..end]).expect("write");
                        off = end;
                        step = step * 3 % 20_011 + 1;
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
    });
    addr
}

/// `n` connections to `addr`, each with its multishot receive on.
async fn connect_multishot(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true), "this kernel has multishot receives (6.0+)");
        streams.push(s);
    }
    streams
}

/// Whether the stream's multishot receive gets input within 2 s, without a read.
async fn becomes_pending(s: &TcpStream) -> bool {
    for _ in 0..200 {
        if s.multishot_pending() {
            return true;
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A listener whose one accepted connection is handed to `script`, on a
/// thread of its own.
fn serve_one(script: impl FnOnce(std::net::TcpStream) + Send + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || script(l.accept().expect("accept").0));
    addr
}

/// Reads `len` bytes with 64 KiB reads, a bulk reader's size.
async fn read_bulk(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let (r, buf) = s.read(Vec::with_capacity(64 * 1024)).await;
        let n = r.expect("read");
        assert!(n > 0, "early end after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn read_all(s: &mut TcpStream, chunk: impl Fn(usize) -> usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let (r, buf) = s.read(Vec::with_capacity(chunk(i))).await;
        let n = r.expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
        i += 1;
    }
}

#[test]
fn bytes_arrive_whole_and_in_order_whatever_the_read_size() {
    let addr = sender(1, Duration::ZERO, |_| pattern(1, 1 << 20));
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true), "this kernel has multishot receives (6.0+)");
        assert!(s.multishot_recv());
        // Reads smaller than, equal to and larger than the 4 KiB provided buffers.
        let sizes = [1usize, 100, 4096, 9000, 65536, 3];
        let got = read_all(&mut s, |i| sizes[i % sizes.len()]).await;
        assert_eq!(got.len(), 1 << 20);
        assert!(got == pattern(1, 1 << 20), "the bytes differ from what was sent");
        // The end of the stream stays the end.
        let (r, _) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read at end"), 0);
    });
}

#[test]
fn a_reader_that_falls_behind_loses_nothing() {
    // 2 MiB sent while the reader sleeps: its receive fills its queue, is
    // cancelled, and must be re-armed when the reader comes back.
    let addr = sender(1, Duration::ZERO, |_| pattern(2, 2 << 20));
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        let (r, first) = s.read(Vec::with_capacity(10)).await;
        let n = r.expect("first read");
        monoio::time::sleep(Duration::from_millis(300)).await;
        let mut got = first[..n].to_vec();
        got.extend(read_all(&mut s, |_| 16 * 1024).await);
        assert_eq!(got.len(), 2 << 20);
        assert!(got == pattern(2, 2 << 20), "bytes lost or reordered after falling behind");
    });
}

#[test]
fn many_idle_readers_drain_the_ring_and_fall_back_without_loss() {
    // 300 connections × 128 KiB arriving while nobody reads: more than the
    // ring's 1,024 buffers of 4 KiB, so some receives end with ENOBUFS and
    // those reads go the plain way.
    const CONNS: usize = 300;
    let addr = sender(CONNS, Duration::from_millis(50), |k| pattern(k, 128 * 1024));
    runtime().block_on(async move {
        let streams = connect_multishot(addr, CONNS).await;
        let mut tasks = Vec::new();
        for (k, mut s) in streams.into_iter().enumerate() {
            tasks.push(monoio::spawn(async move {
                let (r, first) = s.read(Vec::with_capacity(1)).await;
                assert_eq!(r.expect("first read"), 1);
                // Sit on the receive while the rest arrives.
                monoio::time::sleep(Duration::from_millis(400)).await;
                let mut got = first[..1].to_vec();
                got.extend(read_all(&mut s, |i| 1000 + i % 7000).await);
                assert!(got == pattern(k, 128 * 1024), "connection {k}: bytes lost or reordered");
            }));
        }
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn dropping_readers_with_queued_bytes_returns_their_buffers() {
    // Streams dropped with received bytes still queued must give those
    // buffers back; a later transfer far larger than the ring proves it.
    const CONNS: usize = 100;
    let addr = sender(CONNS, Duration::ZERO, |_| pattern(3, 64 * 1024));
    let big = sender(1, Duration::ZERO, |_| pattern(4, 8 << 20));
    runtime().block_on(async move {
        let mut streams = connect_multishot(addr, CONNS).await;
        // The sender writes once all are connected.
        for s in &mut streams {
            let (r, _) = s.read(Vec::with_capacity(1)).await;
            assert_eq!(r.expect("first read"), 1);
        }
        monoio::time::sleep(Duration::from_millis(200)).await;
        drop(streams);
        monoio::time::sleep(Duration::from_millis(50)).await;
        let mut s = TcpStream::connect_addr(big).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        let got = read_all(&mut s, |_| 4096).await;
        assert!(got == pattern(4, 8 << 20), "the large transfer after the drops is wrong");
    });
}

#[test]
fn a_stream_can_switch_back_to_plain_reads() {
    let addr = sender(1, Duration::from_millis(100), |_| pattern(5, 10_000));
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        assert!(!s.set_multishot_recv(false));
        assert!(!s.multishot_recv());
        let got = read_all(&mut s, |_| 4096).await;
        assert!(got == pattern(5, 10_000));
    });
}

#[test]
fn a_bulk_transfer_goes_plain_and_the_stream_comes_back_to_multishot() {
    // 1 MiB and a bit, then small messages with pauses between them.
    let addr = serve_one(|mut s| {
        s.write_all(&pattern(6, (1 << 20) + 100)).expect("bulk");
        for msg in [&b"hello"[..], b"again"] {
            std::thread::sleep(Duration::from_millis(300));
            s.write_all(msg).expect("small");
        }
        std::thread::sleep(Duration::from_millis(300));
    });
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        let got = read_bulk(&mut s, (1 << 20) + 100).await;
        assert!(got == pattern(6, (1 << 20) + 100), "bulk bytes lost or reordered");
        let (r, buf) = s.read(Vec::with_capacity(100)).await;
        assert_eq!(&buf[..r.expect("read")], b"hello");
        // A small read after the bulk: the stream is back on a multishot
        // receive, which sees the next message arrive without a read.
        let seen = becomes_pending(&s).await;
        assert!(seen, "the stream did not return to its multishot receive");
        let (r, buf) = s.read(Vec::with_capacity(100)).await;
        assert_eq!(&buf[..r.expect("read")], b"again");
    });
}

#[test]
fn turning_it_on_again_after_a_bulk_transfer_watches_the_idle_stream() {
    // However the bulk transfer ended (on plain receives, or with its
    // multishot receive being cancelled), turning it on again puts the
    // stream back on a multishot receive that sees the peer's close.
    let addr = serve_one(|mut s| {
        s.write_all(&pattern(7, 256 * 1024)).expect("bulk");
        std::thread::sleep(Duration::from_millis(300));
        // Closing is what an idle keep-alive connection's server does.
        drop(s);
    });
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        assert!(read_bulk(&mut s, 256 * 1024).await == pattern(7, 256 * 1024));
        assert!(s.set_multishot_recv(true));
        assert!(!s.multishot_pending(), "nothing arrived yet");
        let seen = becomes_pending(&s).await;
        assert!(seen, "the close of the idle stream was not seen");
        let (r, _) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read at the end"), 0);
    });
}

/// `release_multishot` (the hand-over before splicing a body): what the
/// multishot receive had taken comes out first, in order, then the rest
/// stays in the socket for the caller (here read plainly, as a splice would
/// take it), and arming the multishot receive again afterwards works.
#[test]
fn releasing_the_multishot_receive_keeps_every_byte_in_order() {
    let data = pattern(5, 400_000);
    let expect = data.clone();
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let writer = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        // A small first part lands in the ring before the release.
        s.write_all(&data[..3000]).expect("write");
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(&data[3000..]).expect("write");
        s.write_all(b"after").expect("write");
        std::thread::sleep(Duration::from_millis(300));
        s
    });
    runtime().block_on(async move {
        let mut streams = connect_multishot(addr, 1).await;
        let mut s = streams.pop().expect("stream");
        // A first small read arms the multishot receive (as a head read does).
        let (r, first) = s.read(Vec::with_capacity(100)).await;
        assert_eq!(r.expect("read"), 100);
        let mut got = first;
        assert!(becomes_pending(&s).await, "the rest of the first part arrived in the ring");
        loop {
            let (r, buf) = s.release_multishot(Vec::with_capacity(1024)).await;
            match r.expect("release") {
                Some(0) => panic!("not the end of the stream"),
                Some(_) => got.extend_from_slice(&buf),
                None => break,
            }
        }
        assert!(got.len() > 100 && got.len() <= 3000, "the ring's bytes came out: {}", got.len());
        // Released: a second call has nothing, and the bytes wait in the socket.
        let (r, _) = s.release_multishot(Vec::with_capacity(16)).await;
        assert!(r.expect("release").is_none());
        while got.len() < expect.len() {
            let want = (expect.len() - got.len()).min(65536);
            let (r, buf) = s.read(Vec::with_capacity(want)).await;
            assert!(r.expect("read") > 0);
            got.extend_from_slice(&buf);
        }
        assert!(got == expect, "every byte, in order");
        assert!(s.set_multishot_recv(true), "armed again");
        let (r, buf) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read"), 5);
        assert_eq!(&buf[..], b"after");
    });
    drop(writer.join());
}

/// After a release, short plain reads keep the receive side released (a
/// head read before the next spliced body must leave that body in the
/// socket), the pool's peek sees the peer's close, and
/// `set_multishot_recv(true)` ends it.
#[test]
fn a_released_receive_side_stays_released_through_short_reads() {
    let addr = serve_one(|mut s| {
        s.write_all(b"head").expect("write");
        std::thread::sleep(Duration::from_millis(100));
        // A small "head" and a large "body" behind it, in one write.
        let mut msg = b"HEAD".to_vec();
        msg.extend_from_slice(&pattern(9, 200_000));
        s.write_all(&msg).expect("write");
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"next").expect("write");
        std::thread::sleep(Duration::from_millis(200));
    });
    runtime().block_on(async move {
        let mut s = connect_multishot(addr, 1).await.pop().expect("stream");
        assert!(s.multishot_recv() && !s.multishot_released());
        let (r, _) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read"), 4);
        loop {
            let (r, _) = s.release_multishot(Vec::with_capacity(64)).await;
            if r.expect("release").is_none() {
                break;
            }
        }
        assert!(s.multishot_released());
        assert!(!crate::splice::input_waiting(&s), "nothing sent yet");
        // A short plain read, as a head read: the rest must stay in the socket.
        let (r, buf) = s.read(Vec::with_capacity(4)).await;
        assert_eq!(r.expect("read"), 4);
        assert_eq!(&buf[..], b"HEAD");
        assert!(s.multishot_released(), "still released after a short read");
        monoio::time::sleep(Duration::from_millis(50)).await;
        // (As much of it as the socket's receive buffer holds.)
        let unread = crate::splice::unread_bytes(&s);
        assert!(unread > 64 * 1024, "the body waits in the socket: {unread} bytes");
        assert!(crate::splice::input_waiting(&s));
        let body = read_bulk(&mut s, 200_000).await;
        assert!(body == pattern(9, 200_000));
        assert!(s.set_multishot_recv(true));
        assert!(!s.multishot_released(), "armed again");
        assert!(becomes_pending(&s).await, "the multishot receive sees the next bytes");
        let (r, buf) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read"), 4);
        assert_eq!(&buf[..], b"next");
        // The peer's close, on a released receive side, is seen by the peek.
        loop {
            let (r, _) = s.release_multishot(Vec::with_capacity(64)).await;
            if r.expect("release").is_none() {
                break;
            }
        }
        monoio::time::sleep(Duration::from_millis(400)).await;
        assert!(crate::splice::input_waiting(&s), "the close is input");
    });
}

/// `multishot_wait` (an idle keep-alive connection waiting without a read
/// buffer): it returns once bytes arrive, without taking them, so the read
/// after it gets them all; it returns on the peer's close too; and on plain
/// receives (or without a multishot receive) it says at once that only a
/// read can wait.
#[test]
fn waiting_for_input_takes_nothing_and_sees_bytes_and_the_close() {
    let addr = serve_one(|mut s| {
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        std::thread::sleep(Duration::from_millis(200));
        drop(s);
    });
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        assert!(!s.multishot_pending(), "nothing arrived yet");
        let ready = monoio::time::timeout(Duration::from_secs(5), s.multishot_wait()).await;
        assert!(ready.expect("input within 5 s").expect("wait"), "a multishot receive can wait");
        assert!(s.multishot_pending(), "the bytes wait for the read");
        let (r, buf) = s.read(Vec::with_capacity(100)).await;
        assert_eq!(&buf[..r.expect("read")], b"GET / HTTP/1.1\r\n\r\n");
        let closed = monoio::time::timeout(Duration::from_secs(5), s.multishot_wait()).await;
        assert!(closed.expect("the close within 5 s").expect("wait"));
        let (r, _) = s.read(Vec::with_capacity(16)).await;
        assert_eq!(r.expect("read at the end"), 0);
        assert!(!s.set_multishot_recv(false));
        assert!(!s.multishot_wait().await.expect("wait"), "plain receives: only a read waits");
    });
}

#[test]
fn waiting_for_input_on_plain_receives_after_bulk_data_defers_to_the_read() {
    let addr = serve_one(|mut s| {
        s.write_all(&pattern(8, 256 * 1024)).expect("bulk");
        std::thread::sleep(Duration::from_millis(300));
    });
    runtime().block_on(async move {
        let mut s = TcpStream::connect_addr(addr).await.expect("connect");
        assert!(s.set_multishot_recv(true));
        // The first full buffer switches the stream to plain receives.
        let mut got = Vec::new();
        while got.len() < 8192 {
            let (r, buf) = s.read(Vec::with_capacity(4096)).await;
            assert!(r.expect("read") > 0);
            got.extend_from_slice(&buf);
        }
        let r = monoio::time::timeout(Duration::from_secs(5), s.multishot_wait()).await;
        let _ = r.expect("never blocks on plain receives").expect("wait");
        got.extend(read_bulk(&mut s, 256 * 1024 - got.len()).await);
        assert!(got == pattern(8, 256 * 1024), "no byte lost around the wait");
    });
}
