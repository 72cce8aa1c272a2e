//! Store events: the kinds, a fixed-capacity ring buffer of recent events, and the notices
//! queued for subscribers.
//!
//! The store never calls anyone: it appends to the ring and, for kinds somebody subscribed
//! to, queues a [`Notice`] (carrying the removed value for EVICT/EXPIRE/INVALIDATE). The
//! binding layer drains the notices after releasing the store and calls the subscribers then.

use std::time::{SystemTime, UNIX_EPOCH};

use super::keybytes::KeyBytes;

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A lookup found a live entry.
    Hit = 0,
    /// A lookup found nothing (or an expired / stale entry).
    Miss = 1,
    /// An entry was written.
    Write = 2,
    /// An entry was removed to respect the limits.
    Evict = 3,
    /// An entry was removed because its TTL passed.
    Expire = 4,
    /// An entry was removed by `invalidate` (or a content-hash mismatch).
    Invalidate = 5,
    /// A prefetched entry was written (`warmup=True`).
    Warmup = 6,
    /// A key was returned by `predict_next`.
    Predict = 7,
}

impl EventKind {
    /// Every kind, in numeric order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Hit,
        EventKind::Miss,
        EventKind::Write,
        EventKind::Evict,
        EventKind::Expire,
        EventKind::Invalidate,
        EventKind::Warmup,
        EventKind::Predict,
    ];

    /// The name users see (`"HIT"`, `"EVICT"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Hit => "HIT",
            EventKind::Miss => "MISS",
            EventKind::Write => "WRITE",
            EventKind::Evict => "EVICT",
            EventKind::Expire => "EXPIRE",
            EventKind::Invalidate => "INVALIDATE",
            EventKind::Warmup => "WARMUP",
            EventKind::Predict => "PREDICT",
        }
    }

    /// Parse a kind name, case-insensitively.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// This kind's bit in a subscription mask.
    #[inline]
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether events of this kind carry the removed value to subscribers.
    pub fn carries_value(self) -> bool {
        matches!(
            self,
            EventKind::Evict | EventKind::Expire | EventKind::Invalidate
        )
    }
}

/// Seconds since the Unix epoch (what Python's `time.time()` returns).
pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One event in the ring.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    /// What happened.
    pub kind: EventKind,
    /// When, in seconds since the Unix epoch.
    pub time: f64,
    /// The entry's canonical key bytes.
    pub key: Vec<u8>,
}

/// A fixed-capacity ring of the most recent events. Once full, each new event overwrites
/// the oldest and reuses its key buffer, so a warm ring allocates nothing per event (for
/// keys no longer than the one they replace).
#[derive(Debug)]
pub struct Ring {
    cap: usize,
    buf: Vec<RawEvent>,
    /// Where the next event goes once the ring is full (the oldest event).
    next: usize,
}

impl Ring {
    /// An empty ring holding at most `cap` events (`cap >= 1`).
    pub fn new(cap: usize) -> Self {
        Ring {
            cap: cap.max(1),
            buf: Vec::new(),
            next: 0,
        }
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Append an event, overwriting the oldest when full.
    pub fn push(&mut self, kind: EventKind, key: &[u8], time: f64) {
        if self.buf.len() < self.cap {
            self.buf.push(RawEvent {
                kind,
                time,
                key: key.to_vec(),
            });
        } else {
            let e = &mut self.buf[self.next];
            e.kind = kind;
            e.time = time;
            e.key.clear();
            e.key.extend_from_slice(key);
            self.next = (self.next + 1) % self.cap;
        }
    }

    /// The newest `n` events (all with `None`), oldest first.
    pub fn recent(&self, n: Option<usize>) -> Vec<&RawEvent> {
        let len = self.buf.len();
        let n = n.unwrap_or(len).min(len);
        // chronological order starts at `next` when full, at 0 otherwise
        let start = if len < self.cap { 0 } else { self.next };
        (len - n..len)
            .map(|j| &self.buf[(start + j) % len])
            .collect()
    }

    /// Forget every event.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.next = 0;
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<RawEvent>()
            + self.buf.iter().map(|e| e.key.capacity()).sum::<usize>()
    }
}

/// An event queued for subscribers, delivered after the store is released.
pub struct Notice<V> {
    /// What happened.
    pub kind: EventKind,
    /// When, in seconds since the Unix epoch.
    pub time: f64,
    /// The entry's canonical key bytes.
    pub key: KeyBytes,
    /// The removed value, for EVICT / EXPIRE / INVALIDATE.
    pub value: Option<V>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &Ring, n: Option<usize>) -> Vec<u8> {
        r.recent(n).iter().map(|e| e.key[0]).collect()
    }

    #[test]
    fn ring_keeps_the_newest_events_in_order() {
        let mut r = Ring::new(4);
        assert!(r.is_empty());
        for k in 0..3u8 {
            r.push(EventKind::Hit, &[k], f64::from(k));
        }
        assert_eq!(keys(&r, None), vec![0, 1, 2]);
        for k in 3..10u8 {
            r.push(EventKind::Write, &[k, k], f64::from(k));
        }
        assert_eq!(r.len(), 4);
        assert_eq!(keys(&r, None), vec![6, 7, 8, 9]);
        assert_eq!(keys(&r, Some(2)), vec![8, 9]);
        assert_eq!(keys(&r, Some(0)), Vec::<u8>::new());
        assert_eq!(keys(&r, Some(100)), vec![6, 7, 8, 9]);
        let times: Vec<f64> = r.recent(None).iter().map(|e| e.time).collect();
        assert_eq!(times, vec![6.0, 7.0, 8.0, 9.0]);
        assert!(r.recent(None).iter().all(|e| e.kind == EventKind::Write));
        r.clear();
        assert!(r.recent(None).is_empty());
        r.push(EventKind::Miss, &[42], 1.0);
        assert_eq!(keys(&r, None), vec![42]);
    }

    #[test]
    fn ring_of_one_and_memory_stays_bounded() {
        let mut r = Ring::new(1);
        for k in 0..1000u32 {
            r.push(EventKind::Hit, &k.to_be_bytes(), 0.0);
        }
        assert_eq!(r.len(), 1);
        assert_eq!(r.recent(None)[0].key, 999u32.to_be_bytes().to_vec());
        assert!(r.memory_bytes() < 256);
        assert_eq!(Ring::new(0).capacity(), 1);
    }

    #[test]
    fn kinds_parse_case_insensitively_and_have_distinct_bits() {
        let mut mask = 0u8;
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.name()), Some(k));
            assert_eq!(EventKind::parse(&k.name().to_lowercase()), Some(k));
            assert_eq!(mask & k.bit(), 0);
            mask |= k.bit();
        }
        assert_eq!(mask, 0xff);
        assert_eq!(EventKind::parse("EVICTED"), None);
        assert!(EventKind::Evict.carries_value());
        assert!(!EventKind::Hit.carries_value());
    }
}
