"""key_scheme="ahvn": keys identical to AgentHeaven 0.9.2's, so caches it wrote can be read."""

from __future__ import annotations

import pytest

import cachehaven
from cachehaven import CacheEntry, CallbackCache, InMemCache, KeyTypeError, identity

GOLDEN = [
    ("f", {"a": 1, "b": 2}, 15656474621063221087615449406023384858),
    ("f", {}, 216499416021199476271144898090529065813),
    ("add", {"x": 5, "y": 10}, 6452910756379405413525593858603593943),
    ("g", {"a": (1, 2)}, 297831071493357151833067244244767724927),
    ("u", {"s": "héllo", "n": None, "l": [1, 2.5, True]}, 132045008364654936202241221473429975426),
    ("kl_store", {"kid": 123}, 322088009617739405387383225572288269752),
]
IDS = [f"{f}-{i}" for f, i, _ in GOLDEN]


@pytest.mark.parametrize(("func", "inputs", "expected"), GOLDEN, ids=IDS)
def test_ahvn_key_golden(func, inputs, expected):
    assert cachehaven.ahvn_key(func, inputs) == expected


@pytest.mark.parametrize(("func", "inputs", "expected"), GOLDEN, ids=IDS)
def test_entry_key_for_ahvn_golden(func, inputs, expected):
    assert CacheEntry(func=func, inputs=inputs, output=0).key_for("ahvn") == expected
    assert CacheEntry.from_args(func=func, output=0, **inputs).key_for("ahvn") == expected


@pytest.mark.parametrize(("func", "inputs", "expected"), GOLDEN, ids=IDS)
def test_ahvn_key_independent_of_input_order(func, inputs, expected):
    reordered = dict(reversed(list(inputs.items())))
    assert cachehaven.ahvn_key(func, reordered) == expected


def test_default_key_is_not_the_ahvn_key():
    entry = CacheEntry(func="add", inputs={"x": 5, "y": 10})
    assert entry.key != entry.key_for("ahvn")
    assert entry.key == entry.key_for("blake3")
    assert entry.key_for("md5") not in (entry.key, entry.key_for("ahvn"))


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(cachehaven.ConfigError):
        CacheEntry(func="f").key_for("sha1")
    with pytest.raises(ValueError):
        InMemCache(key_scheme="sha1")


def add(x, y):
    return x + y


def test_entry_from_callable_uses_the_qualified_identity():
    # cachehaven identifies a callable by module.qualname everywhere (entries, memoize, manual
    # ops), so same-named functions of two modules never collide; AgentHeaven's __name__
    # identity is what key_scheme="ahvn" and identity(..., scheme="ahvn") give
    entry = CacheEntry.from_args(func=add, output=15, x=5, y=10)
    assert entry.func == f"{__name__}.add"
    assert identity(add, scheme="ahvn") == "add"
    compat = CacheEntry.from_args(func=identity(add, scheme="ahvn"), output=15, x=5, y=10)
    assert compat.key_for("ahvn") == 6452910756379405413525593858603593943


def test_ahvn_scheme_cache_keys_a_callable_by_its_name():
    seen = []
    cache = CallbackCache(callbacks=[lambda key, value: seen.append((key, value["func"]))], key_scheme="ahvn")
    cache.set(add, output=15, x=5, y=10)
    assert seen == [(6452910756379405413525593858603593943, "add")]


def test_memoized_cache_key_is_the_ahvn_key():
    cache = InMemCache(key_scheme="ahvn")

    @cache.memoize
    def add(x, y):
        return x + y

    assert add(5, 10) == 15
    assert add.cache_key(5, 10) == 6452910756379405413525593858603593943
    assert add.cache_key(x=5, y=10) == cachehaven.ahvn_key("add", {"x": 5, "y": 10})

    @cache.memoize
    def kl_store(kid):
        return {"kid": kid}

    assert kl_store.cache_key(123) == 322088009617739405387383225572288269752


def test_memoized_cache_key_includes_defaults():
    cache = InMemCache(key_scheme="ahvn")

    @cache.memoize()
    def f(a, b=2):
        return a + b

    assert f.cache_key(1) == 15656474621063221087615449406023384858
    assert f.cache_key(1, 2) == f.cache_key(a=1) == f.cache_key(1)


def test_ahvn_cache_interoperates_with_manual_entries():
    cache = InMemCache(key_scheme="ahvn")
    cache.set(CacheEntry(func="add", inputs={"x": 5, "y": 10}, output=15))
    calls = []

    @cache.memoize
    def add(x, y):
        calls.append((x, y))
        return x + y

    assert add(5, 10) == 15
    assert calls == [], "the memoized function must find the entry stored under its __name__"
    [entry] = list(cache)
    assert entry.func == "add"
    assert entry.key_for("ahvn") == 6452910756379405413525593858603593943
    assert 6452910756379405413525593858603593943 in cache


def test_ahvn_scheme_rejects_callable_arguments():
    with pytest.raises(KeyTypeError):
        cachehaven.ahvn_key("f", {"cb": lambda: 1})
