"""Deterministic 12-megapixel JPEG corpus for the benchmarks.

Same recipe as the corpus of the library anchors (docs/performance.md): a real photo from scikit-image's bundled data
upscaled (Lanczos) to cover a 4000x3000 frame, a second photo inset, a tinted texture blended in, and
sensor-like grain. The grain matters: pure upscales are unrealistically smooth, so they would be small
files that decode too fast; with it the files land near 1.9 bit/px (~2.5-3 MB), like camera JPEGs at q90.

Two sets share the recipe: `jpeg12` (q90 4:2:0, ~2.8 MB, what phones and most cameras write) and `jpeg12-444`
(4:4:4 chroma at q90-95, ~3.8-4.6 MB, what cameras' "fine" settings and editors' exports write; full-resolution
chroma makes the decoder work harder and is where a decoder that cuts corners on chroma would show it).

Files are cached in bench/corpus/<SET>/ (gitignored) and made only once; the content depends only on
the image index and GENERATOR_VERSION, never on clocks or on N, so runs with different N share files.

    .venv/bin/python bench/corpus.py -n 60             # make (or check) the first 60 images and 2 warm-up images
    .venv/bin/python bench/corpus.py -n 60 --chroma 444  # the same for the 4:4:4 set
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

# Bump when the recipe changes: a new folder name keeps stale cached files from being reused.
GENERATOR_VERSION = 1
SET_NAME = f"jpeg12-v{GENERATOR_VERSION}"
CORPUS_DIR = Path(__file__).resolve().parent / "corpus" / SET_NAME
SET_NAME_444 = f"jpeg12-444-v{GENERATOR_VERSION}"
CORPUS_DIR_444 = Path(__file__).resolve().parent / "corpus" / SET_NAME_444
WIDTH, HEIGHT = 4000, 3000
QUALITY = 90
GRAIN_SIGMA = 3.8  # 8-bit levels; tuned so the mean file is ~2.8 MB (1.9 bit/px) like the anchors' jpeg12 set

PHOTOS = [
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "retina.jpg",
    "ihc.png",
]
TEXTURES = ["brick.png", "grass.png", "gravel.png"]

# Warm-up images use a separate seed range so they are never one of the measured images.
_WARMUP_SEED_BASE = 1_000_000


def _skimage_data(name: str) -> Image.Image:
    # Read the files shipped inside the scikit-image wheel directly: no network, no fetcher cache.
    import skimage.data

    return Image.open(Path(skimage.data.__file__).parent / name)


def _cover(img: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A random crop of `img` with the aspect ratio of `size` (70-100% of the largest such crop), scaled to `size`."""
    w, h = img.size
    aspect = size[0] / size[1]
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    scale = rng.uniform(0.7, 1.0)
    cw, ch = max(1, round(cw * scale)), max(1, round(ch * scale))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.LANCZOS)


def quality_444(seed: int) -> int:
    """The 4:4:4 set's quality cycles through 90..95, as camera "fine" settings and editor exports vary."""
    return 90 + seed % 6


