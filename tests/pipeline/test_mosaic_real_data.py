"""Real Sentinel-2 through tiles -> mosaic store -> COGs -> quicklook -> seam score.

Uses the Sen1Floods11 Spain S2 scene (13 bands, 512 x 512, EPSG:4326) as a stand-in for model
output: tiles are cut from it, so the products must give the scene back, exactly in DN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from mosaic_oracle import assemble, fill_mosaic
from rio_cogeo.cogeo import cog_validate

from clearcube.bands import S2_BANDS
from clearcube.fingerprint import fingerprint
from clearcube.pipeline.cog import COMPOSITE, quantise, write_mosaic_cogs
from clearcube.pipeline.mosaic import MosaicSpec, open_mosaic
from clearcube.pipeline.quicklook import write_quicklook
from clearcube.pipeline.seams import seam_score
from clearcube.pipeline.tiles import plan_tiles

pytestmark = pytest.mark.integration


def test_real_scene_round_trips_through_mosaic_and_cog(test_data: Path, tmp_path: Path) -> None:
    with rasterio.open(test_data / "sen1floods11-spain" / "Spain_7370579_S2Hand.tif") as src:
        dn, crs, transform = src.read(), src.crs, src.transform
    reflectance = dn.astype(np.float32) / 10000.0
    plan = plan_tiles(512, 512, tile=256, overlap=32)
    spec = MosaicSpec(
        plan=plan,
        bands=tuple(S2_BANDS),
        fingerprint=fingerprint({"scene": "spain"}),
        crs=crs.to_wkt(),
        transform=tuple(transform)[:6],
    )
    store = open_mosaic(tmp_path / "mosaic.zarr", spec)
    cut = {t: reflectance[:, t.y0 : t.y1, t.x0 : t.x1] for t in plan}
    assert fill_mosaic(store, lambda t: {"composite": cut[t], "uncertainty": 0 * cut[t]}) == 9
    assemble(store)
    composite = store.array("composite")[:]
    assert seam_score(composite, plan) == pytest.approx(1.0, abs=0.15)  # no tiling trace

    paths = write_mosaic_cogs(store, tmp_path / "out", tags={"sampler": "ddim"})
    assert cog_validate(str(paths["composite"]), quiet=True)[0]
    with rasterio.open(paths["composite"]) as cog:
        written = cog.read()
        assert cog.crs == crs and cog.descriptions == tuple(S2_BANDS)
    np.testing.assert_array_equal(written, quantise(composite, COMPOSITE))
    valid = dn > 0
    assert np.abs(written.astype(int) - dn.astype(int))[valid].max() <= 1  # float32 ties only

    cloudy = reflectance.copy()
    cloudy[:, 100:300, 50:250] = 0.8
    ql = write_quicklook(cloudy, composite, S2_BANDS, tmp_path / "out" / "quicklook.png")
    assert ql.stat().st_size > 1000
