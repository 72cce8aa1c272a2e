"""The backends that store nothing: NoCache and CallbackCache (guide sections 3.5 and 3.6)."""

from __future__ import annotations

import logging

import pytest

from cachehaven import CacheEntry, CallbackCache, NoCache

# ---------------------------------------------------------------- NoCache


def test_nocache_always_recomputes():
    cache = NoCache()
    calls = []

    @cache.memoize()
    def f(x):
        calls.append(x)
        return x * 2

    assert f(1) == 2
    assert f(1) == 2
    assert f(1) == 2
    assert calls == [1, 1, 1]
    assert f.cache_info().hits == 0
    assert f.cache_info().currsize == 0


async def test_nocache_async_and_generators_recompute():
    cache = NoCache()
    calls = []

    @cache.memoize
    async def a(x):
        calls.append("a")
        return x

    @cache.memoize
    def g(x):
        calls.append("g")
        yield x

    assert await a(1) == 1
    assert await a(1) == 1
    assert list(g(1)) == [1]
    assert list(g(1)) == [1]
    assert calls == ["a", "a", "g", "g"]


def test_nocache_manual_ops_are_no_ops():
    cache = NoCache()
    entry = CacheEntry(func="f", inputs={"x": 1}, output=2)
    cache.set(entry)
    cache.set("f", output=2, x=1)
    assert cache.get("f", x=1) is ...
    assert not cache.exists("f", x=1)
    assert entry not in cache
    assert len(cache) == 0
    assert list(cache) == []
    assert cache.remove("f", x=1) is False
    assert cache.pop() is None
    assert cache.popall() == []
    cache.clear()


# ---------------------------------------------------------------- CallbackCache: callbacks


def test_callbacks_receive_key_and_entry_dict_on_every_set_in_order():
    events = []

    def first(key, value):
        events.append(("first", key, value))

    def second(key, value):
        events.append(("second", key, value))

    cache = CallbackCache(callbacks=[first, second])

    @cache.memoize
    def f(x, y=1):
        return x + y

    assert f(1) == 2
    assert f(1) == 2, "CallbackCache stores nothing: the call is recomputed and set again"
    assert f(2, y=5) == 7
    assert [e[0] for e in events] == ["first", "second"] * 3
    _, key, value = events[0]
    assert isinstance(key, int) and not isinstance(key, bool)
    func = value["func"]
    assert (func if isinstance(func, str) else func.__name__).split(".")[-1] == "f"
    assert value["inputs"] == {"x": 1, "y": 1}
    assert value["output"] == 2
    assert value["metadata"] == {}
    assert {"func", "inputs", "output", "metadata"} <= set(value)
    assert key == f.cache_key(1)
    assert key == CacheEntry.from_dict(value).key
    assert events[1][1:] == events[0][1:], "both callbacks see the same event"
    assert events[4][2]["inputs"] == {"x": 2, "y": 5}
    assert events[4][2]["output"] == 7


def test_callbacks_on_manual_set():
    events = []
    cache = CallbackCache(callbacks=[lambda k, v: events.append((k, v))])
    entry = CacheEntry(func="my_function", inputs={"x": 5}, output=25, metadata={"version": "1.0"})
    cache.set(entry)
    cache.set("g", output=3, n=1)
    assert [k for k, _ in events] == [entry.key, CacheEntry("g", {"n": 1}).key]
    assert events[0][1] == {
        "func": "my_function",
        "inputs": {"x": 5},
        "output": 25,
        "metadata": {"version": "1.0"},
    }
    assert events[1][1]["output"] == 3


def test_callbacks_receive_annotation_metadata():
    events = []
    cache = CallbackCache(callbacks=[lambda k, v: events.append(v)])

    @cache.memoize(annotation={"team": "backend"})
    def f(x):
        return x

    f(1)
    assert events[0]["metadata"] == {"annotation": {"team": "backend"}}


def test_failing_callback_is_logged_and_skipped(caplog):
    seen = []

    def failing_callback(key, value):
        raise ValueError("callback error!")

    def working_callback(key, value):
        seen.append(value["output"])

    cache = CallbackCache(callbacks=[failing_callback, working_callback])

    @cache.memoize
    def f(x):
        return x * 10

    with caplog.at_level(logging.DEBUG, logger="cachehaven"):
        assert f(1) == 10
        assert f(2) == 20
    assert seen == [10, 20]
    errors = [r for r in caplog.records if r.name == "cachehaven" and r.levelno >= logging.WARNING]
    assert len(errors) == 2
    assert any("callback error!" in (r.getMessage() + str(r.exc_info)) for r in errors)


def test_callbacks_must_be_callable():
    with pytest.raises(TypeError):
        CallbackCache(callbacks=["not callable"])
    with pytest.raises(TypeError):
        CallbackCache(feeds=[42])


# ---------------------------------------------------------------- CallbackCache: feeds


