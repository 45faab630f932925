"""Secret masking as tables and a property: no secret value survives, whatever the shape.

`Redactor` masks the values of a run's declared secrets in every tree that leaves the runner;
`mask_secret_objects` masks Kubernetes Secret objects by shape. The rows cover overlapping
secrets (the longest must go first, or the tail of a longer secret leaks), secrets in mapping
keys, nested lists/tuples/dicts, and Secret `data`/`stringData` in stored results. The end-to-end
rows run a real workflow and search the stored events and the execution record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording_adapter import RecordingAdapter, reset
from runbooks import run, workflow

from wpk.adapters import registry
from wpk.engine.secrets import (
    MASK,
    MAX_SECRET_BYTES,
    MissingSecrets,
    Redactor,
    mask_secret_objects,
    resolve_secrets,
)


@pytest.fixture(autouse=True)
def rec_adapter() -> Iterator[None]:
    registry.register("rec", RecordingAdapter)
    reset()
    yield
    registry.unregister("rec")


# (secrets, input text, masked text)
TEXT_TABLE: list[tuple[list[str], str, str]] = [
    (["hunter2"], "pw=hunter2", "pw=***"),
    (["hunter2"], "hunter2hunter2", "******"),
    (["hunter2"], "no secret here", "no secret here"),
    # overlapping: the longer secret contains the shorter one, in either declaration order
    (["abc123", "abc123-extended"], "x abc123-extended y", "x *** y"),
    (["abc123-extended", "abc123"], "x abc123-extended y", "x *** y"),
    (["abc123", "abc123-extended"], "abc123 and abc123-extended", "*** and ***"),
    # the shorter one sits at the end of the longer one
    (["tail-xyz", "prefix-tail-xyz"], "prefix-tail-xyz", "***"),
    # the shorter one in the middle
    (["mid", "left-mid-right"], "(left-mid-right)", "(***)"),
    (["", "token9"], "token9", "***"),  # an empty value masks nothing (and does not crash)
]


@pytest.mark.parametrize(("secrets", "text", "masked"), TEXT_TABLE)
def test_text_masking(secrets: list[str], text: str, masked: str) -> None:
    assert Redactor(secrets).redact(text) == masked


def test_a_redactor_without_values_passes_everything_through() -> None:
    redactor = Redactor([])
    assert not redactor
    tree = {"a": ["b", ("c",)], 1: None}
    assert redactor.redact(tree) == tree


# (secrets, input tree, masked tree)
TREE_TABLE: list[tuple[list[str], Any, Any]] = [
    (["s3cr3t"], {"s3cr3t": 1}, {MASK: 1}),
    (["s3cr3t"], {"Bearer s3cr3t": "s3cr3t"}, {"Bearer ***": MASK}),
    (
        ["s3cr3t"],
        {"a": {"b": {"c": ["x", {"s3cr3t-key": "y s3cr3t"}]}}},
        {"a": {"b": {"c": ["x", {"***-key": "y ***"}]}}},
    ),
    (["s3cr3t"], ["s3cr3t", ("s3cr3t", 3)], [MASK, [MASK, 3]]),
    (["s3cr3t"], {1: "s3cr3t", None: True, 2.5: [None]}, {1: MASK, None: True, 2.5: [None]}),
    (["abc", "abcdef"], {"abcdef": "abcdefabc"}, {MASK: "******"}),
]


@pytest.mark.parametrize(("secrets", "tree", "masked"), TREE_TABLE)
def test_tree_masking(secrets: list[str], tree: Any, masked: Any) -> None:
    assert Redactor(secrets).redact(tree) == masked


# -- Kubernetes Secret objects ---------------------------------------------------------------


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, **fields}


SECRET_TABLE: list[tuple[Any, Any]] = [
    (secret(data={"password": "aHVudGVyMg=="}), secret(data={"password": MASK})),
    (secret(stringData={"password": "hunter2"}), secret(stringData={"password": MASK})),
    (
        secret(data={"a": "YQ=="}, stringData={"b": "b"}, type="Opaque"),
        secret(data={"a": MASK}, stringData={"b": MASK}, type="Opaque"),
    ),
    # no apiVersion: the core group's v1 is meant
    (
        {"kind": "Secret", "stringData": {"k": "clear"}},
        {"kind": "Secret", "stringData": {"k": MASK}},
    ),
    # a list (k8s.get with a label selector)
    ({"items": [secret(data={"k": "djE="}), {"kind": "ConfigMap", "data": {"k": "v"}}]},
     {"items": [secret(data={"k": MASK}), {"kind": "ConfigMap", "data": {"k": "v"}}]}),
    # deep inside a result: apply's previous object
    ({"object": {"previous": secret(stringData={"x": "y"})}},
     {"object": {"previous": secret(stringData={"x": MASK})}}),
    # not a Secret: left alone
    ({"kind": "ConfigMap", "data": {"k": "v"}}, {"kind": "ConfigMap", "data": {"k": "v"}}),
    # a kind called Secret in another API group is not a Kubernetes Secret
    ({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}},
     {"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}}),
    # no data to mask
    ({"kind": "Secret", "data": None, "stringData": "odd"},
     {"kind": "Secret", "data": None, "stringData": "odd"}),
    # a Secret nested in a list nested in a list
    ([[secret(data={"k": "djE="})]], [[secret(data={"k": MASK})]]),
]  # fmt: skip


@pytest.mark.parametrize(("tree", "masked"), SECRET_TABLE)
def test_kubernetes_secret_objects_are_masked_by_shape(tree: Any, masked: Any) -> None:
    assert mask_secret_objects(tree) == masked


@pytest.mark.parametrize(
    "tree",
    [
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"env": [{"name": "A"}]}]}}}},
        {"kind": "ConfigMap", "data": {"k": "v"}},
        [[{"a": [1, {"b": {}}]}], "x"],
        "scalar",
        None,
    ],
)
def test_results_without_a_secret_object_are_not_copied(tree: Any) -> None:
    # the common case costs nothing: the tree is passed through, not copied
    assert mask_secret_objects(tree) is tree


async def test_kubernetes_secret_data_and_string_data_never_reach_the_store() -> None:
    wf = workflow("""
        steps:
          - id: a
            uses: core.echo
            with:
              message:
                items:
                  - {apiVersion: v1, kind: Secret, metadata: {name: one}, data: {password: aHVudGVyMg==}}
                  - apiVersion: v1
                    kind: Secret
                    metadata: {name: two}
                    stringData: {token: clear-text-token}
            outputs: {whole: "{{ result.message }}"}
    """)
    runner, store = await run(wf)
    dump = json.dumps([e.as_dict() for e in await store.events(runner.execution_id)])
    assert "aHVudGVyMg==" not in dump
    assert "clear-text-token" not in dump
    assert '"password": "***"' in dump and '"token": "***"' in dump


async def test_declared_secrets_never_reach_the_store_in_any_position() -> None:
    # The secret appears as a mapping key, nested in lists, overlapping a longer secret, in a
    # log line, an output, a failed step's error and a rollback.
    wf = workflow("""
        secrets: [short, long]
        steps:
          - id: a
            uses: rec.write
            with:
              label: "w-{{ secrets.short }}"
              value: ["{{ secrets.long }}", {nested: "{{ secrets.short }}"}]
            outputs:
              keyed: "{{ {secrets.short: 1, 'x': [secrets.long]} }}"
          - id: b
            uses: rec.boom
            needs: [a]
            rollback: none
            with: {message: "failed near {{ secrets.long }}!"}
    """)
    short, long = "pa55word", "pa55word-and-more"
    runner, store = await run(wf, secrets={"short": short, "long": long})
    events = await store.events(runner.execution_id)
    dump = json.dumps([e.as_dict() for e in events]) + json.dumps(runner.state.as_dict())
    assert short not in dump
    assert "-and-more" not in dump  # no tail of the longer secret
    assert runner.state.steps["a"].outputs == {"keyed": {MASK: 1, "x": [MASK]}}
    assert runner.state.steps["b"].error == "failed near ***!"
    assert str(runner.state.steps["a"].status) == "compensated"


# -- the property ----------------------------------------------------------------------------

# Secret values: no '*', so the mask itself can never spell one.
SECRET = st.text(
    alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=6, max_size=20
)
FILLER = st.text(max_size=8)


@st.composite
def secrets_and_tree(draw: st.DrawFn) -> tuple[list[str], Any]:
    base = draw(st.lists(SECRET, min_size=1, max_size=4))
    # derived secrets that overlap the others: prefixes+suffix, and one inside another
    extra = [s + draw(SECRET) for s in base[: draw(st.integers(0, len(base)))]]
    values = base + extra

    def text() -> st.SearchStrategy[str]:
        pieces = st.lists(st.one_of(FILLER, st.sampled_from(values)), max_size=5)
        return pieces.map("".join)

    leaves = st.one_of(text(), st.integers(), st.none(), st.booleans())
    tree = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(text(), children, max_size=4),
        ),
        max_leaves=20,
    )
    return values, draw(tree)


def strings_in(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from strings_in(value)


@settings(max_examples=150, deadline=None)
@given(secrets_and_tree())
def test_no_secret_survives_masking(case: tuple[list[str], Any]) -> None:
    values, tree = case
    masked = Redactor(values).redact(tree)
    for text in strings_in(masked):
        for value in values:
            assert value not in text, (value, text)
    assert json.dumps(masked)  # still plain JSON-like data


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="abcdefXYZ0123", min_size=4, max_size=12), min_size=1, max_size=4), st.data()
)
def test_masking_is_idempotent_and_changes_nothing_else(values: list[str], data: st.DataObject) -> None:
    filler = data.draw(st.text(alphabet="_- .:/", max_size=30))
    redactor = Redactor(values)
    assert redactor.redact(filler) == filler  # text without any secret is untouched
    once = redactor.redact(filler + values[0] + filler)
    assert once == filler + MASK + filler
    assert redactor.redact(once) == once


# -- resolving the values --------------------------------------------------------------------


def test_secrets_resolve_from_the_environment_then_the_secrets_dir(tmp_path: Path) -> None:
    (tmp_path / "db").write_bytes(b"from-file\r\n")
    (tmp_path / "edge").write_bytes(b" padded X\n\n")  # only line ends are stripped
    (tmp_path / "both").write_text("file-loses")
    environ = {
        "WPK_SECRET_TOKEN": "from-env",
        "WPK_SECRET_BOTH": "env-wins",
        "WPK_SECRETS_DIR": str(tmp_path),
    }
    found = resolve_secrets(["token", "db", "both", "edge"], environ)
    assert found == {"token": "from-env", "db": "from-file", "both": "env-wins", "edge": " padded X"}


def test_every_missing_secret_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "sub").mkdir()
    environ = {"WPK_SECRET_BLANK": "", "WPK_SECRETS_DIR": str(tmp_path)}
    with pytest.raises(MissingSecrets) as info:
        resolve_secrets(["blank", "empty", "sub", "nowhere", "..", "."], environ)
    assert info.value.names == ["blank", "empty", "sub", "nowhere", "..", "."]
    assert str(info.value) == "blank, empty, sub, nowhere, .., ."


def test_a_secret_name_cannot_walk_out_of_the_secrets_dir(tmp_path: Path) -> None:
    inside = tmp_path / "dir"
    inside.mkdir()
    (tmp_path / "outside").write_text("not yours")
    (inside / "a").mkdir()
    (inside / "a" / "b").write_text("nested")
    environ = {"WPK_SECRETS_DIR": str(inside)}
    for name in ("../outside", "a/b"):
        with pytest.raises(MissingSecrets):
            resolve_secrets([name], environ)


def test_without_a_secrets_dir_only_the_environment_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok").write_text("in cwd")
    with pytest.raises(MissingSecrets):
        resolve_secrets(["tok"], {})
    monkeypatch.setenv("WPK_SECRET_TOK", "process-env")
    assert resolve_secrets(["tok"]) == {"tok": "process-env"}


def test_a_secret_file_is_read_up_to_its_cap(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 10) + b"\n")
    (tmp_path / "odd").write_bytes(b"caf\xe9\n\n")
    found = resolve_secrets(["big", "odd"], {"WPK_SECRETS_DIR": str(tmp_path)})
    assert found["big"] == "x" * MAX_SECRET_BYTES
    assert MAX_SECRET_BYTES == 64 * 1024
    assert found["odd"] == "caf\ufffd"
