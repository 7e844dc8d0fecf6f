"""Region-proposal detectors: selective search, R-CNN, Fast R-CNN and Faster R-CNN (torchvision's layout).

    from cnnkit.detect.rcnn.proposals import selective_search      # ranked boxes from a segmentation
    from cnnkit.detect.rcnn.faster_rcnn import FasterRCNN           # RPN + Fast R-CNN head, end to end
    model = create_model("faster_rcnn_darknet_tiny", num_classes=5)
    detections = model.eval()([image_chw])                          # [{"boxes", "labels", "scores"}]
"""
