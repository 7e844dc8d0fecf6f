"""Tour: region proposals. Selective search on a scene and its recall against the number of proposals, then the
detector comparison of issue 11 (sliding windows, R-CNN, Fast R-CNN, Faster R-CNN, YOLO on the same scenes) as a
table and a plot, with small training budgets; trained models are cached in the tour's folder.
"""

from __future__ import annotations

import time

from cnnkit.threads import torch_threads

TITLE = "Region proposals: R-CNN, Fast R-CNN, Faster R-CNN, and five detectors compared"
ORDER = 115

BUDGET = {"n_train": 48, "n_test": 16, "n_time": 4, "epochs": 2}
QUICK = {"n_train": 16, "n_test": 4, "n_time": 2, "epochs": 1}
RECALL_SCENES = {"quick": 2, "full": 8}
CACHE = "s115_rcnn_models.pt"


def proposals_figure(image, gt, boxes, recall: dict[int, float]):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.imshow(image)
    for x1, y1, x2, y2 in boxes[:30].tolist():
        a.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="yellow", lw=0.7))
    for x1, y1, x2, y2 in gt.tolist():
        a.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=2))
    a.set_title("first 30 proposals (yellow), objects (green)")
    a.axis("off")
    ns = sorted(recall)
    b.plot(ns, [recall[n] for n in ns], "o-")
    b.set_xscale("log")
    b.set_xlabel("proposals per scene (best first)")
    b.set_ylabel("recall at IoU 0.5")
    b.set_ylim(0, 1.05)
    b.grid(alpha=0.3)
    b.set_title("selective search recall")
    fig.tight_layout()
    return fig


def build(section, ctx) -> None:
    import torch

    from cnnkit.data.scene_dataset import load_scenes
    from cnnkit.detect.rcnn.compare import Budget, compare, ordered, plot, ratios, table
    from cnnkit.detect.rcnn.proposals import selective_search
    from cnnkit.detect.rcnn.recall import proposal_recall

    section.text(
        "Sliding windows classify every window; region-proposal detectors classify only the few regions a cheaper "
        "step proposes. Selective search proposes them without learning: scikit-image's graph-based "
        "segmentation (Felzenszwalb) cuts the scene into small segments, and neighbours are merged greedily by "
        "colour, texture, size and fill similarity until one region is left; every region formed on the way is a "
        "box. Eight strategies (two colour spaces, two segment scales, two similarity mixes) diversify them."
    )
    n = RECALL_SCENES["quick" if ctx.quick else "full"]
    test = load_scenes(train=0, val=0, test=n, size=128, seed=ctx.seed, progress=False, masks=False)["test"]
    props, gts = [], []
    t = time.perf_counter()
    for i in range(n):
        item = test.raw(i)
        props.append(selective_search(item.image, max_proposals=None, seed=ctx.seed))
        gts.append(torch.as_tensor(item.boxes))
    ss_ms = 1000 * (time.perf_counter() - t) / n
    counts = (1, 3, 10, 30, 100, 300)
    recall = proposal_recall(props, gts, counts=counts)
    first_full = next((c for c in counts if recall[c] >= 0.9), None)
    section.figure(proposals_figure(test.raw(0).image, gts[0], props[0], recall), "proposals",
                   "Selective search on a held-out scene, and recall at IoU 0.5 over "
                   f"{n} scenes against the number of proposals kept.")
    mean_props = sum(len(p) for p in props) / n
    section.text(
        f"On {n} held-out scenes selective search made {mean_props:.0f} distinct boxes per scene in "
        f"{ss_ms:.0f} ms each; "
        + (f"the first {first_full} already cover {recall[first_full]:.0%} of the objects at IoU 0.5 "
           f"({recall[300]:.0%} with 300)." if first_full else
           f"recall at IoU 0.5 stays at {recall[300]:.0%} with 300 proposals: below the 90% the lesson expects.")
    )

    spec = QUICK if ctx.quick else BUDGET
    budget = Budget(n_train=spec["n_train"], n_test=spec["n_test"], n_time=spec["n_time"],
                    epochs={k: spec["epochs"] for k in Budget().epochs})
    cache = ctx.out_dir / CACHE
    key = (spec["n_train"], spec["epochs"], ctx.seed)
    models = None
    if cache.exists():
        saved = torch.load(cache, weights_only=False)
        models = saved["models"] if saved.get("key") == key else None
    with torch_threads(1):
        results, models = compare(budget, seed=ctx.seed, models=models, log=lambda *_: None)
    torch.save({"key": key, "models": models}, cache)
    rows, headers = table(results)
    section.table(rows, headers, caption=f"{spec['n_train']} training scenes, {spec['epochs']} epoch(s) each; "
                  f"{spec['n_test']} held-out scenes; time per image = median over {spec['n_time']} scenes, one "
                  "thread, batch of one, proposals included")
    section.figure(plot(results), "comparison", "mAP@0.5 against time per image of the five detectors.")
    r = ratios(results)
    by = {x.name: x for x in results}
    order_text = ("The measured times order R-CNN > Fast R-CNN > Faster R-CNN > YOLO, as the curriculum says"
                  if ordered(results) else
                  "Here the measured times do NOT order R-CNN > Fast R-CNN > Faster R-CNN > YOLO as the curriculum "
                  "says (a busy machine, or too few timed scenes)")
    rc, fr = by["R-CNN"], by["Fast R-CNN"]
    section.text(
        f"{order_text}: relative to YOLO, R-CNN takes {r['R-CNN']:.0f}x, Fast R-CNN {r['Fast R-CNN']:.0f}x, "
        f"Faster R-CNN {r['Faster R-CNN']:.1f}x and sliding windows {r['sliding windows']:.1f}x as long per image. "
        f"Selective search is most of R-CNN's and Fast R-CNN's time ({rc.proposal_ms:.0f} ms of "
        f"{rc.ms_per_image:.0f} and {fr.proposal_ms:.0f} of {fr.ms_per_image:.0f}); without it R-CNN's "
        f"{rc.ms_per_image - rc.proposal_ms:.0f} ms against Fast R-CNN's {fr.ms_per_image - fr.proposal_ms:.0f} ms is "
        "the price of running the backbone once per warped proposal instead of once per image. Faster R-CNN "
        "replaces the proposer by a network sharing the backbone, which removes that cost; YOLO drops the second "
        "stage altogether."
    )
    best = max(results, key=lambda x: x.map50)
    section.text(
        f"With these tiny budgets the mAPs are not the point: the best here is {best.name} at mAP@0.5 "
        f"{best.map50:.2f}. Trained with cnnkit's defaults (README, `benchmarks/bench_detectors.py "
        "--faster-target`), Faster R-CNN is the detector to compare with YOLO on accuracy."
    )
