"""``@cache.memoize``: the decorator, for every kind of function, and its helpers."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import pickle
import time
import weakref
from typing import Any, Optional

import pytest

import cachehaven
from cachehaven import BaseCache, CacheEntry, ConfigError, InMemCache, KeyTypeError


class Opaque:
    pass


_module_cache = InMemCache()


@_module_cache.memoize
def module_level_square(x):
    return x * x


@_module_cache.memoize
async def module_level_async(x):
    return x


@_module_cache.memoize
def module_level_gen(n):
    yield from range(n)


# ---------------------------------------------------------------- decorator forms


def test_bare_decorator(cache):
    calls = []

    @cache.memoize
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9
    assert square(3) == 9
    assert calls == [3]


def test_called_decorator(cache):
    calls = []

    @cache.memoize()
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9
    assert square(3) == 9
    assert square(4) == 16
    assert calls == [3, 4]


def test_guide_fibonacci(cache):
    calls = []

    @cache.memoize()
    def fibonacci(n: int) -> int:
        calls.append(n)
        if n <= 1:
            return n
        return fibonacci(n - 2) + fibonacci(n - 1)

    assert fibonacci(30) == 832040
    assert sorted(calls) == list(range(31)), "each n is computed exactly once"
    assert fibonacci(30) == 832040
    assert len(calls) == 31


async def test_guide_async(cache):
    calls = []

    @cache.memoize()
    async def async_operation(x):
        calls.append(x)
        await asyncio.sleep(0.001)
        return x * 2

    assert await async_operation(5) == 10
    assert await async_operation(5) == 10
    assert calls == [5]


def test_guide_expected_entries(cache):
    expected_entries = [
        CacheEntry.from_args(func="add", expected=15, x=5, y=10),
        CacheEntry.from_args(func="add", expected=25, x=10, y=15),
    ]

    @cache.memoize()
    def add(x, y):
        return x + y

    for entry in expected_entries:
        assert add(**entry.inputs) == entry.expected


# ---------------------------------------------------------------- kinds of functions


async def test_async_function(cache):
    calls = []

    @cache.memoize
    async def f(x):
        calls.append(x)
        await asyncio.sleep(0)
        return [x]

    assert await f(1) == [1]
    assert await f(1) == [1]
    assert await f(2) == [2]
    assert calls == [1, 2]


def test_generator_function(cache):
    calls = []

    @cache.memoize
    def stream(n):
        calls.append(n)
        for i in range(n):
            yield i * 10

    first = stream(4)
    assert inspect.isgenerator(first)
    assert list(first) == [0, 10, 20, 30]
    second = stream(4)
    assert inspect.isgenerator(second), "a hit still returns a generator"
    assert list(second) == [0, 10, 20, 30]
    assert calls == [4]


async def test_async_generator_function(cache):
    calls = []

    @cache.memoize
    async def stream(n):
        calls.append(n)
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert [i async for i in stream(3)] == [0, 1, 2]
    again = stream(3)
    assert inspect.isasyncgen(again)
    assert [i async for i in again] == [0, 1, 2]
    assert calls == [3]


def test_generator_not_cached_when_broken_off(cache):
    calls = []

    @cache.memoize
    def stream(n):
        calls.append(n)
        yield from range(n)

    for item in stream(5):
        if item == 2:
            break
    assert stream.cache_get(5) is ...
    assert len(cache) == 0

    g = stream(5)
    next(g)
    g.close()
    assert stream.cache_get(5) is ...

    g = stream(5)
    next(g)
    del g
    gc.collect()
    assert stream.cache_get(5) is ...
    assert len(cache) == 0

    assert list(stream(5)) == [0, 1, 2, 3, 4]
    assert calls == [5, 5, 5, 5]
    assert stream.cache_get(5) == [0, 1, 2, 3, 4]
    assert list(stream(5)) == [0, 1, 2, 3, 4]
    assert calls == [5, 5, 5, 5]


def test_generator_not_cached_when_consumer_raises(cache):
    calls = []

    @cache.memoize
    def stream(n):
        calls.append(n)
        yield from range(n)

    with pytest.raises(ValueError):
        for item in stream(5):
            if item == 3:
                raise ValueError("processing error")
    assert stream.cache_get(5) is ...
    assert list(stream(5)) == [0, 1, 2, 3, 4]
    assert calls == [5, 5]


def test_generator_not_cached_when_it_raises(cache):
    calls = []

    @cache.memoize
    def stream(n):
        calls.append(n)
        yield 1
        if len(calls) == 1:
            raise RuntimeError("fails the first time")
        yield 2

    with pytest.raises(RuntimeError):
        list(stream(1))
    assert stream.cache_get(1) is ...
    assert list(stream(1)) == [1, 2]
    assert list(stream(1)) == [1, 2]
    assert calls == [1, 1]


async def test_async_generator_not_cached_when_broken_off_or_raising(cache):
    calls = []

    @cache.memoize
    async def stream(n):
        calls.append(n)
        for i in range(n):
            if i == 3 and len(calls) == 2:
                raise RuntimeError("fails on the second run")
            yield i

    agen = stream(5)
    async for item in agen:
        if item == 1:
            break
    await agen.aclose()
    assert stream.cache_get(5) is ...

    with pytest.raises(RuntimeError):
        async for _ in stream(5):
            pass
    assert stream.cache_get(5) is ...

    assert [i async for i in stream(5)] == [0, 1, 2, 3, 4]
    assert [i async for i in stream(5)] == [0, 1, 2, 3, 4]
    assert calls == [5, 5, 5]


# ---------------------------------------------------------------- what gets cached


def test_exceptions_are_never_cached(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return x

    with pytest.raises(RuntimeError):
        f(1)
    assert f.cache_get(1) is ...
    assert len(cache) == 0
    assert f(1) == 1
    assert f(1) == 1
    assert calls == [1, 1]


async def test_async_exceptions_are_never_cached(cache):
    calls = []

    @cache.memoize
    async def f(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("transient")
        return x

    with pytest.raises(RuntimeError):
        await f(1)
    assert await f(1) == 1
    assert await f(1) == 1
    assert calls == [1, 1]


def test_none_is_cached(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)

    assert f(1) is None
    assert f(1) is None
    assert calls == [1]
    assert len(cache) == 1


def test_ellipsis_result_is_returned(cache):
    @cache.memoize
    def f(x):
        return ...

    assert f(1) is ...
    assert f(1) is ...


def test_cache_if(cache):
    calls = []

    @cache.memoize(cache_if=lambda r: r is not None)
    def lookup(x):
        calls.append(x)
        return None if x < 0 else x

    assert lookup(-1) is None
    assert lookup(-1) is None
    assert lookup(2) == 2
    assert lookup(2) == 2
    assert calls == [-1, -1, 2]
    assert lookup.cache_get(-1) is ...


def test_falsy_results_are_cached(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return [0, "", [], {}, False, 0.0][x]

    for i in range(6):
        first = f(i)
        assert f(i) == first
    assert calls == list(range(6))


# ---------------------------------------------------------------- binding arguments


def test_positional_keyword_and_default_bind_to_one_key(cache):
    calls = []

    @cache.memoize
    def f(x, y=2):
        calls.append((x, y))
        return x + y

    assert f(1) == 3
    assert f(x=1) == 3
    assert f(1, y=2) == 3
    assert f(1, 2) == 3
    assert f(y=2, x=1) == 3
    assert calls == [(1, 2)]
    assert f(1, 3) == 4
    assert calls == [(1, 2), (1, 3)]


def test_var_args_and_kwargs(cache):
    calls = []

    @cache.memoize
    def f(a, *args, k=0, **kwargs):
        calls.append((a, args, k, kwargs))
        return (a, args, k, sorted(kwargs.items()))

    assert f(1, 2, 3) == (1, (2, 3), 0, [])
    assert f(1, 2, 3) == (1, (2, 3), 0, [])
    assert len(calls) == 1
    assert f(1, 2) == (1, (2,), 0, [])
    assert f(1, 2, 3, k=0) == (1, (2, 3), 0, [])
    assert len(calls) == 2
    assert f(1, p=1, q=2) == (1, (), 0, [("p", 1), ("q", 2)])
    assert f(1, q=2, p=1) == (1, (), 0, [("p", 1), ("q", 2)])
    assert len(calls) == 3
    assert f(1, p=2, q=1) == (1, (), 0, [("p", 2), ("q", 1)])
    assert len(calls) == 4


def test_var_args_and_var_kwargs_do_not_alias(cache):
    @cache.memoize
    def f(*args, **kwargs):
        return ("args", args, "kwargs", kwargs)

    assert f(1) == ("args", (1,), "kwargs", {})
    assert f(a=1) == ("args", (), "kwargs", {"a": 1})
    assert f((1,)) == ("args", ((1,),), "kwargs", {})
    assert f([1]) == ("args", ([1],), "kwargs", {})


def test_positional_only_and_keyword_only(cache):
    calls = []

    @cache.memoize
    def f(a, /, b, *, c=3):
        calls.append((a, b, c))
        return a + b + c

    assert f(1, 2) == 6
    assert f(1, b=2) == 6
    assert f(1, 2, c=3) == 6
    assert len(calls) == 1
    assert f(1, 2, c=4) == 7
    assert len(calls) == 2


def test_type_exact_arguments(cache):
    @cache.memoize
    def kind(x):
        return type(x).__name__

    assert kind(1) == "int"
    assert kind(1.0) == "float"
    assert kind(True) == "bool"
    assert kind((1,)) == "tuple"
    assert kind([1]) == "list"


def test_unhashable_arguments_work(cache):
    calls = []

    @cache.memoize
    def total(data):
        calls.append(1)
        return sum(data["xs"]) + len(data["tags"])

    assert total({"xs": [1, 2], "tags": {"a", "b"}}) == 5
    assert total({"tags": {"b", "a"}, "xs": [1, 2]}) == 5
    assert len(calls) == 1


def test_mutating_an_argument_after_the_call_does_not_corrupt_the_key(cache):
    calls = []

    @cache.memoize
    def f(xs):
        calls.append(list(xs))
        return sum(xs)

    xs = [1, 2]
    assert f(xs) == 3
    xs.append(3)
    assert f(xs) == 6
    assert f([1, 2]) == 3
    assert calls == [[1, 2], [1, 2, 3]]


def test_reserved_looking_parameter_names_are_ordinary_arguments(cache):
    calls = []

    @cache.memoize
    def f(self, func, output, expected, metadata, exclude):
        calls.append(1)
        return (self, func, output, expected, metadata, exclude)

    args = (1, "fn", 2, 3, {"m": 1}, ["x"])
    assert f(*args) == args
    assert f(*args) == args
    assert f(self=1, func="fn", output=2, expected=3, metadata={"m": 1}, exclude=["x"]) == args
    assert len(calls) == 1
    assert f(1, "fn", 2, 3, {"m": 1}, ["y"]) == (1, "fn", 2, 3, {"m": 1}, ["y"])
    assert f(1, "other", 2, 3, {"m": 1}, ["x"]) == (1, "other", 2, 3, {"m": 1}, ["x"])
    assert len(calls) == 3
    assert f.cache_get(*args) == args
    assert f.cache_get(1, "fn", 2, 3, {"m": 1}, exclude=["x"]) == args
    assert (
        cache.get(f, dict(zip(["self", "func", "output", "expected", "metadata", "exclude"], args))) == args
    )


# ---------------------------------------------------------------- exclude


def test_exclude_as_in_the_guide(cache):
    calls = []

    @cache.memoize(exclude=["debug"])
    def compute_with_debug(x, debug=False):
        calls.append((x, debug))
        return x * x

    assert compute_with_debug(5, debug=True) == 25
    assert compute_with_debug(5, debug=False) == 25
    assert compute_with_debug(5) == 25
    assert calls == [(5, True)]
    [entry] = list(cache)
    assert "debug" not in entry.inputs
    assert entry.inputs == {"x": 5}


def test_exclude_into_kwargs(cache):
    calls = []

    @cache.memoize(exclude=["kwargs.api_key"])
    def call_api(prompt, **kwargs):
        calls.append(kwargs.get("api_key"))
        return prompt.upper()

    assert call_api("hi", api_key="secret-1") == "HI"
    assert call_api("hi", api_key="secret-2") == "HI"
    assert call_api("hi") == "HI"
    assert calls == ["secret-1"]
    assert call_api("hi", api_key="secret-1", temperature=0) == "HI"
    assert len(calls) == 2
    for entry in cache:
        assert "secret-1" not in repr(entry.inputs), "an excluded secret must not be stored"


def test_exclude_top_level_name_into_kwargs(cache):
    calls = []

    @cache.memoize(exclude=["api_key"])
    def call_api(prompt, **kwargs):
        calls.append(1)
        return prompt

    call_api("a", api_key="x")
    call_api("a", api_key="y")
    assert len(calls) == 1


def test_exclude_into_a_dict_argument(cache):
    calls = []

    @cache.memoize(exclude=["cfg.token"])
    def run(cfg):
        calls.append(dict(cfg))
        return cfg["model"]

    cfg1 = {"model": "m", "token": "t1"}
    assert run(cfg1) == "m"
    assert run({"model": "m", "token": "t2"}) == "m"
    assert run({"model": "m"}) == "m"
    assert len(calls) == 1
    assert run({"model": "n", "token": "t1"}) == "n"
    assert len(calls) == 2
    assert cfg1 == {"model": "m", "token": "t1"}, "the argument must not be mutated"
    for entry in cache:
        assert "token" not in entry.inputs["cfg"]


def test_exclude_nested_path(cache):
    calls = []

    @cache.memoize(exclude=["cfg.auth.token"])
    def run(cfg):
        calls.append(1)
        return cfg["auth"]["user"]

    assert run({"auth": {"user": "u", "token": "a"}}) == "u"
    assert run({"auth": {"user": "u", "token": "b"}}) == "u"
    assert len(calls) == 1


def test_bad_exclude_name_is_a_config_error(cache):
    def f(x, debug=False):
        return x

    with pytest.raises(ConfigError) as ei:
        cache.memoize(exclude=["degub"])(f)
    assert isinstance(ei.value, ValueError)
    assert "degub" in str(ei.value)


@pytest.mark.parametrize("bad", ["", "a..b", ".a", [1]])
def test_malformed_exclude_is_a_config_error(cache, bad):
    def f(a, **kwargs):
        return a

    with pytest.raises(ConfigError):
        cache.memoize(exclude=bad if isinstance(bad, list) else [bad])(f)


def test_cache_wide_exclude():
    cache = InMemCache(exclude=["request_id"])
    calls = []

    @cache.memoize
    def f(x, request_id=None):
        calls.append(1)
        return x

    @cache.memoize
    def g(y):  # does not have the parameter: not an error
        return y

    f(1, request_id="a")
    f(1, request_id="b")
    assert len(calls) == 1
    assert g(2) == 2


# ---------------------------------------------------------------- identity


def test_name_sets_the_identity(cache):
    @cache.memoize(name="shared")
    def a(x):
        return ("a", x)

    @cache.memoize(name="shared")
    def b(x):
        return ("b", x)

    assert a(1) == ("a", 1)
    assert b(1) == ("a", 1)
    assert cache.get("shared", x=1) == ("a", 1)
    [entry] = list(cache)
    assert entry.func == "shared"


def test_distinct_functions_do_not_share(cache):
    @cache.memoize
    def a(x):
        return ("a", x)

    @cache.memoize
    def b(x):
        return ("b", x)

    assert a(1) == ("a", 1)
    assert b(1) == ("b", 1)


def test_version_changes_the_identity(cache):
    v1 = cache.memoize(name="f", version=1)(lambda x: ("v1", x))
    v2 = cache.memoize(name="f", version=2)(lambda x: ("v2", x))
    assert v1(1) == ("v1", 1)
    assert v2(1) == ("v2", 1)


def test_lookup_by_function_object(cache):
    @cache.memoize
    def f(x):
        return x * 3

    f(2)
    assert cache.get(f, x=2) == 6
    assert cache.get(f.__wrapped__, {"x": 2}) == 6


def test_two_lambdas_never_share(cache):
    f, g = cache.memoize(lambda x: x + 1), cache.memoize(lambda x: x + 2)
    assert f(1) == 2
    assert g(1) == 3
    h = cache.memoize(lambda x: x + 3)
    assert h(1) == 4


def test_partials_never_share(cache):
    powers_of_2 = cache.memoize(functools.partial(pow, 2))
    powers_of_3 = cache.memoize(functools.partial(pow, 3))
    assert powers_of_2(5) == 32
    assert powers_of_3(5) == 243


def test_lambdas_from_one_factory_never_share(cache):
    def make_adder(k):
        return cache.memoize(lambda x: x + k)

    add1, add2 = make_adder(1), make_adder(2)
    assert add1(10) == 11
    assert add2(10) == 12


# ---------------------------------------------------------------- methods


def test_methods_are_not_shared_across_instances(cache):
    class Model:
        def __init__(self, factor):
            self.factor = factor
            self.calls = 0

        @cache.memoize
        def predict(self, x):
            self.calls += 1
            return x * self.factor

    a, b = Model(2), Model(3)
    assert a.predict(5) == 10
    assert a.predict(5) == 10
    assert b.predict(5) == 15
    assert (a.calls, b.calls) == (1, 1)


def test_methods_not_shared_even_when_ids_are_reused(cache):
    class Obj:
        @cache.memoize
        def who(self, x):
            return id(self), x

    for _ in range(50):
        o = Obj()
        assert o.who(1) == (id(o), 1)
        del o


def test_methods_shared_across_instances_with_equal_cache_key(cache):
    calls = []

    class Model:
        def __init__(self, name):
            self.name = name

        def __cache_key__(self):
            return self.name

        @cache.memoize
        def predict(self, x):
            calls.append((self.name, x))
            return f"{self.name}:{x}"

    assert Model("m1").predict(1) == "m1:1"
    assert Model("m1").predict(1) == "m1:1"
    assert Model("m2").predict(1) == "m2:1"
    assert calls == [("m1", 1), ("m2", 1)]


async def test_async_methods(cache):
    class Svc:
        def __init__(self):
            self.calls = 0

        @cache.memoize
        async def fetch(self, x):
            self.calls += 1
            return x

    a, b = Svc(), Svc()
    assert await a.fetch(1) == 1
    assert await a.fetch(1) == 1
    assert await b.fetch(1) == 1
    assert (a.calls, b.calls) == (1, 1)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_cache_does_not_keep_self_alive(cache, kind):
    class Model:
        if kind == "sync":

            @cache.memoize
            def predict(self, x):
                return [x]

        else:

            @cache.memoize
            async def predict(self, x):
                return [x]

    m = Model()
    r = m.predict(1)
    if kind == "async":
        r = await r
    assert r == [1]
    assert len(cache) == 1
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("kind", ["sync", "async", "generator"])
def test_memoized_function_and_its_cache_are_collected(kind):
    """A memoized function that goes out of scope takes its cache and values with it."""

    class Value:
        pass

    cache = InMemCache()
    if kind == "sync":

        def f(x):
            return Value()

    elif kind == "async":

        async def f(x):
            return Value()

    else:

        def f(x):
            yield Value()

    wrapper = cache.memoize(f)
    if kind == "sync":
        value = wrapper(1)
    elif kind == "async":
        value = asyncio.run(wrapper(1))
    else:
        [value] = list(wrapper(1))
    assert len(cache) == 1
    value_ref = weakref.ref(value)
    wrapper_ref = weakref.ref(wrapper)
    del cache, f, wrapper, value
    gc.collect()
    assert wrapper_ref() is None, "the memoized wrapper leaked"
    assert value_ref() is None, "the cached value leaked"


def test_method_called_through_the_class_shares_with_the_instance_call(cache):
    class Model:
        def __init__(self):
            self.calls = 0

        @cache.memoize
        def predict(self, x):
            self.calls += 1
            return x * 2

    m = Model()
    assert m.predict(2) == 4
    assert Model.predict(m, 2) == 4
    assert Model.predict(m, x=2) == 4
    assert m.calls == 1


@pytest.mark.parametrize(
    "func", [module_level_square, module_level_async, module_level_gen], ids=["sync", "async", "generator"]
)
def test_module_level_memoized_function_pickles_by_reference(func):
    # as functools.lru_cache wrappers do (multiprocessing, ProcessPoolExecutor rely on it)
    assert pickle.loads(pickle.dumps(func)) is func


def test_method_helpers_bind_self(cache):
    class Model:
        def __init__(self):
            self.calls = 0

        @cache.memoize
        def predict(self, x):
            self.calls += 1
            return x * 2

    m = Model()
    assert m.predict(2) == 4
    assert m.predict.cache_get(2) == 4
    assert m.predict.cache_invalidate(2) is True
    assert m.predict(2) == 4
    assert m.calls == 2
    assert m.predict.refresh(2) == 4
    assert m.calls == 3


async def test_async_and_generator_method_helpers_bind_self(cache):
    class Model:
        def __init__(self, k):
            self.k = k

        def __cache_key__(self):
            return self.k

        @cache.memoize
        async def fetch(self, x):
            return (self.k, x)

        @cache.memoize
        def items(self, n):
            yield from range(self.k, self.k + n)

    m = Model(10)
    assert asyncio.iscoroutinefunction(Model.fetch)
    assert await m.fetch(1) == (10, 1)
    assert m.fetch.cache_get(1) == (10, 1)
    m.fetch.cache_set("preset", 2)
    assert await m.fetch(2) == "preset"
    assert m.fetch.cache_invalidate(2) is True
    assert await m.fetch(2) == (10, 2)
    assert list(m.items(2)) == [10, 11]
    assert m.items.cache_get(2) == [10, 11]
    assert Model(11).items.cache_get(2) is ...  # another instance's key


def test_classmethod_and_staticmethod_in_both_orders(cache):
    calls = []

    class A:
        @cache.memoize
        @classmethod
        def c1(cls, x):
            calls.append(("c1", cls.__name__, x))
            return (cls.__name__, x)

        @classmethod
        @cache.memoize
        def c2(cls, x):
            calls.append(("c2", cls.__name__, x))
            return (cls.__name__, x)

        @cache.memoize
        @staticmethod
        def s1(x):
            calls.append(("s1", x))
            return x + 1

        @staticmethod
        @cache.memoize
        def s2(x):
            calls.append(("s2", x))
            return x + 2

    class B(A):
        pass

    for _ in range(2):
        assert A.c1(1) == ("A", 1)
        assert A().c1(1) == ("A", 1)
        assert B.c1(1) == ("B", 1)
        assert A.c2(1) == ("A", 1)
        assert A().c2(1) == ("A", 1)
        assert B.c2(1) == ("B", 1)
        assert A.s1(1) == 2
        assert A().s1(1) == 2
        assert A.s2(1) == 3
        assert A().s2(1) == 3
    assert sorted(calls) == sorted(
        [("c1", "A", 1), ("c1", "B", 1), ("c2", "A", 1), ("c2", "B", 1), ("s1", 1), ("s2", 1)]
    )


# ---------------------------------------------------------------- looking like the function


def _kinds():
    def plain(x: int, y: str = "a", *rest: Any, flag: bool = False, **kw: Any) -> str:
        """Plain docstring."""
        return f"{x}{y}"

    async def coro(x: int, y: Optional[str] = None) -> int:
        """Coroutine docstring."""
        return x

    def gen(n: int = 3):
        """Generator docstring."""
        yield from range(n)

    async def agen(n: int = 3):
        """Async generator docstring."""
        for i in range(n):
            yield i

    return [plain, coro, gen, agen]


@pytest.mark.parametrize("index", range(4), ids=["sync", "async", "generator", "async-generator"])
def test_wrapper_looks_like_the_function(cache, index):
    original = _kinds()[index]
    wrapper = cache.memoize(original)
    assert wrapper.__wrapped__ is original
    assert wrapper.__name__ == original.__name__
    assert wrapper.__qualname__ == original.__qualname__
    assert wrapper.__doc__ == original.__doc__
    assert wrapper.__module__ == original.__module__
    assert inspect.signature(wrapper) == inspect.signature(original)
    assert inspect.iscoroutinefunction(wrapper) == inspect.iscoroutinefunction(original)
    assert inspect.isgeneratorfunction(wrapper) == inspect.isgeneratorfunction(original)
    assert inspect.isasyncgenfunction(wrapper) == inspect.isasyncgenfunction(original)
    assert callable(wrapper)


def test_async_wrapper_is_a_coroutine_function(cache):
    @cache.memoize
    async def f(x):
        return x

    assert inspect.iscoroutinefunction(f)
    assert asyncio.iscoroutinefunction(f)


def test_method_wrapper_signature(cache):
    class Plain:
        def m(self, x: int, y: int = 2) -> int:
            """Doc."""
            return x + y

    class C:
        @cache.memoize
        def m(self, x: int, y: int = 2) -> int:
            """Doc."""
            return x + y

    assert inspect.signature(C().m) == inspect.signature(Plain().m)
    assert str(inspect.signature(C().m)).startswith("(x")
    assert inspect.signature(C.m) == inspect.signature(Plain.m)
    assert C.m.__doc__ == "Doc."
    assert C().m.__name__ == "m"
    assert C().m(1) == 3


def test_functools_wraps_on_top_still_works(cache):
    @cache.memoize
    def f(x):
        return x + 1

    @functools.wraps(f)
    def outer(*args, **kwargs):
        return f(*args, **kwargs)

    assert outer(1) == 2
    assert inspect.signature(outer) == inspect.signature(f)


# ---------------------------------------------------------------- helpers


def test_cache_info_counts(cache):
    @cache.memoize
    def f(x):
        return x

    info = f.cache_info()
    assert isinstance(info, tuple)
    assert info._fields == ("hits", "misses", "maxsize", "currsize")
    assert info == (0, 0, cache.maxsize, 0)
    f(1)
    f(1)
    f(2)
    f(1)
    f(x=2)
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (3, 2, 2)
    assert info.maxsize == cache.maxsize


def test_inmem_hits_of_int_and_str_calls_count_once_everywhere():
    # InMemCache serves the hits of calls with int / str arguments given positionally on a raw
    # fast path (rust/py/rawcall.rs); misses, expired entries and every other call form take
    # the general path. Either way each call counts once, for the function and the store.
    cache = InMemCache(ttl=0.5)  # the default clock, which the fast path reads itself
    calls = []

    @cache.memoize
    def f(x, y="d"):
        calls.append((x, y))
        return (x, y)

    assert f(1) == (1, "d")  # miss
    assert f(1) == (1, "d")  # hit, fast
    assert f(1, "d") == (1, "d")  # hit, fast: both arguments positional
    assert f(x=1) == (1, "d")  # hit, general: a keyword
    assert f("s") == ("s", "d")  # miss
    assert f("s") == ("s", "d")  # hit, fast
    assert f(2**70) == (2**70, "d")  # miss: a big int takes the general path
    assert f(2**70) == (2**70, "d")  # hit, general
    assert calls == [(1, "d"), ("s", "d"), (2**70, "d")]
    assert f.cache_info()[:2] == (5, 3)
    stats = cache.store.stats()
    assert (stats["hits"], stats["misses"]) == (5, 3)
    time.sleep(0.6)
    assert f(1) == (1, "d")  # expired: a miss, computed again
    assert len(calls) == 4
    stats = cache.store.stats()
    # all three entries had expired: the lookup dropped f(1)'s, the write purged the others
    assert (stats["hits"], stats["misses"], stats["expirations"]) == (5, 4, 3)
    with cachehaven.disabled():
        assert f(1) == (1, "d")
    assert len(calls) == 5, "disabled caching calls through"
    assert f.cache_info()[:2] == (5, 4)


async def test_cache_info_counts_async(cache):
    @cache.memoize
    async def f(x):
        return x

    await f(1)
    await f(1)
    await f(2)
    assert f.cache_info()[:2] == (1, 2)
    assert f.cache_info().currsize == 2


def test_cache_info_maxsize_reports_the_bound():
    cache = InMemCache(max_entries=5)

    @cache.memoize
    def f(x):
        return x

    for i in range(20):
        f(i)
    info = f.cache_info()
    assert info.maxsize == 5
    assert info.currsize <= 5
    assert info.misses == 20


def test_cache_info_currsize_counts_only_this_function(cache):
    @cache.memoize
    def f(x):
        return x

    @cache.memoize
    def g(x):
        return x

    f(1)
    g(1)
    g(2)
    cache.set("manual", output=1, x=1)
    assert f.cache_info().currsize == 1
    assert g.cache_info().currsize == 2
    assert len(cache) == 4


def test_cache_clear_clears_only_that_function(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(("f", x))
        return x

    @cache.memoize
    def g(x):
        calls.append(("g", x))
        return x

    f(1)
    f(2)
    f(2)
    g(1)
    cache.set("manual", output=7, x=1)
    f.cache_clear()
    assert f.cache_info() == (0, 0, cache.maxsize, 0)
    assert f.cache_get(1) is ...
    assert g.cache_get(1) == 1
    assert cache.get("manual", x=1) == 7
    assert len(cache) == 2
    f(1)
    g(1)
    assert calls == [("f", 1), ("f", 2), ("g", 1), ("f", 1)]


def test_cache_key_helper(cache):
    @cache.memoize
    def f(x, y=0):
        return x + y

    f(1)
    [entry] = list(cache)
    assert f.cache_key(1) == entry.key
    assert f.cache_key(x=1) == entry.key
    assert f.cache_key(1, 0) == entry.key
    assert f.cache_key(1, 1) != entry.key
    assert isinstance(f.cache_key(1), int)
    with pytest.raises(TypeError):
        f.cache_key()


def test_cache_get_set_invalidate_helpers(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x * 10

    assert f.cache_get(1) is ...
    f.cache_set(99, 1)
    assert f.cache_get(1) == 99
    assert f(1) == 99
    assert calls == []
    assert f.cache_invalidate(1) is True
    assert f.cache_invalidate(1) is False
    assert f.cache_get(1) is ...
    assert f(1) == 10
    assert calls == [1]
    f.cache_set(None, x=2)
    assert f(2) is None
    assert calls == [1]


def test_refresh_recomputes_and_stores(cache):
    state = {"n": 0}

    @cache.memoize
    def f(x):
        state["n"] += 1
        return (x, state["n"])

    assert f(1) == (1, 1)
    assert f(1) == (1, 1)
    assert f.refresh(1) == (1, 2)
    assert f(1) == (1, 2)
    assert state["n"] == 2


async def test_refresh_async(cache):
    state = {"n": 0}

    @cache.memoize
    async def f(x):
        state["n"] += 1
        return state["n"]

    assert await f(1) == 1
    assert await f.refresh(1) == 2
    assert await f(1) == 2


# ---------------------------------------------------------------- switching caching off


def test_disabled_context(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    f(1)
    assert cachehaven.is_enabled()
    with cachehaven.disabled():
        assert not cachehaven.is_enabled()
        assert f(1) == 1
        assert f(2) == 2
        assert f(2) == 2
    assert cachehaven.is_enabled()
    assert calls == [1, 1, 2, 2], "while disabled every call computes, even for cached keys"
    assert f.cache_get(2) is ..., "nothing is stored while disabled"
    f(2)
    f(2)
    assert calls == [1, 1, 2, 2, 2]


def test_set_enabled(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    f(1)
    assert cachehaven.set_enabled(False) is True
    try:
        f(1)
        f(1)
        assert calls == [1, 1, 1]
        assert cachehaven.set_enabled(False) is False
    finally:
        assert cachehaven.set_enabled(True) is False
    f(1)
    assert calls == [1, 1, 1]


async def test_disabled_for_async_and_generators(cache):
    calls = []

    @cache.memoize
    async def a(x):
        calls.append(("a", x))
        return x

    @cache.memoize
    def g(x):
        calls.append(("g", x))
        yield x

    with cachehaven.disabled():
        await a(1)
        await a(1)
        list(g(1))
        list(g(1))
    assert len(calls) == 4
    assert len(cache) == 0


# ---------------------------------------------------------------- errors


def test_wrong_signature_raises_pythons_own_type_error(cache):
    def f(x, y=2):
        return x + y

    wrapper = cache.memoize(f)
    for args, kwargs in [((1, 2, 3), {}), ((), {}), ((1,), {"x": 1}), ((1,), {"z": 1})]:
        with pytest.raises(TypeError) as expected:
            f(*args, **kwargs)
        with pytest.raises(TypeError) as got:
            wrapper(*args, **kwargs)
        assert not isinstance(got.value, KeyTypeError)
        assert str(got.value) == str(expected.value)


def test_positional_only_passed_by_keyword_is_a_type_error(cache):
    @cache.memoize
    def f(a, /, b):
        return a + b

    with pytest.raises(TypeError):
        f(a=1, b=2)


def test_positional_only_name_may_also_be_a_kwarg(cache):
    @cache.memoize
    def f(a, /, **kw):
        return (a, kw)

    assert f(1, a=2) == (1, {"a": 2})
    assert f(1, a=2) == (1, {"a": 2})
    assert f(1) == (1, {})


async def test_wrong_signature_async_and_generators(cache):
    @cache.memoize
    async def a(x):
        return x

    @cache.memoize
    def g(x):
        yield x

    with pytest.raises(TypeError):
        await a(1, 2)
    with pytest.raises(TypeError):
        list(g(1, 2))


async def test_unsupported_argument_raises_key_type_error_for_every_kind(cache):
    @cache.memoize
    def s(data):
        return 1

    @cache.memoize
    async def a(data):
        return 1

    @cache.memoize
    def g(data):
        yield 1

    for call in (lambda: s(Opaque()), lambda: list(g(Opaque()))):
        with pytest.raises(KeyTypeError, match="data") as ei:
            call()
        assert "Opaque" in str(ei.value)
    with pytest.raises(KeyTypeError, match="data"):
        await a(Opaque())


def test_unsupported_argument_can_be_excluded(cache):
    @cache.memoize(exclude=["conn"])
    def q(sql, conn):
        return sql

    assert q("select 1", Opaque()) == "select 1"
    assert q("select 1", Opaque()) == "select 1"


def test_invalid_options_are_config_errors(cache):
    def f(x):
        return x

    with pytest.raises(ConfigError):
        cache.memoize(name="")(f)
    with pytest.raises(ConfigError):
        cache.memoize(annotation=["not", "a", "dict"])(f)
    with pytest.raises(ConfigError):
        cache.memoize(cache_if=True)(f)
    with pytest.raises(ConfigError):
        cache.memoize(ttl=-1)(f)
    with pytest.raises(ConfigError):
        cache.memoize(ttl="soon")(f)


# ---------------------------------------------------------------- ttl and fail_open


def test_memoize_ttl_with_fake_clock(clock):
    cache = InMemCache(clock=clock)
    calls = []

    @cache.memoize(ttl=10)
    def f(x):
        calls.append(x)
        return x

    f(1)
    clock.advance(9)
    f(1)
    assert calls == [1]
    clock.advance(2)
    f(1)
    assert calls == [1, 1]


def test_cache_info_currsize_excludes_expired_entries(clock):
    cache = InMemCache(ttl=5, clock=clock)

    @cache.memoize
    def f(x):
        return x

    f(1)
    f(2)
    assert f.cache_info().currsize == 2
    clock.advance(10)
    assert f.cache_info().currsize == 0
    assert len(cache) == 0


def test_result_heavier_than_max_bytes_is_returned_but_not_stored():
    weighed = []

    def weigher(value):
        weighed.append(value)
        return len(value)

    cache = InMemCache(max_bytes=100, weigher=weigher)
    calls = []

    @cache.memoize
    def text(n):
        calls.append(n)
        return "x" * n

    assert text(10) == "x" * 10
    assert text(10) == "x" * 10
    assert text(1000) == "x" * 1000
    assert text(1000) == "x" * 1000
    assert calls == [10, 1000, 1000]
    assert len(cache) == 1
    assert "x" * 10 in weighed, "the weigher is given the cached value"


def test_cache_wide_ttl_with_fake_clock(clock):
    cache = InMemCache(ttl=5, clock=clock)
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    f(1)
    clock.advance(4)
    f(1)
    clock.advance(2)
    f(1)
    assert calls == [1, 1]


class _BrokenStorage(BaseCache):
    """A backend whose storage is down."""

    def _fetch(self, call):
        raise ConnectionError("storage down")

    def _fetch_value(self, call):
        raise ConnectionError("storage down")

    def _put(self, call, entry, ttl=None):
        raise ConnectionError("storage down")


def test_fail_open_computes_without_the_cache(caplog):
    cache = _BrokenStorage()

    @cache.memoize(fail_open=True)
    def f(x):
        return x + 1

    with caplog.at_level(logging.WARNING, logger="cachehaven"):
        assert f(1) == 2
    assert any("storage down" in r.getMessage() for r in caplog.records)


def test_without_fail_open_storage_errors_propagate():
    cache = _BrokenStorage()

    @cache.memoize
    def f(x):
        return x + 1

    with pytest.raises(ConnectionError):
        f(1)
