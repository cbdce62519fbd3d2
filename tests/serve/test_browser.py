"""``liquid-jax serve`` driven by headless Chromium: a caption gives images in the page,
a non-image upload gives a message, a chat message gets a reply.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the
``selenium`` package (the ``[test]`` extra); skipped, saying which is missing, otherwise.
``LIQUID_SERVE_SCREENSHOT=docs/serve.png`` also saves a screenshot of the page.
"""

import base64
import io
import os
import shutil

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,1260",
]


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"no {path}: apt-get install {package} to run the browser test"
    try:
        import selenium  # noqa: F401 (deferred: the optional browser driver of the test extra)
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def browser(tmp_path_factory, serve_url):
    # deferred: the optional browser driver of the test extra
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.get(serve_url)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout=90.0):
    # deferred: the optional browser driver of the test extra
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def by_id(driver, name):
    # deferred: the optional browser driver of the test extra
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def test_caption_gives_images_in_the_page(browser):
    # deferred: the optional browser driver of the test extra
    from selenium.webdriver.common.by import By

    wait_for(browser, lambda d: by_id(d, "t2i-top-k").get_attribute("value") == "64")
    by_id(browser, "t2i-prompt").send_keys("w1 w2 w3")
    count = by_id(browser, "t2i-num-images")
    count.clear()
    count.send_keys("2")
    by_id(browser, "t2i-go").click()
    images = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#t2i-images img"))
    assert len(images) == 2
    for img in images:
        head, data = img.get_attribute("src").split(",", 1)
        assert head == "data:image/png;base64"
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.size == (16, 16) and image.mode == "RGB"
        assert browser.execute_script("return arguments[0].naturalWidth", img) == 16
    assert by_id(browser, "t2i-progress").get_attribute("value") == "1"
    assert by_id(browser, "t2i-status").text.startswith("done in")


def test_non_image_upload_is_answered_with_a_message(browser, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are notes, not pixels\n")
    by_id(browser, "i2t-file").send_keys(str(not_an_image))
    by_id(browser, "i2t-go").click()
    status = by_id(browser, "i2t-status")
    wait_for(browser, lambda d: "not an image file" in status.text)
    assert "error" in status.get_attribute("class")
    assert by_id(browser, "i2t-answer").text == ""


def test_chat_message_gets_a_reply_then_screenshot(browser, tmp_path):
    # deferred: the optional browser driver of the test extra
    from selenium.webdriver.common.by import By

    by_id(browser, "chat-input").send_keys("w4 w5")
    by_id(browser, "chat-go").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log p.model"))
    assert by_id(browser, "chat-status").text.startswith("done in")
    target = os.environ.get("LIQUID_SERVE_SCREENSHOT")
    if target:  # the whole page: the window grown to the document's height first
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            dict(width=1000, height=height, deviceScaleFactor=1, mobile=False),
        )
        assert browser.save_screenshot(os.path.abspath(target))
