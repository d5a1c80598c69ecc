"""The preprocess stage's contract: raw dataset folder -> aligned TFRecords per part.

Output: examples   examples/<dataset>/: part{1,2,3}/*.tfrecord.gz, unlabelled/part{1,2,3}/ and
                   unlabelled/outside/ (uncoded frames), stats.json, manifest.json, rejected/,
                   _COMPLETE.json (a local folder or a URL such as gs://...)
The raw folder (`data_dir`) and the `unlabelled_dir` are no stage's output: they are checked and
fingerprinted before any work (`read_sources`), so a change to either reruns the stage, and a
complete output is skipped only while every file its manifest lists is intact. The work is the Beam job of pipeline/job.py; `python -m pipeline.job` runs
this same contract. The executor is components/preprocess/executor.py.
"""
from components.base import Parameter, StageSpec
from components.base.contract import NON_NEGATIVE, POSITIVE, Rule
from schemas.face import DATASETS

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
        Parameter("jpeg_quality", int, 95, flag=True,
                  rule=Rule(lambda v: 1 <= v <= 100, "a JPEG quality from 1 to 100"),
                  help="JPEG quality of the aligned faces"),
        Parameter("num_shards", int, 0, rule=NON_NEGATIVE, flag=True,
                  help="TFRecord files per part; 0 lets the runner choose"),
        Parameter("landmark_offset", int, None, flag=True,
                  help="frame-to-landmark offset (BP4D default 0, used where the landmark "
                       "file's length does not settle the pairing; DISFA default -1; see "
                       "pipeline/sources)"),
        Parameter("video_offset", int, None, flag=True,
                  help="DISFA label-frame-to-video-frame offset (default -1)"),
        Parameter("frame_reshuffle", str, "off", choices=("auto", "on", "off"), cache=False,
                  flag=True,
                  help="spread each unit's frames over workers after reading. It shuffles "
                       "decoded frames (about 4 MB each for BP4D, some 600 GB a run), so the "
                       "default is off: BP4D's 328 sequences and DISFA's 27 videos already "
                       "spread over workers. auto: on for distributed runners only; use it with "
                       "fewer units than workers"),
        Parameter("unlabelled_dir", str, None, flag=True,
                  help="a local folder of extra face videos / image sequences without AU codes "
                       "for the auxiliary tasks: <subject>/<sequence>.mp4 (or another video) or "
                       "<subject>/<sequence>/ of images, landmarks in <subject>/<sequence>.csv "
                       "(python -m pipeline.analyze's or OpenFace's; without one the face "
                       "tracker finds them); docs/data.md"),
        Parameter("flow_offset", int, 2, rule=POSITIVE, flag=True,
                  help="the flow target of frame t is the optical flow to frame t + flow_offset "
                       "of its sequence"),
        Parameter("synthetic", dict, None,
                  help="pipeline.synthetic.SyntheticSpec fields (subjects, tasks, frames, seed)"),
    ),
    executor="components.preprocess.executor:run_executor",
    read_sources="components.preprocess.executor:read_sources",
    verify_output="pipeline.job:output_intact",
    url_aware=True,
)
