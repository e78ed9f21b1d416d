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

__all__ = ["WORDS", "WORDS_ES", "WORD_LISTS", "ReadbackString", "readback"]

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

WORDS_ES: tuple[str, ...] = tuple(
    """
    abrigo aceite agua ajo ancla anillo antena ardilla armario arroz avena balde ballena
    banco bandera barba bolsa bosque bota botella brazo broma bufanda burro caballo cabra
    cadena caldo calle camello camino camisa campana campo canasta cangrejo carne casa
    castillo cebolla cebra cepillo cerdo cereza chaleco chispa cine ciruela clavo coche
    cohete collar colmena cometa concha conejo copa cordero corona cuadro cuchara cuello
    cuerda cuervo cueva cuna dedo diente disco ducha escoba espejo esponja estufa farol
    feria fideo fiesta flauta flecha flor foca fresa fruta fuego gafas galleta gallina ganso
    gato gaviota gigante girasol globo goma gorra grano guante guitarra gusano hada harina
    helado hielo hierba higo hongo horno huevo iglesia isla jarra jaula jirafa joya jugo
    lagarto lata lazo leche lechuga lengua lente libreta libro lima lluvia lupa madera
    maleta manta mantel manzana mapa marco marea mesa metro miel mina mochila molino moneda
    mono mosca motor muro museo naranja nariz nevera nieve nube nudo nuez ola olivo oso
    oveja paja palacio paloma pan papel pastel patata patio pavo peine pelota pepino perla
    perro pez pie piedra pincel pinza pipa pirata piscina pista pizarra planta plato playa
    pollo polvo postre pueblo puente puerta pulpo puma rana receta regalo regla reloj remo
    rey roble rodilla rosa rueda salsa sapo selva semilla seta silla sirena sobre sol suelo
    tabla tambor tarta taxi teatro techo teja tenedor tesoro tienda tierra tigre tijera
    tinta tiza toalla tomate toro torre tortuga tren trigo trompeta trueno tubo uva vaca
    vaquero vela ventana verano vestido viento vino violeta yate yegua yogur zapato zorro
    zumo
    """.split()
)
"""256 short, common Spanish nouns for a Spanish-speaking customer, at the same indices as
``WORDS``: ``WORDS_ES[i]`` stands for the same byte as ``WORDS[i]``, so the words say the same
thing in either language. No accents or ñ, and no two words that sound alike or nearly alike
where s/z/c, b/v, ll/y sound the same and h is silent (checked by tests/unit/test_readback_es.py).
The digits are the same in every language: people whose words differ compare the digits."""

WORD_LISTS = {"en": WORDS, "es": WORDS_ES}
"""The word list of each language a read-back can be shown in."""

_INDEX = {word: index for index, word in enumerate(WORDS)}


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

    def words_in(self, language: str) -> tuple[str, ...]:
        """The same four words from the word list of `language` ("en" or "es").

        Args:
            language: A key of ``WORD_LISTS``; any other is taken as English.

        Returns:
            The words at the same indices in that list (a word outside ``WORDS``, which only
            a hand-built value has, is kept as it is).
        """
        words = WORD_LISTS.get(language, WORDS)
        return tuple(words[_INDEX[w]] if w in _INDEX else w for w in self.words)


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
