"""Quicklook PNG: true-colour band order, shared robust stretch, decimation, cloudiest date."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearcube.errors import BadInputError
from clearcube.pipeline.quicklook import cloudiest_date, stretch, true_colour, write_quicklook

BANDS = ("B02", "B03", "B04", "B08")


def test_true_colour_picks_red_green_blue_and_decimates() -> None:
    image = np.stack([np.full((100, 80), v, dtype=np.float32) for v in (2.0, 3.0, 4.0, 8.0)])
    rgb = true_colour(image, BANDS, max_size=30)
    assert rgb[:, 0, 0].tolist() == [4.0, 3.0, 2.0]
    assert rgb.shape == (3, 25, 20)  # step ceil(100 / 30) = 4
    with pytest.raises(BadInputError, match="B04"):
        true_colour(image[:2], ("B02", "B03"))


def test_stretch_maps_percentiles_to_0_and_255_and_nan_to_black() -> None:
    ramp = np.linspace(0.0, 1.0, 101, dtype=np.float64)
    rgb = np.stack([ramp, ramp * 2, ramp + 5]).reshape(3, 1, 101)
    rgb[0, 0, 50] = np.nan
    out, limits = stretch(rgb, percentiles=(10, 90))
    assert out.shape == (1, 101, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(limits[2], np.percentile(ramp + 5, (10, 90)))
    assert out[0, :10, 2].max() == 0 and out[0, 91:, 2].min() == 255
    assert out[0, 50, 0] == 0


def test_cloudiest_date() -> None:
    known = np.ones((4, 5, 5), dtype=bool)
    known[2, :4] = False
    known[1, :1] = False
    assert cloudiest_date(known) == 2
    known[3] = False  # a fully cloudy date is the cloudiest, but shows nothing: passed over
    assert cloudiest_date(known) == 2
    known[0] = False
    known[0, 0, 0] = True  # 4 % clear
    assert cloudiest_date(known) == 0
    assert cloudiest_date(known, min_clear=0.05) == 2
    assert cloudiest_date(np.zeros((2, 3, 3), dtype=bool), min_clear=0.05) == 0  # nothing shows


def test_write_quicklook_side_by_side_with_shared_stretch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    after = rng.uniform(0.05, 0.2, size=(4, 60, 70)).astype(np.float32)
    before = after.copy()
    before[:, 10:30, 10:40] = 0.9  # a cloud: brighter than anything in the composite
    path = write_quicklook(before, after, BANDS, tmp_path / "ql.png")
    png = np.asarray(Image.open(path))
    assert png.shape == (60, 70 + 8 + 70, 3)
    left, right = png[:, :70], png[:, 78:]
    assert np.all(left[10:30, 10:40] == 255)  # the cloud saturates under the composite's stretch
    np.testing.assert_array_equal(left[40:], right[40:])  # identical pixels render identically
    assert [p.name for p in tmp_path.iterdir()] == ["ql.png"]


def test_least_clear_from_fractions_picks_what_cloudiest_date_picks() -> None:
    """The streamed route (clear fractions reduced chunk by chunk) agrees with the in-memory one."""
    from clearcube.pipeline.quicklook import least_clear

    rng = np.random.default_rng(3)
    for _ in range(20):
        known = rng.random((4, 6, 6)) < rng.random((4, 1, 1))
        clear = known.reshape(4, -1).mean(axis=1)
        for floor in (0.0, 0.05, 0.5):
            assert least_clear(clear, min_clear=floor) == cloudiest_date(known, min_clear=floor)


class _CountingArray:
    """A ``(band, y, x)`` array that records the size of every read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.reads = data, []  # type: ignore[var-annotated]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        out = self.data[key]
        self.reads.append(out.size)
        return out


@pytest.mark.parametrize(
    ("height", "width", "step"), [(1300, 777, 1), (1300, 777, 3), (97, 1031, 7)]
)
def test_decimate_equals_a_strided_read_in_windows_of_bounded_size(
    height: int, width: int, step: int
) -> None:
    """The quicklook's windowed decimation picks exactly ``image[bands, ::step, ::step]`` (numpy's
    own slicing is the oracle), and no read is larger than one window of every band."""
    from clearcube.pipeline.quicklook import READ_WINDOW, decimate

    data = np.random.default_rng(step).random((5, height, width), dtype=np.float32)
    image = _CountingArray(data)
    got = decimate(image, step, [3, 0, 2])
    np.testing.assert_array_equal(got, data[[3, 0, 2], ::step, ::step])
    edge = step * -(-READ_WINDOW // step)
    assert max(image.reads) <= 5 * edge * edge
    assert len(image.reads) > 1  # the image was read in pieces
