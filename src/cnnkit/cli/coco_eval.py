"""`cnnkit coco-eval`: COCO mAP of a results file against a ground-truth file, as pycocotools computes it.

    cnnkit coco-eval instances_val.json detections.json
    cnnkit coco-eval instances_val.json detections.json --json

Prints the 12 lines COCOeval.summarize() prints (same wording and numbers); --json prints them under the
names map, map50, map75, map_small, ..., mar_large, with per-class AP. No torch is imported on this path.
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "coco-eval", help="COCO mAP of a results JSON against ground truth (pycocotools' numbers, faster)",
        description="Evaluate detections in COCO results format (image_id, category_id, bbox [x,y,w,h], score) "
                    "against a COCO ground-truth file, exactly as pycocotools' COCOeval does: IoU 0.50:0.95, "
                    "101 recall points, area ranges, maxDets 1/10/100, crowd regions ignored.",
    )
    p.add_argument("gt", metavar="GT.json", help="COCO ground truth (images, annotations, categories)")
    p.add_argument("results", metavar="RESULTS.json", help="COCO results: a list of detections")
    p.add_argument("--iou-type", choices=["bbox", "segm"], default="bbox",
                   help="bbox (default) or segm (RLE masks; uses pycocotools' mask IoU)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON with their usual names")
    p.set_defaults(func=run)


def _read_json(path: str, what: str):
    import json
    import os

    from cnnkit.errors import FileFormatError, MissingFileError

    if not os.path.exists(path):
        raise MissingFileError(f"{what} file {path} does not exist; check the path")
    if os.path.isdir(path):
        raise FileFormatError(f"{what} {path} is a folder; give the JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{what} file {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                              "is it truncated?") from None
    except UnicodeDecodeError:
        raise FileFormatError(f"{what} file {path} is not UTF-8 text JSON") from None


def run(args) -> int:
    import json

    from cnnkit.errors import FileFormatError, InputError
    from cnnkit.metrics.coco import evaluate_coco

    gt = _read_json(args.gt, "ground-truth")
    results = _read_json(args.results, "results")
    if not isinstance(gt, dict) or "images" not in gt:
        raise FileFormatError(f"{args.gt} is not COCO ground truth (an object with 'images', 'annotations', "
                              "'categories')")
    if not isinstance(results, list):
        raise FileFormatError(f"{args.results} is not COCO results (a JSON list of detections, each with image_id, "
                              "category_id, bbox and score)")
    try:
        result = evaluate_coco(gt, results, iou_type=args.iou_type)
    except InputError as e:
        raise InputError(f"{args.results}: {e}") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(result.summary_lines()))
    return 0
