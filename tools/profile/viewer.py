"""Flame graphs for people: one self-contained speedscope HTML file per collapsed-stacks file.

Why speedscope: every profiler here ends in collapsed stacks, and speedscope shows those (CPU
samples, instructions or bytes alike) as a zoomable flame graph, a left-heavy view and a sortable
table of self/total, which a static SVG cannot. It is a well-kept MIT package on npm; `make -C
tools/profile setup` vendors its release build, and this module inlines its script, stylesheet and
font plus the profile itself, so the page needs no network and no server. py-spy's SVG covers
Python only; flamegraph.pl is not packaged by Debian here; inferno would need a Rust build.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from tools.profile.stacks import read_collapsed

VIEWER = Path(__file__).parent / "viewer"
SETUP_HINT = "run `make -C tools/profile setup` to vendor the speedscope viewer"


def viewer_ready() -> bool:
    return all((VIEWER / name).is_file() for name in ("speedscope.js", "speedscope.css"))


def speedscope_json(collapsed: Path, name: str, unit: str = "none") -> dict:
    """speedscope's own file format: one sampled profile whose samples are the distinct stacks."""
    frames: list[dict[str, str]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, weight in read_collapsed(collapsed).items():
        ids = []
        for frame in stack:
            if frame not in index:
                index[frame] = len(frames)
                frames.append({"name": frame})
            ids.append(index[frame])
        samples.append(ids)
        weights.append(weight)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [{"type": "sampled", "name": name, "unit": unit, "startValue": 0,
                      "endValue": sum(weights), "samples": samples, "weights": weights}],
        "name": name, "activeProfileIndex": 0, "exporter": "nightshift",
    }


def render_html(collapsed: Path, out: Path, *, title: str, unit: str = "none") -> Path | None:
    """Write the page; None when the viewer has not been vendored (the caller warns)."""
    if not viewer_ready():
        return None
    profile = json.dumps(speedscope_json(collapsed, title, unit), separators=(",", ":"))
    encoded = base64.b64encode(profile.encode()).decode()
    font = base64.b64encode((VIEWER / "SourceCodePro-Regular.woff2").read_bytes()).decode()
    css = (VIEWER / "speedscope.css").read_text()
    css = re.sub(r'url\("?\./SourceCodePro[^")]*"?\)', f'url("data:font/woff2;base64,{font}")', css)
    script = (VIEWER / "speedscope.js").read_text().replace("</script", "<\\/script")
    # speedscope exposes `window.speedscope.loadFileFromBase64` only when the URL names a local
    # profile (its CLI's mechanism); the hash is set before it starts, the data passed in once it is up.
    out.write_text(f"""<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>{html.escape(title)}</title>
<style>{css}</style>
<script>if (!location.hash) location.hash = "#localProfilePath=nightshift-embedded-profile&view=left-heavy";</script>
</head><body>
<script>{script}</script>
<script>
(function load(tries) {{
  if (window.speedscope && window.speedscope.loadFileFromBase64) {{
    window.speedscope.loadFileFromBase64({json.dumps(title + ".speedscope.json")}, "{encoded}");
  }} else if (tries > 0) {{ setTimeout(function () {{ load(tries - 1); }}, 50); }}
}})(200);
</script>
</body></html>
""")
    return out