def test_feeds_are_asked_in_order_and_first_value_wins():
    asked = []

    def feed_a(func, **kwargs):
        asked.append(("a", func, kwargs))
        return ...

    def feed_b(func, **kwargs):
        asked.append(("b", func, kwargs))
        return kwargs["x"] * 100 if kwargs["x"] < 10 else ...

    def feed_c(func, **kwargs):
        asked.append(("c", func, kwargs))
        return "from c"

    cache = CallbackCache(feeds=[feed_a, feed_b, feed_c])
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return -x

    assert f(1) == 100
    assert [(name, kw) for name, _, kw in asked] == [("a", {"x": 1}), ("b", {"x": 1})]
    assert asked[0][1] is f.__wrapped__ or getattr(asked[0][1], "__name__", None) == "f"
    asked.clear()
    assert f(50) == "from c"
    assert [name for name, _, _ in asked] == ["a", "b", "c"]
    assert calls == []


def test_feeds_falling_through_call_the_function_once():
    asked = []

    def feed(func, **kwargs):
        asked.append(kwargs)
        return ...

    cache = CallbackCache(feeds=[feed])
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    assert f(3) == 3
    assert calls == [3]
    assert asked == [{"x": 3}], "each feed is asked once per call"


def test_feed_none_is_a_value():
    cache = CallbackCache(feeds=[lambda func, **kw: None])

    @cache.memoize
    def f(x):
        raise AssertionError("must not be called: the feed answered None")

    assert f(1) is None


def test_feeds_on_manual_get_receive_the_name():
    asked = []

    def feed(func, **kwargs):
        asked.append((func, kwargs))
        return 42 if func == "lookup" else ...

    cache = CallbackCache(feeds=[feed])
    assert cache.get("lookup", x=1) == 42
    assert cache.get("lookup", {"x": 2}) == 42
    assert cache.get("other", x=1) is ...
    assert asked == [("lookup", {"x": 1}), ("lookup", {"x": 2}), ("other", {"x": 1})]


def test_failing_feed_is_logged_and_skipped(caplog):
    def failing_feed(func, **kwargs):
        raise RuntimeError("feed error!")

    def working_feed(func, **kwargs):
        return "fed"

    cache = CallbackCache(feeds=[failing_feed, working_feed])

    @cache.memoize
    def f(x):
        return "computed"

    with caplog.at_level(logging.DEBUG, logger="cachehaven"):
        assert f(1) == "fed"
    errors = [r for r in caplog.records if r.name == "cachehaven" and r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert "feed error!" in errors[0].getMessage() + str(errors[0].exc_info)


def test_only_failing_feeds_fall_back_to_the_function(caplog):
    def failing_feed(func, **kwargs):
        raise RuntimeError("feed error!")

    events = []
    cache = CallbackCache(callbacks=[lambda k, v: events.append(v["output"])], feeds=[failing_feed])

    @cache.memoize
    def f(x):
        return "computed"

    with caplog.at_level(logging.DEBUG, logger="cachehaven"):
        assert f(1) == "computed"
    assert events == ["computed"]


async def test_feeds_and_callbacks_for_async_functions():
    events = []
    cache = CallbackCache(
        callbacks=[lambda k, v: events.append(v["output"])],
        feeds=[lambda func, **kw: "fed" if kw["x"] == 0 else ...],
    )

    @cache.memoize
    async def f(x):
        return x * 3

    assert await f(0) == "fed"
    assert await f(2) == 6
    assert events == [6]


def test_guide_fibonacci_feed():
    def custom_feed(func, **kwargs):
        if func.__name__ == "fibonacci" and kwargs["n"] <= 10:
            return [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55][kwargs["n"]]
        return ...

    cache = CallbackCache(feeds=[custom_feed])
    computed = []

    @cache.memoize
    def fibonacci(n):
        computed.append(n)
        return n if n <= 1 else fibonacci(n - 1) + fibonacci(n - 2)

    assert fibonacci(12) == 144
    assert sorted(computed) == [11, 12], "n <= 10 comes from the feed"


# ---------------------------------------------------------------- the guide's 3.6 example


def complex_calculation(x):
    return x + 1


def test_guide_3_6_example(capsys):
    def log_cache_set(key, value):
        print(f"缓存设置: {key} = {value}")

    def monitor_memory(key, value):
        print(f"设置 {key} 后的内存使用情况")

    def fast_computation(func, **kwargs):
        """为特定输入提供快速替代方案"""
        if kwargs.get("x", 0) < 100:
            return kwargs["x"] * 2
        return ...

    def database_lookup(func, **kwargs):
        """检查外部数据库中的缓存结果"""
        return ...

    cache = CallbackCache(
        callbacks=[log_cache_set, monitor_memory], feeds=[fast_computation, database_lookup]
    )

    @cache.memoize()
    def expensive_function(x):
        print(f"为 {x} 计算")
        return x * x + complex_calculation(x)

    result = expensive_function(5)
    assert result == 10
    out = capsys.readouterr().out
    assert out == "", "the feed answered: nothing computed, nothing set"

    result = expensive_function(200)
    assert result == 200 * 200 + 201
    lines = capsys.readouterr().out.splitlines()
    key = expensive_function.cache_key(200)
    assert lines[0] == "为 200 计算"
    assert lines[1].startswith(f"缓存设置: {key} = ")
    assert "'output': 40201" in lines[1]
    assert lines[2] == f"设置 {key} 后的内存使用情况"
    assert len(lines) == 3
