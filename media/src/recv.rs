//! Reading a leg's RTP socket without a task waking for each packet: whoever
//! needs the leg's audio (the room's tick) empties the socket first, with one
//! `recvmmsg` system call for up to [`BATCH`] datagrams, and takes each
//! datagram's arrival time from the kernel (`SO_TIMESTAMPNS`), so the jitter
//! estimate and the RFC 3550 statistics see when a packet came, not when it
//! was read.
//!
//! The buffers live in a thread-local, one set per thread that reads (the
//! media runtime's workers), so reading allocates nothing after the first
//! call on a thread.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    self, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, sockopt,
};
use nix::sys::time::TimeSpec;

use crate::counters::{DropReason, MEDIA};

/// Datagrams read by one system call. A leg gets one packet per 20 ms tick
/// (two with 10 ms packets); more only after a late tick.
pub const BATCH: usize = 8;

/// Most datagrams taken from one socket per [`drain`]: a peer sending faster
/// than this per tick (a flood) leaves the rest to the kernel, whose queue
/// drops what does not fit, instead of holding up the tick.
pub const MAX_PER_DRAIN: usize = 4 * BATCH;

/// Largest datagram read; RTP audio is far smaller. A longer one is dropped
/// (counted as oversized), not read in part.
pub const MAX_DATAGRAM: usize = 2048;

/// A kernel timestamp further back than this is not believed (the wall clock
/// moved): the datagram counts as arriving when read.
const MAX_AGE: Duration = Duration::from_secs(2);

struct Batch {
    headers: MultiHeaders<SockaddrStorage>,
    buffers: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
}

impl Batch {
    fn new() -> Self {
        let cmsg = nix::cmsg_space!(TimeSpec);
        Self {
            headers: MultiHeaders::preallocate(BATCH, Some(cmsg)),
            buffers: Box::new([[0; MAX_DATAGRAM]; BATCH]),
        }
    }

    /// One `recvmmsg` without waiting; how many datagrams it returned (0 when
    /// the socket was empty).
    fn read(
        &mut self,
        socket: &UdpSocket,
        each: &mut impl FnMut(Instant, SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let Self { headers, buffers } = self;
        let mut slices = buffers.each_mut().map(|buffer| [IoSliceMut::new(buffer)]);
        let flags = MsgFlags::MSG_DONTWAIT;
        let received = match socket::recvmmsg(socket.as_raw_fd(), headers, &mut slices, flags, None)
        {
            Ok(received) => received,
            // Nothing waiting; or a signal came first, and the next tick reads.
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut count = 0;
        for message in received {
            count += 1;
            let from = message.address.as_ref().and_then(socket_addr);
            let data = message.iovs().next().unwrap_or(&[]);
            if message.flags.contains(MsgFlags::MSG_TRUNC) {
                MEDIA.dropped(DropReason::Oversized);
                continue;
            }
            let Some(from) = from else { continue };
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                    _ => None,
                })
            });
            each(arrival(stamp, now, wall), from, data);
        }
        Ok(count)
    }
}

