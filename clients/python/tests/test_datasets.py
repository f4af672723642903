"""Reading datasets: the listing, rows and bytes exactly as the API serves them, refusals as NotFound."""

import json
import types

import pytest

import gatehouse
from gatehouse import rows as rowlib

HAVE_PANDAS = rowlib.pandas_or_none() is not None


def preview(raw, name, partition, home=None):
    status, _, body = raw("/v1/datasets/%s/partitions/%d?preview=1000" % (name, partition), home=home)
    assert status == 200, body
    return json.loads(body)["rows"]


def test_datasets_lists_what_i_may_use_with_my_actions():
    listed = {d["name"]: d for d in gatehouse.datasets()}
    assert {"scratch/py-words", "words", "customers", "scratch/py-events"} <= set(listed)
    assert listed["scratch/py-words"]["rows"] == 65
    assert "read" in listed["scratch/py-words"]["actions"] and "write" in listed["scratch/py-words"]["actions"]
    manifest = gatehouse.dataset("scratch/py-words")
    assert [p["rows"] for p in manifest["partitions"]] == [40, 25]
    assert manifest["owner"] == "alice" and manifest["columns"] == ["id", "word", "note"]


def test_partition_bytes_are_the_apis_bytes(raw):
    client = gatehouse.Client()
    for n in (0, 1):
        status, headers, body = raw("/v1/datasets/scratch/py-words/partitions/%d" % n)
        assert status == 200
        assert client.partition_bytes("scratch/py-words", n) == body
    assert b'"a, ""quoted""\nnote 0"' in client.partition_bytes("scratch/py-words", 0)


def test_read_gives_the_rows_the_api_previews_partition_by_partition(raw):
    first, second = preview(raw, "scratch/py-words", 0), preview(raw, "scratch/py-words", 1)
    assert len(first) == 40 and len(second) == 25
    assert first[0] == {"id": "0", "word": "Wörd0", "note": 'a, "quoted"\nnote 0'}
    assert gatehouse.read("scratch/py-words", partition=0, as_frame=False) == first
    assert gatehouse.read("scratch/py-words", partition=[1], as_frame=False) == second
    assert gatehouse.read("scratch/py-words", as_frame=False) == first + second
    streamed = gatehouse.iter_rows("scratch/py-words")
    assert isinstance(streamed, types.GeneratorType)
    assert list(streamed) == first + second


def test_json_lines_rows_as_the_preview_gives_them(raw):
    rows = gatehouse.read("scratch/py-events", as_frame=False)
    assert rows == preview(raw, "scratch/py-events", 0)
    assert rows == [{"id": 1, "kind": "a"}, {"_raw": "not json"}, {"id": 3, "kind": "ç"}]


def test_a_partition_that_is_not_there():
    with pytest.raises(gatehouse.NotFound) as raised:
        gatehouse.read("scratch/py-words", partition=7)
    assert "has partitions 0 to 1; there is no 7" in str(raised.value)


def test_a_missing_dataset_and_a_label_denied_one_are_the_same_not_found(as_dave):
    listed = {d["name"] for d in gatehouse.datasets()}
    assert "words" in listed and "customers" not in listed
    answers = []
    for name in ("customers", "no-such-dataset"):
        with pytest.raises(gatehouse.NotFound) as raised:
            gatehouse.read(name)
        error = raised.value
        assert (error.code, error.status, str(error)) == ("not_found", 404, "no dataset %s" % name)
        answers.append((type(error), error.code, error.status, sorted(error.body)))
        with pytest.raises(gatehouse.NotFound):
            gatehouse.Client().partition_bytes(name, 0)
    assert answers[0] == answers[1]
    assert gatehouse.read("words", as_frame=False)[0]["word"] == "Wörd0"


def test_read_gives_a_data_frame_exactly_when_pandas_is_there():
    if HAVE_PANDAS:
        assert type(gatehouse.read("words")).__name__ == "DataFrame"
        return
    assert isinstance(gatehouse.read("words"), list)
    with pytest.raises(ImportError) as raised:
        gatehouse.read("words", as_frame=True)
    assert "needs pandas" in str(raised.value)


@pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed here (apt install python3-pandas to run this case)")
def test_a_data_frame_holds_the_same_rows_in_the_manifests_column_order():
    frame = gatehouse.read("scratch/py-words", as_frame=True)
    assert list(frame.columns) == ["id", "word", "note"]
    assert frame.to_dict("records") == gatehouse.read("scratch/py-words", as_frame=False)
