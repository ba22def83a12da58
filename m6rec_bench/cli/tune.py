"""``m6bench tune``: Optuna search over one model's space, on validation, resumable and shareable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from m6rec_bench.cli.common import console, friendly_errors
from m6rec_bench.errors import M6BenchError, UsageError
from m6rec_bench.defaults import DEFAULT_SEED
from m6rec_bench.listeners import TuningListener

if TYPE_CHECKING:  # pragma: no cover
    from m6rec_bench.tuning.study import TuningResult


def parse_sets(values: list[str] | None) -> dict[str, Any]:
    """``["learning_rate=0.001", "mlp_hidden_size=[64,32]"]`` → overrides (values read as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE (e.g. --set train_batch_size=4096), got '{item}'")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UsageError(f"--set {key.strip()}: cannot read the value '{raw}'") from None
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


class _TrialProgress(TuningListener):
    """A bar over this run's trials, a line per epoch of the running trial, a line per finished trial."""

    def __init__(self, progress: Progress, epochs: int | None) -> None:
        self.progress = progress
        self.epochs = epochs
        self.trials = progress.add_task("trials", total=None)
        self.current = progress.add_task("", total=epochs)
        self.metric = "valid"

    def tuning_started(self, result: TuningResult, to_run: int) -> None:
        self.metric = f"valid {result.metric}"
        self.progress.update(self.trials, total=to_run, description=escape(f"tuning {result.model}"))
        running = f", {result.n_running} running elsewhere" if result.n_running else ""
        self.progress.console.print(
            f"study [bold]{escape(result.study_name)}[/bold] {escape(f'({result.storage})')}: {result.n_trials} of {result.budget} trials "
            f"finished{running}; running {to_run}", highlight=False, soft_wrap=True)

    def trial_started(self, model: str, number: int, index: int, total: int) -> None:
        self.progress.update(self.current, completed=0, total=self.epochs, description=f"trial {number}: training")

    def trial_epoch(self, model: str, number: int, epoch: int, score: float) -> None:
        self.progress.update(self.current, completed=epoch + 1,
                             description=f"trial {number}: epoch {epoch + 1} {self.metric} {score:.4f}")

    def trial_finished(self, model: str, trial: Any) -> None:
        from optuna.trial import TrialState

        self.progress.advance(self.trials)
        params = _params(trial.user_attrs.get("overrides", trial.params))
        if trial.state == TrialState.COMPLETE:
            line = f"[green]✓[/green] trial {trial.number}: {self.metric} {trial.value:.4f}  {escape(params)}"
        elif trial.state == TrialState.PRUNED:
            why = "time budget reached" if trial.user_attrs.get("stopped") else "pruned"
            line = f"[yellow]✂[/yellow] trial {trial.number}: {why} at epoch {(trial.last_step or 0) + 1}  {escape(params)}"
        else:
            line = f"[red]✗[/red] trial {trial.number} failed: {escape(str(trial.user_attrs.get('fail_reason', '?')))}  {escape(params)}"
        self.progress.console.print(line, highlight=False, soft_wrap=True)


def _best_table(result: TuningResult) -> Table:
    table = Table(title=f"best trial of {result.model}: #{result.best_trial}", title_justify="left")
    table.add_column("setting")
    table.add_column("value", justify="right")
    for key, value in result.best_params.items():
        table.add_row(escape(str(key)), escape(_fmt(value)))
    table.add_row(f"[bold]valid {result.metric}[/bold]", f"[bold]{result.best_value:.4f}[/bold]")
    return table


@friendly_errors
def tune(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or alias (m6bench datasets list), or a folder.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to tune: a baseline or a plugin (m6bench models list).")],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Finished trials the study should hold (default 20).")] = 20,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0.001, metavar="SECONDS", help="Time budget of this call; the running trial stops at validation.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e", min=1, help="Max epochs per trial (RecBole: 300, early-stopped).")] = None,
    protocol: Annotated[str, typer.Option("--protocol", "-p", help="Protocol whose validation split is tuned on (default: default).")] = "default",
    seed: Annotated[int, typer.Option("--seed", help=f"Seed of the split, the model and the sampler (default {DEFAULT_SEED}).")] = DEFAULT_SEED,
    device: Annotated[str, typer.Option("--device", metavar="cpu|cuda", help="Where trials train (default cpu).")] = "cpu",
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="A fixed, untuned setting; repeatable.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", metavar="URL|FILE", help="Where the study lives: a journal file or a database URL.")] = None,
    study_name: Annotated[str | None, typer.Option("--study-name", help="Study name (default: derived from the settings, so a rerun resumes).")] = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", metavar="DIR", help="Holds the default journal file (default ./runs).")] = Path("runs"),
) -> None:
    """Tune one model's hyper-parameters with Optuna (seeded TPE, Hyperband on epochs) on validation.

    Trial 0 is the model's defaults and is never pruned, so the best trial is at least as good
    on validation as not tuning.

    The study persists: interrupt it and run the same command again to go on, or start the same
    command on several machines with a shared --storage to split the trials between them. The
    test split is never used; run the best configuration on test with
    m6bench run --tune-budget N (same settings → same study, nothing re-tuned).

    A trial counts when it completes or is pruned, so a rerun runs only the missing ones; --timeout
    starts no new trial after it and stops the running one at its next validation. The protocol
    is default, cold-item or sequential (sequential models need sequential). --storage defaults to
    the journal file <runs-dir>/tuning/optuna.journal, safe for several processes on one machine;
    a database URL (postgresql://user:password@host:5432/db) serves workers on many machines. The
    default study name is derived from the dataset checksum, protocol, model, epochs, seed and
    fixed settings (--set train_batch_size=4096).
    """
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    settings = dict(n_trials=trials, protocol=protocol, epochs=epochs, seed=seed, device=device,
                    overrides=parse_sets(set_), timeout=timeout, storage=storage, runs_dir=runs_dir,
                    study_name=study_name)
    try:
        from m6rec_bench.tuning.study import quiet_optuna
        from m6rec_bench.tuning.study import tune as run_tuning

        with quiet_optuna(), Progress(*columns, console=console, transient=True) as progress:
            result = run_tuning(model, dataset, listener=_TrialProgress(progress, epochs), **settings)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: finished trials are kept in the study; "
                      "run the same command again to resume")
        raise typer.Exit(130) from None

    if result.nothing_to_tune:
        console.print(f"{result.model} has no hyper-parameters to tune: it runs once (m6bench run -m {result.model})",
                      highlight=False)
        return
    console.print(
        f"{result.n_trials} of {result.budget} trials finished ({result.n_complete} complete, {result.n_pruned} pruned"
        f"{f', {result.n_failed} failed' if result.n_failed else ''}{f', {result.n_running} still running elsewhere' if result.n_running else ''});"
        f" this run: {len(result.ran)} in {result.wall_time_s:.1f}s", highlight=False)
    if result.best_trial is None:
        if result.last_failure:
            why = f"; last failure: {result.last_failure}"
        else:
            why = "; give it more --trials" + (" or a longer --timeout" if timeout is not None else "")
        raise M6BenchError(f"no trial of {result.model} completed yet{why}")
    console.print(_best_table(result))
    if result.default_value is not None:
        console.print(f"defaults (trial {result.default_trial}): valid {result.metric} {result.default_value:.4f}; "
                      f"study compute: {result.trial_epochs} epochs, {result.trial_seconds:.1f}s of trials",
                      highlight=False, markup=False)
    console.print(f"study: {escape(result.study_name)}   view it: [bold]{escape(result.dashboard)}[/bold]", highlight=False,
                  soft_wrap=True)
