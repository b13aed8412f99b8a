"""Per-channel segments become one conversation: turns in time order, a speaker's
segments joined across a short pause, never across the other speaker; and what the
cloud backend's word items become."""
from __future__ import annotations

from cpaas.calls.service import recording_key
from cpaas.transcription.aws import channels_of, segments_of
from cpaas.transcription.keys import is_transcript_audio, transcript_audio_key
from cpaas.transcription.turns import Segment, Turn, merge


def test_turns_alternate_in_time_order_across_channels():
    turns = merge({
        "agent": [Segment(0.5, 2.0, " Hello, how can I help?"), Segment(6.0, 7.5, "Sure.")],
        "customer": [Segment(2.6, 5.0, "I would like to change my plan.")],
    })
    assert turns == [Turn("agent", 0.5, 2.0, "Hello, how can I help?"),
                     Turn("customer", 2.6, 5.0, "I would like to change my plan."),
                     Turn("agent", 6.0, 7.5, "Sure.")]


def test_a_short_pause_joins_segments_a_long_one_or_the_other_speaker_splits_them():
    turns = merge({
        "customer": [Segment(0.0, 2.0, "I called"), Segment(2.5, 4.0, "last week."),
                     Segment(9.0, 10.0, "Anyone there?"), Segment(12.0, 13.0, "Hello?")],
        "agent": [Segment(10.5, 11.5, "Yes.")],
    }, join_gap=1.0)
    assert [(t.speaker, t.start, t.end, t.text) for t in turns] == [
        ("customer", 0.0, 4.0, "I called last week."),
        ("customer", 9.0, 10.0, "Anyone there?"),
        ("agent", 10.5, 11.5, "Yes."),
        ("customer", 12.0, 13.0, "Hello?"),
    ]


def test_blank_segments_are_dropped_and_times_rounded():
    turns = merge({"agent": [Segment(0.123456, 1.98765, "  "), Segment(3.333333, 4.444444, "ok")],
                   "customer": []})
    assert turns == [Turn("agent", 3.33, 4.44, "ok")]
    assert turns[0].to_dict() == {"speaker": "agent", "start": 3.33, "end": 4.44, "text": "ok"}


def test_simultaneous_starts_order_by_end_then_speaker():
    turns = merge({"customer": [Segment(1.0, 2.0, "b")], "agent": [Segment(1.0, 2.0, "a"),
                                                                   Segment(1.0, 1.5, "c")]})
    assert [t.text for t in turns] == ["c a", "b"]


def test_transcript_only_audio_is_told_from_recordings():
    assert is_transcript_audio(transcript_audio_key("account_1", "0123456789"))
    assert not is_transcript_audio(recording_key("account_1", "0123456789"))
    assert not is_transcript_audio(recording_key("account_1", "0123456789", "-1700000000000"))


def test_amazon_transcribe_items_become_sentences_per_channel():
    def word(text, start, end):
        return {"type": "pronunciation", "start_time": str(start), "end_time": str(end),
                "alternatives": [{"confidence": "0.99", "content": text}]}

    def mark(text):
        return {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": text}]}

    left = [word("Hello", 0.5, 0.9), mark(","), word("there", 1.0, 1.3), mark("."),
            word("Bye", 5.0, 5.4)]
    assert segments_of(left) == [Segment(0.5, 1.3, "Hello, there."), Segment(5.0, 5.4, "Bye")]
    result = {"results": {"channel_labels": {"number_of_channels": 2, "channels": [
        {"channel_label": "ch_1", "items": [word("Yes", 2.0, 2.2), mark("?")]},
        {"channel_label": "ch_0", "items": left}]}}}
    assert channels_of(result, ("agent", "customer")) == {
        "agent": segments_of(left), "customer": [Segment(2.0, 2.2, "Yes?")]}
    assert channels_of({"results": {"items": left}}, ("customer",)) == {
        "customer": segments_of(left)}