def make_image(seed: int, chroma: str = "420") -> bytes:
    """One corpus JPEG; the same seed (and chroma) always gives the same bytes."""
    rng = np.random.default_rng(seed)
    base = _skimage_data(PHOTOS[seed % len(PHOTOS)]).convert("RGB")
    if rng.random() < 0.5:
        base = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    frame = _cover(base, (WIDTH, HEIGHT), rng)

    # A second photo inset, like a product shot composed on a background.
    inset_src = _skimage_data(PHOTOS[int(rng.integers(len(PHOTOS)))]).convert("RGB")
    iw = int(rng.integers(900, 1700))
    ih = round(iw * rng.uniform(0.6, 1.2))
    inset = _cover(inset_src, (iw, ih), rng)
    frame.paste(inset, (int(rng.integers(0, WIDTH - iw)), int(rng.integers(0, HEIGHT - ih))))

    pixels = np.asarray(frame, dtype=np.float32)

    # A tinted texture blended over everything adds mid-frequency detail that upscaled photos lack.
    texture = _skimage_data(TEXTURES[int(rng.integers(len(TEXTURES)))]).convert("L")
    tile = np.asarray(texture.resize((1024, 1024), Image.Resampling.LANCZOS), dtype=np.float32)
    tiled = np.tile(tile, (HEIGHT // 1024 + 1, WIDTH // 1024 + 1))[:HEIGHT, :WIDTH]
    tint = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    alpha = np.float32(rng.uniform(0.12, 0.25))
    pixels = pixels * (1 - alpha) + tiled[..., None] * tint * alpha

    # Grain: mostly luminance noise with a little chroma noise, as a camera sensor gives.
    luma = rng.standard_normal((HEIGHT, WIDTH, 1), dtype=np.float32) * np.float32(GRAIN_SIGMA)
    colour_noise = rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * np.float32(GRAIN_SIGMA / 3)
    pixels += luma
    pixels += colour_noise

    out = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    if chroma == "444":
        out.save(buf, "JPEG", quality=quality_444(seed), subsampling="4:4:4")
    else:
        out.save(buf, "JPEG", quality=QUALITY, subsampling="4:2:0")
    return buf.getvalue()


def _write(path: Path, seed: int, chroma: str) -> None:
    # Write to a temporary name and rename, so an interrupted run never leaves a truncated "cached" file.
    tmp = path.with_suffix(".part")
    tmp.write_bytes(make_image(seed, chroma))
    os.replace(tmp, path)


def corpus_dir(chroma: str = "420") -> Path:
    return CORPUS_DIR_444 if chroma == "444" else CORPUS_DIR


def _ensure(items: list[tuple[Path, int]], jobs: int | None, chroma: str) -> None:
    missing = [(p, s) for p, s in items if not p.exists()]
    if not missing:
        return
    folder = corpus_dir(chroma)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"corpus: generating {len(missing)} image(s) in {folder} ...", file=sys.stderr, flush=True)
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        for future in [pool.submit(_write, p, s, chroma) for p, s in missing]:
            future.result()


def ensure_corpus(
    n: int, warmup: int = 2, jobs: int | None = None, chroma: str = "420"
) -> tuple[list[Path], list[Path]]:
    """Paths of the first `n` measured images and of `warmup` warm-up images, generating any that are missing.

    `chroma` picks the set: "420" (default, `jpeg12`) or "444" (`jpeg12-444`)."""
    folder = corpus_dir(chroma)
    measured = [(folder / f"img-{i:04d}.jpg", i) for i in range(n)]
    warm = [(folder / f"warmup-{i}.jpg", _WARMUP_SEED_BASE + i) for i in range(warmup)]
    _ensure(measured + warm, jobs, chroma)
    return [p for p, _ in measured], [p for p, _ in warm]


def describe(paths: list[Path], chroma: str = "420") -> dict[str, float | int | str]:
    """Count, mean size and bits per pixel of a set of corpus files (for the results header)."""
    sizes = [p.stat().st_size for p in paths]
    mean = sum(sizes) / len(sizes)
    return {
        "set": SET_NAME_444 if chroma == "444" else SET_NAME,
        "count": len(paths),
        "size": f"{WIDTH}x{HEIGHT}",
        "format": "JPEG q90-95 4:4:4" if chroma == "444" else f"JPEG q{QUALITY} 4:2:0",
        "mean_bytes": round(mean),
        "bits_per_pixel": round(mean * 8 / (WIDTH * HEIGHT), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=60, help="measured images (default 60)")
    parser.add_argument("--jobs", type=int, default=None, help="generator processes (default: one per core)")
    parser.add_argument("--chroma", choices=("420", "444"), default="420", help="the set: 4:2:0 (default) or 4:4:4")
    args = parser.parse_args()
    measured, _ = ensure_corpus(args.n, jobs=args.jobs, chroma=args.chroma)
    info = describe(measured, args.chroma)
    print(
        f"{info['count']} x {info['size']} {info['format']}, mean {int(info['mean_bytes']) / 1e6:.2f} MB, "
        f"{info['bits_per_pixel']} bit/px in {corpus_dir(args.chroma)}"
    )


if __name__ == "__main__":
    main()
