"""Loop-by-loop port of Darknet's training augmentation, the reference ``data.augment`` must equal.

Written from ``load_data_detection``, ``fill_truth_detection``, ``read_boxes``, ``randomize_boxes``
and ``correct_boxes`` (``src/data.c``), ``place_image``, ``bilinear_interpolate``,
``get_pixel_extend``, ``set_pixel``, ``rgb_to_hsv``, ``hsv_to_rgb``, ``scale_image_channel``,
``distort_image``, ``random_distort_image``, ``constrain_image`` and ``flip_image``
(``src/image.c``), ``rand_uniform``, ``rand_scale`` and ``constrain`` (``src/utils.c``).
Images are Darknet's ``image``: w, h, c and one flat list of floats, channel by channel, then row
by row (``data[c*h*w + y*w + x]``). Plain Python floats, so each line can be read beside the C.
``rand()`` is replaced by a queue of the draws (``Rand``), consumed in the order of the C calls.
Three changes, each forced by Python:
- the C stores the geometry in ``float`` (32 bits); here it is a double;
- C's 0 / 0 for a grey pixel's hue gives NaN (unused, its saturation is 0); Python raises, so we
  write NaN ourselves;
- ``read_boxes`` reads a label file; here the rows come as a list (class, x, y, w, h).
"""

from __future__ import annotations

import math


class Rand:
    """C's ``rand()`` for the port: ``uniform()`` stands for ``rand() / RAND_MAX``, ``modulo(n)`` for
    ``rand() % n``, each taking the next draw of the queue (Darknet's call order)."""

    def __init__(self, draws: list):
        self.draws = list(draws)

    def uniform(self) -> float:
        return float(self.draws.pop(0))

    def modulo(self, n: int) -> int:
        value = int(self.draws.pop(0))
        assert 0 <= value < n
        return value


class Image:
    def __init__(self, w: int, h: int, c: int, data: list[float] | None = None):
        self.w, self.h, self.c = w, h, c
        self.data = data if data is not None else [0.0] * (w * h * c)


def make_image(w: int, h: int, c: int) -> Image:
    return Image(w, h, c)


def fill_image(m: Image, s: float) -> None:
    for i in range(m.h * m.w * m.c):
        m.data[i] = s


def get_pixel(m: Image, x: int, y: int, c: int) -> float:
    assert x < m.w and y < m.h and c < m.c
    return m.data[c * m.h * m.w + y * m.w + x]


def get_pixel_extend(m: Image, x: int, y: int, c: int) -> float:
    if x < 0 or x >= m.w or y < 0 or y >= m.h:
        return 0.0
    if c < 0 or c >= m.c:
        return 0.0
    return get_pixel(m, x, y, c)


def set_pixel(m: Image, x: int, y: int, c: int, val: float) -> None:
    if x < 0 or y < 0 or c < 0 or x >= m.w or y >= m.h or c >= m.c:
        return
    m.data[c * m.h * m.w + y * m.w + x] = val


def bilinear_interpolate(im: Image, x: float, y: float, c: int) -> float:
    ix = int(math.floor(x))
    iy = int(math.floor(y))
    dx = x - ix
    dy = y - iy
    val = ((1 - dy) * (1 - dx) * get_pixel_extend(im, ix, iy, c)
           + dy * (1 - dx) * get_pixel_extend(im, ix, iy + 1, c)
           + (1 - dy) * dx * get_pixel_extend(im, ix + 1, iy, c)
           + dy * dx * get_pixel_extend(im, ix + 1, iy + 1, c))  # fmt: skip
    return val


def place_image(im: Image, w: int, h: int, dx: int, dy: int, canvas: Image) -> None:
    for c in range(im.c):
        for y in range(h):
            for x in range(w):
                rx = (x / w) * im.w
                ry = (y / h) * im.h
                val = bilinear_interpolate(im, rx, ry, c)
                set_pixel(canvas, x + dx, y + dy, c, val)


def three_way_max(a: float, b: float, c: float) -> float:
    return (a if a > c else c) if a > b else (b if b > c else c)


def three_way_min(a: float, b: float, c: float) -> float:
    return (a if a < c else c) if a < b else (b if b < c else c)


