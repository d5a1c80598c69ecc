"""Image files in and out, RGB in memory (OpenCV works in BGR)."""
import cv2
import numpy as np

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
# File endings read as images and as videos (OpenCV decodes them): pipeline.analyze's inputs and
# the preprocessing job's --unlabelled_dir.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".3gp", ".ts", ".gif"}


def write_jpeg(path, image, quality: int = 95) -> None:
    """Write an RGB uint8 image as JPEG; raw `bytes` are written as they are (to plant bad files)."""
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"OpenCV could not encode an image of shape {np.shape(image)} as JPEG")
        data = encoded.tobytes()
    with open(path, "wb") as f:
        f.write(data)


def read_jpeg(path) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 image, None), or (None, reason) when the file cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "image missing"
    except OSError as error:
        return None, f"image unreadable: {error.strerror or error}"
    return decode_jpeg(data)


def decode_jpeg(data: bytes) -> tuple[np.ndarray | None, str | None]:
    if not data.startswith(_JPEG_START):
        return None, "image unreadable: not a JPEG"
    # libjpeg fills a cut-off file with grey and only warns; a missing end marker catches that.
    if not data.rstrip(b"\x00")[-2:] == _JPEG_END:
        return None, "image unreadable: truncated JPEG"
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None, "image unreadable: JPEG decoder failed"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None


def read_image(path) -> tuple[np.ndarray | None, str | None]:
    """(RGB uint8 image, None) of any image file OpenCV reads (JPEG checked as read_jpeg does),
    or (None, reason)."""
    if str(path).lower().endswith((".jpg", ".jpeg")):
        return read_jpeg(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, f"image unreadable: {error.strerror or error}"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, "image unreadable: OpenCV cannot decode it"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


# The one message for a video OpenCV cannot open, wherever it is found (after "<path>: ").
CANNOT_OPEN_VIDEO = ("OpenCV cannot open this video (damaged, or a codec this OpenCV build lacks); "
                     "convert it, e.g. to H.264 MP4 or MJPEG AVI")


def video_opens(path) -> bool:
    capture = cv2.VideoCapture(str(path))
    opened = capture.isOpened()
    capture.release()
    return opened


def open_video(path):
    """(frames/s the container declares or 0.0, iterator of (frame number from 1, timestamp in s,
    RGB uint8 image)) of a local video, or None when OpenCV cannot open it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        return None
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    return fps, _read_frames(capture, fps)


def _read_frames(capture, fps: float):
    try:
        number = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            number += 1
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if stamp <= 0 and number > 1 and fps > 0:   # containers without timestamps
                stamp = (number - 1) / fps
            yield number, stamp, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
