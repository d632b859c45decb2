"""The `ganscope` command: a thin layer over the Python API.

User errors (bad config, bad data, missing run folder, a bad option) print one line and
exit with code 2; an interrupted run exits with 128 + the signal number after saving.
numpy, torch and the pieces are imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ganscope.errors import ConfigError, DataError, GanscopeError, OutputError
from ganscope.seed_ranges import DEFAULT_BASE_SEED, EVALUATION_SEEDS, TUNING_SEEDS, span

if TYPE_CHECKING:
    import torch

USER_ERROR = 2
NPY_MAGIC = b"\x93NUMPY"


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other ganscope error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"ganscope: {message}; see `{self.prog} --help`\n")


def _int_at_least(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `lowest`, checked as it is parsed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest} (got {value})")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def resource_amount(text: str) -> float:
    """An argparse type: a Ray resource amount, a number >= 0 (a fraction shares a device)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def truncation_psi(text: str) -> float:
    """An argparse type: a truncation psi, a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1] (got {value})")
    return value


def _refuse_under_file(path: Path) -> None:
    blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputError(f"{blocker} is a file, so {path} cannot be created inside it; choose another -o")


def output_file(path: Path, example: str) -> Path:
    """`path`, checked before anything is written: not a folder, not inside a file."""
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give -o a file name, e.g. {path / example}")
    _refuse_under_file(path)
    return path


def output_folder(path: Path) -> Path:
    """`path`, checked before anything is written: not a file, not inside a file."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; give -o a folder (a new one is created)")
    _refuse_under_file(path)
    return path


def new_run_folder(path: Path) -> Path:
    """An output folder that holds nothing yet, so a new run overwrites none of the user's files
    (a lone lock file is a run killed before it wrote anything)."""
    from ganscope.train.checkpoint import LOCK

    if output_folder(path).is_dir() and any(p.name != LOCK for p in path.iterdir()):
        raise OutputError(
            f"{path} is not empty; give -o a new or empty folder (`ganscope resume {path}` continues a run there)"
        )
    return path


def _print_json(obj: Any) -> None:
    from ganscope.train.log import jsonable

    print(json.dumps(jsonable(obj), indent=2))


def _print_metrics(metrics: dict[str, dict[str, float]], prefix: str = "", space: str | None = None) -> None:
    """One line per metric, after the feature space they were computed in, if given."""
    if metrics and space:
        print(f"{prefix}feature-space metrics in {space}:")
    for name, values in metrics.items():
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"{prefix}{name}: {shown}")


def default_run_dir(cfg: Any) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{cfg.data.name}-{cfg.objective.name}-{cfg.scheme.name}"


def _train(cfg: Any, out: Path | None, quiet: bool) -> dict[str, Any]:
    from ganscope.train import Run, process_folder

    run_dir = process_folder(lambda: new_run_folder(out or default_run_dir(cfg)), resuming=False)
    run = Run.create(cfg, run_dir)
    if run.leader:
        print(f"run folder: {run_dir}", file=sys.stderr)
    summary = run.fit(progress=not quiet)
    if run.leader:
        _print_verdict(summary, run_dir, run.cfg.train.report)
    return summary


def _print_verdict(summary: dict[str, Any], run_dir: Path, reported: bool) -> None:
    print(summary["verdict"])
    if len(summary["seeds"]) > 1:
        for seed, score in zip(summary["seeds"], summary["scores"], strict=True):
            rkl = "n/a" if score["reverse_kl"] is None else f"{score['reverse_kl']:.3f}"
            now = summary.get("conditions_at_end", {}).get(str(seed))
            fidelity = score.get("label_fidelity")
            print(f"  seed {seed}: {score['modes_covered']}/{score['n_modes']} modes, "
                  f"{100 * score['hq_fraction']:.1f}% HQ, reverse KL {rkl}"
                  + ("" if fidelity is None else f", label fidelity {100 * fidelity:.1f}%")
                  + (f"; at the end: {', '.join(now)}" if now else ""))
    if not reported:
        print(f"report: not written (train.report=false); `ganscope report {run_dir}` writes it")
        return
    from ganscope.report import REPORT

    print(f"report: {run_dir / REPORT}")


