"""Values mean on every store what they meant when a node returned them (DESIGN §6).

A persistent store keeps values as JSON: what it gives back is plain data, and
`restore(value, annotation)` (what resume uses) turns it back into the annotated type.
Secrets never reach a table, a file, a pickle or a message.
"""

from __future__ import annotations

import base64
import math
import pickle
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretBytes, SecretStr

from aetherflow import NodeOutputError, Worker, node, open_store
from aetherflow.redaction import mentions_secret
from aetherflow.store import Store
from aetherflow.store.jsontext import redact_secrets, storable_text
from aetherflow.store.serialize import restore, storable_input
from storecase import store_url

KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = open_store(store_url(request.param, tmp_path))
    yield s
    s.close()


class Point(BaseModel):
    x: float
    label: str


WHEN = datetime(2026, 1, 31, 12, 30, tzinfo=UTC)

# (name, value, annotation): the value kinds whose meaning JSON alone would change.
VALUE_KINDS: list[tuple[str, Any, Any]] = [
    ("set", {3, 1, 2}, set[int]),
    ("datetime", WHEN, datetime),
    ("int-keyed dict", {1: "one", 2: "two"}, dict[int, str]),
    ("tuple", (1, "a"), tuple[int, str]),
    ("model", Point(x=1.5, label="p"), Point),
    ("list of models", [Point(x=0.0, label="a")], list[Point]),
    ("nan", math.nan, float),
    ("inf", math.inf, float),
    ("-inf", -math.inf, float),
    ("floats with nan inside", [1.0, math.nan, math.inf], list[float]),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("kind", "value", "annotation"), VALUE_KINDS, ids=[k[0] for k in VALUE_KINDS])
def test_every_value_kind_comes_back_as_it_was_on_every_store(
    store: Store, kind: str, value: Any, annotation: Any
) -> None:
    @node
    def produce(job_state) -> Any:
        job_state.set("kept", value)
        return value

    with Worker(threads=1, store=store) as w:
        job = w.submit(produce)
        assert _same(job.result(10), value)
    output = store.job(job.id).output
    [history] = store.state_history(job.id)
    assert _same(restore(output, annotation), value), f"{kind}: stored {output!r}"
    assert _same(restore(history.value, annotation), value), f"{kind}: state stored {history.value!r}"


def test_nan_and_infinity_come_back_raw_as_floats_on_every_store(store: Store) -> None:
    @node
    def measure() -> dict:
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

    with Worker(threads=1, store=store) as w:
        job = w.submit(measure)
        job.result(10)
    stored = store.job(job.id).output
    assert math.isnan(stored["nan"]) and stored["inf"] == math.inf and stored["-inf"] == -math.inf


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_generator_output_is_refused_with_return_a_list(kind: str, tmp_path: Path) -> None:
    @node
    def numbers(n: int):
        return (i for i in range(n))

    @node
    def total(numbers) -> int:
        return sum(numbers)

    flow = numbers.then(total).named("gen")
    with (
        Worker(threads=1, store=store_url(kind, tmp_path)) as w,
        pytest.raises(NodeOutputError, match=r"one-shot iterator \(generator\).*Return a list"),
    ):
        w.submit(flow, {"n": 4}).result(10)


def test_restore_keeps_the_raw_value_when_it_does_not_fit_the_annotation() -> None:
    assert restore(["a", "b"], set[int]) == ["a", "b"]
    assert restore({"x": 1}, None) == {"x": 1}
    assert restore("2026-01-31T12:30:00Z", Any) == "2026-01-31T12:30:00Z"
    assert restore([1, 2], list[object.__class__]) == [1, 2]  # a type pydantic cannot build an adapter for


def test_storable_text_escapes_surrogates_and_nul_and_leaves_plain_text_alone() -> None:
    assert storable_text("plain ascii") == "plain ascii"
    assert storable_text("héllo — ok") == "héllo — ok"
    assert storable_text("/data/in\udcff.csv") == "/data/in\\udcff.csv"
    assert storable_text("a\x00b") == "a\\x00b"
    assert storable_text(None) is None


# -- secrets ---------------------------------------------------------------------------------------


class Login(BaseModel):
    user: str
    pin: SecretStr