thread_local! {
    static BATCH_BUFFERS: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Asks the kernel to stamp each datagram's arrival on `socket` (see
/// [`drain`]).
pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    socket::setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Reads what waits on `socket`, up to [`MAX_PER_DRAIN`] datagrams, without
/// blocking, and gives each to `each` with its arrival time and source.
/// Returns how many were read.
pub fn drain(
    socket: &UdpSocket,
    mut each: impl FnMut(Instant, SocketAddr, &[u8]),
) -> io::Result<usize> {
    BATCH_BUFFERS.with(|cell| {
        // Not re-entered: `each` hands datagrams to a leg, which reads no socket.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return Ok(0);
        };
        let batch = slot.get_or_insert_with(Batch::new);
        let mut total = 0;
        while total < MAX_PER_DRAIN {
            let read = batch.read(socket, &mut each)?;
            total += read;
            if read < BATCH {
                break;
            }
        }
        Ok(total)
    })
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// The arrival `Instant` of a datagram the kernel stamped `stamp` (wall
/// clock), read at `now` (`wall` on the wall clock).
fn arrival(stamp: Option<TimeSpec>, now: Instant, wall: SystemTime) -> Instant {
    let Some(stamp) = stamp else { return now };
    let (Ok(secs), Ok(nanos)) = (u64::try_from(stamp.tv_sec()), u32::try_from(stamp.tv_nsec()))
    else {
        return now;
    };
    let stamped = UNIX_EPOCH + Duration::new(secs, nanos);
    match wall.duration_since(stamped) {
        Ok(age) if age <= MAX_AGE => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn pair() -> (UdpSocket, UdpSocket) {
        let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        receiver.set_nonblocking(true).expect("nonblocking");
        enable_timestamps(&receiver).expect("timestamps");
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        (receiver, sender)
    }

    #[test]
    fn an_empty_socket_reads_nothing() {
        let (receiver, _) = pair();
        let read = drain(&receiver, |_, _, _| panic!("nothing to read")).expect("drain");
        assert_eq!(read, 0);
    }

    #[test]
    fn datagrams_come_in_order_with_source_and_arrival() {
        let (receiver, sender) = pair();
        let to = receiver.local_addr().expect("addr");
        for i in 0..20u8 {
            sender.send_to(&[i; 12], to).expect("send");
        }
        std::thread::sleep(Duration::from_millis(60));
        let before = Instant::now();
        let mut got = Vec::new();
        let read =
            drain(&receiver, |at, from, data| got.push((at, from, data.to_vec()))).expect("drain");
        assert_eq!(read, 20);
        for (i, (at, from, data)) in got.iter().enumerate() {
            assert_eq!(*from, sender.local_addr().expect("addr"));
            assert_eq!(data, &vec![i as u8; 12]);
            // The kernel's stamp, from before the 60 ms wait, not the read.
            assert!(before.duration_since(*at) >= Duration::from_millis(40), "{i}: {at:?}");
        }
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "arrivals in order");
    }

    #[test]
    fn a_flood_is_read_a_drain_at_a_time() {
        let (receiver, sender) = pair();
        let to = receiver.local_addr().expect("addr");
        for _ in 0..(MAX_PER_DRAIN + 5) {
            sender.send_to(&[0x80; 20], to).expect("send");
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drain(&receiver, |_, _, _| {}).expect("first"), MAX_PER_DRAIN);
        assert_eq!(drain(&receiver, |_, _, _| {}).expect("second"), 5);
    }

    #[test]
    fn an_oversized_datagram_is_dropped_not_cut() {
        let (receiver, sender) = pair();
        let to = receiver.local_addr().expect("addr");
        sender.send_to(&[1; MAX_DATAGRAM + 100], to).expect("send big");
        sender.send_to(&[2; 30], to).expect("send small");
        std::thread::sleep(Duration::from_millis(20));
        let mut got = Vec::new();
        drain(&receiver, |_, _, data| got.push(data.to_vec())).expect("drain");
        assert_eq!(got, vec![vec![2; 30]]);
    }

    #[test]
    fn arrival_falls_back_to_now_for_a_missing_or_unbelievable_stamp() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        assert_eq!(arrival(None, now, wall), now);
        let since = wall.duration_since(UNIX_EPOCH).expect("after 1970");
        let old = TimeSpec::from_duration(since - Duration::from_secs(60));
        assert_eq!(arrival(Some(old), now, wall), now);
        let future = TimeSpec::from_duration(since + Duration::from_secs(1));
        assert_eq!(arrival(Some(future), now, wall), now);
        let recent = TimeSpec::from_duration(since - Duration::from_millis(15));
        let at = arrival(Some(recent), now, wall);
        let age = now.duration_since(at);
        assert!(age >= Duration::from_millis(14) && age <= Duration::from_millis(16), "{age:?}");
    }
}
