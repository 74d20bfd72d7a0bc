"""The built documentation site, opened in real headless Chromium: pages render, pictures load, the model
zoo lists every registered model, the API reference shows the documented classes.

The site comes from ``VISION_SSM_SITE_DIR`` when set (``.ci/run`` builds it there once), else it is built
here with ``mkdocs build --strict``. Screenshots go to ``artifacts/site/`` (git-ignored). Skipped, with the
reason, only when Chromium, chromedriver, selenium or mkdocs is absent (``.ci/setup`` installs them).
"""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest
import timm
from paths import REPO
from timm.models import model_entrypoint

ARTIFACTS = REPO / "artifacts" / "site"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1600"]


def _find(*names):
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    prebuilt = os.environ.get("VISION_SSM_SITE_DIR")
    if prebuilt and (REPO / prebuilt / "index.html").exists():
        return REPO / prebuilt
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def base_url(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver; "
                    ".ci/setup does it on CI)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, base_url, path, shot):
    """Load a page, wait until every picture has finished loading, save a screenshot; return the driver."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url + path)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState === 'complete' && "
                                   "Array.from(document.images).every(i => i.complete)"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    assert "404" not in browser.title, f"{path}: {browser.title}"
    failed = [e["message"] for e in browser.get_log("browser") if e.get("source") == "network"]
    assert failed == [], f"{path}: resources failed to load (the site must not need other hosts): {failed}"
    return browser


def broken_images(browser):
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('article img'))"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))")


def image_count(browser):
    return browser.execute_script("return document.querySelectorAll('article img').length")


def vision_ssm_models():
    return sorted(n for n in timm.list_models() if model_entrypoint(n).__module__.startswith("vision_ssm."))


def test_home_page_renders_with_its_picture(browser, base_url):
    page = open_page(browser, base_url, "", "home")
    assert "vision-ssm" in page.title
    assert image_count(page) >= 1
    assert broken_images(page) == []
    srcs = page.execute_script("return Array.from(document.querySelectorAll('article img')).map(i => i.src)")
    assert any(s.endswith("overview.svg") for s in srcs)
    text = page.find_element("css selector", "article").text
    assert "Why" in text and "The families at a glance" in text


def test_block_page_pictures_load(browser, base_url):
    for path, shot in [("layers/hss_lss/", "block_hss_lss"), ("scan_orders/", "block_scan_orders")]:
        page = open_page(browser, base_url, path, shot)
        assert image_count(page) >= 1, path
        assert broken_images(page) == [], path
    # the equations are typeset by MathJax, served by the site itself (docs/hooks/mathjax.py), not left as TeX
    from selenium.webdriver.support.ui import WebDriverWait

    page = open_page(browser, base_url, "layers/hss_lss/", "block_hss_lss")
    WebDriverWait(page, 30).until(lambda d: d.find_elements("css selector", "article mjx-container"))
    page.save_screenshot(str(ARTIFACTS / "block_hss_lss.png"))
    glyph = page.execute_script("return getComputedStyle(document.querySelector('article mjx-c'), '::before').content")
    assert glyph not in ("none", "", None), "MathJax typeset the equations but drew no glyphs (its styles are missing)"
    raw = page.execute_script("return Array.from(document.querySelectorAll('article .arithmatex'))"
                              ".filter(e => !e.querySelector('mjx-container')).length")
    assert raw == 0, f"{raw} equations on layers/hss_lss/ were not typeset"


def test_model_zoo_lists_every_registered_model(browser, base_url):
    page = open_page(browser, base_url, "models/zoo/", "model_zoo")
    listed = set(page.execute_script(
        "return Array.from(document.querySelectorAll('article table tbody tr td:first-child code'))"
        ".map(c => c.textContent.trim())"))
    expected = set(vision_ssm_models())
    assert expected, "no vision_ssm models are registered"
    assert expected - listed == set(), f"registered models missing from the zoo: {sorted(expected - listed)}"
    assert listed - expected == set(), f"zoo rows that are not registered models: {sorted(listed - expected)}"


def test_api_page_shows_documented_classes(browser, base_url):
    page = open_page(browser, base_url, "api/layers/", "api_layers")
    for ident in ["vision_ssm.layers.ss2d.SS2D", "vision_ssm.layers.vss.VSSBlock", "vision_ssm.layers.hss.HSSBlock",
                  "vision_ssm.layers.mambavision_mixer.MambaVisionMixer", "vision_ssm.layers.mamba.Mamba"]:
        heading = page.find_elements("id", ident)
        assert heading, f"api/layers/ has no heading for {ident}"
        assert heading[0].text.strip().split("(")[0].endswith(ident.rsplit(".", 1)[1]), heading[0].text
    page = open_page(browser, base_url, "api/models/", "api_models")
    assert page.find_elements("id", "vision_ssm.models.vmamba.VMamba")
    assert page.find_elements("id", "vision_ssm.models.complexity.model_complexity")


def test_every_picture_of_the_site_loads(browser, base_url, site):
    pages = sorted(p.parent.relative_to(site).as_posix() for p in site.rglob("index.html")
                   if "<img" in p.read_text(encoding="utf-8", errors="replace"))
    assert len(pages) >= 5, pages
    for path in pages:
        url, shot = ("", "home") if path == "." else (path + "/", path.replace("/", "_"))
        page = open_page(browser, base_url, url, "pictures_" + shot)
        assert broken_images(page) == [], path
