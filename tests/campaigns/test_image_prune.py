"""Uploaded images nothing names any more are deleted after a day: kept while a campaign or a revision (proposed
or previous) names them, or while they are younger than a day."""

from __future__ import annotations

import json
import os
import time

from metropoints.campaigns.models import CampaignRevision, RevisionStatus
from metropoints.core.db import commit_unit_of_work, db

NAMES = {name: f"{name:_<20}.png" for name in ("live", "proposed", "previous", "orphan", "fresh")}


def test_orphaned_images_are_pruned_after_a_day(app, runner, tmp_path, create_merchant, create_store,
                                                create_campaign):
    """`flask campaigns prune-images` deletes only the image nothing names that is older than a day: the live,
    proposed and previous images, a fresh upload and a file that is not one of ours stay."""
    app.config["CAMPAIGN_UPLOAD_DIR"] = str(tmp_path)
    try:
        merchant, owner = create_merchant()
        campaign = create_campaign(merchant, [create_store(merchant)], image_name=NAMES["live"])
        db.session.add(CampaignRevision(campaign_id=campaign.id, status=RevisionStatus.pending, created_by=owner.id,
                                        proposed_json=json.dumps({"image_name": NAMES["proposed"]}),
                                        previous_json=json.dumps({"image_name": NAMES["previous"]})))
        commit_unit_of_work()
        day_ago = time.time() - 2 * 24 * 3600
        for key, name in NAMES.items():
            (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n")
            if key != "fresh":
                os.utime(tmp_path / name, (day_ago, day_ago))
        (tmp_path / "README.txt").write_text("not an image of ours")
        os.utime(tmp_path / "README.txt", (day_ago, day_ago))
        result = runner.invoke(args=["campaigns", "prune-images"])
        assert result.exit_code == 0 and result.output.splitlines() == [NAMES["orphan"], "1 images deleted"]
        assert sorted(os.listdir(tmp_path)) == sorted([*(n for k, n in NAMES.items() if k != "orphan"), "README.txt"])
    finally:
        app.config.pop("CAMPAIGN_UPLOAD_DIR")


def test_an_image_shared_with_a_copy_stays_while_either_names_it(app, tmp_path, create_merchant, create_store,
                                                                 create_campaign):
    """A copy names its original's image file: ending or changing the original does not free the file while the
    copy still names it."""
    from metropoints.campaigns.images import prune_campaign_images
    from metropoints.campaigns.models import Campaign
    from metropoints.campaigns.operations import duplicate_campaign

    app.config["CAMPAIGN_UPLOAD_DIR"] = str(tmp_path)
    try:
        merchant, owner = create_merchant()
        original = create_campaign(merchant, [create_store(merchant)], image_name=NAMES["live"])
        with app.test_request_context():
            copy = duplicate_campaign(owner=owner, campaign=original)
        commit_unit_of_work()
        assert copy.image_name == NAMES["live"]
        (tmp_path / NAMES["live"]).write_bytes(b"\x89PNG\r\n\x1a\n")
        day_ago = time.time() - 2 * 24 * 3600
        os.utime(tmp_path / NAMES["live"], (day_ago, day_ago))
        db.session.get(Campaign, original.id).image_name = ""
        commit_unit_of_work()
        assert prune_campaign_images() == [] and os.listdir(tmp_path) == [NAMES["live"]]
        db.session.get(Campaign, copy.id).image_name = ""
        commit_unit_of_work()
        assert prune_campaign_images() == [NAMES["live"]]
    finally:
        app.config.pop("CAMPAIGN_UPLOAD_DIR")
