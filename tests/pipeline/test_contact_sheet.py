"""The contact sheet: its geometry, the time stamps drawn on it, its bounds and its font fallbacks."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from pipeline.contact_sheet import (
    GAP_PX,
    MAX_SHEET_HEIGHT,
    TITLE_BAR_PX,
    find_cjk_font,
    find_cjk_font_in,
    make_contact_sheet,
)
from pipeline.models import Screenshot, ShotReason
from tests.support.shots import frames_from, solid_shots

COLOURS = ["red", "navy", "green", "orange", "purple", "teal", "olive"]


def expected_size(count: int, columns: int, thumb_w: int, thumb_h: int, title: bool) -> tuple[int, int]:
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    width = columns * thumb_w + (columns + 1) * GAP_PX
    height = (TITLE_BAR_PX if title else 0) + rows * thumb_h + (rows + 1) * GAP_PX
    return width, height


def cell_box(index: int, columns: int, thumb_w: int, thumb_h: int, title: bool) -> tuple[int, int, int, int]:
    row, column = divmod(index, columns)
    left = GAP_PX + column * (thumb_w + GAP_PX)
    top = (TITLE_BAR_PX if title else 0) + GAP_PX + row * (thumb_h + GAP_PX)
    return left, top, left + thumb_w, top + thumb_h


def distinct_colours(image: Image.Image) -> int:
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is not None
    return len(colours)


@pytest.mark.parametrize(("count", "columns"), [(1, 4), (4, 4), (5, 4), (7, 3), (6, 2)])
def test_grid_dimensions_follow_count_and_columns(tmp_path: Path, count: int, columns: int) -> None:
    shots = solid_shots(tmp_path / "shots", COLOURS[:count])  # 640x360: 16:9
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=columns, thumb_width=200)
    assert dest == tmp_path / "sheet.png"
    with Image.open(dest) as sheet:
        assert sheet.size == expected_size(count, columns, 200, round(200 * 360 / 640), title=False)


def test_each_thumbnail_shows_its_picture_and_a_time_stamp(tmp_path: Path) -> None:
    shots = solid_shots(tmp_path / "shots", COLOURS[:5], step_s=65.0)
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=4, thumb_width=320, title="Quarterly planning")
    assert dest is not None
    thumb_h = 180
    with Image.open(dest) as sheet:
        sheet = sheet.convert("RGB")
        assert sheet.size == expected_size(5, 4, 320, thumb_h, title=True)
        for index, colour in enumerate(COLOURS[:5]):
            left, top, right, bottom = cell_box(index, 4, 320, thumb_h, title=True)
            # The middle of the thumbnail is the screenshot, untouched.
            middle = sheet.crop((left + 100, top + 40, right - 100, bottom - 60))
            assert distinct_colours(middle) == 1
            assert middle.getpixel((0, 0)) == Image.new("RGB", (1, 1), colour).getpixel((0, 0))
            # The lower left corner carries the time: white text on a dark box, so many shades.
            label = sheet.crop((left, bottom - 30, left + 90, bottom))
            assert distinct_colours(label) > 3
            assert max(ImageStat.Stat(label).extrema[0]) > 200  # some near-white text pixels
        # The title bar has text on it; the empty sixth to eighth cells are plain background.
        title_bar = sheet.crop((0, 0, sheet.width, TITLE_BAR_PX))
        assert distinct_colours(title_bar) > 3
        empty = sheet.crop(cell_box(6, 4, 320, thumb_h, title=True))
        assert distinct_colours(empty) == 1


def test_real_frames_make_a_jpeg_sheet(tmp_path: Path, speech_video: Path) -> None:
    shots = frames_from(speech_video, [0.5, 4.5, 8.5, 11.0], tmp_path / "frames")
    dest = make_contact_sheet(shots, tmp_path / "contact_sheet.jpg", title="speech.mp4")
    assert dest is not None
    with Image.open(dest) as sheet:
        assert sheet.format == "JPEG"
        assert sheet.size == expected_size(4, 4, 320, 240, title=True)  # the video is 320x240


def test_nothing_to_draw_gives_none(tmp_path: Path) -> None:
    assert make_contact_sheet([], tmp_path / "sheet.jpg") is None
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00" * 100)
    missing = tmp_path / "missing.jpg"
    shots = [Screenshot(1.0, garbage, ShotReason.SCENE), Screenshot(2.0, missing, ShotReason.SCENE)]
    assert make_contact_sheet(shots, tmp_path / "sheet.jpg") is None
    assert not (tmp_path / "sheet.jpg").exists()


def test_unreadable_screenshots_are_left_out(tmp_path: Path) -> None:
    shots = solid_shots(tmp_path / "shots", COLOURS[:3])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    shots.insert(1, Screenshot(2.0, garbage, ShotReason.SCENE))
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=4, thumb_width=100)
    assert dest is not None
    with Image.open(dest) as sheet:
        assert sheet.size == expected_size(3, 4, 100, round(100 * 360 / 640), title=False)


def test_many_screenshots_are_capped_and_spread_evenly(tmp_path: Path) -> None:
    colours = [f"#{(n * 37) % 256:02x}{(n * 91) % 256:02x}{(n * 53) % 256:02x}" for n in range(60)]
    shots = solid_shots(tmp_path / "shots", colours, size=(160, 90), step_s=1.0)
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=4, thumb_width=160, max_thumbs=12)
    assert dest is not None
    with Image.open(dest) as sheet:
        sheet = sheet.convert("RGB")
        assert sheet.size == expected_size(12, 4, 160, 90, title=False)
        # First and last screenshots are both shown (top left and bottom right cells).
        left, top, _, _ = cell_box(0, 4, 160, 90, title=False)
        assert sheet.getpixel((left + 80, top + 20)) == Image.new("RGB", (1, 1), colours[0]).getpixel((0, 0))
        left, top, _, _ = cell_box(11, 4, 160, 90, title=False)
        assert sheet.getpixel((left + 80, top + 20)) == Image.new("RGB", (1, 1), colours[-1]).getpixel((0, 0))


def test_total_height_is_bounded_for_tall_frames(tmp_path: Path) -> None:
    shots = solid_shots(tmp_path / "shots", ["white"] * 200, size=(90, 400), step_s=1.0)  # very tall
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", columns=2, thumb_width=400, max_thumbs=200)
    assert dest is not None
    with Image.open(dest) as sheet:
        assert sheet.height <= MAX_SHEET_HEIGHT
        assert sheet.width == expected_size(2, 2, 400, 800, title=False)[0]  # aspect capped at 2:1


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    shots = solid_shots(tmp_path / "shots", COLOURS[:2])
    with pytest.raises(ValueError, match="columns"):
        make_contact_sheet(shots, tmp_path / "a.png", columns=0)
    with pytest.raises(ValueError, match="thumb_width"):
        make_contact_sheet(shots, tmp_path / "a.png", thumb_width=4)


def test_a_chinese_title_without_a_usable_font_still_draws(tmp_path: Path) -> None:
    not_a_font = tmp_path / "NotoSansCJK-Regular.ttc"
    not_a_font.write_bytes(b"this is not a font file")
    shots = solid_shots(tmp_path / "shots", COLOURS[:2])
    dest = make_contact_sheet(shots, tmp_path / "sheet.png", title="季度规划会议 " * 30, font_path=not_a_font)
    assert dest is not None
    with Image.open(dest) as sheet:
        assert distinct_colours(sheet.convert("RGB").crop((0, 0, sheet.width, TITLE_BAR_PX))) > 3


def test_a_truetype_font_is_used_when_given(tmp_path: Path) -> None:
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not dejavu.exists():
        pytest.skip("DejaVu Sans is not installed here")
    shots = solid_shots(tmp_path / "shots", COLOURS[:2])
    with_font = make_contact_sheet(shots, tmp_path / "font.png", font_path=dejavu)
    default = make_contact_sheet(shots, tmp_path / "default.png", font_path=tmp_path / "absent.ttf")
    assert with_font is not None and default is not None
    with Image.open(with_font) as a, Image.open(default) as b:
        assert a.size == b.size
        assert a.tobytes() != b.tobytes()  # the labels were drawn with different glyphs


def test_cjk_fonts_are_found_by_name_in_preference_order(tmp_path: Path) -> None:
    assert find_cjk_font_in([tmp_path / "nowhere", tmp_path]) is None
    (tmp_path / "truetype" / "wqy").mkdir(parents=True)
    wqy = tmp_path / "truetype" / "wqy" / "wqy-microhei.ttc"
    wqy.write_bytes(b"")
    assert find_cjk_font_in([tmp_path]) == wqy
    (tmp_path / "opentype" / "noto").mkdir(parents=True)
    noto = tmp_path / "opentype" / "noto" / "NotoSansCJK-Regular.ttc"
    noto.write_bytes(b"")
    assert find_cjk_font_in([tmp_path]) == noto


def test_system_font_lookup_answers_without_failing() -> None:
    found = find_cjk_font()
    assert found is None or found.is_file()
    if found is None and shutil.which("fc-list"):
        # Nothing claimed Chinese support: the sheet will use Pillow's own font.
        assert find_cjk_font_in([Path("/usr/share/fonts")]) is None
