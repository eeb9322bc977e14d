"""The ``raynas`` command line."""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import click

from raynas._errors import RaynasError

#: The demo: methods, dataset, seeds and budget chosen so that the report shows a real, significant
#: difference (random search is worse than local search, p < 0.001 over 20 seeds) in about half a
#: minute on 2 cores; on ogbn-arxiv the strategies differ more than on Cora.
DEMO_METHODS = ("local", "evolution", "random")
DEMO_DATASET = "arxiv"
DEMO_SEEDS = 20
DEMO_BUDGET = 50


class _ExampleLast:
    """Move the ``Example(s):`` block that ends a command's docstring after its options (the epilog)."""

    def __init__(self, *args, **kwargs):
        import inspect

        text = kwargs.get("help")
        if text and kwargs.get("epilog") is None:
            text = inspect.cleandoc(text)
            for mark in ("\b\nExamples:", "\b\nExample:"):
                head, found, tail = text.partition(mark)
                if found:
                    kwargs["help"], kwargs["epilog"] = head.rstrip(), mark + tail
                    break
        super().__init__(*args, **kwargs)


class _Command(_ExampleLast, click.Command):
    pass


class _Group(_ExampleLast, click.Group):
    """Turn raynas errors into one clear line and exit code 2, without a traceback."""

    command_class = _Command
    group_class = type  # subgroups (data, cluster) are _Group too

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (RaynasError, ValueError, FileNotFoundError) as exc:
            if isinstance(exc, click.ClickException):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="raynas")
def main() -> None:
    """raynas: neural-architecture search at cluster scale on Ray Tune.

    Start with `raynas demo` (about 30 s, no data to download), then open raynas-demo/report.html.

    \b
    Examples:
      raynas demo
      raynas searchers dnas
      raynas compare --benchmark nasbench_graph --dataset cora --methods dnas,evolution,random \\
          --seeds 10 --budget 100 --out runs/cora
      raynas report runs/cora
    """
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


# ---------------------------------------------------------------------------- listings
@main.command()
def spaces() -> None:
    """List the search spaces with their sizes.

    Columns: encodings, the architectures the space can write down; cells, the distinct ones
    once isomorphic graphs are merged (- when not counted); seq, the length of the token sequence
    the neural controllers read and write; vocab, the number of distinct tokens.

    \b
    Example:
      raynas spaces
    """
    from raynas.spaces import get_space, space_names

    click.echo("encodings: architectures the space can write down; cells: distinct ones up to isomorphism;\n"
               "seq: tokens per architecture in the controllers' encoding; vocab: distinct tokens.\n")
    click.echo(f"{'space':16} {'encodings':>22} {'cells':>10} {'seq':>4} {'vocab':>5}")
    for name in space_names():
        try:
            sp = get_space(name)
        except ImportError as exc:
            click.echo(f"{name:16} unavailable: {exc}")
            continue
        card = "unbounded" if sp.cardinality is None else f"{sp.cardinality:,}"
        cells = "-" if sp.n_classes is None else f"{sp.n_classes:,}"
        click.echo(f"{name:16} {card:>22} {cells:>10} {sp.seq_length:>4} {sp.vocab_size:>5}")


@main.command()
@click.option("--data", type=click.Path(), help="A data file or folder to look in as well.")
def benchmarks(data: str | None) -> None:
    """List the tabular benchmarks and where their data was found.

    \b
    Example:
      raynas benchmarks --data ../shared/data
    """
    from raynas.benchmarks import BENCHMARKS, find

    for spec in BENCHMARKS.values():
        if spec.embedded:
            where = f"embedded ({spec.origin})"
        else:
            found = find(spec, spec.datasets[0], data)
            where = str(found) if found else f"NOT FOUND - get it from {spec.origin}"
        click.echo(f"{spec.name:15} datasets: {', '.join(spec.datasets)}\n{'':15} data: {where}")


@main.command()
@click.argument("method", required=False)
def searchers(method: str | None) -> None:
    """List the search strategies (or only METHOD) with every option.

    Each option shows its type, our default and what it does and, below it, the value the
    method's paper uses where the paper gives one. Set an option with --set METHOD.OPTION=VALUE
    on `compare` or `run`.

    \b
    Example:
      raynas searchers evolution
      raynas compare --benchmark nasbench_graph --methods evolution,random --set evolution.sample_size=5 --out runs/x
    """
    from raynas.searchers import (
        describe,
        searcher_names,
        searcher_option_help,
        searcher_option_types,
        searcher_options,
    )

    names = searcher_names()
    if method is not None and method not in names:
        from raynas._errors import UnknownNameError

        raise UnknownNameError("method", method, names)
    click.echo("Set an option with --set METHOD.OPTION=VALUE. Per option: name, type = our default, what it "
               "does;\n'paper:' the value of the method's paper or reference code, where it gives one.\n")
    for name in [method] if method else names:
        click.echo(f"{name:10} {describe(name)}")
        types, helps = searcher_option_types(name), searcher_option_help(name)
        options = searcher_options(name)
        if not options:
            click.echo(f"{'':12}(no options)")
        width = max((len(o) for o in options), default=0)
        heads = {o: f"{o:{width}}  {types[o]} = {_show_default(d)}" for o, d in options.items()}
        room = max((len(h) for h in heads.values()), default=0)
        for opt, head in heads.items():
            text, paper = helps[opt]
            click.echo(f"{'':2}{head:{room}}  {text}")
            if paper:
                click.echo(f"{'':2}{'':{room}}  paper: {paper}")
        click.echo("")


def _show_default(value) -> str:
    """A default as it is typed on the command line (JSON: null, true, 0.001)."""
    return value if isinstance(value, str) else json.dumps(value)


# ---------------------------------------------------------------------------- data
@main.group()
def data() -> None:
    """Convert, import and inspect benchmark data.

    \b
    Example:
      raynas data info nasbench_graph --dataset cora
    """


