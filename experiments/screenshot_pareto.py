"""Screenshot the ``pareto.html`` page of a results folder in headless Chromium.

Usage::

    python experiments/screenshot_pareto.py RESULTS_DIR [--out docs/img/pareto_page.png] [--hover-key KEY | --no-hover]

It runs ``snn-nas pareto RESULTS_DIR`` (which rewrites ``pareto.html`` and the other pareto files
of that folder), copies the page to a temporary file with a small script that opens the hover
label of one point (``--hover-key``, default: the cheapest search-front point; a static
screenshot shows no hover otherwise), and renders it with::

    chromium --headless --no-sandbox --disable-gpu ... --screenshot=OUT --window-size=1200,900 file://PAGE

``docs/img/pareto_page.png`` was made from a real search folder, not a hand-made table: a tiny
search of the bundled quick experiment with its seed baselines (the default), on 2 CPU cores::

    snn-nas search quick --num-samples 12 --name shot --results-dir /tmp/snn_shot --no-progress
    snn-nas retrain /tmp/snn_shot/shot --key 1767e291e9c2 --epochs 3   # a test accuracy to show
    python experiments/screenshot_pareto.py /tmp/snn_shot/shot --hover-key 1c87f21292a7

(12 trials and the two baselines in 216 s, the retraining in 6 minutes.) The hovered trial lies
in an empty part of the plot, so that its label hides no front member or baseline.

Chromium is not a Python dependency. Install it with your system's package manager, e.g.
``apt-get install -y chromium`` on Debian/Ubuntu, or point ``--chromium`` (or the ``CHROMIUM``
environment variable) at a Chrome/Chromium binary.
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

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = "1200,900"

# once plotly has drawn, opens the hover label of the point whose key is KEY (null: the cheapest
# point of the search front)
HOVER_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var key = KEY, gd = document.querySelector(".plotly-graph-div");
  if (!gd || !gd.data) { return; }
  for (var i = 0; i < gd.data.length; i++) {
    var texts = gd.data[i].hovertext || [], xs = gd.data[i].x, best = -1;
    for (var k = 0; k < texts.length; k++) {
      if (key ? texts[k].indexOf("key " + key) === 0 : gd.data[i].name === "search front"
          && (best < 0 || xs[k] < xs[best])) { best = k; }
    }
    if (best >= 0) { Plotly.Fx.hover(gd, [{curveNumber: i, pointNumber: best}]); return; }
  }
});
</script>
"""


def find_chromium(explicit: str | None) -> str:
    """The Chromium binary to use, or exit with a message saying how to install one."""
    for name in (explicit, os.environ.get("CHROMIUM"), *CANDIDATES):
        if name and (path := shutil.which(name)):
            return path
    sys.exit(
        "screenshot_pareto: no Chromium found (tried " + ", ".join(CANDIDATES) + "). Install it, e.g. "
        "'apt-get install -y chromium' on Debian/Ubuntu, or pass --chromium /path/to/chrome."
    )


def screenshot(page: Path, out: Path, chromium: str, *, window: str = WINDOW) -> None:
    """Render ``page`` (an HTML file) into the PNG ``out`` with headless ``chromium``."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",  # let plotly draw and the hover script run
            f"--user-data-dir={profile}",
            f"--screenshot={out.resolve()}",
            f"--window-size={window}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"screenshot_pareto: chromium failed ({done.returncode}):\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a folder written by 'snn-nas search'")
    parser.add_argument("--out", type=Path, default=Path("docs/img/pareto_page.png"), help="the PNG to write")
    parser.add_argument("--chromium", default=None, help="Chromium/Chrome binary (default: found on PATH)")
    hover = parser.add_mutually_exclusive_group()
    hover.add_argument(
        "--hover-key", default=None, help="open the hover label of this trial (default: cheapest front point)"
    )
    hover.add_argument("--no-hover", action="store_true", help="do not open a hover label")
    parser.add_argument("--window", default=WINDOW, help=f"window size W,H in pixels (default: {WINDOW})")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    from snn_nas.cli.main import main as snn_nas

    code = snn_nas(["pareto", str(args.results_dir)])
    if code != 0:
        return code
    html = (args.results_dir / "pareto.html").read_text(encoding="utf-8")
    if not args.no_hover:
        script = HOVER_SCRIPT.replace("KEY", json.dumps(args.hover_key))
        html = html.replace("</body>", script + "</body>", 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pareto-page-") as tmp:
        page = Path(tmp) / "pareto.html"
        page.write_text(html, encoding="utf-8")
        screenshot(page, args.out, chromium, window=args.window)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
