"""The preprocess stage's contract: raw dataset folder -> aligned TFRecords per part.

Output: examples   examples/<dataset>/: part{1,2,3}/*.tfrecord.gz, stats.json, manifest.json,
                   rejected/, _COMPLETE.json (a local folder or a URL such as gs://...)
The raw folder (`data_dir`) is no stage's output: it is checked and fingerprinted before any
work (`read_sources`), and a complete output is skipped only while every file its manifest
lists is intact. The work is the Beam job of pipeline/job.py; `python -m pipeline.job` runs
this same contract. The executor is components/preprocess/executor.py.
"""
from components.base import Parameter, StageSpec
from pipeline.options import DATASETS

PREPROCESS = StageSpec(
    name="preprocess",
    description="align raw BP4D / DISFA frames (or the synthetic set) into TFRecords per part",
    inputs=(),
    outputs=("examples",),
    parameters=(
        Parameter("dataset", str, choices=DATASETS, identity=True),
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
    read_sources="components.preprocess.executor:read_sources",
    verify_output="pipeline.job:output_intact",
)
