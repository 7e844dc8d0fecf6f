"""Random COCO ground truth and results with the awkward cases: crowd boxes, empty images, categories without
ground truth, images without detections, duplicates, tied scores, boxes on area-range borders."""

from __future__ import annotations

import numpy as np


def random_coco(seed: int, n_images: int = 200, n_cats: int = 6, max_gt: int = 8, max_dt: int = 30,
                tie_scores: bool = False):
    rng = np.random.default_rng(seed)
    images = [{"id": int(i), "width": 640, "height": 480, "file_name": f"{i}.jpg"}
              for i in rng.choice(10_000, n_images, replace=False)]
    cats = [{"id": int(c), "name": f"c{c}"} for c in sorted(rng.choice(100, n_cats, replace=False))]
    cat_ids = [c["id"] for c in cats]
    with_gt = cat_ids[:-1]  # the last category never has ground truth
    anns, results = [], []
    ann_id = 1
    for im in images:
        kind = rng.random()
        n_gt = 0 if kind < 0.1 or max_gt == 0 else int(rng.integers(1, max_gt + 1))
        gts = []
        for _ in range(n_gt):
            size = rng.choice([8, 24, 32, 60, 96, 150, 250])  # many near the 32 and 96 borders
            w, h = float(size * rng.uniform(0.6, 1.4)), float(size * rng.uniform(0.6, 1.4))
            x, y = float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h))
            crowd = int(rng.random() < 0.08)
            area = w * h * (float(rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else 1.0)
            c = int(rng.choice(with_gt))
            anns.append({"id": ann_id, "image_id": im["id"], "category_id": c, "bbox": [x, y, w, h],
                         "area": area, "iscrowd": crowd})
            gts.append((x, y, w, h, c))
            ann_id += 1
        if kind > 0.9:
            continue  # an image without detections
        n_dt = int(rng.integers(0, max_dt + 1))
        for _ in range(n_dt):
            if gts and rng.random() < 0.6:
                x, y, w, h, c = gts[int(rng.integers(len(gts)))]
                j = rng.normal(0, 0.12, 4) * np.array([w, h, w, h])
                box = [x + j[0], y + j[1], max(w + j[2], 1.0), max(h + j[3], 1.0)]
                if rng.random() < 0.15:
                    c = int(rng.choice(cat_ids))
            else:
                w, h = float(rng.uniform(5, 200)), float(rng.uniform(5, 200))
                box = [float(rng.uniform(0, 600)), float(rng.uniform(0, 440)), w, h]
                c = int(rng.choice(cat_ids))
            score = float(np.round(rng.random(), 1)) if tie_scores else float(rng.random())
            results.append({"image_id": im["id"], "category_id": c, "bbox": [float(v) for v in box],
                            "score": score})
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, results


def pycocotools_eval(gt: dict, results: list, iou_type: str = "bbox"):
    """COCOeval's stats, precision and recall, quietly."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()) as out:
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dets = coco.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco, dets, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev, out.getvalue()
