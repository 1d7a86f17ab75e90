"""Opening image files from users with a bound on their size.

A few KB of PNG can declare a 100,000 x 100,000 image (a decompression bomb): decoding it would
take gigabytes. The header's size is checked before any pixel is decoded, PIL's own bomb
warning is an error here, and every failure is one `UserInputError` naming the file.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ..errors import UserInputError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MAX_PIXELS", "open_image"]

#: The most pixels an image file may declare: 2**25, e.g. 8192 x 4096 (a 48-megapixel photo is refused: scale it down).
MAX_PIXELS = 2**25


@contextmanager
def open_image(path: str, what: str = "image") -> Iterator["Image"]:
    """`PIL.Image.open(path)` for the `with` block, once its declared size is within `MAX_PIXELS`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise UserInputError(f"{what} {path} declares {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels: scale it down")
                yield image
    except UserInputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserInputError(f"cannot read {what} {path}: {str(exc)[:200]}; remove or replace this file") from None
