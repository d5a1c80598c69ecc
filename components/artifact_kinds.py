"""The kinds of artifact the stages pass on, each as the stages that write it.

A stage's InputSpec names the kind it reads (`produced_by`); run_stage refuses an input folder
that another stage wrote, naming both, before any work.
"""
EXAMPLES = ("preprocess",)      # examples/<dataset>/: aligned TFRecords per part
MODEL = ("train", "import")     # models/<dataset>/fold<k>/: model.keras
EVALUATION = ("evaluate",)      # eval/<dataset>/: metrics.json, report.md
EXPORT = ("export",)            # serving/<model_name>/<version>/: the SavedModel