def rgb_to_hsv(im: Image) -> None:
    assert im.c == 3
    for j in range(im.h):
        for i in range(im.w):
            r = get_pixel(im, i, j, 0)
            g = get_pixel(im, i, j, 1)
            b = get_pixel(im, i, j, 2)
            max_ = three_way_max(r, g, b)
            min_ = three_way_min(r, g, b)
            delta = max_ - min_
            v = max_
            if max_ == 0:
                s = 0.0
                h = 0.0
            else:
                s = delta / max_
                if delta == 0:
                    h = math.nan  # C: (g - b) / delta = 0 / 0
                elif r == max_:
                    h = (g - b) / delta
                elif g == max_:
                    h = 2 + (b - r) / delta
                else:
                    h = 4 + (r - g) / delta
                if h < 0:
                    h += 6
                h = h / 6.0
            set_pixel(im, i, j, 0, h)
            set_pixel(im, i, j, 1, s)
            set_pixel(im, i, j, 2, v)


def hsv_to_rgb(im: Image) -> None:
    assert im.c == 3
    for j in range(im.h):
        for i in range(im.w):
            h = 6 * get_pixel(im, i, j, 0)
            s = get_pixel(im, i, j, 1)
            v = get_pixel(im, i, j, 2)
            if s == 0:
                r = g = b = v
            else:
                index = math.floor(h)
                f = h - index
                p = v * (1 - s)
                q = v * (1 - s * f)
                t = v * (1 - s * (1 - f))
                if index == 0:
                    r, g, b = v, t, p
                elif index == 1:
                    r, g, b = q, v, p
                elif index == 2:
                    r, g, b = p, v, t
                elif index == 3:
                    r, g, b = p, q, v
                elif index == 4:
                    r, g, b = t, p, v
                else:
                    r, g, b = v, p, q
            set_pixel(im, i, j, 0, r)
            set_pixel(im, i, j, 1, g)
            set_pixel(im, i, j, 2, b)


def scale_image_channel(im: Image, c: int, v: float) -> None:
    for j in range(im.h):
        for i in range(im.w):
            pix = get_pixel(im, i, j, c)
            pix = pix * v
            set_pixel(im, i, j, c, pix)


def constrain_image(im: Image) -> None:
    for i in range(im.w * im.h * im.c):
        if im.data[i] < 0:
            im.data[i] = 0.0
        if im.data[i] > 1:
            im.data[i] = 1.0


def distort_image(im: Image, hue: float, sat: float, val: float) -> None:
    rgb_to_hsv(im)
    scale_image_channel(im, 1, sat)
    scale_image_channel(im, 2, val)
    for i in range(im.w * im.h):
        im.data[i] = im.data[i] + hue
        if im.data[i] > 1:
            im.data[i] -= 1
        if im.data[i] < 0:
            im.data[i] += 1
    hsv_to_rgb(im)
    constrain_image(im)


def rand_uniform(rand: Rand, min_: float, max_: float) -> float:
    if max_ < min_:
        min_, max_ = max_, min_
    return rand.uniform() * (max_ - min_) + min_


def rand_scale(rand: Rand, s: float) -> float:
    scale = rand_uniform(rand, 1, s)
    if rand.modulo(2):
        return scale
    return 1.0 / scale


def random_distort_image(rand: Rand, im: Image, hue: float, saturation: float, exposure: float) -> None:
    dhue = rand_uniform(rand, -hue, hue)
    dsat = rand_scale(rand, saturation)
    dexp = rand_scale(rand, exposure)
    distort_image(im, dhue, dsat, dexp)


