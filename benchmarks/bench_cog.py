"""COG writing throughput: clearcube's writer (from a Zarr store) against ``gdal_translate -of COG``.

Both sides produce the same COG: uint16 DN, deflate + predictor, 512 px blocks, AUTO overviews with
average resampling, ``NUM_THREADS=ALL_CPUS``. clearcube's writer starts from the float32 Zarr
product (the mosaic store's layout) and includes reading, quantising and staging; gdal_translate
starts from a plain (striped, uncompressed) GTiff already holding the quantised DN, which is the
best case for GDAL. The two alternate for ``--repeats`` rounds in one run; the figure is the ratio
of the best times ``clearcube / gdal_translate`` (and each round's ratio, with their median),
and both outputs are checked pixel for pixel.

Usage::

    python benchmarks/bench_cog.py --size 4096 --bands 4 [--repeats 3] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import zarr
from affine import Affine

from clearcube.pipeline.cog import COMPOSITE, quantise, write_cog

CRS = "EPSG:32633"
TRANSFORM = Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5100000.0)


def make_source(root: Path, bands: int, size: int, chunk: int = 512) -> zarr.Array:
    """A float32 reflectance product (band, y, x) in Zarr, written chunk by chunk (seeded)."""
    source = zarr.create_array(
        root / "product.zarr",
        shape=(bands, size, size),
        chunks=(bands, chunk, chunk),
        dtype="float32",
    )
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:chunk, 0:chunk] / chunk
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            h, w = min(chunk, size - y), min(chunk, size - x)
            field = 0.15 + 0.1 * np.sin(6 * (yy[:h, :w] + y / size)) * np.cos(
                5 * (xx[:h, :w] + x / size)
            )
            noise = rng.normal(0, 0.01, size=(bands, h, w))
            source[:, y : y + h, x : x + w] = (field + noise).astype(np.float32)
    return source


def plain_gtiff(source: zarr.Array, path: Path) -> None:
    """The same quantised DN as a plain striped, uncompressed GTiff (gdal_translate's input)."""
    bands, height, width = source.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=bands,
        dtype="uint16",
        crs=CRS,
        transform=TRANSFORM,
        nodata=0,
    ) as dst:
        for y in range(0, height, 512):
            rows = slice(y, min(y + 512, height))
            dst.write(
                quantise(source[:, rows, :], COMPOSITE),
                window=((rows.start, rows.stop), (0, width)),
            )


def ours_cog(source: zarr.Array, path: Path) -> float:
    """Seconds of clearcube's ``write_cog`` of ``source`` to ``path``."""
    t0 = time.perf_counter()
    write_cog(
        source,
        path,
        crs=CRS,
        transform=TRANSFORM,
        band_names=[f"b{i}" for i in range(source.shape[0])],
        tags={"bench": "1"},
    )
    return time.perf_counter() - t0


def gdal_cog(gdal: str, plain: Path, out: Path) -> float:
    """Seconds of ``gdal_translate -of COG`` with the same creation options as clearcube's."""
    options = {
        "COMPRESS": "DEFLATE", "PREDICTOR": "YES", "BLOCKSIZE": "512", "OVERVIEWS": "AUTO",
        "RESAMPLING": "AVERAGE", "NUM_THREADS": "ALL_CPUS", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    cmd = [gdal, "-q", "-of", "COG"]
    for key, value in options.items():
        cmd += ["-co", f"{key}={value}"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, str(plain), str(out)], check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="square grid edge in pixels")
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="alternated rounds (best kept)")
    parser.add_argument("--results", type=Path, help="append a section to this RESULTS.md")
    args = parser.parse_args(argv)
    gdal = shutil.which("gdal_translate")
    if gdal is None:
        print("gdal_translate not found: apt-get install gdal-bin", file=sys.stderr)
        return 2
    gdal_version = subprocess.run(
        [gdal, "--version"], capture_output=True, text=True
    ).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="bench-cog-") as tmp:
        root = Path(tmp)
        source = make_source(root, args.bands, args.size)
        plain_gtiff(source, root / "plain.tif")

        times: dict[str, list[float]] = {"clearcube": [], "gdal_translate": []}
        for _ in range(args.repeats):  # alternated, so load on the machine hits both alike
            times["clearcube"].append(ours_cog(source, root / "ours.tif"))
            times["gdal_translate"].append(gdal_cog(gdal, root / "plain.tif", root / "gdal.tif"))
        ours, theirs = min(times["clearcube"]), min(times["gdal_translate"])
        rounds = [a / b for a, b in zip(times["clearcube"], times["gdal_translate"], strict=True)]

        with rasterio.open(root / "ours.tif") as a, rasterio.open(root / "gdal.tif") as b:
            same = bool(np.array_equal(a.read(), b.read()))
            sizes = (os.path.getsize(root / "ours.tif"), os.path.getsize(root / "gdal.tif"))

    mpix = args.size * args.size / 1e6
    raw_mb = mpix * args.bands * 4
    lines = [
        f"grid {args.size}x{args.size}, {args.bands} bands ({raw_mb:.0f} MB float32 in Zarr)",
        f"best of {args.repeats} alternated rounds; every round: "
        + "; ".join(f"{k} {', '.join(f'{t:.2f}' for t in v)} s" for k, v in times.items()),
        f"clearcube write_cog (Zarr -> COG): {ours:.2f} s = {mpix / ours:.1f} Mpx/s, {raw_mb / ours:.0f} MB/s",
        f"gdal_translate -of COG (GTiff -> COG): {theirs:.2f} s = {mpix / theirs:.1f} Mpx/s",
        f"ratio clearcube / gdal_translate: {ours / theirs:.2f}x time (best vs best); per round "
        + ", ".join(f"{r:.2f}" for r in rounds)
        + f"x, median {float(np.median(rounds)):.2f}x",
        f"pixels identical: {same}; sizes {sizes[0] / 1e6:.1f} MB vs {sizes[1] / 1e6:.1f} MB",
    ]
    print("\n".join(lines))
    if args.results is not None:
        command = "python benchmarks/bench_cog.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), "
            f"Python {platform.python_version()}, {gdal_version}, rasterio GDAL {rasterio.__gdal_version__}"
        )
        with args.results.open("a") as fh:
            fh.write(
                f"\n## COG writing throughput (bench_cog.py)\n\nCommand: `{command}`  \nMachine: {machine}\n\n"
            )
            fh.write("\n".join(f"- {line}" for line in lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
