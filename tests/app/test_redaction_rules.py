"""SPEC §12's rules for ``redactions``: app.services.redaction, pure (no Flask, no database)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.redaction import (
    END_TOLERANCE_S,
    MAX_REDACTIONS,
    RedactionInvalid,
    to_output_timeline,
    validate_redactions,
)

FACTS = {"duration_s": 60.0, "has_video": True, "audio_channels": 2, "agent_channel": "left"}
BOX = {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.1}


def check(value, **facts):
    return validate_redactions(value, **{**FACTS, **facts})


def refused(value, **facts) -> RedactionInvalid:
    with pytest.raises(RedactionInvalid) as caught:
        check(value, **facts)
    return caught.value


# --- what is accepted, and how it comes back -------------------------------------------------


def test_no_redactions():
    assert check(None) == []
    assert check([]) == []


def test_items_come_back_normalised():
    items = check(
        [
            {"kind": "cover", "box": BOX, "start_s": 1, "end_s": 2.5},
            {"kind": "blur", "box": {"x": 0, "y": 0, "w": 1, "h": 1}},
            {"kind": "mute", "start_s": 10, "end_s": 12},
            {"kind": "mute", "start_s": 0, "end_s": 1, "channel": "customer"},
            {"kind": "cover", "box": BOX, "end_s": 5, "reason": "card_number"},
        ]
    )
    assert items == [
        {"kind": "cover", "box": BOX, "start_s": 1.0, "end_s": 2.5},
        {
            "kind": "blur",
            "box": {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0},
            "start_s": 0.0,
            "end_s": 60.0,
        },
        {"kind": "mute", "start_s": 10.0, "end_s": 12.0, "channel": "all"},
        {"kind": "mute", "start_s": 0.0, "end_s": 1.0, "channel": "customer"},
        {"kind": "cover", "box": BOX, "start_s": 0.0, "end_s": 5.0, "reason": "card_number"},
    ]
    assert all(isinstance(item["start_s"], float) for item in items)


def test_an_end_a_hair_past_the_recording_is_its_end():
    [item] = check([{"kind": "mute", "start_s": 59, "end_s": 60 + END_TOLERANCE_S / 2}])
    assert item["end_s"] == 60.0


def test_two_hundred_items_are_allowed():
    assert len(check([{"kind": "cover", "box": BOX}] * MAX_REDACTIONS)) == MAX_REDACTIONS


# --- bad input: the index and the field are named --------------------------------------------

BAD_ITEMS = [
    # (item, field, words in the message)
    ("cover", None, "must be an object"),
    (None, None, "must be an object"),
    ([BOX], None, "must be an object"),
    ({}, "kind", "one of cover, blur, mute"),
    ({"kind": "pixelate", "box": BOX}, "kind", "one of"),
    ({"kind": "COVER", "box": BOX}, "kind", "one of"),
    ({"kind": 1, "box": BOX}, "kind", "one of"),
    ({"kind": "cover"}, "box", "is required"),
    ({"kind": "cover", "box": None}, "box", "is required"),
    ({"kind": "cover", "box": [0, 0, 1, 1]}, "box", "must be an object"),
    ({"kind": "cover", "box": {"x": 0, "y": 0, "w": 1}}, "box.h", "is required"),
    ({"kind": "cover", "box": {**BOX, "z": 1}}, "box.z", "not a box field"),
    ({"kind": "cover", "box": {**BOX, "x": -0.01}}, "box.x", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "y": 1.5}}, "box.y", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "x": "0.1"}}, "box.x", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "x": True}}, "box.x", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "w": math.nan}}, "box.w", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "h": math.inf}}, "box.h", "from 0 to 1"),
    ({"kind": "cover", "box": {**BOX, "w": 0}}, "box.w", "width above 0"),
    ({"kind": "blur", "box": {**BOX, "h": 0.0}}, "box.h", "height above 0"),
    (
        {"kind": "cover", "box": {"x": 0.8, "y": 0, "w": 0.3, "h": 0.1}},
        "box.w",
        "outside the frame",
    ),
    (
        {"kind": "blur", "box": {"x": 0, "y": 0.95, "w": 0.3, "h": 0.1}},
        "box.h",
        "outside the frame",
    ),
    ({"kind": "cover", "box": BOX, "start_s": -1}, "start_s", "not be negative"),
    ({"kind": "cover", "box": BOX, "start_s": "1"}, "start_s", "number of seconds"),
    ({"kind": "cover", "box": BOX, "end_s": False}, "end_s", "number of seconds"),
    ({"kind": "cover", "box": BOX, "start_s": 5, "end_s": 2}, "end_s", "after start_s"),
    ({"kind": "cover", "box": BOX, "start_s": 5, "end_s": 5}, "end_s", "after start_s"),
    ({"kind": "cover", "box": BOX, "start_s": 61}, "start_s", "after the end of the recording"),
    ({"kind": "cover", "box": BOX, "start_s": 60}, "start_s", "at or after the end"),
    ({"kind": "mute", "start_s": 1, "end_s": 90}, "end_s", "before trim"),
    ({"kind": "mute", "channel": "left"}, "channel", "one of all, agent, customer"),
    ({"kind": "mute", "channel": 2}, "channel", "one of"),
    ({"kind": "mute", "box": BOX}, "box", "not a field of a mute redaction"),
    ({"kind": "cover", "box": BOX, "channel": "all"}, "channel", "not a field of a cover"),
    ({"kind": "cover", "box": BOX, "start": 1}, "start", "not a field"),
    ({"kind": "cover", "box": BOX, "reason": "ssn"}, "reason", "one of national_id"),
    ({"kind": "cover", "box": BOX, "text": "01010112345"}, "text", "not a field"),
]


@pytest.mark.parametrize(("item", "field", "words"), BAD_ITEMS)
def test_a_bad_item_is_refused_naming_its_index_and_field(item, field, words):
    good = {"kind": "cover", "box": BOX, "start_s": 1, "end_s": 2}
    error = refused([good, good, item])
    assert error.index == 2
    assert error.field == field
    assert words in str(error)
    assert str(error).startswith("redactions[2]" + (f".{field}" if field else "") + ": ")
    assert error.details == {"index": 2, "field": field}
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("value", ["[]", {"kind": "cover"}, 3, True, 1.5])
def test_a_non_list_is_refused(value):
    error = refused(value)
    assert error.index is None and error.field is None
    assert "must be a list" in str(error)


def test_more_than_two_hundred_items_are_refused():
    error = refused([{"kind": "cover", "box": BOX}] * (MAX_REDACTIONS + 1))
    assert error.index is None
    assert "at most 200" in str(error) and "201" in str(error)


def test_boxes_on_a_recording_without_video_are_refused_saying_so():
    assert check([{"kind": "mute"}], has_video=False)
    for kind in ("cover", "blur"):
        error = refused([{"kind": "mute"}, {"kind": kind, "box": BOX}], has_video=False)
        assert (error.index, error.field) == (1, "kind")
        assert "no video" in str(error)


def test_mute_on_a_recording_without_audio_is_refused_saying_so():
    assert check([{"kind": "cover", "box": BOX}], audio_channels=0)
    error = refused([{"kind": "mute", "start_s": 1, "end_s": 2}], audio_channels=0)
    assert (error.index, error.field) == (0, "kind")
    assert "no audio" in str(error)


@pytest.mark.parametrize(
    "facts", [{"audio_channels": 1}, {"audio_channels": 2, "agent_channel": "mono"}]
)
def test_agent_or_customer_mute_needs_separate_channels(facts):
    assert check([{"kind": "mute", "channel": "all"}], **facts)
    for channel in ("agent", "customer"):
        error = refused([{"kind": "mute", "channel": channel}], **facts)
        assert (error.index, error.field) == (0, "channel")
        assert "only 'all'" in str(error)


# --- anything a client may send: either a normalised list or RedactionInvalid ----------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["cover", "blur", "mute", "all", "agent", "customer", "x", "box"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["kind", "box", "start_s", "end_s", "channel", "x", "y", "w", "h", "reason", "z"]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values)
def test_any_json_is_either_normalised_or_refused_cleanly(value):
    try:
        items = check(value)
    except RedactionInvalid as error:
        assert error.index is None or (isinstance(value, list) and 0 <= error.index < len(value))
        assert str(error).startswith("redactions")
        return
    _assert_normalised(items, FACTS["duration_s"])


fraction = st.floats(0, 1)
boxes = st.tuples(fraction, fraction, fraction, fraction).map(
    lambda t: {"x": t[0] * 0.9, "y": t[1] * 0.9, "w": 0.01 + t[2] * 0.09, "h": 0.01 + t[3] * 0.09}
)
spans = st.tuples(st.floats(0, 59), st.floats(0.001, 60)).map(
    lambda t: {"start_s": t[0], "end_s": min(60.0, t[0] + t[1])}
)
good_items = st.one_of(
    st.builds(
        lambda k, b, s: {"kind": k, "box": b, **s}, st.sampled_from(["cover", "blur"]), boxes, spans
    ),
    st.builds(
        lambda c, s: {"kind": "mute", "channel": c, **s},
        st.sampled_from(["all", "agent", "customer"]),
        spans,
    ),
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(good_items, max_size=12))
def test_valid_items_pass_unchanged_and_validation_is_idempotent(items):
    normalised = check(items)
    assert len(normalised) == len(items)
    _assert_normalised(normalised, 60.0)
    for sent, got in zip(items, normalised, strict=True):
        assert got["start_s"] == sent["start_s"] and got["end_s"] == sent["end_s"]
        assert got.get("box") == sent.get("box")
    assert check(normalised) == normalised


def _assert_normalised(items, duration_s):
    assert isinstance(items, list)
    for item in items:
        assert item["kind"] in ("cover", "blur", "mute")
        assert 0 <= item["start_s"] < item["end_s"] <= duration_s
        if item["kind"] == "mute":
            assert set(item) == {"kind", "start_s", "end_s", "channel"}
        else:
            assert set(item) - {"reason"} == {"kind", "box", "start_s", "end_s"}
            box = item["box"]
            assert box["w"] > 0 and box["h"] > 0
            assert box["x"] + box["w"] <= 1 + 1e-9 and box["y"] + box["h"] <= 1 + 1e-9


# --- into the trimmed rendition's timeline ----------------------------------------------------


def test_output_timeline_clips_shifts_and_drops():
    items = check(
        [
            {"kind": "cover", "box": BOX, "start_s": 5, "end_s": 15},  # starts before the trim
            {"kind": "mute", "start_s": 12, "end_s": 14, "channel": "agent"},  # inside
            {"kind": "blur", "box": BOX, "start_s": 18, "end_s": 40},  # ends after the trim
            {"kind": "cover", "box": BOX, "start_s": 0, "end_s": 10},  # wholly before: dropped
            {"kind": "mute", "start_s": 20, "end_s": 30},  # starts at the trim's end: dropped
            {"kind": "cover", "box": BOX},  # the whole recording
        ]
    )
    mapped = to_output_timeline(items, 10, 20)
    assert [(m["kind"], m["start_s"], m["end_s"]) for m in mapped] == [
        ("cover", 0.0, 5.0),
        ("mute", 2.0, 4.0),
        ("blur", 8.0, 10.0),
        ("cover", 0.0, 10.0),
    ]
    assert mapped[1]["channel"] == "agent" and mapped[0]["box"] == BOX
    assert items[0]["start_s"] == 5.0  # the input is not changed
    mapped[0]["box"]["x"] = 0.5
    assert items[0]["box"]["x"] == 0.1


def test_output_timeline_without_a_trim_is_the_same_spans():
    items = check([{"kind": "mute", "start_s": 3, "end_s": 4}])
    assert to_output_timeline(items, None, None) == items
