"""The demo page in a real headless browser (Chromium, driven by Selenium through chromedriver).

It draws strokes with mouse events on the canvases, registers two classes, draws a query, clicks
"Classify", reads the predicted label from the page and saves a screenshot: to
``$MATCHNET_DEMO_SCREENSHOT`` when set, else into the test's temporary folder. The README's
screenshot is made with

    MATCHNET_DEMO_SCREENSHOT=docs/demo.png python -m pytest tests/test_demo_browser.py

The browser is ``$MATCHNET_CHROMIUM`` (default: ``chromium`` on the PATH) and its driver
``$MATCHNET_CHROMEDRIVER`` (default: ``chromedriver``); on Debian ``apt-get install chromium
chromium-driver`` provides both. When the browser cannot start the test is skipped, except with
``$CI`` set, where it fails.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from helpers.demo_server import serve_shipped

pytestmark = pytest.mark.e2e  # a browser and its driver in processes of their own

TIMEOUT = 30
SYNC_S = 1.0
WINDOW = (1400, 1650)
Stroke = list[tuple[float, float]]  # points as fractions of the canvas width and height


def start_browser() -> Any:
    """Headless Chromium; skips (fails under $CI) when it cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        binary = (
            os.environ.get("MATCHNET_CHROMIUM")
            or shutil.which("chromium")
            or shutil.which("chromium-browser")
        )
        driver = os.environ.get("MATCHNET_CHROMEDRIVER") or shutil.which("chromedriver")
        if not binary or not driver:
            raise FileNotFoundError("chromium or chromedriver is not on the PATH")
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--enable-unsafe-swiftshader",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
        ):
            options.add_argument(arg)
        return webdriver.Chrome(options=options, service=Service(driver))
    except Exception as err:  # any failure to start the browser, reported below
        message = (
            f"Cannot start headless Chromium for the browser test ({type(err).__name__}: {err}). Install it "
            "(Debian: apt-get install chromium chromium-driver) or point MATCHNET_CHROMIUM and "
            "MATCHNET_CHROMEDRIVER at a browser and its driver."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_shipped() as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, what: str) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, TIMEOUT).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"Timed out after {TIMEOUT} s waiting for {what}; page text:\n{page_text(driver)}"
        ) from None


def page_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def text_of(driver: Any, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, elem_id).text


def drawing_canvas(driver: Any, elem_id: str) -> Any:
    """The largest visible <canvas> of a Sketchpad."""
    from selenium.webdriver.common.by import By

    def find(d: Any) -> Any:
        shown = [c for c in d.find_elements(By.CSS_SELECTOR, f"#{elem_id} canvas") if c.is_displayed()]
        shown = [c for c in shown if c.size["width"] > 100 and c.size["height"] > 100]
        return max(shown, key=lambda c: c.size["width"] * c.size["height"]) if shown else False

    return wait_for(driver, find, f"the drawing canvas of #{elem_id}")


def draw(driver: Any, elem_id: str, strokes: list[Stroke]) -> None:
    """Draw each stroke with the mouse: pick the brush, press, move through its points, release.

    Stroke points are fractions of a square in the middle of the canvas element (inside the
    drawing area, which Gradio centres and scales to fit).
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = drawing_canvas(driver, elem_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
    time.sleep(0.5)  # let the canvas settle (e.g. after "Clear canvas")
    if "select the draw tool" in text_of(driver, elem_id):
        driver.find_element(By.CSS_SELECTOR, f"#{elem_id} button[aria-label='Brush']").click()
        wait_for(
            driver, lambda d: "select the draw tool" not in text_of(d, elem_id), "the brush to be picked"
        )
    side = 0.7 * min(canvas.size["width"], canvas.size["height"])

    def offset(point: tuple[float, float]) -> tuple[int, int]:  # from the canvas centre
        return round((point[0] - 0.5) * side), round((point[1] - 0.5) * side)

    for stroke in strokes:
        chain = ActionChains(driver, duration=10)
        chain.move_to_element_with_offset(canvas, *offset(stroke[0])).click_and_hold()
        for point in stroke[1:]:  # each move costs a rendered frame: strokes are polylines of few points
            chain.move_to_element_with_offset(canvas, *offset(point))
        chain.release().perform()
    time.sleep(SYNC_S)  # the editor uploads the drawing in the background after the strokes


def circle(cx: float, cy: float, r: float, points: int = 24) -> Stroke:
    return [
        (cx + r * math.cos(2 * math.pi * k / points), cy + r * math.sin(2 * math.pi * k / points))
        for k in range(points + 1)
    ]


CROSS = [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]]
RING = [circle(0.5, 0.5, 0.3, points=8)]
QUERY = [circle(0.52, 0.5, 0.27, points=8)]  # a smaller ring, a little to the right: a new drawing of "ring"


def add_example(driver: Any, strokes: list[Stroke], label: str, images: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    draw(driver, "demo-support-canvas", strokes)
    box = driver.find_element(By.CSS_SELECTOR, "#demo-label textarea, #demo-label input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(label)
    driver.find_element(By.ID, "demo-add").click()
    wait_for(
        driver,
        lambda d: f"Support set: {images} image" in text_of(d, "demo-status"),
        f"the support set to hold {images} image(s)",
    )
    driver.find_element(By.CSS_SELECTOR, "#demo-support-canvas button[aria-label='Clear canvas']").click()


def test_draw_register_classify_in_a_real_browser(browser: Any, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server)
    wait_for(browser, lambda d: "Draw an example" in page_text(d), "the page to load")
    add_example(browser, CROSS, "cross", 1)
    add_example(browser, RING, "ring", 2)
    assert "2 classes (cross x1, ring x1)" in text_of(browser, "demo-status")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#demo-gallery img")) == 2

    draw(browser, "demo-query-canvas", QUERY)
    browser.find_element(By.ID, "demo-classify").click()
    found = wait_for(
        browser,
        lambda d: re.search(r"Prediction: (\S+) \(P = ([0-9.]+)\)", text_of(d, "demo-prediction")),
        "the prediction",
    )
    assert found.group(1) == "ring", text_of(browser, "demo-prediction")
    wait_for(browser, lambda d: "Classified the drawing" in text_of(d, "demo-status"), "the status line")
    attention = text_of(browser, "demo-attention")
    assert attention.index("ring") < attention.index("cross")  # highest attention first
    assert len(browser.find_elements(By.CSS_SELECTOR, "#demo-attention img")) == 2

    screenshot = Path(os.environ.get("MATCHNET_DEMO_SCREENSHOT") or tmp_path / "demo.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0);")
    assert browser.save_screenshot(str(screenshot))
    with Image.open(screenshot) as shot:
        shot.load()
        small = shot.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(screenshot, optimize=True)
    with Image.open(screenshot) as shot:
        assert shot.width == WINDOW[0]
