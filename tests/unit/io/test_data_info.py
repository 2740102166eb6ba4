"""`hpcx data info`: what an HDF5 file holds, and a fingerprint of its values that storage does not change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

h5py = pytest.importorskip("h5py")
np = pytest.importorskip("numpy")

from hpcx.io import info  # noqa: E402  (after the skips: this module needs h5py to mean anything)

ROWS = 1000


def values() -> dict[str, np.ndarray]:
    """One dataset per kind of dtype a job writes: integers, floats, a compound, strings."""
    record = np.dtype([("step", "<i8"), ("loss", "<f4"), ("tag", "S4")])
    table = np.zeros(ROWS, record)
    table["step"], table["loss"], table["tag"] = np.arange(ROWS), np.linspace(0, 1, ROWS), b"ok"
    return {
        "ints": np.arange(ROWS * 6, dtype="<i4").reshape(ROWS, 6),
        "floats": np.random.default_rng(0).standard_normal((ROWS, 3, 4)),
        "group/table": table,
        "group/names": np.array([f"sample-{i}" * (i % 3 + 1) for i in range(ROWS)], dtype=object),
    }


def write(path: Path, data: dict[str, np.ndarray], **create: object) -> Path:
    with h5py.File(path, "w") as f:
        for name, array in data.items():
            dtype = h5py.string_dtype() if array.dtype == object else array.dtype
            f.create_dataset(name, data=array, dtype=dtype, **create)
    return path


def fingerprint(path: Path, **kw: object) -> str:
    return info.inspect(path, **kw)["fingerprint"]["sha256"]


def test_chunking_compression_and_byte_order_do_not_change_the_fingerprint(tmp_path):
    data = values()
    plain = write(tmp_path / "plain.h5", data)
    packed = write(tmp_path / "packed.h5", data, chunks=True, compression="gzip", shuffle=True)
    swapped = {
        k: v.astype(v.dtype.newbyteorder(">")) if v.dtype.kind in "ifV" else v for k, v in data.items()
    }
    big_endian = write(tmp_path / "big.h5", swapped, chunks=True)

    assert fingerprint(plain) == fingerprint(packed) == fingerprint(big_endian)
    doc = info.inspect(packed)
    ints = next(d for d in doc["datasets"] if d["path"] == "/ints")
    assert ints["layout"] == "chunked" and ints["compression"] == "gzip"
    assert [f["name"] for f in ints["filters"]] == ["shuffle", "deflate"]
    assert ints["storage_bytes"] < ints["logical_bytes"] == ROWS * 6 * 4
    assert info.inspect(big_endian)["datasets"][0]["dtype"] == ">f8"  # shown as stored, hashed canonically


def test_any_changed_value_changes_the_fingerprint(tmp_path):
    data = values()
    before = info.inspect(write(tmp_path / "a.h5", data))
    data["group/names"][500] = "sample-50O"
    after = info.inspect(write(tmp_path / "b.h5", data))

    assert before["fingerprint"]["sha256"] != after["fingerprint"]["sha256"]
    pairs = zip(before["datasets"], after["datasets"])
    assert [d["path"] for d, e in pairs if d["fingerprint"] != e["fingerprint"]] == ["/group/names"]
    for name, where, value in [
        ("ints", (999, 5), -1),
        ("floats", (0, 0, 0), -0.0),
        ("group/table", 3, (3, 0, b"ok")),
    ]:
        data = values()
        data[name][where] = value
        assert fingerprint(write(tmp_path / "c.h5", data)) != before["fingerprint"]["sha256"], name


def test_a_renamed_dataset_changes_the_file_fingerprint_not_the_dataset_one(tmp_path):
    a = info.inspect(write(tmp_path / "a.h5", {"x": np.arange(10)}))
    b = info.inspect(write(tmp_path / "b.h5", {"y": np.arange(10)}))
    assert a["datasets"][0]["fingerprint"] == b["datasets"][0]["fingerprint"]
    assert a["fingerprint"]["sha256"] != b["fingerprint"]["sha256"]


def test_compound_padding_does_not_change_the_fingerprint(tmp_path):
    aligned = np.dtype({"names": ["a", "b"], "formats": ["<i2", "<f8"], "offsets": [0, 8], "itemsize": 16})
    packed = np.dtype([("a", "<i2"), ("b", "<f8")])
    rows = [(1, 0.5), (2, 1.5)]
    assert fingerprint(write(tmp_path / "a.h5", {"t": np.array(rows, aligned)})) == fingerprint(
        write(tmp_path / "p.h5", {"t": np.array(rows, packed)})
    )


def test_a_virtual_dataset_over_per_rank_files_equals_the_plain_dataset(tmp_path):
    whole = np.arange(40, dtype="<f8").reshape(8, 5)
    layout = h5py.VirtualLayout(shape=whole.shape, dtype=whole.dtype)
    for rank in range(2):
        write(tmp_path / f"rank-{rank}.h5", {"part": whole[4 * rank : 4 * rank + 4]}, chunks=(1, 5))
        layout[4 * rank : 4 * rank + 4] = h5py.VirtualSource(f"rank-{rank}.h5", "part", shape=(4, 5))
    with h5py.File(tmp_path / "stitched.h5", "w") as f:
        f.create_virtual_dataset("data", layout, fillvalue=-1)
    plain = write(tmp_path / "plain.h5", {"data": whole})

    doc = info.inspect(tmp_path / "stitched.h5")
    assert doc["fingerprint"]["sha256"] == fingerprint(plain)
    (vds,) = doc["datasets"]
    assert vds["layout"] == "virtual" and vds["virtual_sources_total"] == 2
    assert [(s["file"], s["found"]) for s in vds["virtual_sources"]] == [
        ("rank-0.h5", True),
        ("rank-1.h5", True),
    ]

    (tmp_path / "rank-1.h5").unlink()  # HDF5 would read fill values silently: no fingerprint instead
    doc = info.inspect(tmp_path / "stitched.h5")
    assert doc["fingerprint"]["sha256"] is None and "rank-1.h5" in doc["fingerprint"]["error"]
    assert "rank-1.h5:part is missing" in doc["datasets"][0]["fingerprint"]["error"]


@pytest.mark.parametrize("block_bytes, chunk_row_bytes", [(100, 0), (20, 0), (20, 1 << 20)])
def test_the_block_size_does_not_change_the_fingerprint(tmp_path, monkeypatch, block_bytes, chunk_row_bytes):
    contiguous = write(tmp_path / "a.h5", values())
    chunked = write(tmp_path / "b.h5", values(), chunks=True, compression="gzip")
    whole = fingerprint(contiguous)
    # Hundreds of blocks: several per row of /floats (20 B: cut along its last axis), chunk-aligned or not.
    monkeypatch.setattr(info, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(info, "CHUNK_ROW_BYTES", chunk_row_bytes)
    monkeypatch.setattr(info, "VARIABLE_BLOCK_VALUES", 7)
    assert fingerprint(contiguous) == fingerprint(chunked) == whole


@pytest.mark.parametrize("shape", [(10_000,), (50, 200)])  # rows of 1600 B: the sample cuts the last axis
def test_quick_mode_samples_the_ends_of_large_datasets_and_says_so(tmp_path, monkeypatch, shape):
    monkeypatch.setattr(info, "SAMPLE_BYTES", 1024)
    data = {"big": np.arange(10_000, dtype="<i8").reshape(shape), "small": np.arange(10, dtype="<i8")}
    path = write(tmp_path / "a.h5", data)
    quick, full = info.inspect(path, quick=True), info.inspect(path)
    assert {d["path"]: d["fingerprint"]["mode"] for d in quick["datasets"]} == {
        "/big": "sampled",
        "/small": "full",
    }
    assert quick["fingerprint"]["mode"] == "sampled" and full["fingerprint"]["mode"] == "full"
    assert quick["datasets"][1]["fingerprint"] == full["datasets"][1]["fingerprint"]  # small: read in full
    sampled = quick["fingerprint"]["sha256"]
    assert sampled != full["fingerprint"]["sha256"]

    data["big"].reshape(-1)[5000] = -1  # the middle is not in the sample ...
    assert fingerprint(write(tmp_path / "b.h5", data), quick=True) == sampled
    data["big"].reshape(-1)[-1] = -1  # ... the last value is
    changed = info.inspect(write(tmp_path / "c.h5", data), quick=True)
    assert changed["fingerprint"]["sha256"] != sampled
    # The sample is defined by the values, not by the chunks.
    chunked = info.inspect(
        write(tmp_path / "d.h5", {"big": data["big"]}, chunks=(7,) + shape[1:]), quick=True
    )
    assert chunked["datasets"][0]["fingerprint"] == changed["datasets"][0]["fingerprint"]


def test_a_file_above_the_full_limit_is_sampled(tmp_path, monkeypatch):
    monkeypatch.setattr(info, "SAMPLE_BYTES", 1024)
    path = write(tmp_path / "a.h5", {"big": np.arange(10_000)})
    assert info.inspect(path, full_limit_bytes=80_000)["fingerprint"]["mode"] == "full"
    assert info.inspect(path, full_limit_bytes=79_999)["fingerprint"]["mode"] == "sampled"


def test_links_are_reported_not_followed(tmp_path):
    write(tmp_path / "other.h5", {"x": np.arange(3)})
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.arange(3)
        f["alias"] = h5py.SoftLink("/data")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["outside"] = h5py.ExternalLink("other.h5", "/x")
        f.create_group("g")["up"] = f["/"]  # a hard link cycle
    doc = info.inspect(tmp_path / "a.h5")
    assert [d["path"] for d in doc["datasets"]] == ["/data"]
    assert doc["links"] == [
        {"path": "/alias", "type": "soft", "target": "/data"},
        {"path": "/dangling", "type": "soft", "target": "/nowhere"},
        {"path": "/g/up", "type": "hard", "target": "/"},
        {"path": "/outside", "type": "external", "file": "other.h5", "target": "/x"},
    ]


def test_the_signature_is_found_after_a_user_block(tmp_path):
    with h5py.File(tmp_path / "ub.h5", "w", userblock_size=1024) as f:
        f["x"] = np.arange(3)
    (tmp_path / "fake.h5").write_bytes(b"not hdf5" * 200)
    assert info.is_hdf5(tmp_path / "ub.h5") and not info.is_hdf5(tmp_path / "fake.h5")
    assert info.inspect(tmp_path / "ub.h5")["userblock_bytes"] == 1024


# --- the command ---------------------------------------------------------------------------------------------


def test_data_info_prints_a_table_and_a_versioned_json_document(hpcx, tmp_path):
    path = write(tmp_path / "train.h5", values(), chunks=True, compression="gzip")
    expected = fingerprint(path)

    text = hpcx("data", "info", str(path)).stdout
    assert f"content fingerprint (full): {expected}" in text
    lines = text.splitlines()
    assert lines[0].startswith(f"{path}: ") and "4 datasets, 1 group;" in lines[0]
    header, *rows = lines[2:7]
    assert header.split() == [
        "DATASET",
        "SHAPE",
        "DTYPE",
        "LAYOUT",
        "CHUNKS",
        "FILTERS",
        "STORED",
        "LOGICAL",
        "ATTRS",
        "FINGERPRINT",
    ]
    chunks = "x".join(map(str, info.inspect(path)["datasets"][0]["chunks"]))
    assert rows[0].split()[:6] == ["/floats", "1000x3x4", "<f8", "chunked", chunks, "deflate(4)"]
    assert rows[-1].split()[-1] == info.inspect(path)["datasets"][-1]["fingerprint"]["sha256"][:16]

    for args in (["data", "info", "--json", str(path)], ["--json", "data", "info", str(path)]):
        doc = json.loads(hpcx(*args).stdout)
        assert (doc["hpcx"], doc["kind"], doc["fingerprint"]["sha256"]) == (1, "data.info", expected)
        assert set(doc) == {
            "hpcx",
            "kind",
            "file",
            "size_bytes",
            "userblock_bytes",
            "superblock_version",
            "libver",
            "hdf5_version",
            "fingerprint",
            "groups",
            "datasets",
            "links",
        }
    quick = json.loads(hpcx("data", "info", "--json", "--quick", str(path)).stdout)
    assert quick["fingerprint"]["mode"] == "full"  # every dataset fits in the sample: read in full


def with_unix_time_dataset(path: Path) -> None:
    """A valid file whose one dataset has a type h5py cannot map to NumPy (H5T_TIME)."""
    with h5py.File(path, "w") as f:
        h5py.h5d.create(f.id, b"t", h5py.h5t.UNIX_D32LE, h5py.h5s.create_simple((4,)))


@pytest.mark.parametrize(
    "name, make, words",
    [
        ("missing.h5", None, "missing.h5 does not exist; check the path"),
        ("notes.h5", lambda p: p.write_text("x,y\n1,2\n"), "notes.h5 is not an HDF5 file"),
        ("folder", lambda p: p.mkdir(), "folder is a directory"),
        ("cut.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "HDF5 cannot open it"),
        ("time.h5", lambda p: with_unix_time_dataset(p), "cannot read the structure of"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(hpcx, tmp_path, name, make, words):
    if make:
        make(tmp_path / name)
    proc = hpcx("data", "info", str(tmp_path / name), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("hpcx: error: ") and words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# --- declared inputs in the manifest ---------------------------------------------------------------------------


def test_an_hdf5_input_declared_at_submission_gets_its_content_fingerprint(hpcx, runs_root, tmp_path):
    # found by signature, not name
    data = write(tmp_path / "train.dat", values(), chunks=True, compression="gzip")
    notes = tmp_path / "notes.h5"
    notes.write_text("not HDF5\n")
    doc = hpcx.json("submit", "serial", "--input", str(data), "--input", str(notes), "--", "true")
    manifest = json.loads((runs_root / doc["run_id"] / "manifest.json").read_text())

    entry, text = manifest["inputs"]
    assert len(entry["sha256"]) == 64 and entry["partial"] is False  # the byte fingerprint stays
    hdf5 = entry["hdf5"]
    assert (hdf5["scheme"], hdf5["mode"], hdf5["sha256"]) == (info.SCHEME, "full", fingerprint(data))
    assert hdf5["datasets_total"] == 4 and hdf5["links"] == []
    assert hdf5["datasets"][0] == {
        "path": "/floats",
        "shape": [ROWS, 3, 4],
        "dtype": "<f8",
        "layout": "chunked",
        "chunks": info.inspect(data)["datasets"][0]["chunks"],
        "filters": ["deflate"],
        "sha256": info.inspect(data)["datasets"][0]["fingerprint"]["sha256"],
        "mode": "full",
    }
    assert "hdf5" not in text and len(text["sha256"]) == 64
    hpcx.wait_finished(doc["run_id"], timeout_s=60)


def test_a_large_hdf5_input_is_sampled_and_a_broken_one_does_not_stop_the_submission(tmp_path, monkeypatch):
    from hpcx.runs import provenance
    from hpcx.site import load_site

    monkeypatch.setattr(provenance, "FULL_HASH_CAP_BYTES", 4096)
    monkeypatch.setattr(provenance, "EDGE_BYTES", 1024)
    monkeypatch.setattr(info, "SAMPLE_BYTES", 1024)
    write(tmp_path / "big.h5", {"x": np.arange(100_000)})
    (tmp_path / "cut.h5").write_bytes(info.HDF5_SIGNATURE + b"\0" * 100)
    (tmp_path / "run").mkdir()

    big, cut = provenance.collect(tmp_path, tmp_path / "run", load_site(None), inputs=["big.h5", "cut.h5"])[
        "inputs"
    ]
    assert big["partial"] is True and big["hdf5"]["mode"] == "sampled" and len(big["hdf5"]["sha256"]) == 64
    assert len(cut["sha256"]) == 64 and "HDF5 cannot open it" in cut["hdf5"]["error"]


def test_without_h5py_the_byte_fingerprint_stays_and_the_manifest_says_why(tmp_path):
    write(tmp_path / "a.h5", {"x": np.arange(3)})
    # A Python that cannot import h5py, as on a login node without the runtime extra.
    code = (
        "import json, sys; sys.modules['h5py'] = None\n"
        "from pathlib import Path; from hpcx.runs.provenance import fingerprint\n"
        f"print(json.dumps(fingerprint(Path({str(tmp_path / 'a.h5')!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    entry = json.loads(out.stdout)
    assert len(entry["sha256"]) == 64
    assert entry["hdf5"].keys() == {"error"} and "needs h5py" in entry["hdf5"]["error"]
