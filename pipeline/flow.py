"""Flow targets for the auxiliary single-image optical-flow task (docs/data.md, RTATL).

The target of an aligned face t is the dense optical flow from it to the aligned face t + k of the
same sequence (k = the preprocess parameter flow_offset): OpenCV's DIS optical flow (Kroeger et
al., ECCV 2016) with its MEDIUM preset, on the two ALIGNED_SIZE x ALIGNED_SIZE faces in grey,
then area-averaged over FLOW_STRIDE x FLOW_STRIDE cells to schemas.example.FLOW_SHAPE. Units:
aligned pixels, (dx, dy), x to the right and y down: the point at p in face t is near
p + flow(p) in face t + k.

Why MEDIUM: on a face with a smooth 1.5-pixel local displacement (a lip raise, 15-pixel wide) the
end-point error inside the moving region, after area-averaging, was 0.24 px with MEDIUM, 0.61
with FAST, 0.39 with ULTRAFAST and 0.60 with Farneback; facial-muscle motion is that small. It
costs about 6 ms a pair on one core (FAST: 1.4 ms).

Pure numpy / OpenCV: no Beam. (schemas.example imports TensorFlow: import this module where
TensorFlow may load, as the job's workers do in their DoFn set-up.)
"""
import cv2
import numpy as np

from schemas.example import FLOW_SHAPE, FLOW_STRIDE
from schemas.face import ALIGNED_SIZE

DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def grey_face(jpeg: bytes) -> np.ndarray:
    """The aligned face of JPEG bytes as grey uint8 (ALIGNED_SIZE, ALIGNED_SIZE)."""
    grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None or grey.shape != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise ValueError(f"not an aligned {ALIGNED_SIZE} x {ALIGNED_SIZE} face JPEG")
    return grey


def flow_target(face_from: np.ndarray, face_to: np.ndarray, dis=None) -> np.ndarray:
    """float32 FLOW_SHAPE flow (dx, dy), aligned pixels, from grey face `face_from` to `face_to`;
    `dis` an OpenCV DIS instance to reuse (it keeps no state between calls)."""
    dis = dis or cv2.DISOpticalFlow_create(DIS_PRESET)
    flow = dis.calc(face_from, face_to, None)    # (size, size, 2) float32
    size, _, _ = flow.shape
    cells = size // FLOW_STRIDE
    return flow.reshape(cells, FLOW_STRIDE, cells, FLOW_STRIDE, 2).mean(axis=(1, 3)) \
        .astype(np.float32).reshape(FLOW_SHAPE)