def test_pickling_store_keeps_no_secret_in_outputs_or_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url, pickle=True)

    @node
    def login(job_state) -> dict:
        job_state.set("token", SecretBytes(b"tok-hunter2"))
        return {"user": Login(user="ada", pin=SecretStr("hunter2")), "raw": SecretStr("hunter2")}

    with Worker(threads=1, store=store) as w:
        job = w.submit(login)
        assert job.result(10)["raw"].get_secret_value() == "hunter2"  # the caller still gets it
    output = store.job(job.id).output
    assert output["raw"].get_secret_value() == "**********"
    assert output["user"].pin.get_secret_value() == "**********" and output["user"].user == "ada"
    assert [h.value.get_secret_value() for h in store.state_history(job.id)] == [b"**********"]
    store.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("p.db*"))  # the WAL file too
    pickles = [base64.b64decode(text + b"==") for text in re.findall(rb"pickle:([A-Za-z0-9+/]+)", raw)]
    assert pickles and b"hunter2" not in raw and not any(b"hunter2" in p for p in pickles)


def test_redact_secrets_reaches_into_containers_models_and_tuples() -> None:
    value = {"a": [SecretStr("s1")], "b": (Login(user="u", pin=SecretStr("s2")),), "c": frozenset({SecretBytes(b"s3")})}
    redacted = redact_secrets(value)
    assert all(s not in pickle.dumps(redacted) for s in (b"s1", b"s2", b"s3"))
    assert redacted["b"][0].user == "u" and type(redacted["b"]) is tuple


def test_an_input_for_a_model_with_secret_fields_is_stored_masked() -> None:
    assert mentions_secret(Login) and mentions_secret(list[Login]) and mentions_secret(SecretStr | None)
    assert not mentions_secret(dict[str, int])
    assert storable_input({"user": "ada", "pin": "s3cr3t"}, Login) == {"user": "ada", "pin": "**********"}
    assert storable_input(123456, SecretStr) == "**********"  # an invalid secret is masked too
    assert storable_input({"user": "ada"}, Login) == "**********"  # invalid: nothing about it is told
    assert storable_input(5, int) == 5


def test_an_invalid_secret_input_appears_nowhere(tmp_path: Path) -> None:
    @node
    def unlock(pin: SecretStr) -> int:
        return 1

    url = f"sqlite:///{tmp_path / 's.db'}"
    with Worker(threads=1, store=url) as w:
        job = w.submit(unlock, {"pin": 987654})
        with pytest.raises(Exception) as caught:
            job.result(10)
        assert "987654" not in str(caught.value)
        rec = w.store.job(job.id)
        assert "987654" not in repr(rec) and all(
            "987654" not in (r.error or "") + (r.traceback or "") for r in w.store.node_runs(job.id)
        )
    assert b"987654" not in b"".join(f.read_bytes() for f in tmp_path.glob("s.db*"))


def test_a_dict_input_for_a_model_with_secret_fields_is_stored_masked(tmp_path: Path) -> None:
    @node
    def sign_in(login: Login) -> str:
        return login.user

    url = f"sqlite:///{tmp_path / 's.db'}"
    with Worker(threads=1, store=url) as w:
        job = w.submit(sign_in, {"login": {"user": "ada", "pin": "s3cr3t-pin"}})
        assert job.result(10) == "ada"
        assert w.store.job(job.id).inputs == {"login": {"user": "ada", "pin": "**********"}}
    assert b"s3cr3t-pin" not in b"".join(f.read_bytes() for f in tmp_path.glob("s.db*"))


def test_secret_fields_of_dataclasses_and_typed_dicts_are_stored_masked(tmp_path: Path) -> None:
    import dataclasses

    from typing_extensions import TypedDict

    @dataclasses.dataclass
    class Creds:
        user: str
        password: SecretStr

    class Token(TypedDict):
        token: SecretStr

    @node
    def login(creds: Creds, td: Token) -> str:
        return creds.user + td["token"].get_secret_value()[:1]

    db = tmp_path / "dc.db"
    with Worker(threads=1, store=f"sqlite:///{db}") as w:
        assert (
            w.run(login, {"creds": {"user": "bob", "password": "hunter4-plain"}, "td": {"token": "hunter5-plain"}})
            == "bobh"
        )
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("dc.db*"))
    assert b"hunter4-plain" not in blob and b"hunter5-plain" not in blob and b"bob" in blob
