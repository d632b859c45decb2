"""The run folder's overview page: verdict, per-seed table, pictures and links."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import yaml

from ganscope.config import load_config, piece_params
from ganscope.data import DATASETS
from ganscope.report.plots import plot_curves, plot_samples
from ganscope.seeding import make_generator
from ganscope.train.checkpoint import atomic_write_text
from ganscope.train.log import MetricsLog


def write_basic_report(run_dir: Path) -> Path:
    """Write samples.png, curves.png and index.html from the run folder's files."""
    cfg = load_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    summary = json.loads((run_dir / "summary.json").read_text())
    data = DATASETS.get(cfg.data.name)(piece_params(cfg, "data"))
    real = data.sample(5000, make_generator(cfg.seed, "report")).numpy()
    fake = np.load(run_dir / "samples.npy")
    centres = getattr(data.oracle, "centres", None)
    titles = [
        f"{s['modes_covered']}/{s['n_modes']} modes, {100 * s['hq_fraction']:.1f}% HQ" for s in summary["scores"]
    ]
    plot_samples(run_dir / "samples.png", real, fake, summary["seeds"], None if centres is None else centres.numpy(), titles)
    plot_curves(run_dir / "curves.png", MetricsLog(run_dir / "metrics.jsonl").read())
    rows = "".join(
        f"<tr><td>{seed}</td><td>{s['modes_covered']}/{s['n_modes']}</td><td>{100 * s['hq_fraction']:.1f}%</td>"
        f"<td>{_number(s['reverse_kl'])}</td></tr>"
        for seed, s in zip(summary["seeds"], summary["scores"], strict=True)
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ganscope run {html.escape(run_dir.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
img{{max-width:100%;border:1px solid #eee}}</style></head><body>
<h1>ganscope run: {html.escape(run_dir.name)}</h1>
<p><strong>{html.escape(summary['verdict'])}</strong> after {summary['step']} steps.</p>
<p>Modes: {html.escape(summary['modes_found_by'])}.</p>
<table><tr><th>seed</th><th>modes covered</th><th>high quality</th><th>reverse KL</th></tr>{rows}</table>
<h2>Samples</h2><img src="samples.png" alt="generated samples over the real data">
<h2>Training curves</h2><img src="curves.png" alt="loss and metric curves">
<h2>Files</h2><ul>
<li><a href="config.yaml">config.yaml</a> (resolved configuration)</li>
<li><a href="metrics.jsonl">metrics.jsonl</a> (metrics log)</li>
<li><a href="summary.json">summary.json</a></li>
<li><a href="checkpoint.pt">checkpoint.pt</a>, <a href="generator.safetensors">generator.safetensors</a></li>
<li>tensorboard/ (run <code>tensorboard --logdir {html.escape(str(run_dir))}</code>)</li></ul>
</body></html>
"""
    atomic_write_text(run_dir / "index.html", page)
    return run_dir / "index.html"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
