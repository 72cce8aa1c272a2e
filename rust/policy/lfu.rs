//! The `"lfu"` policy's state: O(1) least-frequently-used with frequency buckets.
//!
//! Entries used the same number of times share a bucket, an LRU [`Queue`]; buckets form a
//! doubly-linked list in increasing count order. A use moves an entry to the bucket of the
//! next count (created next to its own if missing); an emptied bucket is unlinked and
//! recycled. The victim is the least recently used entry of the first bucket. Every step is
//! O(1): no heap, no scan.

use super::list::{self, Node, Queue, EMPTY_QUEUE, NIL};

/// One frequency bucket: the entries used `count` times, least recent first.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub count: u32,
    pub queue: Queue,
    pub prev: u32,
    pub next: u32,
}

/// Buckets (with a free list) and each slot's bucket.
#[derive(Debug)]
pub struct Lfu {
    pub buckets: Vec<Bucket>,
    free: Vec<u32>,
    /// Lowest-count bucket.
    pub first: u32,
    /// Highest-count bucket.
    pub last: u32,
    bucket_of: Vec<u32>,
    pub len: usize,
}

impl Lfu {
    /// No entries.
    pub fn new() -> Self {
        Lfu {
            buckets: Vec::new(),
            free: Vec::new(),
            first: NIL,
            last: NIL,
            bucket_of: Vec::new(),
            len: 0,
        }
    }

    /// Bytes of bookkeeping held.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + (self.bucket_of.capacity() + self.free.capacity()) * 4
    }

    /// A new bucket for `count`, linked between `prev` and `next`.
    fn new_bucket(&mut self, count: u32, prev: u32, next: u32) -> u32 {
        let b = Bucket {
            count,
            queue: EMPTY_QUEUE,
            prev,
            next,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.buckets[id as usize] = b;
                id
            }
            None => {
                self.buckets.push(b);
                (self.buckets.len() - 1) as u32
            }
        };
        if prev == NIL {
            self.first = id;
        } else {
            self.buckets[prev as usize].next = id;
        }
        if next == NIL {
            self.last = id;
        } else {
            self.buckets[next as usize].prev = id;
        }
        id
    }

    fn drop_bucket_if_empty(&mut self, id: u32) {
        let b = self.buckets[id as usize];
        if b.queue.len > 0 {
            return;
        }
        if b.prev == NIL {
            self.first = b.next;
        } else {
            self.buckets[b.prev as usize].next = b.next;
        }
        if b.next == NIL {
            self.last = b.prev;
        } else {
            self.buckets[b.next as usize].prev = b.prev;
        }
        self.free.push(id);
    }

    /// A new entry at slot `i`, used once.
    pub fn insert(&mut self, nodes: &mut [Node], i: u32) {
        if self.bucket_of.len() <= i as usize {
            self.bucket_of.resize(i as usize + 1, NIL);
        }
        let b = if self.first != NIL && self.buckets[self.first as usize].count == 1 {
            self.first
        } else {
            self.new_bucket(1, NIL, self.first)
        };
        list::push_tail(nodes, &mut self.buckets[b as usize].queue, i);
        self.bucket_of[i as usize] = b;
        self.len += 1;
    }

    /// One more use of slot `i`: it moves to the bucket of the next count (saturating).
    pub fn touch(&mut self, nodes: &mut [Node], i: u32) {
        let b = self.bucket_of[i as usize];
        let Bucket { count, next, .. } = self.buckets[b as usize];
        if count == u32::MAX {
            let q = &mut self.buckets[b as usize].queue;
            list::unlink(nodes, q, i);
            list::push_tail(nodes, q, i);
            return;
        }
        let target = if next != NIL && self.buckets[next as usize].count == count + 1 {
            next
        } else {
            self.new_bucket(count + 1, b, next)
        };
        list::unlink(nodes, &mut self.buckets[b as usize].queue, i);
        list::push_tail(nodes, &mut self.buckets[target as usize].queue, i);
        self.bucket_of[i as usize] = target;
        self.drop_bucket_if_empty(b);
    }

    /// Slot `i` left.
    pub fn remove(&mut self, nodes: &mut [Node], i: u32) {
        let b = self.bucket_of[i as usize];
        list::unlink(nodes, &mut self.buckets[b as usize].queue, i);
        self.bucket_of[i as usize] = NIL;
        self.len -= 1;
        self.drop_bucket_if_empty(b);
    }

    /// The least recently used entry of the lowest count, skipping `skip` (the entry being
    /// inserted, which would otherwise always be its own victim).
    pub fn victim(&self, nodes: &[Node], skip: u32) -> Option<u32> {
        let mut b = self.first;
        while b != NIL {
            let h = self.buckets[b as usize].queue.head;
            if h != skip {
                return Some(h);
            }
            let after = nodes[h as usize].next;
            if after != NIL {
                return Some(after);
            }
            b = self.buckets[b as usize].next;
        }
        (skip != NIL).then_some(skip)
    }

    /// How many times slot `i` was used while stored.
    #[cfg(test)]
    pub fn count(&self, i: u32) -> u32 {
        self.buckets[self.bucket_of[i as usize] as usize].count
    }
}
