"""A hypothesis state machine per storing backend: random sequences of the manual API,
compared with a plain dict model after every step (issue 3: the same semantics everywhere)."""

from __future__ import annotations

import datetime
from typing import Any, Dict, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from cachehaven import BaseCache, CacheEntry

FUNCS = st.sampled_from(["f", "g"])
XS = st.integers(0, 4)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.just(datetime.datetime(2024, 5, 6, 7, 8, 9, 10))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(0, 9), max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), inner, max_size=3)
    ),
    max_leaves=6,
)


class CacheModel(RuleBasedStateMachine):
    """Manual operations on a real cache against a dict of (func, x) -> output."""

    cache: BaseCache

    def __init__(self) -> None:
        super().__init__()
        self.cache.clear()
        self.model: Dict[Tuple[str, int], Any] = {}

    @rule(func=FUNCS, x=XS, value=VALUES)
    def set(self, func: str, x: int, value: Any) -> None:
        self.cache.set(func, output=value, x=x)
        self.model[(func, x)] = value

    @rule(func=FUNCS, x=XS)
    def get(self, func: str, x: int) -> None:
        assert self.cache.get(func, x=x) == self.model.get((func, x), ...)

    @rule(func=FUNCS, x=XS)
    def remove(self, func: str, x: int) -> None:
        assert self.cache.remove(func, x=x) == ((func, x) in self.model)
        self.model.pop((func, x), None)

    @rule(func=FUNCS, items=st.lists(st.tuples(XS, VALUES), max_size=4))
    def set_many(self, func: str, items: list) -> None:
        self.cache.set_many(func, [({"x": x}, v) for x, v in items])
        for x, v in items:
            self.model[(func, x)] = v

    @rule(func=FUNCS, xs=st.lists(XS, max_size=5))
    def get_many(self, func: str, xs: list) -> None:
        assert self.cache.get_many(func, [{"x": x} for x in xs]) == [
            self.model.get((func, x), ...) for x in xs
        ]

    @rule(func=FUNCS, x=XS, expected=VALUES)
    def annotate(self, func: str, x: int, expected: Any) -> None:
        self.cache.annotate(func, expected=expected, x=x)
        self.model[(func, x)] = expected  # value prefers expected

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    @invariant()
    def same_contents(self) -> None:
        entries = list(self.cache)
        assert all(isinstance(e, CacheEntry) for e in entries)
        got = {(e.func, e.inputs["x"]): e.value for e in entries}
        assert got == self.model
        assert len(self.cache) == len(self.model)


def test_backend_matches_a_dict_model(cache: BaseCache) -> None:
    class Machine(CacheModel):
        pass

    Machine.cache = cache
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
