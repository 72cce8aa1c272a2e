"""Stateful property tests: ``Store`` against a reference model (a dict plus expiry times).

Unbounded stores must behave exactly like the model. Bounded stores may drop entries at any
time, so for them only safety is checked: the limits hold, and whatever a read returns is
the last value written for that key and has not expired.

``DepsModel`` adds dependencies, content hashes and ``invalidate``. Its model keeps, per
entry, the parents it depends on; when an entry leaves (deleted, expired, rewritten, stale,
evicted) its dependents inherit its parents, which is the store's documented rule for
keeping chains intact. Evictions are the policy's choice, so the model learns them from the
store (an entry the model holds that the store no longer has must be an eviction; safety is
checked first: the store never holds what the model does not, and values match), after
which the model is exact: ``invalidate`` must remove precisely the model's transitive
dependents.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cachehaven import Store, _core

MISSING = object()

# keys include unhashable ones and values that are == but must stay distinct (1, 1.0, True)
keys = st.one_of(
    st.integers(0, 6),
    st.sampled_from(["a", "b", 1.0, True, None, (1,), b"1", -0.0, 0.0]),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.sampled_from("xy"), st.integers(0, 1), max_size=2),
)
values = st.integers(-1000, 1000)
ttls = st.one_of(st.none(), st.sampled_from([1, 2, 5]))
# exact binary fractions, so "now" and the deadlines add up without rounding
steps = st.sampled_from([0.5, 1, 2, 3, 7])


class StoreModel(RuleBasedStateMachine):
    max_entries = None
    max_bytes = None
    policy = "adaptive"
    default_ttl = None
    weigh = None

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        kwargs = {}
        weigh = type(self).weigh
        if weigh is not None:
            kwargs["weigher"] = lambda k, v: weigh(v)
        self.store = Store(
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            ttl=self.default_ttl,
            policy=self.policy,
            clock=lambda: self.now,
            **kwargs,
        )
        # canonical key bytes -> (key, value, deadline or None)
        self.model: dict = {}

    @property
    def bounded(self) -> bool:
        return self.max_entries is not None or self.max_bytes is not None

    # ---------------------------------------------------------------- model helpers
    def _live(self, kb):
        entry = self.model.get(kb)
        if entry is None:
            return None
        _, _, deadline = entry
        if deadline is not None and self.now >= deadline:
            del self.model[kb]
            return None
        return entry

    def _purge(self):
        for kb in list(self.model):
            self._live(kb)

    def _check_read(self, key, got):
        kb = _core.encode(key)
        entry = self._live(kb)
        if not self.bounded:
            expected = MISSING if entry is None else entry[1]
            assert got == expected or (got is expected), (key, got, expected)
        elif got is not MISSING:
            assert entry is not None, f"{key!r} returned {got!r} but was deleted or has expired"
            assert got == entry[1], (key, got, entry[1])

    # ---------------------------------------------------------------- rules
    @rule(key=keys, value=values, ttl=ttls)
    def set(self, key, value, ttl):
        if ttl is None:
            self.store[key] = value
        else:
            self.store.set(key, value, ttl=ttl)
        ttl = ttl if ttl is not None else self.default_ttl
        self.model[_core.encode(key)] = (key, value, None if ttl is None else self.now + ttl)
        if self.max_entries != 0:
            assert self.store.get(key, MISSING) == value, "a value just written can be read back"

    @rule(key=keys)
    def get(self, key):
        self._check_read(key, self.store.get(key, MISSING))

    @rule(key=keys)
    def getitem(self, key):
        try:
            got = self.store[key]
        except KeyError:
            got = MISSING
        self._check_read(key, got)

    @rule(key=keys)
    def contains(self, key):
        present = key in self.store
        entry = self._live(_core.encode(key))
        if not self.bounded:
            assert present == (entry is not None), key
        elif present:
            assert entry is not None, key

    @rule(key=keys)
    def delete(self, key):
        kb = _core.encode(key)
        entry = self._live(kb)
        try:
            del self.store[key]
            deleted = True
        except KeyError:
            deleted = False
        if not self.bounded:
            assert deleted == (entry is not None), f"del {key!r}: deleted={deleted}, live={entry is not None}"
        elif deleted:
            assert entry is not None, f"del {key!r} succeeded but the key was deleted or has expired"
        self.model.pop(kb, None)
        assert key not in self.store

    @rule(key=keys)
    def pop(self, key):
        got = self.store.pop(key, MISSING)
        self._check_read(key, got)
        self.model.pop(_core.encode(key), None)
        assert self.store.get(key, MISSING) is MISSING

    @rule(dt=steps)
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: len(self.model) > 3)
    @rule()
    def clear(self):
        self.store.clear()
        self.model.clear()
        assert len(self.store) == 0

    # ---------------------------------------------------------------- invariants
    @invariant()
    def internal_invariants(self):
        # (reads nothing through the clock, so expired entries are not purged by checking)
        self.store._check()

    @rule()
    def check(self):
        self._purge()
        n = len(self.store)
        if self.max_entries is not None:
            assert n <= self.max_entries
        if self.max_bytes is not None:
            assert self.store.stats()["bytes"] <= self.max_bytes
        items = self.store.items()
        assert len(items) == n
        if not self.bounded:
            assert n == len(self.model)
            got = {_core.encode(k): v for k, v in items}
            assert got == {kb: v for kb, (_, v, _) in self.model.items()}
        else:
            for k, v in items:
                entry = self.model.get(_core.encode(k))
                assert entry is not None, f"{k!r} is stored but was deleted or has expired"
                assert entry[1] == v


# ---------------------------------------------------------------- dependencies model

dep_keys = st.sampled_from([0, 1, 2, 3, "a", "b", (1,), None])
# parents may be stored keys or tags that are never stored
parent_keys = st.one_of(dep_keys, st.sampled_from(["tag1", "tag2"]))
hashes = st.one_of(st.none(), st.sampled_from(["h1", "h2", b"h1", 1]))


class DepsModel(RuleBasedStateMachine):
    max_entries = None
    max_bytes = None
    policy = "adaptive"
    default_ttl = None

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        kwargs = {}
        if self.max_bytes is not None:
            kwargs["weigher"] = lambda k, v: abs(v) % 30
        self.store = Store(
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            ttl=self.default_ttl,
            policy=self.policy,
            clock=lambda: self.now,
            events=8,
            track_patterns=True,
            **kwargs,
        )
        # key bytes -> [key, value, deadline, content_hash, set of parent key bytes]
        self.model: dict = {}

    @property
    def bounded(self) -> bool:
        return self.max_entries is not None or self.max_bytes is not None

    # ---------------------------------------------------------------- model helpers
    def _leave(self, kb):
        """Remove one model entry; its dependents inherit its parents."""
        entry = self.model.pop(kb)
        for other in self.model.values():
            if kb in other[4]:
                other[4] |= entry[4]

    def _expire(self):
        for kb in [kb for kb, e in self.model.items() if e[2] is not None and self.now >= e[2]]:
            if kb in self.model:
                self._leave(kb)

    def _closure(self, kb):
        """Model entries removed by invalidating ``kb``: it and its transitive dependents."""
        targets = {kb}
        removed = {kb} if kb in self.model else set()
        grew = True
        while grew:
            grew = False
            for other_kb, entry in self.model.items():
                if other_kb not in removed and entry[4] & targets:
                    removed.add(other_kb)
                    targets.add(other_kb)
                    grew = True
        return removed

    def _sync(self):
        """Expire what the model says has expired, check the store holds a subset of the
        model with the right values, then adopt the store's evictions."""
        self._expire()
        stored = set()
        for k, v in self.store.items():
            kb = _core.encode(k)
            entry = self.model.get(kb)
            assert entry is not None, f"{k!r} is stored but the model removed it"
            assert entry[1] == v, (k, v, entry[1])
            stored.add(kb)
        for kb in [kb for kb in self.model if kb not in stored]:
            assert self.bounded, f"unbounded store lost {self.model[kb][0]!r}"
            self._leave(kb)

    # ---------------------------------------------------------------- rules
    @rule(
        key=dep_keys,
        value=st.integers(0, 200),
        ttl=st.one_of(st.none(), st.sampled_from([1, 3])),
        parents=st.lists(parent_keys, max_size=3),
        content_hash=hashes,
        warmup=st.booleans(),
    )
    def set(self, key, value, ttl, parents, content_hash, warmup):
        self._sync()
        kb = _core.encode(key)
        self.store.set(key, value, ttl, depends_on=parents, content_hash=content_hash, warmup=warmup)
        if kb in self.model:
            self._leave(kb)
        ttl = ttl if ttl is not None else self.default_ttl
        deadline = None if ttl is None else self.now + ttl
        self.model[kb] = [key, value, deadline, content_hash, {_core.encode(p) for p in parents}]
        assert self.store.get(key, MISSING) == value

    @rule(key=dep_keys, content_hash=hashes)
    def get(self, key, content_hash):
        self._sync()
        kb = _core.encode(key)
        entry = self.model.get(kb)
        if content_hash is None:
            got = self.store.get(key, MISSING)
        else:
            got = self.store.get(key, MISSING, content_hash=content_hash)
            if entry is not None and (
                entry[3] is None or _core.encode(entry[3]) != _core.encode(content_hash)
            ):
                self._leave(kb)  # stale: dropped, its dependents keep its parents
                entry = None
        if entry is None:
            assert got is MISSING, (key, got)
        elif not self.bounded:
            assert got == entry[1], (key, got, entry[1])
        else:
            assert got is MISSING or got == entry[1], (key, got, entry[1])

    @rule(key=parent_keys)
    def invalidate(self, key):
        self._sync()
        kb = _core.encode(key)
        removed = self._closure(kb)
        n = self.store.invalidate(key)
        for r in removed:
            assert self.model[r][0] not in self.store, f"{self.model[r][0]!r} outlived invalidate({key!r})"
            del self.model[r]
        assert n == len(removed), (key, n, [self.store.keys()])

    @rule(key=dep_keys)
    def delete(self, key):
        self._sync()
        kb = _core.encode(key)
        self.store.pop(key, None)
        if kb in self.model:
            self._leave(kb)

    @rule(dt=steps)
    def advance(self, dt):
        self.now += dt

    @precondition(lambda self: len(self.model) > 4)
    @rule()
    def clear(self):
        self.store.clear()
        self.model.clear()

    # ---------------------------------------------------------------- invariants
    @invariant()
    def consistent(self):
        self.store._check()
        self._sync()
        st = self.store.stats()
        if self.max_entries is not None:
            assert st["entries"] <= self.max_entries
        if self.max_bytes is not None:
            assert st["bytes"] <= self.max_bytes
        assert st["prediction_hits"] <= st["warmups"]


