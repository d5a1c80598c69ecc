"""Command-line options of the preprocessing job: Beam's own PipelineOptions plus the job's.

Every Beam flag works unchanged (--runner, --direct_num_workers, --project, --region,
--temp_location, --setup_file ...); this class adds what the job itself needs.
"""
from apache_beam.options.pipeline_options import PipelineOptions

from components.base.cli import add_flags
from components.preprocess.component import PREPROCESS
from pipeline.synthetic.dataset import SyntheticSpec
from schemas.face import DATASETS


SYNTHETIC_PREFIX = "synthetic_"  # flags that describe the synthetic set: SyntheticSpec's fields


def synthetic_fields(flags: dict) -> dict:
    """SyntheticSpec fields from the flag values (by destination name) that describe the set."""
    return {name.removeprefix(SYNTHETIC_PREFIX): value for name, value in flags.items()
            if name.startswith(SYNTHETIC_PREFIX)}


class PreprocessOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--dataset", choices=DATASETS, default="synthetic",
                            help="raw dataset to preprocess; 'synthetic' generates the built-in "
                                 "dataset (BP4D layout) into --data_dir first")
        parser.add_argument("--data_dir", default=None,
                            help="raw dataset folder (BP4D or DISFA as released); for "
                                 "'synthetic' the folder the generated raw data goes to (reused "
                                 "when it matches)")
        parser.add_argument("--output_dir", default=None,
                            help="examples folder: part1/ part2/ part3/ rejected/ stats.json "
                                 "manifest.json _COMPLETE.json")
        parser.add_argument("--force", action="store_true",
                            help="rebuild even when the output is complete for these parameters")
        add_flags(parser, PREPROCESS, stage_defaults=True)
        parser.add_argument("--synthetic_subjects", type=int, default=SyntheticSpec.subjects)
        parser.add_argument("--synthetic_tasks", type=int, default=SyntheticSpec.tasks)
        parser.add_argument("--synthetic_frames", type=int, default=SyntheticSpec.frames,
                            help="frames per synthetic sequence")
        parser.add_argument("--synthetic_seed", type=int, default=SyntheticSpec.seed)
        parser.add_argument("--synthetic_smooth", action="store_true",
                            default=SyntheticSpec.smooth,
                            help="expressions and head pose change gradually within a "
                                 "synthetic sequence (for the optical-flow task)")
        parser.add_argument("--synthetic_uncoded_frames", type=int,
                            default=SyntheticSpec.uncoded_frames,
                            help="images with landmarks but no AU codes after the coded "
                                 "frames of every synthetic sequence")
        parser.add_argument("--synthetic_unlabelled_tasks", type=int,
                            default=SyntheticSpec.unlabelled_tasks,
                            help="more tasks per synthetic subject, with images and landmarks "
                                 "but no AU file")


def refuse_unknown_flags(parser, flags: list[str]) -> None:
    """`parser.error` unless each of `flags` is one that Beam's PipelineOptions subclasses define,
    with a value they accept (Beam itself only logs an unknown one, and the run would go on with
    defaults)."""
    beam_parsers = []  # Beam's own parser of every PipelineOptions subclass's flags
    PipelineOptions([]).get_all_options(add_extra_args_fn=beam_parsers.append)
    beam = beam_parsers[0]
    beam.error = lambda message: parser.error(f"Beam flag: {message}")
    _, unknown = beam.parse_known_args(flags)
    if unknown:
        named = [a for a in unknown if a.startswith("-")]
        parser.error(f"unknown flag(s) {' '.join(named)}: neither this script's (--help lists "
                     "them) nor Beam's" if named else f"unexpected argument(s) {' '.join(unknown)}")
