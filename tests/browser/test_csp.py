"""Under the Content-Security-Policy, in Debian's chromium: every page of the app, as a visitor, an operator, a
merchant owner and a cashier, the kiosk page with its token and the campaign preview with its kiosk frame, loads
without one CSP violation (console message or `securitypolicyviolation` event); the counter still checks a code and
may use the camera."""

from __future__ import annotations

import pytest

from metropoints.core.db import commit_unit_of_work
from metropoints.kiosk.operations import create_kiosk
from tests.browser.conftest import CHROMIUM_ARGS
from tests.browser.test_kiosk_and_counter import sale  # noqa: F401  (the fixture)
from tests.conftest import SHOP_PASSWORD
from tests.core.test_zh_pages import PASSWORD, build_world, page_urls

pytestmark = pytest.mark.browser

# Not pages: a browser downloads them.
DOWNLOADS = (".csv", ".json", ".svg")
# Runs in every document and frame before its own scripts: each violation is kept on the page and logged.
WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const text = `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(text);
  console.error('CSP violation: ' + text);
});
"""


def watch(context, found: list[str]):
    """A page of `context` whose CSP violations (console and events) are appended to `found`."""
    context.add_init_script(WATCH)
    page = context.new_page()

    def on_console(message) -> None:
        """Keep the console's CSP complaints, with the page they came from."""
        text = message.text
        if "Content Security Policy" in text or "CSP violation" in text:
            found.append(f"{page.url}: {text}")

    page.on("console", on_console)
    return page


def events(page) -> list[str]:
    """The violations the page's documents saw (the main one and its frames)."""
    seen = []
    for frame in page.frames:
        try:
            seen += frame.evaluate("window.__cspViolations || []")
        except Exception:  # a sandboxed frame without scripts keeps none; its violations reach the console
            continue
    return seen


def log_in(page, base: str, email: str, password: str) -> None:
    """Sign in through the login form."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form.form button[type=submit]")


def test_the_watch_sees_a_violation(live_server, browser):
    """The check itself works: an inline script added to a page is blocked and reported."""
    found: list[str] = []
    context = browser.new_context()
    page = watch(context, found)
    page.goto(f"{live_server}/login")
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';
                             document.body.appendChild(s); }""")
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.ran") is None
    assert found and events(page)
    context.close()


def test_every_page_loads_without_a_csp_violation(app, live_server, browser, artifacts):
    """Each GET page of the URL map, for a visitor and each role (its refusals included), then the kiosk page with
    its token in the fragment and the campaign preview with its sandboxed kiosk card: no violation anywhere."""
    world = build_world(app)
    urls, _, unfilled = page_urls(app, world)
    assert not unfilled and len(urls) > 40
    urls = [url for url in urls if not url.split("?")[0].endswith(DOWNLOADS)]
    _, kiosk_token = create_kiosk(station_id="0119", actor_label="test")
    commit_unit_of_work()
    found: list[str] = []
    for role in ("visitor", "operator", "merchant_owner", "cashier"):
        context = browser.new_context(locale="zh-CN")
        page = watch(context, found)
        if role != "visitor":
            log_in(page, live_server, world.users[role].email, PASSWORD)
        for url in urls:
            reply = page.goto(live_server + url)
            assert reply is not None and reply.status < 500, (role, url, reply and reply.status)
            found += [f"{role} {url}: {text}" for text in events(page)]
        if role == "merchant_owner":
            page.goto(f"{live_server}/portal/campaigns/{world.by_argument['campaign_id']}/preview")
            frame = page.frame_locator("iframe.kiosk-preview")
            assert frame.locator(".kiosk-slide-title").inner_text()  # the card drew, with its stylesheet
            page.screenshot(path=str(artifacts / "csp-preview.png"), full_page=True)
            found += [f"preview: {text}" for text in events(page)]
        context.close()
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    page = watch(context, found)
    page.goto(f"{live_server}/kiosk#token={kiosk_token}")
    page.wait_for_selector("#kiosk-station:not(:empty)")
    page.wait_for_timeout(500)  # the QR images and the first rotation
    found += [f"kiosk: {text}" for text in events(page)]
    context.close()
    assert not found, found


def test_the_counter_checks_a_code_under_the_policy(live_server, browser, sale):  # noqa: F811
    """The cashier's counter page takes a typed code (as a USB scanner types it) and shows the verdict, with no
    violation."""
    shop, _, coupon = sale
    found: list[str] = []
    context = browser.new_context(locale="zh-CN")
    page = watch(context, found)
    log_in(page, live_server, shop.cashier.email, SHOP_PASSWORD)
    page.goto(f"{live_server}/portal/counter")
    page.fill("#counter-code", coupon.code)
    page.press("#counter-code", "Enter")
    page.wait_for_function("() => document.getElementById('counter-result').innerText.includes('核销成功')")
    found += events(page)
    context.close()
    assert not found, found


def test_the_counter_page_may_use_the_camera(live_server, sale):  # noqa: F811
    """Permissions-Policy lets our own page open the camera (chromium's fake camera, permission granted): the
    counter's scanning is not blocked by the headers."""
    shop, _, _ = sale
    playwright_api = pytest.importorskip("playwright.sync_api")
    from tests.browser.conftest import CHROMIUM

    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        try:
            page = chromium.new_page()
            log_in(page, live_server, shop.cashier.email, SHOP_PASSWORD)
            page.goto(f"{live_server}/portal/counter")
            assert page.evaluate("document.featurePolicy ? document.featurePolicy.allowsFeature('camera') : true")
            tracks = page.evaluate("""async () => {
                const media = await navigator.mediaDevices.getUserMedia({video: true});
                const n = media.getVideoTracks().length; media.getTracks().forEach((t) => t.stop()); return n; }""")
            assert tracks == 1
            assert not page.evaluate("document.featurePolicy ? document.featurePolicy.allowsFeature('geolocation') "
                                     ": false")
        finally:
            chromium.close()
