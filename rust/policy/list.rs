//! Intrusive doubly-linked queues of slot indices: the building block of every policy.
//!
//! The links live in one `Vec<Node>` shared by all queues of a policy (12 bytes per slot,
//! with the slot's key fingerprint, so the policy's per-slot data is one memory access);
//! a [`Queue`] is only its two ends and its length, so moving a slot between queues is O(1).

/// Index of "no node".
pub const NIL: u32 = u32::MAX;

/// Links of one slot in its queue.
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub prev: u32,
    pub next: u32,
    /// The slot's key fingerprint (kept by the adaptive policy; queue moves leave it).
    pub fp: u32,
}

/// A slot in no queue.
pub const EMPTY_NODE: Node = Node {
    prev: NIL,
    next: NIL,
    fp: 0,
};

/// One queue: `head` is the least recently used end, `tail` the most recent.
#[derive(Clone, Copy, Debug)]
pub struct Queue {
    pub head: u32,
    pub tail: u32,
    pub len: usize,
}

/// A queue with nothing in it.
pub const EMPTY_QUEUE: Queue = Queue {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Take slot `i` out of `q` (it must be in `q`).
pub fn unlink(nodes: &mut [Node], q: &mut Queue, i: u32) {
    let n = nodes[i as usize];
    if n.prev == NIL {
        q.head = n.next;
    } else {
        nodes[n.prev as usize].next = n.next;
    }
    if n.next == NIL {
        q.tail = n.prev;
    } else {
        nodes[n.next as usize].prev = n.prev;
    }
    q.len -= 1;
    let n = &mut nodes[i as usize];
    n.prev = NIL;
    n.next = NIL;
}

/// Append slot `i` (in no queue) at the most recent end of `q`.
pub fn push_tail(nodes: &mut [Node], q: &mut Queue, i: u32) {
    let old_tail = q.tail;
    q.tail = i;
    if old_tail == NIL {
        q.head = i;
    } else {
        nodes[old_tail as usize].next = i;
    }
    q.len += 1;
    let n = &mut nodes[i as usize];
    n.prev = old_tail;
    n.next = NIL;
}
