"""`specc report` opened in a real browser (headless Chromium, Debian's `chromium`, which
.ci/run installs): the page is self-contained, its plots lay out (the browser measures
every path), and its screenshot shows the band, the signal lines, the escaping layer and
the histograms under their densities."""

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import HERE_SPECS, SPECS, build, specc_bin, summary

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

if BROWSER is None:
    if os.environ.get("SPECC_NO_BROWSER"):
        # .ci/run sets this only where apt-get could not install chromium, and says so loudly.
        pytest.skip("NO BROWSER: chromium could not be installed; the report is untested in a browser", allow_module_level=True)
    pytest.fail("chromium not found: install Debian's `chromium` (.ci/run does)", pytrace=False)

# Colours of the page's stylesheet (src/report/html.rs).
FORWARD, BAND, BAD, HIST = (0x1F, 0x6F, 0xD1), (0xE3, 0xF3, 0xE6), (0xC8, 0x1E, 0x3A), (0xB9, 0xC7, 0xD8)

# Run in the page after load: every SVG mark's laid-out size, written into the DOM.
MEASURE = """<script>
window.addEventListener('load', () => {
  const box = e => { const b = e.getBBox(); return [b.x, b.y, b.width, b.height]; };
  const all = sel => [...document.querySelectorAll(sel)];
  const out = {
    forward: all('svg.signal path.forward').map(p => p.getTotalLength()),
    backward: all('svg.signal path.backward').map(p => p.getTotalLength()),
    band: all('svg.signal rect.band').map(box),
    escapes: all('svg.signal circle.escape').length,
    flags: all('svg.signal text.flag').map(t => [t.textContent, box(t)]),
    hist: all('svg.density path.hist').map(box),
    pdf: all('svg.density path.pdf').map(box),
    charts: all('svg').map(s => s.getBoundingClientRect().width),
  };
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def browser(*args):
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def report(spec, out, *extra):
    res = subprocess.run([specc_bin(), "report", str(spec), "-o", str(out), *extra], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out.read_text()


def measured(html, tmp_path):
    """What the browser laid out for the page `html`."""
    page = tmp_path / "measure.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))
    dom = browser("--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    m = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(html_path, png, height=1400):
    browser(f"--window-size=1280,{height}", f"--screenshot={png}", html_path.as_uri())
    from PIL import Image

    return Image.open(png).convert("RGB")


def share(img, rgb, tol=10):
    """The fraction of the image's pixels within `tol` of colour `rgb`."""
    px = list(img.get_flattened_data()) if hasattr(img, "get_flattened_data") else list(img.getdata())
    near = sum(1 for p in px if all(abs(a - b) <= tol for a, b in zip(p, rgb)))
    return near / len(px)


def test_the_page_is_self_contained(tmp_path):
    html = report(SPECS / "gpt2-tiny.yaml", tmp_path / "r.html")
    # Nothing is fetched: no external URL in any src or href, no CDN.
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html and "@import" not in html
    assert html.count("<svg") >= 1 + len(json.loads(subprocess.run([specc_bin(), "summary", "--format", "json", str(SPECS / "gpt2-tiny.yaml")], capture_output=True, text=True).stdout)["tensors"])


def test_a_zoo_report_with_weights_draws_its_signal_and_histograms(tmp_path):
    spec = SPECS / "resnet18.yaml"
    weights = build(spec, tmp_path / "r.safetensors")
    html = report(spec, tmp_path / "r.html", "--weights", str(weights))
    m = measured(html, tmp_path)
    # One forward line through the layers, laid out with real length, and the band.
    assert len(m["forward"]) == 1 and m["forward"][0] > 500, m["forward"]
    assert len(m["backward"]) == 1 and m["backward"][0] > 100
    (band,) = m["band"]
    assert band[2] > 800 and band[3] > 50, band
    assert m["escapes"] == 0 and m["flags"] == []
    # A histogram of every tensor, and a density curve over each random one (20 convs'
    # normal, fc's uniform weight and bias; the other 100 are constants, drawn as spikes).
    laws = [t["initializer"]["distribution"] for t in summary(spec)["tensors"]]
    assert len(m["hist"]) == len(laws) == 122, len(m["hist"])
    assert len(m["pdf"]) == sum(law.startswith(("N(", "U")) for law in laws) == 22, len(m["pdf"])
    assert all(b[2] > 300 and b[3] > 30 for b in m["pdf"]), m["pdf"]
    assert all(w > 300 for w in m["charts"])
    img = screenshot(tmp_path / "r.html", tmp_path / "r.png", height=2600)
    assert len(img.getcolors(1 << 24)) > 200, "the screenshot is blank"
    assert share(img, BAND) > 0.02, "no band"
    assert share(img, FORWARD, tol=30) > 0.0005, "no forward line"
    assert share(img, HIST) > 0.01, "no histograms"


def test_an_exploding_spec_marks_the_layer_that_leaves_the_band(tmp_path):
    spec = HERE_SPECS / "exploding_mlp.yaml"
    html = report(spec, tmp_path / "e.html")
    m = measured(html, tmp_path)
    (band,) = m["band"]
    # fc4 is flagged, its label is drawn above the band (smaller y is higher).
    assert [f[0] for f in m["flags"]] == ["fc4 leaves the band"], m["flags"]
    assert m["flags"][0][1][1] < band[1] + 20
    assert m["escapes"] >= 3  # forward at fc4, fc5, out
    # The lint with its spec line, the offending text marked.
    assert "exploding-signal" in html
    assert re.search(r"<mark>dense</mark>, units: 512, activation: relu, kernel_initializer: \{name: normal, stddev: 1.0\}", html)
    img = screenshot(tmp_path / "e.html", tmp_path / "e.png", height=900)
    assert share(img, BAD, tol=25) > 0.0005, "no escape marks"
    assert share(img, BAND) > 0.02