def cmd_demo(args: argparse.Namespace) -> int:
    from ganscope.config import load_config

    cfg = load_config(None, args.set, profile="demo")
    _train(cfg, args.out, args.quiet)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ganscope.config import load_config

    cfg = load_config(args.config, args.set, profile=args.profile)
    _train(cfg, args.out, args.quiet)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from ganscope.train import Run, process_folder

    run = Run.open(process_folder(lambda: args.run_dir, resuming=True), args.set)
    summary = run.fit(progress=not args.quiet)  # says "resumed from step N", and what new train.* keys change
    if run.leader:
        _print_verdict(summary, args.run_dir, run.cfg.train.report)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ganscope.metrics.modes import population_summary
    from ganscope.train import Run

    run = Run.open(args.run_dir, device=args.device)
    scores, samples = run.evaluate(args.n, key=run.step)
    result = {
        "run": str(args.run_dir),
        "step": run.step,
        "data": run.parts.data.name,
        "modes_found_by": run.parts.data.oracle.description,
        "seeds": run.parts.seeds,
        "scores": [s.to_dict() for s in scores],
        **{k: v for k, v in population_summary(scores).items() if not isinstance(v, list)},
        "verdict": run.verdict(scores),
    }
    run.scheme.train(False)
    own_scores, own_text = run.scheme.final_scores(samples.shape[1], run.step)  # a translator's both directions
    result.update(own_scores)
    if own_text:
        result["verdict"] = f"{result['verdict']}; {own_text}"
    if args.metric:
        from ganscope.metrics.suite import feature_metrics, reference_samples

        oracle = run.parts.data.oracle
        real = reference_samples(run.parts.data, samples.shape[1], run.cfg.seed)
        result["feature_space"] = oracle.feature_space
        result["metrics"] = {
            str(seed): feature_metrics(args.metric, real, fake, seed, oracle)
            for seed, fake in zip(run.parts.seeds, samples, strict=True)
        }
    if args.per_class:
        from ganscope.metrics.suite import class_feature_metrics

        asked = run.sample_inputs(samples.shape[1], run.step).labels
        if asked is None or not args.metric:
            raise ConfigError("--per-class needs a conditional run and at least one -m METRIC "
                              f"(this run: conditioning {run.cfg.conditioning.name})")
        result["class_metrics"] = {
            str(seed): class_feature_metrics(args.metric, run.parts.data, fake, y, seed)
            for seed, fake, y in zip(run.parts.seeds, samples, asked.cpu(), strict=True)
        }
    if args.json:
        _print_json(result)
    else:
        print(result["verdict"])
        for seed, values in result.get("metrics", {}).items():
            _print_metrics(values, f"seed {seed}: ", result["feature_space"])
        for seed, classes in result.get("class_metrics", {}).items():
            for label, values in classes.items():
                _print_metrics(values, f"seed {seed}, class {label}: ")
    return 0


def load_samples(path: Path) -> torch.Tensor:
    """Samples from any generator: an .npy array (N, *sample_shape) of finite numbers."""
    import numpy as np
    import torch

    if path.is_dir():
        raise DataError(f"samples file {path} is a folder; give a .npy file, e.g. from `ganscope sample RUN -o FILE`")
    if not path.is_file():
        raise DataError(f"samples file {path} does not exist")
    with path.open("rb") as handle:
        if handle.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DataError(f"{path} is not a NumPy .npy file; save samples with numpy.save")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a NumPy .npy array ({err}); save samples with numpy.save") from None
    if array.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {array.dtype} values; samples must be numbers")
    if array.ndim < 2 or len(array) == 0:
        raise DataError(f"{path} has shape {array.shape}; give (N, ...) with N >= 1 samples")
    if not np.isfinite(array).all():
        raise DataError(f"{path} contains NaN or infinite samples; the generator diverged or the file is damaged")
    return torch.from_numpy(array.astype(np.float64))


