"""`imgproc presets show|set` against the real product."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Product
from tests.e2e.test_cli import imgproc


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
