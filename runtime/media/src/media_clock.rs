//! The media clock: a few threads that tick every 20 ms and send one packet for every RTP
//! session they hold, instead of one timer task per call (2 000 calls would otherwise be
//! 100 000 task wake-ups a second). Sessions are spread over the threads; a session that closes
//! is dropped at its next tick.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::session::Sender;

/// The packetisation interval.
const TICK: Duration = Duration::from_millis(crate::FRAME_MS as u64);
/// Clock threads: enough for tens of thousands of sessions (one send is a few µs).
const THREADS: usize = 2;

struct Clock {
    shards: Vec<&'static Mutex<Vec<Sender>>>,
    next: AtomicUsize,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let shards: Vec<&'static Mutex<Vec<Sender>>> =
            (0..THREADS).map(|_| &*Box::leak(Box::new(Mutex::new(Vec::new())))).collect();
        for (index, shard) in shards.iter().enumerate() {
            let shard: &'static Mutex<Vec<Sender>> = shard;
            std::thread::Builder::new()
                .name(format!("media-clock-{index}"))
                .spawn(move || run(shard))
                .expect("starting a media clock thread");
        }
        Clock { shards, next: AtomicUsize::new(0) }
    })
}

/// Tick `shard` forever, on a fixed 20 ms grid (a late tick does not shift the next ones).
fn run(shard: &'static Mutex<Vec<Sender>>) {
    let mut deadline = Instant::now() + TICK;
    loop {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        } else if now - deadline > TICK * 5 {
            // Far behind (the machine was stalled): resynchronise instead of bursting.
            deadline = now;
        }
        deadline += TICK;
        let mut senders = shard.lock();
        senders.retain(|sender| !sender.closed());
        for sender in senders.iter_mut() {
            sender.tick();
        }
    }
}

/// Start pacing a session's packets.
pub(crate) fn add(sender: Sender) {
    let clock = clock();
    let index = clock.next.fetch_add(1, Ordering::Relaxed) % clock.shards.len();
    clock.shards[index].lock().push(sender);
}
