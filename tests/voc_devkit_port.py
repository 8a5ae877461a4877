"""Line-by-line port of the PASCAL VOC devkit's detection scoring, the reference ``metrics`` must equal.

``VOCevaldet.m`` (VOCdevkit, 2007-2012) scores one class: detections of all images sorted by
decreasing confidence (MATLAB's ``sort`` is stable), each compared with every ground truth of
the class in its image using pixel-inclusive boxes (+1 on widths and heights, only positive
overlaps considered, the first of equal overlaps kept), a true positive when ``ovmax >=
minoverlap`` on an unclaimed non-difficult object, "don't care" on a difficult one, else a
false positive. ``VOCap.m`` gives the all-point AP; the VOC2007 branch the 11-point mean.
Kept as loops on purpose: slow and plain, so that the fast code is checked against it.
"""

from __future__ import annotations

import math


def devkit_class_ap(detections, ground_truths, class_id, minoverlap=0.5, eleven_points=False):
    """detections: per image a list of (score, class, (x1, y1, x2, y2)); ground_truths: per image a
    list of (class, (x1, y1, x2, y2), difficult). Returns the AP of ``class_id`` (None: no npos)."""
    gt = []
    npos = 0
    for objects in ground_truths:
        mine = [(box, difficult) for c, box, difficult in objects if c == class_id]
        gt.append({"BB": [b for b, _ in mine], "diff": [d for _, d in mine], "det": [False] * len(mine)})
        npos += sum(1 for _, d in mine if not d)
    ids, confidence, BB = [], [], []
    for image, found in enumerate(detections):
        for score, c, box in found:
            if c == class_id:
                ids.append(image)
                confidence.append(score)
                BB.append(box)
    si = sorted(range(len(confidence)), key=lambda k: -confidence[k])  # [sc,si]=sort(-confidence), stable
    ids = [ids[k] for k in si]
    BB = [BB[k] for k in si]
    nd = len(confidence)
    tp, fp = [0] * nd, [0] * nd
    for d in range(nd):
        i = ids[d]
        bb = BB[d]
        ovmax, jmax = -math.inf, None
        for j, bbgt in enumerate(gt[i]["BB"]):
            bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
            iw = bi[2] - bi[0] + 1
            ih = bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                ua = (
                    (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                    + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1)
                    - iw * ih
                )
                ov = iw * ih / ua
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax >= minoverlap:
            if not gt[i]["diff"][jmax]:
                if not gt[i]["det"][jmax]:
                    tp[d] = 1
                    gt[i]["det"][jmax] = True
                else:
                    fp[d] = 1
        else:
            fp[d] = 1
    if npos == 0:
        return None
    rec, prec, tps, fps = [], [], 0, 0
    for d in range(nd):
        tps, fps = tps + tp[d], fps + fp[d]
        rec.append(tps / npos)
        prec.append(tps / (fps + tps) if fps + tps else math.nan)  # MATLAB: 0/0 is NaN
    if eleven_points:
        ap = 0.0
        for t in [k / 10 for k in range(11)]:
            reached = [p for r, p in zip(rec, prec, strict=True) if r >= t and not math.isnan(p)]
            ap += (max(reached) if reached else 0.0) / 11
        return ap
    mrec = [0.0, *rec, 1.0]
    mpre = [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = mpre[i + 1] if math.isnan(mpre[i]) else max(mpre[i], mpre[i + 1])  # MATLAB's max skips NaN
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
