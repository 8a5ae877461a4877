"""Darknet's training augmentation for one picture: jitter, hue, saturation, exposure and the flip.

Darknet's ``load_data_detection`` (``src/data.c``, as in pjreddie's repository today) makes each
training picture in five moves, with the cfg's options ``jitter``, ``hue``, ``saturation`` and
``exposure`` (the last layer's section; yolov2-voc.cfg and yolov3.cfg have .3, .1, 1.5, 1.5):

1. **a new aspect**: ``new_ar = (W + U(-jitter W, jitter W)) / (H + U(-jitter H, jitter H))``
   for a W x H picture; the longer side of the placed picture is the network's side
   (``new_ar < 1``: ``nh = h``, ``nw = nh * new_ar``; else ``nw = w``, ``nh = nw / new_ar``);
   a random ``scale`` in that code is commented out (``scale = 1``);
2. **a random place**: ``dx = U(0, w - nw)``, ``dy = U(0, h - nh)``, and ``place_image`` samples
   the picture bilinearly into an ``nw x nh`` rectangle at ``(dx, dy)`` of a w x h canvas filled
   with grey 0.5 (``place_image``: output pixel ``x`` samples the picture at ``x / nw * W``);
3. **colour** (``random_distort_image``): to HSV, saturation times ``rand_scale(saturation)``,
   value times ``rand_scale(exposure)``, hue plus ``U(-hue, hue)`` (hue in [0, 1], a full turn),
   back to RGB, clipped to [0, 1]. ``rand_scale(s)`` draws ``U(1, s)`` and takes it or its
   inverse with even odds: 1.5 gives a factor between 1/1.5 and 1.5;
4. **a horizontal flip** with probability 1/2 (``rand() % 2``);
5. **the boxes** (``fill_truth_detection``, ``correct_boxes``): shuffled (``randomize_boxes``),
   each corner moved as the picture moved, ``left * nw / w + dx / w`` (fractions of the
   canvas), mirrored by the flip (``left = 1 - right``), clipped to [0, 1], then the centre and
   sides recomputed; at most ``max`` boxes are kept (``[region]``'s default 30, ``[yolo]``'s
   90), and a box whose width or height is below .001 after clipping is dropped.

The random numbers come from an explicit ``numpy.random.Generator`` (``draw_augmentation``), in
Darknet's order, one draw each whatever the options (a zero jitter still draws, so every
option keeps the same stream): ``aspect_w``, ``aspect_h``, ``place_x``, ``place_y``, ``hue``,
``saturation`` then its parity, ``exposure`` then its parity, ``flip``, then one index per
box for the shuffle. The uniform draws are numbers in [0, 1) that stand for C's
``rand() / RAND_MAX``; ``rand_uniform(lo, hi)`` is ``u * (hi - lo) + lo`` as in ``src/utils.c``.
(C leaves unspecified which operand of ``new_ar``'s division is evaluated first; we draw the
numerator's first.) ``AugmentDraws`` holds them, so ``tests/darknet_augment_port.py``, a
literal port of the C loops, can be fed the same numbers; the geometry is computed in
double precision, the pixels in float32 as Darknet does.

Where Darknet departs from what one would expect (the chapter cites these):

* **the picture and its boxes disagree by up to a pixel**: ``place_image`` takes whole pixels,
  so the picture goes to ``(int) dx`` with ``(int) nw`` columns (C truncates), while the boxes
  are moved with the real ``dx / w`` and ``nw / w``;
* **the right and bottom edge of the picture fade toward black**: ``bilinear_interpolate``
  reads a pixel beyond the picture as 0 (``get_pixel_extend``), and the samples ``x / nw * W``
  start at the left edge, so the last placed column blends the last picture column with black
  whenever the picture is enlarged;
* **the grey padding is distorted too**: the colour step runs on the whole canvas, so the 0.5
  grey becomes ``0.5 * exposure`` (clipped);
* **boxes are clipped silently**: a box that the jitter pushes partly off the canvas is cut to
  the part inside, and one thinner than .001 vanishes, with no message; the cap of ``max``
  boxes applies *before* that drop (so fewer than ``max`` may remain though more were there);
* **a box centred exactly at (0, 0)** is taken by ``correct_boxes`` for an empty slot and
  written as x = y = w = h = 999999; we drop it instead (the port keeps Darknet's values);
* **the hue wraps once**: ``h + dhue`` above 1 loses 1, below 0 gains 1; a hue of exactly 1
  then falls in ``hsv_to_rgb``'s last branch (index 6), magenta instead of red. A grey pixel
  has no hue: C computes 0 / 0 there (NaN, unused because its saturation is 0); we write 0;
* **saturation above 1** is allowed before the conversion back (``p = v (1 - s)`` goes below
  0); only the final clip to [0, 1] bounds the colours.

When the draws leave the colours alone (``hue = 0``, ``saturation = exposure = 1``) we skip the
HSV round trip, which Darknet runs anyway (it changes pixels by float rounding only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CANVAS_GREY = 0.5  # fill_image(sized, .5) in load_data_detection
MIN_SIDE = 0.001  # fill_truth_detection drops a box with w < .001 or h < .001


@dataclass(frozen=True)
class Augmentation:
    """The cfg options of Darknet's training augmentation (defaults: yolov2-voc.cfg, yolov3.cfg).

    jitter: the aspect change, a fraction of each side (``jitter=.3``).
    hue: the largest hue shift, a fraction of the full turn (``hue=.1``: 36 degrees).
    saturation, exposure: the largest factor on S and V, or its inverse (``1.5``).
    flip: whether the coin's flip is applied; pjreddie's Darknet always flips with p = 1/2
    (the coin is drawn even when ``flip=False``, so the other draws stay the same).
    max_boxes: the cfg's ``max``, how many boxes a picture keeps after the shuffle
    (``[region]`` 30, ``[yolo]`` 90); None keeps them all.
    """

    jitter: float = 0.3
    hue: float = 0.1
    saturation: float = 1.5
    exposure: float = 1.5
    flip: bool = True
    max_boxes: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("jitter", 0 <= self.jitter < 1, "a fraction in [0, 1)"),
            ("hue", 0 <= self.hue <= 0.5, "a fraction of the hue circle in [0, 0.5]"),
            ("saturation", self.saturation > 0, "a factor above 0"),
            ("exposure", self.exposure > 0, "a factor above 0"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")
        if self.max_boxes is not None and (int(self.max_boxes) != self.max_boxes or self.max_boxes < 1):
            raise ValueError(f"max_boxes must be a positive whole number or None, got {self.max_boxes!r}")


@dataclass(frozen=True)
class AugmentDraws:
    """The random numbers of one picture, in the order ``load_data_detection`` draws them.

    The uniform draws are in [0, 1) (C's ``rand() / RAND_MAX``); the ``*_keep`` and ``flip``
    draws are ``rand() % 2`` (True: 1); ``box_swaps[i]`` is ``rand() % n`` of ``randomize_boxes``.
    """

    aspect_w: float  # rand_uniform(-dw, dw) added to the picture's width
    aspect_h: float  # rand_uniform(-dh, dh) added to its height
    place_x: float  # dx = rand_uniform(0, w - nw)
    place_y: float  # dy = rand_uniform(0, h - nh)
    hue: float  # dhue = rand_uniform(-hue, hue)
    saturation: float  # rand_scale(saturation): rand_uniform(1, saturation) ...
    saturation_keep: bool  # ... kept when rand() % 2 is 1, else inverted
    exposure: float  # rand_scale(exposure), the same two draws
    exposure_keep: bool
    flip: bool  # rand() % 2 in load_data_detection
    box_swaps: tuple[int, ...]  # randomize_boxes: box i swaps with box box_swaps[i]

    def in_darknet_order(self) -> list[float | int]:
        """The draws as one list, in the order of Darknet's calls to ``rand()``."""
        return [self.aspect_w, self.aspect_h, self.place_x, self.place_y, self.hue, self.saturation,
                int(self.saturation_keep), self.exposure, int(self.exposure_keep), int(self.flip),
                *self.box_swaps]  # fmt: skip


def draw_augmentation(rng: np.random.Generator, num_boxes: int) -> AugmentDraws:
    """The draws for a picture with ``num_boxes`` boxes, from ``rng``, in Darknet's order."""
    u = rng.random(4)  # aspect_w, aspect_h, place_x, place_y
    hue, saturation = rng.random(2)
    saturation_keep = bool(rng.integers(2))
    exposure = rng.random()
    exposure_keep, flip = (bool(b) for b in rng.integers(2, size=2))
    swaps = tuple(int(i) for i in rng.integers(num_boxes, size=num_boxes)) if num_boxes else ()
    return AugmentDraws(float(u[0]), float(u[1]), float(u[2]), float(u[3]), float(hue), float(saturation),
                        saturation_keep, float(exposure), exposure_keep, flip, swaps)  # fmt: skip


def rand_uniform(u: float, low: float, high: float) -> float:
    """``rand_uniform(low, high)`` of ``src/utils.c`` for the draw ``u`` in [0, 1) (bounds swapped if reversed)."""
    if high < low:
        low, high = high, low
    return u * (high - low) + low


def rand_scale(u: float, keep: bool, s: float) -> float:
    """``rand_scale(s)``: ``U(1, s)`` or its inverse."""
    scale = rand_uniform(u, 1.0, s)
    return scale if keep else 1.0 / scale


@dataclass(frozen=True)
class Placement:
    """Where the picture goes on the canvas, in canvas pixels (real numbers, as Darknet computes them)."""

    nw: float
    nh: float
    dx: float
    dy: float


def jitter_placement(image_w: int, image_h: int, net_w: int, net_h: int, jitter: float,
                     draws: AugmentDraws) -> Placement:  # fmt: skip
    """The new aspect, size and offset of ``load_data_detection`` (steps 1 and 2 of the module docstring)."""
    dw, dh = jitter * image_w, jitter * image_h
    new_ar = (image_w + rand_uniform(draws.aspect_w, -dw, dw)) / (image_h + rand_uniform(draws.aspect_h, -dh, dh))
    if new_ar < 1:
        nh = float(net_h)
        nw = nh * new_ar
    else:
        nw = float(net_w)
        nh = nw / new_ar
    return Placement(nw, nh, rand_uniform(draws.place_x, 0.0, net_w - nw), rand_uniform(draws.place_y, 0.0, net_h - nh))


def _sampling(out: int, source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For ``out`` output pixels sampling ``source`` at ``k / out * source``: the two source indices and
    weights of each (a source index past the picture reads 0: its weight is set to 0)."""
    position = np.arange(out, dtype=np.float32) / np.float32(out) * np.float32(source)  # rx = ((float)x / w) * im.w
    floor = np.floor(position)
    frac = position - floor  # float32, as C's dx = x - ix
    first = floor.astype(np.intp)
    second = first + 1
    w_first = (1 - frac) * (first < source)  # get_pixel_extend: 0 outside the picture
    w_second = frac * (second < source)
    return np.minimum(first, source - 1), np.minimum(second, source - 1), w_first, w_second


def place_image(image: np.ndarray, nw: int, nh: int, dx: int, dy: int, canvas: np.ndarray) -> None:
    """Darknet's ``place_image``: sample ``image`` (3, H, W) bilinearly into canvas[:, dy:dy+nh, dx:dx+nw].

    Output pixel (x, y) reads the picture at ``(x / nw * W, y / nh * H)``; pixels that fall off
    the canvas are skipped (``set_pixel``).
    """
    if nw <= 0 or nh <= 0:
        return
    _, height, width = image.shape
    x0, x1, wx0, wx1 = _sampling(nw, width)
    y0, y1, wy0, wy1 = _sampling(nh, height)
    if nh * width <= nw * height:  # along y first, then x (the weights are separable; the cheaper order)
        rows = image[:, y0, :] * wy0[:, None] + image[:, y1, :] * wy1[:, None]  # (3, nh, W)
        placed = rows[:, :, x0] * wx0 + rows[:, :, x1] * wx1  # (3, nh, nw)
    else:
        columns = image[:, :, x0] * wx0 + image[:, :, x1] * wx1  # (3, H, nw)
        placed = columns[:, y0, :] * wy0[:, None] + columns[:, y1, :] * wy1[:, None]  # (3, nh, nw)
    _, canvas_h, canvas_w = canvas.shape
    top, left = max(dy, 0), max(dx, 0)
    bottom, right = min(dy + nh, canvas_h), min(dx + nw, canvas_w)
    if top < bottom and left < right:
        canvas[:, top:bottom, left:right] = placed[:, top - dy : bottom - dy, left - dx : right - dx]


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(3, h, w) RGB in [0, 1] -> (3, h, w) hue, saturation, value, each in [0, 1] (``rgb_to_hsv``).

    The hue's sector is chosen as Darknet chooses it: red when red is the largest (ties
    included), else green, else blue. A grey pixel (no hue: C's 0 / 0) gets hue 0. Each choice
    is a sum of terms times 0-or-1 masks rather than ``np.where``, which is several times
    slower on a mask that changes from pixel to pixel; x * 1 + y * 0 is x exactly.
    """
    r, g, b = rgb
    value = np.maximum(np.maximum(r, g), b)
    delta = value - np.minimum(np.minimum(r, g), b)
    saturation = delta / (value + (value == 0))  # max == 0: s = 0 (then delta is 0 too)
    red = r == value
    green = (g == value) & ~red
    blue = ~(red | green)
    numerator = red * (g - b) + green * (b - r) + blue * (r - g)
    hue = numerator / (delta + (delta == 0)) + (green * np.float32(2) + blue * np.float32(4))  # 2 + (b - r) / delta
    hue += (hue < 0) * np.float32(6)
    hue /= np.float32(6)
    return np.stack([hue, saturation, value])


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(3, h, w) hue, saturation, value -> RGB (``hsv_to_rgb``: six sectors of the hue, index 6 as the last).

    A grey pixel (s = 0) needs no branch of its own: then p = q = t = v.
    """
    hue, saturation, value = hsv
    h6 = 6 * hue
    floor = np.floor(h6)
    index = floor.astype(np.int8)  # 0 .. 6
    f = h6 - floor
    p = value * (1 - saturation)
    q = value * (1 - saturation * f)
    t = value * (1 - saturation * (1 - f))
    # Darknet's table: index 0: (v, t, p), 1: (q, v, p), 2: (p, v, t), 3: (p, q, v), 4: (t, p, v), else (v, p, q)
    i0, i1, i2, i3, i4 = (index == k for k in range(5))
    last = index >= 5
    r = (i0 | last) * value + i1 * q + (i2 | i3) * p + i4 * t
    g = i0 * t + (i1 | i2) * value + i3 * q + (i4 | last) * p
    b = (i0 | i1) * p + i2 * t + (i3 | i4) * value + last * q
    return np.stack([r, g, b])


def distort_image(rgb: np.ndarray, hue: float, saturation: float, exposure: float) -> np.ndarray:
    """Darknet's ``distort_image``: S times ``saturation``, V times ``exposure``, H plus ``hue`` wrapped
    once into [0, 1], back to RGB, clipped to [0, 1]. Returns a new (3, h, w) array."""
    hsv = rgb_to_hsv(rgb)
    hsv[1] *= np.float32(saturation)
    hsv[2] *= np.float32(exposure)
    shifted = hsv[0]
    shifted += np.float32(hue)
    shifted -= shifted > 1  # if (h > 1) h -= 1
    shifted += shifted < 0  # if (h < 0) h += 1
    out = hsv_to_rgb(hsv)
    return np.clip(out, 0, 1, out=out)  # constrain_image


def move_boxes(boxes: np.ndarray, placement: Placement, net_w: int, net_h: int, flip: bool,
               draws: AugmentDraws, max_boxes: int | None = None) -> np.ndarray:  # fmt: skip
    """``fill_truth_detection`` on (K, 5) rows class, cx, cy, w, h (fractions of the picture): shuffled
    by ``draws.box_swaps``, moved with the picture, flipped, clipped to [0, 1], at most ``max_boxes``,
    and those thinner than .001 dropped. Returns (M, 5) rows, fractions of the canvas."""
    rows = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    if len(draws.box_swaps) != len(rows):
        raise ValueError(f"expected one box swap per box, got {len(draws.box_swaps)} for {len(rows)} boxes")
    order = list(range(len(rows)))
    for i, j in enumerate(draws.box_swaps):  # randomize_boxes
        order[i], order[j] = order[j], order[i]
    rows = rows[order]
    empty = (rows[:, 1] == 0) & (rows[:, 2] == 0)  # correct_boxes' empty slot; see the module docstring
    sx, sy = placement.nw / net_w, placement.nh / net_h
    dx, dy = -placement.dx / net_w, -placement.dy / net_h  # as fill_truth_detection passes them
    x, y, w, h = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
    left, right = (x - w / 2) * sx - dx, (x + w / 2) * sx - dx  # read_boxes' corners, then correct_boxes
    top, bottom = (y - h / 2) * sy - dy, (y + h / 2) * sy - dy
    if flip:
        left, right = 1.0 - right, 1.0 - left
    left, right, top, bottom = np.minimum(np.maximum(np.stack([left, right, top, bottom]), 0.0), 1.0)  # constrain
    sides = np.minimum(np.maximum(np.stack([right - left, bottom - top]), 0.0), 1.0)
    moved = np.stack([rows[:, 0], (left + right) / 2, (top + bottom) / 2, sides[0], sides[1]], axis=1)
    keep = ~empty
    if max_boxes is not None:
        keep[max_boxes:] = False  # if(count > num_boxes) count = num_boxes, before the drop
    keep &= (moved[:, 3] >= MIN_SIDE) & (moved[:, 4] >= MIN_SIDE)
    return moved[keep]


def augment_with_draws(image: np.ndarray, boxes: np.ndarray, size: int, options: Augmentation,
                       draws: AugmentDraws) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One picture through ``load_data_detection`` with the given draws.

    image: (3, H, W) float32 RGB in [0, 1] (Darknet's ``load_image_color``; ``data.images``'
    ``image_tensor(read_image(path)).numpy()``). boxes: (K, 5) rows class, cx, cy, w, h, fractions
    of the picture. Returns the (3, size, size) float32 canvas and its (M, 5) float64 rows,
    fractions of the canvas.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a (3, height, width) float image in [0, 1], got {image.dtype} of shape "
                         f"{image.shape} (a uint8 (h, w, 3) picture: images.image_tensor(p).numpy())")  # fmt: skip
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"expected the network's side as a positive whole number of pixels, got {size!r}")
    image = image.astype(np.float32, copy=False)
    _, height, width = image.shape
    placement = jitter_placement(width, height, size, size, options.jitter, draws)
    canvas = np.full((3, size, size), CANVAS_GREY, dtype=np.float32)
    place_image(image, int(placement.nw), int(placement.nh), int(placement.dx), int(placement.dy), canvas)
    dhue = rand_uniform(draws.hue, -options.hue, options.hue)
    dsat = rand_scale(draws.saturation, draws.saturation_keep, options.saturation)
    dexp = rand_scale(draws.exposure, draws.exposure_keep, options.exposure)
    if (dhue, dsat, dexp) != (0.0, 1.0, 1.0):
        canvas = distort_image(canvas, dhue, dsat, dexp)
    flip = options.flip and draws.flip
    if flip:
        canvas = np.ascontiguousarray(canvas[:, :, ::-1])  # flip_image
    return canvas, move_boxes(boxes, placement, size, size, flip, draws, options.max_boxes)


def augment_detection(image: np.ndarray, boxes: np.ndarray, size: int, options: Augmentation,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """``augment_with_draws`` with the draws taken from ``rng`` (``draw_augmentation``): one seed, one result."""
    draws = draw_augmentation(rng, len(np.asarray(boxes).reshape(-1, 5)))
    return augment_with_draws(image, boxes, size, options, draws)
