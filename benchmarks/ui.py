"""Web UI benchmark: how long a big Workflow takes to open in the builder, and the frame rate
while dragging a step of it, in headless Chromium (Debian's ``/usr/bin/chromium``).

    .venv/bin/python benchmarks/ui.py [--sizes 10,100,500] [--repeat 3]

Starts ``autoflow serve`` on a temporary folder holding chains of N ``core.log`` steps (each
with a ``ui`` position, as the builder saves them), opens each one's builder and measures the
time from navigation until every step node is on the page and the canvas answers a click
(interactive), then drags a node for about a second and counts animation frames. The
10-step workflow is the baseline measured in the same run; the larger ones print their ratio
to it. Targets (issue 15): ≤ 1.5 s to interactive and ≥ 30 frames/s while dragging at 500
steps. Needs the built UI (``bash hack/ui.sh build``). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]


def chain(n: int) -> str:
    lines = [
        "apiVersion: autoflow.dev/v1alpha1",
        "kind: Workflow",
        "metadata:",
        f"  name: chain{n}",
        "spec:",
        "  steps:",
    ]
    for i in range(n):
        lines += [
            f"    - id: s{i}",
            "      uses: core.log",
            f"      needs: [{f's{i - 1}' if i else ''}]",
            "      with:",
            f'        message: "step {i}"',
            f"      ui: {{x: {(i % 20) * 260}, y: {(i // 20) * 120}}}",
        ]
    return "\n".join(lines) + "\n"


def open_builder(page: Page, base: str, n: int) -> float:
    page.goto(base + "#/workflows")
    page.get_by_role("heading", name="Workflows").wait_for()
    start = time.perf_counter()
    page.goto(f"{base}#/workflows/default/chain{n}")
    page.locator('.react-flow__node[data-id="s0"]').wait_for()
    page.locator('.react-flow__node[data-id="s0"]').click()
    page.get_by_role("complementary", name="Step s0").wait_for()
    return time.perf_counter() - start


def drag_fps(page: Page) -> float:
    node = page.locator('.react-flow__node[data-id="s0"]')
    box = node.bounding_box()
    assert box is not None
    page.evaluate(
        "() => { window.__frames = 0; const f = () => { window.__frames++; "
        "window.__raf = requestAnimationFrame(f); }; window.__raf = requestAnimationFrame(f); }"
    )
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    start = time.perf_counter()
    for k in range(60):
        page.mouse.move(x + k * 3, y + (k % 10) * 2)
    page.mouse.up()
    seconds = time.perf_counter() - start
    frames = page.evaluate("() => { cancelAnimationFrame(window.__raf); return window.__frames; }")
    return float(frames) / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not (REPO / "webui" / "dist" / "index.html").is_file():
        print("build the UI first: bash hack/ui.sh build", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sizes:
            (folder / f"chain{n}.yaml").write_text(chain(n))
        log = folder.parent / f"{folder.name}-serve.log"
        cmd = [sys.executable, "-P", "-m", "autoflow.cli.main", "serve", str(folder)]
        with log.open("w") as out:
            proc = subprocess.Popen([*cmd, "--port", "0"], stdout=out, stderr=subprocess.STDOUT)
        try:
            url = None
            for _ in range(600):
                m = re.search(r"web UI\s+(\S+)", log.read_text())
                if m:
                    url = m.group(1)
                    break
                time.sleep(0.05)
            if url is None:
                print(log.read_text(), file=sys.stderr)
                return 1
            base = url.split("?")[0]
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url)
                page.get_by_role("heading", name="Workflows").wait_for()
                results: dict[int, tuple[float, float]] = {}
                for n in sizes:
                    opens = [open_builder(page, base, n) for _ in range(args.repeat)]
                    fps = [drag_fps(page) for _ in range(args.repeat)]
                    results[n] = (statistics.median(opens), statistics.median(fps))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
            log.unlink(missing_ok=True)
    base_open, base_fps = results[sizes[0]]
    print(
        f"{'steps':>6} {'interactive s':>14} {'x baseline':>11} {'drag fps':>9} {'x baseline':>11}"
    )
    for n in sizes:
        t, rate = results[n]
        print(f"{n:>6} {t:>14.3f} {t / base_open:>11.2f} {rate:>9.1f} {rate / base_fps:>11.2f}")
    print(f"baseline: the {sizes[0]}-step workflow; targets at 500 steps: <= 1.5 s, >= 30 fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
