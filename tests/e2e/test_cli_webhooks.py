"""`imgproc webhooks add|list|rm|rotate` against the real product."""

from __future__ import annotations

from tests.e2e.conftest import Product
from tests.e2e.test_cli import imgproc


def test_add_list_rotate_rm(product: Product) -> None:
    project = str(product.new_project_id())
    url = "https://example.com/imgproc-hook"
    added = imgproc(product.base_url, "webhooks", "add", project, url, "-e", "image.done")
    assert added.returncode == 0, added.stderr
    fields = dict(line.split(None, 1) for line in added.stdout.splitlines())
    assert fields["secret"].startswith("whsec_")
    assert "not shown again" in added.stderr

    listed = imgproc(product.base_url, "webhooks", "list", project)
    assert listed.returncode == 0, listed.stderr
    assert fields["id"][:8] in listed.stdout
    assert "image.done" in listed.stdout
    assert fields["secret"] not in listed.stdout

    rotated = imgproc(product.base_url, "webhooks", "rotate", project, fields["id"])
    assert rotated.returncode == 0, rotated.stderr
    secret = rotated.stdout.split()[-1]
    assert secret.startswith("whsec_") and secret != fields["secret"]
    assert "the old one also signs until" in rotated.stderr
    cut = imgproc(
        product.base_url, "webhooks", "rotate", project, fields["id"], "--keep-previous", "0"
    )
    assert cut.returncode == 0, cut.stderr
    assert "the old one no longer signs" in cut.stderr
    negative = imgproc(
        product.base_url, "webhooks", "rotate", project, fields["id"], "--keep-previous", "-1"
    )
    assert negative.returncode == 2

    removed = imgproc(product.base_url, "webhooks", "rm", project, fields["id"])
    assert removed.returncode == 0, removed.stderr
    again = imgproc(product.base_url, "webhooks", "rm", project, fields["id"])
    assert again.returncode == 2
    assert "404" in again.stderr

    refused = imgproc(product.base_url, "webhooks", "add", project, "ftp://example.com/x")
    assert refused.returncode == 2
    assert "invalid_webhook_url" in refused.stderr
