"""Render a real ``--polygraphy-report`` page in headless Chromium and save a screenshot.

Not a test (CI has no Chromium): run it after changing the HTML report, then look at the
screenshot. It builds a small project in a temporary folder with every kind of test the
page must list (an accuracy failure with its detail and images, a test that fails before
comparing, a setup error, a collection error, a skip, an xfail, a pass, long test ids and
tiny outputs), runs pytest on it with ``--polygraphy-report``, and calls Chromium::

    python bench/check_report_chromium.py [--out DIR] [--width 1400] [--height 2400]

It prints the report's path and the screenshot's, and fails when Chromium is missing
(Debian: ``apt-get install -y chromium``), when pytest did not count every test in the
JSON, or when the screenshot is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.plugin import harness  # noqa: E402

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def build_project(folder: Path) -> None:
    deep = folder / "models" / "paddle" / "ocr" / "v4"
    for kind in ("det", "rec"):
        harness.save(harness.exp_sigmoid_model(2), deep / f"ch_PP-OCRv4_{kind}_infer.onnx")
    harness.save(harness.scale_model(), folder / "models" / "tiny.onnx")
    (folder / "test_kinds.py").write_text(harness.EVERY_KIND_OF_TEST)
    (folder / "test_broken.py").write_text("import nonexistent_module\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="report-")))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    if browser is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 2
    project = args.out / "project"
    build_project(project)
    report = args.out / "acc.html"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "models", "test_kinds.py",
         "test_broken.py", "--continue-on-collection-errors", "--onnxrt", "--onnxref",
         "--polygraphy-precisions", "fp32", "fp16", "--polygraphy-rtol", "1e-5",
         "--polygraphy-atol", "1e-5", "--polygraphy-report", str(report)],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(run.stdout.splitlines()[-1] if run.stdout else run.stderr)
    data = json.loads(report.with_suffix(".json").read_text())
    print("report:", report, "| tests:", data["summary"]["tests"], data["summary"]["outcomes"])
    screenshot = args.out / "acc.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--hide-scrollbars",
         f"--window-size={args.width},{args.height}", f"--screenshot={screenshot}",
         report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    if not screenshot.exists() or screenshot.stat().st_size < 10_000:
        print(f"screenshot {screenshot} is missing or empty", file=sys.stderr)
        return 1
    print("screenshot:", screenshot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
