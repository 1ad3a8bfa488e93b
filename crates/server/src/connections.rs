//! [`Slots`]: which connections are open, and what to do with a new one when
//! `--max-connections` are (pure; the accept loop in `listen.rs` acts on it).
//!
//! Every open connection is a file descriptor. Without a cap, 1,100 half-open
//! connections under `ulimit -n 1024` left the process unable to accept or to
//! open a model file. With a cap, who gets a slot decides whether real clients
//! are served during a flood: a new connection past the cap closes the *idle*
//! connection that has been idle longest — one waiting for (or slowly sending)
//! its request headers, or a keep-alive connection between requests; closing
//! those is always allowed by HTTP/1.1. A slowloris client's connections are
//! idle by definition, so they are recycled, while a real client, whose headers
//! arrive in one packet, is in a handler (busy) within a millisecond of its
//! accept. Only when every slot is busy is a new connection closed at once.
//! Accepting and closing instead of not accepting keeps the kernel's accept
//! queue short, so a real client's connection behind a flood is reached.

use std::collections::BTreeMap;
use std::time::Instant;

/// A connection's id.
pub type ConnId = u64;

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve it under this id.
    Open(ConnId),
    /// Serve it under `id`, and close `victim` (the longest-idle connection).
    Evict {
        /// The new connection's id.
        id: ConnId,
        /// The connection to close.
        victim: ConnId,
    },
    /// Every slot is busy in a request: close it at once.
    Refuse,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// In a request handler (headers read, response not yet produced).
    busy: bool,
    /// When it last became idle (accepted, or a response produced).
    idle_since: Instant,
}

/// The open connections, at most `max`.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    next: ConnId,
    open: BTreeMap<ConnId, Slot>,
}

impl Slots {
    /// No connections, at most `max` (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            next: 0,
            open: BTreeMap::new(),
        }
    }

    /// Connections open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none are open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// A connection was accepted at `now`.
    pub fn admit(&mut self, now: Instant) -> Admit {
        let victim = if self.open.len() < self.max {
            None
        } else {
            match self
                .open
                .iter()
                .filter(|(_, s)| !s.busy)
                .min_by_key(|(id, s)| (s.idle_since, **id))
            {
                Some((&victim, _)) => Some(victim),
                None => return Admit::Refuse,
            }
        };
        if let Some(v) = victim {
            self.open.remove(&v);
        }
        let id = self.next;
        self.next += 1;
        self.open.insert(
            id,
            Slot {
                busy: false,
                idle_since: now,
            },
        );
        match victim {
            None => Admit::Open(id),
            Some(victim) => Admit::Evict { id, victim },
        }
    }

    /// `id` entered (`true`) or left (`false`) a request handler at `now`.
    pub fn set_busy(&mut self, id: ConnId, busy: bool, now: Instant) {
        if let Some(s) = self.open.get_mut(&id) {
            s.busy = busy;
            if !busy {
                s.idle_since = now;
            }
        }
    }

    /// `id` closed (or was evicted: then this is a no-op).
    pub fn close(&mut self, id: ConnId) {
        self.open.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn past_the_cap_the_longest_idle_connection_makes_room_and_busy_ones_never_do() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = Slots::new(3);
        assert_eq!(s.admit(at(0)), Admit::Open(0));
        assert_eq!(s.admit(at(1)), Admit::Open(1));
        assert_eq!(s.admit(at(2)), Admit::Open(2));
        s.set_busy(0, true, at(3));
        // 0 is busy; 1 idle since 1 ms is the oldest idle.
        assert_eq!(s.admit(at(4)), Admit::Evict { id: 3, victim: 1 });
        assert_eq!(s.len(), 3);
        // 2 finishes a request: idle since 5 ms, newer than 3 (4 ms).
        s.set_busy(2, true, at(4));
        s.set_busy(2, false, at(5));
        assert_eq!(s.admit(at(6)), Admit::Evict { id: 4, victim: 3 });
        s.set_busy(2, true, at(7));
        s.set_busy(4, true, at(7));
        assert_eq!(s.admit(at(8)), Admit::Refuse, "every slot is busy");
        assert_eq!(s.len(), 3);
        s.close(0);
        s.close(1); // evicted already: no-op
        assert_eq!(s.admit(at(9)), Admit::Open(5));
        s.set_busy(99, true, at(9)); // unknown: no-op
        for id in [2, 4, 5] {
            s.close(id);
        }
        assert!(s.is_empty());
    }

    #[test]
    fn a_flood_of_idle_connections_never_holds_more_than_the_cap() {
        let t0 = Instant::now();
        let mut s = Slots::new(512);
        for i in 0..2000u64 {
            let now = t0 + Duration::from_micros(i);
            assert_ne!(s.admit(now), Admit::Refuse);
            assert!(s.len() <= 512);
        }
    }
}
