//! Dependency records: which stored entries (children, by slot) depend on which keys
//! (parents, by canonical bytes; a parent need not be stored).
//!
//! Two indexes, kept in step so every operation costs O(edges it touches):
//! * reverse: parent key bytes -> a node listing its dependent slots (`dependents`);
//! * forward: child slot -> its edges `(node, position in that node's list)`.
//!
//! Removing a child swap-removes it from each parent's list and fixes the one edge that
//! moved (found by scanning the moved child's few forward edges), so neither direction ever
//! scans a long list. A node is freed when its last dependent goes, so memory is bounded by
//! the live entries' edges.
//!
//! When an entry that others depend on leaves (evicted, expired, deleted, rewritten) while
//! its dependents stay, they *inherit* its parents ([`Deps::inherit`]): if C depends on B
//! and B on A, C still goes when A is invalidated after B was evicted. Reachability between
//! the remaining entries is preserved exactly (the removed vertex is contracted).

use hashbrown::HashTable;

use super::keybytes::KeyBytes;
use crate::hash::fast_hash;

/// One child -> parent edge, as seen from the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edge {
    node: u32,
    pos: u32,
}

/// A parent key and the slots depending on it.
#[derive(Debug)]
struct Node {
    key: KeyBytes,
    hash: u64,
    dependents: Vec<u32>,
}

/// The dependency graph of one store.
#[derive(Debug, Default)]
pub struct Deps {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: HashTable<u32>,
    /// Forward edges by child slot (empty for slots without dependencies).
    fwd: Vec<Box<[Edge]>>,
    edges: usize,
}

impl Deps {
    /// An empty graph.
    pub fn new() -> Self {
        Deps::default()
    }

