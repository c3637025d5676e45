"""The bench's outputs: ``bench.json`` (the full record), ``report.md`` (tables shaped like the STRATUS paper's:
per scenario like its Table 9, summary like Table 2, ablation like Table 3, plus the chaos safety table) and PNG plots
(mu-paths per scenario; success by policy/ablation)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path

from arena.bench.record import BenchRecord, ScenarioRecord


def write_outputs(record: BenchRecord, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "report.md"}
    paths["json"].write_text(record.model_dump_json(indent=2))
    plots = write_plots(record, out)
    paths.update(plots)
    paths["markdown"].write_text(markdown(record, {k: v.name for k, v in plots.items()}))
    return paths


def load(path: Path) -> BenchRecord:
    return BenchRecord.model_validate_json(path.read_text())


# -- numbers --------------------------------------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}" if digits else str(round(v))


def _median(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def _mean(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.fmean(vs) if vs else None


def _mus(values: list[float]) -> str:
    return "[" + ", ".join(_fmt(v, 0) for v in values) + "]"


def _tnr(r: ScenarioRecord) -> str:
    if r.tnr_held:
        return "held"
    return "drift" if r.drift else "**violated**"


def _groups(runs: list[ScenarioRecord]) -> dict[tuple[str, str, str], list[ScenarioRecord]]:
    out: dict[tuple[str, str, str], list[ScenarioRecord]] = {}
    for r in runs:
        out.setdefault((r.policy, r.ablation, r.task), []).append(r)
    return out


# -- markdown -------------------------------------------------------------------------------------------------------
def markdown(record: BenchRecord, plots: dict[str, str] | None = None) -> str:
    runs = record.runs
    lines = [
        f"# Stratus bench: {record.suite}",
        "",
        f"`{record.command}`" if record.command else "",
        "",
        f"Started {record.started:%Y-%m-%d %H:%M:%S} UTC, "
        + (f"took {(record.finished - record.started).total_seconds():.0f} s" if record.finished else "unfinished")
        + f"; oracle `{record.oracle}`; {len(runs)} scenario runs.",
        "",
        "## Summary (like the paper's Table 2)",
        "",
        "| policy | ablation | task | success | rate | median TTD (s) | median TTM (s) | attempts/incident | "
        "steps | tokens | cost ($) | TNR held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (policy, ablation, task), rs in _groups(runs).items():
        ok = sum(r.success for r in rs)
        inc = [r for r in rs if r.detected]
        lines.append(
            f"| {policy} | {ablation} | {task} | {ok}/{len(rs)} | {100 * ok / len(rs):.1f}% | "
            f"{_fmt(_median(r.ttd_s for r in rs))} | {_fmt(_median(r.ttm_s for r in rs))} | "
            f"{_fmt(_mean(len(r.attempts) for r in inc), 2)} | {_fmt(_mean(r.steps for r in rs))} | "
            f"{_fmt(_mean(r.prompt_tokens + r.completion_tokens for r in rs), 0)} | "
            f"{_fmt(sum(r.cost_usd for r in rs), 4)} | {sum(r.tnr_held for r in inc)}/{len(inc)} |"
        )
    ablations = sorted({r.ablation for r in runs})
    if len(ablations) > 1 or record.suite != "chaos":
        lines += [
            "",
            "## Ablation (like the paper's Table 3)",
            "",
            "| policy | ablation | success | rate | attempts/incident | aborted tx | median TTM (s) | "
            "visible regressions (mu > b) | runs with TNR violated (of which drift) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for (policy, ablation, _task), rs in _groups(runs).items():
            ok = sum(r.success for r in rs)
            inc = [r for r in rs if r.detected]
            aborted = sum(1 for r in rs for a in r.attempts if a.decision == "abort")
            lines.append(
                f"| {policy} | {ablation} | {ok}/{len(rs)} | {100 * ok / len(rs):.1f}% | "
                f"{_fmt(_mean(len(r.attempts) for r in inc), 2)} | {aborted} | {_fmt(_median(r.ttm_s for r in rs))} | "
                f"{sum(r.regressions for r in rs)} | {sum(not r.tnr_held for r in inc)} "
                f"({sum(r.drift for r in inc)}) |"
            )
    if record.suite == "chaos" or any(r.policy == "chaos" for r in runs):
        chaos = [r for r in runs if r.policy == "chaos"]
        tx = sum(r.transactions for r in chaos)
        lines += [
            "",
            "## Chaos safety net",
            "",
            "| transactions tried | committed | aborted | undos | visible regressions (mu > b) | "
            "digest mismatches after undo | undo divergences | incidents |",
            "|---|---|---|---|---|---|---|---|",
            f"| {tx} | {sum(1 for r in chaos for a in r.attempts if a.decision == 'commit')} | "
            f"{sum(1 for r in chaos for a in r.attempts if a.decision == 'abort')} | "
            f"{sum(1 for r in chaos for a in r.attempts if a.digest_restored is not None)} | "
            f"{sum(r.regressions for r in chaos)} | {sum(r.digest_mismatches for r in chaos)} | "
            f"{sum(r.undo_divergences for r in chaos)} | {sum(r.detected for r in chaos)} |",
        ]
    lines += [
        "",
        "## Per scenario (like the paper's Table 9)",
        "",
        "| scenario | policy | ablation | # | success | TTD (s) | TTM (s) | outcome | attempts | actions | steps | "
        "tokens | cost ($) | b | visible mu | TNR | undo div. | wall (s) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        note = r.error or (r.answer if r.answer is not None else "; ".join(r.oracle_reasons[:2]))
        note = (note or "").replace("|", "/").replace("\n", " ")[:120]
        lines.append(
            f"| {r.scenario} | {r.policy} | {r.ablation} | {r.repeat} | {'yes' if r.success else 'no'} | "
            f"{_fmt(r.ttd_s)} | {_fmt(r.ttm_s)} | {r.outcome or '-'} | {len(r.attempts)} | {r.actions} | {r.steps} | "
            f"{r.prompt_tokens + r.completion_tokens} | {r.cost_usd:.4f} | {_fmt(r.baseline, 0)} | "
            f"{_mus(r.visible_mu)} | {_tnr(r)} | {r.undo_divergences} | "
            f"{r.wall_s:.0f} | {note} |"
        )
    lines += _llm_table(runs)
    lines += noise_table(record)
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({file})" for name, file in plots.items()]
    lines += [
        "",
        "TTD: injection -> incident opened; TTM: injection -> incident closed as resolved. Steps: writes executed plus "
        "the agents' reasoning steps (usage.steps). Visible mu: the severity at each commit/abort/undo point; TNR "
        "holds when every visible mu <= b; 'drift' marks a run where it did not although no transaction committed and "
        "every undo restored the checkpoint's digest (runtime state at a restored spec: the fault evolving, or pods "
        "still converging after an undo). Success is the "
        "scenario's oracle (mitigation: the cluster check in the chosen mode; detection/localization/RCA: "
        "AIOpsLab's scoring of the system's answer).",
        "",
    ]
    return "\n".join(lines)


def noise_table(record: BenchRecord) -> list[str]:
    """With --noise: per run, the benign changes made, and whether they caused a false positive or were blamed."""
    if record.noise is None:
        return []
    runs = record.runs
    clean = [r for r in runs if r.false_positive is not None]
    diagnosed = [r for r in runs if r.false_positive is None and r.detected]
    fps = sum(bool(r.false_positive) for r in clean)
    wrong = sum(r.wrong_attribution is not None for r in diagnosed)
    spec = ", ".join(f"{k}={v}" for k, v in record.noise.items())
    lines = [
        "",
        "## Noise (benign changes during each run)",
        "",
        f"Noise: {spec}. {sum(len(r.noise) for r in runs)} changes over {len(runs)} runs; "
        f"false positives {fps}/{len(clean)} runs without a fault; "
        f"wrong attributions {wrong}/{len(diagnosed)} detected faults.",
        "",
        "| scenario | # | changes (ok) | kinds | false positive | diagnosis blamed | wrong attribution |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        kinds = sorted({e.kind for e in r.noise if e.ok})
        fp = "-" if r.false_positive is None else ("YES" if r.false_positive else "no")
        lines.append(
            f"| {r.scenario} | {r.repeat} | {len(r.noise)} ({sum(e.ok for e in r.noise)}) | {', '.join(kinds) or '-'} "
            f"| {fp} | {r.blamed or '-'} | {(r.wrong_attribution or 'no').replace('|', '/')} |"
        )
    return lines


def _llm_table(runs: list[ScenarioRecord]) -> list[str]:
    """Where the model's time and tokens went, per scenario run of an LLM policy."""
    llm = [r for r in runs if r.policy in ("llm", "hybrid")]
    if not llm:
        return []
    lines = [
        "",
        "## The model (LLM policies)",
        "",
        "| scenario | policy | success | reasoning steps | prompt tokens (sent) | largest prompt | completion tokens | "
        "LLM HTTP errors | server: prompt tokens read | reading (s) | generated | generating (s) | server errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in llm:
        s = r.llm_server
        server = (
            f"{s.prompt_tokens_evaluated} | {s.prompt_s:.0f} | {s.generated_tokens} | {s.generate_s:.0f} | "
            f"{s.http_errors}"
            if s is not None
            else "- | - | - | - | -"
        )
        lines.append(
            f"| {r.scenario} | {r.policy} | {'yes' if r.success else 'no'} | {r.tool_calls} | {r.prompt_tokens} | "
            f"{r.max_prompt_tokens} | {r.completion_tokens} | {r.llm_errors} | {server} |"
        )
    total = [r.llm_server for r in llm if r.llm_server is not None]
    if total:
        read, gen = sum(s.prompt_s for s in total), sum(s.generate_s for s in total)
        lines += [
            "",
            f"Model time: {read:.0f} s reading prompts ({sum(s.prompt_tokens_evaluated for s in total)} tokens), "
            f"{gen:.0f} s generating ({sum(s.generated_tokens for s in total)} tokens); "
            f"{sum(r.llm_errors for r in llm)} LLM HTTP errors seen by the agents, "
            f"{sum(s.http_errors for s in total)} by the server; largest prompt "
            f"{max(r.max_prompt_tokens for r in llm)} tokens.",
        ]
    return lines


# -- plots ----------------------------------------------------------------------------------------------------------
def write_plots(record: BenchRecord, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    runs = [r for r in record.runs if r.detected and r.attempts][:30]
    if runs:
        cols = min(4, len(runs))
        rows = math.ceil(len(runs) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
        for ax, r in zip(axes.flat, runs, strict=False):
            _mu_path(ax, r)
        for ax in list(axes.flat)[len(runs) :]:
            ax.axis("off")
        fig.suptitle("mu-paths: hidden (inside transactions) and visible (at decisions); dashed: baseline b")
        fig.tight_layout()
        paths["mu_paths"] = out / "mu_paths.png"
        fig.savefig(paths["mu_paths"], dpi=90)
        plt.close(fig)
    groups = _groups(record.runs)
    if groups:
        fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(groups)), 3.2))
        labels = [f"{p}\n{a}\n{t}" for p, a, t in groups]
        rates = [100 * sum(r.success for r in rs) / len(rs) for rs in groups.values()]
        bars = ax.bar(labels, rates, color="#4c72b0")
        for bar, rs in zip(bars, groups.values(), strict=True):
            ax.annotate(
                f"{sum(r.success for r in rs)}/{len(rs)}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylim(0, 110)
        ax.set_ylabel("success (%)")
        ax.set_title(f"success by policy / ablation ({record.suite})")
        fig.tight_layout()
        paths["success"] = out / "success.png"
        fig.savefig(paths["success"], dpi=90)
        plt.close(fig)
    return paths


def _mu_path(ax: object, r: ScenarioRecord) -> None:
    finite = [m for a in r.attempts for m in [a.mu_pre, a.mu_post, *a.hidden_mu] if m is not None and math.isfinite(m)]
    b = r.baseline if r.baseline is not None and math.isfinite(r.baseline) else 0.0
    top = max([*finite, b, 1.0]) * 1.3

    def clip(m: float | None) -> float:
        return top if m is None or not math.isfinite(m) else m

    x = 0
    vx: list[int] = []
    vy: list[float] = []
    for a in r.attempts:
        ys = [clip(a.mu_pre), *(clip(m) for m in a.hidden_mu)]
        if a.mu_post is not None:
            ys.append(clip(a.mu_post))
        xs = list(range(x, x + len(ys)))
        color = {"commit": "tab:green", "abort": "tab:orange"}.get(a.decision or "", "tab:gray")
        ax.plot(xs, ys, "-o", color=color, markersize=3, linewidth=1)  # type: ignore[attr-defined]
        vx.append(xs[0])
        vy.append(clip(a.mu_pre))
        x = xs[-1] + 1
    if r.visible_mu:
        vx.append(x)
        vy.append(clip(r.visible_mu[-1]))
    ax.step(vx, vy, where="post", color="black", linewidth=1.5, label="visible")  # type: ignore[attr-defined]
    ax.axhline(b, color="tab:red", linestyle="--", linewidth=1)  # type: ignore[attr-defined]
    ax.set_ylim(0, top * 1.05)  # type: ignore[attr-defined]
    title = r.scenario.replace("-mitigation", "").replace("-detection", "")
    ax.set_title(f"{title[:34]} [{r.ablation}] {'ok' if r.success else 'fail'}", fontsize=8)  # type: ignore[attr-defined]
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]