def dataset_from_arg(name_or_file: str, options: list[str]) -> Any:
    """A registered dataset name (with --data-option values) or the path of a points file."""
    from ganscope.config import load_config
    from ganscope.data import dataset_from_config

    path = Path(name_or_file)
    if path.is_dir():
        raise DataError(f"--data {path} is a folder; give a .npy, .npz or .csv file of real points, or a dataset name")
    malformed = next((o for o in options if "=" not in o), None)
    if malformed is not None:
        raise DataError(f"--data-option {malformed!r} is not KEY=VALUE; write e.g. --data-option std=0.02")
    if path.suffix.lower() in (".npy", ".npz", ".csv"):
        overrides = ["data.name=file", f"data.path={json.dumps(str(path))}"]
    else:
        overrides = [f"data.name={name_or_file}"]
    return dataset_from_config(load_config(None, overrides + [f"data.{o}" for o in options]))


def cmd_score(args: argparse.Namespace) -> int:
    import torch

    from ganscope.metrics.modes import score_modes

    data = dataset_from_arg(args.data, args.data_option)
    samples = load_samples(args.samples)
    if tuple(samples.shape[1:]) != data.sample_shape:
        raise DataError(
            f"samples have shape {tuple(samples.shape[1:])} per sample but {args.data} has {data.sample_shape}"
        )
    score = score_modes(samples, data.oracle)
    protocol = data.oracle.protocol_score(torch.tensor(score.nearest_counts))
    result = {"data": args.data, "modes_found_by": data.oracle.description, **score.to_dict()}
    if protocol is not None:
        result["protocol"] = protocol.to_dict()
    if args.metric:
        from ganscope.metrics.suite import feature_metrics, reference_samples

        real = reference_samples(data, len(samples))
        result["feature_space"] = data.oracle.feature_space
        result["metrics"] = feature_metrics(args.metric, real, samples, oracle=data.oracle)
    if args.json:
        _print_json(result)
    else:
        print(f"{data.name}: {score.summary()}")
        if protocol is not None:
            print(protocol.summary())
        print(f"modes: {data.oracle.description}")
        _print_metrics(result.get("metrics", {}), space=result.get("feature_space"))
    return 0


def cmd_oracle(args: argparse.Namespace) -> int:
    from ganscope.data.images import DigitDataset

    data = dataset_from_arg(args.data, args.data_option)
    if not isinstance(data, DigitDataset):
        raise DataError(f"{args.data} has no trained oracle (its modes: {data.oracle.description}); "
                        "`ganscope oracle` is for labelled image datasets: digits, mnist, stacked-digits, stacked-mnist, "
                        "and image-folder or images with labels")
    result = {"data": data.name, "n_modes": data.oracle.n_modes, **data.classifier.to_dict(),
              "hq_confidence": data.hq_confidence, "held_out_confident_share": data.held_out_confident_share()}
    if args.json:
        _print_json(result)
        return 0
    loaded = "loaded from the cache" if result["from_cache"] else "trained now"
    print(f"{data.name}: {result['n_modes']} modes; {data.oracle.description}")
    print(f"weights: {result['weights']} ({loaded}; training took {result['training_seconds']:.1f} s)")
    print("recipe: " + ", ".join(f"{k} {v}" for k, v in result["recipe"].items()))
    print(f"high quality: {data.oracle.quality_rule}; "
          f"{100 * result['held_out_confident_share']:.1f}% of the held-out real images reach it")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ganscope.train import Run
    from ganscope.train.checkpoint import atomic_write

    output_file(args.out, "samples.npy")
    png = args.out.suffix.lower() == ".png"
    run = Run.open(args.run_dir, device=args.device)
    seeds = run.parts.seeds
    if args.seed is not None and args.seed not in seeds:
        raise ConfigError(f"seed {args.seed} is not in this run's population {seeds}; choose one of them with --seed")
    if png and len(run.parts.data.sample_shape) != 3:
        raise ConfigError(f"{run.parts.data.name} samples are points, not images; write them with -o FILE.npy")
    labels = None
    if args.label is not None:
        n_classes = run.parts.data.n_classes
        if not run.parts.conditional:
            raise ConfigError(f"this run's generator is unconditional (conditioning {run.cfg.conditioning.name}); "
                              "drop --label")
        if args.label >= (n_classes or 0):
            raise ConfigError(f"--label {args.label} is not a class of {run.parts.data.name}; give 0..{n_classes - 1}")
        labels = torch.full((len(seeds), args.n), args.label, dtype=torch.long)
    samples = run.sample(args.n, key=args.key, labels=labels, truncation=args.truncation).cpu()
    chosen = samples if args.all_seeds else samples[seeds.index(args.seed) if args.seed is not None else 0]
    array = chosen.numpy()

    def write(tmp: Path) -> None:
        if png:
            from ganscope.imaging import tile, write_png

            rows = array if array.ndim == 4 else array.reshape(-1, *array.shape[2:])
            write_png(tmp, tile(rows, cols=array.shape[1] if array.ndim == 5 else None))
            return
        with tmp.open("wb") as handle:
            np.save(handle, array)

    atomic_write(args.out, write)
    what = "a PNG grid of" if png else ""
    print(f"wrote {what} {array.shape} samples to {args.out}".replace("  ", " "))
    return 0