    /// Whether no edge exists.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.edges == 0
    }

    /// Number of edges.
    pub fn edges(&self) -> usize {
        self.edges
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(hash, |&n| nodes[n as usize].key.matches(key))
            .copied()
    }

    fn node_for(&mut self, key: &[u8]) -> u32 {
        let hash = fast_hash(key);
        if let Some(n) = self.find(key, hash) {
            return n;
        }
        let node = Node {
            key: KeyBytes::new(key),
            hash,
            dependents: Vec::new(),
        };
        let n = match self.free.pop() {
            Some(n) => {
                self.nodes[n as usize] = node;
                n
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let nodes = &self.nodes;
        self.index
            .insert_unique(hash, n, |&m| nodes[m as usize].hash);
        n
    }

    /// Record that slot `child` depends on each of `parents` (duplicates ignored). The
    /// child must have no edges yet (call [`Deps::unlink`] first when re-linking).
    pub fn link<P: AsRef<[u8]>>(&mut self, child: u32, parents: &[P]) {
        let mut ps: Vec<&[u8]> = parents.iter().map(|p| p.as_ref()).collect();
        ps.sort_unstable();
        ps.dedup();
        if ps.is_empty() {
            return;
        }
        debug_assert!(self.parents_len(child) == 0, "child already linked");
        let mut edges = Vec::with_capacity(ps.len());
        for p in ps {
            let n = self.node_for(p);
            let list = &mut self.nodes[n as usize].dependents;
            edges.push(Edge {
                node: n,
                pos: list.len() as u32,
            });
            list.push(child);
        }
        self.edges += edges.len();
        let c = child as usize;
        if self.fwd.len() <= c {
            self.fwd.resize_with(c + 1, Default::default);
        }
        self.fwd[c] = edges.into_boxed_slice();
    }

    /// Forget every edge of slot `child` (it was removed or is being rewritten).
    pub fn unlink(&mut self, child: u32) {
        let Some(slot) = self.fwd.get_mut(child as usize) else {
            return;
        };
        if slot.is_empty() {
            return;
        }
        let edges = std::mem::take(slot);
        self.edges -= edges.len();
        for e in edges.iter() {
            let node = &mut self.nodes[e.node as usize];
            let last = node.dependents.len() - 1;
            node.dependents.swap_remove(e.pos as usize);
            if (e.pos as usize) < last {
                // the former last dependent moved to e.pos: fix its edge to this node
                let moved = node.dependents[e.pos as usize];
                if let Some(me) = self.fwd[moved as usize]
                    .iter_mut()
                    .find(|me| me.node == e.node && me.pos as usize == last)
                {
                    me.pos = e.pos;
                }
            }
            if self.nodes[e.node as usize].dependents.is_empty() {
                self.free_node(e.node);
            }
        }
    }

    fn free_node(&mut self, n: u32) {
        let hash = self.nodes[n as usize].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&m| m == n) {
            entry.remove();
        }
        let node = &mut self.nodes[n as usize];
        node.key = KeyBytes::new(&[]);
        node.dependents = Vec::new();
        self.free.push(n);
    }

    /// Before `child` (stored under `key`) loses its edges while staying depended upon:
    /// every other slot depending on `key` gains `child`'s parents (not duplicated).
    pub fn inherit(&mut self, key: &[u8], child: u32) {
        let parents: Vec<u32> = match self.fwd.get(child as usize) {
            Some(edges) if !edges.is_empty() => edges.iter().map(|e| e.node).collect(),
            _ => return,
        };
        let Some(n) = self.find(key, fast_hash(key)) else {
            return;
        };
        let dependents = self.nodes[n as usize].dependents.clone();
        for d in dependents {
            if d == child {
                continue;
            }
            let mut edges = std::mem::take(&mut self.fwd[d as usize]).into_vec();
            for &p in &parents {
                if edges.iter().any(|e| e.node == p) {
                    continue;
                }
                let list = &mut self.nodes[p as usize].dependents;
                edges.push(Edge {
                    node: p,
                    pos: list.len() as u32,
                });
                list.push(d);
                self.edges += 1;
            }
            self.fwd[d as usize] = edges.into_boxed_slice();
        }
    }

    /// The slots depending directly on `parent` (a copy: the caller removes them).
    pub fn dependents(&self, parent: &[u8], hash: u64) -> Vec<u32> {
        match self.find(parent, hash) {
            Some(n) => self.nodes[n as usize].dependents.clone(),
            None => Vec::new(),
        }
    }

    fn parents_len(&self, child: u32) -> usize {
        self.fwd.get(child as usize).map(|e| e.len()).unwrap_or(0)
    }

    /// The parent keys of slot `child`.
    pub fn parents(&self, child: u32) -> Vec<&[u8]> {
        match self.fwd.get(child as usize) {
            Some(edges) => edges
                .iter()
                .map(|e| self.nodes[e.node as usize].key.as_slice())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        *self = Deps::default();
    }

    /// Approximate bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self
                .nodes
                .iter()
                .map(|n| n.key.heap_bytes() + n.dependents.capacity() * 4)
                .sum::<usize>()
            + self.index.capacity() * 5
            + self.free.capacity() * 4
            + self.fwd.capacity() * std::mem::size_of::<Box<[Edge]>>()
            + self.edges * std::mem::size_of::<Edge>()
    }

    /// Check that both indexes agree and every linked child is `live` (tests; O(edges)).
    pub fn check(&self, live: impl Fn(u32) -> bool) -> Result<(), String> {
        let mut count = 0;
        for (c, edges) in self.fwd.iter().enumerate() {
            if !edges.is_empty() && !live(c as u32) {
                return Err(format!("dependency edges for vacant slot {c}"));
            }
            for e in edges.iter() {
                count += 1;
                let node = self
                    .nodes
                    .get(e.node as usize)
                    .ok_or_else(|| format!("edge to missing node {}", e.node))?;
                if node.dependents.get(e.pos as usize) != Some(&(c as u32)) {
                    return Err(format!(
                        "slot {c}: node {} does not list it at {}",
                        e.node, e.pos
                    ));
                }
            }
        }
        if count != self.edges {
            return Err(format!("{} edges counted, {} recorded", count, self.edges));
        }
        let listed: usize = self.nodes.iter().map(|n| n.dependents.len()).sum();
        if listed != self.edges {
            return Err(format!("nodes list {listed} dependents, {count} edges"));
        }
        let used = self.nodes.len() - self.free.len();
        if used != self.index.len() {
            return Err(format!("{used} nodes in use, {} indexed", self.index.len()));
        }
        for &n in self.index.iter() {
            if self.nodes[n as usize].dependents.is_empty() {
                return Err(format!("node {n} is indexed but has no dependents"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &[u8]) -> u64 {
        fast_hash(k)
    }

    #[test]
    fn link_unlink_keeps_both_directions_in_step() {
        let mut d = Deps::new();
        d.link(1, &[b"a".as_slice(), b"b", b"a"]);
        d.link(2, &[b"a".as_slice()]);
        d.link(3, &[b"a".as_slice(), b"c"]);
        assert_eq!(d.edges(), 5);
        let mut a = d.dependents(b"a", h(b"a"));
        a.sort_unstable();
        assert_eq!(a, vec![1, 2, 3]);
        assert_eq!(d.parents(3), vec![b"a".as_slice(), b"c"]);
        d.check(|_| true).expect("consistent");
        // removing the first dependent moves the last one into its place
        d.unlink(1);
        d.check(|c| c != 1).expect("consistent after unlink");
        let mut a = d.dependents(b"a", h(b"a"));
        a.sort_unstable();
        assert_eq!(a, vec![2, 3]);
        assert!(d.dependents(b"b", h(b"b")).is_empty(), "empty node freed");
        d.unlink(3);
        d.unlink(3);
        d.unlink(99);
        assert_eq!(d.dependents(b"a", h(b"a")), vec![2]);
        d.unlink(2);
        assert!(d.is_empty());
        d.check(|_| false).expect("empty");
        assert_eq!(d.index.len(), 0);
    }

    #[test]
    fn dependents_inherit_the_parents_of_a_leaving_entry() {
        let mut d = Deps::new();
        // slot 1 is "b" (depends on a, x); slots 2, 3 depend on b; slot 3 also on a
        d.link(1, &[b"a".as_slice(), b"x"]);
        d.link(2, &[b"b".as_slice()]);
        d.link(3, &[b"b".as_slice(), b"a"]);
        d.inherit(b"b", 1);
        d.unlink(1);
        d.check(|c| c != 1).expect("consistent");
        let mut p2 = d.parents(2);
        p2.sort_unstable();
        assert_eq!(p2, vec![b"a".as_slice(), b"b", b"x"]);
        let mut p3 = d.parents(3);
        p3.sort_unstable();
        assert_eq!(
            p3,
            vec![b"a".as_slice(), b"b", b"x"],
            "no duplicate edge to a"
        );
        let mut a = d.dependents(b"a", h(b"a"));
        a.sort_unstable();
        assert_eq!(a, vec![2, 3]);
        // nothing to inherit: no parents, or nobody depends on the key
        d.inherit(b"zzz", 2);
        d.inherit(b"b", 9);
        d.check(|c| c != 1).expect("consistent");
        // a self-dependency is not inherited by the leaving slot itself
        let mut e = Deps::new();
        e.link(5, &[b"k".as_slice(), b"p"]);
        e.inherit(b"k", 5);
        e.unlink(5);
        assert!(e.is_empty());
    }

    #[test]
    fn nodes_are_reused_and_memory_stays_bounded() {
        let mut d = Deps::new();
        for round in 0..50u32 {
            for c in 0..100u32 {
                let p = (round * 100 + c).to_be_bytes();
                d.link(c, &[p.as_slice(), b"shared"]);
            }
            d.check(|_| true).expect("consistent");
            for c in (0..100u32).rev() {
                d.unlink(c);
            }
            assert!(d.is_empty());
        }
        assert!(d.nodes.len() <= 101, "{} nodes", d.nodes.len());
    }

    #[test]
    fn random_link_unlink_matches_a_model() {
        // a small deterministic LCG drives links and unlinks against a plain model
        let mut seed = 12345u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut d = Deps::new();
        let mut model: Vec<Option<Vec<u8>>> = vec![None; 64];
        for _ in 0..5000 {
            let c = next(64) as u32;
            if next(3) == 0 {
                d.unlink(c);
                model[c as usize] = None;
            } else {
                d.unlink(c);
                let ps: Vec<[u8; 1]> = (0..next(4)).map(|_| [next(10) as u8]).collect();
                d.link(c, &ps);
                let mut set: Vec<u8> = ps.iter().map(|p| p[0]).collect();
                set.sort_unstable();
                set.dedup();
                model[c as usize] = if set.is_empty() { None } else { Some(set) };
            }
            d.check(|_| true).expect("consistent");
        }
        for p in 0..10u8 {
            let mut got = d.dependents(&[p], h(&[p]));
            got.sort_unstable();
            let want: Vec<u32> = (0..64u32)
                .filter(|&c| {
                    model[c as usize]
                        .as_ref()
                        .map(|s| s.contains(&p))
                        .unwrap_or(false)
                })
                .collect();
            assert_eq!(got, want, "parent {p}");
        }
    }
}
