"""Pixel checks: padding and canvas fill, alpha flattening, orientation, colour conversion, frames."""

from __future__ import annotations

import numpy as np
import pyvips

from tests.pipeline.helpers import decoded, edit, pixels


def test_padding_fills_with_background_color_and_keeps_size() -> None:
    result = edit("coffee.jpg", {"padding": "50px", "background": {"color": "#00ff00"}}, {"format": "png"})
    px = pixels(result)
    assert px.shape[:2] == (400, 600)
    # the 50px band is pure green on every side; the centre is the photo
    for band in (px[:45, :], px[-45:, :], px[:, :45], px[:, -45:]):
        assert np.all(band[..., :3] == [0, 255, 0])
    assert not np.all(px[200, 300, :3] == [0, 255, 0])


def test_padding_default_white_for_opaque_input() -> None:
    px = pixels(edit("coffee.jpg", {"padding": "20px 0px"}, {"format": "png"}))
    assert np.all(px[:18, :, :3] == 255)


def test_canvas_fill_colour_and_centering() -> None:
    result = edit(
        "astronaut.png",
        {"resizing": {"width": 400, "height": 200, "fit": "canvas"}, "background": {"color": "#ff0000"}},
        {"format": "png"},
    )
    px = pixels(result)
    assert px.shape[:2] == (200, 400)
    # the 200x200 photo sits in the middle; 100px of red left and right
    assert np.all(px[:, :98, :3] == [255, 0, 0])
    assert np.all(px[:, -98:, :3] == [255, 0, 0])


def test_transparent_input_keeps_alpha_for_png_and_padding_is_transparent() -> None:
    px = pixels(edit("alpha.png", {"padding": "10%"}, {"format": "png"}))
    assert px.shape[2] == 4
    assert px[0, 0, 3] == 0  # padding transparent, as the input had alpha
    assert px[150, 200, 3] == 255


def test_alpha_flattened_onto_white_for_jpeg_never_black() -> None:
    px = pixels(edit("alpha.png", {}, {"format": "jpeg"}))
    assert px.shape[2] == 3
    assert px[5, 5].min() >= 250  # transparent corner became white
    assert px[150, 200, 0] > 200 and px[150, 200, 1] < 60  # the red disc stays red


def test_transparent_colour_on_jpeg_becomes_white() -> None:
    px = pixels(
        edit(
            "coffee.jpg",
            {"padding": "30px", "background": {"color": "transparent"}},
            {"format": "jpeg"},
        )
    )
    assert px[5, 5].min() >= 250


def test_exif_orientation_applied_first() -> None:
    result = edit("exif_rotated_6.jpg", {}, {"format": "png"})
    px = pixels(result)
    assert px.shape[:2] == (300, 200)
    # the red block of the stored top-left is at the top-right once upright (see fixtures/README.md)
    assert px[20, 180, 0] > 200 and px[20, 180, 1] < 50
    assert px[20, 20, 0] < 160 and abs(int(px[20, 20, 0]) - int(px[20, 20, 1])) < 10
    # and the orientation tag is gone, so viewers do not rotate it twice
    assert not decoded(result).get_typeof("orientation")


def test_cmyk_input_converted_to_srgb() -> None:
    result = edit("cmyk.jpg", {}, {"format": "png"})
    image = decoded(result)
    assert image.bands == 3 and image.interpretation == "srgb"
    reference = pyvips.Image.new_from_file("tests/fixtures/chelsea.jpg")
    # the CMYK fixture was made from chelsea: after conversion back the colours are close
    assert abs(image.avg() - reference.avg()) < 12


def test_p3_input_converted_with_its_profile() -> None:
    image = decoded(edit("icc_p3.jpg", {}, {"format": "png"}))
    assert image.interpretation == "srgb"
    assert not image.get_typeof("icc-profile-data")  # stripped: the pixels are sRGB now


def test_sixteen_bit_grey_becomes_8bit_rgb() -> None:
    image = decoded(edit("gray16.png", {}, {"format": "png"}))
    assert image.format == "uchar" and image.bands == 3
    px = image.numpy()
    assert px[0, 0, 0] < 5 and px[0, -1, 0] > 250  # the gradient survives the depth change


def test_animated_gif_first_frame_and_frames_dropped() -> None:
    result = edit("animated.gif", {}, {"format": "png"})
    assert result.frames_dropped == 2
    px = pixels(result)
    assert px.shape[:2] == (80, 120)
    assert px[40, 60, 0] > 200 and px[40, 60, 1] < 60  # frame 1 is red


def test_heic_and_bmp_inputs_decode() -> None:
    for name in ("photo.heic", "photo.bmp", "photo.avif", "photo.webp", "photo.tiff"):
        result = edit(name, {"resizing": {"width": 160}})
        assert (result.width, result.height) == (160, 120), name


def test_tiny_image() -> None:
    result = edit("tiny_1x1.png", {"resizing": {"width": 10, "height": 10, "fit": "crop"}})
    assert (result.width, result.height) == (10, 10)
