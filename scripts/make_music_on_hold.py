#!/usr/bin/env python3
"""Writes sounds/prompts/music_on_hold.wav, the bundled music on hold: a soft
8-second loop of four sustained chords (C, A minor, F, G), 16 kHz mono 16-bit.

Made from sine partials so that it is ours to ship, quiet enough to sit under
speech, and free of 440, 660, 880, 1000 and 1700 Hz (tones the tests and beeps
use), so an audio test can tell it apart. The loop starts and ends in silence,
so repeating it does not click. Run from the repository root:

    python3 scripts/make_music_on_hold.py
"""

import math
import struct
import wave

RATE = 16_000
CHORD_SECONDS = 2.0
# Hz, all between 196 and 392.
CHORDS = [
    (261.63, 329.63, 392.00),  # C
    (220.00, 261.63, 329.63),  # A minor
    (220.00, 261.63, 349.23),  # F
    (196.00, 246.94, 293.66),  # G
]
NOTE_AMPLITUDE = 2200.0  # per note; three notes peak below -10 dBFS
ATTACK = 0.25
RELEASE = 0.45


def envelope(t: float) -> float:
    if t < ATTACK:
        return math.sin(0.5 * math.pi * t / ATTACK) ** 2
    left = CHORD_SECONDS - t
    if left < RELEASE:
        return math.sin(0.5 * math.pi * max(left, 0.0) / RELEASE) ** 2
    return 1.0


def main() -> None:
    frames = bytearray()
    per_chord = int(RATE * CHORD_SECONDS)
    for chord in CHORDS:
        for n in range(per_chord):
            t = n / RATE
            # A slow tremolo keeps it from sounding like a dial tone.
            gain = envelope(t) * (0.85 + 0.15 * math.sin(2 * math.pi * 0.5 * t))
            # Pure partials: an overtone of 220 or 330 Hz would land on 440 or 660.
            value = sum(NOTE_AMPLITUDE * math.sin(2 * math.pi * f * t) for f in chord)
            frames += struct.pack("<h", max(-32768, min(32767, round(gain * value))))
    with wave.open("sounds/prompts/music_on_hold.wav", "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))


if __name__ == "__main__":
    main()