def read_translation_inputs(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """Images to translate, (N, C, H, W) in [-1, 1] at the run's size and channels: a folder
    of image files (Pillow) or an .npy/.npz array (any layout `images` data reads)."""
    from ganscope.data.image_files import ImageArrayParams, ImageFolderParams, read_array_images, read_folder

    channels, side = shape[0], shape[-1]
    if path.is_dir():
        images = read_folder(ImageFolderParams(path=path, size=side, channels=channels, classes=False)).images
    elif path.suffix.lower() in (".npy", ".npz"):
        images = read_array_images(ImageArrayParams(path=path, size=side)).images
    else:
        raise DataError(f"{path} is neither a folder of images nor an .npy/.npz array; give one of those")
    if images.shape[1] != channels:
        raise DataError(f"{path} holds {images.shape[1]}-channel images and the run translates {channels}-channel "
                        "ones; convert them first")
    return images


def cmd_translate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ganscope.imaging import tile, write_png
    from ganscope.train import Run
    from ganscope.train.checkpoint import atomic_write

    output_file(args.out, "translated.png")
    if args.out.suffix.lower() not in (".png", ".npy"):
        raise OutputError(f"{args.out}: write the translations as a PNG grid (.png) or an array (.npy)")
    run = Run.open(args.run_dir, device=args.device)
    translate = getattr(run.scheme, "translate", None)
    if translate is None:
        raise ConfigError(f"{args.run_dir} holds a run of scheme {run.cfg.scheme.name}, which generates from noise; "
                          "translate needs a translator (scheme cyclegan)")
    seeds = run.parts.seeds
    if args.seed is not None and args.seed not in seeds:
        raise ConfigError(f"seed {args.seed} is not in this run's population {seeds}; choose one of them with --seed")
    images = read_translation_inputs(args.images, run.parts.data.sample_shape)
    run.scheme.train(False)
    population = images.expand(len(seeds), *images.shape).to(run.parts.device)
    translated = translate(population, args.direction).cpu()[seeds.index(args.seed) if args.seed is not None else 0]

    def write(tmp: Path) -> None:
        if args.out.suffix.lower() == ".png":
            pairs = torch.stack([images, translated], dim=1).reshape(-1, *images.shape[1:]).numpy()
            write_png(tmp, tile(pairs, cols=2 * min(len(images), TRANSLATE_PAIRS_PER_ROW)))
            return
        with tmp.open("wb") as handle:
            np.save(handle, translated.numpy())

    atomic_write(args.out, write)
    what = "a PNG grid of input | translation pairs" if args.out.suffix.lower() == ".png" else "an array of"
    print(f"wrote {what} {len(images)} {args.direction[0].upper()} -> {args.direction[1].upper()} translations "
          f"to {args.out}")
    return 0


#: `translate -o X.png`: input | translation pairs per row of the grid.
TRANSLATE_PAIRS_PER_ROW = 8


def cmd_report(args: argparse.Namespace) -> int:
    from ganscope.report import COMPARE, write_comparison, write_report

    if len(args.run_dirs) == 1:
        print(write_report(args.run_dirs[0], args.out and output_file(args.out, "report.html")))
    else:
        print(write_comparison(args.run_dirs, output_file(args.out or Path(COMPARE), COMPARE)))
    return 0


def cmd_mlflow(args: argparse.Namespace) -> int:
    from ganscope.tracking import log_run, require_mlflow, tracking_uri
    from ganscope.train.run import CONFIG

    require_mlflow()
    for run_dir in args.run_dirs:
        if not (run_dir / CONFIG).is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG}); give folders that ganscope train wrote")
    for run_dir in args.run_dirs:
        try:
            run_id = log_run(run_dir, args.uri, args.experiment)
        except Exception as err:  # noqa: BLE001  (MLflow's and the network's errors alike)
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{run_dir} was not copied into MLflow at {tracking_uri(args.uri)}: {first}; check "
                              "--uri (a tracking server that answers, or sqlite:///FILE)") from None
        print(f"{run_dir}: MLflow run {run_id} in experiment {args.experiment!r} at {tracking_uri(args.uri)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import ganscope  # noqa: F401  (registers every piece)
    from ganscope.profiles import describe_profile, profile_names
    from ganscope.registry import ALL_REGISTRIES

    listing = {
        plural: [{"name": e.name, "description": e.description, "params": list(e.params.model_fields)} for e in reg]
        for plural, reg in ALL_REGISTRIES.items()
    }
    listing["profiles"] = [{"name": n, "description": describe_profile(n), "params": []} for n in profile_names()]
    if args.json:
        _print_json(listing)
        return 0
    for plural, entries in listing.items():
        print(f"{plural}:")
        for e in entries:
            params = f"  [{', '.join(e['params'])}]" if e["params"] else ""
            print(f"  {e['name']:<16} {e['description']}{params}")
    return 0


def cmd_theory_optimal_d(args: argparse.Namespace) -> int:
    from ganscope.theory.optimal_d import OptimalDSettings, run_optimal_d

    out = args.out and output_folder(args.out)
    result = run_optimal_d(OptimalDSettings(dim=args.dim, steps=args.steps, seed=args.seed), out_dir=out)
    if args.json:
        _print_json(result)
    else:
        print(result["summary"])
    return 0


def cmd_theory_mode_hopping(args: argparse.Namespace) -> int:
    from ganscope.theory.mode_hopping import mode_hopping_settings, run_mode_hopping

    changes = {k: v for k, v in (("steps", args.steps), ("seeds", args.seeds), ("remedies", args.remedies))
               if v is not None}
    settings = mode_hopping_settings(args.quick, **changes)
    out = output_folder(args.out or Path("runs") / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-mode-hopping")
    print(f"run folder: {out}", file=sys.stderr)
    result = run_mode_hopping(settings, out, progress=not args.quiet)
    if args.json:
        _print_json(result)
    else:
        print(result["summary"])
        print(f"picture: {out / 'mode_hopping.png'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ganscope.bench import plan, render_markdown, run_benchmark

    jobs = plan(args.protocol, args.methods, args.budget, args.seeds, args.steps, args.base_seed)
    from ganscope.sweep.spec import ResourcesSpec

    resources = ResourcesSpec(cpu=args.cpus_per_population, gpu=args.gpus_per_population)
    result = run_benchmark(jobs, output_folder(args.out), progress=not args.quiet, workers=args.workers,
                           backend=args.backend, address=args.address, resources=resources)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(render_markdown(result.entries))
        print(f"results: {result.json_path} ({result.ran} trained, {result.skipped} already there); "
              f"table: {result.markdown_path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ganscope.sweep import default_out, load_sweep, plan, run_sweep
    from ganscope.sweep.results import best_lines

    sweep = load_sweep(args.sweep)
    out = output_folder(args.out or default_out(sweep))
    if args.dry_run:
        trials = plan(sweep)
        if args.json:
            _print_json({"name": sweep.name, "trials": [
                {"name": t.name, "values": t.values, "protocol": t.protocol, "run_dir": str(t.run_dir(out)),
                 "overrides": list(t.overrides)} for t in trials]})
        else:
            for t in trials:
                print(f"{t.run_dir(out)}: {t.label()}")
            print(f"{len(trials)} trials of {len(sweep.seeds())} seeds each (one population run per trial)")
        return 0
    result = run_sweep(sweep, out, backend=args.backend, workers=args.workers, address=args.address,
                       retry_failed=args.retry_failed, progress=not args.quiet)
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(result.markdown_path.read_text())
    for protocol, chosen in result.best.items():
        if chosen:
            print(f"best{f' on {protocol}' if protocol else ''}:")
            print("\n".join(best_lines(sweep, chosen[:1])))
    compare = f"; best trials compared: {result.compare_path}" if result.compare_path else ""
    print(f"results: {result.json_path} ({result.ran} trained, {result.skipped} already there); "
          f"table: {result.markdown_path}{compare}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="ganscope", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def device_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto",
                       help="where to run the generator: auto (CUDA when available, else the CPU; default), cpu, "
                       "cuda, cuda:N; the run folder's own train.device is left as it is")

    def metric_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("-m", "--metric", action="append", default=[], metavar="NAME",
                       help="also a feature-space metric against real samples (prdc, ndb, frechet, birthday)")

    def data_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                       help="dataset parameter, e.g. --data-option std=0.02 or --data-option size=16")

    def overrides(p: argparse.ArgumentParser) -> None:
        p.add_argument("-s", "--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                       help="override config keys (dotted name, YAML value), e.g. -s train.steps=2000 "
                       "data.name=grid; -s may also be repeated")

    p = add("demo", cmd_demo, "train on the 2-D ring with the demo profile, print the verdict, write the report")
    overrides(p)
    p.add_argument("-o", "--out", type=Path, help="run folder (default runs/<time>-ring-...)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("train", cmd_train, "train one run (a population of seeds) from a config")
    p.add_argument("config", nargs="?", type=Path, help="YAML config (default: built-in defaults)")
    p.add_argument("-p", "--profile", help="start from a named profile (ganscope list shows them)")
    overrides(p)
    p.add_argument("-o", "--out", type=Path, help="run folder (default runs/<time>-<data>-<objective>-<scheme>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("resume", cmd_resume, "continue a run from its last checkpoint, bit-for-bit")
    p.add_argument("run_dir", type=Path)
    overrides(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("eval", cmd_eval, "score a run's generator on its data's protocol")
    p.add_argument("run_dir", type=Path)
    p.add_argument("-n", type=positive_int, help="samples per seed (default: the protocol's count for the data, "
                   "2500 on the 2-D protocols, 26000 on Stacked MNIST)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    metric_option(p)
    p.add_argument("--per-class", action="store_true",
                   help="a conditional run: each metric also per class (samples asked for a class against "
                   "that class's real samples)")
    device_option(p)

    p = add("score", cmd_score, "score samples from any generator against a dataset's modes")
    p.add_argument("--data", required=True, help="dataset name (ring, grid, ...) or a .npy/.npz/.csv file of real points")
    data_option(p)
    p.add_argument("samples", type=Path, help=".npy array of samples (N, *sample_shape)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    metric_option(p)

    p = add("oracle", cmd_oracle, "train (or load from the cache) an image dataset's classifier oracle and "
            "describe it: recipe, weights, held-out accuracy")
    p.add_argument("data", metavar="DATA", help="digits, mnist, stacked-digits or stacked-mnist")
    data_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = add("sample", cmd_sample, "draw samples from a run's generator into a .npy file, or a PNG grid of images "
            "(-o FILE.png; one row per seed with --all-seeds)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("-n", type=positive_int, default=2500)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--seed", type=int, help="which seed of the population (default: the first)")
    p.add_argument("--all-seeds", action="store_true", help="write (seeds, n, ...) for the whole population")
    p.add_argument("--key", type=non_negative_int, default=0, help="noise key: the same key draws the same samples")
    p.add_argument("--label", type=non_negative_int,
                   help="a conditional run's class to generate (default: labels drawn from the data's class shares)")
    p.add_argument("--truncation", type=truncation_psi, metavar="PSI",
                   help="a style-based G's truncation psi in [0, 1]: styles pulled towards their average "
                        "(1: none; StyleGAN's 0.7 trades variety for typical samples)")
    device_option(p)

    p = add("translate", cmd_translate, "translate images with a CycleGAN run: a folder of image files or an "
            ".npy/.npz array, A -> B (or B -> A), into a PNG grid of input | translation pairs or an .npy array")
    p.add_argument("run_dir", type=Path)
    p.add_argument("images", type=Path, help="a folder of images, or an .npy/.npz array of images")
    p.add_argument("-o", "--out", type=Path, required=True, help="translations.png or translations.npy")
    p.add_argument("--direction", choices=["ab", "ba"], default="ab", help="ab: A -> B (default); ba: B -> A")
    p.add_argument("--seed", type=int, help="which seed's translator (default: the first)")
    device_option(p)

    p = add("report", cmd_report, "write a run's self-contained HTML report, or compare several runs side by side")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("-o", "--out", type=Path,
                   help="output page (default RUN_DIR/report.html for one run, ./compare.html for several)")

    p = add("mlflow", cmd_mlflow, "copy run folders into MLflow (config, per-seed metrics, events, summary, "
            "report); again after a resume, only the new steps (pip install 'ganscope[mlflow]')")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--uri", help="tracking store or server (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
                   "in this folder)")
    p.add_argument("--experiment", default="ganscope", help="MLflow experiment (default ganscope)")

    p = add("list", cmd_list, "every dataset, network, objective, regulariser, scheme and metric")
    p.add_argument("--json", action="store_true")

    p = add("bench", cmd_bench, "the mode-collapse protocols (2-D ring and grid, Stacked digits and MNIST): "
            "methods x seeds beside the published numbers; resumable")
    p.add_argument("protocol", metavar="PROTOCOL", help="ring, grid, stacked-digits, stacked-mnist, "
                   "mnist-conditional, stacked-mnist-conditional; points (ring and grid), images (both stacked), "
                   "conditional (both conditional) or all")
    p.add_argument("--seeds", type=positive_int, default=5,
                   help="seeds per method, trained as one population (default 5)")
    p.add_argument("--base-seed", type=non_negative_int, default=DEFAULT_BASE_SEED,
                   help=f"first seed (default {DEFAULT_BASE_SEED}: seeds {span(EVALUATION_SEEDS)} are evaluation "
                   f"seeds that no setting was ever chosen on; {span(TUNING_SEEDS)} are for tuning; "
                   "docs/PROTOCOLS.md)")
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="methods to run (default: every method of "
                   "the protocol's kind; an unknown name lists them)")
    p.add_argument("--budget", default="cpu", help="cpu (sized for 2 CPU cores: 4,000 steps on points, "
                   "2,000 on images; default), cpu-long (points: 40,000 steps) or paper (PacGAN's published settings)")
    p.add_argument("--steps", type=positive_int, help="replace the budget's training steps (e.g. a smoke run)")
    p.add_argument("-o", "--out", type=Path, default=Path("runs") / "bench",
                   help="folder for protocols.json, protocols.md and the run folders (default runs/bench); "
                   "entries already in its protocols.json are skipped")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="the sweep engine's backend that trains the populations (default local)")
    p.add_argument("--workers", type=non_negative_int,
                   help="populations trained at a time (local: worker processes, default 0: one at a time in this "
                        "process; ray: at most this many, default as the cluster's resources allow)")
    p.add_argument("--address", help="ray: a running cluster to connect to, e.g. auto (default: a local Ray)")
    p.add_argument("--cpus-per-population", type=resource_amount, default=1.0,
                   help="ray: CPUs per population, also its torch threads (default 1)")
    p.add_argument("--gpus-per-population", type=resource_amount, default=0.0,
                   help="ray: GPUs per population (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    p = add("sweep", cmd_sweep, "a sweep file's trials (axes over config keys; the seeds of a trial train as one "
            "population) on this machine or a Ray cluster, ranked by a metric; resumable")
    p.add_argument("sweep", type=Path, metavar="SWEEP.yaml", help="the sweep file (README, Sweeps; e.g. "
                   "benchmarks/sweeps/ring-cheapest.yaml)")
    p.add_argument("-o", "--out", type=Path, help="folder for sweep.json, sweep.md, compare.html and one run folder "
                   "per trial (default runs/sweeps/<sweep name>); trials already recorded there are skipped")
    p.add_argument("--backend", choices=["local", "ray"], help="replace the file's backend: local (a process pool "
                   "on this machine) or ray (Ray Tune; pip install 'ganscope[ray]')")
    p.add_argument("--workers", type=non_negative_int, help="trials at a time (local: N worker "
                   "processes; default 0 trains one at a time in this process; ray default: as many as the cluster's resources allow)")
    p.add_argument("--address", help="a running Ray cluster to connect to, e.g. auto or ray://head:10001 "
                   "(default: the file's address, else a local Ray started for the sweep)")
    p.add_argument("--retry-failed", action="store_true", help="train failed trials again (by default they keep "
                   "their recorded error)")
    p.add_argument("--dry-run", action="store_true", help="list the trials and their run folders; train nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")

    theory = sub.add_parser("theory", help="demonstrations of GAN theory").add_subparsers(
        dest="demo", required=True, metavar="DEMO")
    p = theory.add_parser("optimal-d", help="train D against a fixed G and compare with D* = p_data/(p_data+p_g)")
    p.set_defaults(func=cmd_theory_optimal_d)
    p.add_argument("--dim", type=int, choices=(1, 2), default=1)
    p.add_argument("--steps", type=positive_int, default=3000)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("-o", "--out", type=Path, help="folder for the picture and result.json")
    p.add_argument("--json", action="store_true")
    p = theory.add_parser("mode-hopping", help="plain GAN hops between ring modes (max-min); remedies cover them")
    p.set_defaults(func=cmd_theory_mode_hopping)
    p.add_argument("--remedies", nargs="+", metavar="METHOD",
                   help="methods of `ganscope bench` to set against the plain GAN (default: unrolled pacgan2)")
    p.add_argument("--steps", type=positive_int, help="training steps of each method (replaces the setting's)")
    p.add_argument("--seeds", type=positive_int,
                   help="seeds per method, trained as one population (replaces the setting's)")
    p.add_argument("--quick", action="store_true", help="a small setting that runs in under a minute (for tests)")
    p.add_argument("-o", "--out", type=Path, help="folder (default runs/<time>-mode-hopping): picture, "
                   "result.json, one run folder per method")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print result.json's content")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed on one line
        return int(stop.code or 0)
    from ganscope import distributed

    try:
        if distributed.launched_world_size() > 1:
            if args.func not in DATA_PARALLEL_COMMANDS:
                raise ConfigError(f"only {', '.join(DATA_PARALLEL_COMMANDS.values())} run under torchrun "
                                  f"(WORLD_SIZE={distributed.launched_world_size()}); run ganscope {args.command} "
                                  f"as one process")
            distributed.start()
        return args.func(args)
    except GanscopeError as err:
        from ganscope.train import Interrupted

        if distributed.current().leader:  # the other processes of a torchrun run say nothing more
            print(f"ganscope: {err}", file=sys.stderr)
        if isinstance(err, Interrupted):
            return 128 + err.signum
        return USER_ERROR
    except OSError as err:  # a path the system refused: permissions, a full disk, a read-only mount
        where = f" {err.filename}" if err.filename else ""
        print(f"ganscope: cannot write or read{where}: {err.strerror or err}", file=sys.stderr)
        return USER_ERROR
    finally:
        distributed.stop()


#: The commands a torchrun launch may run, data-parallel (`ganscope.distributed`).
DATA_PARALLEL_COMMANDS: dict[Callable[[argparse.Namespace], int], str] = {
    cmd_train: "train", cmd_resume: "resume", cmd_demo: "demo",
}


if __name__ == "__main__":
    sys.exit(main())
