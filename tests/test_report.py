"""The HTML report on real (tiny) runs: self-contained, complete, animated, comparable,
t-SNE for n-D data, and rendered by a real browser without a broken image or an error."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganscope
from ganscope.batch import Batch
from ganscope.cli import main
from ganscope.monitor.monitor import Event
from ganscope.report import REPORT, figures, write_report
from ganscope.schemes.madgan import MadGAN, MadGANParams
from ganscope.train.log import MetricsLog
from ganscope.train.snapshots import SNAPSHOT_SAMPLES, snapshot_steps

# The divergence detector at a hair trigger: a run of 60 steps raises events, so the
# report's events timeline and markers are exercised by real monitor output.
EVENTFUL = [
    "train.monitor.detectors.divergence.explode_factor=1.0000001",
    "train.monitor.detectors.divergence.min_magnitude=1e-9",
    "train.log_every=5",
]
CENTRES_5D = [[3.0 if i == k else 0.0 for i in range(5)] for k in range(4)]


def train(run_dir: Path, overrides: list[str]) -> Path:
    cfg = ganscope.load_config(overrides=[*overrides, "train.report=true"])
    ganscope.Run.create(cfg, run_dir).fit(progress=False)
    return run_dir


@pytest.fixture
def ring_run(tmp_path: Path, tiny_overrides: list[str]) -> Path:
    """Two seeds, evaluations at steps 20, 40 and 60, monitor events."""
    return train(tmp_path / "nonsaturating-ring", tiny_overrides + EVENTFUL + ["train.steps=60", "train.seeds=2"])


def data_uris_only(page: str) -> None:
    """No resource outside the file: every image inlined, no script, style or link to fetch."""
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in sources)
    assert not re.search(r'src="(https?:)?//', page)
    assert not re.search(r"<link\b|<script\b|@import|url\(", page, re.IGNORECASE)


def test_run_report_is_self_contained_and_complete(ring_run: Path) -> None:
    summary = json.loads((ring_run / "summary.json").read_text())
    page = (ring_run / REPORT).read_text()
    data_uris_only(page)
    assert html.escape(summary["verdict"]) in page
    seeds_table = page.split('id="seeds"')[1].split("<h2")[0]
    assert seeds_table.count("<tr>") == 1 + len(summary["seeds"])  # header + one row per seed
    events = [e for e in summary["events"] if e["status"] == "started"]
    assert events, "the hair-trigger monitor should have raised events"
    timeline = page.split('id="events"')[1].split("<h2")[0]
    assert all(html.escape(e["event"]) in timeline for e in events)
    assert timeline.count("<tr>") == 1 + len(events)  # one row per event, its end folded into it
    for picture in ("samples.png", "evolution.png", "training.gif", "modes.png", "curves.png"):
        assert (ring_run / picture).stat().st_size > 1000, picture
    assert page.count("<img") == 5
    assert not (ring_run / "tsne.png").exists()  # 2-D data are shown as they are


def test_events_show_their_spans_and_the_verdict_keeps_ended_apart_from_current(ring_run: Path) -> None:
    hopping = Event("hopping", 0, 40, 20, {}, "constructed", None)  # evidence from 20, raised at 40
    oscillation = Event("oscillation", 1, 60, 40, {}, "constructed", None)
    MetricsLog(ring_run / "metrics.jsonl").append(
        [hopping.to_record(), hopping.ended(60, 40).to_record(), oscillation.to_record()])  # absent from 40
    page = write_report(ring_run).read_text()
    timeline = page.split('id="events"')[1].split("<h2")[0]
    assert html.escape("steps 20 – 40") in timeline and html.escape("steps 40 – ongoing at the end") in timeline
    verdict = page.split('class="verdict')[1].split('<div class="cards">')[0]
    current, ended = verdict.split("Ended during training:")
    assert "Current at the end:" in current
    assert 'oscillation</span> seed 1 (steps 40 – ongoing at the end)' in html.unescape(current)
    assert 'hopping</span> seed 0 (steps 20 – 40)' in html.unescape(ended) and "hopping" not in current


def test_snapshots_and_gif_have_every_evaluation(ring_run: Path) -> None:
    evals = sorted({json.loads(line)["step"] for line in (ring_run / "metrics.jsonl").read_text().splitlines()
                    if json.loads(line)["kind"] == "eval"})
    assert snapshot_steps(ring_run) == evals == [20, 40, 60]
    snapshot = np.load(ring_run / "snapshots" / "step_000040.npy")
    assert snapshot.shape == (2, min(SNAPSHOT_SAMPLES, 500), 2)  # 500: the tiny runs' train.eval_samples
    assert snapshot.dtype == np.float32
    with Image.open(ring_run / "training.gif") as gif:
        assert gif.n_frames == len(evals)
        assert gif.info["loop"] == 0


def test_resumed_run_animates_only_the_evaluations_its_log_keeps(tmp_path: Path, tiny_overrides: list[str]) -> None:
    run_dir = train(tmp_path / "run", tiny_overrides + ["train.steps=50"])  # evaluations 20, 40 and the final 50
    ganscope.Run.open(run_dir, ["train.steps=60"]).fit(progress=False)
    assert snapshot_steps(run_dir) == [20, 40, 50, 60]  # 50 is no evaluation of the longer run
    with Image.open(run_dir / "training.gif") as gif:
        assert gif.n_frames == 3


def test_strip_keeps_every_evaluation_where_an_event_started() -> None:
    steps = list(range(20, 401, 20))  # 20 evaluations
    evenly = figures.strip_steps(steps, set())
    assert len(evenly) == figures.MAX_EVOLUTION_COLUMNS and evenly[0] == 20 and evenly[-1] == 400
    assert 60 not in evenly  # even spacing alone skips it
    with_event = figures.strip_steps(steps, {60, 999})  # 999: no evaluation, ignored
    assert 60 in with_event and len(with_event) == figures.MAX_EVOLUTION_COLUMNS
    assert with_event[0] == 20 and with_event[-1] == 400
    many = set(steps[1:13])  # more event steps than panels: the strip widens to show them all
    assert many <= set(figures.strip_steps(steps, many)) and len(figures.strip_steps(steps, many)) == 14
    too_many = set(steps)
    assert len(figures.strip_steps(steps, too_many)) == figures.MAX_EVOLUTION_COLUMNS_WITH_EVENTS


def capture(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple]:
    """Record the arguments of every call of `figures.<name>`, still drawing the picture."""
    calls: list[tuple] = []
    draw = getattr(figures, name)

    def recorded(*args, **kwargs):
        calls.append((*args, *kwargs.values()))
        return draw(*args, **kwargs)

    monkeypatch.setattr(figures, name, recorded)
    return calls


def test_evolution_strip_shows_the_evaluation_where_an_event_started(
    tmp_path: Path, tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = train(tmp_path / "run", tiny_overrides + ["train.steps=100", "train.eval_every=10",
                                                      "train.monitor.enabled=false"])
    steps = list(range(10, 101, 10))
    assert 30 not in figures.strip_steps(steps, set())
    MetricsLog(run / "metrics.jsonl").append([Event("hopping", 0, 30, 30, {}, "constructed", None).to_record()])
    strips = capture(monkeypatch, "evolution_figure")
    write_report(run)
    (_, frames, _, cells, colours, _), = strips
    assert 30 in [step for step, _ in frames] and len(frames) == figures.MAX_EVOLUTION_COLUMNS
    assert cells == {(30, 0): ["hopping"]} and "hopping" in colours
    with Image.open(run / "evolution.png") as strip:
        assert strip.width > 8 * 150
    assert "every such evaluation is shown" in (run / REPORT).read_text()


def test_madgan_samples_are_grouped_by_the_generator_that_made_them(
    tmp_path: Path, tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = tiny_overrides + ["scheme.name=madgan", "scheme.generators=4", "train.steps=40",
                                  "train.eval_samples=1000", "train.report=true"]
    finals, strips, gifs = (capture(monkeypatch, n) for n in ("samples_figure", "evolution_figure", "animation_gif"))
    run = ganscope.Run.create(ganscope.load_config(overrides=overrides), tmp_path / "madgan")
    run.fit(progress=False)
    final = finals[0][1]
    assert final.count == 4 and np.bincount(final.of_sample).tolist() == [250] * 4
    snapshot = strips[0][5]  # snapshots keep 500 of the 1000 samples drawn, spread over all generators
    assert gifs[0][3] == snapshot  # the animation colours its points alike
    assert snapshot.count == 4 and np.bincount(snapshot.of_sample, minlength=4).tolist() == [125] * 4
    saved = np.load(run.run_dir / "snapshots" / "step_000040.npy")
    torch.testing.assert_close(torch.from_numpy(saved), run.sample(1000, key=40)[:, ::2].float())
    assert "coloured by the generator that made them, G1 to G4" in (run.run_dir / REPORT).read_text()
    # The layout is the one `generate` uses: each sample equals its own generator's output.
    scheme = run.scheme
    scheme.train(False)
    z = torch.randn(1, 10, 8)  # one seed, noise.z_dim 8
    made_by = MadGAN.generator_of_samples(MadGANParams(generators=4), 10)
    with torch.no_grad():
        own = torch.stack([g(scheme.body(z)) for g in scheme.generators])  # (k, S, n, 2): every G on every z
    torch.testing.assert_close(scheme.generate(Batch(z)), own[made_by, :, torch.arange(10)].transpose(0, 1))


def test_compare_two_runs_from_the_cli(ring_run: Path, tmp_path: Path, tiny_overrides: list[str], capsys) -> None:
    other = train(tmp_path / "least-squares-ring", tiny_overrides + ["train.steps=40", "objective.name=least-squares"])
    out = tmp_path / "both.html"
    assert main(["report", str(ring_run), str(other), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    data_uris_only(page)
    assert ring_run.name in page and other.name in page
    assert "objective.name" in page  # the config difference is listed
    (ring_run / REPORT).unlink()
    assert main(["report", str(ring_run)]) == 0
    assert (ring_run / REPORT).is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_nd_mixture_report_has_a_tsne_map(tmp_path: Path, tiny_overrides: list[str]) -> None:
    run = train(tmp_path / "mixture5d", tiny_overrides + [
        "data.name=mixture", f"data.centres={json.dumps(CENTRES_5D)}", "data.std=0.1", "train.steps=40",
    ])
    with Image.open(run / "tsne.png") as tsne:
        assert tsne.width > 600 and tsne.height > 200
    page = (run / REPORT).read_text()
    assert "t-SNE map of real and generated samples" in page
    assert "principal components" in page


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; under CI (CI=true) its absence is a failure, not a skip."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


# Injected first in <head>: records console errors, uncaught exceptions and failed loads,
# then on load writes what the browser decoded into the DOM for --dump-dom to print.
PROBE = """<script>
window.gsErrors = [];
const gsConsoleError = console.error.bind(console);
console.error = (...args) => { window.gsErrors.push(args.map(String).join(" ")); gsConsoleError(...args); };
window.addEventListener("error", e => window.gsErrors.push(e.message || "failed to load " + e.target.tagName), true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const out = document.createElement("pre");
  out.id = "gs-probe";
  out.textContent = JSON.stringify({
    widths: images.map(i => i.complete ? i.naturalWidth : 0), errors: window.gsErrors,
    sections: Array.from(document.querySelectorAll("h2")).map(h => h.textContent)});
  document.body.appendChild(out);
});
</script>"""


def render_in_chromium(chromium: str, page: Path, tmp_path: Path) -> dict:
    """What headless Chromium made of `page` (`PROBE`: each image's decoded width, errors,
    section titles); fails when the page did not render or wrote to the browser console."""
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )
    found = re.search(r'<pre id="gs-probe">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, f"chromium did not render the page (exit {result.returncode}): {result.stderr[-2000:]}"
    assert not re.findall(r".*:CONSOLE[:(].*", result.stderr)  # nothing reached the browser console
    return json.loads(html.unescape(found.group(1)))



def test_report_renders_in_headless_chromium(chromium: str, ring_run: Path, tmp_path: Path) -> None:
    probe = render_in_chromium(chromium, ring_run / REPORT, tmp_path)
    assert len(probe["widths"]) == 5 and all(w > 0 for w in probe["widths"]), probe["widths"]
    assert probe["errors"] == []
    assert {"Seeds", "Events", "Samples", "Modes", "Curves"} <= set(probe["sections"])
