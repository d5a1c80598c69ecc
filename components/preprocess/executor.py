"""The preprocess stage's executor: runs pipeline.job.run_preprocessing (the Beam job)."""
from __future__ import annotations

from components.base import UserError


def run_executor(inputs, outputs, params) -> dict:
    from pipeline.job import run_preprocessing
    from pipeline.synthetic import SyntheticSpec

    synthetic = None
    if params["dataset"] == "synthetic":
        try:
            synthetic = SyntheticSpec(**(params["synthetic"] or {}))
        except (TypeError, ValueError) as e:
            raise UserError(f"synthetic dataset settings {params['synthetic']}: {e}") from None
    try:
        return run_preprocessing(
            params["dataset"], params["data_dir"], str(outputs["examples"].path),
            list(params["beam_args"]), force=params["_force"],
            landmark_offset=params["landmark_offset"], video_offset=params["video_offset"],
            jpeg_quality=params["jpeg_quality"], num_shards=params["num_shards"],
            frame_reshuffle=params["frame_reshuffle"], synthetic=synthetic)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        # DatasetLayoutError is a ValueError: a missing or foreign folder, an unreadable file.
        raise UserError(str(e)) from None
