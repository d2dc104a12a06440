"""A text projector: raw text -> fixed ternary vectors by hashing n-grams, no vocabulary.

:class:`Projector` turns a string into a ``T x B`` vector of values in {-1, 0, +1}
(``T`` = ``num_hashes`` hash functions, ``B`` = ``bits`` values from each) by
locality-sensitive hashing of word and character n-grams, as in ProjectionNet (Ravi 2017),
Self-Governing Neural Networks (Ravi and Kozareva 2018) and PRADO (Kaliamoorthi et al.
2019). Nothing is learned and nothing is stored but a dozen integers: the O(V * d)
embedding table of a word model becomes O(T) hash seeds.

The C projector (:mod:`effkeras.deploy.c_featurizer`, ``effkeras/deploy/c/efk_projector.c``)
implements the same specification bit for bit; this module is its reference. Both live on
the device side (:mod:`effkeras.deploy`, no TensorFlow) so that a projection model deploys
from its .tflite file alone: :func:`projector_metadata` is what
``effkeras.convert.to_tflite(..., projector=p)`` stores in the file (metadata entry
:data:`PROJECTOR_METADATA`), :func:`read_projector` reads it back.
:mod:`effkeras.text.projector` re-exports everything here. Everything
below is defined on bytes, so both sides agree on every input, valid UTF-8 or not.

Specification (version 1)
-------------------------

1. **Unicode.** ``str`` input is first normalized in Python only (``normalization``):
   ``"none"`` leaves it as is; ``"nfkc_casefold"`` applies ``unicodedata.normalize("NFKC")``
   then ``str.casefold()``. It is then encoded to UTF-8 (lone surrogates with
   ``surrogatepass``). The C projector has no Unicode tables: it receives UTF-8 bytes that
   the caller has already normalized (call :func:`normalize_text` on the host, or use
   ``"none"``, whose only case rule is the ASCII one in 2). For ASCII text both
   normalizations give the same bytes as ``"none"`` with ``lowercase=True``.
2. **Bytes.** With ``lowercase=True`` the bytes ``A``-``Z`` become ``a``-``z``; no other
   byte changes.
3. **Tokens.** Bytes ``0x00``-``0x20`` and ``0x7F`` (ASCII controls and space) separate
   tokens. ASCII punctuation (``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``) is a one-byte token of
   its own with ``keep_punctuation=True`` and a separator otherwise. Every other byte
   (ASCII letters and digits, and all bytes ``>= 0x80``, so any non-ASCII character)
   belongs to word tokens: a token is a maximal run of them. CJK text without spaces is
   one token; its character n-grams carry it.
4. **Characters.** Inside a token a character starts at its first byte and at every byte
   that is not a UTF-8 continuation byte (``byte & 0xC0 != 0x80``): code points for valid
   UTF-8, never a split multibyte character.
5. **Hashes.** ``fnv(bytes)`` is FNV-1a 32 (basis ``0x811C9DC5``, prime ``0x01000193``).
   The token hash is ``fnv(token)``. A word n-gram ending at token ``i`` (``n`` in
   ``ngram_range``, ``i >= n - 1``) is the feature ``fnv(b"W" + bytes([n]) + le32(h[i-n+1])
   + ... + le32(h[i]))``. With ``char_ngrams=(a, b)`` each token also gives, for ``n`` in
   ``a..b``, the feature ``fnv(b"C" + bytes([n]) + chars[s:s+n])`` for every window of
   ``n`` characters of ``\\x02 + token + \\x03`` (``0x02``/``0x03`` mark its ends).
6. **Projection.** Hash function ``t`` (``0 <= t < T``) has the key
   ``k[t] = fmix32(seed + 0x9E3779B9 * (t + 1))`` (mod 2**32; ``fmix32`` is MurmurHash3's
   finalizer). A feature ``f`` gives the word ``w = fmix32(f ^ k[t])`` and, for
   ``0 <= b < B``, the value ``+1 if bit b of w else -1`` (``mode="binary"``, B <= 32) or
   ``bit(2b) - bit(2b + 1)`` (``mode="ternary"``, B <= 16, so 0 half of the time). Output
   element ``t * B + b`` is the sign (-1, 0 or +1) of the sum of those values over the
   features.
7. **Bag or sequence.** With ``max_tokens=None`` the sum runs over every feature of the
   text (output ``(T*B,)``; an empty text gives zeros). With ``max_tokens=L`` row ``i``
   sums only the features of token ``i`` (word n-grams ending there and its character
   n-grams); the first ``L`` tokens are kept, the rest are dropped, missing rows are zeros
   (output ``(L, T*B)``).

The output is integer ternary, so a model's int8 input represents it exactly when its
input scale is 1/127 with zero point 0 (see :func:`calibration_data`).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from effkeras.errors import InvalidModelError

#: Version of the specification above; part of every config, checked by the C emitter.
SPEC_VERSION = 1
MODES = ("binary", "ternary")
NORMALIZATIONS = ("none", "nfkc_casefold")
MAX_NGRAM = 8  # longest word or character n-gram (the C ring buffer holds this many)

FNV_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
GOLDEN = 0x9E3779B9
BOS, EOS = 0x02, 0x03
_MASK = 0xFFFFFFFF
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


# ---- hashing --------------------------------------------------------------------------


def fnv1a32(data: bytes, h: int = FNV_BASIS) -> int:
    """FNV-1a 32-bit hash of ``data`` (continuing from ``h``)."""
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & _MASK
    return h


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finalizer (a bijection with full avalanche)."""
    h &= _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def _fmix32_np(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def hash_keys(seed: int, num_hashes: int) -> np.ndarray:
    """The per-hash-function keys ``k[t] = fmix32(seed + 0x9E3779B9 * (t + 1))``."""
    return np.array(
        [fmix32((seed + GOLDEN * (t + 1)) & _MASK) for t in range(num_hashes)], np.uint32
    )


# ---- text -> bytes -> tokens -> features ----------------------------------------------


def normalize_text(text: str, normalization: str = "nfkc_casefold") -> str:
    """Unicode normalization done on the host before either projector sees the text.

    ``"nfkc_casefold"``: NFKC (compatibility forms folded: full-width letters, ligatures,
    superscripts) then ``str.casefold()`` (full case folding, e.g. ``"Straße"`` ->
    ``"strasse"``). ``"none"``: unchanged.
    """
    if normalization == "none":
        return text
    if normalization == "nfkc_casefold":
        return unicodedata.normalize("NFKC", text).casefold()
    raise ValueError(
        f"normalization must be one of {NORMALIZATIONS}. Received: normalization={normalization!r}"
    )


def _lower_ascii(data: bytes) -> bytes:
    return data.translate(_LOWER_TABLE)


_LOWER_TABLE = bytes(b + 32 if 0x41 <= b <= 0x5A else b for b in range(256))


def tokenize_bytes(data: bytes, keep_punctuation: bool = True) -> list[bytes]:
    """Split UTF-8 bytes into tokens by rule 3 of the specification."""
    tokens: list[bytes] = []
    start = -1
    for i, byte in enumerate(data):
        if byte <= 0x20 or byte == 0x7F or byte in _PUNCT:
            if start >= 0:
                tokens.append(data[start:i])
                start = -1
            if keep_punctuation and byte in _PUNCT:
                tokens.append(data[i : i + 1])
        elif start < 0:
            start = i
    if start >= 0:
        tokens.append(data[start:])
    return tokens


def split_chars(token: bytes) -> list[bytes]:
    """A token's characters (rule 4): code points for valid UTF-8, never a split one."""
    chars: list[bytes] = []
    start = 0
    for i in range(1, len(token)):
        if token[i] & 0xC0 != 0x80:
            chars.append(token[start:i])
            start = i
    if token:
        chars.append(token[start:])
    return chars


@functools.lru_cache(maxsize=1 << 16)
def _char_features(token: bytes, char_min: int, char_max: int) -> tuple[int, ...]:
    seq = [bytes([BOS]), *split_chars(token), bytes([EOS])]
    out = []
    for n in range(char_min, char_max + 1):
        prefix = fnv1a32(bytes([0x43, n]))
        for s in range(len(seq) - n + 1):
            out.append(fnv1a32(b"".join(seq[s : s + n]), prefix))
    return tuple(out)


def _word_feature(hashes: Sequence[int]) -> int:
    h = fnv1a32(bytes([0x57, len(hashes)]))
    for th in hashes:
        h = fnv1a32(int(th).to_bytes(4, "little"), h)
    return h


# ---- the projector --------------------------------------------------------------------


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]. Received: {name}={value!r}")
    return int(value)


