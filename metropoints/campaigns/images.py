"""Campaign images: checked by their first bytes (not their name), stored under the instance folder by a random name,
deleted once nothing names them. Several campaigns may name one image (a copy keeps its original's)."""

from __future__ import annotations

import json
import os
import re
import secrets
from typing import IO

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from metropoints.campaigns.errors import InvalidCampaign
from metropoints.campaigns.models import Campaign, CampaignRevision
from metropoints.core.db import db

MAX_IMAGE_BYTES = 2 * 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(png|jpg|webp)$")
MIMETYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def upload_dir() -> str:
    """The folder of uploaded images (CAMPAIGN_UPLOAD_DIR, by default instance/uploads), created on first use."""
    path = current_app.config.get("CAMPAIGN_UPLOAD_DIR") or os.path.join(current_app.instance_path, "uploads")
    os.makedirs(path, exist_ok=True)
    return path


def sniff(head: bytes) -> str | None:
    """The extension an image's magic bytes say it is (png, jpg, webp), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def save_image(stream: IO[bytes]) -> str:
    """Store an uploaded PNG, JPEG or WebP of at most 2 MB and return its new name; InvalidCampaign otherwise."""
    data = stream.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidCampaign(_l("The image may be at most 2 MB."), field="image")
    ext = sniff(data[:16])
    if ext is None:
        raise InvalidCampaign(_l("The image must be a PNG, JPEG or WebP file."), field="image")
    name = f"{secrets.token_urlsafe(18)}.{ext}"
    with open(os.path.join(upload_dir(), name), "wb") as out:
        out.write(data)
    return name


def image_path(name: str) -> str | None:
    """The file of a stored image name, or None for a name we could not have made."""
    if not NAME_RE.match(name):
        return None
    path = os.path.join(upload_dir(), name)
    return path if os.path.isfile(path) else None


def prune_images(keep: set[str], *, older_than_seconds: float, now: float | None = None) -> list[str]:
    """Delete stored images that are not in `keep` and were written more than `older_than_seconds` ago (an image
    just uploaded may belong to a form still being filled in); the names deleted."""
    import time

    folder = upload_dir()
    cutoff = (now if now is not None else time.time()) - older_than_seconds
    deleted = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if NAME_RE.match(name) and name not in keep and os.path.getmtime(path) < cutoff:
            os.remove(path)
            deleted.append(name)
    return deleted


# A form refused after its image was stored, or an image replaced, leaves a file nothing names; kept a day, since a
# merchant may still be filling in the form its upload came with.
ORPHAN_IMAGE_SECONDS = 24 * 3600


def prune_campaign_images(*, now: float | None = None) -> list[str]:
    """Delete uploaded images no campaign and no revision (proposed or previous) names; the names deleted."""
    keep = set(db.session.scalars(select(Campaign.image_name).where(Campaign.image_name != "")))
    for proposed, previous in db.session.execute(select(CampaignRevision.proposed_json,
                                                        CampaignRevision.previous_json)):
        for text_ in (proposed, previous):
            name = json.loads(text_).get("image_name") if text_ else None
            if name:
                keep.add(name)
    return prune_images(keep, older_than_seconds=ORPHAN_IMAGE_SECONDS, now=now)
