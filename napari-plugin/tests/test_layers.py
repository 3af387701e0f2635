"""Layers to library inputs: exemplar boxes and region masks through the layers' scale and translate."""
import numpy as np
import pytest
from napari.layers import Image, Labels, Shapes

from napari_cellcount._layers import (InputError, boxes_for, image_spec, labels_region, point_size, points_data,
                                      shapes_region, shapes_to_boxes)


def rect(r0, c0, r1, c1, *lead):
    lead = list(lead)
    return np.array([lead + [r0, c0], lead + [r0, c1], lead + [r1, c1], lead + [r1, c0]], float)


def test_boxes_in_image_pixels_respect_scale_and_translate():
    image = Image(np.zeros((100, 120)), scale=(0.5, 0.5), translate=(3.0, 4.0))
    # a rectangle in world units 8..13 (rows) x 9..14 (cols) drawn on a layer with its own scale/translate
    shapes = Shapes([rect(2, 2, 4.5, 4.5)], shape_type="rectangle", scale=(2, 2), translate=(4, 5))
    boxes = shapes_to_boxes(shapes, image)
    # world rows 8..13 -> image rows (8-3)/0.5 .. (13-3)/0.5 = 10..20; cols (9-4)/0.5 .. (14-4)/0.5 = 10..20
    assert boxes == {None: [[10.0, 10.0, 20.0, 20.0]]}


def test_any_number_of_boxes_and_bounding_boxes_of_ellipses_and_polygons():
    image = Image(np.zeros((50, 50)))
    shapes = Shapes([rect(0, 0, 5, 6), rect(10, 10, 20, 14), np.array([[30, 30], [40, 35], [33, 45]], float)],
                    shape_type=["rectangle", "ellipse", "polygon"])
    assert shapes_to_boxes(shapes, image)[None] == [[0, 0, 6, 5], [10, 10, 14, 20], [30, 30, 45, 40]]


def test_boxes_on_planes_of_a_stack():
    image = Image(np.zeros((3, 40, 40)))
    flat = Shapes([rect(1, 1, 5, 5)], shape_type="rectangle")  # 2-D: for every plane
    assert shapes_to_boxes(flat, image) == {None: [[1, 1, 5, 5]]}
    per_plane = Shapes([rect(1, 1, 5, 5, 0), rect(2, 2, 6, 6, 2), rect(2, 2, 6, 6, 7)], shape_type="rectangle")
    boxes = shapes_to_boxes(per_plane, image)  # the shape on plane 7 lies on no plane of the image
    assert boxes == {(0,): [[1, 1, 5, 5]], (2,): [[2, 2, 6, 6]]}
    assert boxes_for(boxes, (1,)) == [] and boxes_for(boxes, (2,)) == [[2, 2, 6, 6]]


def test_empty_shapes_and_lines_are_refused():
    image = Image(np.zeros((50, 50)))
    with pytest.raises(InputError, match="empty"):
        shapes_to_boxes(Shapes(name="exemplars"), image)
    with pytest.raises(InputError, match="no area"):
        shapes_to_boxes(Shapes([np.array([[0, 0], [10, 10]], float)], shape_type="line"), image)
    with pytest.raises(InputError, match="empty"):
        shapes_region(Shapes(name="roi"), image, [()])


def test_labels_region_resampled_onto_the_image_grid():
    image = Image(np.zeros((8, 8)))
    lab = np.zeros((4, 4), np.int32)
    lab[1, 2] = 5  # covers image rows 2..3, cols 4..5 at scale 2
    masks = labels_region(Labels(lab, scale=(2, 2), translate=(0.5, 0.5)), image, [()])
    want = np.zeros((8, 8), np.uint8)
    want[2:4, 4:6] = 1
    assert np.array_equal(masks[()], want)
    with pytest.raises(InputError, match="empty"):
        labels_region(Labels(np.zeros((4, 4), np.int32)), image, [()])


def test_labels_region_per_plane_of_a_stack():
    image = Image(np.zeros((2, 6, 6)))
    lab = np.zeros((2, 6, 6), np.int32)
    lab[1, :3, :3] = 1
    masks = labels_region(Labels(lab), image, [(0,), (1,)])
    assert masks[(0,)].sum() == 0 and masks[(1,)].sum() == 9


def test_shapes_region_rasterised_with_pixel_edges():
    image = Image(np.zeros((20, 20)))
    masks = shapes_region(Shapes([rect(-0.5, -0.5, 9.5, 4.5)], shape_type="rectangle"), image, [()])
    want = np.zeros((20, 20), np.uint8)
    want[0:10, 0:5] = 1
    assert np.array_equal(masks[()], want)


def test_rgb_layer_has_three_channels_and_no_extra_plane():
    spec = image_spec(Image(np.zeros((3, 10, 12, 3), np.uint8), rgb=True))
    assert spec.channels == 3 and spec.lead_shape == (3,) and spec.plane_shape == (10, 12)
    assert spec.plane((1,)).shape == (10, 12, 3)


def test_point_size_from_model_info():
    assert point_size({"eval_radius": 5.0}) == 10.0
    assert point_size({"thresholds": {"peak_min_distance": 3.0}}) == 6.0


def test_points_data_rows_and_features():
    class R:
        def __init__(self, yx, ids):
            self.yx = np.array(yx, np.float32).reshape(-1, 2)
            self.n_points = len(self.yx)
            self.class_ids = np.array(ids, np.int32)
            self.scores = np.ones(len(ids), np.float32)

    data, feats = points_data([((0,), R([[1, 2]], [1])), ((2,), R([[3, 4], [5, 6]], [0, 0]))], ["a", "b"])
    assert data.tolist() == [[0, 1, 2], [2, 3, 4], [2, 5, 6]]
    assert list(feats["class"]) == ["b", "a", "a"] and list(feats["plane"]) == ["0", "2", "2"]