def _check_range(name: str, value: Any, allow_none: bool) -> tuple[int, int] | None:
    if value is None and allow_none:
        return None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1] <= MAX_NGRAM
    )
    if not ok:
        extra = " or None" if allow_none else ""
        raise ValueError(
            f"{name} must be (min, max) with 1 <= min <= max <= {MAX_NGRAM}{extra}. "
            f"Received: {name}={value!r}"
        )
    return int(value[0]), int(value[1])


class Projector:
    """Raw text -> ``T x B`` ternary projection of hashed word and character n-grams.

    Deterministic on every platform and Python hash seed (it never calls ``hash()``) and
    bit-exact with the C projector (:func:`effkeras.deploy.c_featurizer.c_sources`). The
    module docstring is the specification.

    Args:
        num_hashes: ``T``, the number of hash functions (1 to 4096).
        bits: ``B``, values taken from each hash: 1-32 for ``"binary"``, 1-16 for
            ``"ternary"``. The output has ``T * B`` values per row.
        mode: ``"binary"`` (each feature adds +-1: SimHash, as in SGNN) or ``"ternary"``
            (each feature adds -1, 0 or +1: PRADO's ternary projection).
        ngram_range: word n-grams ``(min, max)`` to hash, or None for none.
        char_ngrams: character n-grams ``(min, max)`` inside each token, or None.
        max_tokens: None for one vector per text (a bag of all its features: SGNN); an
            integer ``L`` for one row per token, ``(L, T*B)``, truncated and zero-padded
            to ``L`` tokens (PRADO).
        seed: a 32-bit integer that selects the hash functions.
        lowercase: map ASCII ``A-Z`` to ``a-z`` (both projectors).
        keep_punctuation: ASCII punctuation bytes are one-byte tokens (True) or separators.
        normalization: ``"none"`` or ``"nfkc_casefold"``, done in Python before hashing;
            the C projector expects text normalized the same way by its caller.
    """

    def __init__(
        self,
        num_hashes: int = 32,
        bits: int = 16,
        *,
        mode: str = "binary",
        ngram_range: tuple[int, int] | None = (1, 2),
        char_ngrams: tuple[int, int] | None = (3, 3),
        max_tokens: int | None = None,
        seed: int = 0,
        lowercase: bool = True,
        keep_punctuation: bool = True,
        normalization: str = "none",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}. "
                f"Received: normalization={normalization!r}"
            )
        self.num_hashes = _check_int("num_hashes", num_hashes, 1, 4096)
        self.bits = _check_int("bits", bits, 1, 32 if mode == "binary" else 16)
        self.mode = mode
        self.ngram_range = _check_range("ngram_range", ngram_range, allow_none=True)
        self.char_ngrams = _check_range("char_ngrams", char_ngrams, allow_none=True)
        if self.ngram_range is None and self.char_ngrams is None:
            raise ValueError(
                "ngram_range and char_ngrams are both None, so no feature would be hashed. "
                "Received: ngram_range=None, char_ngrams=None"
            )
        self.max_tokens = (
            None if max_tokens is None else _check_int("max_tokens", max_tokens, 1, 65535)
        )
        self.seed = _check_int("seed", seed, 0, _MASK)
        self.lowercase = bool(lowercase)
        self.keep_punctuation = bool(keep_punctuation)
        self.normalization = normalization
        self._keys = hash_keys(self.seed, self.num_hashes)
        self._shifts = np.arange(self.bits, dtype=np.uint32) * (2 if mode == "ternary" else 1)

    # -- shape -------------------------------------------------------------------------

    @property
    def features(self) -> int:
        """Values per row: ``num_hashes * bits``."""
        return self.num_hashes * self.bits

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one text's projection: ``(T*B,)`` or ``(max_tokens, T*B)``."""
        if self.max_tokens is None:
            return (self.features,)
        return (self.max_tokens, self.features)

    # -- projecting ---------------------------------------------------------------------

    def to_bytes(self, text: str | bytes) -> bytes:
        """The bytes both projectors hash: normalized, UTF-8, ASCII-lowercased."""
        if isinstance(text, bytes | bytearray | memoryview):
            data = bytes(text)
        elif isinstance(text, str):
            data = normalize_text(text, self.normalization).encode("utf-8", "surrogatepass")
        else:
            raise TypeError(f"text must be str or bytes. Received: {type(text).__name__}")
        return _lower_ascii(data) if self.lowercase else data

    def tokens(self, text: str | bytes) -> list[bytes]:
        """The tokens of ``text`` (after normalization), as bytes."""
        return tokenize_bytes(self.to_bytes(text), self.keep_punctuation)

    def token_features(self, text: str | bytes) -> list[list[int]]:
        """Feature hashes per token (the order the C projector visits them)."""
        toks = self.tokens(text)
        hashes = [fnv1a32(t) for t in toks]
        out = []
        for i, tok in enumerate(toks):
            feats: list[int] = []
            if self.ngram_range is not None:
                lo, hi = self.ngram_range
                for n in range(lo, min(hi, i + 1) + 1):
                    feats.append(_word_feature(hashes[i - n + 1 : i + 1]))
            if self.char_ngrams is not None:
                feats.extend(_char_features(tok, *self.char_ngrams))
            out.append(feats)
        return out

    def _values(self, feats: np.ndarray) -> np.ndarray:
        """(n,) feature hashes -> (n, T*B) int32 contributions."""
        words = _fmix32_np(feats[:, None] ^ self._keys[None, :])  # (n, T)
        if self.mode == "binary":
            bit = (words[:, :, None] >> self._shifts) & np.uint32(1)
            vals = bit.astype(np.int32) * 2 - 1
        else:
            pos = (words[:, :, None] >> self._shifts) & np.uint32(1)
            neg = (words[:, :, None] >> (self._shifts + np.uint32(1))) & np.uint32(1)
            vals = pos.astype(np.int32) - neg.astype(np.int32)
        return vals.reshape(len(feats), self.features)

    def project(self, text: str | bytes) -> np.ndarray:
        """One text -> its projection, int8 in {-1, 0, 1}, shape :attr:`output_shape`."""
        per_token = self.token_features(text)
        out = np.zeros(self.output_shape, np.int8)
        if self.max_tokens is None:
            flat = [f for feats in per_token for f in feats]
            if flat:
                acc = self._values(np.array(flat, np.uint32)).sum(axis=0, dtype=np.int64)
                out[:] = np.sign(acc)
            return out
        for i, feats in enumerate(per_token[: self.max_tokens]):
            if feats:
                acc = self._values(np.array(feats, np.uint32)).sum(axis=0, dtype=np.int64)
                out[i] = np.sign(acc)
        return out

    def __call__(self, texts: Iterable[str | bytes] | str | bytes) -> np.ndarray:
        """Texts -> float32 projections, shape ``(N, *output_shape)`` (a model's input)."""
        if isinstance(texts, str | bytes):
            texts = [texts]
        items = [t.item() if isinstance(t, np.generic) else t for t in texts]
        if not items:
            return np.zeros((0, *self.output_shape), np.float32)
        return np.stack([self.project(t) for t in items]).astype(np.float32)

    # -- config ------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Everything that defines the projection (``Projector(**config)`` rebuilds it)."""
        return {
            "num_hashes": self.num_hashes,
            "bits": self.bits,
            "mode": self.mode,
            "ngram_range": None if self.ngram_range is None else list(self.ngram_range),
            "char_ngrams": None if self.char_ngrams is None else list(self.char_ngrams),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "lowercase": self.lowercase,
            "keep_punctuation": self.keep_punctuation,
            "normalization": self.normalization,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Projector:
        cfg = dict(config)
        for key in ("ngram_range", "char_ngrams"):
            if cfg.get(key) is not None:
                cfg[key] = tuple(cfg[key])
        return cls(**cfg)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Projector) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.get_config().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"Projector({args})"


