"""The preprocess stage's contract: raw dataset folder -> aligned TFRecords per part.

Output: examples   examples/<dataset>/: part{1,2,3}/*.tfrecord.gz, stats.json, manifest.json,
                   rejected/, _COMPLETE.json
The work is the Beam job of pipeline/job.py, which also runs on its own
(`python -m pipeline.job ...`) and so manages its output folder itself: it skips a complete
output with the same parameters and input, clears and rebuilds otherwise, and writes the
completion record in components.base's format. The executor is components/preprocess/executor.py.
"""
from components.base import Parameter, StageSpec

PREPROCESS = StageSpec(
    name="preprocess",
    description="align raw BP4D / DISFA frames (or the synthetic set) into TFRecords per part",
    inputs=(),
    outputs=("examples",),
    parameters=(
        Parameter("dataset", str, choices=("synthetic", "bp4d", "disfa"), identity=True),
        Parameter("data_dir", str, help="the raw dataset; for synthetic, where it is generated"),
        Parameter("beam_args", list, [], cache=False,
                  help="Beam's own flags (--runner, --direct_num_workers, --project, ...)"),
        Parameter("jpeg_quality", int, 95),
        Parameter("num_shards", int, 0, help="TFRecord files per part; 0: the runner chooses"),
        Parameter("landmark_offset", int, None),
        Parameter("video_offset", int, None),
        Parameter("frame_reshuffle", str, "off", choices=("auto", "on", "off"), cache=False,
                  help="spread each unit's frames over workers (pipeline/options.py)"),
        Parameter("synthetic", dict, None,
                  help="pipeline.synthetic.SyntheticSpec fields (subjects, tasks, frames, seed)"),
    ),
    executor="components.preprocess.executor:run_executor",
    self_managed=True,
)
