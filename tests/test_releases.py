"""Releases: written whole (manifest last), promoted by one pointer, rolled back, pruned."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from aik import params, releases, storage
from aik.bundle import StringIndexerSpec, bundle_bytes, indexer_from_specs
from aik.cli import main
from aik.context import Context
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, RAW_SCHEMA
from aik.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _specs(seed: int) -> list[StringIndexerSpec]:
    rng = np.random.default_rng(seed)
    return [
        StringIndexerSpec(col, out, tuple(rng.permutation([f"{col}{i}" for i in range(5)]).tolist()))
        for col, out in INDEXED_COLUMNS.items()
    ]


def _booster(seed: int, specs: list[StringIndexerSpec] | None) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, (200, len(FEATURE_COLUMNS))).astype(float)
    booster = xgb.train(
        {"objective": "binary:logistic", "seed": seed},
        xgb.DMatrix(x, rng.random(200) < 0.3, feature_names=list(FEATURE_COLUMNS)),
        3,
    )
    if specs is not None:
        booster.set_attr(**{releases.BOOSTER_ATTRIBUTE: releases.indexer_sha256(indexer_from_specs(specs))})
    return bytes(booster.save_raw("ubj"))


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    context = Context(Settings(backend="local", workspace=tmp_path / "ws"))
    params.configure(context.params, context.settings)
    return context


def _release(
    ctx: Context, seed: int, *, day: int, passed: bool = True, bound: bool = True
) -> releases.Release:
    specs = _specs(seed)
    return releases.write_release(
        releases.releases_root(ctx.params),
        bundle=bundle_bytes(specs),
        schema=json.dumps(RAW_SCHEMA).encode(),
        model=_booster(seed, specs if bound else None),
        metrics={"auc": 0.7 + seed / 100, "logloss": 0.4},
        plots={"roc.png": b"png"},
        gates={
            "passed": passed,
            "checks": [] if passed else [{"name": "auc", "passed": False, "message": "low"}],
        },
        now=T0 + timedelta(days=day),
    )


def test_the_manifest_is_written_last(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: (order.append(uri), real(uri, data)))
    release = _release(ctx, 1, day=0)
    assert order[-1] == release.manifest_uri
    assert len(order) == 6  # the plot, bundle, schema, booster, metrics, then the manifest


@pytest.mark.parametrize("crash_at", range(6))
def test_a_crash_anywhere_in_a_publish_leaves_the_live_release_and_no_usable_debris(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    live = releases.promote(ctx.params, _release(ctx, 1, day=0))
    writes: list[str] = []
    real = storage.write_bytes

    def dying(uri: str, data: bytes) -> None:
        if len(writes) == crash_at:
            raise KeyboardInterrupt  # the process dies here (what a kill would leave)
        writes.append(uri)
        real(uri, data)

    monkeypatch.setattr(storage, "write_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        releases.promote(ctx.params, _release(ctx, 2, day=1))
    monkeypatch.undo()
    root = releases.releases_root(ctx.params)
    assert ctx.params.get(params.RELEASE_LIVE) == live.manifest_uri
    assert [r.id for r in releases.list_releases(root)] == [live.id]  # metrics without a model never show
    # the debris goes with the next retention after a later release completed
    later = _release(ctx, 3, day=2)
    debris = [] if crash_at == 0 else [writes[0].split("/")[-3 if crash_at else -2]]
    assert releases.prune(ctx.params, root, keep=5) == debris
    assert {r.id for r in releases.list_releases(root)} == {live.id, later.id}


def test_promote_switches_the_pointer_and_mirrors_the_booster(ctx: Context) -> None:
    release = _release(ctx, 1, day=0)
    releases.promote(ctx.params, release)
    assert ctx.params.get(params.RELEASE_LIVE) == release.manifest_uri
    mirror = Path(ctx.params.get(params.XGBOOST_PATH))
    assert mirror.read_bytes() == Path(release.file_uri("model")).read_bytes()


def _block_the_mirror(ctx: Context) -> Path:
    """Point `/aik/xgboost/path` under a regular file, so that writing the mirror fails."""
    blocker = ctx.settings.workspace / "blocker"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the mirror's directory should be\n")
    ctx.params.put(params.XGBOOST_PATH, str(blocker / "xgboost.bin"))
    return blocker


def test_a_failed_mirror_after_the_switch_leaves_the_release_live_with_a_warning(ctx: Context) -> None:
    _block_the_mirror(ctx)
    release = _release(ctx, 1, day=0)
    warnings: list[str] = []
    assert releases.promote(ctx.params, release, warnings=warnings) == release
    assert ctx.params.get(params.RELEASE_LIVE) == release.manifest_uri
    (warning,) = warnings
    assert warning.startswith(f"release {release.id} is live, but copying its booster to /aik/xgboost/path")


def test_cli_promote_with_a_failed_mirror_exits_0_and_warns(
    ctx: Context, capsys: pytest.CaptureFixture
) -> None:
    _block_the_mirror(ctx)
    release = _release(ctx, 1, day=0)
    assert main(["--workspace", str(ctx.settings.workspace), "promote", release.id]) == 0
    out, err = capsys.readouterr()
    assert f"promote: {release.id} is live" in out
    assert err.startswith("aik promote: warning: ") and len(err.splitlines()) == 1
    assert ctx.params.get(params.RELEASE_LIVE) == release.manifest_uri


def test_promote_removes_temporary_files_a_killed_write_left(ctx: Context) -> None:
    mirror = Path(ctx.params.get(params.XGBOOST_PATH))
    mirror.parent.mkdir(parents=True)
    mirror.write_bytes(b"old")
    stale = mirror.parent / ".xgboost.bin.k2j4h1"
    stale.write_bytes(b"half a model")
    releases.promote(ctx.params, _release(ctx, 1, day=0))
    assert not stale.exists() and mirror.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("gates", "did not pass the gates (auc: low)"),
        ("altered", "does not match its manifest"),
        ("unbound", "does not say which bundle it was trained on"),
        ("other bundle", "does not belong to the booster"),
    ],
)
def test_promote_refuses_a_release_that_fails_a_check(ctx: Context, damage: str, message: str) -> None:
    live = releases.promote(ctx.params, _release(ctx, 1, day=0))
    release = _release(ctx, 2, day=1, passed=damage != "gates", bound=damage != "unbound")
    if damage == "altered":
        Path(release.file_uri("schema")).write_text("{}")
    if damage == "other bundle":  # a consistent manifest, but the bundle's codes are another release's
        root = releases.releases_root(ctx.params)
        release = releases.write_release(
            root,
            bundle=bundle_bytes(_specs(3)),
            schema=b"{}",
            model=Path(release.file_uri("model")).read_bytes(),
            metrics={},
            gates={"passed": True, "checks": []},
            now=T0 + timedelta(days=2),
        )
    with pytest.raises(releases.ReleaseError, match=re.escape(message)):
        releases.promote(ctx.params, release)
    assert ctx.params.get(params.RELEASE_LIVE) == live.manifest_uri


def test_rollback_restores_the_previous_release(ctx: Context) -> None:
    first = releases.promote(ctx.params, _release(ctx, 1, day=0))
    releases.promote(ctx.params, _release(ctx, 2, day=1))
    previous, now = releases.rollback(ctx.params, releases.releases_root(ctx.params))
    assert previous is not None and previous.id != first.id
    assert now.id == first.id and ctx.params.get(params.RELEASE_LIVE) == first.manifest_uri


def test_rollback_skips_releases_that_failed_their_gates(ctx: Context) -> None:
    first = releases.promote(ctx.params, _release(ctx, 1, day=0))
    _release(ctx, 2, day=1, passed=False)
    releases.promote(ctx.params, _release(ctx, 3, day=2))
    _, now = releases.rollback(ctx.params, releases.releases_root(ctx.params))
    assert now.id == first.id


def test_rollback_with_nothing_older_is_a_one_line_error(ctx: Context) -> None:
    releases.promote(ctx.params, _release(ctx, 1, day=0))
    with pytest.raises(releases.ReleaseError, match="no usable release older than the live one"):
        releases.rollback(ctx.params, releases.releases_root(ctx.params))


def test_retention_keeps_the_newest_and_never_the_live_one(ctx: Context) -> None:
    made = [_release(ctx, seed, day=seed) for seed in range(5)]
    releases.promote(ctx.params, made[0])  # the oldest is live (after a rollback, say)
    root = releases.releases_root(ctx.params)
    removed = releases.prune(ctx.params, root, keep=2)
    assert removed == [made[1].id, made[2].id]
    assert {r.id for r in releases.list_releases(root)} == {made[0].id, made[3].id, made[4].id}
    assert not Path(made[1].uri).exists()


def test_cli_lists_promotes_and_rolls_back(ctx: Context, capsys: pytest.CaptureFixture) -> None:
    a, b = _release(ctx, 1, day=0), _release(ctx, 2, day=1)
    ws = ["--workspace", str(ctx.settings.workspace)]
    assert main([*ws, "promote", a.id[:18]]) == 0
    assert main([*ws, "promote", b.id]) == 0
    assert main([*ws, "rollback"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"rollback: {b.id} -> {a.id} is live")
    assert main([*ws, "releases"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"  {b.id}  xgboost    auc 0.7200")
    assert lines[1].startswith(f"* {a.id}  xgboost    auc 0.7100")


def test_cli_promote_of_an_unknown_release_is_a_one_line_error(
    ctx: Context, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--workspace", str(ctx.settings.workspace), "promote", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("aik promote: no release 'nope'")


def test_a_manifest_without_a_family_is_a_booster_release(ctx: Context) -> None:
    release = _release(ctx, 1, day=0)
    doc = json.loads(Path(release.manifest_uri).read_text())
    assert doc["family"] == "xgboost"
    del doc["family"]  # as manifests were written before they named the family
    Path(release.manifest_uri).write_text(json.dumps(doc))
    again = releases.read_release(release.manifest_uri)
    assert again.family == "xgboost" and again.served_role == "model"


def test_a_neural_release_without_an_onnx_export_cannot_be_promoted(ctx: Context) -> None:
    specs = _specs(1)
    release = releases.write_release(
        releases.releases_root(ctx.params),
        bundle=bundle_bytes(specs),
        schema=json.dumps(RAW_SCHEMA).encode(),
        model=b"a torch.save file",
        family="fm",
        model_name="model.pt",
        metrics={"auc": 0.7},
        gates={"passed": True, "checks": []},
    )
    with pytest.raises(releases.ReleaseError, match=f"release {release.id} \\(fm\\) has no ONNX export"):
        releases.promote(ctx.params, release)
    assert releases.live_uri(ctx.params) is None


def test_the_same_model_released_twice_in_one_second_gets_a_second_id(ctx: Context) -> None:
    first = _release(ctx, 1, day=0)
    again = _release(ctx, 1, day=0)
    assert again.id == first.id + "-2"
    assert sorted([again.id, first.id]) == [first.id, again.id]