class DepsUnbounded(DepsModel):
    pass


class DepsUnboundedTTL(DepsModel):
    default_ttl = 4


class DepsBoundedLRU(DepsModel):
    max_entries = 3
    policy = "lru"


class DepsBoundedAdaptiveTTL(DepsModel):
    max_entries = 4
    default_ttl = 3


class DepsBoundedBytes(DepsModel):
    max_bytes = 60


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Unbounded(StoreModel):
    pass


class UnboundedDefaultTTL(StoreModel):
    default_ttl = 5


class BoundedLRU(StoreModel):
    max_entries = 4
    policy = "lru"
    default_ttl = 5


class BoundedAdaptive(StoreModel):
    max_entries = 4


class BoundedAdaptiveTTL(StoreModel):
    max_entries = 6
    default_ttl = 2


class BoundedBytes(StoreModel):
    max_bytes = 100
    weigh = staticmethod(lambda v: abs(v) % 40)


TestUnbounded = Unbounded.TestCase
TestUnbounded.settings = SETTINGS
TestUnboundedDefaultTTL = UnboundedDefaultTTL.TestCase
TestUnboundedDefaultTTL.settings = SETTINGS
TestBoundedLRU = BoundedLRU.TestCase
TestBoundedLRU.settings = SETTINGS
TestBoundedAdaptive = BoundedAdaptive.TestCase
TestBoundedAdaptive.settings = SETTINGS
TestBoundedAdaptiveTTL = BoundedAdaptiveTTL.TestCase
TestBoundedAdaptiveTTL.settings = SETTINGS
TestBoundedBytes = BoundedBytes.TestCase
TestBoundedBytes.settings = SETTINGS

TestDepsUnbounded = DepsUnbounded.TestCase
TestDepsUnbounded.settings = SETTINGS
TestDepsUnboundedTTL = DepsUnboundedTTL.TestCase
TestDepsUnboundedTTL.settings = SETTINGS
TestDepsBoundedLRU = DepsBoundedLRU.TestCase
TestDepsBoundedLRU.settings = SETTINGS
TestDepsBoundedAdaptiveTTL = DepsBoundedAdaptiveTTL.TestCase
TestDepsBoundedAdaptiveTTL.settings = SETTINGS
TestDepsBoundedBytes = DepsBoundedBytes.TestCase
TestDepsBoundedBytes.settings = SETTINGS
