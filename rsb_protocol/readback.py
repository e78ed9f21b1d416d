"""Read-back (short authentication) string: what customer and engineer read to each other.

Each end derives it from the session id and every participant's public key as that end sees
them. Customer and engineer are already on the phone; if the strings match, nobody (the
broker included) swapped a key in between. Derivation, also done by the browser console::

    entry  = len(algorithm name) u8 || algorithm name (ASCII) || raw public key
    ikm    = all entries, sorted bytewise, concatenated
    okm    = HKDF-SHA256(ikm, salt = session id (UTF-8), info = "rsb v1 readback", 12 bytes)
    digits = (okm[0:8] as big-endian integer) mod 1,000,000, six digits with leading zeros
    words  = WORDS[okm[8]], WORDS[okm[9]], WORDS[okm[10]], WORDS[okm[11]]

Sorting makes the result independent of the order keys arrived in. The six digits carry about
20 bits and the four words 32 bits: a party that can choose its substituted keys after seeing
the real ones could search for a collision, so read the words where time allows
(docs/protocol.md, "Read-back string").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rsb_protocol.e2e import PublicKey

__all__ = ["WORDS", "ReadbackString", "readback"]

READBACK_INFO = b"rsb v1 readback"

WORDS: tuple[str, ...] = tuple(
    """
    acorn actor album amber anchor ankle anvil apple apron arrow atlas attic award bacon
    badge bagel bamboo banjo barrel basket beach beaver beetle bench biscuit bishop blanket
    blossom bottle bridge bucket button cabin cactus camel canal candle canyon carpet castle
    cello cherry chess circle clover cobra comet copper cotton crayon cricket crown crystal
    daisy dancer denim desert diamond dinner doctor dolphin donkey dragon drum duck dune
    eagle easel echo elbow ember engine falcon feather fence fiddle finger flame flute
    forest fossil fox fridge frog galaxy garden garlic geyser giant ginger giraffe glacier
    globe glove goat gopher gravel guitar hammer hammock harbor harvest helmet hermit hippo
    honey hornet hotel husky iceberg igloo index island ivory jacket jaguar jasmine jelly
    jersey jewel jigsaw jockey juice jungle kayak kernel kettle kidney kitten koala ladder
    lagoon lantern laptop lava lemon leopard lettuce lily lizard lobster lotus magnet mango
    maple marble meadow melon mirror monkey mosaic muffin museum mustard napkin nectar
    needle nomad noodle nugget nutmeg oasis ocean office olive onion orange orbit orchid
    otter oyster paddle panda parrot peanut pebble pencil pepper piano pickle pillow pilot
    pirate planet potato prism pumpkin puppet puzzle quartz quilt quiver rabbit radio raft
    raisin raven rhubarb ribbon robot rocket ruby saddle salmon sandal satin scarf shadow
    shovel silver skate spider spinach sponge squid statue sugar summit sunset tablet tango
    teapot temple tennis thimble tiger tomato tractor trumpet tulip tundra tunnel turtle
    tuxedo umpire unicorn urchin valley velvet violin volcano voyage waffle wagon walnut
    wheat whistle window wizard wolf wombat yacht yarn yogurt zebra zipper
    """.split()
)
"""256 short, distinct, easy-to-say English words; index = one byte of the derived value."""


@dataclass(frozen=True)
class ReadbackString:
    """The two spoken forms of one read-back value.

    Attributes:
        digits: Six decimal digits, e.g. ``"042917"``.
        words: Four words from ``WORDS``.
    """

    digits: str
    words: tuple[str, str, str, str]

    def __str__(self) -> str:
        return f"{self.digits[:3]} {self.digits[3:]} / {' '.join(self.words)}"


def _entry(key: PublicKey) -> bytes:
    name = key.algorithm.value.encode("ascii")
    return bytes([len(name)]) + name + key.raw


def readback(session_id: str | bytes, public_keys: Iterable[PublicKey]) -> ReadbackString:
    """Derive the read-back string for a session.

    Args:
        session_id: The session id (a ``str`` is taken as UTF-8).
        public_keys: Every participant's public key (agent and all viewers, and the recording
            key if the session is recorded), in any order.

    Returns:
        The digits and the words; equal inputs give equal output whatever their order.

    Raises:
        ValueError: Empty session id, or no key.
    """
    salt = session_id.encode("utf-8") if isinstance(session_id, str) else bytes(session_id)
    entries = sorted(_entry(key) for key in public_keys)
    if not salt or not entries:
        raise ValueError("a read-back string needs a session id and at least one key")
    okm = HKDF(algorithm=hashes.SHA256(), length=12, salt=salt, info=READBACK_INFO).derive(
        b"".join(entries)
    )
    digits = f"{int.from_bytes(okm[:8], 'big') % 1_000_000:06d}"
    return ReadbackString(digits, (WORDS[okm[8]], WORDS[okm[9]], WORDS[okm[10]], WORDS[okm[11]]))
