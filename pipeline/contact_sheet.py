"""A contact sheet: the screenshots of one video as a grid of thumbnails, each stamped with its time,
under an optional title bar. One picture shows a whole video at a glance in a chat or a table cell.

Titles are often Chinese, so a CJK font is used where the system has one (Noto CJK, WenQuanYi,
Source Han, ...); otherwise Pillow's built-in font, which has Latin glyphs only but never fails.
The sheet is bounded: at most ``max_thumbs`` thumbnails (picked evenly over the video) and at most
``MAX_SHEET_HEIGHT`` pixels.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from pipeline.models import Screenshot
from pipeline.names import ELLIPSIS, clean_name
from pipeline.subtitles import format_clock

log = logging.getLogger(__name__)

GAP_PX = 8  # around and between thumbnails
TITLE_BAR_PX = 48
MAX_SHEET_HEIGHT = 12_000
MAX_SHEET_WIDTH = 8_000
DEFAULT_MAX_THUMBS = 48
_MIN_THUMB_WIDTH = 32
_JPEG_QUALITY = 85

_BACKGROUND = (24, 24, 24)
_CELL_BACKGROUND = (0, 0, 0)
_LABEL_BACKGROUND = (0, 0, 0)
_TEXT = (255, 255, 255)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Where fonts with Chinese glyphs usually live (Debian/Ubuntu/Alpine packages, macOS, Windows), and
# the file names they go by; fontconfig is asked when none of these is found.
FONT_DIRS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".fonts",
    Path.home() / ".local/share/fonts",
    Path("/System/Library/Fonts"),
    Path("/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)
_CJK_FONT_NAMES = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSerifCJK-Regular.ttc",
    "SourceHanSansSC-Regular.otf",
    "SourceHanSans-Regular.ttc",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "PingFang.ttc",
    "Hiragino Sans GB.ttc",
    "msyh.ttc",
    "simhei.ttf",
)


def make_contact_sheet(
    screenshots: Sequence[Screenshot],
    dest: Path,
    *,
    columns: int = 4,
    thumb_width: int = 320,
    title: str | None = None,
    max_thumbs: int = DEFAULT_MAX_THUMBS,
    font_path: Path | None = None,
) -> Path | None:
    """Draw the screenshots (in time order) into one image at ``dest`` (JPEG or PNG by suffix).

    Returns ``dest``, or None when there is nothing to draw (no screenshots, or none readable).
    ``font_path`` overrides the font lookup; a font that cannot be loaded falls back to the default."""
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    if thumb_width < _MIN_THUMB_WIDTH:
        raise ValueError(f"thumb_width must be at least {_MIN_THUMB_WIDTH}, got {thumb_width}")
    if not screenshots:
        return None
    columns = min(columns, len(screenshots))
    if columns * thumb_width + (columns + 1) * GAP_PX > MAX_SHEET_WIDTH:
        raise ValueError(f"{columns} columns of {thumb_width} px exceed {MAX_SHEET_WIDTH} px")

    ordered = sorted(screenshots, key=lambda s: s.time_s)
    chosen = _spread(ordered, max(1, max_thumbs))
    images = _load(chosen, thumb_width)
    if not images:
        return None

    first = images[0][1]
    aspect = min(2.0, max(0.25, first.height / first.width))
    thumb_height = round(thumb_width * aspect)
    title_height = TITLE_BAR_PX if title else 0
    max_rows = max(1, (MAX_SHEET_HEIGHT - title_height - GAP_PX) // (thumb_height + GAP_PX))
    images = images[: max_rows * columns]
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)

    width = columns * thumb_width + (columns + 1) * GAP_PX
    height = title_height + rows * thumb_height + (rows + 1) * GAP_PX
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font_file = font_path if font_path is not None else find_cjk_font()

    if title:
        title_font = _font(font_file, 22)
        text = _fit(draw, title, title_font, width - 2 * GAP_PX)
        draw.text((GAP_PX, title_height // 2), text, font=title_font, fill=_TEXT, anchor="lm")

    label_font = _font(font_file, max(12, thumb_width // 16))
    for position, (shot, image) in enumerate(images):
        row, column = divmod(position, columns)
        left = GAP_PX + column * (thumb_width + GAP_PX)
        top = title_height + GAP_PX + row * (thumb_height + GAP_PX)
        sheet.paste(_CELL_BACKGROUND, (left, top, left + thumb_width, top + thumb_height))
        thumb = ImageOps.contain(image, (thumb_width, thumb_height))
        sheet.paste(thumb, (left + (thumb_width - thumb.width) // 2, top + (thumb_height - thumb.height) // 2))
        _stamp(draw, format_clock(shot.time_s), label_font, left, top + thumb_height)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp{dest.suffix}")
    if dest.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(tmp, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
    else:
        sheet.save(tmp)
    tmp.replace(dest)
    return dest


def _spread(shots: Sequence[Screenshot], limit: int) -> list[Screenshot]:
    """At most ``limit`` shots, evenly spaced over the list, first and last included."""
    if len(shots) <= limit:
        return list(shots)
    if limit == 1:
        return [shots[0]]
    step = (len(shots) - 1) / (limit - 1)
    return [shots[round(i * step)] for i in range(limit)]


def _load(shots: Iterable[Screenshot], thumb_width: int) -> list[tuple[Screenshot, Image.Image]]:
    loaded: list[tuple[Screenshot, Image.Image]] = []
    for shot in shots:
        try:
            with Image.open(shot.path) as image:
                # JPEG can decode at a fraction of full size: much faster for 1080p frames.
                image.draft("RGB", (thumb_width, thumb_width * 2))
                picture = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("screenshot %s left out of the contact sheet: %s", shot.path.name, exc)
            continue
        if picture.width > 0 and picture.height > 0:
            loaded.append((shot, picture))
    return loaded


def _stamp(draw: ImageDraw.ImageDraw, label: str, font: Font, left: int, bottom: int) -> None:
    """The time in white on a black box at the thumbnail's lower left corner."""
    pad = 4
    x0, y0, x1, y1 = draw.textbbox((0, 0), label, font=font)
    box_w, box_h = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    draw.rectangle((left, bottom - box_h, left + box_w, bottom), fill=_LABEL_BACKGROUND)
    draw.text((left + pad - x0, bottom - box_h + pad - y0), label, font=font, fill=_TEXT)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Font, max_width: int) -> str:
    """``text`` cut with an ellipsis so that it fits ``max_width`` pixels.

    The longest prefix that fits is found by bisection: a prefix never gets narrower as it grows,
    so about log2(len) measurements suffice (cutting one character at a time and measuring the whole
    string again was quadratic: minutes of CPU for a 10 KB title)."""
    text = clean_name(text)
    if draw.textlength(text, font=font) <= max_width:
        return text
    fits, too_long = 0, len(text)  # text[:fits] + "…" fits (or fits is 0); text[:too_long] + "…" does not
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if draw.textlength(text[:middle] + ELLIPSIS, font=font) <= max_width:
            fits = middle
        else:
            too_long = middle
    return text[:fits].rstrip() + ELLIPSIS


