"""Object detection, the curriculum's way: classification with localisation, landmarks, sliding windows (naive
and convolutional), and YOLO (v2-style: a grid of cells, anchor boxes, one forward pass).

    from cnnkit.detect.yolo import decode_predictions, postprocess, kmeans_anchors
    from cnnkit.detect.sliding_window import naive_sliding_window, to_convolutional
"""
