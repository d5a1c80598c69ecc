"""TensorFlow's in-memory file system (ram://) made visible to Beam, for the tests.

A stand-in for a bucket: neither Beam nor the framework can reach it through the local disk, and
Beam and TensorFlow then see the same files, as they both see gs://. Importing this module
registers the scheme with Beam (Beam finds FileSystem subclasses by their scheme()).
"""
from __future__ import annotations

import io
import posixpath

import tensorflow as tf
from apache_beam.io.filesystem import (BeamIOError, CompressedFile, CompressionTypes,
                                       FileMetadata, FileSystem)

SCHEME = "ram"


class _Upload(io.BytesIO):
    """Written in memory and stored on close, as an object-store upload is (ram:// files opened
    for writing cannot tell their position, which Beam's compressed writer asks)."""

    mode = "wb"  # Beam's CompressedFile asks

    def __init__(self, path):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            with tf.io.gfile.GFile(self.path, "wb") as f:
                f.write(self.getvalue())
        super().close()


class RamFileSystem(FileSystem):
    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return posixpath.join(basepath.rstrip("/"), *paths)

    def split(self, path):
        head, tail = path.rstrip("/").rsplit("/", 1)
        return head, tail

    def mkdirs(self, path):
        tf.io.gfile.makedirs(path)

    def has_dirs(self):
        return True

    def _list(self, dir_or_prefix):
        if not tf.io.gfile.exists(dir_or_prefix):
            return
        for directory, _, names in tf.io.gfile.walk(dir_or_prefix):
            for name in names:
                path = self.join(directory, name)
                yield FileMetadata(path, tf.io.gfile.stat(path).length, 0.0)

    def _open(self, path, mode, compression_type):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        raw = _Upload(path) if mode == "wb" else tf.io.gfile.GFile(path, mode)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream",
               compression_type=CompressionTypes.AUTO):
        tf.io.gfile.makedirs(self.split(path)[0])
        return self._open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
        return self._open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names):
            tf.io.gfile.copy(source, destination, overwrite=True)

    def rename(self, source_file_names, destination_file_names):
        errors = {}
        for source, destination in zip(source_file_names, destination_file_names):
            try:
                tf.io.gfile.makedirs(self.split(destination)[0])
                tf.io.gfile.rename(source, destination, overwrite=True)
            except tf.errors.OpError as e:
                errors[(source, destination)] = e
        if errors:
            raise BeamIOError("Rename operation failed", errors)

    def exists(self, path):
        return tf.io.gfile.exists(path)

    def size(self, path):
        return tf.io.gfile.stat(path).length

    def last_updated(self, path):
        return tf.io.gfile.stat(path).mtime_nsec / 1e9

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        return FileMetadata(path, self.size(path), self.last_updated(path))

    def delete(self, paths):
        errors = {}
        for path in paths:
            try:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)
            except tf.errors.OpError as e:
                errors[path] = e
        if errors:
            raise BeamIOError("Delete operation failed", errors)
