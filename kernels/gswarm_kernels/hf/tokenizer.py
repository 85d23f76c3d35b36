"""Text to token ids and back with the model's own `tokenizer.json` (the `tokenizers` library).

Rows come back unpadded: padding belongs to whoever assembles a batch, so a text gets the same ids
alone or among others. Encoders truncate to their `max_length` (special tokens included), as
sentence-transformers does; decoders are not truncated (generation slides its window).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .spec import HFSpec


class TextTokenizer:
    """One model's tokenizer, with the file's own padding and truncation settings replaced."""

    def __init__(
        self, tokenizer_json: str, *, max_length: int | None, lowercase: bool = False
    ) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:  # tokenizers raises its own exception type
            raise ValueError(f"tokenizer.json: not a tokenizers file ({exc})") from None
        self._tokenizer.no_padding()
        if max_length is None:
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(max_length)
        self.lowercase = lowercase

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """int64 ids per text, special tokens added as the file's post-processor says."""
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)
        return [np.asarray(e.ids, dtype=np.int64) for e in self._tokenizer.encode_batch(texts)]

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Text per row of ids, special tokens skipped."""
        return self._tokenizer.decode_batch(
            [list(map(int, r)) for r in rows], skip_special_tokens=True
        )


def tokenizer_for(spec: HFSpec, tokenizer_json: str | None) -> TextTokenizer | None:
    """The model's tokenizer (None without a tokenizer.json: token-id rows only)."""
    if tokenizer_json is None:
        return None
    max_length = None if spec.generates else spec.max_length
    return TextTokenizer(tokenizer_json, max_length=max_length, lowercase=spec.lowercase)
