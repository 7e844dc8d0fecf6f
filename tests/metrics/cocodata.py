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
            if rng.random() < 0.1:  # a duplicate box with another area: equal IoUs, different ignore flags
                anns.append(dict(anns[-1], id=ann_id, area=float(rng.choice([100.0, 2000.0, 20000.0]))))
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


def random_coco_segm(seed: int, n_images: int = 30, with_bbox: bool = False):
    """Ground truth as polygons (crowds as uncompressed RLE) and results as compressed RLE masks."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    h, w = 60, 80
    images = [{"id": i + 1, "width": w, "height": h} for i in range(n_images)]
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    anns, results = [], []

    def ellipse(cx, cy, rx, ry):
        yy, xx = np.mgrid[:h, :w]
        return (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.uint8)

    for im in images:
        objs = []
        for _ in range(int(rng.integers(0, 5))):
            x0, y0 = float(rng.uniform(0, w - 10)), float(rng.uniform(0, h - 10))
            x1, y1 = x0 + float(rng.uniform(3, 30)), y0 + float(rng.uniform(3, 25))
            c = int(rng.integers(1, 3))  # category 3 never has ground truth
            crowd = int(rng.random() < 0.15)
            if crowd:
                m = np.zeros((h, w), dtype=np.uint8)
                m[int(y0):int(y1), int(x0):int(x1)] = 1
                rle = mask_utils.encode(np.asfortranarray(m))
                counts, run, val, flat = [], 0, 0, m.flatten(order="F")  # uncompressed RLE, as COCO crowds are
                for v in flat:
                    if v != val:
                        counts.append(run)
                        run, val = 0, v
                    run += 1
                counts.append(run)
                seg = {"size": [h, w], "counts": counts}
                area = float(mask_utils.area(rle))
            else:
                seg = [[x0, y0, x1, y0, x1, y1, x0, y1]]
                area = (x1 - x0) * (y1 - y0)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": c, "segmentation": seg,
                         "area": area, "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": crowd})
            objs.append((x0, y0, x1, y1, c))
        for _ in range(int(rng.integers(0, 8))):
            if objs and rng.random() < 0.7:
                x0, y0, x1, y1, c = objs[int(rng.integers(len(objs)))]
                m = ellipse((x0 + x1) / 2 + rng.normal(0, 2), (y0 + y1) / 2 + rng.normal(0, 2),
                            (x1 - x0) / 2 + 1, (y1 - y0) / 2 + 1)
            else:
                m = ellipse(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 20), rng.uniform(2, 20))
                c = int(rng.integers(1, 4))
            rle = mask_utils.encode(np.asfortranarray(m))
            rle["counts"] = rle["counts"].decode("ascii")
            det = {"image_id": im["id"], "category_id": c, "segmentation": rle, "score": float(rng.random())}
            if with_bbox:
                det["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
            results.append(det)
    return {"images": images, "annotations": anns, "categories": cats}, results
