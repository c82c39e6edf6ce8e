"""Reads an LL-HLS media playlist on stdin with the PyPI `m3u8` parser
(an implementation independent of livestack's) and prints what it found
as one JSON line. Used by tests/it/llhls.rs."""
import json
import sys

import m3u8

text = sys.stdin.read()
playlist = m3u8.loads(text)
control = playlist.server_control
hint = playlist.preload_hint
print(json.dumps({
    "version": playlist.version,
    "target_duration": playlist.target_duration,
    "media_sequence": playlist.media_sequence,
    "part_target": playlist.part_inf.part_target if playlist.part_inf else None,
    "can_block_reload": control.can_block_reload if control else None,
    "part_hold_back": control.part_hold_back if control else None,
    "can_skip_until": control.can_skip_until if control else None,
    "map": playlist.segment_map[0].uri if playlist.segment_map else None,
    "segments": [s.uri for s in playlist.segments if s.uri],
    "durations": [s.duration for s in playlist.segments if s.uri],
    "parts": [
        {"uri": p.uri, "duration": p.duration, "independent": p.independent}
        for s in playlist.segments for p in (s.parts or [])
    ],
    "hint": {"type": hint.hint_type, "uri": hint.uri} if hint else None,
    "skipped": playlist.skip.skipped_segments if playlist.skip else 0,
}))
