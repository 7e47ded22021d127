"""The demo's A/B step: experiments between releases of known quality, closed by the synthetic world.

Two experiments over fresh requests of the world's traffic (the emulator's inference rows under new
BidIDs), each judged by `aik monitor` with the world's realized truth beside its estimates:
- `demo-ab`: the demo's model as champion against a challenger trained on `WEAK_ROWS` rows only (the
  truth says it is worse); the champion must win.
- `demo-aa`: the same release in both arms; no significant difference.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aik import params, storage
from aik.context import Context
from aik.errors import AikError
from aik.experiments import Arm, Experiment
from aik.monitor.report import MonitorReport
from aik.truth import TruthModel, truth_uri
from demo.closed_loop import by_server, run_closed_loop
from demo.state import Record
from demo.steps import Trained

#: Training rows of the weak challenger (per split, as `aik train --max-rows` caps them).
WEAK_ROWS = 1_000
#: The challenger's share of traffic.
CHALLENGER_SHARE = 0.1


def train_weak(ctx: Context) -> Trained:
    """A release trained on WEAK_ROWS rows (kept as a candidate; its gates may fail, it is an experiment)."""
    from aik.train.gates import GateFailed
    from aik.train.workflow import TrainOptions, train_and_publish

    options = TrainOptions(seed=0, publish=False, baselines=False, max_rows=WEAK_ROWS)
    try:
        result = train_and_publish(ctx, options)
    except GateFailed as exc:  # written but not publishable: still a release an experiment can serve
        result = exc.result
    return Trained(
        metrics=result.metrics,
        release=result.release.manifest_uri,
        model_uri=result.model_uri,
        candidate_uri=result.candidate_uri,
        reports=result.candidate_reports,
        published=False,
    )


@dataclass(frozen=True)
class Judged(Record):
    """One experiment's verdict against the truth, and where its report is."""

    name: str
    champion: str
    challenger: str
    requests: int
    shares: dict[str, int]
    logloss: dict[str, float | None]
    truth_logloss: dict[str, float]
    logloss_difference: dict[str, float | None]
    p_value: float | None
    significant: bool
    winner: str | None
    truth_difference: float | None
    expected_actual: dict[str, dict[str, float | None]]
    truth_expected_actual: dict[str, float]
    rate_difference_significant: bool
    report: str
    calibration_png: str

    @classmethod
    def of(cls, report: MonitorReport, out: str) -> Judged:
        """The figures of a report's single verdict."""
        (verdict,) = report.verdicts
        arms = report.arms
        return cls(
            name=report.experiment or "",
            champion=report.releases[verdict.champion][0],
            challenger=report.releases[verdict.challenger][0],
            requests=sum(m.n for m in arms.values()),
            shares={arm: m.n for arm, m in arms.items()},
            logloss={arm: m.logloss.value for arm, m in arms.items()},
            truth_logloss={arm: m.truth.logloss for arm, m in arms.items() if m.truth},
            logloss_difference=verdict.logloss.difference.to_dict(),
            p_value=verdict.logloss.p_value,
            significant=verdict.logloss.significant,
            winner=verdict.winner,
            truth_difference=verdict.truth["logloss_difference"] if verdict.truth else None,
            expected_actual={arm: m.expected_actual.to_dict() for arm, m in arms.items()},
            truth_expected_actual={arm: m.truth.expected_actual for arm, m in arms.items() if m.truth},
            rate_difference_significant=verdict.rate.significant,
            report=storage.join(out, "monitor-report.json"),
            calibration_png=report.plots.get("calibration", ""),
        )


@dataclass(frozen=True)
class AbTested:
    """The weak challenger and both experiments' verdicts."""

    weak: Trained
    experiments: list[Judged]
    served_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "weak": self.weak.to_dict(),
            "experiments": [e.to_dict() for e in self.experiments],
            "served_by": self.served_by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AbTested:
        """Read back what `to_dict` wrote."""
        return cls(
            Trained.from_dict(data["weak"]),
            [Judged.from_dict(e) for e in data["experiments"]],
            data["served_by"],
        )


def _release_id(manifest_uri: str) -> str:
    return manifest_uri.rstrip("/").rsplit("/", 2)[-2]


def abtest(ctx: Context, directory: Path, first: Trained, weak: Trained, requests: int) -> AbTested:
    """Run both experiments through the closed loop and judge them."""
    from ad_server_emulator.emulator import load_rows

    root = directory / "abtest"
    shutil.rmtree(root, ignore_errors=True)  # each run judges its own requests only
    traffic = load_rows(ctx.params.get(params.INFERENCE_DATA), 100_000)
    truth = TruthModel.load(truth_uri(ctx.params.get(params.RAW_DATA)))
    good, bad = _release_id(first.release), _release_id(weak.release)
    judged = []
    for name, challenger in (("demo-ab", bad), ("demo-aa", good)):
        experiment = Experiment(
            name=name,
            salt=f"{name}-salt",
            arms=(
                Arm("champion", good, 1 - CHALLENGER_SHARE),
                Arm("challenger", challenger, CHALLENGER_SHARE),
            ),
        )
        out = str(root / name / "monitor")
        loop = run_closed_loop(
            serve=by_server(ctx.settings, ctx.params, root / name / "server.log"),
            experiment=experiment,
            traffic=traffic,
            truth=truth,
            requests=requests,
            seed=7,
            logs_root=str(root / name / "exchange"),
            predictions_root=str(root / name / "predictions"),
            out=out,
        )
        judged.append(Judged.of(loop.report, out))
    ab, aa = judged
    if ab.winner != "champion" or aa.significant:
        raise AikError(
            f"the verdicts disagree with the truth: {ab.name} winner {ab.winner} (truth: the champion), "
            f"{aa.name} {'significant' if aa.significant else 'not significant'} (truth: equal)"
        )
    return AbTested(weak, judged, served_by="server")


def _interval(d: dict[str, float | None], digits: int = 4) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    return f"{f(d['value'])} [{f(d['low'])}, {f(d['high'])}]"


def lines(result: AbTested) -> list[str]:
    """The summary's lines of the A/B step."""
    out = []
    weak_auc = result.weak.metrics.auc
    for e in result.experiments:
        if e.champion == e.challenger:
            what = f"the same release in both arms ({e.champion})"
        else:
            trained = f"trained on {WEAK_ROWS:,} rows" + (f", test AUC {weak_auc:.4f}" if weak_auc else "")
            what = f"champion {e.champion} vs challenger {e.challenger} ({trained})"
        verdict = f"{e.winner} wins" if e.winner else "no significant difference"
        p = "-" if e.p_value is None else f"{e.p_value:.2g}"
        truth = "-" if e.truth_difference is None else f"{e.truth_difference:+.4f}"
        ratios = ", ".join(
            f"{arm} {_interval(r, 3)} (truth {e.truth_expected_actual.get(arm, float('nan')):.3f})"
            for arm, r in e.expected_actual.items()
        )
        out += [
            f"a/b test   {e.name}: {what}",
            f"           {e.requests:,} requests ({', '.join(f'{a} {n:,}' for a, n in e.shares.items())}): "
            f"log loss difference {_interval(e.logloss_difference)}, p {p} -> {verdict} (truth {truth})",
            f"           expected/actual {ratios}",
            f"           [{e.report}, {e.calibration_png}]",
        ]
    return out
