"""The full-screen kiosk page and the campaign QR codes it shows. Public: nobody logs in on a kiosk; the page reads
the kiosk feed with the token it was given once in its URL fragment (kept by kiosk.js, never sent in a page URL)."""

from __future__ import annotations

import hashlib
import io

import segno
from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import force_locale, gettext

from metropoints.campaigns import catalogue
from metropoints.core.errors import NotFound

bp = Blueprint("kiosk", __name__, url_prefix="/kiosk")

DEFAULT_RIDER_APP_URL = "https://metro-points.example/app"
QR_MAX_AGE = 3600  # a campaign's QR never changes; the feed decides which campaigns are shown


def N_(text: str) -> str:
    """Mark a label for extraction (pybabel's default keywords); it is translated when the page is drawn."""
    return text


# The page's labels: the English msgid (translated through the zh catalogue) and the Chinese shown until the
# catalogue has that msgid, so the kiosk speaks Chinese from its first day.
LABELS: dict[str, tuple[str, str]] = {
    "title": (N_("Metro Carbon Points"), "地铁碳积分"),
    "featured": (N_("Featured at this station"), "本站推荐"),
    "catalog": (N_("All benefits"), "全部权益"),
    "city": (N_("CO2e saved by Shenyang's metro riders"), "沈阳地铁乘客累计减碳"),
    "tonnes": (N_("tonnes CO2e"), "吨二氧化碳当量"),
    "riders": (N_("riders"), "位乘客"),
    "points_earned": (N_("points earned"), "积分已发放"),
    "by_mode": (N_("By mode"), "按出行方式"),
    "mode_metro": (N_("Metro"), "地铁"),
    "mode_bus": (N_("Bus"), "公交"),
    "mode_bike": (N_("Shared bike"), "共享单车"),
    "mode_walk": (N_("Walking"), "步行"),
    "km": (N_("km"), "公里"),
    "tonnes_short": (N_("t CO2e"), "吨 CO2e"),
    "points": (N_("points"), "积分"),
    "stock_left": (N_("left"), "剩余"),
    "scan": (N_("Scan to open in the rider app"), "扫码在乘客App中打开"),
    "until": (N_("until"), "截至"),
    "empty": (N_("No benefits on offer right now."), "暂无可兑换的权益。"),
    "setup": (N_("This screen has no kiosk token yet. Open /kiosk#token=… with the token from "
                 "`flask kiosks create`."), "此屏幕尚未设置终端令牌。请用 `flask kiosks create` 生成的令牌打开 "
                                           "/kiosk#token=…"),
    "offline": (N_("Offline: showing the last update"), "网络中断：显示上次更新的内容"),
}


def page_labels(locale: str) -> dict[str, str]:
    """The labels in `locale`, for the template and (as JSON) for kiosk.js."""
    labels = {}
    for key, (msgid, chinese) in LABELS.items():
        text = gettext(msgid)
        labels[key] = chinese if locale == "zh" and text == msgid else text
    return labels


def kiosk_locale() -> str:
    """`?lang=` when it names a language of the platform, else the default (Chinese): a kiosk ignores the browser's
    preference and keeps no session, since everybody touches the same screen."""
    chosen = request.args.get("lang")
    return chosen if chosen in current_app.config["LANGUAGES"] else current_app.config["BABEL_DEFAULT_LOCALE"]


def rider_app_url(campaign_id: int) -> str:
    """Where a campaign opens in the rider app (setting RIDER_APP_URL, or FLASK_RIDER_APP_URL in the environment)."""
    base = current_app.config.get("RIDER_APP_URL") or DEFAULT_RIDER_APP_URL
    return f"{base.rstrip('/')}/campaigns/{campaign_id}"


@bp.get("")
def page():
    """The full-screen kiosk page: featured campaigns rotating, the catalogue, the city's CO2e counter, a QR each."""
    locale = kiosk_locale()
    other = next((code for code in current_app.config["LANGUAGES"] if code != locale), locale)
    with force_locale(locale):
        labels = page_labels(locale)
        return render_template("kiosk/page.html", locale=locale, other_locale=other, labels=labels)


def qr_svg(text: str) -> bytes:
    """`text` as a QR code in SVG that scales to its box (no fixed size), dark on transparent."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="svg", border=2, xmldecl=False, omitsize=True,
                                                  svgclass="qr", lineclass=None)
    return buffer.getvalue()


@bp.get("/qr/<id:campaign_id>.svg")
def qr(campaign_id: int):
    """The QR that opens a live campaign in the rider app; 404 when the campaign is not on sale now."""
    if catalogue.live_campaign(campaign_id) is None:
        raise NotFound("No live campaign with this id.")
    target = rider_app_url(campaign_id)
    response = Response(qr_svg(target), mimetype="image/svg+xml")
    response.set_etag(hashlib.sha256(f"{segno.__version__}\n{target}".encode()).hexdigest())
    response.headers["Cache-Control"] = f"public, max-age={QR_MAX_AGE}"
    return response.make_conditional(request)