def flip_image(a: Image) -> None:
    for k in range(a.c):
        for i in range(a.h):
            for j in range(a.w // 2):
                index = j + a.w * (i + a.h * k)
                flip = (a.w - j - 1) + a.w * (i + a.h * k)
                swap = a.data[flip]
                a.data[flip] = a.data[index]
                a.data[index] = swap


def constrain(min_: float, max_: float, a: float) -> float:
    if a < min_:
        return min_
    if a > max_:
        return max_
    return a


def read_boxes(rows: list[tuple]) -> list[dict]:
    boxes = []
    for id_, x, y, w, h in rows:
        boxes.append({"id": int(id_), "x": x, "y": y, "w": w, "h": h,
                      "left": x - w / 2, "right": x + w / 2, "top": y - h / 2, "bottom": y + h / 2})  # fmt: skip
    return boxes


def randomize_boxes(rand: Rand, b: list[dict], n: int) -> None:
    for i in range(n):
        swap = b[i]
        index = rand.modulo(n)
        b[i] = b[index]
        b[index] = swap


def correct_boxes(boxes: list[dict], n: int, dx: float, dy: float, sx: float, sy: float, flip: int) -> None:
    for i in range(n):
        if boxes[i]["x"] == 0 and boxes[i]["y"] == 0:
            boxes[i]["x"] = 999999
            boxes[i]["y"] = 999999
            boxes[i]["w"] = 999999
            boxes[i]["h"] = 999999
            continue
        boxes[i]["left"] = boxes[i]["left"] * sx - dx
        boxes[i]["right"] = boxes[i]["right"] * sx - dx
        boxes[i]["top"] = boxes[i]["top"] * sy - dy
        boxes[i]["bottom"] = boxes[i]["bottom"] * sy - dy
        if flip:
            swap = boxes[i]["left"]
            boxes[i]["left"] = 1.0 - boxes[i]["right"]
            boxes[i]["right"] = 1.0 - swap
        boxes[i]["left"] = constrain(0, 1, boxes[i]["left"])
        boxes[i]["right"] = constrain(0, 1, boxes[i]["right"])
        boxes[i]["top"] = constrain(0, 1, boxes[i]["top"])
        boxes[i]["bottom"] = constrain(0, 1, boxes[i]["bottom"])
        boxes[i]["x"] = (boxes[i]["left"] + boxes[i]["right"]) / 2
        boxes[i]["y"] = (boxes[i]["top"] + boxes[i]["bottom"]) / 2
        boxes[i]["w"] = boxes[i]["right"] - boxes[i]["left"]
        boxes[i]["h"] = boxes[i]["bottom"] - boxes[i]["top"]
        boxes[i]["w"] = constrain(0, 1, boxes[i]["w"])
        boxes[i]["h"] = constrain(0, 1, boxes[i]["h"])


def fill_truth_detection(rand: Rand, rows: list[tuple], num_boxes: int, truth: list[float], flip: int,
                         dx: float, dy: float, sx: float, sy: float) -> None:  # fmt: skip
    boxes = read_boxes(rows)
    count = len(boxes)
    randomize_boxes(rand, boxes, count)
    correct_boxes(boxes, count, dx, dy, sx, sy, flip)
    if count > num_boxes:
        count = num_boxes
    sub = 0
    for i in range(count):
        x = boxes[i]["x"]
        y = boxes[i]["y"]
        w = boxes[i]["w"]
        h = boxes[i]["h"]
        id_ = boxes[i]["id"]
        if w < 0.001 or h < 0.001:
            sub += 1
            continue
        truth[(i - sub) * 5 + 0] = x
        truth[(i - sub) * 5 + 1] = y
        truth[(i - sub) * 5 + 2] = w
        truth[(i - sub) * 5 + 3] = h
        truth[(i - sub) * 5 + 4] = id_


def load_data_detection_one(rand: Rand, orig: Image, rows: list[tuple], w: int, h: int, boxes: int,
                            jitter: float, hue: float, saturation: float,
                            exposure: float) -> tuple[Image, list[float]]:  # fmt: skip
    """One picture of ``load_data_detection``: the w x h canvas and its truth row (5 * boxes floats, x y w h id)."""
    sized = make_image(w, h, orig.c)
    fill_image(sized, 0.5)
    dw = jitter * orig.w
    dh = jitter * orig.h
    new_ar = (orig.w + rand_uniform(rand, -dw, dw)) / (orig.h + rand_uniform(rand, -dh, dh))
    scale = 1
    if new_ar < 1:
        nh = scale * h
        nw = nh * new_ar
    else:
        nw = scale * w
        nh = nw / new_ar
    dx = rand_uniform(rand, 0, w - nw)
    dy = rand_uniform(rand, 0, h - nh)
    place_image(orig, int(nw), int(nh), int(dx), int(dy), sized)  # place_image's int parameters truncate
    random_distort_image(rand, sized, hue, saturation, exposure)
    flip = rand.modulo(2)
    if flip:
        flip_image(sized)
    truth = [0.0] * (5 * boxes)  # make_matrix: calloc
    fill_truth_detection(rand, rows, boxes, truth, flip, -dx / w, -dy / h, nw / w, nh / h)
    return sized, truth


def image_from_array(array) -> Image:
    """A (3, H, W) array as Darknet's image."""
    c, h, w = array.shape
    return Image(w, h, c, [float(v) for v in array.reshape(-1)])


def truth_rows(truth: list[float]) -> list[tuple]:
    """Darknet's truth row -> (class, x, y, w, h) tuples up to the first empty slot (x == 0)."""
    rows = []
    for k in range(len(truth) // 5):
        x, y, w, h, id_ = truth[5 * k : 5 * k + 5]
        if not x:
            break
        rows.append((id_, x, y, w, h))
    return rows