@data.command("convert")
@click.argument("benchmark")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dataset", default=None, help="Dataset of the benchmark (default: its first; see `raynas benchmarks`).")
@click.option("--out", type=click.Path(), default=None, help="Parquet file to write (default: user data folder).")
def data_convert(benchmark: str, file: str, dataset: str | None, out: str | None) -> None:
    """Convert an official benchmark FILE to Parquet once, for fast loading.

    \b
    Example:
      raynas data convert nasbench201 ../shared/data/nasbench201/nats_bench.csv
    """
    from raynas.benchmarks import check_dataset, get_spec, load, user_data_dir
    from raynas.runner._output import check_output_file

    spec = get_spec(benchmark)
    dataset = check_dataset(spec, dataset)
    dest = check_output_file(out or user_data_dir() / spec.parquet_name(dataset))
    bench = load(benchmark, path=file, dataset=dataset)
    _write_table(bench, dest)
    click.echo(f"wrote {dest} ({len(bench):,} cells, metrics {', '.join(bench.metrics)})")


@data.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--space", required=True, help="Search space of the architectures.")
@click.option("--arch-column", required=True, help="Column with architectures in the space's notation.")
@click.option("--metric", "metrics", multiple=True, required=True, help="NAME=COLUMN, e.g. val_accuracy=acc.")
@click.option("--dataset", default=None, help="Name of the dataset the measurements are on.")
@click.option("--out", type=click.Path(), default=None, help="Parquet file to write.")
def data_import(file: str, space: str, arch_column: str, metrics: tuple[str, ...], dataset, out) -> None:
    """Turn your own measurements (CSV or Parquet) into a benchmark.

    \b
    Example:
      raynas data import mine.csv --space nasbench201 --arch-column arch --metric val_accuracy=acc
    """
    from raynas.benchmarks import user_data_dir
    from raynas.benchmarks._import import import_table
    from raynas.runner._output import check_output_file

    mapping = {}
    for item in metrics:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected NAME=COLUMN", param_hint="--metric")
        name, col = item.split("=", 1)
        mapping[name] = col
    dest = check_output_file(out or user_data_dir() / "imported" / f"{Path(file).stem}.parquet")
    bench = import_table(file, space, arch_column, mapping, dataset)
    _write_table(bench, dest)
    click.echo(f"wrote {dest} ({len(bench):,} cells of {space}); use: --benchmark custom --data {dest}")


def _write_table(bench, dest: Path) -> None:
    from raynas._errors import OutputFolderError

    try:
        bench.to_parquet(dest)
    except OSError as exc:
        raise OutputFolderError(f"cannot write {dest}: {exc.strerror or exc}; choose another --out") from None


@data.command("info")
@click.argument("target")
@click.option("--data", type=click.Path(), default=None, help="A data file or folder to look in as well.")
@click.option("--dataset", default=None, help="Dataset of the benchmark (default: its first).")
def data_info(target: str, data: str | None, dataset: str | None) -> None:
    """Describe a benchmark (by name) or a raynas Parquet file: cells, metrics, optima.

    \b
    Example:
      raynas data info nasbench_graph --dataset arxiv
    """
    from raynas.benchmarks import TabularBenchmark, load

    if os.path.isfile(target):
        bench = TabularBenchmark.from_parquet(target)
    else:
        bench = load(target, path=data, dataset=dataset)
    info = bench.describe()
    for m in bench.metrics:
        info[f"optimum {m}"] = bench.optimum(m)
    click.echo(json.dumps(info, indent=2, default=str))


# ---------------------------------------------------------------------------- cluster
@main.group()
def cluster() -> None:
    """Check a Ray cluster file before `ray up`.

    \b
    Example:
      raynas cluster check cluster.yaml
    """


@cluster.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def cluster_check(file: str) -> None:
    """Validate FILE with Ray's own checks, then flag insecure settings (exit 1 on an error).

    \b
    Example:
      raynas cluster check cluster.yaml
    """
    from raynas._cluster import ERROR, check_file

    findings = check_file(file)
    for finding in findings:
        click.echo(str(finding))
    if not findings:
        click.echo("ok")
    if any(f.severity == ERROR for f in findings):
        sys.exit(1)


