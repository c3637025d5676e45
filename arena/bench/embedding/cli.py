"""``stratus embedding-bench``: record the dataset, train the state embedding, evaluate it against the baselines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False, help="The state embedding (RuntimeSlicer-style): dataset, training, evaluation."
)

DEFAULT_DIR = Path("bench-out/embedding")


def _echo(line: str) -> None:
    typer.echo(f"{datetime.now(UTC):%H:%M:%S} {line}")


@app.command()
def record(
    out: Annotated[Path, typer.Option(help="Dataset folder (runs already recorded there are kept).")] = DEFAULT_DIR,
    only: Annotated[list[str], typer.Option(help="Only jobs whose id contains this text (repeatable).")] = [],  # noqa: B006
    plan: Annotated[Path | None, typer.Option(help="Plan file (default: arena/bench/embedding/plan.yaml).")] = None,
    clean_s: Annotated[float | None, typer.Option(help="Override the plan's healthy time per run.")] = None,
    fault_s: Annotated[float | None, typer.Option(help="Override the plan's fault time per run.")] = None,
) -> None:
    """Record arena runs (faults and clean periods) through Prometheus, the Jaeger API and pod logs."""
    from arena.bench.embedding.generate import Recorder
    from arena.bench.embedding.plan import PLAN_FILE, jobs, load_plan

    p = load_plan(plan or PLAN_FILE)
    if clean_s is not None:
        p.clean_s = clean_s
    if fault_s is not None:
        p.fault_s = fault_s
    todo = [j for j in jobs(p) if not only or any(o in j.id for o in only)]
    _echo(f"recording {len(todo)} runs into {out}")
    written = Recorder(p, out, echo=_echo).run(todo)
    _echo(f"{len(written)} runs written")


@app.command()
def evaluate(
    dataset: Annotated[Path, typer.Option(help="Dataset folder written by `record`.")] = DEFAULT_DIR,
    out: Annotated[Path | None, typer.Option(help="Where report.md/json go (default: the dataset folder).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the training and of the calibration split.")] = 7,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 30,
    states: Annotated[int, typer.Option(min=1, help="Runtime states of the partition (k-means).")] = 4,
    model_out: Annotated[
        Path | None, typer.Option(help="Write the trained model artefact here (e.g. for the product).")
    ] = None,
) -> None:
    """Train the encoder and the heads from scratch and print the comparison with the baselines."""
    from arena.bench.embedding.evaluate import Options, table
    from arena.bench.embedding.evaluate import evaluate as run_evaluation

    opts = Options(dataset=dataset, out=out or dataset, seed=seed, epochs=epochs, states=states, model_out=model_out)
    try:
        report = run_evaluation(opts, echo=_echo)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(table(report))


@app.command("run")
def run_all(
    out: Annotated[Path, typer.Option(help="Dataset and report folder.")] = DEFAULT_DIR,
    seed: Annotated[int, typer.Option(help="Seed of the training.")] = 7,
    model_out: Annotated[Path | None, typer.Option(help="Write the trained model artefact here.")] = None,
) -> None:
    """From scratch: record the dataset (runs already in OUT are kept), train, evaluate, print the table."""
    record(out=out, only=[], plan=None, clean_s=None, fault_s=None)
    evaluate(dataset=out, out=out, seed=seed, epochs=30, states=4, model_out=model_out)


@app.command("compare")
def compare_cmd(
    off: Annotated[list[Path], typer.Option(help="A `stratus bench` output folder run without --embedding.")],
    on: Annotated[list[Path], typer.Option(help="The same suite's output folder run with --embedding.")],
) -> None:
    """The system bench with the embedding off and on, side by side (detected, TTD, answer, success)."""
    from arena.bench.embedding.compare import compare

    typer.echo(compare(off, on))