def _font(path: Path | None, size: int) -> Font:
    if path is not None:
        # Noto CJK collections hold JP, KR, SC, TC faces in that order: SC has the simplified shapes.
        index = 2 if path.suffix.lower() == ".ttc" and path.name.startswith("NotoS") else 0
        try:
            return ImageFont.truetype(str(path), size=size, index=index)
        except OSError as exc:
            log.warning("font %s not usable, using the default: %s", path, exc)
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=1)
def find_cjk_font() -> Path | None:
    """A font file with Chinese glyphs on this system, or None."""
    return find_cjk_font_in(FONT_DIRS) or _fontconfig_cjk_font()


def find_cjk_font_in(directories: Iterable[Path]) -> Path | None:
    """The first known CJK font file (in ``_CJK_FONT_NAMES`` order of preference) under the
    directories, searched recursively."""
    found: dict[str, Path] = {}
    wanted = {name.lower() for name in _CJK_FONT_NAMES}
    for directory in directories:
        if not directory.is_dir():
            continue
        for root, _dirs, files in os.walk(directory):
            for name in files:
                if name.lower() in wanted:
                    found.setdefault(name.lower(), Path(root) / name)
    for name in _CJK_FONT_NAMES:
        if name.lower() in found:
            return found[name.lower()]
    return None


def _fontconfig_cjk_font() -> Path | None:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        listing = subprocess.run(
            [fc_list, "-f", "%{file}\n", ":lang=zh-cn"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip() for line in listing.splitlines() if line.strip())
    # Prefer regular weights: a sheet in ExtraLight or Black reads badly.
    files.sort(key=lambda f: 0 if "regular" in f.lower() else 1)
    return Path(files[0]) if files else None
