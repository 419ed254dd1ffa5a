//! After a `101 Switching Protocols` (WebSocket and other upgrades) the
//! gateway stops speaking HTTP and passes bytes both ways until either side
//! closes, or neither has sent anything for the idle time-out.

use std::cell::Cell;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, Splitable};

use crate::io::{IoFail, Timer};

/// Relays `a` ⇄ `b`; returns the bytes sent a→b and b→a.
pub(crate) async fn splice_both<A, B>(a: A, b: B, idle: Duration) -> (u64, u64)
where
    A: AsyncReadRent + AsyncWriteRent + monoio::io::Split,
    B: AsyncReadRent + AsyncWriteRent + monoio::io::Split,
{
    let last = Cell::new(Instant::now());
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let up = relay(&mut ar, &mut bw, idle, &last);
    let down = relay(&mut br, &mut aw, idle, &last);
    monoio::join!(up, down)
}

/// Copies `from` to `to` until end-of-file, an error, or `idle` without
/// traffic in either direction; then shuts `to` down for writing so the
/// other side sees the end too.
async fn relay<R: AsyncReadRent, W: AsyncWriteRent>(
    from: &mut R,
    to: &mut W,
    idle: Duration,
    last: &Cell<Instant>,
) -> u64 {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut total = 0u64;
    let mut timer = Timer::new();
    loop {
        buf.clear();
        let deadline = last.get() + idle;
        match timer.read_more_until(from, &mut buf, 16 * 1024, deadline).await {
            Ok(0) | Err(IoFail::Io(_)) => break,
            Ok(n) => {
                last.set(Instant::now());
                if timer.write_all_until(to, &mut buf, Instant::now() + idle).await.is_err() {
                    break;
                }
                total += n as u64;
            }
            // The other direction may have been busy meanwhile.
            Err(IoFail::TimedOut) if last.get() + idle > Instant::now() => {
                buf = Vec::with_capacity(16 * 1024);
            }
            Err(IoFail::TimedOut) => break,
        }
    }
    let _ = to.shutdown().await;
    total
}
