"""`imgproc presets show|set` against the real product."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.e2e.conftest import Product
from tests.e2e.test_cli import imgproc
from tests.factories import jpeg_bytes


def test_show_set_and_refusal(product: Product, tmp_path: Path) -> None:
    project = str(product.new_project_id())
    shown = imgproc(product.base_url, "presets", "show", project, "--json")
    assert shown.returncode == 0, shown.stderr
    current = json.loads(shown.stdout)
    assert current["version"] == 0
    square = {"name": "square_400", "width": 400, "height": 400, "fit": "cover"}
    source = tmp_path / "presets.json"
    source.write_text(json.dumps({"presets": [*current["presets"], square]}))
    stored = imgproc(product.base_url, "presets", "set", project, str(source))
    assert stored.returncode == 0, stored.stderr
    assert "version 1" in stored.stderr
    assert "square_400" in stored.stdout and "cover" in stored.stdout

    source.write_text(json.dumps([square]))
    refused = imgproc(product.base_url, "presets", "set", project, str(source))
    assert refused.returncode == 2
    assert "invalid_presets" in refused.stderr and "missing thumb" in refused.stderr
    (tmp_path / "bad.json").write_text("{not json")
    unreadable = imgproc(product.base_url, "presets", "set", project, str(tmp_path / "bad.json"))
    assert unreadable.returncode == 2 and "cannot read presets" in unreadable.stderr


def test_reprocess_and_retry(product: Product, tmp_path: Path) -> None:
    project = str(product.new_project_id())
    none = imgproc(product.base_url, "reprocess", project)
    assert none.returncode == 0, none.stderr
    assert none.stdout.startswith("none")
    photo = tmp_path / "p.jpg"
    photo.write_bytes(jpeg_bytes(320, 240))
    uploaded = imgproc(product.base_url, "upload", str(photo), "-p", project, "--wait")
    assert uploaded.returncode == 0, uploaded.stderr
    image_id = uploaded.stdout.split()[0]
    started = imgproc(product.base_url, "reprocess", project, "start")
    assert started.returncode == 0, started.stderr
    assert f"reprocess-project-{project}" in started.stderr

    done = imgproc(product.base_url, "retry", image_id)
    assert done.returncode == 1
    assert f"{image_id} not_retryable" in done.stdout and "not error" in done.stdout
    nothing = imgproc(product.base_url, "retry", "--project", project)
    assert nothing.returncode == 0 and "no failed images" in nothing.stderr
    unknown = imgproc(product.base_url, "retry", str(uuid.uuid4()))
    assert unknown.returncode == 2 and "404" in unknown.stderr