# ---------------------------------------------------------------------------- experiments
def _common_options(f, benchmark_required: bool = True):
    options = [
        click.option("--benchmark", required=benchmark_required,
                     help="Benchmark name (see `raynas benchmarks`)."),
        click.option("--dataset", default=None,
                     help="Dataset of the benchmark, e.g. cora or arxiv for nasbench_graph, cifar100 for "
                          "nasbench201 (default: the benchmark's first; `raynas benchmarks` lists them). With "
                          "--trainable train: digits or cifar10."),
        click.option("--data", type=click.Path(), default=None,
                     help="Benchmark data file or folder, or a file's storage URI (downloaded once, cached)."),
        click.option("--metric", default=None, help="Objective (default val_accuracy, else test_accuracy)."),
        click.option("--seeds", type=int, default=5, show_default=True, help="Seeds 0..K-1 per method."),
        click.option("--budget", type=int, default=100, show_default=True, help="Queries per study."),
        click.option("--workers", type=int, default=1, show_default=True, help="Parallel workers per study."),
        click.option("--gpus-per-study", default="auto", show_default=True,
                     help="GPUs for each study of a method with a neural controller (dnas, nao, seminas): "
                          "a number, requested even where the cluster has no GPU yet (an autoscaling "
                          "cluster launches GPU nodes for it), or auto: one GPU when the cluster has GPUs "
                          "at the start, else none."),
        click.option("--max-flops", default=None, callback=lambda ctx, param, value: _flops_list(value),
                     help="Only cells with at most this many FLOPs, in the table's unit (NAS-Bench-Macro: "
                          "FLOPs, e.g. 2e7; `raynas data info` shows the range). With --trainable supernet: "
                          "MFLOPs, and a comma-separated list (none: no limit) runs every study per limit."),
        click.option("--max-params", type=float, default=None,
                     help="Only cells with at most this many parameters, in the table's unit (NAS-Bench-Graph "
                          "and NAS-Bench-201: millions, e.g. 0.8)."),
        click.option("--max-latency", type=float, default=None,
                     help="Only cells with at most this latency, in the table's unit (NAS-Bench-Graph: "
                          "seconds of inference, e.g. 0.003)."),
        click.option("--set", "settings", multiple=True, metavar="METHOD.OPTION=VALUE",
                     help="A searcher option, e.g. --set dnas.eps_dense=0.05 (repeatable; "
                          "`raynas searchers` lists the options)."),
        click.option("--checkpoint-every", type=int, default=25, show_default=True,
                     help="Queries between checkpoints of each study."),
        click.option("--out", type=click.Path(), required=True,
                     help="Output folder, or a storage URI every node reaches (s3://bucket/x, gs://..., any "
                          "pyarrow.fs URI; credentials from the environment)."),
        click.option("--resume", is_flag=True, help="Continue the experiment already in --out."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _flops_list(value: str | None) -> list[float | None] | None:
    """``--max-flops``: a number, or a comma-separated list of numbers and ``none``."""
    if value is None:
        return None
    out: list[float | None] = []
    for item in str(value).split(","):
        item = item.strip().lower()
        try:
            out.append(None if item in ("none", "") else float(item))
        except ValueError:
            raise click.BadParameter(f"{item!r} is neither a number nor none", param_hint="--max-flops") from None
    return out


def _limits(max_flops, max_params, max_latency) -> dict[str, float]:
    if isinstance(max_flops, list):
        if len(max_flops) > 1:
            raise click.UsageError("several --max-flops limits (a comma-separated list) work with --trainable "
                                   "supernet; give one limit")
        max_flops = max_flops[0]
    return {k: v for k, v in (("flops", max_flops), ("params", max_params), ("latency", max_latency)) if v is not None}


def parse_settings(settings: tuple[str, ...] | list[str], methods: list[str]) -> dict[str, dict]:
    """``["dnas.eps_dense=0.05", ...]`` -> ``{"dnas": {"eps_dense": 0.05}}``, checked by name.

    Values are read as JSON (numbers, true/false, null, lists) or Python's True/False/None, and
    otherwise kept as strings; each method's options are then checked against the type of their
    config dataclass field and its range, before anything starts.
    """
    from raynas.searchers import OptionError, check_options, searcher_options

    out: dict[str, dict] = {}
    for item in settings:
        target, sep, raw = item.partition("=")
        method, dot, option = target.strip().partition(".")
        if not sep or not dot or not method or not option:
            raise click.BadParameter(f"{item!r} is not METHOD.OPTION=VALUE, e.g. dnas.eps_dense=0.05",
                                     param_hint="--set")
        if method not in methods:
            raise click.BadParameter(f"{item!r} names {method!r}, which is not among the methods run "
                                     f"({', '.join(methods)})", param_hint="--set")
        known = searcher_options(method)
        if option not in known:
            raise click.BadParameter(f"{method} has no option {option!r}; its options are "
                                     f"{', '.join(sorted(known))}", param_hint="--set")
        out.setdefault(method, {})[option] = _value(raw)
    for method, options in out.items():
        try:
            check_options(method, options)
        except OptionError as exc:
            raise click.BadParameter(str(exc), param_hint="--set") from None
    return out


def _config(methods: list[str], backend: str = "sim", cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
            **kw):
    from raynas.runner._compare import CompareConfig

    return CompareConfig(
        backend=backend, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        benchmark=kw["benchmark"], methods=methods, seeds=kw["seeds"], budget=kw["budget"],
        dataset=kw["dataset"], data=kw["data"], metric=kw["metric"], workers=kw["workers"],
        max_cost=_limits(kw["max_flops"], kw["max_params"], kw["max_latency"]),
        checkpoint_every=kw.get("checkpoint_every", 25),
        options=parse_settings(kw.get("settings", ()), methods),
        gpus_per_study=_gpus(kw.get("gpus_per_study", "auto"), "--gpus-per-study"),
    )


def _value(raw: str):
    """An option value typed on the command line: JSON, Python's True/False/None, else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(raw.strip(), raw)


def _launch(methods: list[str], backend: str = "sim", cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
            **kw) -> None:
    from raynas.runner._compare import compare

    cfg = _config(methods, backend, cpus_per_trial, gpus_per_trial, **kw)
    cfg.validate()
    path = compare(cfg, kw["out"], resume=kw["resume"], progress=not kw["quiet"])
    _print_summary(Path(path).parent, kw["out"])


def _print_summary(out: Path, where: str | None = None) -> None:
    """Print the summary table and the output files; ``where``: the storage URI they went to."""
    from raynas._storage import is_uri, shown

    click.echo("")
    click.echo((out / "summary.md").read_text())
    click.echo(f"results: {out / 'results.parquet'}\nsummary: {out / 'summary.md'}, "
               f"{out / 'summary.csv'}\nplots:   {out / 'curves.png'}, {out / 'final.png'}\n"
               f"report:  {out / 'report.html'} (self-contained), {out / 'report.md'}")
    if is_uri(where):
        click.echo(f"(a local copy; the experiment and these files are in {shown(where)})")


def _train_options(f):
    options = [
        click.option("--trainable", type=click.Choice(["tabular", "train", "supernet"]), default="tabular",
                     show_default=True,
                     help="tabular: look results up in --benchmark; train: train every proposed network on "
                          "--dataset (one Tune trial each; --space, --epochs); supernet: score cells with the "
                          "shared weights of --supernet, under each of several --max-flops limits."),
        click.option("--supernet", "supernet_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="With --trainable supernet: the supernet.pt of `raynas supernet train`."),
        click.option("--space", default=None, help="With --trainable train: the search space (see `raynas spaces`)."),
        click.option("--epochs", type=int, default=12, show_default=True,
                     help="With --trainable train: epochs per network (the fidelity of --scheduler)."),
        click.option("--batch-size", type=int, default=256, show_default=True,
                     help="With --trainable train: images per SGD step."),
        click.option("--lr", type=float, default=0.1, show_default=True,
                     help="With --trainable train: initial SGD learning rate (cosine schedule)."),
        click.option("--hparams", default=None, metavar="NAME=FUNC(ARGS),...",
                     help="With --trainable train: training hyperparameters searched with the cell by TPE, "
                          "e.g. 'lr=loguniform(1e-3,0.2),batch_size=choice(64,128)'."),
        click.option("--scheduler", type=click.Choice(["fifo", "asha", "hyperband"]), default="fifo",
                     show_default=True, help="With --trainable train: stop poor trials early (epochs are the fidelity)."),
        click.option("--network", "network", multiple=True, metavar="OPTION=VALUE",
                     help="With --trainable train: a network option, e.g. --network channels=8 (repeatable)."),
        click.option("--image-size", type=int, default=8, show_default=True,
                     help="With --trainable train on digits: image side (8 native; 32 upsamples to CIFAR's size)."),
        click.option("--cpus-per-trial", type=float, default=1.0, show_default=True,
                     help="CPUs of each Tune trial (a query with --backend tune, a network with --trainable train)."),
        click.option("--gpus-per-trial", default="auto", show_default=True,
                     help="A number, or auto: a share of a GPU per trial when the cluster has GPUs "
                          "(1/4 for NAS-Bench-201 and Macro networks, 1 for NAS-Bench-101 and DARTS), else 0."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _gpus(value: str | float, option: str = "--gpus-per-trial") -> float | str:
    if value == "auto":
        return value
    try:
        gpus = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor auto", param_hint=option) from None
    if gpus < 0:
        raise click.BadParameter(f"{value!r} is negative", param_hint=option)
    return gpus


_BACKEND = click.option(
    "--backend", type=click.Choice(["sim", "tune"]), default="sim", show_default=True,
    help="sim: each study on simulated asynchronous workers; tune: one Tune trial per query.")


@main.command()
@click.option("--methods", required=True, help="Comma-separated strategies, e.g. dnas,evolution,random.")
@_BACKEND
@_train_options
@partial(_common_options, benchmark_required=False)
@click.pass_context
def compare(ctx, methods: str, backend: str, **kw) -> None:
    """Run several strategies over many seeds in parallel as one Ray Tune experiment.

    Writes OUT/results.parquet and the report (report.html, report.md, figures, summary tables).

    \b
    Example:
      raynas compare --benchmark nasbench_graph --dataset cora --methods dnas,evolution,random \\
          --seeds 10 --budget 100 --max-params 0.8 --out runs/cora
    """
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    train = _pop_train(kw)
    trainable = train.pop("trainable")
    supernet_file = train.pop("supernet_file")
    if trainable == "supernet":
        _run_supernet(ctx, method_list, supernet_file, train, kw)
        return
    if supernet_file is not None:
        raise click.UsageError("--supernet applies only to --trainable supernet")
    if trainable == "train":
        _run_train(ctx, method_list, train, kw)
        return
    _refuse_train_only(ctx, train, backend)
    if kw["benchmark"] is None:
        raise click.UsageError("Missing option '--benchmark' (or pass --trainable train --space NAME).")
    gpus = _gpus(train["gpus_per_trial"])
    _launch(method_list, backend=backend, cpus_per_trial=train["cpus_per_trial"],
            gpus_per_trial=0.0 if gpus == "auto" else gpus, **kw)


def _run_supernet(ctx, methods: list[str], supernet_file: str | None, train: dict, kw: dict) -> None:
    """``compare --trainable supernet``: the sweep of `raynas supernet search`."""
    from raynas.runner._supernet_run import SupernetSearchRun, search

    if supernet_file is None:
        raise click.UsageError("--trainable supernet needs --supernet FILE (the supernet.pt of `raynas supernet "
                               "train`)")
    given = [f"--{k.replace('_', '-')}" for k in (*_TRAIN_ONLY, "benchmark", "dataset", "data", "metric",
                                                  "max_params", "max_latency") if _given(ctx, k)]
    if given:
        raise click.UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --trainable "
                               "supernet (the supernet file names its space and data)")
    cfg = SupernetSearchRun(supernet=supernet_file, methods=methods, seeds=kw["seeds"], budget=kw["budget"],
                            max_flops=kw["max_flops"] or [None], workers=kw["workers"],
                            options=parse_settings(kw["settings"], methods), checkpoint_every=kw["checkpoint_every"])
    path = search(cfg, kw["out"], resume=kw["resume"], progress=not kw["quiet"])
    click.echo((path.parent / "summary.md").read_text())
    click.echo(f"results: {path}")


_TRAIN_ONLY = ("space", "epochs", "batch_size", "lr", "hparams", "scheduler", "network", "image_size")


def _pop_train(kw: dict) -> dict:
    names = ("trainable", "supernet_file", *_TRAIN_ONLY, "cpus_per_trial", "gpus_per_trial")
    return {k: kw.pop(k) for k in names}


def _given(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT


def _refuse_train_only(ctx, train: dict, backend: str) -> None:
    given = [f"--{k.replace('_', '-')}" for k in _TRAIN_ONLY if _given(ctx, k)]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply only to --trainable train")
    if backend == "tune" and _given(ctx, "gpus_per_study"):
        raise click.UsageError("--gpus-per-study applies to the sim backend; with --backend tune each query is "
                               "a trial: use --gpus-per-trial")


@main.command()
@click.option("--method", required=True, help="One strategy (see `raynas searchers`).")
@_BACKEND
@_train_options
@partial(_common_options, benchmark_required=False)
@click.pass_context
def run(ctx, method: str, backend: str, **kw) -> None:
    """Run one strategy (seeds 0..K-1) on a benchmark, or train the networks it proposes.

    \b
    Examples:
      raynas run --method evolution --benchmark nasbench_graph --seeds 3 --out runs/evo
      raynas run --method random --trainable train --space nasbench201 --budget 8 --epochs 2 --out runs/train
    """
    train = _pop_train(kw)
    trainable = train.pop("trainable")
    supernet_file = train.pop("supernet_file")
    if trainable == "supernet":
        _run_supernet(ctx, [method], supernet_file, train, kw)
        return
    if supernet_file is not None:
        raise click.UsageError("--supernet applies only to --trainable supernet")
    if trainable == "train":
        if not _given(ctx, "seeds"):
            kw["seeds"] = 1  # training is expensive: one seed unless asked
        _run_train(ctx, [method], train, kw)
        return
    _refuse_train_only(ctx, train, backend)
    if kw["benchmark"] is None:
        raise click.UsageError("Missing option '--benchmark' (or pass --trainable train --space NAME).")
    gpus = _gpus(train["gpus_per_trial"])
    _launch([method], backend=backend, cpus_per_trial=train["cpus_per_trial"],
            gpus_per_trial=0.0 if gpus == "auto" else gpus, **kw)


def _parse_network(items: tuple[str, ...], param_hint: str = "--network") -> dict:
    """``("channels=8", ...)`` -> ``{"channels": 8}``; values are read as JSON, else kept as strings."""
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not OPTION=VALUE, e.g. channels=8", param_hint=param_hint)
        out[name.strip()] = _value(raw)
    return out


def _run_train(ctx, methods: list[str], train: dict, kw: dict) -> None:
    from raynas.runner._hparams import HparamSyntaxError, parse_hparams
    from raynas.runner._train_run import TrainRunConfig, run_train

    if train["space"] is None:
        raise click.UsageError("--trainable train needs --space, e.g. --space nasbench201")
    ignored = [f"--{k.replace('_', '-')}" for k in ("benchmark", "metric", "max_flops", "max_params", "max_latency")
               if kw[k] is not None]
    for name in ("checkpoint_every", "gpus_per_study"):
        if _given(ctx, name):
            ignored.append(f"--{name.replace('_', '-')}")
    if ignored:
        raise click.UsageError(f"{', '.join(ignored)} do(es) not apply to --trainable train")
    try:
        hparams = parse_hparams(train["hparams"]) if train["hparams"] is not None else {}
    except HparamSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint="--hparams") from None
    if "epochs" in hparams:
        raise click.BadParameter("epochs are the fidelity, set by --epochs; search the others",
                                 param_hint="--hparams")
    cfg = TrainRunConfig(
        space=train["space"], methods=methods, seeds=kw["seeds"], budget=kw["budget"],
        dataset=kw["dataset"] or "digits", data=kw["data"], workers=kw["workers"],
        epochs=train["epochs"], batch_size=train["batch_size"], lr=train["lr"], image_size=train["image_size"],
        network=_parse_network(train["network"]), hparams=hparams, scheduler=train["scheduler"],
        cpus_per_trial=train["cpus_per_trial"], gpus_per_trial=_gpus(train["gpus_per_trial"]),
        options=parse_settings(kw["settings"], methods),
    )
    path = run_train(cfg, kw["out"], resume=kw["resume"], progress=not kw["quiet"])
    _print_summary(Path(path).parent, kw["out"])


@main.command()
@click.argument("out")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def resume(out: str, quiet: bool) -> None:
    """Continue an interrupted `compare` or `run` in folder OUT (or storage URI, e.g. s3://bucket/x).

    \b
    Example:
      raynas resume runs/cora
    """
    from raynas.runner._compare import resume as resume_compare

    kind = _kind(out)
    if kind in ("supernet-train", "supernet-search"):
        from raynas.runner import _supernet_run as sr

        if kind == "supernet-train":
            click.echo(f"supernet: {sr._train(sr.load_train_run(out), Path(out).resolve(), not quiet)}")
        else:
            path = sr._search(sr.load_search_run(out), Path(out).resolve(), not quiet)
            click.echo((path.parent / "summary.md").read_text())
        return
    if kind == "snas":
        from raynas.runner._snas_run import resume_snas

        click.echo(f"results: {resume_snas(out, progress=not quiet)}")
        return
    if kind == "train-run":
        from raynas.runner._train_run import resume_train

        path = resume_train(out, progress=not quiet)
    else:
        path = resume_compare(out, progress=not quiet)
    _print_summary(Path(path).parent, out)


def _kind(out: str) -> str | None:
    from raynas.runner._compare import read_definition

    return read_definition(out).get("kind")


@main.command()
@click.option("--out", type=click.Path(), default="raynas-demo", show_default=True, help="Output folder.")
@click.option("--methods", default=",".join(DEMO_METHODS), show_default=True,
              help="Comma-separated strategies; dnas, seminas and nao train a controller (about 10 s per study).")
@click.option("--seeds", type=int, default=DEMO_SEEDS, show_default=True, help="Seeds (studies) per method.")
@click.option("--budget", type=int, default=DEMO_BUDGET, show_default=True, help="Queries (evaluated cells) per study.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(out: str, methods: str, seeds: int, budget: int, quiet: bool) -> None:
    """Compare search strategies on NAS-Bench-Graph (ogbn-arxiv), which ships with raynas: about 30 s.

    Every method searches the 26,206 graph-network architectures of the table for the best
    validation accuracy, with 20 seeds of 50 queries each; a query is a table lookup, so the
    whole comparison runs in about half a minute on 2 cores. It writes OUT/report.html and
    prints a summary with each method tested against the best classic baseline.

    \b
    Examples:
      raynas demo
      raynas demo --methods dnas,local,random --seeds 10 --out raynas-demo-dnas
    """
    from raynas.runner._compare import check_resume
    from raynas.runner._output import check_output_folder

    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    args = dict(benchmark="nasbench_graph", dataset=DEMO_DATASET, data=None, metric=None, seeds=seeds,
                budget=budget, workers=1, max_flops=None, max_params=None, max_latency=None,
                checkpoint_every=budget)
    resume_flag = check_resume(_config(method_list, **args), check_output_folder(out)) is not None
    if resume_flag:
        click.echo(f"{out} holds this demo; continuing it (delete the folder to start afresh)")
    click.echo(f"raynas demo: {', '.join(method_list)} x {seeds} seeds x {budget} queries on "
               f"NAS-Bench-Graph/{DEMO_DATASET}\n"
               f"Each study looks for the architecture with the best validation accuracy among the table's "
               f"26,206 graph networks\n(trained on ogbn-arxiv by the benchmark's authors; a query is a lookup).")
    _launch(method_list, out=out, resume=resume_flag, quiet=quiet, **args)
    click.echo(
        "What you are looking at: best@N is the best validation accuracy (%) a study found in its first N "
        "queries,\nmean ± std over the seeds; regret is its gap to the best architecture in the table. The "
        "second table\ntests each method against the best classic baseline (Mann-Whitney U over the seeds): "
        "'worse (p < 0.05)'\nis a difference that the seeds' spread does not explain. "
        f"Open {Path(out) / 'report.html'} for the\nanytime curves with 95% confidence bands and the regret "
        "of every seed."
    )


@main.command()
@click.argument("out")
@click.option("--explain", "explain_dnas", is_flag=True,
              help="Also explain the DNAS study with the best final value (latent traversals and factors, "
                   "as `raynas explain --no-baseline`; about 20 s) and include its figures.")
def report(out: str, explain_dnas: bool) -> None:
    """Write the report of experiment folder (or storage URI) OUT: report.md, report.html, figures, tables.

    \b
    Example:
      raynas report raynas-demo && xdg-open raynas-demo/report.html
    """
    from raynas._storage import download_tree, is_uri
    from raynas.benchmarks import load
    from raynas.runner._compare import (
        EXPERIMENT_FILE,
        RESULTS_FILE,
        load_config,
        push,
        resolve_metric,
        write_report,
    )
    from raynas.runner._output import experiment_folder
    from raynas.runner._train_run import load_train_config, write_train_report

    train = _kind(out) == "train-run"  # a clear error unless OUT is an experiment folder
    cfg = load_train_config(out) if train else load_config(out)
    outp, root = experiment_folder(out, (EXPERIMENT_FILE,)) if is_uri(out) else (Path(out).resolve(),) * 2
    if outp != root:  # a remote experiment: its results and reports, not the studies' checkpoints
        download_tree(root, outp, skip=("tune", "studies"))
    if not (outp / RESULTS_FILE).exists():
        raise RaynasError(f"{out} holds an experiment without results yet; `raynas resume {out}` runs it")
    if explain_dnas and outp != root:
        raise RaynasError("--explain reads the DNAS studies' checkpoints: run `raynas report --explain` on a local "
                          "copy of the experiment")
    if train:
        if explain_dnas:
            _explain_best_dnas(outp, "max")
        write_train_report(outp, cfg)
    else:
        from raynas.benchmarks import default_mode

        bench = load(cfg.benchmark, path=cfg.data, dataset=cfg.dataset)
        metric = resolve_metric(bench, cfg.metric)
        if explain_dnas:
            _explain_best_dnas(outp, default_mode(metric))
        write_report(outp, cfg, bench, metric)
    push(outp, root)
    _print_summary(outp, out)


def _explain_best_dnas(out: Path, mode: str) -> None:
    """``raynas explain`` (no beta = 0 baseline) of the DNAS study with the best final value, into OUT/explain."""
    import pyarrow.parquet as pq

    from raynas.report import final_values
    from raynas.runner._compare import RESULTS_FILE, STUDIES_DIR
    from raynas.searchers.dnas import explain as run_explain

    table = pq.read_table(out / RESULTS_FILE)
    finals = final_values(table, ["dnas"])["dnas"]
    seeds = sorted(set(s for m, s in zip(table.column("method").to_pylist(), table.column("seed").to_pylist())
                       if m == "dnas"))
    if not seeds or not (finals == finals).any():
        raise RaynasError(f"{out} holds no successful DNAS study to explain")
    import numpy as np

    seed = seeds[int(np.nanargmax(finals) if mode == "max" else np.nanargmin(finals))]
    study = out / STUDIES_DIR / f"dnas_seed{seed}"
    click.echo(f"explaining {study} ...")
    run_explain(study, out / "explain" / study.name, baselines=False)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--quick", is_flag=True, help="Small settings: a few minutes on 2 cores.")
@click.option("--readme", is_flag=True, help="Only rewrite the README's harness block from the newest results.")
@click.pass_context
def bench(ctx, quick: bool, readme: bool) -> None:
    """Run the performance harness of a source checkout (`python -m benchmarks`).

    Prints every figure beside its peer measured in the same run (Optuna, plain Ray Tune, plain
    PyTorch) with their ratio, and writes benchmarks/results/<date>-<host>.json. Other arguments
    (e.g. --only simulated,tune) go to the harness.

    \b
    Example:
      raynas bench --quick && raynas bench --readme
    """
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise RaynasError("the harness is part of the source checkout (benchmarks/), not of an installed wheel: "
                          "clone the repository and `pip install -e .` it")
    args = [*(["--quick"] if quick else []), *(["--readme"] if readme else []), *ctx.args]
    sys.exit(subprocess.call([sys.executable, "-m", "benchmarks", *args], cwd=root))


@main.command()
@click.argument("target", type=click.Path(exists=True))
@click.option("--out", type=click.Path(), default=None, help="Folder for the figures (default: TARGET/explain).")
@click.option("--dims", default=None, help="Comma-separated latent dimensions to traverse (default: the 8 most "
                                          "active).")
@click.option("--no-baseline", is_flag=True,
              help="Skip retraining the beta = 0 autoencoder baseline (the rotated-code baseline is always scored).")
def explain(target: str, out: str | None, dims: str | None, no_baseline: bool) -> None:
    """Latent traversals, factor plots and a disentanglement score for a DNAS study.

    TARGET is an experiment folder (every DNAS study in it), a study folder or a searcher.pt.

    \b
    Example:
      raynas explain runs/cora/studies/dnas_seed0
    """
    from raynas.runner._output import check_output_folder
    from raynas.searchers.dnas import explain as run_explain

    dest = check_output_folder(out or (Path(target) if os.path.isdir(target) else Path(target).parent) / "explain")
    dim_list = [int(d) for d in dims.split(",")] if dims else None
    res = run_explain(target, dest, dims=dim_list, baselines=not no_baseline)
    click.echo(json.dumps(res, indent=2, default=str))


@main.command()
@click.option("--space", default="nasbench201", show_default=True,
              help="The cell space searched: nasbench201, or darts (14 edges per cell; see --set layers=).")
@click.option("--dataset", default="digits", show_default=True, help="digits (bundled), cifar10, cifar100 or imagefolder.")
@click.option("--data", type=click.Path(), default=None, help="Folder of the dataset's files (not for digits).")
@click.option("--levels", default="mild,moderate,aggressive", show_default=True,
              help="Resource-constraint levels (none, mild, moderate, aggressive) or explicit lambdas, comma-separated.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Searches per level (seeds 0, 1, ...).")
@click.option("--epochs", type=int, default=50, show_default=True, help="Search epochs (the paper: 150 on CIFAR-10).")
@click.option("--image-size", type=int, default=8, show_default=True, help="Image side for digits (8 native).")
@click.option("--set", "settings", multiple=True, metavar="OPTION=VALUE",
              help="An SNAS setting, e.g. --set channels=8 --set arch_lr=0.01 (see raynas.trainables.snas.SNASConfig).")
@click.option("--out", type=click.Path(), required=True, help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue the sweep already in --out.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def snas(space, dataset, data, levels, seeds, epochs, image_size, settings, out, resume, quiet) -> None:
    """SNAS searches (Gumbel-softmax supernet, resource constraint) per level and seed, in one Tune sweep.

    Writes OUT/snas.parquet (level, lambda, seed, genotype, params, flops, search and child
    validation accuracy) and OUT/genotypes/<level>_seed<seed>.json.

    \b
    Example:
      raynas snas --dataset digits --levels none,mild,aggressive --seeds 2 --epochs 12 \\
          --set channels=8 --set cells_per_stage=1 --set warmup_epochs=4 --out snas-digits
      raynas snas --space darts --levels mild,moderate,aggressive --seeds 3 --epochs 12 \\
          --set channels=4 --set layers=3 --set warmup_epochs=4 --out snas-darts
    """
    import pyarrow.parquet as pq

    from raynas.runner._snas_run import SNASRunConfig, run_snas

    options = {"epochs": epochs, **_parse_network(settings, "--set")}
    cfg = SNASRunConfig(space=space, dataset=dataset, data=data, levels=[x.strip() for x in levels.split(",") if x.strip()],
                        seeds=seeds, image_size=image_size, options=options)
    path = run_snas(cfg, out, resume=resume, progress=not quiet)
    rows = pq.read_table(path).to_pylist()
    click.echo(f"{'level':>10} {'seed':>4} {'params(M)':>9} {'flops(M)':>9} {'search':>7} {'child':>7}  genotype")
    for r in rows:
        if r["error"]:
            click.echo(f"{r['level']:>10} {r['seed']:>4}  failed: {r['error']}")
            continue
        click.echo(f"{r['level']:>10} {r['seed']:>4} {r['params']:>9.4f} {r['flops']:>9.3f} "
                   f"{r['search_val_accuracy']:>7.2f} {r['child_val_accuracy']:>7.2f}  {r['genotype']}")
    click.echo(f"results: {path}")


@main.group()
def supernet() -> None:
    """Weight sharing: train a supernet once (SPOS), then search it under several FLOPs limits.

    \b
    Example:
      raynas supernet train --epochs 20 --channels 8 --cells-per-stage 1 --out sn
    """


@supernet.command("train")
@click.option("--space", default="nasbench201", show_default=True, help="nasbench201, nasbench_macro or darts.")
@click.option("--dataset", default="digits", show_default=True, help="digits (bundled), cifar10, cifar100 or imagefolder.")
@click.option("--data", type=click.Path(), default=None, help="Folder of the dataset's files (not for digits).")
@click.option("--image-size", type=int, default=8, show_default=True, help="Image side for digits (8 native).")
@click.option("--epochs", type=int, default=50, show_default=True, help="Training epochs of the supernet.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Training batch size.")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Initial SGD learning rate (cosine to 0).")
@click.option("--channels", type=int, default=None, help="Stem channels (default: the benchmark network's).")
@click.option("--cells-per-stage", type=int, default=None, help="NAS-Bench-201 only (default 5).")
@click.option("--layers", type=int, default=None, help="DARTS only: cells of the search network (default 8).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the initial weights, the data order and the sampled paths.")
@click.option("--out", type=click.Path(), required=True, help="Output folder (supernet.pt, supernet.json).")
@click.option("--resume", is_flag=True, help="Continue the training already in --out.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def supernet_train(space, dataset, data, image_size, epochs, batch_size, lr, channels, cells_per_stage, layers, seed,
                   out, resume, quiet) -> None:
    """Train a one-shot supernet with uniform single-path sampling (SPOS), checkpointed every epoch.

    \b
    Example:
      raynas supernet train --space nasbench201 --dataset digits --epochs 20 --channels 8 \\
          --cells-per-stage 1 --out sn-digits
      raynas supernet train --space darts --epochs 20 --channels 8 --layers 3 --out sn-darts
    """
    from raynas.runner._supernet_run import SupernetTrainRun, train

    if layers is not None and space != "darts":
        raise click.UsageError("--layers applies only to --space darts")
    cfg = SupernetTrainRun(space=space, dataset=dataset, data=data, image_size=image_size, epochs=epochs,
                           batch_size=batch_size, lr=lr, channels=channels, cells_per_stage=cells_per_stage,
                           network={} if layers is None else {"layers": layers}, seed=seed)
    click.echo(f"supernet: {train(cfg, out, resume=resume, progress=not quiet)}")


@supernet.command("search")
@click.option("--supernet", "supernet_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The supernet.pt of `raynas supernet train`.")
@click.option("--methods", required=True, help="Comma-separated strategies, e.g. dnas,evolution,random.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Studies per method and limit (seeds 0, 1, ...).")
@click.option("--budget", type=int, default=100, show_default=True, help="Cells scored per study.")
@click.option("--max-flops", default="none", show_default=True,
              help="Comma-separated FLOPs limits in MFLOPs of the stand-alone network (none: no limit); one "
                   "study per method, seed and limit.")
@click.option("--set", "settings", multiple=True, metavar="METHOD.OPTION=VALUE", help="A searcher option.")
@click.option("--out", type=click.Path(), required=True, help="Output folder.")
@click.option("--resume", is_flag=True, help="Continue the sweep already in --out.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def supernet_search(supernet_file, methods, seeds, budget, max_flops, settings, out, resume, quiet) -> None:
    """Search a trained supernet with several methods under several FLOPs limits, training nothing new.

    \b
    Example:
      raynas supernet search --supernet sn-digits/supernet.pt --methods evolution,random \\
          --seeds 3 --budget 50 --max-flops none,0.2,0.1 --out sn-search
    """
    from raynas.runner._supernet_run import SupernetSearchRun, search

    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    limits = _flops_list(max_flops)
    cfg = SupernetSearchRun(supernet=supernet_file, methods=method_list, seeds=seeds, budget=budget,
                            max_flops=limits, options=parse_settings(settings, method_list))
    path = search(cfg, out, resume=resume, progress=not quiet)
    click.echo((path.parent / "summary.md").read_text())
    click.echo(f"results: {path}")


@main.command("train")
@click.option("--genotype", "genotype_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A cell file written by `raynas snas` (OUT/genotypes/*.json): its space and genotype.")
@click.option("--arch", default=None, help="Or the cell in the space's notation (see `raynas spaces`).")
@click.option("--space", default=None, help="The space of --arch (a --genotype file names its own).")
@click.option("--dataset", default="digits", show_default=True, help="digits (bundled), cifar10, cifar100 or imagefolder.")
@click.option("--data", type=click.Path(), default=None, help="Folder of the dataset's files (not for digits).")
@click.option("--image-size", type=int, default=8, show_default=True, help="Image side for digits (8 native).")
@click.option("--epochs", type=int, default=12, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Training batch size.")
@click.option("--lr", type=float, default=0.1, show_default=True, help="Initial SGD learning rate (cosine to 0).")
@click.option("--network", "network", multiple=True, metavar="OPTION=VALUE",
              help="A network option, e.g. --network channels=8 (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the weights, the split and the data order.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the curve and results to this JSON file.")
def train_cell(genotype_file, arch, space, dataset, data, image_size, epochs, batch_size, lr, network, seed,
               out) -> None:
    """Train one cell from scratch and report its validation and test accuracy.

    \b
    Example:
      raynas train --genotype snas-digits/genotypes/mild_seed0.json --epochs 12 --network channels=8
    """
    from raynas.runner._output import check_output_file
    from raynas.runner._train_run import dataset_splits
    from raynas.spaces import get_space
    from raynas.trainables.networks import build_network, count_flops, count_params
    from raynas.trainables.train import TrainConfig, seeded_init, train_model

    if (genotype_file is None) == (arch is None):
        raise click.UsageError("give one of --genotype FILE or --arch CELL")
    if genotype_file is not None:
        from raynas.runner._snas_run import read_genotype_file
        from raynas.spaces._darts_nodes import NodeGenotype

        sp, cell = read_genotype_file(genotype_file)
        # A SNAS child of DARTS (any number of edges per node) lies outside the space's notation.
        shown_cell = repr(cell) if isinstance(cell, NodeGenotype) else sp.to_string(cell)
    else:
        if space is None:
            raise click.UsageError("--arch needs --space")
        sp = get_space(space)
        cell = sp.from_string(arch)
        sp.validate(cell)
        shown_cell = sp.to_string(cell)
    dest = check_output_file(out) if out else None
    splits = dataset_splits(dataset, data, seed, image_size)
    options = _parse_network(network)
    model = seeded_init(lambda: build_network(sp, cell, splits.num_classes, **options), seed)
    params, flops = count_params(model) / 1e6, count_flops(model, (3, *splits.input_shape[1:]), bias=True) / 1e6
    click.echo(f"{sp.name} cell {shown_cell}: {params:.4f} M params, {flops:.3f} MFLOPs")
    result = train_model(model, splits, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr), seed=seed,
                         on_epoch=lambda m, _: click.echo(f"epoch {int(m['epoch'])}: val {m['val_accuracy']:.2f}%"))
    click.echo(f"val_accuracy {result.curve[-1]['val_accuracy']:.2f}, test_accuracy {result.test_accuracy:.2f}")
    if dest is not None:
        dest.write_text(json.dumps({"space": sp.name, "cell": shown_cell, "params": params, "flops": flops,
                                    "curve": result.curve, "test_accuracy": result.test_accuracy}, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