# ---- the projector inside a .tflite file ------------------------------------------------

#: Name of the .tflite metadata entry that holds a projection model's projector (JSON).
PROJECTOR_METADATA = "effkeras.projector"


def projector_metadata(projector: Projector) -> bytes:
    """The bytes stored under :data:`PROJECTOR_METADATA`: compact, key-sorted JSON.

    ``{"format": "effkeras.projector", "spec_version": 1, "projector": {...}}`` with
    ``projector`` the :meth:`Projector.get_config` dict.
    """
    if not isinstance(projector, Projector):
        raise TypeError(
            f"projector must be an effkeras Projector. Received: {type(projector).__name__}"
        )
    doc = {
        "format": PROJECTOR_METADATA,
        "spec_version": SPEC_VERSION,
        "projector": projector.get_config(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def projector_from_metadata(data: bytes, source: str = "<bytes>") -> Projector:
    """Rebuild the :class:`Projector` from :func:`projector_metadata`'s bytes.

    Raises:
        InvalidModelError: the bytes are not such JSON, or were written for another
            version of the specification.
    """
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidModelError(
            f"{source}: the {PROJECTOR_METADATA!r} metadata is not JSON ({exc}). Received: "
            f"{bytes(data)[:60]!r}. Re-export with effkeras.convert.to_tflite(..., projector=p)."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != PROJECTOR_METADATA:
        raise InvalidModelError(
            f"{source}: the {PROJECTOR_METADATA!r} metadata is not an effkeras projector. "
            f"Received: {str(doc)[:120]}"
        )
    if doc.get("spec_version") != SPEC_VERSION:
        raise InvalidModelError(
            f"{source}: the projector follows specification version {doc.get('spec_version')!r}, "
            f"this effkeras implements version {SPEC_VERSION}. Use the effkeras that converted "
            f"the model."
        )
    config = doc.get("projector")
    try:
        return Projector.from_config(config)
    except (TypeError, ValueError) as exc:
        raise InvalidModelError(
            f"{source}: the {PROJECTOR_METADATA!r} metadata holds an invalid projector config "
            f"({exc}). Received: {config!r}"
        ) from None


def check_projection_model(tflite: Any, projector: Projector) -> None:
    """Raise :class:`InvalidModelError` unless the model's one input holds ``projector``'s output."""
    from effkeras.convert.flatbuffer import read_tflite

    model = read_tflite(tflite)
    if len(model.inputs) != 1:
        raise InvalidModelError(
            f"A projection model has one input (the projection). Received: "
            f"{len(model.inputs)} inputs"
        )
    inp = model.inputs[0]
    if inp.size != int(np.prod(projector.output_shape)):
        raise InvalidModelError(
            f"The model's input {list(inp.shape)} ({inp.size} values) does not hold the "
            f"projector's output {list(projector.output_shape)}. Received: projector={projector!r}"
        )


def read_projector(tflite: Any) -> Projector | None:
    """The projector stored in a .tflite file (:data:`PROJECTOR_METADATA`), or None.

    Args:
        tflite: .tflite bytes, a path, or a :class:`~effkeras.convert.TFLiteModel`.

    Raises:
        InvalidModelError: the file is not a valid model, or its projector entry is broken.
    """
    from effkeras.convert.flatbuffer import read_tflite

    model = read_tflite(tflite)
    raw = model.metadata.get(PROJECTOR_METADATA)
    if raw is None:
        return None
    return projector_from_metadata(raw, model.source)


def attach_projector(tflite: Any, projector: Projector) -> bytes:
    """``tflite`` with ``projector`` stored in its metadata, so it deploys from the file alone.

    What ``effkeras.convert.to_tflite(..., projector=p)`` does after converting; use it on
    a .tflite converted without. An existing projector entry is replaced. Operators,
    tensors and weights are unchanged (weights stay 16-byte aligned); LiteRT and TFLite
    Micro ignore the entry.

    Raises:
        InvalidModelError: the model's input does not hold ``projector``'s output.
    """
    from effkeras.convert.flatbuffer import read_tflite
    from effkeras.convert.metadata import add_metadata

    model = read_tflite(tflite)
    check_projection_model(model, projector)
    return add_metadata(model.data, PROJECTOR_METADATA, projector_metadata(projector))
