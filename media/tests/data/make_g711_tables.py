#!/usr/bin/env python3.11
"""Generate the G.711 reference tables used by tests/g711_reference.rs.

The tables come from CPython's `audioop` module (present up to Python 3.12), an
implementation independent of ours. Run with Python 3.11 from this directory:

    python3.11 make_g711_tables.py

Outputs (all little-endian, no header):
  ulaw_encode.bin  65,536 bytes: lin2ulaw of every i16 input, in order -32768..=32767
  alaw_encode.bin  65,536 bytes: lin2alaw of every i16 input, in order -32768..=32767
  ulaw_decode.bin  512 bytes: ulaw2lin of every byte 0..=255, as i16
  alaw_decode.bin  512 bytes: alaw2lin of every byte 0..=255, as i16
"""

import audioop
import struct

# audioop works in native byte order; "=" packs natively, and the decode tables are
# re-packed as little-endian so the files are the same on any machine.
all_samples = struct.pack("=65536h", *range(-32768, 32768))
all_bytes = bytes(range(256))

with open("ulaw_encode.bin", "wb") as f:
    f.write(audioop.lin2ulaw(all_samples, 2))
with open("alaw_encode.bin", "wb") as f:
    f.write(audioop.lin2alaw(all_samples, 2))
with open("ulaw_decode.bin", "wb") as f:
    f.write(struct.pack("<256h", *struct.unpack("=256h", audioop.ulaw2lin(all_bytes, 2))))
with open("alaw_decode.bin", "wb") as f:
    f.write(struct.pack("<256h", *struct.unpack("=256h", audioop.alaw2lin(all_bytes, 2))))
