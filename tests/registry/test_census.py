"""Census import: validation with line numbers, all-or-nothing, and the row parser."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexheg.errors import InputError
from flexheg.registry import CensusImportError, Registry
from flexheg.registry._census import _parse_row
from flexheg.wire import SigningKey

from .factories import NOW, data_center

HEADER = "kind,id,owner,latitude,longitude,region,risk_weight,site_id,manufacturer,identity_key\n"


def _key() -> str:
    value: str = SigningKey.generate().public.key.keyval["public"]
    return value


def _csv(*rows: str, header: str = HEADER) -> io.BytesIO:
    return io.BytesIO((header + "".join(row + "\n" for row in rows)).encode())


def _device_row(entity_id: str, key: str | None = None, site: str = "dc-1") -> str:
    return f"device,{entity_id},acme,52.37,4.90,NL,2,{site},maker,{key or _key()}"


def test_import_stores_every_row(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    progress: list[int] = []
    result = registry.import_census(
        _csv(_device_row("gpu-1"), _device_row("gpu-2"), "chip,a100-7,globex,1.3,103.8,SG,,,,"),
        actor="ib", now=NOW, progress=lambda rows, _bytes: progress.append(rows),
    )
    assert result["rows"] == 3
    assert result["digest"].startswith("sha256:")
    assert progress[-1] == 3
    assert registry.get("gpu-1")["risk_weight"] == 2
    assert registry.get("a100-7")["kind"] == "chip"
    assert registry.get("gpu-2")["identity_key"]["keyval"]["public"]


def test_import_bad_rows_report_line_numbers(registry: Registry) -> None:
    registry.register(data_center(), actor="ib", now=NOW)
    source = _csv(
        _device_row("gpu-1"),
        "device,gpu-2,acme,95,4.9,NL,1,dc-1,maker," + _key(),
        "chip,c-1,acme,1,2,SG,1,,,",
        "device,gpu-3,acme,1,2,SG,1,,maker,",
        "fab,fab-1,acme,1,2,TW,1,,,",
    )
    with pytest.raises(CensusImportError) as caught:
        registry.import_census(source, actor="ib", now=NOW)
    lines = {error.line: error.message for error in caught.value.errors}
    assert set(lines) == {3, 5, 6}
    assert "latitude" in lines[3]
    assert "identity_key" in lines[5]
    assert "cannot be imported" in lines[6]
    assert registry.count() == 1


def test_import_is_all_or_nothing_across_chunks(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flexheg.registry._census.CHUNK_ROWS", 2)
    registry.register(data_center(), actor="ib", now=NOW)
    rows = [_device_row(f"gpu-{i}") for i in range(7)]
    rows.append("chip,c-1,acme,1,2,SG,abc,,,")
    with pytest.raises(CensusImportError, match="line 9"):
        registry.import_census(_csv(*rows), actor="ib", now=NOW)
    assert registry.count() == 1


def test_import_rejects_duplicates(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flexheg.registry._census.CHUNK_ROWS", 2)
    registry.register(data_center(), actor="ib", now=NOW)
    key = _key()
    rows = [_device_row("gpu-1", key), _device_row("gpu-2"), _device_row("gpu-3"),
            _device_row("gpu-1"), _device_row("gpu-4", key), "chip,dc-1,acme,1,2,SG,1,,,"]
    with pytest.raises(CensusImportError) as caught:
        registry.import_census(_csv(*rows), actor="ib", now=NOW)
    lines = {error.line: error.message for error in caught.value.errors}
    assert set(lines) == {5, 6, 7}
    assert "identity key" in lines[6]
    assert registry.count() == 1


def test_import_rejects_unknown_site(registry: Registry) -> None:
    with pytest.raises(CensusImportError, match="not a registered data center"):
        registry.import_census(_csv(_device_row("gpu-1", site="dc-404")), actor="ib", now=NOW)


@pytest.mark.parametrize(
    ("header", "message"),
    [("id,owner\n", "missing: kind"), (HEADER.strip() + ",colour\n", "unknown: colour")],
)
def test_import_rejects_bad_header(registry: Registry, header: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        registry.import_census(_csv(header=header), actor="ib", now=NOW)


@pytest.mark.parametrize("weight", ["\u00b2", "1.5", "-1", "0", "101"])
def test_parse_row_rejects_bad_weight(weight: str) -> None:
    row = {"kind": "chip", "id": "c-1", "owner": "acme", "latitude": "1", "longitude": "2",
           "region": "SG", "risk_weight": weight}
    with pytest.raises(InputError, match="risk weight"):
        _parse_row(row, import_id=1, now=NOW)


def test_import_rejects_empty_and_ragged(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rows"):
        registry.import_census(_csv(), actor="ib", now=NOW)
    with pytest.raises(CensusImportError, match="wrong number of fields"):
        registry.import_census(_csv("chip,c-1,acme,1,2"), actor="ib", now=NOW)
    with pytest.raises(InputError, match="cannot read"):
        registry.import_census(tmp_path / "absent.csv", actor="ib", now=NOW)
    with pytest.raises(InputError, match="UTF-8"):
        registry.import_census(io.BytesIO(HEADER.encode() + b"chip,\xff\n"), actor="ib", now=NOW)


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    entity_id=_ids,
    latitude=st.floats(-90, 90),
    longitude=st.floats(-180, 180),
    weight=st.integers(1, 100),
    region=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=10),
)
def test_parse_row_accepts_valid_chip(
    entity_id: str, latitude: float, longitude: float, weight: int, region: str
) -> None:
    row = {"kind": "chip", "id": entity_id, "owner": "acme", "latitude": repr(latitude),
           "longitude": repr(longitude), "region": region, "risk_weight": str(weight),
           "site_id": "", "manufacturer": "", "identity_key": ""}
    values = _parse_row(row, import_id=1, now=NOW)
    assert values["id"] == entity_id
    assert values["latitude"] == latitude
    assert values["risk_weight"] == weight


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(["kind", "id", "owner", "latitude", "longitude", "region",
                                        "risk_weight", "site_id", "identity_key"]),
                       st.text(max_size=12)))
def test_parse_row_raises_only_input_error(row: dict[str, str]) -> None:
    full = {"kind": "", "id": "", "owner": "", "latitude": "", "longitude": "", "region": ""}
    full.update(row)
    with contextlib.suppress(InputError):
        _parse_row(full, import_id=1, now=NOW)
