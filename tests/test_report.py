"""advland report RUN: one self-contained HTML file with every saved result, figures and tables; the
reproduce report is a page of the same machinery. The browser test opens both in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from advland.cli import main
from advland.config import load_config
from advland.reproduce.common import Finding
from advland.report.run import build_run_page
from advland.reproduce.report import write_report
from advland.run import Run
from advland.stats import paired_test
from advland.train import Trainer

FAST = ["epochs=2", "threat.steps=1", "eval.steps=1", "eval.test_n=20", "data.batch_size=128", "track.n=32",
        "track.curve_every=1", "track.curve_steps=3", "track.grad_norm=true"]
ANALYSES = [
    ["landscape", "--dims", "2", "--steps", "3", "--n", "16", "--metric", "clean_loss,adv_acc", "--attack-steps", "1"],
    ["landscape", "--dims", "1", "--steps", "3", "--n", "16"],
    ["interpolate", "--steps", "3", "--n", "16"],
    ["hessian", "--loss", "clean", "--top-k", "2", "--n", "16", "--density", "--density-probes", "1",
     "--density-steps", "4", "--blocks"],
    ["gradients", "--n", "16", "--directions", "1"],
    ["flatness", "--n", "16", "--samples", "1", "--attack-steps", "1"],
]
# figures each saved file draws: 2-D surface (2 metrics x surface + contour), 1-D curve, interpolation,
# hessian (eigenvalues, density, blocks), gradients, flatness; training (loss, accuracy, schedules) + tracked
# (grad_norm, curve_sharpness) + tracked curves (clean_loss, adv_loss by epoch)
EXPECTED_FIGURES = 4 + 1 + 1 + 3 + 1 + 1 + 3 + 2 + 2


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    Trainer(load_config("digits/at", [f"out_dir={out}", "name=r", *FAST]), progress=False).fit()
    run = out / "r"
    for argv in ANALYSES:
        assert main([argv[0], str(run), *argv[1:], *(["--no-progress"] if argv[0] in ("landscape", "interpolate") else [])]) == 0
    assert main(["eval", str(run), "--attacks", "pgd", "--steps", "2", "--n", "20", "--no-progress"]) == 0
    assert main(["report", str(run)]) == 0
    return run


def test_the_run_report_holds_every_result_offline(analysed_run):
    page = (analysed_run / "report.html").read_text()
    assert len(re.findall(r'<div id="figure-\d+" class="plotly-graph-div"', page)) == EXPECTED_FIGURES
    assert page.count("<script") >= 1 and not re.search(r'<script[^>]+src=|<link[^>]+href="http', page)
    evaluation = json.loads(next(analysed_run.glob("eval_*.json")).read_text())
    for check in evaluation["sanity_checks"]:
        assert check["name"] in page
    assert all(f"<td>{name}</td><td>{value:.4g}</td>" in page for name, value in evaluation["accuracy"].items())
    hessian = json.loads((analysed_run / "landscape" / "hessian_clean_train.json").read_text())
    assert f"{hessian['top_eigenvalues'][0]:.4g}" in page
    for section in ("Config", "Summary", "Training", "Evaluation", "Analyses", "tracked during training"):
        assert section in page


def test_the_run_report_leads_with_the_headline_and_folds_the_config_at_the_end(analysed_run):
    page = (analysed_run / "report.html").read_text()
    summary = json.loads((analysed_run / "summary.json").read_text())
    evaluation = json.loads(next(analysed_run.glob("eval_*_best.json")).read_text())
    headline = page[page.index("<h2>Headline</h2>"):page.index("<h2>Summary</h2>")]
    assert page.index("<h2>Headline</h2>") < page.index("<h2>Summary</h2>") < page.index("<h2>Config</h2>")
    assert f"selected weights: epoch {summary['best_epoch']} of {summary['epochs']}" in headline
    low, high = evaluation["interval_95"]["pgd2"]
    assert f"{100 * low:.2f} to {100 * high:.2f}" in headline and "sanity checks passed" in headline
    low, high = summary["test_robust_acc_ci"]
    assert f"{100 * low:.2f} to {100 * high:.2f}" in headline
    assert "<details><summary>config.yaml" in page[page.index("<h2>Config</h2>"):]


def test_report_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def _reproduce_report(folder: Path, png: Path) -> Path:
    (folder / "figures").mkdir(parents=True)
    shutil.copy(png, folder / "figures" / "curves.png")
    test = paired_test([0.02, 0.03, 0.05], "robust accuracy: PAS minus AT").as_dict()
    finding = Finding("a", "liu2020", "a claim with *emphasis*", {"ratio": (1.5, 0.2)}, {"seeds": 3},
                      {"condition": "a regime", "measured": {"x": 1.0}, "met": True}, test,
                      {"holds": test["p_value"], "does_not_hold": 1.0, "holds_holm": test["p_value"],
                       "does_not_hold_holm": 1.0}, "because | it does", "inconclusive", ["curves.png"])
    meta = {"papers": "liu2020", "data": "digits", "budget": "tiny", "device": "cpu", "seconds": 1.0}
    return next(p for p in write_report(folder, [finding], meta) if p.suffix == ".html")


def test_the_reproduce_report_is_rendered_markdown_with_inlined_figures(analysed_run, tmp_path):
    page = _reproduce_report(tmp_path / "rep", analysed_run / "curves.png").read_text()
    assert "<table>" in page and "<em>emphasis</em>" in page and "data:image/png;base64," in page
    test = json.loads((tmp_path / "rep" / "findings.json").read_text())["findings"][0]["test"]
    assert f"p = {test['p_value']:.3g}" in page  # the test columns of the summary table
    assert 'src="figures/' not in page


CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader"]


def _colors(png: bytes) -> int:
    import io

    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def test_both_reports_render_in_a_real_browser(analysed_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    reproduce_html = _reproduce_report(tmp_path / "rep", analysed_run / "curves.png")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for html_file, figures, images in ((analysed_run / "report.html", EXPECTED_FIGURES, 0), (reproduce_html, 0, 1)):
                page = browser.new_page()
                page.set_default_timeout(180_000)  # a 5 MB page on 2 loaded cores took over 30 s to load
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(html_file.as_uri(), wait_until="load")
                page.wait_for_timeout(1000)
                drawn = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map(d =>
                    [...d.querySelectorAll('canvas')].some(c => c.width > 0 && c.height > 0)
                    || [...d.querySelectorAll('.trace path, .contourlayer path')]
                        .some(p => (p.getAttribute('d') || '').length > 2))""")
                assert drawn == [True] * figures, (html_file.name, drawn)
                for canvas in page.locator(".plotly-graph-div .gl-container canvas").all():  # WebGL: 3-D surfaces
                    assert _colors(canvas.screenshot()) > 50  # a blank canvas has one colour, a Viridis surface many
                loaded = page.evaluate("() => [...document.images].map(i => i.complete && i.naturalWidth > 0)")
                assert loaded == [True] * images
                assert errors == [], errors
                page.close()
        finally:
            browser.close()


def test_an_analysis_saved_from_python_reaches_the_report(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    run.config_path.write_text("name: r\n")
    (path,) = run.save_analysis("flatness", "test", {"n": 4, "average": {"value": 0.25}, "worst": {"value": 0.5}})
    assert path == run.path / "landscape" / "flatness_test.json"
    assert run.analyses() == [("flatness", path)]
    html = build_run_page(run.path).render()
    assert "flatness_test" in html and "flatness of the robust loss" in html
